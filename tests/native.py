"""The compiled extensions as their tests reach them: compared wherever they are built,
required where CI says so."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

# CI sets it so that an extension that failed to build (which an optional extension
# only warns about) fails the suite instead of skipping its tests (.ci/run).
REQUIRE_NATIVE_ENV = "NEWSMON_REQUIRE_NATIVE"


def required(module: str, compiled: bool) -> ModuleType:
    """The extension ``module``, which must be built and used (``compiled``) under
    NEWSMON_REQUIRE_NATIVE=1; skips the test elsewhere."""
    if os.environ.get(REQUIRE_NATIVE_ENV) != "1":
        pytest.skip(f"{REQUIRE_NATIVE_ENV} is not set")
    assert compiled, f"the C extension {module} did not load"
    return importlib.import_module(module)  # fails, never skips, when not built
