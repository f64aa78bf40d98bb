"""The inside of the worker processes: the zygote they are forked from, and the job loop
each worker runs, one job at a time, until its pipe closes.

Kept apart from ``monitor.workers`` so these processes import only this, the standard
library's pipe and whatever the jobs themselves need (``spawn`` re-imported the daemon's
whole main module into every worker: aiohttp, APScheduler, the CLI; docs/performance.md,
memory).

The zygote is a fresh interpreter that runs the warm-ups (the parser's imports;
trafilatura's, with its first page, once a page needs it) and forks the workers, so
every worker forked after a warm-up shares what it loaded instead of holding its own copy
(trafilatura and justext's stop lists, about 60 MB). The zygote runs no job and no
thread, so it forks from a clean state.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle
from typing import NoReturn

from monitor import heap
from monitor.errors import NewsmonError

# Run as ``python -c BOOT FD``: the parent's sys.path comes first over the pipe, so the
# zygote imports the same ``monitor`` (and tests' job modules) as the daemon does.
BOOT = (
    "import sys; from multiprocessing.connection import Connection; "
    "conn = Connection(int(sys.argv[1])); sys.path[:] = conn.recv(); "
    "from monitor.worker_process import zygote; zygote(conn)"
)
FORK = "fork"  # asks the zygote for a worker on the socket sent after it
# A worker whose resident set grew by more than this since its fork (what libraries load
# on demand, heap it could not hand back) asks to be replaced: a fresh fork shares nearly
# everything with the zygote, and costs milliseconds. An extraction worker's heap grew
# about 2 MB over 96 corpus pages (its resident set 3 MB more: library code first run),
# and 5-8 MB at once where a page's date needed dateparser; 6 MB rather than 8 took
# 3-14 MB off the memory scenario's peak (docs/performance.md, memory).
GROWTH = 6 * 2**20
# The heap's freed pages are handed back (malloc_trim) after every so many jobs, and
# after any job that leaves the worker past SWOLLEN: handed back after every job, each
# next job faulted them in again, 1.3-1.7 ms of system time on a 25-30 ms page, where
# the worker's peak is what one job needs either way (docs/performance.md).
TRIM_EVERY = 8
SWOLLEN = 32 * 2**20
IDLE = 1.0  # seconds without a job after which what the last jobs freed is handed back


def zygote(conn: Connection) -> None:
    """Answer the daemon until the pipe closes: a warm-up (a callable) is run and answered
    True, or with the name of what it raised; FORK, then a socket, forks a worker that
    serves jobs on that socket, answered with the worker's pid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's; it stops us
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers that end
    try:
        while True:
            request = conn.recv()
            if request != FORK:
                conn.send(_warm(request))
                continue
            fd = recv_handle(conn)
            pid = os.fork()
            if pid == 0:
                conn.close()
                _worker(Connection(fd))
            os.close(fd)
            conn.send(pid)
    except (EOFError, OSError):  # the daemon closed our pipe, or is gone
        return


def _warm(warm_up: Callable[[], object]) -> object:
    try:
        warm_up()
    except Exception as e:
        return type(e).__name__
    # Out of the collector's reach, so no collection in a worker writes to (and so
    # copies) the pages of what the warm-up made.
    gc.freeze()
    # What the warm-up freed (its first page's trees) back to the system: left resident,
    # it stayed in the zygote while every worker refilled it with pages of its own;
    # 7-10 MB off the zygote and two workers over 300 corpus pages (docs/performance.md).
    heap.trimmer()(0)
    return True


def _worker(conn: Connection) -> NoReturn:
    """A forked worker: serve jobs, then exit without running the zygote's own code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a job may wait for a child of its own
    code = 1
    try:
        serve(conn)
        code = 0
    finally:
        os._exit(code)


def _resident() -> int:
    """This process's resident set, in bytes (statm: no walk of the page tables)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def serve(conn: Connection) -> None:
    """Answer jobs until the pipe closes: how each ended, its result or error, and
    whether this worker has grown past GROWTH and should be replaced (known once the
    freed heap is handed back: every TRIM_EVERY jobs, at once past SWOLLEN, and after
    IDLE seconds without a job, so that a worker waiting for work holds none of it).

    newsmon's own errors travel back as they are (a ParseError stays a ParseError); any
    other exception is a bug or a library failure on one input, reported by name.
    """
    trim = heap.trimmer()
    start = _resident()
    untrimmed = 0  # jobs since the heap was last handed back
    spent = False

    def hand_back() -> None:
        nonlocal untrimmed, spent
        trim(0)
        untrimmed = 0
        spent = _resident() - start > GROWTH

    try:
        while True:
            if untrimmed and not conn.poll(IDLE):
                hand_back()  # said with the next answer
            function, args = conn.recv()
            try:
                kind, value = "ok", function(*args)
            except NewsmonError as e:
                kind, value = "raise", e
            except Exception as e:
                kind, value = "failed", f"{type(e).__name__}"
            untrimmed += 1
            if untrimmed == TRIM_EVERY or _resident() - start > SWOLLEN:
                hand_back()  # before the answer, which says how much is left resident
            conn.send((kind, value, spent))
    except (EOFError, OSError):  # the daemon closed our pipe, or is gone
        return
