"""Executable form of a query: entities resolved, field scopes pushed into the terms.

A plan node answers three questions about a tokenised document (a ``View``): does it hold,
which term occurrences prove it (``evidence``), and which words must be present for it to
hold at all (``trigger``), which is what lets the index skip most rules without evaluating
them. Positional nodes (terms, OR of terms, NEAR) also list their ``occurrences``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import chain, pairwise, product, repeat
from operator import itemgetter
from typing import TypeVar

from monitor.models import Document, MatchedTerm
from monitor.rules import native, normalize, syntax
from monitor.rules.inflect import forms

FIELDS = syntax.FIELDS
ALL_FIELDS = frozenset(range(len(FIELDS)))

# A matched stretch of words: (field index, first token, last token), inclusive.
Span = tuple[int, int, int]
STRIDE = 1 << 28  # places of a field's words start at field * STRIDE; one-digit ints
# What a rule can require of a document: a folded word, or two neighbouring words.
Key = str | tuple[str, str]
# Sets of keys of which each must have a member in the document (AND of ORs).
Requirement = tuple[frozenset[Key], ...]
S = TypeVar("S", bound=Collection[Key])
# The keys a word node accepts at one position, sorted so that equal slots are equal: a
# tuple, as a plan keeps thousands (a frozenset of five words takes three times the memory).
Slot = tuple[str, ...]


# One place a positional node matched: (field, first token, last token, the term spans
# inside it). A plain tuple: made in C by a tuple display, where a named tuple's ``__new__``
# is a Python call (six times the cost; a few hundred are made per article). Tuples order
# by field, then first and last token: text order.
Occurrence = tuple[int, int, int, tuple[Span, ...]]
_PARTS = itemgetter(3)
_PLACE = itemgetter(0, 1, 2)


@dataclass(frozen=True, slots=True)
class Trigger:
    """Folded words and prefixes of which at least one must occur for a node to hold.

    ``alternatives`` counts the terms behind them (a word and its inflections are one).
    """

    keys: frozenset[str]
    prefixes: frozenset[str]
    alternatives: int

    @property
    def cost(self) -> tuple[int, int]:
        """Smaller is more selective: fewer alternatives, then longer (rarer) words."""
        lengths = [len(k) for k in self.keys | self.prefixes]
        return self.alternatives, -min(lengths, default=0)


class View:
    """A document tokenised once, with a folded-word index and a per-document memo.

    ``where`` gives the places of each folded word in text order, a place being one int,
    ``field * STRIDE + token``, so that places can be shifted and intersected in C.
    """

    __slots__ = ("_sorted_keys", "folded", "memo", "present", "terms", "texts", "tokens", "where")

    def __init__(
        self,
        doc: Document,
        cache: dict[str, normalize.Spelling] | None = None,
    ) -> None:
        self.texts = (doc.title, doc.summary, doc.body)
        self.tokens = tuple(normalize.tokenize(text, cache) for text in self.texts)
        # Every word is placed: placing only the rules' anchor words (picked in C) saved
        # nothing at 10,000 rules, as half an article's words are some rule's anchor.
        self.folded = [tokens.folded for tokens in self.tokens]  # each field's words
        self.where = where = _place(self.folded, STRIDE)
        self.present = where.keys()
        self.memo: dict[int, list[Occurrence]] = {}
        self.terms: dict[Span, MatchedTerm] = {}  # reported spans, built once
        self._sorted_keys: list[str] | None = None

    def keys_with_prefix(self, stem: str) -> list[str]:
        """Distinct folded words of the document that start with ``stem``."""
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.where)
        keys = self._sorted_keys
        out = []
        for i in range(bisect.bisect_left(keys, stem), len(keys)):
            if not keys[i].startswith(stem):
                break
            out.append(keys[i])
        return out


def place_python(fields: Sequence[list[str]], stride: int) -> dict[str, list[int]]:
    """Each key's places in text order, a place being ``field * stride + position``
    (monitor/rules/_speedups.c does the same in C)."""
    where: dict[str, list[int]] = {}
    for f, keys in enumerate(fields):
        for place, key in enumerate(keys, f * stride):
            found = where.get(key)
            if found is None:
                where[key] = [place]
            else:
                found.append(place)
    return where


if native.COMPILED:
    from monitor.rules._speedups import place as _place
else:
    _place = place_python


class Plan:
    """Base of plan nodes; ``source`` is the AST node it came from, for explanations, or
    None where the Builder was told not to keep it."""

    __slots__ = ("ident", "source")

    def __init__(self, source: syntax.Node) -> None:
        self.ident = 0  # set by the Builder: the memo key
        self.source: syntax.Node | None = source

    def holds(self, view: View) -> bool:
        raise NotImplementedError

    def evidence(self, view: View) -> list[Span] | None:
        """Term spans that make this node hold, or None when it does not hold."""
        raise NotImplementedError

    def trigger(self) -> Trigger | None:
        """What must occur for this node to hold; None if it can hold on an empty text."""
        raise NotImplementedError

    def requires(self, memo: dict[int, Requirement]) -> Requirement:
        """Key sets that must each meet the document's words for this node to hold;
        worked out once per node in ``memo`` (by ident), as thousands of rules share an
        entity's node. The caller's dict, not the node's: the index keeps the nodes, and
        their requirements would hold 10 MB at 10,000 rules."""
        found = memo.get(self.ident)
        if found is None:
            found = memo[self.ident] = self._requirement(memo)
        return found

    def _requirement(self, memo: dict[int, Requirement]) -> Requirement:
        """The default suits AND-like nodes (AND, NEAR, ATLEAST): every child's needs."""
        return _conjoin(self.children(), memo)

    def children(self) -> tuple[Plan, ...]:
        return ()


