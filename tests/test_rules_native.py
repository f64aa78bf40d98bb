"""The compiled fast path of matching (monitor/rules/_speedups.c) gives exactly what the
pure-Python code gives, survives hostile input, and keeps no memory.

CI builds the extension and sets NEWSMON_REQUIRE_NATIVE=1, so that a build that failed
(which an optional extension only warns about) fails the suite; it then runs the rules
tests again with NEWSMON_PURE_PYTHON=1, through the fallback.
"""

from __future__ import annotations

import gc
import os
import random
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from monitor import native as monitor_native
from monitor.errors import RuleCompileError
from monitor.models import Document, MatchedTerm, RuleMatch
from monitor.native import PURE_PYTHON_ENV
from monitor.rules import compile_rules, index, native, normalize, plan, snippet
from monitor.rules import syntax as q
from tests import test_rules_reference as reference
from tests.native import required

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"


def compiled() -> ModuleType:
    """The extension, built or not: these tests compare it whatever the environment says."""
    return pytest.importorskip("monitor.rules._speedups", reason="the extension is not built")


Terms = Callable[..., tuple[MatchedTerm, ...]]


def term_maker(speedups: ModuleType) -> object:
    return speedups.TermMaker(MatchedTerm, plan.FIELDS, snippet.make_term)


# Each hot function of matching: where matching takes it from, its name in the extension
# (or what makes it from the extension), its pure-Python form.
HOT: list[tuple[ModuleType, str, str | Callable[[ModuleType], object], object]] = [
    (normalize, "_split_plain", "split_plain", normalize._split_plain_python),
    (plan, "_place", "place", plan.place_python),
    (index, "Gatherer", "Gatherer", index.PythonGatherer),
    (index, "Evaluator", "Evaluator", plan.PythonEvaluator),
    (plan, "_word_occurrences", "word_occurrences", plan.word_occurrences_python),
    (plan, "_phrase_occurrences", "phrase_occurrences", plan.phrase_occurrences_python),
    (snippet, "_terms_of", "matched_terms", snippet.terms_of_python),
    (snippet, "term_maker", term_maker, snippet.make_term),
    (index, "Matcher", "Matcher", index.PythonMatcher),
]


def from_extension(speedups: ModuleType) -> list[object]:
    """The hot functions as the extension gives them, in HOT's order."""
    return [
        getattr(speedups, name) if isinstance(name, str) else name(speedups)
        for _, _, name, _ in HOT
    ]


def bound() -> list[object]:
    """The hot functions matching runs now, in HOT's order."""
    return [getattr(module, name) for module, name, _, _ in HOT]


@contextmanager
def implementation(functions: Sequence[object]) -> Iterator[None]:
    """Matching (and compiling: the index makes its gatherer) runs with these hot
    functions, in HOT's order, while the block runs."""
    saved = bound()
    for (module, name, _, _), function in zip(HOT, functions, strict=True):
        setattr(module, name, function)
    try:
        yield
    finally:
        for (module, name, _, _), function in zip(HOT, saved, strict=True):
            setattr(module, name, function)


def in_c() -> AbstractContextManager[None]:
    return implementation(from_extension(compiled()))


def in_python() -> AbstractContextManager[None]:
    return implementation([python for _, _, _, python in HOT])


def test_extension_loads_where_required() -> None:
    """Under NEWSMON_REQUIRE_NATIVE=1 (CI) the extension is built and used by matching."""
    speedups = required("monitor.rules._speedups", native.COMPILED)
    for (_, _, name, _), now, made in zip(HOT, bound(), from_extension(speedups), strict=True):
        assert now is made if isinstance(name, str) else type(now) is type(made)


def test_pure_python_when_asked() -> None:
    """NEWSMON_PURE_PYTHON=1 makes matching run its pure-Python functions."""
    if not native.COMPILED:
        assert bound() == [python for _, _, _, python in HOT]
    else:
        assert os.environ.get(PURE_PYTHON_ENV) != "1"
        assert not set(bound()) & {python for _, _, _, python in HOT}


def test_an_older_build_counts_as_not_built() -> None:
    """An extension that lacks what this checkout needs of it (built before a pull) is
    passed over for the pure-Python forms, rather than failing the import."""
    compiled()
    assert monitor_native.compiled("monitor.rules._speedups", needs=("Evaluator",)) is not (
        os.environ.get(PURE_PYTHON_ENV) == "1"
    )
    assert not monitor_native.compiled("monitor.rules._speedups", needs=("Evaluator", "Later"))


