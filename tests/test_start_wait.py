"""A start on storage that refuses the database waits for it instead of exiting into a
restart loop, and runs once the storage is back (RELIABILITY.md case 58); a corrupt
database still refuses to start (case 60)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.errors import StoreError
from monitor.start_wait import daemon_when_storage_allows
from tests.daemon import running, terminate
from tests.logs import logged
from tests.outbox import eventually
from tests.sd_listener import Listener
from tests.servers import Item, Publisher
from tests.watchlists import watchlist

UNDER_A_FILE = 'database = "state/newsmon.db"'


def blocked_config(publisher: Publisher, tmp_path: Path) -> tuple[Path, Path]:
    """A watchlist whose database lies under ``state``, which is a file, not a directory;
    returns the watchlist and the file in the way."""
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"])
    path = tmp_path / "newsmon.toml"
    path.write_text(text.replace('database = "newsmon.db"', UNDER_A_FILE), encoding="utf-8")
    blocker = tmp_path / "state"
    blocker.write_text("in the way", encoding="utf-8")
    return path, blocker


@asynccontextmanager
async def started(
    path: Path,
    meanwhile: asyncio.Task[None] | None = None,
    *,
    stop: asyncio.Event | None = None,
    reload: asyncio.Event | None = None,
    first: float,
    environ: Mapping[str, str],
) -> AsyncIterator[Daemon | None]:
    """daemon_when_storage_allows on the watchlist at ``path``, bounded in time;
    ``meanwhile`` (what clears the way or stops the wait) is cancelled when it ends."""
    try:
        async with (
            asyncio.timeout(60),
            daemon_when_storage_allows(
                load_config(path),
                stop or asyncio.Event(),
                reload or asyncio.Event(),
                first=first,
                environ=environ,
            ) as daemon,
        ):
            yield daemon
    finally:
        if meanwhile is not None:
            meanwhile.cancel()


async def test_a_start_waits_for_its_storage_and_runs_once_it_is_back(
    publisher: Publisher,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    notify_listener: Listener,
) -> None:
    """READY=1 at once with a STATUS= that says why it waits, one error line then quieter
    ones, the watchdog fed while it waits; once the directory can be made, the daemon
    opens and polls."""
    caplog.set_level(logging.INFO)
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    path, blocker = blocked_config(publisher, tmp_path)
    environ = {"NOTIFY_SOCKET": notify_listener.address, "WATCHDOG_USEC": "100000"}

    async def clear_the_way() -> None:
        await notify_listener.wait_for("WATCHDOG", count=3)
        await eventually(lambda: len(logged(caplog, "storage_failed")) >= 2)  # then quieter
        blocker.unlink()

    clearing = asyncio.create_task(clear_the_way())
    async with started(path, clearing, first=0.05, environ=environ) as daemon:
        assert daemon is not None
        assert clearing.done()  # it opened only once the way was clear
        await daemon.run_once()
    assert len(publisher.requests) == 1
    first = notify_listener.messages[0]
    assert first["READY"] == "1"
    assert first["STATUS"].startswith("WAITING FOR STORAGE: cannot create ")
    assert first["STATUS"].endswith("/state is not a directory; next try in 0.05s")
    failed = logged(caplog, "storage_failed")
    assert failed[0].levelno == logging.ERROR
    assert {r.levelno for r in failed[1:]} <= {logging.WARNING}
    assert "start=waiting" in failed[0].getMessage()
    assert len(logged(caplog, "storage_recovered")) == 1
    assert "Traceback" not in caplog.text


async def test_told_to_stop_while_waiting_it_gives_up_the_wait(
    publisher: Publisher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM (the stop event) during the wait ends it at once, with no daemon."""
    path, _ = blocked_config(publisher, tmp_path)
    stop = asyncio.Event()

    async def stop_once_waiting() -> None:
        await eventually(lambda: bool(logged(caplog, "storage_failed")))
        stop.set()

    stopping = asyncio.create_task(stop_once_waiting())
    async with started(path, stopping, stop=stop, first=3600.0, environ={}) as daemon:
        assert daemon is None
    await stopping
    assert stop.is_set()


async def test_sighup_while_waiting_tries_at_once_and_the_daemon_rereads_the_watchlist(
    publisher: Publisher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`systemctl reload` once the way is clear ends an hour's wait at once, and leaves
    the reload asked for, so the daemon reads the watchlist edited meanwhile."""
    caplog.set_level(logging.INFO)
    path, blocker = blocked_config(publisher, tmp_path)
    reload = asyncio.Event()

    async def clear_the_way_and_reload() -> None:
        await eventually(lambda: bool(logged(caplog, "storage_failed")))
        blocker.unlink()
        reload.set()

    clearing = asyncio.create_task(clear_the_way_and_reload())
    async with started(path, clearing, reload=reload, first=3600.0, environ={}) as daemon:
        assert daemon is not None
        assert reload.is_set()
    assert len(logged(caplog, "storage_failed")) == 1
    assert len(logged(caplog, "storage_recovered")) == 1


async def test_a_corrupt_database_is_refused_at_once(tmp_path: Path, publisher: Publisher) -> None:
    """No waiting out a file that is not a database: the error, and no READY=1."""
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=[f"{publisher.base}/rss.xml"]), encoding="utf-8")
    (tmp_path / "newsmon.db").write_bytes(b"this is no database " * 500)
    listener = Listener(str(tmp_path / "notify.sock"))
    with pytest.raises(StoreError, match="is unusable: file is not a database") as raised:
        async with started(path, first=0.05, environ={"NOTIFY_SOCKET": listener.address}):
            pass
    assert not raised.value.transient
    with pytest.raises(BlockingIOError):
        listener.sock.recv(4096)
    listener.sock.close()


async def test_newsmon_run_waits_under_systemd_and_stops_cleanly(
    publisher: Publisher, tmp_path: Path, notify_listener: Listener
) -> None:
    """A real `newsmon run` on a blocked state directory stays up, says READY=1 and why
    it waits, and exits 0 on SIGTERM: no exit, so no restart loop."""
    path, _ = blocked_config(publisher, tmp_path)
    async with running(path, NOTIFY_SOCKET=notify_listener.address) as proc:
        await notify_listener.wait_for("READY")
        assert notify_listener.messages[0]["STATUS"].startswith("WAITING FOR STORAGE: ")
        assert proc.returncode is None
        stderr = await terminate(proc)
    assert proc.returncode == 0, stderr
    assert stderr.count("storage_failed") == 1, stderr
    assert "Traceback" not in stderr
