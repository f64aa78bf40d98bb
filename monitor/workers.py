"""A pool of worker processes for CPU-bound work on untrusted input, under a time budget.

Parsing a feed and extracting an article are CPU-bound and run on what publishers send,
which can be crafted to take minutes (a quadratic regex, a pathological page). Each job
runs in a spawned process owned by one slot and talked to over its own pipe; a job that
overruns its budget is abandoned and only ITS worker is killed and replaced, while jobs in
other workers go on undisturbed. Jobs are a top-level function and its arguments, so one
pool serves extraction and parsing alike.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from monitor.errors import NewsmonError

T = TypeVar("T")
STARTUP_TIMEOUT = 60.0  # a spawned worker imports its libraries before its first job


class WorkerLost(NewsmonError):
    """The worker died or could not start (a crash, an OOM kill); it has been replaced."""


class JobFailed(NewsmonError):
    """The job's function raised something that is not one of newsmon's own errors; the
    message is that exception's class name."""


def _serve(conn: Connection, warm_up: Callable[[], object] | None) -> None:
    """A worker's loop: warm up, say ready, then run one job at a time until EOF.

    newsmon's own errors travel back as they are (a ParseError stays a ParseError); any
    other exception is a bug or a library failure on one input, reported by name.
    """
    if warm_up is not None:
        warm_up()
    conn.send(True)
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", function(*args))
        except NewsmonError as e:
            answer = ("raise", e)
        except Exception as e:
            answer = ("failed", f"{type(e).__name__}")
        conn.send(answer)


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection


class WorkerPool:
    """``workers`` processes (0: one per core), started on first use; ``warm_up`` runs in
    each before its first job (importing heavy libraries off any job's budget)."""

    def __init__(self, *, workers: int, warm_up: Callable[[], object] | None = None) -> None:
        self._warm_up = warm_up
        self._context = multiprocessing.get_context("spawn")  # fork would copy aiosqlite's
        count = workers or max(1, os.cpu_count() or 1)  # thread mid-lock
        self._slots: list[_Worker | None] = [None] * count
        self._idle: asyncio.Queue[int] | None = None

    async def run(self, budget: float, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker. Raises TimeoutError past ``budget`` seconds,
        WorkerLost, JobFailed, or the NewsmonError the function raised."""
        if self._idle is None:
            self._idle = asyncio.Queue()
            for slot in range(len(self._slots)):
                self._idle.put_nowait(slot)
        slot = await self._idle.get()
        try:
            kind, value = await self._job(slot, budget, function, args)
        except BaseException:
            self._discard(slot)  # stuck, dead, or cancelled mid-job: its late answer
            raise  # must not reach the next job
        finally:
            self._idle.put_nowait(slot)
        if kind == "raise" and isinstance(value, NewsmonError):
            raise value
        if kind == "failed":
            raise JobFailed(str(value))
        result: T = value
        return result

    async def _job(
        self, slot: int, budget: float, function: Callable[..., Any], args: tuple[object, ...]
    ) -> tuple[str, Any]:
        worker = self._slots[slot]
        if worker is None:
            worker = self._slots[slot] = self._start()
            try:
                ready = await self._receive(worker, STARTUP_TIMEOUT)
            except TimeoutError:
                ready = None
            if ready is not True:
                raise WorkerLost("worker failed to start")
        try:
            worker.conn.send((function, args))
        except (OSError, ValueError) as e:
            raise WorkerLost("worker died") from e
        answer = await self._receive(worker, budget)
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise WorkerLost("worker answered nonsense")
        return answer

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, self._warm_up), name="newsmon-worker", daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    async def _receive(self, worker: _Worker, budget: float) -> object:
        """The worker's next message, waiting on its pipe without blocking the loop."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = worker.conn.fileno()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            async with asyncio.timeout(budget):
                await readable
        finally:
            loop.remove_reader(fd)
        try:
            return worker.conn.recv()
        except (EOFError, OSError) as e:  # the worker died: a crash, an OOM kill
            raise WorkerLost("worker died") from e

    def _discard(self, slot: int) -> None:
        """Kill one worker; its slot starts a fresh one next time."""
        worker, self._slots[slot] = self._slots[slot], None
        if worker is not None:
            worker.conn.close()
            worker.process.kill()
            worker.process.join()  # SIGKILL cannot be ignored: this reaps it at once

    def close(self) -> None:
        """Stop every worker and wait for each to exit; nothing is left running."""
        for slot in range(len(self._slots)):
            self._discard(slot)
