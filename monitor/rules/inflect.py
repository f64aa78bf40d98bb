"""English inflections of a query word, generated once at compile time.

Why generate rather than stem: a stemmer (Porter2/Snowball) also strips derivational
suffixes, so "business" meets "busy" and "university" meets "universe", and it would run on
every article word. Generating the inflected forms of each query word instead keeps the
article side a plain dictionary lookup, and spelling out a form that is not a word
("embassys") costs nothing because no article contains it. The trade-offs are pinned down
by the over/under-matching table in tests/test_rules_inflect.py and in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

_VOWELS = frozenset("aeiou")
_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")

# Irregular nouns and verbs common in news copy; any member stands for its whole group.
_IRREGULAR_GROUPS = (
    "be is am are was were been being",
    "have has had having",
    "do does did done doing",
    "go goes went gone going",
    "say says said saying",
    "see sees saw seen seeing",
    "meet meets met meeting",
    "lead leads led leading",
    "hold holds held holding",
    "fight fights fought fighting",
    "buy buys bought buying",
    "sell sells sold selling",
    "win wins won winning",
    "lose loses lost losing",
    "flee flees fled fleeing",
    "seek seeks sought seeking",
    "shoot shoots shot shooting",
    "strike strikes struck striking stricken",
    "steal steals stole stolen stealing",
    "take takes took taken taking",
    "give gives gave given giving",
    "begin begins began begun beginning",
    "run runs ran running",
    "rise rises rose risen rising",
    "fall falls fell fallen falling",
    "break breaks broke broken breaking",
    "speak speaks spoke spoken speaking",
    "write writes wrote written writing",
    "choose chooses chose chosen choosing",
    "make makes made making",
    "keep keeps kept keeping",
    "leave leaves left leaving",
    "send sends sent sending",
    "build builds built building",
    "pay pays paid paying",
    "tell tells told telling",
    "bring brings brought bringing",
    "catch catches caught catching",
    "know knows knew known knowing",
    "grow grows grew grown growing",
    "throw throws threw thrown throwing",
    "fly flies flew flown flying",
    "drive drives drove driven driving",
    "hide hides hid hidden hiding",
    "spend spends spent spending",
    "arise arises arose arisen arising",
    "knife knives",
    "wife wives",
    "life lives",
    "thief thieves",
    "half halves",
    "shelf shelves",
    "self selves",
    "wolf wolves",
    "man men",
    "woman women",
    "child children",
    "person people persons",
    "foot feet",
    "tooth teeth",
    "mouse mice",
    "crisis crises",
    "analysis analyses",
    "thesis theses",
    "criterion criteria",
    "phenomenon phenomena",
)
_IRREGULAR = {
    word: frozenset(group.split()) for group in _IRREGULAR_GROUPS for word in group.split()
}
# Words whose final -s is not a plural: "news" must not turn into "new".
_NOT_PLURAL = frozenset(
    {
        *("news", "series", "species", "means", "arms", "headquarters"),
        *("politics", "economics", "physics", "ethics", "athletics", "mathematics"),
    }
)
_MIN_LENGTH = 3  # "us" must not grow "uses"; short words match only themselves


def forms(word: str) -> frozenset[str]:
    """Every form a folded query ``word`` matches: itself and its English inflections.

    Words shorter than three letters and words with digits or dots only match themselves.
    """
    if len(word) < _MIN_LENGTH or not word.isalpha():
        return frozenset({word})
    found = {word, *_IRREGULAR.get(word, ())}
    for base in [word, *(b for b in _singulars(word) if len(b) >= _MIN_LENGTH)]:
        found.add(base)
        found.update(_inflections(base))
    return frozenset(found)


def _singulars(word: str) -> Iterator[str]:
    """Bases a plural or third-person query word may come from ("sanctions" -> "sanction")."""
    if word in _NOT_PLURAL or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return
    if word.endswith("ies") and len(word) > 4:
        yield word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(_SIBILANT_ENDINGS):
        yield word[:-2]
    if len(word) > _MIN_LENGTH:
        yield word[:-1]


def _inflections(base: str) -> Iterable[str]:
    """Plural / third person, past and -ing forms of ``base`` under regular spelling rules."""
    stem_y = base[:-1] if base.endswith("y") and base[-2:-1] not in _VOWELS else None
    if stem_y is not None:
        yield from (stem_y + "ies", stem_y + "ied", base + "ing")
        return
    if base.endswith(_SIBILANT_ENDINGS):
        yield base + "es"
    elif base.endswith("o"):
        yield from (base + "s", base + "es")
    else:
        yield base + "s"
    if base.endswith("f"):
        yield base[:-1] + "ves"  # wolf, wolves
    elif base.endswith("fe"):
        yield base[:-2] + "ves"  # knife, knives
    if base.endswith("ie"):
        yield from (base + "d", base[:-2] + "ying")  # die, died, dying
    elif base.endswith("ee"):
        yield from (base + "d", base + "ing")  # agree, agreed, agreeing
    elif base.endswith("e"):
        yield from (base + "d", base[:-1] + "ing")  # hope, hoped, hoping
    else:
        yield from (base + "ed", base + "ing")
    if base.endswith("c"):
        yield from (base + "ked", base + "king")  # panic, panicked; traffic, trafficking
    elif _ends_consonant_vowel_consonant(base):
        doubled = base + base[-1]  # stop, stopped; both spellings, stress is unknown
        yield from (doubled + "ed", doubled + "ing")


def _ends_consonant_vowel_consonant(word: str) -> bool:
    a, b, c = word[-3], word[-2], word[-1]
    consonant_a = a not in _VOWELS or word[-4:-2] == "qu"  # quit, equip: the u is no vowel
    return consonant_a and b in _VOWELS and c not in _VOWELS and c not in "wxy"