class Alternatives(Plan):
    """What every OR has in common: any one of ``items`` may hold."""

    __slots__ = ()
    items: tuple[Plan, ...]

    def trigger(self) -> Trigger | None:
        return _union(item.trigger() for item in self.items)

    def _requirement(self, memo: dict[int, Requirement]) -> Requirement:
        return _disjoin(self.items, memo)

    def children(self) -> tuple[Plan, ...]:
        return self.items


class Positional(Plan):
    """A node with places in the text; holds when it has at least one occurrence."""

    __slots__ = ()

    def find(self, view: View) -> list[Occurrence]:
        raise NotImplementedError

    def occurrences(self, view: View) -> list[Occurrence]:
        """All occurrences in text order, memoised per document (rules share terms)."""
        found = view.memo.get(self.ident)
        if found is None:
            found = view.memo[self.ident] = self.find(view)
        return found

    def holds(self, view: View) -> bool:
        return bool(self.occurrences(view))

    def evidence(self, view: View) -> list[Span] | None:
        occurrences = self.occurrences(view)
        return list(chain.from_iterable(map(_PARTS, occurrences))) if occurrences else None


class Words(Positional):
    """Consecutive words; each slot is the set of keys accepted at that position."""

    __slots__ = ("anchor", "case_sensitive", "fields", "lookup", "sequence", "slots")

    def __init__(
        self,
        source: syntax.Node,
        slots: tuple[Slot, ...],
        fields: frozenset[int],
        case_sensitive: bool,
    ) -> None:
        super().__init__(source)
        self.slots = slots
        self.fields = fields
        self.case_sensitive = case_sensitive
        # The index holds folded keys; case is checked on the exact keys afterwards.
        self.lookup = (
            slots
            if not case_sensitive
            else tuple(slot_of(map(normalize.fold, slot)) for slot in slots)
        )
        # Places are looked up for the rarest word only, the others read beside them. A
        # phrase's slots hold one key each (an inflected word stands alone), so its words
        # compare with the document's in one list comparison.
        self.anchor = self.lookup.index(rarest(self.lookup)) if len(slots) > 1 else 0
        assert len(slots) == 1 or all(len(slot) == 1 for slot in slots)
        self.sequence = [key for slot in self.lookup for key in slot] if len(slots) > 1 else None

    @property
    def word(self) -> Slot | None:
        """The keys of a one-word, case-insensitive node: any of them in a field is a match."""
        return self.lookup[0] if self.sequence is None and not self.case_sensitive else None

    def find(self, view: View) -> list[Occurrence]:
        if self.sequence is None:  # a word, its forms
            found = _word_occurrences(view.where, self.lookup[0], self.fields, STRIDE)
        else:  # its words in order, within one sentence: "white. House" is no "white house"
            anchor = self.lookup[self.anchor]
            found = _phrase_occurrences(
                view.where, view.folded, anchor, self.anchor, self.sequence, self.fields, STRIDE
            )
            found = [o for o in found if _one_sentence(view.tokens[o[0]], o[1], o[2])]
        if self.case_sensitive:
            found = [o for o in found if self._exact_at(view.tokens[o[0]], o[1])]
        return found

    def _exact_at(self, tokens: normalize.Tokens, i: int) -> bool:
        return all(tokens.exact_of(i + j) in slot for j, slot in enumerate(self.slots))

    def trigger(self) -> Trigger:
        return Trigger(frozenset(rarest(self.lookup)), frozenset(), 1)

    def _requirement(self, memo: dict[int, Requirement]) -> Requirement:
        # Each word, and each pair of neighbours: "of the" is in most texts' words, much
        # rarer as a pair. (A phrase's slots hold one key each; inflected words stand alone.)
        pairs = (frozenset(product(*two)) for two in pairwise(self.lookup))
        return (*map(frozenset, self.lookup), *pairs)


