"""Whether the compiled fast path of matching (monitor/rules/_speedups.c) is used.

The one place that decides: normalize.py, plan.py, snippet.py and index.py take their hot
functions from ``_speedups`` when ``COMPILED`` is true, and otherwise run their own
pure-Python forms, which give identical results (tests/test_rules_native.py; only the
compiled split packs each word's offsets, which the fallback derives when asked).
``pip install`` builds the extension where a C compiler is present;
``NEWSMON_PURE_PYTHON=1`` ignores it, so that the test suite can prove the fallback too.
"""

from __future__ import annotations

from monitor.native import compiled

COMPILED = compiled("monitor.rules._speedups", needs=("Matcher",))
