"""The query parser: the AST it builds, and errors that say where and what was expected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import QueryError
from monitor.rules import parse_query
from monitor.rules.syntax import (
    And,
    AtLeast,
    EntityRef,
    Exact,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    Scope,
    Word,
    unparse,
)

TREES = [
    ("embassy", Word("embassy"), "word folded"),
    ("Embassy's", Word("embassy"), "possessive dropped"),
    ("anti-war", Phrase(("anti", "war")), "hyphenated word is a phrase"),
    ('"State Department"', Phrase(("state", "department")), "phrase"),
    ("“State Department”", Phrase(("state", "department")), "curly quotes"),
    ("'US'", Exact(("US",)), "exact"),
    ("'O'Brien'", Exact(("O'Brien",)), "apostrophe inside exact"),
    ("embass*", Prefix("embass"), "prefix"),
    ("@russia", EntityRef("russia"), "entity"),
    ("a b", And((Word("a"), Word("b"))), "juxtaposition"),
    ("a AND b OR c", Or((And((Word("a"), Word("b"))), Word("c"))), "AND before OR"),
    ("NOT a b", And((Not(Word("a")), Word("b"))), "NOT binds to one operand"),
    ("a NEAR/5 b", Near(Word("a"), Word("b"), 5), "near"),
    ("a NEAR/s b", Near(Word("a"), Word("b"), None), "near sentence"),
    ("a NEAR/0000001000000 b", Near(Word("a"), Word("b"), 1_000_000), "near, widest"),
    ("a NEAR/" + "0" * 5000 + "7 b", Near(Word("a"), Word("b"), 7), "near, zeros first"),
    ("NOT a NEAR/2 b", Not(Near(Word("a"), Word("b"), 2)), "NEAR before NOT"),
    ("ATLEAST/3 @russia", AtLeast(3, EntityRef("russia")), "atleast"),
    ("title:(a OR b)", Scope("title", Or((Word("a"), Word("b")))), "field group"),
    ("and", Word("and"), "lower-case operator is a word"),
    ("AIDS", Phrase(("aids",)), "a word in capitals is an acronym: no inflections"),
    ("NATO's", Phrase(("nato",)), "an acronym's possessive"),
    ("Aids", Word("aids"), "a capital initial is no acronym"),
    ("10:30", Phrase(("10", "30")), "colon after digits is not a field"),
]


@pytest.mark.parametrize(("text", "tree"), [t[:2] for t in TREES], ids=[t[2] for t in TREES])
def test_parse_tree(text: str, tree: object) -> None:
    """Queries parse to the AST the grammar prescribes."""
    assert parse_query(text).root == tree


NOT_POSITIONAL = "needs words, phrases, entities or OR-groups of them, not AND/NOT"
ERRORS = [
    ("", 1, "empty query: expected a term"),
    ("embassy AND", 12, "expected a term after AND"),
    ("@russia AND  OR x", 14, "expected a term after AND"),
    ("a OR", 5, "expected a term after OR"),
    ("NOT", 4, "expected a term after NOT"),
    ("(a OR b", 8, "expected ) to close the ( at column 1, found end of query"),
    ("a)", 2, "unexpected ) without a matching ("),
    ("()", 2, "expected a term inside ( )"),
    ('"abc', 1, 'unterminated phrase: expected a closing "'),
    ("'abc", 1, "unterminated exact term: expected a closing '"),
    ('""', 1, "expected words inside the quotes"),
    ("a NEAR/x b", 8, "expected a number or s after NEAR/"),
    ("ATLEAST/s a", 9, "expected a number after ATLEAST/"),
    ("ATLEAST/0 a", 9, "ATLEAST/0 can never match: use 1 or more"),
    ("a NEAR/1000001 b", 8, "NEAR/n takes n up to 1,000,000"),
    ("a NEAR/" + "9" * 5000 + " b", 8, "NEAR/n takes n up to 1,000,000"),
    ("ATLEAST/99999999999 a", 9, "ATLEAST/n takes n up to 1,000,000"),
    ("a NEAR/3", 9, "expected a term after NEAR/3"),
    ("a NEAR/3 NOT b", 10, "expected a term after NEAR/3"),
    ("a NEAR/3 (b AND c)", 11, f"NEAR/3 {NOT_POSITIONAL}"),
    ("titel:x", 1, "unknown field 'titel': expected title, summary or body"),
    ("title:", 7, "expected a term after title:"),
    ("title:(body:x)", 8, "body: inside title: can never match"),
    ("@", 1, "expected an entity name after @, found '@'"),
    ("*", 1, "expected one word before the wildcard *"),
    ("emb*assy", 4, "a wildcard * goes at the end of a word"),
    ('"state dep*"', 11, "a wildcard * has no place inside a phrase: its words are matched whole"),
    ("'U*S'", 3, "a wildcard * has no place inside an exact term: it is matched as written"),
    ("---", 1, "expected a term, found '---'"),
    ("a near/5 b", 3, "operators are written in capitals: NEAR/, not near/"),
    ("Atleast/2 a", 1, "operators are written in capitals: ATLEAST/, not Atleast/"),
    ("embassy -sport", 9, "a leading - excludes nothing: write NOT sport"),
    ("a b c) d", 6, "unexpected ) without a matching ("),
]


@pytest.mark.parametrize(("text", "column", "message"), ERRORS, ids=[e[2] for e in ERRORS])
def test_parse_errors(text: str, column: int, message: str) -> None:
    """A parse error carries the 1-based column and says what was expected there."""
    with pytest.raises(QueryError) as info:
        parse_query(text)
    assert (info.value.column, info.value.message) == (column, message)


def test_nesting_limit() -> None:
    """Absurd nesting is a QueryError, not a RecursionError: in parentheses, and in a
    chain of NEARs, each nested in the next (250 of them crashed `newsmon check` with a
    RecursionError when the plan was built)."""
    with pytest.raises(QueryError, match="nested more than"):
        parse_query("(" * 500 + "a" + ")" * 500)
    chain = " NEAR/1 ".join(["a"] * 251)
    with pytest.raises(QueryError, match="nested more than 100 levels") as info:
        parse_query(chain)
    assert info.value.column == chain.index("NEAR/1", len(" NEAR/1 ".join(["a"] * 101))) + 1
    parse_query(" NEAR/1 ".join(["a"] * 101))  # 100 levels: the limit, allowed


QUERY_ALPHABET = st.sampled_from(
    [
        "a",
        "b",
        "US",
        "U.S.",
        "AND",
        "OR",
        "NOT",
        "NEAR/2",
        "NEAR/s",
        "ATLEAST/2",
        "title:",
        "body:",
        "(",
        ")",
        '"',
        "'",
        "*",
        "@e",
        " ",
        "-",
        "é",
        "’s",
        ":",
        "/",
        "0",
    ]
)


@settings(max_examples=500, derandomize=True)
@given(st.one_of(st.text(max_size=40), st.lists(QUERY_ALPHABET, max_size=20).map("".join)))
def test_parser_never_crashes(text: str) -> None:
    """Any input parses (and unparses to an equal tree) or raises QueryError with a column."""
    column = None
    try:
        query = parse_query(text)
    except QueryError as e:
        column = e.column
    if column is None:
        assert parse_query(unparse(query.root)).root == query.root
    else:
        assert 1 <= column <= len(text) + 1