# Every class of character the split cares about, the typography mapped to ASCII, and
# what sends text down the Unicode path or could trip C code: diacritics (composed and
# combining), CJK, control characters, NUL, DEL, a lone surrogate.
ASCII_CHUNKS = ["U.S.", "U.S", "u.s.'S", "A.B.C.", "e.g.", "Mr.", "F. Kennedy", "don't"]
ASCII_CHUNKS += ["rock'n'roll", "dogs'", "'s", "'S", "...", "?!", "3.5", "x.y.", "a.b.c"]
ASCII_CHUNKS += ["state-of-the-art", "(Reuters)", '."', ".)", "\x00", "\x1c", "\x7f"]
UNICODE_CHUNKS = ["’s", "ʼs", "“Quote”", "—", "–", "…", "\xa0", "é", "Zu\u0308rich"]
UNICODE_CHUNKS += ["東京", "ＵＳ", "¼", "ﬁnal", "\u2009", "\ud800", "\U0001f600", "ß"]
ASCII_ALPHABET = "aZs09'.!?\")]([#-,\t\n\x0b\x0c\r "

ascii_texts = st.lists(
    st.one_of(st.text(ASCII_ALPHABET, max_size=6), st.sampled_from(ASCII_CHUNKS)), max_size=16
).map("".join)
any_texts = st.lists(
    st.one_of(
        st.text(ASCII_ALPHABET, max_size=6),
        st.sampled_from(ASCII_CHUNKS + UNICODE_CHUNKS),
        st.text(max_size=3),
    ),
    max_size=16,
).map("".join)


def split_both(text: str) -> None:
    """Both splits of ASCII ``text`` give the same lists and leave the same cache; the
    compiled one's word offsets are those the words' tokens derive without them."""
    speedups = compiled()
    cache_c: dict[str, normalize.Spelling] = {"'s": normalize.spell("'s")}
    cache_py = dict(cache_c)
    *by_c, bounds = speedups.split_plain(text, cache_c, normalize.spell, normalize._STOP)
    *by_py, none = normalize._split_plain_python(text, cache_py, normalize.spell, normalize._STOP)
    assert by_c == by_py
    assert cache_c == cache_py
    assert none is None
    parts, spellings, folded, stops = by_py
    tokens = normalize.Tokens(parts, spellings, folded, text, stops)
    derived = [at for i in range(len(folded)) for at in tokens.offsets(i, i)]
    assert memoryview(bounds).cast("q").tolist() == derived
    # a piece cut from a longer text counts its offsets from where it was cut
    *again, moved = speedups.split_plain(text, {}, normalize.spell, normalize._STOP, 7)
    assert again == by_c
    assert memoryview(moved).cast("q").tolist() == [at + 7 for at in derived]


@settings(max_examples=300, derandomize=True)
@given(ascii_texts)
@example("")
@example("U.S.'S U.S.'s e.g.s")
@example("a.b.c.d.ef A.b.C. x.. y?! z.")
def test_split_agrees_on_ascii_text(text: str) -> None:
    """On random ASCII text the compiled split gives the pure-Python parts, spellings,
    folded keys and stops."""
    split_both(text)


def summary_of(text: str) -> list[object]:
    """Everything matching reads of a text's words: keys, offsets, sentences, places."""
    view = plan.View(Document(text[:40], text[::-1], text), {})
    out: list[object] = [view.where]
    for tokens in view.tokens:
        n = len(tokens)
        out += [tokens.folded, tokens.exact, tokens.start, tokens.end, tokens.sentence]
        out += [[tokens.exact_of(i) for i in range(n)], [tokens.offsets(0, i) for i in range(n)]]
    return out


RULES = (
    {
        "us": "@us AND (talks OR embassy)",
        "phrase": '"don\'t stop"',
        "near": "zurich NEAR/s quote",
        "exact": "'US' OR 'U.S.'",
        "prefix": "emb*",
        "not": "NOT tokyo",
    },
    {"us": ["U.S.", "'US'", "United States"]},
)


def matches(text: str) -> list[tuple[str, object, str]]:
    doc = Document(text[:40], text, text)
    return [(m.rule, m.terms, m.snippet) for m in compile_rules(*RULES).match(doc)]


