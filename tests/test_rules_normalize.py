"""Tokenisation: what counts as a word, its keys, offsets and sentence numbers."""

from __future__ import annotations

import pytest

from monitor.rules.normalize import _STOP, Spelling, fold, tokenize

WORDS = [
    ("Russia's embassy", ["russia", "embassy"], "possessive dropped"),
    ("Russia’s embassy", ["russia", "embassy"], "curly possessive dropped"),
    ("diplomats' cars", ["diplomats", "cars"], "plural possessive"),
    ("Russia-U.S. talks", ["russia", "u.s.", "talks"], "hyphenated compound"),
    ("the U.S.'s plan", ["the", "u.s.", "plan"], "acronym possessive"),
    ("U.S officials", ["u.s.", "officials"], "acronym without final dot"),
    ("U.S.A.", ["u.s.a."], "three-letter acronym"),
    ("don't", ["don't"], "contraction kept whole"),
    ("O’Brien", ["o'brien"], "curly apostrophe inside a name"),
    ("Zürich São Paulo", ["zurich", "sao", "paulo"], "diacritics folded"),
    ("Zu\u0308rich", ["zurich"], "decomposed diacritics"),
    ("ＵＳ ﬁnal", ["us", "final"], "NFKC: full width and ligature"),
    ("STRASSE Straße", ["strasse", "strasse"], "case folding, not lowering"),
    ("¼", ["1", "4"], "NFKC result split like spelled-out text"),
    ("e-mail, 3.5%", ["e", "mail", "3", "5"], "punctuation separates"),
]


@pytest.mark.parametrize(("text", "keys"), [w[:2] for w in WORDS], ids=[w[2] for w in WORDS])
def test_folded_keys(text: str, keys: list[str]) -> None:
    """Each text splits into these case- and accent-insensitive word keys."""
    assert tokenize(text).folded == keys


def test_exact_keys_keep_case() -> None:
    """Exact keys keep case but unify compatibility forms and apostrophes."""
    assert tokenize("US us ＵＳ O’Brien's").exact == ["US", "us", "US", "O'Brien"]


def test_offsets_point_at_the_words_as_found() -> None:
    """Offsets cover the word as written, without its possessive."""
    text = "Russia’s envoy met U.S.'s envoy"
    tokens = tokenize(text)
    found = [text[s:e] for s, e in zip(tokens.start, tokens.end, strict=True)]
    assert found == ["Russia", "envoy", "met", "U.S.", "envoy"]


@pytest.mark.parametrize("tail", ["", " — café"], ids=["ascii", "unicode"])
def test_an_all_caps_possessive_is_read_alike_in_any_text(tail: str) -> None:
    """All-caps copy's "U.S.'S" is the acronym and its possessive, as "U.S.'s" is, whether
    the field is plain ASCII (split lower-cased) or holds one accent anywhere (split by
    the Unicode pattern); offsets leave the possessive out."""
    text = f"THE U.S.'S ALLIES{tail}"
    tokens = tokenize(text)
    assert tokens.folded[:3] == ["the", "u.s.", "allies"]
    assert text[tokens.start[1] : tokens.end[1]] == "U.S."


SENTENCES = [
    ("One. Two", [0, 1], "period"),
    ("One! Two? Three", [0, 1, 2], "other stops"),
    ("Mr. Smith", [0, 0], "abbreviation"),
    ("John F. Kennedy", [0, 0, 0], "initial"),
    ("Article 5. Russia", [0, 0, 1], "a number is no initial"),
    ("Maj. Gen. Ivanov", [0, 0, 0], "ranks"),
    ("in the U.S. Officials", [0, 0, 0, 0], "acronym never ends a sentence"),
    ("3.5 percent", [0, 0, 0], "decimal point"),
    ('"Go." He', [0, 1], "stop before a closing quote"),
]


@pytest.mark.parametrize(
    ("text", "numbers"), [s[:2] for s in SENTENCES], ids=[s[2] for s in SENTENCES]
)
def test_sentence_numbers(text: str, numbers: list[int]) -> None:
    """Sentence numbers advance at sentence ends, not at abbreviations or acronyms."""
    assert tokenize(text).sentence == numbers


def test_fold_is_idempotent() -> None:
    """Folding a folded key changes nothing, so query and article keys are comparable."""
    for word in ["Zürich", "Straße", "ＵＳ", "O’Brien"]:
        assert fold(fold(word)) == fold(word)


def test_ascii_text_caches_only_the_words_that_need_spelling() -> None:
    """Lower-cased, a plain ASCII word is its own key: only stops, possessives and
    acronyms are spelled and cached, and exact keys keep the case as found."""
    cache: dict[str, Spelling] = {}
    tokens = tokenize("Russia's talks. The U.S. envoy’s US visit!", cache)
    assert tokens.folded == ["russia", "talks", "the", "u.s.", "envoy", "us", "visit"]
    assert set(cache) == {"russia's", ".", "u.s.", "envoy's", "!"}
    assert cache["."] is cache["!"] is _STOP
    assert tokens.exact == ["Russia", "talks", "The", "U.S.", "envoy", "US", "visit"]
    assert tokenize("talks", cache).folded == ["talks"]
    assert len(cache) == 5
    # The words a case-sensitive term checks, one at a time, are cached as found.
    assert [tokens.exact_of(i) for i in (0, 3, 5)] == ["Russia", "U.S.", "US"]
    assert cache.keys() - {"russia's", ".", "u.s.", "envoy's", "!"} == {"Russia's", "U.S.", "US"}
    tokenize("Zürich talks", cache)  # not ASCII: every surface is spelled
    assert {"Zürich", "talks"} <= cache.keys()
