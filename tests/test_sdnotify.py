"""sd_notify over real AF_UNIX datagram sockets, in-process and from a real `newsmon run`."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from aiohttp import web

from monitor.daemon import RELOAD_REFUSED
from monitor.errors import StoreError
from monitor.sdnotify import SystemdNotifier, extending_start, keep_alive, watchdog_interval
from monitor.service import Service
from monitor.store import MIGRATIONS, Store
from tests.daemon import read_until, running, terminate
from tests.db import connect
from tests.old_schema import back_to_schema_8
from tests.sd_listener import Listener
from tests.servers import Item, Publisher

STOP_BOUND = 10.0  # seconds from SIGTERM to exit; the unit allows TimeoutStopSec=45s
SECRET_TOKEN = "T0KEN-b7e1-never-logged"


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Listener]:
    """A notification socket at a file path, or in the abstract namespace ('@name')."""
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@newsmon-test-{uuid.uuid4().hex}"
    listening = Listener(address)
    yield listening
    listening.sock.close()


def test_each_message_arrives_as_one_datagram(listener: Listener) -> None:
    """READY, STATUS, WATCHDOG, RELOADING (with MONOTONIC_USEC) and STOPPING reach the
    socket, in order, one datagram each."""
    notifier = SystemdNotifier(listener.address, monotonic_ns=lambda: 123_456_789_000)
    assert notifier.enabled
    assert notifier.ready("3 feeds")
    assert notifier.watchdog()
    assert notifier.reloading()
    assert notifier.ready()
    assert notifier.status("5 hits today")
    assert notifier.stopping()
    got = [listener.receive_now() for _ in range(6)]
    assert got == [
        {"READY": "1", "STATUS": "3 feeds"},
        {"WATCHDOG": "1"},
        {"RELOADING": "1", "MONOTONIC_USEC": "123456789"},
        {"READY": "1"},
        {"STATUS": "5 hits today"},
        {"STOPPING": "1"},
    ]
    notifier.close()


def test_service_reload_says_reloading_then_ready(listener: Listener) -> None:
    """A reload is bracketed RELOADING=1 (stamped with CLOCK_MONOTONIC) ... READY=1, as
    Type=notify-reload requires."""
    service = Service.from_environment({"NOTIFY_SOCKET": listener.address})
    before = time.monotonic_ns() // 1000
    service.reloading()
    service.reloaded("watchlist reloaded: 3 feeds")
    after = time.monotonic_ns() // 1000
    reloading, ready = listener.receive_now(), listener.receive_now()
    assert reloading["RELOADING"] == "1"
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    assert ready == {"READY": "1", "STATUS": "watchlist reloaded: 3 feeds"}
    service.close()


def test_a_newline_cannot_smuggle_another_assignment(listener: Listener) -> None:
    """STATUS text with a newline stays one STATUS value, never a READY=1 of its own."""
    notifier = SystemdNotifier(listener.address)
    notifier.status("feed said\nREADY=1")
    assert listener.receive_now() == {"STATUS": "feed said READY=1"}
    notifier.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    """Outside systemd every call is a quiet no-op."""
    notifier = SystemdNotifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.stopping()


def test_a_dead_socket_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sending to a socket nobody listens on returns False; one warning, not one a ping."""
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, logger="newsmon.sdnotify"):
        assert not notifier.ready()
        assert not notifier.watchdog()
    assert [r.getMessage().split()[0] for r in caplog.records] == ["sd_notify_failed"]
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
    ids=["set", "for-us", "for-another-pid", "zero", "garbage", "unset"],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], expected: float | None
) -> None:
    """Ping at half WatchdogSec, and only when the watchdog is meant for this process."""
    assert watchdog_interval(environ, pid=4242) == expected


