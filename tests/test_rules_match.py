"""The query language end to end: each operator and normalisation case on real-looking text."""

from __future__ import annotations

import pytest

from monitor.errors import QueryError, RuleCompileError
from monitor.models import MAX_MATCHED_WORDS, Document, RuleMatch
from monitor.rules import compile_rules

ENTITIES = {
    "russia": ["Russia", "Russian", "Russians", "Russian Federation", "Moscow", "Kremlin"],
    "us": ["'US'", "U.S.", "United States", "Washington"],
}


def matches(query: str, body: str, *, title: str = "", summary: str = "") -> bool:
    index = compile_rules({"r": query}, ENTITIES)
    return bool(index.match(Document(title, summary, body)))


CASES = [
    # words: whole words, case-insensitive, inflections
    ("embassy", "The EMBASSY said", True, "case-insensitive"),
    ("embassy", "their respective embassies", True, "plural -ies"),
    ("sanction", "The EU sanctioned three banks", True, "past tense"),
    ("sanction", "new sanctions on oil", True, "plural -s"),
    ("diplomat", "diplomats met", True, "plural"),
    ("Russia", "the Prussian embassy", False, "not inside another word"),
    ("Russia", "Russian diplomats", False, "not a derived word"),
    ("Russia", "Russia's embassy", True, "possessive"),
    ("Russia", "Russia’s embassy", True, "curly possessive"),
    ("Russia", "Russia-U.S. talks", True, "hyphenated compound"),
    ("zurich", "talks in Zürich", True, "diacritics folded"),
    ("Zürich", "talks in ZURICH", True, "diacritics folded in the query"),
    ("final", "the ﬁnal round", True, "NFKC ligature"),
    ("us", "U.S. officials", False, "dotted acronym is not the word us"),
    ("U.S.", "U.S. officials", True, "dotted acronym matches itself"),
    ("U.S.", "the U.S's envoy", True, "acronym possessive without final dot"),
    ("U.S.", "told us nothing", False, "acronym does not match the word"),
    ("AIDS OR HIV", "Food aid arrived in Hama", False, "an acronym in capitals: no inflections"),
    ("NATO", "the nato summit", True, "an acronym still ignores case"),
    # quoted phrases and exact case
    ('"state department"', "the State Department said", True, "phrase in order"),
    ('"state department"', "the department of state", False, "phrase order matters"),
    ('"state departments"', "the State Department", False, "phrase words are not inflected"),
    ('"embassy attack"', "near the embassy", False, "phrase cut off by the end of the text"),
    ('"of the embassy"', "embassy of the", False, "phrase cut off by the start of the text"),
    ('"white house"', "It was painted white. House prices rose.", False, "no phrase across a stop"),
    ('"white house"', "Painted white\nHouse prices", False, "no phrase across a line break"),
    ("'White House'", "painted White. House prices", False, "exact phrase, same"),
    ('"gen smith"', "Gen. Smith arrived", True, "an abbreviation's period ends no sentence"),
    ("'US'", "US officials", True, "exact case"),
    ("'US'", "told us", False, "exact case rejects lower case"),
    ("'US'", "U.S. officials", False, "exact case rejects dotted"),
    # wildcard
    ("embass*", "the embassies", True, "prefix"),
    ("embass*", "an ambassador", False, "prefix anchors at the word start"),
    # boolean
    ("embassy AND consulate", "embassy and consulate", True, "AND both"),
    ("embassy AND consulate", "embassy only", False, "AND one missing"),
    ("embassy consulate", "consulate near the embassy", True, "juxtaposition is AND"),
    ("embassy consulate", "embassy only", False, "juxtaposition needs both"),
    ("embassy OR consulate", "the consulate", True, "OR either"),
    ("ATLEAST/2 (sanction OR sanctions)", "new sanctions", False, "OR of shared forms counts once"),
    ("embassy NOT consulate", "the embassy", True, "NOT absent"),
    ("embassy NOT consulate", "the embassy and consulate", False, "NOT present"),
    ("NOT sport", "politics", True, "NOT alone"),
    ("(embassy OR consulate) AND attack", "attack on the consulate", True, "parentheses"),
    ("embassy OR consulate AND attack", "the embassy", True, "AND binds tighter than OR"),
    # NEAR
    ("embassy NEAR/3 attack", "attack on the embassy", True, "near, reverse order"),
    ("embassy NEAR/2 attack", "attack on the embassy", False, "too far"),
    ("embassy NEAR/1 attack", "embassy attack", True, "NEAR/1 is adjacent"),
    ("embassy NEAR/s attack", "The embassy was hit. An attack followed.", False, "sentence"),
    ("embassy NEAR/s attack", "The attack hit the embassy, officials said.", True, "sentence"),
    ("embassy NEAR/s attack", "Mr. Smith saw the attack near the embassy.", True, "abbreviation"),
    ("embassy NEAR/s attack", "Embassy closed\nThe attack came later", False, "a line ends one"),
    ("embassy NEAR/s attack", "Zürich embassy\nattack", False, "a line ends one, not ASCII"),
    ("embassy NEAR/s attack", "¼ embassy\n\nattack", False, "a line ends one, ¼ two words"),
    ("embassy NEAR/s attack", "¼ embassy, attack", True, "¼ two words, one sentence"),
    ("embassy NEAR/5 embassy", "the embassy", False, "no word counted twice"),
    ("embassy NEAR/5 embassy", "embassy to embassy", True, "two separate words"),
    # ATLEAST
    ("ATLEAST/3 @russia", "Russia, Moscow and the Kremlin", True, "three mentions"),
    ("ATLEAST/3 @russia", "Russia and the Russian Federation", False, "longest form counted once"),
    ("ATLEAST/2 embassy", "embassy and embassies", True, "inflections count"),
    (
        "ATLEAST/2 (embassy NEAR/s attack)",
        "An embassy saw the attack, and then embassy attack sirens.",
        True,
        "each pair counted, not one pair spanning both",
    ),
    (
        "ATLEAST/3 (embassy NEAR/s attack)",
        "An embassy saw the attack, and then embassy attack sirens.",
        False,
        "no word counted in two mentions",
    ),
    # entities
    (
        "@russia AND embassy",
        "Russian and U.S. diplomats met over the work of their respective embassies",
        True,
        "the design example",
    ),
    ("@russia AND embassy", "The Prussian embassy in London reopened.", False, "Prussia"),
    ("@russia", "Russias", False, "entity forms are not inflected"),
    ("@russia", "the Kremlin's line", True, "entity form possessive"),
    ("@us", "US troops", True, "exact form"),
    ("@us", "told us", False, "exact form rejects lower case"),
    ("@us", "the united states", True, "phrase form case-insensitive"),
]


