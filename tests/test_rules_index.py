"""The rule index files rules under the needs documents meet least, without changing results."""

from __future__ import annotations

from monitor.models import Document
from monitor.rules import compile_rules
from monitor.rules.index import LEARN_EVERY


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