@settings(max_examples=200, derandomize=True)
@given(any_texts)
@example("")
@example("The U.S.’s “embassy” talks—don’t stop. Zu\u0308rich quote\xa0here.")
@example("\x00\ud800 東京 U.S. talks")
def test_matching_agrees_on_any_text(text: str) -> None:
    """ASCII, typographic and other Unicode text give the same words, places and matches
    through the compiled functions and through the pure-Python ones."""
    with in_c():
        by_c = summary_of(text), matches(text)
    with in_python():
        by_py = summary_of(text), matches(text)
    assert by_c == by_py


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "", "u.s.", "東", "a"]), max_size=12)))
def test_place_agrees(fields: list[list[str]]) -> None:
    """The compiled word index gives each key's places in the pure-Python order."""
    speedups = compiled()
    assert speedups.place(fields, plan.STRIDE) == plan.place_python(fields, plan.STRIDE)


VOCABULARY = ["talks", "the", "of", "embassy", "us", "u.s.", "moscow", "said", "new"]
words = st.sampled_from(VOCABULARY)


@settings(max_examples=200, derandomize=True)
@given(
    st.lists(st.lists(words, min_size=1, max_size=3), min_size=1, max_size=12),
    st.lists(st.lists(words, max_size=30), min_size=1, max_size=3),
)
def test_gather_agrees(queries: list[list[str]], fields: list[list[str]]) -> None:
    """For rules of words, phrases, ANDs, ORs and NEARs, the compiled gatherer finds the
    pure-Python candidates and key sets met, before and after the rules are refiled."""
    shapes = ['"{}"', "{}", "{} OR {}", "{} NEAR/2 {}", "({}) AND NOT {}"]
    rules = {}
    for i, query in enumerate(queries):
        rules[f"r{i}"] = shapes[i % len(shapes)].format(" ".join(query), *query[:1])
    with in_c():
        by_c = compile_rules(rules, {})
    with in_python():
        by_py = compile_rules(rules, {})
    title, summary, body = [*(" ".join(words) for words in fields), "", ""][:3]
    view = plan.View(Document(title, summary, body))
    present, folded = view.where.keys(), [tokens.folded for tokens in view.tokens]
    for _ in range(index.LEARN_EVERY * 8):  # the last document refiles every rule
        ready, met = by_c._gatherer.gather(present, folded, True)
        assert (ready, set(met)) == by_py._gatherer.gather(present, folded, True)
        assert by_c._candidates(view) == by_py._candidates(view)
    assert by_c._by_need == by_py._by_need


def test_gatherer_refuses_broken_indexes() -> None:
    """Numbers out of range and wrong types raise Python exceptions, never crash."""
    gatherer = compiled().Gatherer
    args = ({"a": (0, 1)}, {("a", "b"): [1]}, [(0,), (1,)], {0: [1]}, 2)
    made = gatherer(*args)
    assert made.gather({"b": 0, "a": 1}.keys(), [["a", "b"]], True) == ([1], [0, 1])
    assert made.gather(["b"], [["a", "b"]], False) == ([], [])  # rule 1 is filed under 0
    made.refile({1: [1]})
    assert made.gather(["b"], [["a", "b"]], False) == ([1], [])
    wrong_numbers = [(0, {"a": (2,)}), (3, {0: [2]}), (2, [(0,), (5,)]), (1, {("a", "b"): [-1]})]
    for at, wrong in wrong_numbers:
        with pytest.raises((IndexError, OverflowError)):
            gatherer(*args[:at], wrong, *args[at + 1 :])
    for at, wrong in [(0, []), (0, {1: (0,)}), (1, {"ab": [0]}), (2, ["a"]), (4, "2")]:
        with pytest.raises(TypeError):
            gatherer(*args[:at], wrong, *args[at + 1 :])
    with pytest.raises(TypeError):
        gatherer(*args[:4])
    for present, fields in [([1], []), (["a"], [[1, 2]]), (["a"], ["ab"]), (None, [])]:
        with pytest.raises(TypeError):
            made.gather(present, fields, True)
    with pytest.raises(IndexError):
        made.refile({5: [0]})
    with pytest.raises(IndexError):
        made.refile({0: [9]})
    assert made.gather(["a"], [], True) == ([1], [0, 1])  # refused filings change nothing


