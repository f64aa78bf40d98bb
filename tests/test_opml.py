"""`newsmon import-opml`: a feed reader's export becomes [[feeds]] tables that, pasted
into the watchlist, pass `newsmon check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.opml import OpmlFeed, plan_import, read_opml, render_feeds
from tests.daemon import ROOT, newsmon

EXPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="World" title="World">
      <outline type="rss" text="BBC" title="BBC World" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
      <outline text="Europe">
        <outline type="rss" text="Le Monde &#8212; &quot;International&quot;" xmlUrl="https://www.lemonde.fr/international/rss_full.xml"/>
      </outline>
    </outline>
    <outline type="rss" text="News" xmlUrl="https://example.org/a.xml"/>
    <outline type="rss" text="News" xmlUrl="https://example.org/b.xml"/>
    <outline type="rss" text="Twice" xmlUrl="https://EXAMPLE.org/a.xml"/>
    <outline type="rss" text="Podcast" xmlUrl="feed://example.org/podcast"/>
    <outline type="rss" text="Archive" xmlUrl="ftp://example.org/feed"/>
    <outline type="rss" xmlUrl="https://example.org/untitled.xml"/>
  </body>
</opml>
"""


def test_folders_become_tags_and_titles_names() -> None:
    """Every outline with an xmlUrl, in order, under its folders' titles."""
    feeds = read_opml(EXPORT, "subs.opml")
    assert feeds[:2] == [
        OpmlFeed("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC World", ("World",)),
        OpmlFeed(
            "https://www.lemonde.fr/international/rss_full.xml",
            'Le Monde — "International"',
            ("World", "Europe"),
        ),
    ]
    assert feeds[-1] == OpmlFeed("https://example.org/untitled.xml", None, ())
    assert len(feeds) == 8


def test_the_plan_skips_what_is_watched_repeated_or_not_http() -> None:
    """Watched feeds (however their host is spelled) and repeats are left out, a name
    already taken gets a number, a feed:// URL is read as the http:// one it stands for,
    and an ftp:// one is reported, not pasted."""
    plan = plan_import(
        read_opml(EXPORT, "subs.opml"),
        watched_urls=["https://FEEDS.bbci.co.uk/news/world/rss.xml"],
        names=["News"],
    )
    assert [(f.url, f.name) for f in plan.feeds] == [
        ("https://www.lemonde.fr/international/rss_full.xml", 'Le Monde — "International"'),
        ("https://example.org/a.xml", "News (2)"),
        ("https://example.org/b.xml", "News (3)"),
        ("http://example.org/podcast", "Podcast"),
        ("https://example.org/untitled.xml", None),
    ]
    assert plan.watched == 1
    assert plan.skipped == ["ftp://example.org/feed"]
    assert plan.repeated == ["https://EXAMPLE.org/a.xml"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html><body>no</body></html>", "no <opml><body>"),
        (b"<opml><body>", "not an OPML file: "),
        (b"", "not an OPML file: "),
    ],
    ids=["html", "truncated", "empty"],
)
def test_what_is_not_opml_is_named_as_such(data: bytes, message: str) -> None:
    """A clear error naming the file, never a traceback."""
    with pytest.raises(ConfigError, match=f"x.opml: .*{message}"):
        read_opml(data, "x.opml")


def test_an_entity_bomb_is_refused_not_expanded() -> None:
    """Nested entities (billion laughs) stop the parse instead of filling memory."""
    entities = '<!ENTITY e0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10)
    )
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE o [{entities}]><opml><body>'
        '<outline text="&e9;" xmlUrl="https://x.org/a"/></body></opml>'
    ).encode()
    with pytest.raises(ConfigError, match="not an OPML file"):
        read_opml(bomb, "bomb.opml")


def test_rendered_tables_are_toml_for_any_text() -> None:
    """Quotes, backslashes, control characters (DEL too) and non-ASCII survive the round
    trip."""
    import tomllib

    odd = OpmlFeed('https://x.org/?q="a"\\b', 'tab\there "quoted" \\ \x01 \x7f é', ('a"b',))
    assert tomllib.loads(render_feeds([odd]))["feeds"] == [
        {"url": odd.url, "name": odd.name, "tags": list(odd.tags)}
    ]
    assert render_feeds([]) == ""