class Prefix(Positional):
    __slots__ = ("fields", "stem")

    def __init__(self, source: syntax.Node, stem: str, fields: frozenset[int]) -> None:
        super().__init__(source)
        self.stem = stem
        self.fields = fields

    def find(self, view: View) -> list[Occurrence]:
        keys = view.keys_with_prefix(self.stem)
        return _word_occurrences(view.where, keys, self.fields, STRIDE)

    def trigger(self) -> Trigger:
        return Trigger(frozenset(), frozenset({self.stem}), 4)  # a prefix matches many words

    def _requirement(self, memo: dict[int, Requirement]) -> Requirement:
        return ()  # a stem is no key: the document's words are not looked up by prefix


class AnyOf(Alternatives, Positional):
    """OR of positional nodes, and entities: every place any of them matches."""

    __slots__ = ("items",)
    items: tuple[Positional, ...]

    def __init__(self, source: syntax.Node, items: tuple[Positional, ...]) -> None:
        super().__init__(source)
        self.items = items

    def find(self, view: View) -> list[Occurrence]:
        found = [(item, o) for item in self.items if (o := item.occurrences(view))]
        if len(found) == 1:
            return found[0][1]  # one occurrence per place, in order: nothing to merge
        merged = {o[:3]: o for _, occurrences in found for o in occurrences}
        return sorted(merged.values())


class Near(Positional):
    """Two positional nodes in one field, close enough, sharing no word."""

    __slots__ = ("distance", "left", "right")

    def __init__(
        self, source: syntax.Node, left: Positional, right: Positional, distance: int | None
    ) -> None:
        super().__init__(source)
        self.left = left
        self.right = right
        self.distance = distance

    def find(self, view: View) -> list[Occurrence]:
        """Each occurrence of either side paired with its closest partners (``closest``):
        every pair would be quadratic, and a long list with no full stop has thousands of
        each side in one sentence."""
        lefts = self.left.occurrences(view)
        rights = self.right.occurrences(view) if lefts else []
        if not rights:
            return []
        tokens = view.tokens
        pairs = set(closest(lefts, rights, self.distance, tokens))
        pairs.update((i, j) for j, i in closest(rights, lefts, self.distance, tokens))
        found: dict[Span, Occurrence] = {}
        for i, j in sorted(pairs):
            (field, a_first, a_last, a_parts), (_, b_first, b_last, b_parts) = lefts[i], rights[j]
            place = (field, min(a_first, b_first), max(a_last, b_last))
            if place not in found:  # one per place: in a chain of NEARs they multiplied
                found[place] = (*place, a_parts + b_parts)
        return sorted(found.values())

    def trigger(self) -> Trigger | None:
        return _most_selective(self.children())

    def children(self) -> tuple[Plan, ...]:
        return (self.left, self.right)


