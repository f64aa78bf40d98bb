from __future__ import annotations

# hypothesis is imported here, at a shallow stack, on purpose: otherwise its pytest plugin
# first imports it from the terminal-summary hook, deep in pluggy's stack, where pytest's
# assertion rewriter trips CPython 3.11's "AST constructor recursion depth mismatch"
# (python/cpython#106905) and a green run exits 1.
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import hypothesis
import pytest
from aiosmtpd.controller import Controller

from monitor.fetch import make_session
from monitor.store import Store
from monitor.workers import WorkerPool
from tests.sd_listener import Listener
from tests.servers import Publisher, Receiver
from tests.smtp_server import Recorder, free_port
from tests.watchlists import watchlist

# No per-example deadline: a loaded machine made a 3 ms example take 575 ms once, and
# hypothesis failed it as flaky; speed is the benchmarks' business (bench/), not the tests'.
hypothesis.settings.register_profile("newsmon", deadline=None)
hypothesis.settings.load_profile("newsmon")


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """A test that runs the CLI in this process configures logging for it, a stderr
    handler on the root logger: taken away after the test, or later tests' servers
    (aiosmtpd's threads) wrote their lines into the test run's output."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == "newsmon"]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in the test's own folder."""
    s = await Store.open(tmp_path / "newsmon.db")
    yield s
    await s.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A session made as the daemon makes its own (monitor.fetch.make_session)."""
    async with make_session(user_agent="newsmon-test") as s:
        yield s


@pytest.fixture
async def publisher() -> AsyncIterator[Publisher]:
    async with Publisher() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as server:
        yield server


@pytest.fixture
async def one_worker() -> AsyncIterator[WorkerPool]:
    """A pool of one worker process: every job runs in the same process, one at a time."""
    pool = WorkerPool(workers=1)
    yield pool
    pool.close()


@pytest.fixture
async def notify_listener(tmp_path: Path) -> AsyncIterator[Listener]:
    """A stand-in for systemd's notification socket in the test's folder, collecting."""
    async with Listener(str(tmp_path / "notify.sock")) as listener:
        yield listener


@pytest.fixture
def smtpd() -> Iterator[tuple[Recorder, int]]:
    """A real SMTP server offering AUTH without TLS (auth optional, so no warning)."""
    recorder = Recorder()
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=recorder.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


@pytest.fixture
def write_watchlist(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Writes a watchlist for the given servers and returns its path."""

    def write(text: str | None = None, **kwargs: object) -> Path:
        path = tmp_path / "newsmon.toml"
        path.write_text(text if text is not None else watchlist(**kwargs), encoding="utf-8")
        return path

    return write


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that failed before closing its Store leaves aiosqlite's worker thread (not a
    daemon thread) alive, and the interpreter would wait for it forever: stop any such
    thread so a red run ends red instead of hanging CI."""
    import gc

    import aiosqlite

    leaked = [
        obj for obj in gc.get_objects() if isinstance(obj, aiosqlite.Connection) and obj._running
    ]
    for connection in leaked:
        connection.stop()
    if leaked:
        print(f"\nconftest: stopped {len(leaked)} database connection(s) a test left open")
