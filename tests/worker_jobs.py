"""Jobs for WorkerPool tests; top-level so a worker process can import them."""

from __future__ import annotations

import sys


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
