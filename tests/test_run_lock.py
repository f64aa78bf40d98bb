"""One `newsmon run` per database: a second is refused at once with the first's pid, the
first goes on untouched, and a killed daemon leaves no stale lock behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.run_lock import DatabaseInUse, exclusive_run, lock_path
from tests.daemon import newsmon_async, running, terminate
from tests.servers import Item, Publisher, Receiver


@pytest.fixture
def path(publisher: Publisher, receiver: Receiver, write_watchlist) -> Path:  # type: ignore[no-untyped-def]
    """A watchlist whose one feed has a story that alerts to ``receiver``."""
    publisher.rss_items = [Item("Embassy", "/e", summary="Kremlin shuts an embassy.")]
    written: Path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    return written


async def test_a_second_run_is_refused_while_the_first_goes_on(
    path: Path, receiver: Receiver, publisher: Publisher
) -> None:
    """`newsmon run` and `run --once` beside a running daemon exit 1 naming its pid,
    having fetched nothing; the read-only `status` still answers, and the first daemon
    stops cleanly."""
    async with running(path) as first:
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        fetched = len(publisher.requests)  # the first daemon's poll: due again in a minute
        for args in (["run"], ["run", "--once"]):
            second = await newsmon_async(*args, "--config", str(path))
            assert second.returncode == 1, second.stderr
            assert f"in use by another `newsmon run` (pid {first.pid})" in second.stderr
            assert "Traceback" not in second.stderr
        status = await newsmon_async("status", "--config", str(path))
        assert status.returncode == 0, status.stderr
        stderr = await terminate(first)
    assert first.returncode == 0, stderr
    # the refused runs have exited: a poll of theirs (`--once` polls every feed) is done
    assert len(publisher.requests) == fetched


async def test_a_killed_daemon_leaves_no_stale_lock(path: Path, receiver: Receiver) -> None:
    """SIGKILL drops the lock with the process, so the next start runs."""
    async with running(path) as first:
        await receiver.wait_for(lambda: len(receiver.accepted) == 1, timeout=60)
        first.kill()
        await first.wait()
    assert lock_path(path.parent / "newsmon.db").exists()
    again = await newsmon_async("run", "--once", "--config", str(path))
    assert again.returncode == 0, again.stderr


def test_the_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    """Two holders of one database's lock never coexist, and leaving the block frees it."""
    database = tmp_path / "state" / "newsmon.db"
    refused = pytest.raises(DatabaseInUse, match=r"newsmon\.db is in use")
    with exclusive_run(database), refused, exclusive_run(database):
        pass
    with exclusive_run(database):
        pass


@pytest.mark.parametrize("depth", [1, 2], ids=["parent", "grandparent"])
def test_a_file_in_the_way_of_the_state_directory_is_named(tmp_path: Path, depth: int) -> None:
    """The message names the file that is not a directory, not a bare "File exists", and
    the error is one to wait out (RELIABILITY.md case 58)."""
    blocker = tmp_path / "state"
    blocker.write_text("in the way", encoding="utf-8")
    database = blocker.joinpath(*["sub"] * (depth - 1), "newsmon.db")
    with pytest.raises(StoreError) as raised, exclusive_run(database):
        pass
    assert str(raised.value) == f"cannot create {lock_path(database)}: {blocker} is not a directory"
    assert raised.value.transient


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as two users needs root")
def test_a_lock_file_another_user_made_still_locks() -> None:
    """Root made the lock file under umask 0077 (a `newsmon run --once` by hand before the
    service first ran): the service's user still takes the lock, and is still refused
    while root holds it."""
    shared = Path(tempfile.mkdtemp())  # not under tmp_path: its parents are root's only
    try:
        shared.chmod(0o755)
        database = shared / "newsmon.db"
        umask = os.umask(0o077)
        try:
            with exclusive_run(database):
                pass
        finally:
            os.umask(umask)
        assert as_nobody(database) == 0
        with exclusive_run(database):
            assert as_nobody(database) == 2
    finally:
        shutil.rmtree(shared)


def as_nobody(database: Path) -> int:
    """0: took the lock; 1: could not open it; 2: refused, in use."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            with exclusive_run(database):
                code = 0
        except DatabaseInUse:
            code = 2
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
