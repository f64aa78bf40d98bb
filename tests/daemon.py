"""Run `newsmon run` as a real process, the way systemd would, and stop it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def command() -> list[str]:
    """The console script installed beside this Python, importing this checkout's code."""
    script = Path(sys.executable).parent / "newsmon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSMON_CONFIG", "STATE_DIRECTORY")}
    env["PYTHONPATH"] = str(ROOT)
    return env | extra


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


async def terminate(proc: asyncio.subprocess.Process, within: float = 30.0) -> str:
    """SIGTERM, then the exit within ``within`` seconds; returns what it logged."""
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(within):
        _, stderr = await proc.communicate()
    return stderr.decode()
