"""All rules compiled into one index, so an article is tokenised once per match call.

A rule states what it needs: key sets of which each must meet the document's words (every
word of a phrase, both sides of a NEAR, one of the words of an OR). The document's distinct
words give the key sets met, and the rules whose needs are all met, with set operations
that run in C; only those rules are evaluated, and equal sub-queries shared between rules
are evaluated once per document. Rules that need no particular word are filed under their
``Trigger`` (a prefix can be one), or, when they can match a text with none of their words
(``NOT sport``), are always candidates.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain, compress, pairwise, repeat

from monitor.errors import QueryError, RuleCompileError
from monitor.models import Document, MatchedTerm, RuleMatch
from monitor.rules import native, normalize, snippet, syntax
from monitor.rules.explain import Explanation, explain
from monitor.rules.plan import (
    KINDS,
    STRIDE,
    Builder,
    Key,
    Plan,
    PythonEvaluator,
    Requirement,
    Span,
    View,
    key_length,
)
from monitor.rules.snippet import snippet_of, terms_of_python

# distinct surfaces remembered, then forgotten all at once: about 0.4 KB each
# (tracemalloc, corpus articles), so 20 MB at most; ASCII text brings only its stops,
# possessives and acronyms (plain words need no spelling), other text every word; a
# corpus article has a few dozen the cache lacks, so refilling after a clear costs little
SPELLING_CACHE_SIZE = 50_000
LEARN_EVERY = 8  # one document in so many counts towards filing rules under rare needs


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule's plan, and its query text: explaining parses it again rather than the index
    keeping every AST."""

    name: str
    text: str
    plan: Plan


class RuleIndex:
    """Compiled rules; build with :func:`compile_rules`.

    Internally rules are numbered in order, so candidate sets are sets of small ints and
    sorting them needs no key function.
    """

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        entities: Mapping[str, tuple[syntax.Phrase | syntax.Exact, ...]],
    ) -> None:
        self.rules = {rule.name: rule for rule in rules}
        self.entities = entities
        self._names = [rule.name for rule in rules]
        self._plans = [rule.plan for rule in rules]
        # Key sets are numbered once however many rules share them (an entity's, a word's).
        numbers: dict[frozenset[Key], int] = {}
        shortest: list[int] = []  # per key set: its shortest key's length (see ``rarest``)
        # key -> numbers of the sets holding it; words and neighbour pairs apart, as only
        # a few thousand pairs are keys and their small dictionary stays in the CPU cache.
        word_sets: dict[str, list[int]] = {}
        pair_sets: dict[tuple[str, str], list[int]] = {}
        self._needs: list[tuple[int, ...]] = []  # per rule: the key sets it needs
        self._by_need: dict[int, list[int]] = {}  # key set -> rules filed under it
        self._by_key: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        self._always: list[int] = []
        memo: dict[int, Requirement] = {}  # rules share nodes, an entity's most of all
        for i, rule in enumerate(rules):
            required = rule.plan.requires(memo)
            for keys in required:
                if keys not in numbers:
                    numbers[keys] = len(numbers)
                    shortest.append(min(map(key_length, keys)))
                    for key in keys:
                        if isinstance(key, str):
                            word_sets.setdefault(key, []).append(numbers[keys])
                        else:
                            pair_sets.setdefault(key, []).append(numbers[keys])
            # A tuple: a third of a frozenset's memory, and as quick to test against ``met``.
            self._needs.append(tuple(sorted({numbers[keys] for keys in required})))
            if required:
                rarest = max(map(numbers.__getitem__, required), key=shortest.__getitem__)
                self._by_need.setdefault(rarest, []).append(i)
                continue
            trigger = rule.plan.trigger()
            if trigger is None:
                self._always.append(i)
                continue
            for key in trigger.keys:
                self._by_key.setdefault(key, []).append(i)
            for stem in trigger.prefixes:
                self._by_prefix.setdefault(stem, []).append(i)
        self._prefix_lengths = sorted({len(stem) for stem in self._by_prefix})
        # As tuples, one for all words in the same sets (a word's forms, an entity's
        # names): less memory, and fewer places to read when tagging a document's words.
        shared: dict[tuple[int, ...], tuple[int, ...]] = {}
        sets_of = {
            word: shared.setdefault(tuple(sets), tuple(sets)) for word, sets in word_sets.items()
        }
        # The compiled form packs them, and the dictionaries go.
        self._gatherer = Gatherer(sets_of, pair_sets, self._needs, self._by_need, len(numbers))
        evaluator = Evaluator(KINDS, STRIDE)
        self._evidence = evaluator.evidence
        self._matcher = Matcher(evaluator, self._plans, self._names, RuleMatch, snippet.term_maker)
        self._spellings: dict[str, normalize.Spelling] = {}
        self._seen = 0  # documents matched
        self._met_count = [0] * len(numbers)  # per key set: documents that met it

    def match(self, doc: Document, only: AbstractSet[str] | None = None) -> list[RuleMatch]:
        """The rules ``doc`` matches (restricted to ``only`` when given), in rule order."""
        if len(self._spellings) > SPELLING_CACHE_SIZE:
            self._spellings.clear()
        view = View(doc, self._spellings)
        # The snippet is made when read: most matches are never shown.
        make_snippet = partial(snippet_of, view.texts)
        return self._matcher.matches(view, self._candidates(view), only, make_snippet)

    def explain(self, doc: Document, rule: str) -> Explanation:
        """Why ``rule`` matches ``doc`` or not; raises KeyError for an unknown rule name."""
        compiled = self.rules[rule]
        return explain(rule, syntax.parse_query(compiled.text), self.entities, doc)

    def _candidates(self, view: View) -> list[int]:
        """Rules whose needs are all met by the document's words, in rule order."""
        present = view.present
        self._seen += 1
        learn = not self._seen % LEARN_EVERY
        ready, met = self._gatherer.gather(present, view.folded, learn)
        if learn:
            self._learn(met)
        # Rules that need no key set: ready as soon as found.
        found = set(self._always)
        found.update(*map(self._by_key.__getitem__, present & self._by_key.keys()))
        for length in self._prefix_lengths:
            stems = {key[:length] for key in present if len(key) >= length}
            found.update(*map(self._by_prefix.__getitem__, stems & self._by_prefix.keys()))
        return sorted(found.union(ready)) if found else ready

    def _learn(self, met: Iterable[int]) -> None:
        """Count the key sets met by one document in eight (``met``); after 8, 16, 32...
        such documents, file each rule under the need met least often so far.

        At compile time a rule is filed under the need whose words are longest, a poor
        guess where names are common words: @entity AND (w OR w) rules filed under their
        entity were 190 candidates per article at 10,000 rules, of which 14 had every need
        met. Filing only decides which rules are checked; every need is still checked, so
        results do not depend on it. (Counting every document cost more than it saved.)
        """
        counts = self._met_count
        for n in met:
            counts[n] += 1
        sampled = self._seen // LEARN_EVERY
        if sampled < 8 or sampled & (sampled - 1):
            return
        filed = {i: need for need, rules in self._by_need.items() for i in rules}
        by_need: dict[int, list[int]] = {}
        for i, need in filed.items():
            # Ties keep the current filing: the longest words until the counts tell.
            best = min(self._needs[i], key=lambda n: (counts[n], n != need))
            by_need.setdefault(best, []).append(i)
        self._by_need = by_need
        self._gatherer.refile(by_need)