@settings(max_examples=300, derandomize=True)
@given(
    st.lists(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=300), max_size=3),
    st.lists(st.sampled_from(["a", "b", "c", "x"]), max_size=4),
    st.sampled_from([plan.ALL_FIELDS, frozenset({0}), frozenset({1, 2}), frozenset()]),
)
def test_word_occurrences_agree(
    fields: list[list[str]], keys: list[str], wanted: frozenset[int]
) -> None:
    """The compiled occurrences of one or several words are the pure-Python ones, in
    order, in the fields asked for (places past 256 are no cached small ints)."""
    speedups = compiled()
    where = plan.place_python(fields, plan.STRIDE)
    by_c = speedups.word_occurrences(where, keys, wanted, plan.STRIDE)
    assert by_c == plan.word_occurrences_python(where, keys, wanted, plan.STRIDE)


@settings(max_examples=300, derandomize=True)
@given(
    st.lists(st.lists(st.sampled_from(["a", "b", "c"]), max_size=300), min_size=1, max_size=3),
    st.lists(st.sampled_from(["a", "b", "c", "x"]), min_size=1, max_size=4),
    st.data(),
    st.sampled_from([plan.ALL_FIELDS, frozenset({0}), frozenset({1, 2}), frozenset()]),
)
def test_phrase_occurrences_agree(
    fields: list[list[str]], sequence: list[str], data: st.DataObject, wanted: frozenset[int]
) -> None:
    """The compiled occurrences of a phrase, found from any of its words, are the
    pure-Python ones, in order, in the fields asked for, up to the fields' ends."""
    speedups = compiled()
    anchor = data.draw(st.integers(0, len(sequence) - 1))
    keys = {sequence[anchor], *data.draw(st.lists(st.sampled_from(["a", "x"]), max_size=2))}
    where = plan.place_python(fields, plan.STRIDE)
    args = (where, fields, keys, anchor, sequence, wanted, plan.STRIDE)
    assert speedups.phrase_occurrences(*args) == plan.phrase_occurrences_python(*args)


spans = st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 3)).map(
    lambda s: (s[0], s[1], s[1] + s[2])
)


def reported(terms: Terms, spans: list[plan.Span], known: set[plan.Span]) -> object:
    """What ``terms`` gives for ``spans`` when ``known`` spans are made already, and
    which spans it asked to be made, in order."""
    made = {span: MatchedTerm(f"known{span}", "body", 0, 1) for span in known}
    asked: list[plan.Span] = []

    def make(view: object, span: plan.Span) -> MatchedTerm:
        asked.append(span)
        return MatchedTerm(f"made{span}", "body", 0, 1)

    return terms(spans, made, make, None), asked


@settings(max_examples=300, derandomize=True)
@given(st.lists(spans, max_size=12), st.sets(spans, max_size=4))
@example([(0, 1, 2), (0, 1, 1), (0, 2, 2), (0, 1, 2), (1, 1, 1)], {(0, 1, 2)})
def test_matched_terms_agree(found: list[plan.Span], known: set[plan.Span]) -> None:
    """The compiled report of spans (each once, in order, none inside another, made
    terms reused) is the pure-Python one, and makes the same terms in the same order."""
    by_c = reported(compiled().matched_terms, found, known)
    assert by_c == reported(snippet.terms_of_python, found, known)