async def test_watchdog_pings_only_while_the_database_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing or hanging health check withholds WATCHDOG=1 (logged once); pings resume
    when the database answers again."""
    listener = Listener(str(tmp_path / "notify.sock"))
    notifier = SystemdNotifier(listener.address)
    script = ["ok", "fail", "hang", "fail", "ok", "ok"]
    rounds: list[int] = []

    async def healthy() -> None:
        outcome = script[len(rounds)]
        if outcome == "fail":
            raise StoreError("database does not answer: disk I/O error")
        if outcome == "hang":
            await asyncio.Event().wait()  # cut by keep_alive's own deadline

    async def next_round(seconds: float) -> None:
        rounds.append(len(rounds))
        if len(rounds) == len(script):
            raise Finished

    with caplog.at_level(logging.INFO, logger="newsmon.sdnotify"), pytest.raises(Finished):
        await keep_alive(notifier, 0.05, healthy, sleep=next_round)
    pings = []
    while True:
        try:
            pings.append(listener.receive_now())
        except BlockingIOError:
            break
    assert pings == [{"WATCHDOG": "1"}] * 3
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events == ["watchdog_withheld", "watchdog_resumed"]
    notifier.close()
    listener.sock.close()


async def test_a_long_start_step_extends_the_start_timeout_until_it_ends(
    started_listener: Listener,
) -> None:
    """While the step runs, EXTEND_TIMEOUT_USEC= (three intervals) with the step as
    STATUS= comes at once and again while it lasts; when it ends nothing is left to send."""
    notifier = SystemdNotifier(started_listener.address)
    before = asyncio.all_tasks()
    async with extending_start(notifier, "upgrading the database", every=0.05):
        await started_listener.wait_for("EXTEND_TIMEOUT_USEC", count=3)
    assert asyncio.all_tasks() == before  # nothing left sending
    notifier.close()
    await started_listener.collected()
    assert started_listener.messages[:3] == 3 * [
        {"EXTEND_TIMEOUT_USEC": "150000", "STATUS": "upgrading the database"}
    ]


async def test_cancelling_a_start_step_is_not_swallowed_by_its_extension(
    started_listener: Listener,
) -> None:
    """A start cancelled as its step ends (SIGINT, a timeout) stays cancelled: stopping the
    sender must not absorb the caller's own cancellation."""
    notifier = SystemdNotifier(started_listener.address)
    went_on = []

    async def step() -> None:
        async with extending_start(notifier, "upgrading the database", every=60):
            this = asyncio.current_task()
            assert this is not None
            this.cancel()  # delivered at the block's clean-up
        went_on.append(True)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(step())
    assert went_on == []
    notifier.close()


async def test_run_upgrading_the_schema_keeps_systemd_waiting_and_logs_it(
    started_listener: Listener, publisher: Publisher, write_watchlist, tmp_path: Path
) -> None:
    """`newsmon run` on a database of an older schema asks systemd for more start time,
    saying why, before its READY=1, and logs the upgrade's start and end."""
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    store = await Store.open(tmp_path / "newsmon.db")
    await store.close()
    with connect(tmp_path / "newsmon.db") as conn:
        back_to_schema_8(conn)
    async with _run(path, started_listener.address) as proc:
        seen = await read_until(proc, b"started")
        await started_listener.wait_for("READY")
        _, stderr = await _stop(proc, seen)
    assert proc.returncode == 0, stderr
    kinds = [next(iter(m)) for m in started_listener.messages]
    assert kinds[0] == "EXTEND_TIMEOUT_USEC"
    assert set(kinds[: kinds.index("READY")]) == {"EXTEND_TIMEOUT_USEC"}
    assert started_listener.messages[0] == {
        "EXTEND_TIMEOUT_USEC": "30000000",
        "STATUS": f"upgrading the database from schema 8 to {len(MIGRATIONS)}",
    }
    assert f"database_upgrade schema=8 to={len(MIGRATIONS)}" in stderr
    assert f"database_upgraded schema={len(MIGRATIONS)} seconds=" in stderr


class Finished(Exception):
    """Ends a loop under test."""


async def _stop(proc: asyncio.subprocess.Process, seen: bytes = b"") -> tuple[float, str]:
    """SIGTERM, then the seconds until exit and all it wrote to stderr (``seen`` first)."""
    started = time.monotonic()
    stderr = await terminate(proc, within=60)
    return time.monotonic() - started, seen.decode() + stderr


@pytest.fixture
async def started_listener(listener: Listener) -> AsyncIterator[Listener]:
    async with listener:
        yield listener


def _run(config: Path, notify: str) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """`newsmon run` as systemd starts it: a notify socket and a 200 ms watchdog."""
    return running(config, NOTIFY_SOCKET=notify, WATCHDOG_USEC="200000")