@pytest.mark.parametrize(
    ("query", "body", "expected"), [c[:3] for c in CASES], ids=[c[3] for c in CASES]
)
def test_operator_table(query: str, body: str, expected: bool) -> None:
    """Each operator and normalisation rule decides matches as DESIGN.md section 2 says."""
    assert matches(query, body) is expected


FIELD_CASES = [
    ("title:embassy", "Embassy attacked", "", "", True, "in the title"),
    ("title:embassy", "Attack", "", "the embassy", False, "only in the body"),
    ("body:(embassy OR consulate)", "", "", "the consulate", True, "group scope"),
    ("summary:embassy", "", "the embassy", "", True, "summary"),
    ("embassy NEAR/5 attack", "Embassy", "", "attack", False, "NEAR never spans fields"),
    ('"state department"', "State", "", "Department said", False, "phrase never spans fields"),
    ("title:embassy OR consulate", "", "", "the embassy", False, "OR keeps each scope"),
    ("title:embassy OR consulate", "", "", "the consulate", True, "OR, the unscoped side"),
    ("ATLEAST/2 embassy", "Embassy", "", "embassy", True, "counts across fields"),
]


@pytest.mark.parametrize(
    ("query", "title", "summary", "body", "expected"),
    [c[:5] for c in FIELD_CASES],
    ids=[c[5] for c in FIELD_CASES],
)
def test_fields(query: str, title: str, summary: str, body: str, expected: bool) -> None:
    """Field scopes restrict where a term may match; NEAR stays within one field."""
    assert matches(query, body, title=title, summary=summary) is expected


HEADLINE_LEDES = [
    ("Russia expels envoy. The ministry gave him a week.", False, "title as a sentence"),
    ("Russia expels envoy.\nThe ministry gave him a week.", False, "title as a line"),
    ("Russia expels envoy over spy row. The ministry said.", True, "a sentence of its own"),
    ("Russia expels envoy. Moscow gave him a week.", True, "a second mention"),
]


