"""The newsmon command as a user runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.daemon import ROOT, newsmon, newsmon_async, running, terminate
from tests.db import connect
from tests.servers import Item, Publisher, Receiver
from tests.smtp_server import PASSWORD, SENDER, Recorder
from tests.watchlists import watchlist


@pytest.mark.parametrize("before", [False, True], ids=["after-the-command", "before-it"])
def test_check_accepts_the_example_watchlist(before: bool) -> None:
    """`newsmon check` passes on the shipped example and says what it found; --config
    may come before the command as well as after it."""
    given = ["--config", str(ROOT / "config.example.toml")]
    done = newsmon(*given, "check") if before else newsmon("check", *given)
    assert done.returncode == 0, done.stderr
    assert ": ok (feeds: 5" in done.stdout


def test_check_rejects_a_broken_watchlist_with_exit_2(tmp_path: Path) -> None:
    """A typo in a notifier name exits 2 with the key path and the problem."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    path = tmp_path / "broken.toml"
    path.write_text(text.replace('notify = ["terminal"]', 'notify = ["slak"]'), encoding="utf-8")
    done = newsmon("check", "--config", str(path))
    assert done.returncode == 2
    assert 'rules[0].notify[0]: no notifier named "slak"' in done.stderr


def test_a_watchlist_without_feeds_runs_no_daemon_but_tests_rules(tmp_path: Path) -> None:
    """`run` and `check` refuse a watchlist that lists no feed (a file cut short would
    otherwise run a daemon that polls nothing); `test` still tries its rules on a story,
    as someone writing rules before choosing feeds does."""
    path = tmp_path / "rules-only.toml"
    path.write_text(watchlist(feeds=[]), encoding="utf-8")
    for command in (["check"], ["run", "--once"]):
        done = newsmon(*command, "--config", str(path), cwd=tmp_path)
        assert done.returncode == 2, command
        assert "configuration error: feeds: none listed" in done.stderr
    story = "Russian diplomats met over the work of their respective embassies."
    done = newsmon("test", "-", "--config", str(path), stdin=story)
    assert done.returncode == 0, done.stderr
    assert "rule russia-embassy: MATCH" in done.stdout
    assert not (tmp_path / "newsmon.db").exists()


def test_missing_watchlist_exits_2(tmp_path: Path) -> None:
    """No watchlist at the default path is a clear configuration error."""
    done = newsmon("check", cwd=tmp_path)
    assert done.returncode == 2
    assert "newsmon.toml" in done.stderr


