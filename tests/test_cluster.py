"""Fingerprints and similarity: the pure functions behind story clustering."""

from __future__ import annotations

import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor import cluster
from monitor.config import Config, parse_config
from monitor.errors import ConfigError

TOPIC = ("embassy", "diplomats", "talks", "sanctions", "minister", "ankara", "moscow",
         "russia", "russian", "officials", "said", "meeting", "foreign", "ministry",
         "statement", "visit", "envoy", "relations", "ceasefire", "agreement", "spokesman",
         "week", "government", "border", "council", "president", "delegation")  # fmt: skip
FILLER = ("the", "a", "of", "to", "in", "and", "on", "for", "with", "by", "at", "from",
          "that", "was", "were", "has", "have", "its")  # fmt: skip


def story(seed: int, paragraphs: int = 6, words: int = 40) -> str:
    """A story on the shared topic: the same words, arranged differently per seed."""
    rng = random.Random(seed)
    return "\n\n".join(
        " ".join(rng.choice(TOPIC if rng.random() < 0.6 else FILLER) for _ in range(words))
        for _ in range(paragraphs)
    )


def trimmed(text: str, keep: int) -> str:
    """The first ``keep`` paragraphs, as an outlet that cut the tail would run it."""
    return "\n\n".join(text.split("\n\n")[:keep])


BOILERPLATE = "Sign up for our newsletter to get the top stories of the day in your inbox."


def similarity(a: str, b: str) -> float:
    fa, fb = cluster.fingerprint(a), cluster.fingerprint(b)
    assert fa is not None
    assert fb is not None
    return cluster.containment(fa, fb)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("identical", lambda t: t),
        ("tail trimmed", lambda t: trimmed(t, 3)),
        ("boilerplate added", lambda t: f"{t}\n\n{BOILERPLATE} {BOILERPLATE}"),
        ("paragraphs reordered", lambda t: "\n\n".join(reversed(t.split("\n\n")))),
        ("upper-cased", str.upper),
    ],
)
def test_edited_copy_is_the_same_story(name: str, edit) -> None:  # type: ignore[no-untyped-def]
    """Copies with the usual syndication edits reach the default threshold."""
    original = story(1)
    assert similarity(original, edit(original)) >= cluster.DEFAULT_THRESHOLD, name


def test_stories_on_one_topic_are_not_the_same_story() -> None:
    """Different stories built from the same topic words stay far below the threshold."""
    scores = [similarity(story(1), story(seed)) for seed in range(2, 12)]
    assert max(scores) < cluster.DEFAULT_THRESHOLD / 2


def test_containment_is_symmetric_and_bounded() -> None:
    """Which copy came first does not change the score, and it never exceeds 1."""
    a, b = story(3), trimmed(story(3), 2)
    assert similarity(a, b) == similarity(b, a)
    assert 0.0 <= similarity(a, f"{a} {a}") <= 1.0


def test_short_text_has_no_fingerprint() -> None:
    """A title or a one-line summary is too short to cluster by accident."""
    assert cluster.fingerprint("Russia recalls its ambassador to Ankara") is None
    words = " ".join(f"w{i}" for i in range(cluster.MIN_SHINGLES + cluster.SHINGLE_WORDS - 2))
    assert cluster.fingerprint(words) is None
    assert cluster.fingerprint(words + " one-more") is not None


def test_story_text_prefers_the_body_over_the_headline() -> None:
    """With a body the headline is ignored (outlets rewrite it); without one, it counts."""
    assert cluster.story_text("Headline", "Summary", "Body text") == "Body text"
    assert cluster.story_text("Headline", "Summary", "  ") == "Headline\nSummary"


def test_bands_differ_per_band_and_match_for_equal_texts() -> None:
    """Every band key is distinct within a text, and an equal text gives equal keys."""
    a, b = cluster.fingerprint(story(4)), cluster.fingerprint(story(4))
    assert a is not None
    assert b is not None
    assert len(set(cluster.bands(a))) == cluster.BANDS
    assert cluster.bands(a) == cluster.bands(b)


def test_fingerprint_is_stable_across_processes() -> None:
    """Fingerprints are stored, so they must not depend on Python's per-process hash seed."""
    code = (
        "from monitor import cluster; from tests.test_cluster import story; "
        "print(cluster.fingerprint(story(5)).signature.hex())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": "."},
            capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    here = cluster.fingerprint(story(5))
    assert here is not None
    assert outputs == {here.signature.hex() + "\n"}


def _config(monitor: str, rule: str = "") -> Config:
    text = f"""
[monitor]
{monitor}
[[rules]]
name = "r"
query = "embassy"
notify = ["out"]
{rule}
[notifiers.out]
type = "console"
"""
    return parse_config(tomllib.loads(text), Path("/tmp/newsmon.toml"))


def test_cluster_settings_have_defaults_and_are_validated() -> None:
    """cluster_threshold, cluster_window, retention and per_story parse; bad values name
    their key."""
    default = _config("")
    assert default.monitor.cluster_threshold == cluster.DEFAULT_THRESHOLD
    assert (default.monitor.cluster_window, default.monitor.retention) == (3 * 86400, 30 * 86400)
    assert default.rules[0].per_story is True
    tuned = _config('cluster_threshold = 0.7\ncluster_window = "1d"', "per_story = false")
    assert (tuned.monitor.cluster_threshold, tuned.monitor.cluster_window) == (0.7, 86400)
    assert tuned.rules[0].per_story is False
    with pytest.raises(ConfigError, match=r"monitor.cluster_threshold: must be above 0"):
        _config("cluster_threshold = 1.5")
    with pytest.raises(ConfigError, match=r"monitor.cluster_window: is longer than retention"):
        _config('cluster_window = "40d"')