@pytest.mark.parametrize(
    ("summary", "expected"), [c[:2] for c in HEADLINE_LEDES], ids=[c[2] for c in HEADLINE_LEDES]
)
def test_a_lede_repeating_the_headline_is_one_mention(summary: str, expected: bool) -> None:
    """A story as the daemon matches it (Document.of_story): a summary opening with the
    headline as its own sentence counts the headline's words once, so ATLEAST/2 needs a
    second mention (DESIGN.md 2)."""
    index = compile_rules({"r": "ATLEAST/2 @russia"}, ENTITIES)
    document = Document.of_story("Russia expels envoy", summary, "")
    assert bool(index.match(document)) is expected


def test_match_records_terms_as_found() -> None:
    """A match lists each matched occurrence with its field and offsets, and a snippet."""
    index = compile_rules({"r": "@russia AND embassy"}, ENTITIES)
    body = "Russian and U.S. diplomats met over the work of their respective embassies."
    [hit] = index.match(Document("Kremlin reacts", "", body))
    found = [(t.text, t.field, t.start, t.end) for t in hit.terms]
    assert found == [
        ("Kremlin", "title", 0, 7),
        ("Russian", "body", 0, 7),
        ("embassies", "body", 65, 74),
    ]
    assert hit.snippet == body


def test_snippet_is_made_on_first_read_and_compares_as_made() -> None:
    """A match's snippet is built when first read, then kept; equality sees its text."""
    index = compile_rules({"r": "embassy"}, ENTITIES)
    [hit] = index.match(Document("", "", "The embassy said nothing."))
    assert not isinstance(hit.lazy_snippet, str)  # nothing built yet
    eager = RuleMatch("r", hit.terms, "The embassy said nothing.")
    assert hit == eager
    assert hash(hit) == hash(eager)
    assert repr(hit) == repr(eager)
    assert hit.lazy_snippet == "The embassy said nothing."  # built once, kept
    assert hit != RuleMatch("r", hit.terms, "The embassy")


def test_only_restricts_rules() -> None:
    """``only`` limits matching to the named rules (feed scoping)."""
    index = compile_rules({"a": "embassy", "b": "embassy"}, {})
    doc = Document("", "", "the embassy")
    assert [m.rule for m in index.match(doc)] == ["a", "b"]
    assert [m.rule for m in index.match(doc, only={"b"})] == ["b"]


def test_unknown_entity_is_a_compile_error() -> None:
    """An unknown @entity names the rule, the entity and its column."""
    with pytest.raises(RuleCompileError) as info:
        compile_rules({"r": "embassy AND @russa"}, ENTITIES)
    err = info.value
    assert (err.rule, err.entity, err.form_index) == ("r", "russa", None)
    assert err.error.column == 13
    assert "unknown entity @russa" in str(err)


def test_bad_entity_form_is_a_compile_error() -> None:
    """A form that is not words or one 'exact' form names the entity and its index."""
    with pytest.raises(RuleCompileError) as info:
        compile_rules({}, {"russia": ["Russia", "Moscow OR Kremlin"]})
    err = info.value
    assert (err.rule, err.entity, err.form_index) == (None, "russia", 1)
    assert isinstance(err.error, QueryError)
    assert err.error.column == 8


def test_rule_parse_error_is_a_compile_error() -> None:
    """A rule that does not parse is reported under the rule's name with the column."""
    with pytest.raises(RuleCompileError) as info:
        compile_rules({"r": "embassy AND"}, {})
    assert info.value.rule == "r"
    assert str(info.value) == "rule 'r': column 12: expected a term after AND"


def test_a_hit_lists_at_most_a_hundred_distinct_matched_words() -> None:
    """A prefix rule on a page of thousands of distinct words lists the first hundred,
    in the order found: the stored hit and every alert carried them all."""
    words = [f"russ{n:04d}" for n in range(500)]
    [match] = compile_rules({"r": "russ*"}, {}).match(Document("", "", " ".join(words)))
    assert match.matched_words == tuple(words[:MAX_MATCHED_WORDS])
    assert MAX_MATCHED_WORDS == 100
