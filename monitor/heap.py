"""glibc's allocator, told to hand freed memory back to the system (docs/performance.md,
memory). Both are no-ops on a C library without these calls."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

M_MMAP_THRESHOLD = -3  # mallopt's parameter, from glibc's malloc.h
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
    mallopt: Callable[[int, int], int] | None = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGE)


def trimmer() -> Callable[[int], object]:
    """glibc's ``malloc_trim``, which hands back the heap's free pages, even below blocks
    still in use: without it they stay resident (lxml's trees, trafilatura's copies of
    them), and an extraction worker grew from 75 to 105 MB over 300 corpus pages."""
    trim: Callable[[int], object] | None = getattr(_libc(), "malloc_trim", None)
    return trim or (lambda pad: None)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)
