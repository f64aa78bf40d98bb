"""A pool of worker processes for CPU-bound work on untrusted input, under a time budget.

Parsing a feed and extracting an article are CPU-bound and run on what publishers send,
which can be crafted to take minutes (a quadratic regex, a pathological page). Each job
runs in a worker process owned by one slot and talked to over its own pipe; a job that
overruns its budget is abandoned and only ITS worker is killed and replaced, while jobs in
other workers go on undisturbed. Jobs are a top-level function and its arguments, so a
pool serves extraction and parsing alike.

Workers are forked from a zygote (``monitor.worker_process``): a fresh interpreter
(``python -c worker_process.BOOT``) that runs the warm-ups, so that the workers share
what they loaded (docs/performance.md, memory). Not a multiprocessing ``spawn``, which
re-imports the parent's main module (for the ``newsmon`` script, the CLI and the whole
daemon) into every worker and starts a resource-tracker process besides; not a fork of
the daemon, which would copy aiosqlite's thread mid-lock. Workers start on demand; a
heavy library is loaded only once a job needs it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle
from typing import Any, TypeVar

from monitor import heap
from monitor.errors import NewsmonError
from monitor.worker_process import BOOT, FORK

T = TypeVar("T")
STARTUP_TIMEOUT = 60.0  # the zygote imports libraries (trafilatura: about 1.3 s) before a fork
KILL_WAIT = 5.0  # seconds a killed worker gets to be gone; SIGKILL takes milliseconds


class WorkerLost(NewsmonError):
    """The worker died or could not start (a crash, an OOM kill); it has been replaced."""


class JobFailed(NewsmonError):
    """The job's function raised something that is not one of newsmon's own errors; the
    message is that exception's class name."""


@dataclass(slots=True)
class _Worker:
    pid: int
    pidfd: int  # the worker is the zygote's child, not ours: it is signalled through this
    conn: Connection
    generation: int  # renew() retires the workers of earlier generations
    warmed: frozenset[Callable[[], object]]  # the zygote's warm-ups when it forked this one


@dataclass(slots=True)
class _Zygote:
    process: subprocess.Popen[bytes]
    conn: Connection
    warmed: set[Callable[[], object]] = field(default_factory=set)


