"""Rules: the query language, entity tables and the compiled matcher.

The daemon depends on exactly this surface: ``parse_query``, ``compile_rules`` and the
``RuleIndex`` they build (``match``, ``explain``), plus ``render_explanation`` for the CLI.
See docs/rules.md for the language.
"""

from __future__ import annotations

from monitor.errors import QueryError, RuleCompileError
from monitor.rules.explain import Explanation, Failure, render_explanation
from monitor.rules.index import RuleIndex, compile_rules
from monitor.rules.syntax import Query, parse_query

__all__ = [
    "Explanation",
    "Failure",
    "Query",
    "QueryError",
    "RuleCompileError",
    "RuleIndex",
    "compile_rules",
    "parse_query",
    "render_explanation",
]
