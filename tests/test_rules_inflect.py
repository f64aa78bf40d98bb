"""What a query word's inflection set catches, including its known over- and under-matching."""

from __future__ import annotations

import pytest

from monitor.rules.inflect import forms

# (query word, article word, matches?, why). "over" and "under" rows pin down the known
# mistakes of the method, so that a change to them is a visible decision.
TABLE = [
    ("embassy", "embassies", True, "plural -ies"),
    ("embassies", "embassy", True, "plural query finds the singular"),
    ("diplomat", "diplomats", True, "plural -s"),
    ("sanction", "sanctioned", True, "past -ed"),
    ("sanction", "sanctioning", True, "-ing"),
    ("sanctions", "sanctioned", True, "plural query finds the verb forms"),
    ("tax", "taxes", True, "sibilant plural -es"),
    ("hope", "hoping", True, "silent e dropped before -ing"),
    ("stop", "stopped", True, "consonant doubled"),
    ("agree", "agreed", True, "-ee takes -d"),
    ("wolf", "wolves", True, "-f plural"),
    ("knives", "knife", True, "an -ves plural query finds its singular"),
    ("thieves", "thief", True, "an -ves plural query finds its singular"),
    ("traffic", "trafficking", True, "-c takes -ck- before -ing"),
    ("panic", "panicked", True, "-c takes -ck- before -ed"),
    ("quit", "quitting", True, "qu is a consonant: the t doubles"),
    ("equip", "equipped", True, "qu is a consonant: the p doubles"),
    ("lives", "life", True, "over: lives the verb finds life the noun"),
    ("meet", "met", True, "irregular verb"),
    ("child", "children", True, "irregular plural"),
    ("crisis", "crises", True, "Latin/Greek plural"),
    ("russia", "russian", False, "derivation is not inflection"),
    ("russia", "prussia", False, "a longer word that contains it"),
    ("business", "busy", False, "no derivational stripping (a stemmer conflates these)"),
    ("general", "generally", False, "adverb is a different word"),
    ("news", "new", False, "news is not a plural"),
    ("us", "uses", False, "two-letter words match only themselves"),
    ("building", "build", True, "over: irregular group joins noun and verb"),
    ("see", "saw", True, "over: the tool and the past of see"),
    ("new", "news", True, "over: new takes -s like a noun"),
    ("hoping", "hope", False, "under: an -ing query is not de-inflected"),
    ("sanctioned", "sanction", False, "under: an -ed query is not de-inflected"),
    ("big", "bigger", False, "under: no comparatives"),
    ("arms", "arm", False, "under: arms is kept apart from arm on purpose"),
    ("mouse", "mouses", True, "harmless: regular forms are generated for irregular words too"),
]


@pytest.mark.parametrize(
    ("query", "word", "expected"), [t[:3] for t in TABLE], ids=[t[3] for t in TABLE]
)
def test_inflection_table(query: str, word: str, expected: bool) -> None:
    """A query word matches exactly the article words the table says, mistakes included."""
    assert (word in forms(query)) is expected


def test_forms_include_the_word_itself() -> None:
    """Every word matches itself, including numbers and acronyms, which get no inflections."""
    assert forms("2024") == {"2024"}
    assert forms("u.s.") == {"u.s."}
    assert "russia" in forms("russia")
