"""Why a rule matched a document or not, for ``newsmon test``.

A match shows every matched word in its context; a non-match names the clause that failed
(as query text, with its column) and what was found instead, so a user can fix the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.models import Document, MatchedTerm
from monitor.rules import syntax
from monitor.rules.plan import (
    ALL_FIELDS,
    All,
    Alternatives,
    AtLeast,
    Builder,
    Near,
    Negation,
    Plan,
    Positional,
    Prefix,
    Span,
    View,
    Words,
    disjoint,
)
from monitor.rules.snippet import matched_terms

CONTEXT = 60  # characters shown on each side of a matched word


@dataclass(frozen=True, slots=True)
class Failure:
    """The innermost clause that made the rule fail, and why."""

    clause: str  # query text of the clause
    column: int  # where it starts in the rule's query (1-based)
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """A rule tried on one document. ``terms`` are the matched words, or for a non-match
    the words of the rule that were found all the same; ``contexts`` are (field, line)
    pairs with those words in [brackets]."""

    rule: str
    query: str
    matched: bool
    terms: tuple[MatchedTerm, ...]
    contexts: tuple[tuple[str, str], ...]
    failure: Failure | None


def explain(
    rule: str,
    query: syntax.Query,
    entities: Mapping[str, tuple[syntax.Phrase | syntax.Exact, ...]],
    doc: Document,
) -> Explanation:
    """Evaluate ``query`` on ``doc`` and say why it matched or which clause failed."""
    plan = Builder(entities).build(query.root)
    view = View(doc)
    spans = plan.evidence(view)
    failure = None
    if spans is None:
        spans = _found_anyway(plan, view)
        failure = _failure(plan, view)
    terms = matched_terms(view, spans)
    return Explanation(rule, query.text, failure is None, terms, _contexts(view, terms), failure)


def _found_anyway(plan: Plan, view: View) -> list[Span]:
    """Spans of the rule's words that occur, outside NOT: partial progress to show."""
    if isinstance(plan, Negation):
        return []
    if isinstance(plan, Positional):
        return plan.evidence(view) or []
    return [span for child in plan.children() for span in _found_anyway(child, view)]


def _failure(plan: Plan, view: View) -> Failure:
    """Descend into the first failing operand of an AND, NEAR or ATLEAST."""
    reason = "not found"
    if isinstance(plan, All):
        failing = next(item for item in plan.items if not item.holds(view))
        return _failure(failing, view)
    if isinstance(plan, Near):
        missing = [side for side in (plan.left, plan.right) if not side.holds(view)]
        if missing:
            return _failure(missing[0], view)
        reason = (
            "both sides found, never in the same sentence of one field"
            if plan.distance is None
            else f"both sides found, never within {plan.distance} words in one field"
        )
    elif isinstance(plan, AtLeast):
        count = len(disjoint(plan.item.occurrences(view)))
        reason = f"found {count} time{'s' if count != 1 else ''}, needs {plan.count}"
    elif isinstance(plan, Negation):
        found = matched_terms(view, plan.item.evidence(view) or [])
        reason = "found, and excluded: " + ", ".join(sorted({t.text for t in found}))
    elif isinstance(plan, Alternatives) and isinstance(plan.source, syntax.Or):
        reason = "none of these found" + _where(plan)
    elif isinstance(plan, Positional):
        reason += _where(plan)
    source = plan.source
    assert source is not None  # explain's own Builder keeps the sources
    return Failure(syntax.unparse(source), source.column, reason)


def _where(plan: Plan) -> str:
    """Where a scoped clause looked (its words may be elsewhere): " in title", or ""."""
    fields = _fields(plan)
    if fields == ALL_FIELDS:
        return ""
    return " in " + " or ".join(syntax.FIELDS[f] for f in sorted(fields))


def _fields(plan: Plan) -> frozenset[int]:
    """The fields a positional clause looks in: its words', scopes pushed into them."""
    if isinstance(plan, Words | Prefix):
        return plan.fields
    return frozenset().union(*(_fields(child) for child in plan.children()))


def _contexts(view: View, terms: tuple[MatchedTerm, ...]) -> tuple[tuple[str, str], ...]:
    """One line per cluster of nearby matched words, the words in [brackets]."""
    lines = []
    for f, name in enumerate(syntax.FIELDS):
        text = view.texts[f]
        in_field = [t for t in terms if t.field == name]
        cluster: list[MatchedTerm] = []
        for term in [*in_field, None]:
            if term is not None and (not cluster or term.start - cluster[-1].end <= 2 * CONTEXT):
                cluster.append(term)
                continue
            if cluster:
                lines.append((name, _highlight(text, cluster)))
            cluster = [term] if term is not None else []
    return tuple(lines)


def _highlight(text: str, cluster: list[MatchedTerm]) -> str:
    lo = max(0, cluster[0].start - CONTEXT)
    hi = min(len(text), cluster[-1].end + CONTEXT)
    out = ["…" if lo > 0 else ""]
    at = lo
    for term in cluster:
        if term.start < at:  # nested in a term already bracketed (a NEAR inside an entity)
            continue
        out += [text[at : term.start], "[", text[term.start : term.end], "]"]
        at = term.end
    out += [text[at:hi], "…" if hi < len(text) else ""]
    return " ".join("".join(out).split())


def render_explanation(expl: Explanation) -> str:
    """Plain-text lines for the CLI: verdict, query, failing clause, words in context."""
    lines = [
        f"rule {expl.rule}: {'MATCH' if expl.matched else 'no match'}",
        f"  query: {expl.query}",
    ]
    if expl.failure is not None:
        f = expl.failure
        lines.append(f"  failed: {f.clause} (column {f.column}): {f.reason}")
    if expl.terms:
        label = "matched" if expl.matched else "found"
        words = ", ".join(dict.fromkeys(t.text for t in expl.terms))
        lines.append(f"  {label}: {words}")
        lines += [f"  {field}: {line}" for field, line in expl.contexts]
    return "\n".join(lines)