async def test_run_says_ready_pings_and_says_stopping_on_sigterm(
    started_listener: Listener, publisher: Publisher, write_watchlist
) -> None:
    """A real `newsmon run` sends READY=1 first, WATCHDOG=1 while it runs, RELOADING=1
    (with MONOTONIC_USEC) then READY=1 on SIGHUP, STOPPING=1 last on SIGTERM, then exits
    0; a notifier URL's secret never reaches its log."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    refused = f"http://127.0.0.1:9/{SECRET_TOKEN}"  # nothing listens on the discard port
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=refused)
    async with _run(path, started_listener.address) as proc:
        seen = await read_until(proc, b"delivery_retry")
        await started_listener.wait_for("WATCHDOG", count=3)
        proc.send_signal(signal.SIGHUP)
        await started_listener.wait_for("READY", count=2)
        elapsed, stderr = await _stop(proc, seen)
    assert proc.returncode == 0, stderr
    assert elapsed < STOP_BOUND
    await started_listener.collected()  # all it sent before it exited
    messages = started_listener.messages
    kinds = [next(iter(m)) for m in messages]
    assert kinds[0] == "READY"
    assert kinds[-1] == "STOPPING"
    reloading = kinds.index("RELOADING")
    ready = kinds.index("READY", 1)  # the watchdog keeps pinging while a reload runs
    assert reloading < ready
    assert set(kinds[1:reloading] + kinds[reloading + 1 : ready] + kinds[ready + 1 : -1]) <= {
        "WATCHDOG",
        "STATUS",
    }
    assert int(messages[reloading]["MONOTONIC_USEC"]) > 0
    assert messages[ready]["STATUS"] == "watchlist reloaded"
    assert "feeds" in started_listener.messages[0]["STATUS"]
    assert SECRET_TOKEN not in stderr
    assert "s3cret-hmac" not in stderr


@pytest.fixture
async def stalled_feed() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A feed URL whose server accepts the request and never answers; the event is set
    once a request is in flight."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/slow.xml", hang)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slow.xml", arrived
    release.set()
    await runner.cleanup()


async def test_sigterm_during_a_slow_poll_exits_0_within_the_bound(
    notify_listener: Listener, stalled_feed: tuple[str, asyncio.Event], write_watchlist
) -> None:
    """SIGTERM while a fetch hangs abandons it and exits 0 well inside TimeoutStopSec,
    saying STOPPING=1 first."""
    url, arrived = stalled_feed
    path = write_watchlist(feeds=[url])
    async with _run(path, notify_listener.address) as proc:
        async with asyncio.timeout(60):
            await arrived.wait()
        elapsed, stderr = await _stop(proc)
    assert proc.returncode == 0, stderr
    assert elapsed < STOP_BOUND
    assert "stopped" in stderr
    await notify_listener.collected()  # all it sent before it exited
    assert next(iter(notify_listener.messages[-1])) == "STOPPING"


async def test_a_refused_reload_still_ends_with_ready_and_says_why(
    started_listener: Listener, publisher: Publisher, write_watchlist
) -> None:
    """A broken edit and SIGHUP (RELIABILITY.md case 65): RELOADING=1 then READY=1 with a
    STATUS= saying the last good watchlist runs, the TOML error with its file, line and
    column in the log, and the daemon still up."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"])
    async with _run(path, started_listener.address) as proc:
        seen = await read_until(proc, b"started")
        good = path.read_text(encoding="utf-8")
        path.write_text(good + "\n[[feeds]\nurl = 'broken'\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        seen += await read_until(proc, b"reload_failed")
        await started_listener.wait_for("READY", count=2)
        assert proc.returncode is None
        _, stderr = await _stop(proc, seen)
    assert proc.returncode == 0, stderr
    kinds = [next(iter(m)) for m in started_listener.messages]
    reloading = kinds.index("RELOADING")
    ready = kinds.index("READY", reloading)
    assert started_listener.messages[ready]["STATUS"] == RELOAD_REFUSED
    (failed,) = [line for line in stderr.splitlines() if "reload_failed" in line]
    assert "TOML syntax error" in failed
    assert f"path={path} " in failed  # case 65: file, line and column
    assert f"(at line {good.count(chr(10)) + 2}, column 8)" in failed