class PythonGatherer:
    """What the index needs to gather a document's candidates: each word's and each
    neighbour pair's key sets, each rule's needs, and the rules filed under each key set.
    monitor/rules/_speedups.c's ``Gatherer`` is the compiled form, packed in C arrays.
    """

    def __init__(
        self,
        word_sets: dict[str, tuple[int, ...]],
        pair_sets: dict[tuple[str, str], list[int]],
        needs: list[tuple[int, ...]],
        by_need: dict[int, list[int]],
        sets: int,
    ) -> None:
        self._word_sets = word_sets
        self._pair_sets = pair_sets
        self._needs = needs
        self._by_need = by_need  # key sets are numbered below ``sets``, which C checks

    def refile(self, by_need: dict[int, list[int]]) -> None:
        """File the rules anew: ``by_need`` maps a key set to the rules filed under it."""
        self._by_need = by_need

    def gather(
        self, present: Iterable[str], fields: Sequence[list[str]], learn: bool
    ) -> tuple[list[int], Collection[int]]:
        """The rules filed under a key set met whose needs are all met, in order, and the
        key sets met (by the words ``present`` and the neighbours in ``fields``), which
        the compiled form gives only when asked to ``learn``.

        Every step is a set operation or a ``map`` over a built-in, so it runs in C: a
        Python loop over hundreds of candidate rules would cost more than the rest.
        """
        # The key sets of the document's ~370 distinct words. The ~700 neighbouring pairs
        # are probed as ``pairwise`` makes them: no set of them is built, and ``&`` with a
        # dictionary's keys keeps only the ~50 that are keys.
        pair_sets = self._pair_sets
        met = set(chain.from_iterable(map(self._word_sets.get, present, repeat(()))))
        neighbours = chain.from_iterable(map(pairwise, fields))
        met.update(*map(pair_sets.__getitem__, pair_sets.keys() & neighbours))
        found: set[int] = set()
        found.update(*map(self._by_need.__getitem__, met & self._by_need.keys()))
        ready = map(met.issuperset, map(self._needs.__getitem__, found))
        return sorted(compress(found, ready)), met


