"""Story fingerprints per call: the compiled form (monitor/_fingerprint.c) against the
pure-Python one, on the same texts in the same process.

    PYTHONPATH=. python bench/fingerprint.py [--articles /work/shared/corpus/articles]

Texts: every corpus article (``story_fingerprint`` of its body; also apart, those that
are ASCII but for typographic marks and the rest), and per article a feed entry with no
body whose summary is 60 words drawn from the article, as the feed farm draws them
(bench/farm.py). Prints per call the median over rounds of the wall time and of
the process CPU time (which load on a shared machine disturbs less), for
``story_fingerprint``, ``bands`` and ``containment``. docs/clustering.md records the figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from monitor import cluster
from monitor.models import Fingerprint

TYPOGRAPHY = dict.fromkeys(map(ord, cluster._TYPOGRAPHY), " ")


def per_call(calls: Callable[[], object], count: int, rounds: int) -> tuple[float, float]:
    """Median µs per call over ``rounds`` runs of ``calls`` (which makes ``count`` calls):
    wall clock, then CPU time."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        calls()
        walls.append((time.perf_counter() - wall) / count * 1e6)
        cpus.append((time.process_time() - cpu) / count * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=Path, default=Path("../shared/corpus/articles"))
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if not cluster.COMPILED:
        sys.exit("monitor._fingerprint is not built (or NEWSMON_PURE_PYTHON=1)")
    from monitor import _fingerprint

    bodies = [p.read_text(encoding="utf-8") for p in sorted(args.articles.glob("*.txt"))]
    if not bodies:
        sys.exit(f"no articles in {args.articles}")
    plain = [b for b in bodies if b.translate(TYPOGRAPHY).isascii()]
    other = [b for b in bodies if not b.translate(TYPOGRAPHY).isascii()]
    rng = random.Random(1)
    summaries = [" ".join(rng.choices(body.split(), k=60)) for body in bodies]
    prints = [p for p in map(cluster.fingerprint_python, bodies) if p is not None]
    pairs = list(zip(prints, prints[1:] + prints[:1], strict=True))
    forms: dict[str, tuple[Callable[[str], Fingerprint | None], Callable[..., object], ...]] = {
        "python": (cluster.fingerprint_python, cluster.bands_python, cluster.containment_python),
        "C": (cluster.fingerprint, _fingerprint.bands, _fingerprint.containment),
    }
    words = sum(len(b.split()) for b in bodies) / len(bodies)
    print(f"{len(bodies)} articles (mean {words:.0f} words), {len(summaries)} summaries, "
          f"{args.rounds} rounds; µs per call, median: wall / CPU")  # fmt: skip
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name, (fingerprint, bands, containment) in forms.items():
        cluster.fingerprint = fingerprint  # story_fingerprint calls the module's name
        results[name] = {
            "story_fingerprint, article": per_call(
                lambda: [cluster.story_fingerprint("Title", "", body) for body in bodies],
                len(bodies), args.rounds,
            ),
            f"  {len(plain)} ASCII but for typography": per_call(
                lambda: [cluster.story_fingerprint("Title", "", body) for body in plain],
                len(plain), args.rounds,
            ),
            f"  {len(other)} other Unicode": per_call(
                lambda: [cluster.story_fingerprint("Title", "", body) for body in other],
                len(other), args.rounds,
            ),
            "story_fingerprint, 60-word summary": per_call(
                lambda: [cluster.story_fingerprint("A headline", s, "") for s in summaries],
                len(summaries), args.rounds,
            ),
            "bands": per_call(lambda b=bands: list(map(b, prints)), len(prints), args.rounds),
            "containment": per_call(
                lambda c=containment: [c(a, b) for a, b in pairs], len(pairs), args.rounds
            ),
        }  # fmt: skip
    cluster.fingerprint = forms["C"][0]
    for what in results["python"]:
        (pw, pc), (cw, cc) = results["python"][what], results["C"][what]
        print(f"{what:36} python {pw:8.2f} / {pc:8.2f}   C {cw:7.2f} / {cc:7.2f}   "
              f"{pc / cc:5.1f}x CPU")  # fmt: skip


if __name__ == "__main__":
    main()