class AtLeast(Plan):
    __slots__ = ("count", "item")

    def __init__(self, source: syntax.Node, count: int, item: Positional) -> None:
        super().__init__(source)
        self.count = count
        self.item = item

    def holds(self, view: View) -> bool:
        return len(disjoint(self.item.occurrences(view))) >= self.count

    def evidence(self, view: View) -> list[Span] | None:
        found = disjoint(self.item.occurrences(view))
        return list(chain.from_iterable(map(_PARTS, found))) if len(found) >= self.count else None

    def trigger(self) -> Trigger | None:
        return self.item.trigger()

    def children(self) -> tuple[Plan, ...]:
        return (self.item,)


class All(Plan):
    __slots__ = ("items",)

    def __init__(self, source: syntax.Node, items: tuple[Plan, ...]) -> None:
        super().__init__(source)
        self.items = items

    def holds(self, view: View) -> bool:
        return all(item.holds(view) for item in self.items)

    def evidence(self, view: View) -> list[Span] | None:
        spans: list[Span] = []
        for item in self.items:
            found = item.evidence(view)
            if found is None:
                return None
            spans.extend(found)
        return spans

    def trigger(self) -> Trigger | None:
        return _most_selective(self.items)

    def children(self) -> tuple[Plan, ...]:
        return self.items


class Any(Alternatives):
    """OR with an AND/NOT inside, so it has no positions of its own."""

    __slots__ = ("items",)

    def __init__(self, source: syntax.Node, items: tuple[Plan, ...]) -> None:
        super().__init__(source)
        self.items = items

    def holds(self, view: View) -> bool:
        return any(item.holds(view) for item in self.items)

    def evidence(self, view: View) -> list[Span] | None:
        found = [item.evidence(view) for item in self.items]
        held = [spans for spans in found if spans is not None]
        return [span for spans in held for span in spans] if held else None


class Negation(Plan):
    __slots__ = ("item",)

    def __init__(self, source: syntax.Node, item: Plan) -> None:
        super().__init__(source)
        self.item = item

    def holds(self, view: View) -> bool:
        return not self.item.holds(view)

    def evidence(self, view: View) -> list[Span] | None:
        return None if self.item.holds(view) else []

    def trigger(self) -> None:
        return None

    def _requirement(self, memo: dict[int, Requirement]) -> Requirement:
        return ()

    def children(self) -> tuple[Plan, ...]:
        return (self.item,)


# The classes monitor/rules/_speedups.c's ``Evaluator`` walks in C; it asks any other
# node (a prefix, ATLEAST) through its own methods.
KINDS = (Words, AnyOf, Near, All, Any, Negation)


class PythonEvaluator:
    """Plan evaluation as the plans' own methods do it; ``_speedups.Evaluator`` is the
    compiled form, which walks the nodes of ``kinds`` in C: a candidate rule's evidence
    took a dozen Python calls, which at 10,000 rules cost a third of matching."""

    def __init__(self, kinds: tuple[type[Plan], ...], stride: int) -> None:
        del kinds, stride  # what the compiled form needs to walk the plans itself

    def evidence(self, plan: Plan, view: View) -> list[Span] | None:
        return plan.evidence(view)