def test_matched_terms_refuse_broken_spans() -> None:
    """Spans that are no triples of ints, a made that is no dict and a failing make
    raise Python exceptions, never crash."""
    terms = compiled().matched_terms

    def make(view: object, span: plan.Span) -> MatchedTerm:
        return MatchedTerm("w", "body", 0, 1)

    assert terms([], {}, make, None) == ()
    for wrong in ([(0, 1)], [[0, 1, 2]], [(0, "1", 2)], [(0, 1, 2**70)], 5, [None]):
        with pytest.raises((TypeError, OverflowError)):
            terms(wrong, {}, make, None)
    with pytest.raises(TypeError):
        terms([(0, 1, 1)], [], make, None)
    with pytest.raises(ZeroDivisionError):
        terms([(0, 1, 1)], {}, lambda view, span: 1 // 0, None)
    with pytest.raises(TypeError):
        terms([(0, 1, 1)], {}, make)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not present")
def test_split_agrees_on_the_corpus() -> None:
    """On every corpus text that is ASCII but for its typography, the splits agree."""
    mapped = [
        normalize._mapped(p.read_text(encoding="utf-8")) for p in sorted(CORPUS.glob("*.txt"))
    ]
    plain = [text for text in mapped if text.isascii()]
    assert len(plain) > 100
    for text in plain:
        split_both(text)


def test_hostile_input() -> None:
    """Huge text, NUL and other control characters split as in Python; non-ASCII text, a
    lone surrogate and wrong types raise Python exceptions, never crash."""
    speedups = compiled()
    rng = random.Random(4)
    huge = "".join(rng.choice([*ASCII_CHUNKS, " ", ". ", "word"]) for _ in range(400_000))
    split_both(huge)
    split_both("\x00" * 1000 + "U.S.\x00's\x00")
    stop = normalize._STOP
    for text in ("é", "\ud800", "abc\U0001f600"):
        with pytest.raises(ValueError, match="ASCII"):
            speedups.split_plain(text, {}, normalize.spell, stop)
    with pytest.raises(TypeError):
        speedups.split_plain(b"bytes", {}, normalize.spell, stop)
    with pytest.raises(TypeError):
        speedups.split_plain("U.S.", [], normalize.spell, stop)
    with pytest.raises(TypeError):
        speedups.split_plain("U.S.")
    with pytest.raises(TypeError):
        speedups.split_plain("U.S.", {}, normalize.spell, stop, "0")
    with pytest.raises(TypeError, match="spell must give"):
        speedups.split_plain("U.S.", {}, str, stop)
    with pytest.raises(ZeroDivisionError):
        speedups.split_plain("U.S.", {}, lambda s: 1 // 0, stop)
    with pytest.raises(TypeError):
        speedups.place([["a"], "not a list"], 4)
    with pytest.raises(TypeError):
        speedups.place([[["unhashable"]]], 4)
    with pytest.raises(OverflowError):
        speedups.place([[], ["a"]], 2**63 - 1 + 1)
    with pytest.raises(OverflowError):
        speedups.place([[], [], ["a", "b"]], 2**62)
    occurrences = speedups.word_occurrences
    assert (
        occurrences({"a": [-1, 5]}, ["a"], frozenset({-1, 0}), 4)
        == [
            (-1, 3, 3, ((-1, 3, 3),)),  # as Python's divmod floors
            (1, 1, 1, ((1, 1, 1),)),
        ][:1]
    )
    for where, keys, fields, stride in [
        ([], ["a"], frozenset(), 4),
        ({"a": (1,)}, ["a"], frozenset(), 4),
        ({"a": ["1"]}, ["a"], frozenset(), 4),
        ({}, 5, frozenset(), 4),
        ({}, [], [0], 4),
        ({}, [["unhashable"]], frozenset(), 4),
    ]:
        with pytest.raises(TypeError):
            occurrences(where, keys, fields, stride)
    with pytest.raises(ValueError, match="stride"):
        occurrences({}, [], frozenset(), 0)
    with pytest.raises(OverflowError):
        occurrences({"a": [2**70]}, ["a"], frozenset(), 4)
    phrases = speedups.phrase_occurrences
    ok = ({"b": [1, 4]}, [["a", "b"]], ["b"], 1, ["a", "b"], frozenset({0}), 4)
    assert phrases(*ok) == [(0, 0, 1, ((0, 0, 1),))]  # a field ends, a field is missing
    for at, wrong in [(1, [("a", "b")]), (1, "ab"), (4, ("a", "b")), (4, []), (3, "1")]:
        with pytest.raises(TypeError):
            phrases(*ok[:at], wrong, *ok[at + 1 :])
    for at, wrong in [(3, 2), (3, -1), (6, 0)]:
        with pytest.raises(ValueError, match=r"anchor|stride"):
            phrases(*ok[:at], wrong, *ok[at + 1 :])
    with pytest.raises(TypeError):
        phrases(*ok[:6])


def evaluator() -> plan.PythonEvaluator:
    return compiled().Evaluator(plan.KINDS, plan.STRIDE)


def compiled_plan(node: q.Node) -> plan.Plan:
    """The plan of a rule ``node``; rejected rules (a scope inside another) are skipped."""
    try:
        rules = compile_rules({"r": q.unparse(node)}, reference.ENTITIES)
    except RuleCompileError:
        assume(False)
        raise
    return rules._plans[0]


sentences = st.lists(st.sampled_from(reference.VOCAB), max_size=16).map(" ".join)


@settings(max_examples=400, derandomize=True)
@given(reference.queries, sentences, any_texts, sentences)
@example(
    q.Or((q.Near(q.EntityRef("ru"), q.Word("talks"), None), q.Word("talks"))),
    "",
    "",
    "Russia talks . talks Moscow talks",
)
@example(  # one place from two alternatives: the last one's spans are kept
    q.Or((q.Near(q.Word("talks"), q.Word("embassy"), 2), q.Phrase(("talks", "the", "embassy")))),
    "",
    "",
    "talks the embassy",
)
@example(  # one NEAR finds one place twice: merged even as the only alternative found
    q.Or(
        (
            q.Near(q.Or((q.Word("talks"), q.Phrase(("talks", "the")))), q.Word("embassy"), 3),
            q.Word("sanction"),
        )
    ),
    "",
    "",
    "talks the embassy",
)
def test_evidence_agrees(node: q.Node, title: str, summary: str, body: str) -> None:
    """For random rules and texts, the compiled evaluator gives the very spans, in the
    same order, that the plans' own methods give, and fills the memo alike."""
    rule = compiled_plan(node)
    doc = Document(title, summary, body)
    by_c, by_py = plan.View(doc), plan.View(doc)
    assert evaluator().evidence(rule, by_c) == rule.evidence(by_py)
    assert by_c.memo == by_py.memo


class Broken(plan.Words):
    """A word whose ``find`` gives no list: asked through Python, as it is no Words."""

    __slots__ = ()

    def find(self, view: plan.View) -> list[plan.Occurrence]:
        return "not a list"  # type: ignore[return-value]


def test_evaluator_refuses_broken_plans() -> None:
    """Wrong classes, views and plans raise Python exceptions, never crash; a plan nested
    deeper than the interpreter allows raises RecursionError."""
    speedups = compiled()
    for kinds, stride in [(plan.KINDS[:-1], 4), ((*plan.KINDS[:-1], 5), 4), (plan.KINDS, 0)]:
        with pytest.raises((TypeError, ValueError)):
            speedups.Evaluator(kinds, stride)
    rule = compiled_plan(q.Word("talks"))
    view = plan.View(Document("talks", "", ""))
    with pytest.raises(AttributeError):
        evaluator().evidence(rule, object())
    with pytest.raises(TypeError):
        evaluator().evidence(rule)  # type: ignore[call-arg]
    view.memo = []  # type: ignore[assignment]
    with pytest.raises(TypeError, match="memo"):
        evaluator().evidence(rule, view)
    view = plan.View(Document("talks", "", ""))
    view.memo[rule.ident] = [("not", "an", "occurrence")]  # type: ignore[list-item]
    with pytest.raises(TypeError, match="occurrence"):
        evaluator().evidence(rule, view)
    assert isinstance(rule, plan.Words)
    broken = Broken(None, rule.slots, rule.fields, False)  # type: ignore[arg-type]
    broken.ident = 10**6
    near = plan.Near(None, broken, rule, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list"):
        evaluator().evidence(near, plan.View(Document("talks", "", "")))
    deep: plan.Plan = rule
    for _ in range(100_000):
        deep = plan.Negation(None, deep)  # type: ignore[arg-type]
    with pytest.raises(RecursionError):
        evaluator().evidence(deep, plan.View(Document("talks", "", "")))


class Grower(plan.Prefix):
    """A node found in Python that adds to another node's occurrences meanwhile."""

    __slots__ = ("other",)

    def find(self, view: plan.View) -> list[plan.Occurrence]:
        view.memo[self.other.ident].extend([(2, 0, 0, ((2, 0, 0),))] * 1000)
        return [(2, 1, 1, ((2, 1, 1),))]


class Clearing:
    """A field's tokens whose sentence breaks, when read, empty every occurrence list."""

    def __init__(self, tokens: normalize.Tokens, view: plan.View) -> None:
        self.tokens, self.view = tokens, view

    def breaks(self) -> list[int]:
        for found in self.view.memo.values():
            found.clear()
        return self.tokens.breaks()


def test_evaluator_survives_python_that_changes_what_it_reads() -> None:
    """Python code run mid-evaluation (a node's own find, a field's sentence breaks) that
    grows or empties the lists being read is no crash: an OR reads its alternatives'
    lists once all are found, as Python does; a NEAR reads copies; a NEAR/n wider than
    64 bits holds any gap, as in Python."""
    talks = compiled_plan(q.Word("talks"))
    grower = Grower(None, "emb", plan.ALL_FIELDS)  # type: ignore[arg-type]
    grower.ident, grower.other = 10**6, talks
    either = plan.AnyOf(None, (talks, grower))  # type: ignore[arg-type]
    either.ident = 10**6 + 1
    doc = Document("", "", "talks embassy")
    assert evaluator().evidence(either, plan.View(doc)) == either.evidence(plan.View(doc))
    near = compiled_plan(q.Near(q.Word("talks"), q.Word("embassy"), None))
    doc = Document("", "", "talks embassy talks embassy. " * 50)
    view = plan.View(doc)
    view.tokens = (*view.tokens[:2], Clearing(view.tokens[2], view))  # type: ignore[assignment]
    assert evaluator().evidence(near, view) == near.evidence(plan.View(doc))  # as untouched
    assert isinstance(near, plan.Near)
    wide = plan.Near(None, near.left, near.right, 2**70)  # type: ignore[arg-type]
    wide.ident = 10**6 + 2
    doc = Document("", "", "talks and then much later embassy")
    assert evaluator().evidence(wide, plan.View(doc)) == wide.evidence(plan.View(doc))
    assert evaluator().evidence(wide, plan.View(doc))


@pytest.mark.parametrize("distance", [None, 10**6])
def test_near_pairs_each_occurrence_with_its_closest_partners_only(distance: int | None) -> None:
    """A list with no full stop, 400 of each side in one sentence: each occurrence pairs
    with its neighbours, 799 pairs (every pair would be 160,000: quadratic time and
    memory on a long page), the same in C and in Python."""
    near = compiled_plan(q.Near(q.Word("talks"), q.Word("embassy"), distance))
    doc = Document("", "", "talks embassy " * 400)
    view = plan.View(doc)
    evaluator().evidence(near, view)
    found = view.memo[near.ident]
    assert found == near.find(plan.View(doc))
    assert len(found) == 799
    assert [o[:3] for o in found[:3]] == [(2, 0, 1), (2, 1, 2), (2, 2, 3)]


def test_term_maker_agrees_and_refuses() -> None:
    """The compiled maker makes the term ``make_term`` makes, remembers it in the view,
    asks ``make_term`` for text split in Python, and refuses spans that are not in the
    text."""
    maker = term_maker(compiled())
    for text in ("The U.S.'s envoy didn't say. Talks go on!", "Zu\u0308rich’s envoy"):
        with in_c():  # the compiled split packs the offsets of ASCII text
            by_c, by_py = plan.View(Document("", "", text)), plan.View(Document("", "", text))
        assert (by_c.tokens[2]._packed is None) is (not text.isascii())
        for span in [(2, 0, 0), (2, 0, 1), (2, 1, 1)]:
            term = maker(by_c, span)
            assert type(term) is MatchedTerm
            assert term == snippet.make_term(by_py, span)
            assert by_c.terms[span] is term
    with in_c():
        view = plan.View(Document("", "", "one two"))
    for wrong in [(2, 0, 2), (2, 1, 0), (2, -1, 0), (0, 0, 0)]:
        with pytest.raises(IndexError, match="not in its field"):
            maker(view, wrong)
    for wrong in [(2, 0), "span"]:  # type: ignore[assignment]
        with pytest.raises(TypeError):
            maker(view, wrong)
    with pytest.raises(TypeError):
        compiled().TermMaker(MatchedTerm, list(plan.FIELDS), snippet.make_term)
    for cls in (type, int, tuple):  # classes that object.__new__ does not make
        with pytest.raises(TypeError, match="cannot make"):
            compiled().TermMaker(cls, plan.FIELDS, snippet.make_term)


def matcher(rules: index.RuleIndex) -> index.PythonMatcher:
    return compiled().Matcher(
        evaluator(), rules._plans, rules._names, RuleMatch, term_maker(compiled())
    )


class Emptying(plan.Prefix):
    """A node found in Python that empties the index's lists of rules meanwhile."""

    __slots__ = ("lists",)

    def find(self, view: plan.View) -> list[plan.Occurrence]:
        for rules in self.lists:
            rules.clear()
        return []


def test_matcher_agrees_and_refuses() -> None:
    """The compiled matcher gives the matches, terms and snippets the Python one gives,
    keeps to ``only``, hands every match the one snippet function, and refuses broken
    input with Python exceptions, never a crash."""
    speedups = compiled()
    rules = compile_rules(*RULES)
    text = "Russia and U.S. envoys met at the embassy. Talks on sanctions go on."
    for only in (None, {"russia"}, set(), {"nothing"}):
        with in_c():
            by_c = rules.match(Document("Embassy talks", text, text), only)
        with in_python():
            by_py = rules.match(Document("Embassy talks", text, text), only)
        assert [(m.rule, m.terms, m.snippet) for m in by_c] == [
            (m.rule, m.terms, m.snippet) for m in by_py
        ]
        assert only is None or {m.rule for m in by_c} <= only
    assert len(by_c) == 0 < len(rules.match(Document("", text, text)))
    view = plan.View(Document("", text, text))
    everything = list(range(len(rules._names)))
    found = matcher(rules).matches(view, everything, None, len)
    assert found
    assert all(m.lazy_snippet is len and type(m) is RuleMatch for m in found)
    assert [m.snippet for m in found] == [len(m.terms) for m in found]  # type: ignore[comparison-overlap]
    for wrong in ([len(rules._names)], [-1]):
        with pytest.raises(IndexError, match="no rule"):
            matcher(rules).matches(view, wrong, None, len)
    with pytest.raises(TypeError):
        matcher(rules).matches(view, ["0"], None, len)
    view.terms = []  # type: ignore[assignment]
    with pytest.raises(TypeError, match="terms"):
        matcher(rules).matches(view, everything, None, len)
    for args in [
        (object(), rules._plans, rules._names, RuleMatch, snippet.make_term),
        (evaluator(), tuple(rules._plans), rules._names, RuleMatch, snippet.make_term),
        (evaluator(), rules._plans, rules._names, tuple, snippet.make_term),
    ]:
        with pytest.raises(TypeError):
            speedups.Matcher(*args)
    emptying = Emptying(None, "emb", plan.ALL_FIELDS)  # type: ignore[arg-type]
    emptying.ident = 10**6
    plans, names = [emptying, *rules._plans], ["emptying", *rules._names]
    emptying.lists = (plans, names)
    found = speedups.Matcher(evaluator(), plans, names, RuleMatch, snippet.make_term)
    with pytest.raises(IndexError, match="no rule"):
        found.matches(plan.View(Document("", text, text)), [0, 1], None, len)


class Shifty(str):
    """A word whose comparison empties ``field``, the list it is compared in."""

    field: list[str]

    def __eq__(self, other: object) -> bool:
        self.field.clear()
        return True

    __hash__ = str.__hash__


def test_phrase_comparison_that_changes_the_field() -> None:
    """A word whose ``==`` empties the field being read stops the comparison, no crash."""
    field = ["a", "b", "c"]
    shifty = Shifty("b")
    shifty.field = field
    found = compiled().phrase_occurrences(
        {"a": [0]}, [field], ["a"], 0, ["a", shifty, "c"], frozenset({0}), 4
    )
    assert found == []


def test_no_memory_kept() -> None:
    """Splitting, placing, gathering, finding words and phrases, evaluating a plan,
    reporting terms and matching for a text thousands of times keeps nothing (a missed
    reference count would keep every list made)."""
    speedups = compiled()
    text = "The U.S.'s envoy didn't say. Talks go on! " * 20
    cache: dict[str, normalize.Spelling] = {}
    sets = ({"envoy": (0,), "talks": (1, 2)}, {("talks", "go"): [2]}, [(0, 1), (2,)], {0: [0]})
    rules = index.compile_rules({"r": "talks NEAR/s go OR envoy"}, {})
    rule = rules._plans[0]

    def run(times: int) -> None:
        for _ in range(times):
            _, _, folded, *_ = speedups.split_plain(text, cache, normalize.spell, normalize._STOP)
            where = speedups.place([folded, folded], plan.STRIDE)
            gatherer = speedups.Gatherer(*sets, 3)
            gatherer.refile({0: [0], 2: [1]})
            assert gatherer.gather(where.keys(), [folded], True) == ([0, 1], [0, 1, 2])
            found = speedups.word_occurrences(where, ["talks", "envoy"], {1}, plan.STRIDE)
            assert len(found) == 40
            found = speedups.phrase_occurrences(
                where, [folded, folded], ["go"], 1, ["talks", "go"], {0, 1}, plan.STRIDE
            )
            assert len(found) == 40
            view = plan.View(Document(text, text, ""), cache)
            spans = [o[:3] for o in found]
            terms = speedups.matched_terms(spans, view.terms, term_maker(speedups), view)
            assert len(terms) == 40 == len(view.terms)
            found = speedups.Evaluator(plan.KINDS, plan.STRIDE).evidence(rule, view)
            assert found is not None
            assert len(found) == 120
            [match] = matcher(rules).matches(view, [0], {"r"}, len)
            assert len(match.terms) == 120

    run(100)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(300)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 3_000  # one object kept per run would be 8 KB or more