class WorkerPool:
    """``workers`` processes (0: one per core), each started when a job first needs it;
    ``warm_up`` runs first in the zygote they are forked from (importing libraries once,
    off every job's budget)."""

    def __init__(self, *, workers: int, warm_up: Callable[[], object] | None = None) -> None:
        self._warm_up = warm_up
        self._slots: list[_Worker | None] = [None] * (workers or max(1, os.cpu_count() or 1))
        # the last used first: under a light load one worker takes the jobs (and loads
        # what they need) while the others stay unstarted or lean
        self._free: asyncio.LifoQueue[int] | None = None
        self._busy: set[int] = set()
        self._generation = 0
        self._zygote: _Zygote | None = None
        self._forking = asyncio.Lock()

    async def run(
        self,
        budget: float,
        function: Callable[..., T],
        *args: object,
        warm_up: Callable[[], object] | None = None,
    ) -> T:
        """``function(*args)`` in a worker. Raises TimeoutError past ``budget`` seconds,
        WorkerLost, JobFailed, or the NewsmonError the function raised.

        ``warm_up`` runs first (off the budget) in the zygote, and the job goes to a worker
        forked after it: a heavy library (trafilatura) is loaded only once a job needs it,
        and once for all the workers.
        """
        if self._free is None:
            self._free = asyncio.LifoQueue()
            for slot in reversed(range(len(self._slots))):
                self._free.put_nowait(slot)
        slot = await self._free.get()
        self._busy.add(slot)
        spent = False
        try:
            kind, value, spent = await self._job(slot, budget, function, args, warm_up)
        except BaseException:
            self._discard(slot)  # stuck, dead, or cancelled mid-job: its late answer
            raise  # must not reach the next job
        finally:
            self._busy.discard(slot)
            worker = self._slots[slot]
            if worker is not None and (spent or worker.generation != self._generation):
                self._discard(slot)  # grown past its bound, or renewed while it worked
            self._free.put_nowait(slot)
        if kind == "raise" and isinstance(value, NewsmonError):
            raise value
        if kind == "failed":
            raise JobFailed(str(value))
        result: T = value
        return result

    def renew(self) -> None:
        """Replace every worker with a fresh one, holding nothing earlier jobs loaded: the
        idle ones stop now (their memory is freed at once), the busy ones after their job,
        and the zygote, which holds what the warm-ups loaded; the next job starts anew."""
        self._generation += 1
        for slot in set(range(len(self._slots))) - self._busy:
            self._discard(slot)
        self._stop_zygote()

    async def _job(
        self,
        slot: int,
        budget: float,
        function: Callable[..., Any],
        args: tuple[object, ...],
        warm_up: Callable[[], object] | None,
    ) -> tuple[str, Any, bool]:
        worker = self._slots[slot]
        if worker is not None and warm_up is not None and warm_up not in worker.warmed:
            self._discard(slot)  # forked before that warm-up: a new fork shares it
            worker = None
        if worker is None:
            worker = self._slots[slot] = await self._fork(warm_up)
        return await self._call(worker, budget, function, args)

    async def _fork(self, warm_up: Callable[[], object] | None) -> _Worker:
        """A worker forked from the zygote (started if need be) once it has run
        ``warm_up``. Raises WorkerLost."""
        async with self._forking:
            zygote = self._zygote or await self._start_zygote()
            if warm_up is not None and warm_up not in zygote.warmed:
                if await self._ask(zygote, warm_up) is not True:
                    self._stop_zygote()  # a warm-up that failed halfway may leave it broken
                    raise WorkerLost("worker failed to warm up")
                zygote.warmed.add(warm_up)
            ours, theirs = multiprocessing.Pipe()
            try:
                pid = await self._ask(zygote, FORK, theirs.fileno())
            finally:
                theirs.close()
            try:
                if type(pid) is not int:
                    raise WorkerLost("worker failed to start")
                pidfd = os.pidfd_open(pid)
            except (OSError, WorkerLost) as e:  # the zygote is gone, or the worker already
                ours.close()
                self._stop_zygote()
                raise WorkerLost("worker failed to start") from e
            return _Worker(pid, pidfd, ours, self._generation, frozenset(zygote.warmed))

    async def _start_zygote(self) -> _Zygote:
        """The zygote, started and past the pool's warm-up."""
        zygote = self._zygote = self._spawn()
        if self._warm_up is not None:
            if await self._ask(zygote, self._warm_up) is not True:
                self._stop_zygote()
                raise WorkerLost("worker failed to start")
            zygote.warmed.add(self._warm_up)
        return zygote

    def _spawn(self) -> _Zygote:
        """A fresh interpreter on one end of a socket pair, sent sys.path."""
        ours, theirs = multiprocessing.Pipe()
        fd = theirs.fileno()
        try:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and code)
                [sys.executable, "-c", BOOT, str(fd)], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                env=os.environ | heap.ENVIRONMENT,  # for the zygote and every worker it forks
            )  # fmt: skip
        except OSError as e:
            ours.close()
            raise WorkerLost("worker failed to start") from e
        finally:
            theirs.close()
        with suppress(OSError):  # it died at once: its first answer says so
            ours.send(sys.path)
        return _Zygote(process, ours)

    async def _ask(self, zygote: _Zygote, request: object, *fds: int) -> object:
        """Send the zygote a request (and sockets), and return its answer; None if it
        died or did not answer in time."""
        try:
            zygote.conn.send(request)
            for fd in fds:
                send_handle(zygote.conn, fd, zygote.process.pid)
            return await self._receive(zygote.conn, STARTUP_TIMEOUT)
        except (OSError, ValueError, TimeoutError, WorkerLost):
            self._stop_zygote()
            return None

    async def _call(
        self, worker: _Worker, budget: float, function: Callable[..., Any], args: tuple[object, ...]
    ) -> tuple[str, Any, bool]:
        """The worker's answer: how the job ended, its result, and whether the worker is
        spent (grown past its bound: replaced after this job)."""
        try:
            worker.conn.send((function, args))
        except (OSError, ValueError) as e:
            raise WorkerLost("worker died") from e
        answer = await self._receive(worker.conn, budget)
        if not (isinstance(answer, tuple) and len(answer) == 3):
            raise WorkerLost("worker answered nonsense")
        return answer

    async def _receive(self, conn: Connection, budget: float) -> object:
        """The next message on a worker's or the zygote's pipe, waited for without
        blocking the loop."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = conn.fileno()

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
            return conn.recv()
        except (EOFError, OSError) as e:  # the worker died: a crash, an OOM kill
            raise WorkerLost("worker died") from e

    def _discard(self, slot: int) -> None:
        """Kill one worker; its slot forks a fresh one next time."""
        worker, self._slots[slot] = self._slots[slot], None
        if worker is not None:
            worker.conn.close()
            _kill(worker.pidfd)

    def _stop_zygote(self) -> None:
        """Stop the zygote (the workers it forked live on); the next fork starts one."""
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.conn.close()
            zygote.process.kill()
            zygote.process.wait()  # SIGKILL cannot be ignored: this reaps it at once

    def close(self) -> None:
        """Stop every worker and the zygote and wait for each to exit; nothing is left
        running."""
        for slot in range(len(self._slots)):
            self._discard(slot)
        self._stop_zygote()


def _kill(pidfd: int) -> None:
    """SIGKILL the process and wait until it is gone. It is not our child (the zygote,
    which ignores SIGCHLD, has the kernel reap it), so there is no wait(): the pidfd
    answers ESRCH once the process no longer exists."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline:
            signal.pidfd_send_signal(pidfd, 0)
            time.sleep(0.001)
    except ProcessLookupError:
        pass  # gone
    finally:
        os.close(pidfd)
