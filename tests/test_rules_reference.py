"""The compiled index agrees with a naive evaluator that walks the AST over every token."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.errors import RuleCompileError
from monitor.models import Document
from monitor.rules import compile_rules
from monitor.rules import syntax as q
from monitor.rules.inflect import forms
from monitor.rules.normalize import Tokens, tokenize

ENTITIES = {"ru": ["Russia", "Russian Federation", "Moscow"], "us": ["'US'", "U.S."]}
FORMS = {name: [q.parse_form(f) for f in fs] for name, fs in ENTITIES.items()}
VOCAB = [
    "embassy",
    "embassies",
    "Embassy",
    "sanction",
    "sanctioned",
    "us",
    "US",
    "U.S.",
    "Russia",
    "Russia's",
    "Russian",
    "Prussia",
    "Federation",
    "Moscow",
    "talks",
    "the",
    ".",
    "said",
]
KEYS = ["embassy", "sanction", "us", "russia", "russian", "federation", "talks", "the"]
Span = tuple[int, int, int]


def naive(node: q.Node, fields: list[Tokens], allowed: frozenset[int]) -> bool:
    """Truth of ``node`` straight from the definitions in docs/rules.md."""
    if isinstance(node, q.And):
        return all(naive(item, fields, allowed) for item in node.items)
    if isinstance(node, q.Or) and not q.is_positional(node):
        return any(naive(item, fields, allowed) for item in node.items)
    if isinstance(node, q.Not):
        return not naive(node.item, fields, allowed)
    if isinstance(node, q.Scope) and not q.is_positional(node):
        return naive(node.item, fields, allowed & {q.FIELDS.index(node.field)})
    if isinstance(node, q.AtLeast):
        return leftmost_longest_count(places(node.item, fields, allowed)) >= node.count
    return bool(places(node, fields, allowed))


def places(node: q.Node, fields: list[Tokens], allowed: frozenset[int]) -> set[Span]:
    """Every (field, first, last) where a positional node matches."""
    if isinstance(node, q.Scope):
        return places(node.item, fields, allowed & {q.FIELDS.index(node.field)})
    if isinstance(node, q.Or):
        return {s for item in node.items for s in places(item, fields, allowed)}
    if isinstance(node, q.EntityRef):
        return {s for form in FORMS[node.name] for s in places(form, fields, allowed)}
    if isinstance(node, q.Near):
        lefts, rights = places(node.left, fields, allowed), places(node.right, fields, allowed)
        pairs = {(a, b) for a in lefts for b in rights if near(node, fields, a, b)}
        return {
            (a[0], min(a[1], b[1]), max(a[2], b[2]))
            for a, b in pairs
            if closest(b, {y for x, y in pairs if x == a}, a)
            or closest(a, {x for x, y in pairs if y == b}, b)
        }
    out = set()
    for f in allowed:
        tokens = fields[f]
        for i in range(len(tokens)):
            width = match_at(node, tokens, i)
            if width:
                out.add((f, i, i + width - 1))
    return out


def near(node: q.Near, fields: list[Tokens], a: Span, b: Span) -> bool:
    """Whether ``a`` and ``b`` may pair: one field, no word shared, close enough."""
    (fa, a1, a2), (fb, b1, b2) = a, b
    if fa != fb or not (a2 < b1 or b2 < a1):
        return False
    if node.distance is None:
        sentence = fields[fa].sentence
        return sentence[min(a1, b1)] == sentence[max(a2, b2)]
    return max(b1 - a2, a1 - b2) <= node.distance


def closest(y: Span, partners: set[Span], x: Span) -> bool:
    """Whether ``y`` is, among ``x``'s partners on its side of ``x``, the one ending first
    (after ``x``) or starting last (before it): a NEAR's places are only those pairs."""
    if y[1] > x[2]:
        return y[2] == min(p[2] for p in partners if p[1] > x[2])
    return y[1] == max(p[1] for p in partners if p[2] < x[1])


def match_at(node: q.Node, tokens: Tokens, i: int) -> int:
    """How many words ``node`` (a single term) covers starting at word ``i``; 0 if none."""
    if isinstance(node, q.Word):
        return int(tokens.folded[i] in forms(node.key))
    if isinstance(node, q.Prefix):
        return int(tokens.folded[i].startswith(node.stem))
    assert isinstance(node, q.Phrase | q.Exact)
    keys = tokens.exact if isinstance(node, q.Exact) else tokens.folded
    words = list(node.words)
    if keys[i : i + len(words)] != words:
        return 0
    return len(words) if tokens.sentence[i] == tokens.sentence[i + len(words) - 1] else 0


def leftmost_longest_count(spans: set[Span]) -> int:
    count, at = 0, (-1, -1)
    for f, first, last in sorted(spans, key=lambda s: (s[0], s[1], -s[2])):
        if (f, first) > at:
            count, at = count + 1, (f, last)
    return count


terms = st.one_of(
    st.sampled_from(KEYS).map(q.Word),
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(lambda w: q.Phrase(tuple(w))),
    st.sampled_from([("US",), ("Russia",), ("U.S.",)]).map(q.Exact),
    st.sampled_from(["emb", "sanc", "rus"]).map(q.Prefix),
    st.sampled_from(sorted(ENTITIES)).map(q.EntityRef),
)
positional = st.recursive(
    terms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: q.Or(tuple(items))),
        st.tuples(inner, inner, st.sampled_from([1, 2, 3, None])).map(lambda t: q.Near(*t)),
        st.tuples(st.sampled_from(q.FIELDS), inner).map(lambda t: q.Scope(*t)),
    ),
    max_leaves=4,
)
queries = st.recursive(
    st.one_of(positional, st.tuples(st.integers(1, 3), positional).map(lambda t: q.AtLeast(*t))),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: q.And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: q.Or(tuple(items))),
        inner.map(q.Not),
        st.tuples(st.sampled_from(q.FIELDS), inner).map(lambda t: q.Scope(*t)),
    ),
    max_leaves=6,
)
texts = st.lists(st.sampled_from(VOCAB), max_size=12).map(" ".join)


@settings(max_examples=300, derandomize=True)
@given(queries, texts, texts, texts)
def test_index_agrees_with_naive_evaluator(
    node: q.Node, title: str, summary: str, body: str
) -> None:
    """For random rules and texts, the index matches exactly when the naive evaluator does."""
    text = q.unparse(node)
    try:
        index = compile_rules({"r": text}, ENTITIES)
    except RuleCompileError:
        assume(False)  # a field scope inside another field: rejected by design
        return
    root = q.parse_query(index.rules["r"].text).root
    fields = [tokenize(t) for t in (title, summary, body)]
    expected = naive(root, fields, frozenset(range(3)))
    assert bool(index.match(Document(title, summary, body))) is expected