def closest(
    xs: Sequence[Occurrence],
    ys: Sequence[Occurrence],
    reach: int | None,
    tokens: Sequence[normalize.Tokens],
) -> Iterator[tuple[int, int]]:
    """For each x, the y it pairs with closest on each side, as (x index, y index): of
    those after it within ``reach`` words (or in its sentence when ``reach`` is None), the
    one ending first; of those before it, the one starting last (ties: the earlier in
    ``ys``). Any other pair of that x and side holds the chosen pair's place inside its
    own, with the same outer end, so the NEAR holds, nests and highlights as if every pair
    were kept, while the pairs stay linear in number (monitor/rules/_speedups.c does the
    same in C)."""
    for after in (True, False):
        yield from _closest_on_one_side(after, xs, ys, reach, tokens)


def _closest_on_one_side(
    after: bool,
    xs: Sequence[Occurrence],
    ys: Sequence[Occurrence],
    reach: int | None,
    tokens: Sequence[normalize.Tokens],
) -> Iterator[tuple[int, int]]:
    """A window slides over the ys in order of the word that faces x (after x: their
    first; before: their last), and a deque keeps the window's best: after x, the y
    ending first; before, the one starting last."""

    def x_at(i: int) -> tuple[int, int]:  # its field and its word facing the ys
        field, first, last, _ = xs[i]
        return field, last if after else first

    def y_at(j: int) -> tuple[int, int]:  # its field and its word facing x
        field, first, last, _ = ys[j]
        return field, first if after else last

    def best(j: int) -> tuple[int, int]:  # least is best: ending first, or starting last
        return (ys[j][2], j) if after else (-ys[j][1], j)

    ordered = sorted(range(len(ys)), key=y_at)
    window: deque[tuple[tuple[int, int], int]] = deque()  # (best's key, y index)
    added = 0
    for i in sorted(range(len(xs)), key=x_at):
        field, first, last, _ = xs[i]
        if after:  # the window: the ys facing x from [low, high] of x's field
            low, high = last + 1, STRIDE if reach is None else last + reach
        else:
            low, high = -1 if reach is None else first - reach, first - 1
        while added < len(ys) and y_at(ordered[added]) <= (field, high):
            j = ordered[added]
            while window and window[-1][0] >= best(j):
                window.pop()
            window.append((best(j), j))
            added += 1
        while window and y_at(window[0][1]) < (field, low):
            window.popleft()
        if window:
            j = window[0][1]
            span = min(first, ys[j][1]), max(last, ys[j][2])
            if reach is not None or _one_sentence(tokens[field], *span):
                yield i, j


def _one_sentence(tokens: normalize.Tokens, first: int, last: int) -> bool:
    return tokens.sentence_of(first) == tokens.sentence_of(last)


def disjoint(occurrences: list[Occurrence]) -> list[Occurrence]:
    """Leftmost-longest occurrences that share no word, in text order."""
    ordered = sorted(occurrences, key=lambda o: (o[0], o[1], -o[2]))
    kept: list[Occurrence] = []
    for o in ordered:
        if kept and kept[-1][0] == o[0] and o[1] <= kept[-1][2]:
            continue
        kept.append(o)
    return kept