def test_pasted_output_passes_check(tmp_path: Path) -> None:
    """As a user runs it: import against the watchlist, paste, `newsmon check` is ok and
    counts the new feeds."""
    watchlist = tmp_path / "newsmon.toml"
    watchlist.write_text((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    export = tmp_path / "subs.opml"
    export.write_bytes(EXPORT)
    before = newsmon("check", "--config", str(watchlist))
    done = newsmon("import-opml", str(export), "--config", str(watchlist))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# from ")
    assert "# skipped, not an http(s) URL: ftp://example.org/feed" in done.stdout
    assert "# skipped, listed before: https://EXAMPLE.org/a.xml" in done.stdout
    with watchlist.open("a", encoding="utf-8") as f:
        f.write("\n" + done.stdout)
    after = newsmon("check", "--config", str(watchlist))
    assert after.returncode == 0, after.stderr
    count = int(before.stdout.split("feeds: ")[1].split(",")[0])
    assert f"feeds: {count + 5}," in after.stdout  # BBC World is in the example already


def test_it_runs_before_there_is_a_watchlist(tmp_path: Path) -> None:
    """A new user's first step: no newsmon.toml yet, the export on standard input; the
    output says there was nothing to compare with, and a watchlist named with --config
    must exist (a typo would otherwise print feeds already watched)."""
    done = newsmon("import-opml", "-", cwd=tmp_path, stdin=EXPORT.decode())
    assert done.returncode == 0, done.stderr
    assert "# from standard input: 6 new feeds, 0 already watched" in done.stdout
    assert "# no watchlist at newsmon.toml to compare with: every feed is new" in done.stdout
    misnamed = newsmon("import-opml", "-", "--config", "typo.toml", cwd=tmp_path, stdin="")
    assert misnamed.returncode == 2
    assert "typo.toml" in misnamed.stderr
    assert misnamed.stdout == ""
    broken = newsmon("import-opml", "missing.opml", cwd=tmp_path)
    assert broken.returncode == 2
    assert "cannot read missing.opml: No such file or directory" in broken.stderr
    (tmp_path / "subs.opml").write_bytes(EXPORT)
    with (tmp_path / "newsmon.toml").open("w") as out:  # `... > newsmon.toml`: empty first
        redirected = newsmon("import-opml", "subs.opml", cwd=tmp_path, stdout=out)
    assert redirected.returncode == 0, redirected.stderr
    checked = newsmon("check", cwd=tmp_path)  # its feeds read; no rule yet to run
    assert checked.returncode == 2
    assert "configuration error: rules: none listed" in checked.stderr


def test_html_entities_in_titles_are_read() -> None:
    """Readers write HTML's named entities into titles; XML knows only its own five, and
    one such entity made the whole file "not an OPML file". An entity neither knows
    still is an error."""
    data = (
        b'<opml version="2.0"><body><outline text="Caf&eacute;&nbsp;News &amp; more"'
        b' xmlUrl="https://cafe.example.org/rss"/></body></opml>'
    )
    [feed] = read_opml(data, "ent.opml")
    assert feed.name == "Café\xa0News & more"
    with pytest.raises(ConfigError, match=r"ent\.opml: not an OPML file: "):
        read_opml(data.replace(b"&eacute;", b"&nosuchentity;"), "ent.opml")


def test_a_feed_is_not_named_like_a_folder_or_a_tag() -> None:
    """A feed titled like its own folder (or like a tag of the watchlist) gets a number:
    a rule scoped to the folder's tag would otherwise name a feed and a tag at once,
    which `newsmon check` refuses."""
    data = (
        b'<opml version="2.0"><body><outline text="News"><outline text="News"'
        b' xmlUrl="https://n.example.org/rss"/></outline><outline text="asia"'
        b' xmlUrl="https://a.example.org/rss"/></body></opml>'
    )
    plan = plan_import(read_opml(data, "x.opml"), watched_urls=[], names=["asia"])
    assert [(f.name, f.tags) for f in plan.feeds] == [("News (2)", ("News",)), ("asia (2)", ())]
