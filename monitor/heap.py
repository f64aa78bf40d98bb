"""glibc's allocator, told to hand freed memory back to the system (docs/performance.md,
memory). Both are no-ops on a C library without these calls."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

M_MMAP_THRESHOLD = -3  # mallopt's parameters, from glibc's malloc.h
M_ARENA_MAX = -8
LARGE = 128 * 1024  # glibc's own starting threshold
# unmap_large_blocks for a process started with it, from its first allocation on
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(LARGE)}


def unmap_large_blocks() -> None:
    """Give every block of LARGE bytes or more (a fetched page, its pickle for a worker, a
    big list) a mapping of its own, unmapped when it is freed. By default glibc raises
    this threshold to the largest block freed so far (up to 32 MB), after which such
    blocks come from the heap, where what they leave when freed stays resident below
    the blocks still in use. It holds for the whole process, threads included, and for
    its forks; called first thing, it also spares the heap the watchlist's compilation.
    python -m bench --only memory: the PSS sum 207 -> 191-197 MB."""
    _mallopt(M_MMAP_THRESHOLD, LARGE)


def one_arena() -> None:
    """One malloc arena for every thread of the process. By default glibc gives each
    thread that allocates an arena of its own (up to 8 per core), and what the database
    thread (SQLite's pages, result rows) and the resolver's threads free there stays
    resident beside the main heap. The GIL keeps threads from allocating at the same
    moment most of the time, so the shared lock costs little. Only in a process with no
    other thread yet (the CLI's start): one whose threads already have arenas (a test
    calling the CLI in-process) keeps the allocator it started with.
    python -m bench --only memory: the PSS sum 193, 198 -> 187, 188 MB."""
    if threading.active_count() == 1:
        _mallopt(M_ARENA_MAX, 1)


def trimmer() -> Callable[[int], object]:
    """glibc's ``malloc_trim``, which hands back the heap's free pages, even below blocks
    still in use: without it they stay resident (lxml's trees, trafilatura's copies of
    them), and an extraction worker grew from 75 to 105 MB over 300 corpus pages."""
    trim: Callable[[int], object] | None = getattr(_libc(), "malloc_trim", None)
    return trim or (lambda pad: None)


def _mallopt(parameter: int, value: int) -> None:
    mallopt: Callable[[int, int], int] | None = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(parameter, value)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)