def word_occurrences_python(
    where: dict[str, list[int]], keys: Iterable[str], fields: AbstractSet[int], stride: int
) -> list[Occurrence]:
    """Every place of any of ``keys`` in ``fields``, in text order, each its own span
    (monitor/rules/_speedups.c does the same in C)."""
    places = _places(where, keys)
    if fields is not ALL_FIELDS:
        places = [p for p in places if p // stride in fields]
    return [(f, i, i, ((f, i, i),)) for f, i in map(divmod, places, repeat(stride))]


if native.COMPILED:
    from monitor.rules._speedups import word_occurrences as _word_occurrences
else:
    _word_occurrences = word_occurrences_python


def phrase_occurrences_python(
    where: dict[str, list[int]],
    folded: Sequence[list[str]],
    keys: Iterable[str],
    anchor: int,
    sequence: list[str],
    fields: AbstractSet[int],
    stride: int,
) -> list[Occurrence]:
    """Every place in ``fields`` where the words ``sequence`` stand, in text order, found
    from the places of its word ``anchor`` (any of ``keys``): beside each, one list
    comparison with the field's words (monitor/rules/_speedups.c does the same in C)."""
    found: list[Occurrence] = []
    size = len(sequence)
    for f, i in map(divmod, _places(where, keys), repeat(stride)):
        first = i - anchor
        if first >= 0 and f in fields and folded[f][first : first + size] == sequence:
            found.append((f, first, first + size - 1, ((f, first, first + size - 1),)))
    return found


if native.COMPILED:
    from monitor.rules._speedups import phrase_occurrences as _phrase_occurrences
else:
    _phrase_occurrences = phrase_occurrences_python


def _places(where: Mapping[str, list[int]], keys: Iterable[str]) -> list[int]:
    """Places of any of ``keys`` (a word and its inflections), in text order.

    Mostly one of the keys occurs, and its list is already in order.
    """
    found = list(filter(None, map(where.get, keys)))
    if len(found) == 1:
        return found[0]
    return sorted(chain.from_iterable(found))


def slot_of(keys: Iterable[str]) -> Slot:
    return tuple(sorted(set(keys)))


def rarest(slots: Iterable[S]) -> S:
    """The key set least likely to occur: the one whose shortest key is longest."""
    return max(slots, key=lambda keys: min(map(key_length, keys)))


def key_length(key: Key) -> int:
    """Longer words are rarer; a pair is rarer than either of its words."""
    return len(key) if isinstance(key, str) else len(key[0]) + len(key[1]) + 1


def _conjoin(items: Iterable[Plan], memo: dict[int, Requirement]) -> Requirement:
    return tuple(dict.fromkeys(keys for item in items for keys in item.requires(memo)))


def _disjoin(items: Iterable[Plan], memo: dict[int, Requirement]) -> Requirement:
    """For an OR, one key set: the union of one necessary set from every alternative."""
    chosen = []
    for item in items:
        needed = item.requires(memo)
        if not needed:
            return ()  # this alternative can hold without any known key
        chosen.append(rarest(needed))
    return (frozenset().union(*chosen),)


def _union(triggers: Iterable[Trigger | None]) -> Trigger | None:
    keys: set[str] = set()
    prefixes: set[str] = set()
    alternatives = 0
    for trigger in triggers:
        if trigger is None:
            return None
        keys |= trigger.keys
        prefixes |= trigger.prefixes
        alternatives += trigger.alternatives
    return Trigger(frozenset(keys), frozenset(prefixes), alternatives)


def _most_selective(items: Sequence[Plan]) -> Trigger | None:
    """For an AND, one necessary child suffices: take the one fewest texts will contain."""
    triggers = [t for t in (item.trigger() for item in items) if t is not None]
    return min(triggers, key=lambda t: t.cost, default=None)


class Builder:
    """Turns ASTs into plans, sharing equal sub-plans across rules.

    Only explanations read a plan's ``source``; without ``keep_sources`` the plans let go
    of the AST, which the rule index does not keep (3 MB at 10,000 rules).
    """

    def __init__(
        self,
        entities: Mapping[str, Sequence[syntax.Phrase | syntax.Exact]],
        keep_sources: bool = True,
    ) -> None:
        self.entities = entities
        self.keep_sources = keep_sources
        self.shared: dict[tuple[object, ...], Plan] = {}
        # One tuple per distinct slot: rules and entities repeat words.
        self.slots: dict[Slot, Slot] = {}
        # An entity's node per fields: thousands of rules name the same few entities.
        self.named: dict[tuple[str, frozenset[int]], Plan] = {}
        # A query word's slot, its inflections: rules repeat words.
        self.inflected: dict[str, Slot] = {}

    def build(self, node: syntax.Node, fields: frozenset[int] = ALL_FIELDS) -> Plan:
        """Compile ``node``; entity names must have been checked against ``entities``."""
        if isinstance(node, syntax.Word):
            slot = self.inflected.get(node.key)
            if slot is None:
                slot = self.inflected[node.key] = slot_of(forms(node.key))
            return self._words(node, (slot,), fields, False)
        if isinstance(node, syntax.Phrase):
            return self._words(node, tuple((w,) for w in node.words), fields, False)
        if isinstance(node, syntax.Exact):
            return self._words(node, tuple((w,) for w in node.words), fields, True)
        if isinstance(node, syntax.Prefix):
            return self._share(
                ("prefix", node.stem, fields), lambda: Prefix(node, node.stem, fields)
            )
        if isinstance(node, syntax.EntityRef):
            plan = self.named.get((node.name, fields))
            if plan is None:
                forms_ = tuple(self.positional(form, fields) for form in self.entities[node.name])
                plan = self.named[node.name, fields] = self._any_of(node, forms_)
            return plan
        if isinstance(node, syntax.Scope):
            return self.build(node.item, fields & {FIELDS.index(node.field)})
        if isinstance(node, syntax.Not):
            item = self.build(node.item, fields)
            return self._share(("not", item.ident), lambda: Negation(node, item))
        if isinstance(node, syntax.AtLeast):
            counted = self.positional(node.item, fields)
            return self._share(
                ("atleast", node.count, counted.ident), lambda: AtLeast(node, node.count, counted)
            )
        if isinstance(node, syntax.Near):
            left = self.positional(node.left, fields)
            right = self.positional(node.right, fields)
            return self._share(
                ("near", left.ident, right.ident, node.distance),
                lambda: Near(node, left, right, node.distance),
            )
        items = tuple(self.build(item, fields) for item in node.items)
        idents = tuple(item.ident for item in items)
        if isinstance(node, syntax.And):
            return self._share(("all", *idents), lambda: All(node, items))
        positional = tuple(item for item in items if isinstance(item, Positional))
        if len(positional) == len(items):
            return self._any_of(node, positional)
        return self._share(("anyplan", *idents), lambda: Any(node, items))

    def positional(self, node: syntax.Node, fields: frozenset[int]) -> Positional:
        plan = self.build(node, fields)
        assert isinstance(plan, Positional)  # the parser only lets positional nodes here
        return plan

    def _any_of(self, node: syntax.Node, items: tuple[Positional, ...]) -> Plan:
        """OR of positional nodes; its alternatives are merged only when it is new (an
        entity is referred to by many rules)."""
        key = ("any", *(item.ident for item in items))
        return self._share(key, lambda: AnyOf(node, self._merged(node, items)))

    def _merged(self, node: syntax.Node, items: tuple[Positional, ...]) -> tuple[Positional, ...]:
        """``items`` with the one-word alternatives in the same fields (an entity's
        one-word names, ``a OR b``) as one word with all their keys: one lookup where each
        would take its own, and the same places, as a word has one place per token."""
        words = [item for item in items if isinstance(item, Words) and item.word is not None]
        if len(words) < 2 or len({item.fields for item in words}) != 1:
            return items
        keys = slot_of(chain.from_iterable(item.lookup[0] for item in words))
        merged = self._words(node, (keys,), words[0].fields, False)
        assert isinstance(merged, Positional)
        return (*(item for item in items if item not in words), merged)

    def _words(
        self,
        node: syntax.Node,
        slots: tuple[Slot, ...],
        fields: frozenset[int],
        case_sensitive: bool,
    ) -> Plan:
        slots = tuple(self.slots.setdefault(slot, slot) for slot in slots)
        return self._share(
            ("words", slots, fields, case_sensitive),
            lambda: Words(node, slots, fields, case_sensitive),
        )

    def _share(self, key: tuple[object, ...], make: Callable[[], Plan]) -> Plan:
        plan = self.shared.get(key)
        if plan is None:
            plan = make()
            plan.ident = len(self.shared) + 1
            if not self.keep_sources:
                plan.source = None
            self.shared[key] = plan
        return plan
