"""Jobs for WorkerPool tests; top-level so a worker process can import them."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path


def loaded_modules() -> dict[str, object]:
    """The names of the modules the worker has imported, and its main module's file."""
    return {
        "modules": sorted(sys.modules),
        "main": getattr(sys.modules["__main__"], "__file__", None),
    }


WARMED = 0  # in a worker: how often mark_warm ran there


def mark_warm() -> None:
    global WARMED
    WARMED += 1


def times_warmed() -> int:
    return WARMED


def broken_warm_up() -> None:
    raise RuntimeError("scripted warm-up failure")


def public_suffixes_loaded() -> bool:
    """Whether tld's public suffix list, which courlan reads for a host its own pattern
    does not, is loaded in this process."""
    from tld.utils import tld_names

    return bool(tld_names)


KEPT: list[bytes] = []  # in a worker: blocks that outlive the job that made them


def resident(pid: int | str = "self") -> int:
    """A process's resident set (this one's unless told), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS in /proc/{pid}/status")


def fragment_heap(megabytes: int) -> int:
    """Allocates ``megabytes`` of 1 KB blocks (malloc's, not pymalloc's), keeps one made
    after them and frees the rest: the freed pages lie below a live block, where glibc
    keeps them resident until malloc_trim. Returns the resident set before the free."""
    blocks = [bytes(1024) for _ in range(megabytes * 1024)]
    KEPT.append(bytes(1024))
    before = resident()
    del blocks
    return before


def freed_large_blocks(megabytes: int) -> int:
    """Frees an 8 MB block, then makes ``megabytes`` of 256 KB blocks, keeps one more made
    after them and frees the others: returns how many bytes left the resident set at that
    free. glibc's default raises its mmap threshold to 8 MB at that free, so the
    256 KB blocks come from the heap and stay resident below the kept one."""
    big = b"x" * (8 * 2**20)
    del big
    blocks = [b"x" * (256 * 1024) for _ in range(megabytes * 4)]
    KEPT.append(b"x" * (256 * 1024))
    before = resident()
    del blocks
    return before - resident()


def arenas_with_threads(threads: int) -> int:
    """How many malloc arenas (glibc's malloc_info ``<heap>`` elements) there are once
    ``threads`` threads, alive at once, have each allocated a block."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.open_memstream.restype = ctypes.c_void_p
    started, hold = threading.Barrier(threads + 1), threading.Event()

    def allocate() -> None:
        libc.malloc(4096)  # kept: the thread's arena stays in use
        started.wait()
        hold.wait()

    workers = [threading.Thread(target=allocate) for _ in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    text, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(text), ctypes.byref(size))
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    hold.set()
    for worker in workers:
        worker.join()
    return (text.value or b"").count(b"<heap nr=")


BALLAST: list[bytes] = []  # in the zygote and the workers forked after load_ballast


def load_ballast() -> None:
    """A warm-up that makes 64 MB of written (so resident) memory no job writes to."""
    BALLAST.append(b"x" * (64 * 2**20))


def rss_and_pss() -> tuple[int, int]:
    """This process's resident and proportional set sizes, in bytes: a page shared with n
    processes counts whole in the first, 1/n in the second."""
    sizes = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            sizes[name] = int(rest.split()[0]) * 1024
    return sizes["Rss"], sizes["Pss"]


def keep(size: int) -> int:
    """Keeps ``size`` bytes of written memory in this worker; returns its pid."""
    KEPT.append(b"x" * size)
    return os.getpid()
