"""A pool of worker processes for CPU-bound work on untrusted input, under a time budget.

Parsing a feed and extracting an article are CPU-bound and run on what publishers send,
which can be crafted to take minutes (a quadratic regex, a pathological page). Each job
runs in a worker process owned by one slot and talked to over its own pipe; a job that
overruns its budget is abandoned and only ITS worker is killed and replaced, while jobs in
other workers go on undisturbed. Jobs are a top-level function and its arguments, so a
pool serves extraction and parsing alike.

A worker is a fresh interpreter (``python -c worker_process.BOOT``), not a
multiprocessing ``spawn``: that re-imports the parent's main module (for the ``newsmon``
script, the CLI and the whole daemon) into every worker and starts a resource-tracker
process besides; fork would copy aiosqlite's thread mid-lock. Workers start on demand and
load a heavy library only for the first job that needs it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from monitor.errors import NewsmonError
from monitor.worker_process import BOOT

T = TypeVar("T")
STARTUP_TIMEOUT = 60.0  # a new worker imports its libraries before its first job


class WorkerLost(NewsmonError):
    """The worker died or could not start (a crash, an OOM kill); it has been replaced."""


class JobFailed(NewsmonError):
    """The job's function raised something that is not one of newsmon's own errors; the
    message is that exception's class name."""


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    generation: int  # renew() retires the workers of earlier generations
    warmed: set[Callable[[], object]] = field(default_factory=set)  # jobs' warm-ups run here


class WorkerPool:
    """``workers`` processes (0: one per core), each started when a job first needs it;
    ``warm_up`` runs in each before its first job (importing libraries off its budget)."""

    def __init__(self, *, workers: int, warm_up: Callable[[], object] | None = None) -> None:
        self._warm_up = warm_up
        self._slots: list[_Worker | None] = [None] * (workers or max(1, os.cpu_count() or 1))
        # the last used first: under a light load one worker takes the jobs (and loads
        # what they need) while the others stay unstarted or lean
        self._free: asyncio.LifoQueue[int] | None = None
        self._busy: set[int] = set()
        self._generation = 0

    async def run(
        self,
        budget: float,
        function: Callable[..., T],
        *args: object,
        warm_up: Callable[[], object] | None = None,
    ) -> T:
        """``function(*args)`` in a worker. Raises TimeoutError past ``budget`` seconds,
        WorkerLost, JobFailed, or the NewsmonError the function raised.

        ``warm_up`` runs first in a worker that has not run it yet, off the budget: a
        worker loads a heavy library (trafilatura) only once a job needs it.
        """
        if self._free is None:
            self._free = asyncio.LifoQueue()
            for slot in reversed(range(len(self._slots))):
                self._free.put_nowait(slot)
        slot = await self._free.get()
        self._busy.add(slot)
        try:
            kind, value = await self._job(slot, budget, function, args, warm_up)
        except BaseException:
            self._discard(slot)  # stuck, dead, or cancelled mid-job: its late answer
            raise  # must not reach the next job
        finally:
            self._busy.discard(slot)
            worker = self._slots[slot]
            if worker is not None and worker.generation != self._generation:
                self._discard(slot)  # renewed while it worked
            self._free.put_nowait(slot)
        if kind == "raise" and isinstance(value, NewsmonError):
            raise value
        if kind == "failed":
            raise JobFailed(str(value))
        result: T = value
        return result

    def renew(self) -> None:
        """Replace every worker with a fresh one, holding nothing earlier jobs loaded: the
        idle ones stop now (their memory is freed at once), the busy ones after their job;
        the next job starts one."""
        self._generation += 1
        for slot in set(range(len(self._slots))) - self._busy:
            self._discard(slot)

    async def _job(
        self,
        slot: int,
        budget: float,
        function: Callable[..., Any],
        args: tuple[object, ...],
        warm_up: Callable[[], object] | None,
    ) -> tuple[str, Any]:
        worker = self._slots[slot]
        if worker is None:
            worker = self._slots[slot] = self._start()
            try:
                ready = await self._receive(worker, STARTUP_TIMEOUT)
            except (TimeoutError, WorkerLost):
                ready = None
            if ready is not True:
                raise WorkerLost("worker failed to start")
        if warm_up is not None and warm_up not in worker.warmed:
            try:
                warmed = await self._call(worker, STARTUP_TIMEOUT, warm_up, ())
            except TimeoutError:
                warmed = ("timeout", None)
            if warmed[0] != "ok":
                raise WorkerLost("worker failed to warm up")
            worker.warmed.add(warm_up)
        return await self._call(worker, budget, function, args)

    async def _call(
        self, worker: _Worker, budget: float, function: Callable[..., Any], args: tuple[object, ...]
    ) -> tuple[str, Any]:
        try:
            worker.conn.send((function, args))
        except (OSError, ValueError) as e:
            raise WorkerLost("worker died") from e
        answer = await self._receive(worker, budget)
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise WorkerLost("worker answered nonsense")
        return answer

    def _start(self) -> _Worker:
        """A fresh interpreter on one end of a socket pair, sent sys.path and the warm-up."""
        ours, theirs = multiprocessing.Pipe()
        fd = theirs.fileno()
        try:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and code)
                [sys.executable, "-c", BOOT, str(fd)], pass_fds=(fd,), stdin=subprocess.DEVNULL
            )
        except OSError as e:
            ours.close()
            raise WorkerLost("worker failed to start") from e
        finally:
            theirs.close()
        worker = _Worker(process, ours, self._generation)
        try:
            ours.send(sys.path)
            ours.send(self._warm_up)
        except OSError:
            pass  # it died at once: its first answer says so
        return worker

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
            worker.process.wait()  # SIGKILL cannot be ignored: this reaps it at once

    def close(self) -> None:
        """Stop every worker and wait for each to exit; nothing is left running."""
        for slot in range(len(self._slots)):
            self._discard(slot)
