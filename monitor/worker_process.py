"""The inside of one worker process: run jobs sent over a pipe, one at a time, until EOF.

Kept apart from ``monitor.workers`` so a worker imports only this, the standard library's
pipe and whatever the jobs themselves need (``spawn`` re-imported the daemon's whole main
module into every worker: aiohttp, APScheduler, the CLI; docs/performance.md, memory).
"""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from monitor.errors import NewsmonError

# Run as ``python -c BOOT FD``: the parent's sys.path comes first over the pipe, so the
# worker imports the same ``monitor`` (and tests' job modules) as the daemon does.
BOOT = (
    "import sys; from multiprocessing.connection import Connection; "
    "conn = Connection(int(sys.argv[1])); sys.path[:] = conn.recv(); "
    "from monitor.worker_process import serve; serve(conn)"
)


def _heap_trimmer() -> Callable[[int], object]:
    """glibc's ``malloc_trim``, which hands the pages a job freed back to the system:
    without it they stay resident (lxml's trees, trafilatura's copies of them), and an
    extraction worker grew from 75 to 105 MB over 300 corpus pages (docs/performance.md,
    memory). A no-op on a C library without it."""
    trim: Callable[[int], object] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)
    return trim or (lambda pad: None)


def serve(conn: Connection) -> None:
    """Receive the warm-up, run it, say ready, then answer jobs until the pipe closes.

    newsmon's own errors travel back as they are (a ParseError stays a ParseError); any
    other exception is a bug or a library failure on one input, reported by name.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's; it stops us
    trim = _heap_trimmer()
    try:
        warm_up = conn.recv()
        if warm_up is not None:
            warm_up()
        conn.send(True)
        while True:
            function, args = conn.recv()
            try:
                answer: tuple[str, Any] = ("ok", function(*args))
            except NewsmonError as e:
                answer = ("raise", e)
            except Exception as e:
                answer = ("failed", f"{type(e).__name__}")
            conn.send(answer)
            trim(0)  # after the answer: 0.1-1 ms, off the job's time
    except (EOFError, OSError):  # the daemon closed our pipe, or is gone
        return