class PythonMatcher:
    """The matches among a document's candidate rules: each one's evidence, its terms and
    a ``cls`` (RuleMatch). ``_speedups.Matcher`` is the compiled form: at 10,000 rules an
    article has about 40 matches, and this loop's calls and objects were a tenth of
    matching it (docs/performance.md)."""

    def __init__(
        self,
        evaluator: PythonEvaluator,
        plans: list[Plan],
        names: list[str],
        cls: type[RuleMatch],
        make_term: Callable[[View, Span], MatchedTerm],
    ) -> None:
        self._evidence = evaluator.evidence
        self._plans = plans
        self._names = names
        self._cls = cls
        self._make_term = make_term

    def matches(
        self,
        view: View,
        candidates: Iterable[int],
        only: AbstractSet[str] | None,
        make_snippet: Callable[[tuple[MatchedTerm, ...]], str],
    ) -> list[RuleMatch]:
        """The candidates (rule numbers, in order) that hold in ``view``, restricted to
        the names ``only`` when given, each with ``make_snippet`` to make its snippet."""
        found = []
        for i in candidates:
            name = self._names[i]
            if only is not None and name not in only:
                continue
            spans = self._evidence(self._plans[i], view)
            if spans is not None:
                terms = terms_of_python(spans, view.terms, self._make_term, view)
                found.append(self._cls(name, terms, make_snippet))
        return found


if native.COMPILED:
    from monitor.rules._speedups import Evaluator, Gatherer, Matcher
else:
    Evaluator, Gatherer, Matcher = PythonEvaluator, PythonGatherer, PythonMatcher


def compile_entities(
    entities: Mapping[str, Sequence[str]],
) -> dict[str, tuple[syntax.Phrase | syntax.Exact, ...]]:
    """Parse every entity's surface forms; raises RuleCompileError naming the form."""
    parsed = {}
    for name, form_texts in entities.items():
        if not form_texts:
            raise RuleCompileError(QueryError(1, "an entity needs at least one form"), entity=name)
        forms = []
        for i, text in enumerate(form_texts):
            try:
                forms.append(syntax.parse_form(text))
            except QueryError as e:
                raise RuleCompileError(e, entity=name, form_index=i) from e
        parsed[name] = tuple(forms)
    return parsed


def unknown_entity(query: syntax.Query, known: AbstractSet[str]) -> syntax.EntityRef | None:
    """The leftmost ``@name`` in ``query`` that is not a known entity, if any."""
    if "@" not in query.text:  # half of the rules name no entity: no walk
        return None
    stack: list[syntax.Node] = [query.root]
    unknown: list[syntax.EntityRef] = []
    while stack:
        node = stack.pop()
        if isinstance(node, syntax.EntityRef):
            if node.name not in known:
                unknown.append(node)
        elif isinstance(node, syntax.And | syntax.Or):
            stack.extend(node.items)
        elif isinstance(node, syntax.Near):
            stack.extend((node.left, node.right))
        elif isinstance(node, syntax.Not | syntax.AtLeast | syntax.Scope):
            stack.append(node.item)
    return min(unknown, key=lambda ref: ref.column, default=None)


@contextmanager
def _no_collection() -> Iterator[None]:
    """The cyclic garbage collector paused: compiling makes hundreds of thousands of
    objects that all live on, and each collection walked the ones made so far again
    (10,000 rules: 0.92-1.08 s CPU with it, 0.75-0.80 without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_rules(rules: Mapping[str, str], entities: Mapping[str, Sequence[str]]) -> RuleIndex:
    """Parse and compile every rule into one index; raises RuleCompileError."""
    with _no_collection():
        return _compile(rules, entities)


def _compile(rules: Mapping[str, str], entities: Mapping[str, Sequence[str]]) -> RuleIndex:
    forms = compile_entities(entities)
    builder = Builder(forms, keep_sources=False)
    compiled = []
    for name, text in rules.items():
        try:
            query = syntax.parse_query(text)
        except QueryError as e:
            raise RuleCompileError(e, rule=name) from e
        ref = unknown_entity(query, forms.keys())
        if ref is not None:
            error = QueryError(ref.column, f"unknown entity @{ref.name}")
            raise RuleCompileError(error, rule=name, entity=ref.name)
        compiled.append(CompiledRule(name, text, builder.build(query.root)))
    return RuleIndex(compiled, forms)
