"""Live reload: a good watchlist applies without a restart, a bad one changes nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from monitor.config import load_config
from monitor.daemon import Daemon, FileWatch
from monitor.deliver import RetryPolicy
from tests.daemon import running, terminate
from tests.db import connect
from tests.outbox import eventually
from tests.servers import Item, Publisher, Receiver
from tests.watchlists import watchlist

BAD_EMAIL = """
[notifiers.desk]
type = "email"
host = "127.0.0.1"
from = "alerts@example.org"
to = ["desk"]
"""

# Its password crosses the network unencrypted; nothing is sent to it in these tests.
PLAIN_EMAIL = """
[notifiers.desk]
type = "email"
host = "192.0.2.25"
security = "none"
username = "alerts"
password = "p"
from = "alerts@example.org"
to = ["desk@example.org"]
"""


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda text: text.replace("@russia AND embassy", "@russia AND"), "rules[0].query: column"),
        (lambda text: text + BAD_EMAIL, "notifiers.desk.to[0]: not an email address"),
        (lambda text: "# all gone\n", "is empty"),  # every feed, rule and notifier
        (lambda text: watchlist(feeds=[]), "feeds: none listed"),
        (lambda text: text[: text.index("[[rules]]")], "rules: none listed"),  # cut short
    ],
    ids=["query", "email-address", "emptied", "no-feeds", "cut-after-feeds"],
)
async def test_bad_edit_keeps_the_last_good_watchlist(
    publisher: Publisher,
    write_watchlist,
    caplog: pytest.LogCaptureFixture,
    edit: Callable[[str], str],
    where: str,
) -> None:
    """A reload of a broken watchlist logs the key path and keeps the old rules and
    notifiers."""
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"])
    path = write_watchlist(text)
    async with Daemon.open(load_config(path)) as daemon:
        good, notifiers = daemon.config, daemon._notifiers
        path.write_text(edit(text), encoding="utf-8")
        with caplog.at_level(logging.ERROR):
            assert await daemon.reload() is False
        assert daemon.config is good
        assert daemon._notifiers is notifiers
        assert "reload_failed" in caplog.text
        assert where in caplog.text


async def test_removed_notifier_cancels_its_queued_deliveries(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Deliveries waiting for a destination that leaves the watchlist end 'cancelled'."""
    receiver.script = [503] * 100
    publisher.rss_items = [Item("Embassy", "/e", summary="Moscow embassy closes")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    slow = RetryPolicy(base=3600, cap=3600)
    async with Daemon.open(load_config(path), retry=slow) as daemon:
        await daemon.run_once(delivery_deadline=0.5)
        renamed = watchlist(feeds=[f"{publisher.base}/rss.xml"]).replace("hook", "terminal")
        path.write_text(renamed, encoding="utf-8")
        assert await daemon.reload() is True
    with connect(path.parent / "newsmon.db") as conn:
        states = conn.execute("SELECT state, last_error FROM deliveries").fetchall()
    assert states == [("cancelled", "destination removed from the watchlist")]


class Hold:
    """Requests held until ``release`` is set; ``held`` is set when the first arrives."""

    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.held.set()
        await self.release.wait()


class HoldingPublisher(Publisher):
    """Holds every article page (feeds are served at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = Hold()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path not in ("/rss.xml", "/atom.xml"):
            await self.hold()
        return await super()._handle(request)


async def test_a_notifier_removed_during_a_poll_gets_none_of_its_alerts(
    receiver: Receiver, write_watchlist, caplog: pytest.LogCaptureFixture
) -> None:
    """A poll that began before a reload queues its hits for the notifiers it began with;
    those to a notifier the reload removed end 'cancelled' when the poll is done, as the
    ones queued before it did, instead of staying pending for no lane."""
    async with HoldingPublisher() as publisher:
        publisher.rss_items = [Item("Embassy", "/e", body="Moscow embassy closes its doors.")]
        text = watchlist(
            feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url, fetch_articles=True
        )
        both = text.replace('notify = ["hook"]', 'notify = ["hook", "gone"]')
        path = write_watchlist(both + '[notifiers.gone]\ntype = "console"\n')
        slow = RetryPolicy(base=3600, cap=3600)
        async with Daemon.open(load_config(path), retry=slow) as daemon:
            polling = asyncio.create_task(daemon.run_once(delivery_deadline=30))
            await asyncio.wait_for(publisher.hold.held.wait(), timeout=30)
            path.write_text(text, encoding="utf-8")
            assert await daemon.reload() is True
            publisher.hold.release.set()
            with caplog.at_level(logging.WARNING):
                await polling
    assert len(receiver.accepted) == 1
    with connect(path.parent / "newsmon.db") as conn:
        states = dict(conn.execute("SELECT notifier, state FROM deliveries").fetchall())
    assert states["gone"] == "cancelled"
    assert "deliveries_cancelled count=1" in caplog.text


class HoldingReceiver(Receiver):
    """Holds every request."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = Hold()

    async def _handle(self, request: web.Request) -> web.Response:
        await self.hold()
        return await super()._handle(request)


async def test_a_reload_that_changes_one_notifier_leaves_the_others_sending(
    publisher: Publisher, receiver: Receiver, write_watchlist, caplog: pytest.LogCaptureFixture
) -> None:
    """Editing one destination restarts its lane only: a slow send to another one is not
    cut off and sent again (a second copy), nor held up for the other lanes' grace."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Moscow embassy closes")]
    async with HoldingReceiver() as slow:
        text = watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=slow.url)
        text = text.replace('notify = ["hook"]', 'notify = ["hook", "other"]')
        text += f'[notifiers.other]\ntype = "webhook"\nurl = "{receiver.url}"\n'
        path = write_watchlist(text)
        async with Daemon.open(load_config(path)) as daemon:
            stop, reload = asyncio.Event(), asyncio.Event()
            runs = asyncio.create_task(daemon.run_forever(stop, reload))
            await asyncio.wait_for(slow.hold.held.wait(), timeout=30)
            await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=30)
            path.write_text(text.replace(receiver.url, f"{receiver.url}?v=2"), encoding="utf-8")
            with caplog.at_level(logging.INFO):
                assert await daemon.reload() is True
            slow.hold.release.set()
            await slow.wait_for(lambda: len(slow.accepted) == 1, timeout=30)
            stop.set()
            await runs
    assert len(slow.attempts) == 1
    assert "deliveries_interrupted" not in caplog.text
    assert len(receiver.attempts) == 1


@pytest.mark.parametrize("trigger", ["sighup", "file-change"])
async def test_running_daemon_picks_up_a_new_feed(
    publisher: Publisher, receiver: Receiver, write_watchlist, trigger: str
) -> None:
    """Adding a feed to the watchlist of a running daemon polls it, without a restart,
    on SIGHUP or when the file changes on disk."""
    publisher.atom_items = [Item("Atom embassy", "/a", summary="Kremlin embassy talks")]
    feeds = [f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"]
    edited = watchlist(feeds=feeds, hook=receiver.url)
    first = watchlist(feeds=feeds[:1], hook=receiver.url) + "\n#"
    path = write_watchlist(first + "x" * (len(edited) - len(first)))  # same size as edited
    async with running(path) as proc:
        await eventually(lambda: bool(publisher.hits("/rss.xml")), timeout=30)
        before = path.stat()
        path.write_text(edited, encoding="utf-8")
        if trigger == "sighup":
            # invisible to the file watcher (same inode, size and mtime): only SIGHUP reloads
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            proc.send_signal(signal.SIGHUP)
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        assert receiver.accepted[0].body["title"] == "Atom embassy"
        stderr = await terminate(proc)
    assert proc.returncode == 0
    assert "reloaded feeds=2" in stderr


def test_unchanged_path_is_not_a_reload(tmp_path: Path) -> None:
    """The watcher's file signature changes with content, not with reads."""
    from monitor.daemon import _signature

    path = tmp_path / "w.toml"
    path.write_text("a", encoding="utf-8")
    first = _signature(path)
    path.read_text(encoding="utf-8")
    assert _signature(path) == first
    path.write_text("ab", encoding="utf-8")
    assert _signature(path) != first


def test_the_file_watch_waits_for_an_edit_to_settle_and_counts_a_reload_as_read(
    tmp_path: Path,
) -> None:
    """A change reloads once it has held still for a look (an editor that truncates and
    then writes is not read half-written); a reload asked for meanwhile (SIGHUP after
    the edit) reads the file, so the watch does not reload it a second time."""
    path = tmp_path / "newsmon.toml"
    path.write_text("[monitor]\n", encoding="utf-8")
    watch = FileWatch(path)
    assert not watch.look()
    path.write_text("[moni", encoding="utf-8")  # half-written
    assert not watch.look()
    path.write_text("[monitor]\ninterval = '5m'\n", encoding="utf-8")
    assert not watch.look()  # still changing
    assert watch.look()  # held still: reload
    watch.read()  # the reload reads it
    assert not watch.look()
    path.write_text("[monitor]\ninterval = '6m'\n", encoding="utf-8")
    watch.read()  # `systemctl reload` right after saving
    assert not watch.look()
    assert not watch.look()
    path.unlink()  # an editor's rename, half done
    assert not watch.look()
    path.write_text("[monitor]\ninterval = '17m'\n", encoding="utf-8")  # a new size
    assert not watch.look()
    assert watch.look()


async def test_a_reload_warns_once_of_a_password_sent_unencrypted(
    publisher: Publisher, write_watchlist, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload that brings an email notifier sending its password unencrypted logs what
    `newsmon check` warns of; the reloads after it, with the notifier still there, do not
    say it again."""
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"])
    path = write_watchlist(text)
    async with Daemon.open(load_config(path)) as daemon:
        with caplog.at_level(logging.WARNING):
            path.write_text(text + PLAIN_EMAIL, encoding="utf-8")
            assert await daemon.reload() is True
            assert await daemon.reload() is True
    assert caplog.text.count("watchlist_warning key=notifiers.desk.security") == 1


@pytest.mark.parametrize(
    ("written", "edited", "key"),
    [
        ("[monitor]\n", '[monitor]\nuser_agent = "x/1"\n', "user_agent"),
        ("extract_workers = 1", "extract_workers = 2", "extract_workers"),  # the pool's size
    ],
    ids=["user_agent", "extract_workers"],
)
async def test_restart_needed_is_said_against_what_runs(
    publisher: Publisher,
    write_watchlist,
    caplog: pytest.LogCaptureFixture,
    written: str,
    edited: str,
    key: str,
) -> None:
    """A setting only a restart applies says restart_needed when it changes, and nothing
    more once the change is undone: the running daemon has it as written."""
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"])
    path = write_watchlist(text)
    assert written in text
    async with Daemon.open(load_config(path)) as daemon:
        with caplog.at_level(logging.WARNING):
            path.write_text(text.replace(written, edited), encoding="utf-8")
            assert await daemon.reload() is True
            assert caplog.text.count(f"restart_needed keys={key}") == 1
            path.write_text(text, encoding="utf-8")  # undone
            assert await daemon.reload() is True
            assert caplog.text.count(f"restart_needed keys={key}") == 1


async def test_a_reloaded_extract_timeout_applies_to_the_next_page(
    publisher: Publisher, write_watchlist
) -> None:
    """`extract_timeout` changed while the daemon runs is the next page's budget: a
    budget no extraction can meet ends that page as timed out, the page before it
    extracted under the old one."""
    body = "Officials met at the embassy for talks on trade and energy questions. " * 5
    publisher.rss_items = [Item("Talks", "/a", body=body, summary="Talks.")]
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"], fetch_articles=True)
    path = write_watchlist(text)
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once(delivery_deadline=1)
        tight = text.replace("[monitor]\n", '[monitor]\nextract_timeout = "0.000001s"\n')
        path.write_text(tight, encoding="utf-8")
        assert await daemon.reload() is True
        publisher.rss_items.append(Item("More talks", "/b", body=body, summary="More."))
        await daemon.run_once(delivery_deadline=1)
    with connect(path.parent / "newsmon.db") as db:
        statuses = dict(db.execute("SELECT url, body_status FROM entries"))
    assert statuses == {
        f"{publisher.base}/a": "extracted",
        f"{publisher.base}/b": "timeout",
    }
