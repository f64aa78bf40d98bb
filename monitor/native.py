"""Whether a compiled fast path is used: it is built, and the environment does not refuse it.

``pip install`` builds newsmon's optional C extensions where a C compiler is present
(setup.py); each has a pure-Python form that gives identical results and is used where it
is not built. ``NEWSMON_PURE_PYTHON=1`` makes every module ignore its extension, so that
the test suite can prove the fallbacks too.
"""

from __future__ import annotations

import importlib
import os

PURE_PYTHON_ENV = "NEWSMON_PURE_PYTHON"


def compiled(module: str, needs: tuple[str, ...] = ()) -> bool:
    """Whether the extension ``module`` loads, has the names ``needs``, and
    NEWSMON_PURE_PYTHON is not ``1``.

    An extension built by an older checkout (an in-place build not redone after a pull)
    lacks what was added since: it counts as not built, rather than failing the import.
    """
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return False
    try:
        loaded = importlib.import_module(module)
    except ImportError:  # not built: no compiler at install, or a plain source checkout
        return False
    return all(hasattr(loaded, name) for name in needs)
