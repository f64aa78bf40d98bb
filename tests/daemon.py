"""Run the daemon as a real `newsmon run` process, the way systemd would, or in this
process (``forever``), and stop it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from subprocess import PIPE
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.daemon import Daemon

ROOT = Path(__file__).resolve().parent.parent


def command() -> list[str]:
    """The console script installed beside this Python, importing this checkout's code."""
    script = Path(sys.executable).parent / "newsmon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSMON_CONFIG", "STATE_DIRECTORY")}
    env["PYTHONPATH"] = str(ROOT)
    return env | extra


def newsmon(
    *args: str, cwd: Path | None = None, stdin: str | None = None, stdout: int | IO[str] = PIPE
) -> subprocess.CompletedProcess[str]:
    """Run one newsmon command to completion, as a user would; ``stdout``: where its
    output goes when not captured (a file the shell redirects to, a pipe)."""
    return subprocess.run(
        [*command(), *args], input=stdin, stdout=stdout, stderr=PIPE, text=True, cwd=cwd,
        env=environment(), timeout=120, check=False,
    )  # fmt: skip


async def newsmon_async(*args: str) -> subprocess.CompletedProcess[str]:
    """``newsmon`` in a thread, so the test's own servers keep answering meanwhile."""
    return await asyncio.to_thread(newsmon, *args)


@asynccontextmanager
async def running(config: Path, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`newsmon run --config CONFIG`, killed on the way out if a test left it running."""
    proc = await asyncio.create_subprocess_exec(
        *command(), "run", "--config", str(config),
        stderr=asyncio.subprocess.PIPE, env=environment(**env),
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@asynccontextmanager
async def forever(
    daemon: Daemon, reload: asyncio.Event | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """``daemon.run_forever`` in a task for the block (``reload`` to set for a SIGHUP);
    stopped on the way out and awaited, so an error it died of fails the test."""
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run_forever(stop, reload or asyncio.Event()))
    try:
        yield task
    finally:
        stop.set()
        await task


async def terminate(proc: asyncio.subprocess.Process, within: float = 30.0) -> str:
    """SIGTERM, then the exit within ``within`` seconds; returns what it logged."""
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(within):
        _, stderr = await proc.communicate()
    return stderr.decode()


async def read_until(proc: asyncio.subprocess.Process, marker: bytes) -> bytes:
    """stderr up to and including the first line holding ``marker``."""
    assert proc.stderr is not None
    seen = b""
    async with asyncio.timeout(60):
        while marker not in seen:
            line = await proc.stderr.readline()
            assert line, f"exited before logging {marker!r}: {seen.decode()}"
            seen += line
    return seen
