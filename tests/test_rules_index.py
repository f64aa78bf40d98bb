"""The rule index files rules under the needs documents meet least, without changing results."""

from __future__ import annotations

import contextlib
import gc

import pytest

from monitor.errors import RuleCompileError
from monitor.models import Document
from monitor.rules import compile_rules
from monitor.rules.index import LEARN_EVERY
from monitor.rules.plan import AnyOf, Words


def test_rules_are_refiled_under_the_need_met_least() -> None:
    """A rule filed under a long but common name moves to its rarer word; matches stay."""
    index = compile_rules({"r": "@e AND zebra"}, {"e": ["Whichever"]})
    entity, word = index._needs[0]  # key sets are numbered in the rule's order
    assert index._by_need == {entity: [0]}  # the longest word, at first
    common = Document("", "", "Whichever way it goes.")
    both = Document("", "", "Whichever zebra wins.")
    before = index.match(both)
    for _ in range(LEARN_EVERY * 8):
        assert index.match(common) == []
    assert index._by_need == {word: [0]}
    assert index.match(both) == before != []


def test_one_word_alternatives_are_one_shared_word() -> None:
    """An OR's one-word alternatives become one word node with all their keys, which rules
    share (an entity's one-word names, a quoted OR of the same words), so each document
    looks it up once."""
    index = compile_rules(
        {"a": "@e AND envoy", "b": '("Russia" OR "Moscow") NEAR/3 talks'},
        {"e": ["Moscow", "Russia", "Russian Federation"]},
    )
    entity, _ = index.rules["a"].plan.children()
    near, _ = index.rules["b"].plan.children()
    assert isinstance(entity, AnyOf)
    assert isinstance(near, AnyOf)
    phrase, word = entity.items
    assert isinstance(phrase, Words)
    assert isinstance(word, Words)
    assert word.lookup == (("moscow", "russia"),)
    assert near.items == (word,)
    doc = Document("", "", "Moscow held talks with the envoy of the Russian Federation.")
    assert [m.rule for m in index.match(doc)] == ["a", "b"]


def test_the_index_keeps_no_syntax_tree_and_still_explains() -> None:
    """Only explanations need a query's syntax tree: the index's plans let go of theirs,
    and an explanation parses the rule's text again to quote the clause that failed."""
    index = compile_rules({"r": "@e AND (envoy OR consul)"}, {"e": ["Moscow", "Russia"]})
    plans = [index.rules["r"].plan]
    while plans:
        plan = plans.pop()
        assert plan.source is None, plan
        plans.extend(plan.items if isinstance(plan, AnyOf) else plan.children())
    failure = index.explain(Document("", "", "Moscow sent an ambassador."), "r").failure
    assert failure is not None
    assert (failure.clause, failure.column) == ("envoy OR consul", 9)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("query", ["embassy AND @russia", "embassy AND"])
def test_compiling_leaves_the_garbage_collector_as_it_found_it(enabled: bool, query: str) -> None:
    """The collector paused while rules compile is running again afterwards (or still
    off, if it was), whether the rule compiled or raised."""
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with contextlib.suppress(RuleCompileError):
            compile_rules({"r": query}, {"russia": ["Russia"]})
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
