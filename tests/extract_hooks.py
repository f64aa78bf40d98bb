"""Extraction functions for Extractor tests; top-level so a spawned worker can import them.

The page's bytes say what the worker does: a normal page echoes its text and the worker's
pid (in ``detail``), so tests can tell whether a worker was replaced.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from monitor.models import BodyStatus, Extracted

STUCK = b"STUCK"  # never finishes: the budget must abandon it
CRASH = b"CRASH"  # the worker dies mid-page
RAISE = b"RAISE"  # the function fails on this page; the worker lives on
AWAIT_DEATH = b"AWAIT-DEATH:"  # + comma-separated pids: wait until the other worker is gone
GATE = b"GATE:"  # + a directory: create "started" in it, answer once "open" appears there


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists; a zombie (exited, not reaped) still does."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never set the condition")
        time.sleep(0.01)


def scripted(html: bytes, url: str | None) -> Extracted:
    """Does what the page says; see the module docstring."""
    if html.startswith(STUCK):
        time.sleep(3600)
    if html.startswith(CRASH):
        os._exit(3)
    if html.startswith(RAISE):
        raise ValueError("scripted failure")
    if html.startswith(AWAIT_DEATH):
        others = [int(p) for p in html[len(AWAIT_DEATH) :].split(b",") if int(p) != os.getpid()]
        _wait(lambda: not any(alive(p) for p in others))
    if html.startswith(GATE):
        gate = Path(html[len(GATE) :].decode())
        (gate / "started").touch()
        _wait((gate / "open").exists)
    return Extracted(html.decode(), BodyStatus.EXTRACTED, str(os.getpid()))


def counted(html: bytes, url: str | None) -> Extracted:
    """Marks the page done in the directory its text names (``DONE:<dir>``), after a
    moment's work, so the page server can count the pages fetched and not yet extracted."""
    marker = html.index(b"DONE:") + len(b"DONE:")
    directory = Path(html[marker:].split(b"<", 1)[0].decode())
    time.sleep(0.02)  # extraction takes a while: unbounded, fetching runs ahead of it
    (directory / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    return Extracted("done", BodyStatus.EXTRACTED)