async def test_run_once_delivers_then_nothing_on_the_next_run(
    tmp_path: Path, publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """`newsmon run --once` alerts the webhook for a matching story, and nothing next time;
    `hits` and `deliveries` then show what happened."""
    publisher.rss_items = [
        Item("Embassy row", "/x", summary="Russia recalls staff from its embassy.")
    ]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    done = await newsmon_async("run", "--once", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert len(receiver.accepted) == 1
    again = await newsmon_async("run", "--once", "--config", str(path))
    assert again.returncode == 0, again.stderr
    assert len(receiver.attempts) == 1

    hits = newsmon("hits", "--json", "--config", str(path))
    [hit] = json.loads(hits.stdout)
    assert hit["title"] == "Embassy row"
    published = publisher.rss_items[0].published
    assert published is not None
    assert hit["published"] == published.replace(microsecond=0).timestamp()
    unknown = newsmon("hits", "--rule", "nosuch", "--config", str(path))
    assert unknown.returncode == 2
    assert "no rule named 'nosuch'" in unknown.stderr
    reader, writer = os.pipe()  # `newsmon hits | head`, the reader gone before the output
    os.close(reader)
    try:
        piped = newsmon("hits", "--config", str(path), stdout=writer)
    finally:
        os.close(writer)
    assert (piped.returncode, piped.stderr) == (141, "")  # as a shell reports SIGPIPE
    deliveries = newsmon("deliveries", "--config", str(path))
    assert " sent " in deliveries.stdout
    feeds = newsmon("feeds", "--config", str(path))
    assert "Test Gazette" in feeds.stdout
    assert " ok " in feeds.stdout


async def test_line_breaks_in_publishers_text_forge_no_line(
    tmp_path: Path, publisher: Publisher, write_watchlist
) -> None:
    """A title with a line break, whether stored so by an older newsmon or sent now,
    is printed on one line by the console alert and by feeds, hits and deliveries: it
    cannot pass for a row or an alert of its own."""
    forged = "fake-row  hook  failed"
    publisher.rss_items = [Item(f"Embassy row\r\n{forged}", "/x", summary="Russia recalls staff.")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], query="Russia")
    done = await newsmon_async("run", "--once", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "[russia-embassy] Embassy row fake-row hook failed" in done.stdout.splitlines()
    with connect(tmp_path / "newsmon.db") as conn:  # as an older version stored them
        conn.execute("UPDATE feeds SET title = ?", (f"Gazette\n{forged}",))
        conn.execute("UPDATE entries SET title = ?", (f"Embassy row\n{forged}",))
    for listing in ("feeds", "hits", "deliveries"):
        shown = newsmon(listing, "--config", str(path))
        assert shown.returncode == 0, shown.stderr
        assert not [line for line in shown.stdout.splitlines() if line.startswith("fake")]
        assert "fake-row hook failed" in shown.stdout


async def test_a_password_in_a_feed_url_is_never_printed(tmp_path: Path, write_watchlist) -> None:
    """A feed URL may carry basic-auth credentials: logs, `feeds` and `status` show the
    user name and *** in place of the password."""
    path = write_watchlist(feeds=["http://bob:s3cretpw@127.0.0.1:9/rss.xml"])
    done = await newsmon_async("run", "--once", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "poll_failed feed=http://bob:***@127.0.0.1:9/rss.xml" in done.stderr
    shown = [newsmon(c, "--config", str(path)) for c in ("feeds", "status")]
    assert all("bob:***@127.0.0.1:9" in s.stdout for s in shown)
    assert "s3cretpw" not in done.stdout + done.stderr + "".join(s.stdout for s in shown)


async def test_feeds_lists_a_feed_switched_off_as_status_counts_it(
    publisher: Publisher, write_watchlist
) -> None:
    """A feed with enabled = false shows in `feeds` as disabled, saying why, as `status`
    counts it: never polled, or polled before it was switched off."""
    off = '[[feeds]]\nurl = "http://127.0.0.1:9/off.xml"\nname = "Off"\nenabled = false\n'
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], extra=off)
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    path.write_text(path.read_text().replace('/rss.xml"', '/rss.xml"\nenabled = false'))
    listed = newsmon("feeds", "--config", str(path)).stdout.splitlines()
    assert [line.split("  ")[0] for line in listed[1:]] == ["Test Gazette", "Off"]
    assert all(
        " disabled " in x and x.endswith("enabled = false in the watchlist") for x in listed[1:]
    )
    assert "2 disabled" in newsmon("status", "--config", str(path)).stdout


async def test_feeds_lists_a_removed_feed_last_and_says_so(
    publisher: Publisher, write_watchlist
) -> None:
    """A feed taken out of the watchlist keeps its history, shown last as removed, not at
    the top as failing (status does not count it either)."""
    feeds = [f"{publisher.base}/missing.xml", f"{publisher.base}/rss.xml"]
    path = write_watchlist(feeds=feeds)
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    path.write_text(path.read_text().replace(f'url = "{feeds[0]}"', f'url = "{feeds[1]}x"'))
    listed = newsmon("feeds", "--config", str(path)).stdout.splitlines()
    assert listed[1].split()[:3] == ["Test", "Gazette", "ok"]
    assert listed[-1].split()[:2] == [feeds[0], "removed"]
    assert listed[-1].endswith("no longer in the watchlist")


async def test_logs_name_a_feed_by_its_title_once_known(
    publisher: Publisher, write_watchlist
) -> None:
    """A feed with no name in the watchlist is named in the log by its URL until a poll
    reads its title, then by the title, as `feeds` and alerts name it (DESIGN.md 2)."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    first = await newsmon_async("run", "--once", "--config", str(path))
    assert f"poll_ok feed={publisher.base}/rss.xml " in first.stderr
    publisher.overrides["/rss.xml"] = (500, {})
    second = await newsmon_async("run", "--once", "--config", str(path))
    assert 'poll_failed feed="Test Gazette" error="HTTP 500"' in second.stderr


async def test_feeds_shows_the_status_of_a_200_that_is_no_feed(
    publisher: Publisher, write_watchlist
) -> None:
    """A feed that answers 200 with something that is not a feed fails, and `feeds`
    shows the 200 it got beside the reason, not "-"."""
    publisher.overrides["/rss.xml"] = (200, {"Content-Type": "text/html"})
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    assert (await newsmon_async("run", "--once", "--config", str(path))).returncode == 0
    [_, row] = newsmon("feeds", "--config", str(path)).stdout.splitlines()
    assert row.split()[1:4] == ["failing", "x1", "200"]
    assert row.endswith("not a feed: the server sent text/html")


@pytest.mark.parametrize(
    "args",
    [["hits"], ["feeds"], ["deliveries"], ["search", "embassy"], ["redeliver", "ab12"],
     ["resume", "hook"]],
    ids=lambda args: args[0],
)  # fmt: skip
def test_commands_before_the_first_run_say_so_and_create_nothing(
    tmp_path: Path, write_watchlist, args: list[str]
) -> None:
    """With no database yet, a command that reads or changes it says newsmon has not
    run yet (exit 1) and leaves no empty database behind for the first run to trip on."""
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"], hook="http://127.0.0.1:9/")
    done = newsmon(*args, "--config", str(path))
    assert done.returncode == 1
    assert f"no database at {tmp_path / 'newsmon.db'}: newsmon has not run yet" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("args", [["--version"], ["run", "--help"]])
def test_version_and_help(args: list[str]) -> None:
    """The basics answer without a watchlist."""
    done = newsmon(*args)
    assert done.returncode == 0
    assert "newsmon" in done.stdout


async def test_daemon_polls_alerts_and_stops_cleanly_on_sigterm(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """`newsmon run` polls on its own schedule, delivers, and exits 0 on SIGTERM."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    async with running(path) as proc:
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        stderr = await terminate(proc)
    assert proc.returncode == 0, stderr
    assert "stopped" in stderr


def test_test_command_explains_match_and_non_match(tmp_path: Path) -> None:
    """`newsmon test -` shows MATCH with the words found, and why another rule failed."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text += '\n[[rules]]\nname = "oil"\nquery = "sanctions NEAR/5 oil"\nnotify = ["terminal"]\n'
    path = tmp_path / "w.toml"
    path.write_text(text, encoding="utf-8")
    story = "Russian and U.S. diplomats met over the work of their respective embassies."
    done = newsmon("test", "-", "--config", str(path), stdin=story)
    assert done.returncode == 0, done.stderr
    assert "rule russia-embassy: MATCH" in done.stdout
    assert "[Russian]" in done.stdout
    assert "[embassies]" in done.stdout
    assert "rule oil: no match" in done.stdout
    assert "sanctions (column 1): not found" in done.stdout


def test_test_command_cleans_plain_text_as_the_daemon_does(tmp_path: Path) -> None:
    """A soft hyphen inside a word (Rus&shy;sia), which the daemon removes from every
    text it stores, does not split the word for `newsmon test` either."""
    config = str(ROOT / "config.example.toml")
    story = "Rus\u00adsia reopened its embassy."
    done = newsmon("test", "-", "--config", config, stdin=story)
    assert done.returncode == 0, done.stderr
    assert "rule russia-embassy: MATCH" in done.stdout


def test_test_command_takes_a_file_by_path_or_file_url(tmp_path: Path) -> None:
    """A story file is read by its path or as a file:// URL alike; an empty TARGET is a
    usage error, not the current directory."""
    path = tmp_path / "w.toml"
    path.write_text((ROOT / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8")
    story = tmp_path / "my story.txt"
    story.write_text("Russian diplomats visited the embassy.", encoding="utf-8")
    by_path = newsmon("test", str(story), "--config", str(path))
    by_url = newsmon("test", story.as_uri(), "--config", str(path))
    assert by_path.returncode == by_url.returncode == 0, by_url.stderr
    assert "rule russia-embassy: MATCH" in by_url.stdout
    assert by_url.stdout.split("\n", 1)[1] == by_path.stdout.split("\n", 1)[1]
    for nothing in ("", "file://"):
        done = newsmon("test", nothing, "--config", str(path))
        assert done.returncode == 2
        assert "expected a URL, a file or - for standard input, got nothing" in done.stderr


async def test_test_command_reads_a_pages_headline_as_its_title(
    publisher: Publisher, write_watchlist
) -> None:
    """`newsmon test URL` takes the page's headline as the title, as the daemon does for
    an entry without one: a title: rule matches there as it would in an alert."""
    body = "Talks resumed in Geneva on Monday, officials said.\n\n" * 3
    publisher.rss_items = [Item("Embassy talks resume", "/story", body=body)]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], query="title:embassy")
    done = await newsmon_async("test", f"{publisher.base}/story", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "rule russia-embassy: MATCH" in done.stdout


async def test_test_command_fetches_and_extracts_a_url(publisher: Publisher) -> None:
    """`newsmon test URL --rule` runs the real fetch and extraction on the page."""
    body = "The Kremlin said on Monday that the embassy would reopen next week.\n\n" * 3
    publisher.rss_items = [Item("Reopening", "/story", body=body)]
    done = await newsmon_async(
        "test", f"{publisher.base}/story", "--rule", "russia-embassy",
        "--config", str(ROOT / "config.example.toml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "extracted" in done.stdout
    assert "rule russia-embassy: MATCH" in done.stdout
    # as the daemon, it takes no text from a page that is not HTML
    publisher.overrides["/image"] = (200, {"Content-Type": "image/png"})
    image = await newsmon_async(
        "test", f"{publisher.base}/image", "--config", str(ROOT / "config.example.toml")
    )
    assert image.returncode == 1
    assert "content type image/png" in image.stderr
    assert "MATCH" not in image.stdout


# Secrets kept where an operator's shell does not see them: a variable of the service's
# environment and a file of its credentials folder.
UNREAD_SECRETS = """
[[feeds]]
url = "http://127.0.0.1:9/private.xml"
username = "bob"
password_file = "credentials/feed_password"

[notifiers.slack]
type = "slack"
url_env = "NEWSMON_TEST_NEVER_SET_SLACK_URL"
"""
STDIN = {
    "test": "The Russian embassy reopened.",
    "import-opml": '<opml version="2.0"><body><outline xmlUrl="https://example.org/a.xml"/>'
    "</body></opml>",
}


@pytest.mark.parametrize(
    "args",
    [["status"], ["feeds"], ["hits"], ["deliveries"], ["search", "embassy"],
     ["backtest", "--rule", "russia-embassy"], ["resume", "hook"], ["backup", "copy.db"],
     ["test", "-"], ["import-opml", "-"]],
    ids=lambda args: args[0],
)  # fmt: skip
@pytest.mark.usefixtures("store")  # a database, as the service made it
async def test_commands_that_send_nothing_answer_without_the_secrets(
    tmp_path: Path, write_watchlist, args: list[str]
) -> None:
    """A command that sends nothing answers in a shell without the service's environment
    or credentials (`newsmon status` over ssh): it never reads a secret it has no use
    for, so a variable that is not set there stops it no more."""
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"], extra=UNREAD_SECRETS)
    done = newsmon(*args, "--config", str(path), cwd=tmp_path, stdin=STDIN.get(args[0]))
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [["check"], ["run", "--once"], ["run"], ["notify-test", "slack"]],
    ids=" ".join,
)
def test_commands_that_send_still_need_every_secret(
    tmp_path: Path, write_watchlist, args: list[str]
) -> None:
    """`run` (and `check`, which answers for it, and `notify-test`) read every secret:
    one that is not set stops them at start with exit 2, the key path and the variable."""
    text = UNREAD_SECRETS.replace('password_file = "credentials/feed_password"', "")
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"], extra=text)
    done = newsmon(*args, "--config", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "newsmon: configuration error: notifiers.slack.url_env: environment variable"
        " NEWSMON_TEST_NEVER_SET_SLACK_URL is not set\n"
    )
    assert not (tmp_path / "newsmon.db").exists()


def email_notifier(
    name: str, host: str, port: int = 25, *, security: str = "none", login: bool = True
) -> str:
    """An [notifiers.NAME] email table; ``login``: with the user name and password the
    tests' SMTP server accepts."""
    credentials = f'username = "alerts"\npassword = "{PASSWORD}"\n' if login else ""
    return (
        f'[notifiers.{name}]\ntype = "email"\nhost = "{host}"\nport = {port}\n'
        f'security = "{security}"\nfrom = "{SENDER}"\nto = ["desk@example.org"]\n'
        f"{credentials}\n"
    )


def unencrypted(name: str, host: str) -> str:
    """The warning about notifier ``name``, after its key path."""
    return (
        f"notifiers.{name}.security: none sends the SMTP password to {host} unencrypted;"
        " use starttls or tls unless every network on the way is trusted"
    )


def test_check_warns_of_each_password_sent_unencrypted_off_this_machine(write_watchlist) -> None:
    """`check` passes a watchlist whose email notifier sends its password without
    encryption, with one warning line per such notifier, where an error would stand: none
    for a loopback host, an upgraded connection or a notifier that logs in to nothing."""
    notifiers = [
        email_notifier("remote", "smtp.example.org"),
        email_notifier("lan", "192.0.2.25"),
        email_notifier("loopback", "127.0.0.2"),
        email_notifier("localhost", "localhost"),
        email_notifier("ipv6", "::1"),
        email_notifier("bracketed", "[::1]"),
        email_notifier("mapped", "::ffff:127.0.0.1"),
        email_notifier("under-localhost", "mail.localhost"),
        email_notifier("not-under-localhost", "localhost.example.org"),
        email_notifier("upgraded", "smtp.example.org", security="starttls"),
        email_notifier("anonymous", "smtp.example.org", login=False),
    ]
    path = write_watchlist(feeds=["http://127.0.0.1:9/rss.xml"], extra="".join(notifiers))
    done = newsmon("check", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"newsmon: warning: {unencrypted('remote', 'smtp.example.org')}",
        f"newsmon: warning: {unencrypted('lan', '192.0.2.25')}",
        f"newsmon: warning: {unencrypted('under-localhost', 'mail.localhost')}",
        f"newsmon: warning: {unencrypted('not-under-localhost', 'localhost.example.org')}",
    ]
    assert f"{path}: ok (feeds: 1, rules: 1 enabled of 1, notifiers: 12)" in done.stdout


async def test_run_logs_in_through_a_plain_relay_and_warns_of_a_remote_one(
    publisher: Publisher, smtpd: tuple[Recorder, int], write_watchlist
) -> None:
    """security = "none" with a password is allowed: `run` logs in to a relay on loopback
    and sends without a word about it, and says at start, in one line, which notifier
    would send its password unencrypted to another host (no rule names that one: nothing
    goes there)."""
    recorder, port = smtpd
    publisher.rss_items = [Item("Embassy row", "/x", summary="Russia recalls its embassy staff.")]
    relays = email_notifier("relay", "127.0.0.1", port) + email_notifier("remote", "192.0.2.25")
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"], extra=relays)
    path = write_watchlist(text.replace('notify = ["hook"]', 'notify = ["relay"]'))
    done = await newsmon_async("run", "--once", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert recorder.logins == [b"alerts"]
    assert [m.message["Subject"] for m in recorder.messages] == [
        "[newsmon] russia-embassy: Embassy row"
    ]
    warned = [line for line in done.stderr.splitlines() if "WARNING watchlist_warning" in line]
    assert len(warned) == 1
    key, message = unencrypted("remote", "192.0.2.25").split(": ", 1)
    assert warned[0].endswith(f'watchlist_warning key={key} warning="{message}"')
