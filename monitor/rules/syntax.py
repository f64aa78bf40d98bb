"""The query language: lexer, recursive-descent parser and the AST it produces.

Grammar, loosest binding first (DESIGN.md section 2 is the contract)::

    query    := or EOF
    or       := and ("OR" and)*
    and      := unary (["AND"] unary)*          side by side means AND
    unary    := "NOT" unary | near
    near     := primary ("NEAR/" (n | "s") primary)*
    primary  := "ATLEAST/" n primary | field ":" primary | "(" or ")" | term
    term     := word | word"*" | "phrase" | 'Exact' | @entity

Words are normalised with the same tokeniser as articles, so the AST holds match keys,
not spellings; every node keeps the 1-based column it started at, for error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from monitor.errors import QueryError
from monitor.rules import normalize

FIELDS = ("title", "summary", "body")
MAX_DEPTH = 100  # nesting deeper than this is a typo, and would exhaust the stack


def _column() -> Any:
    """Where a node starts (1-based); positions never make two nodes unequal."""
    return field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Word:
    """A whole word, case- and accent-insensitive, with its English inflections."""

    key: str
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in this order, exactly (case-insensitive, no inflection)."""

    words: tuple[str, ...]
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Exact:
    """Single-quoted words in order, case-sensitive: 'US' matches "US", never "us"."""

    words: tuple[str, ...]
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Prefix:
    """Any word starting with ``stem`` (``embass*``)."""

    stem: str
    column: int = _column()


@dataclass(frozen=True, slots=True)
class EntityRef:
    """``@name``: any surface form listed for the entity; resolved at compile time."""

    name: str
    column: int = _column()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Near:
    """Both sides in one field, within ``distance`` words (None: in the same sentence)."""

    left: Node
    right: Node
    distance: int | None
    column: int = _column()


@dataclass(frozen=True, slots=True)
class AtLeast:
    """At least ``count`` separate occurrences of ``item``."""

    count: int
    item: Node
    column: int = _column()


@dataclass(frozen=True, slots=True)
class Scope:
    """``field:item``: only occurrences inside that field count."""

    field: str
    item: Node
    column: int = _column()


Term = Word | Phrase | Exact | Prefix | EntityRef
Node = Term | And | Or | Not | Near | AtLeast | Scope


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the source text and the root of its AST."""

    text: str
    root: Node


# --- lexer -----------------------------------------------------------------------------

_OPEN_EXACT = "'‘"
_CLOSE_EXACT = "'’"
_OPEN_PHRASE = '"“'
_CLOSE_PHRASE = '"”'
_BARE_END = re.compile(r"[\s()\"“”]")
_COUNTED = re.compile(r"(NEAR|ATLEAST)/([0-9]+|s)?")
# NEAR/n and ATLEAST/n: more words than any article has; a longer number of digits
# would not even convert (Python refuses int() past 4,300 of them)
MAX_COUNT = 1_000_000
_FIELD = re.compile(r"([A-Za-z]+):")
ENTITY_NAME = re.compile(r"[A-Za-z0-9_-]+")  # what @name can name
_ENTITY = re.compile(rf"@({ENTITY_NAME.pattern})")


class _Lexeme(NamedTuple):  # a tuple: ten thousand rules make 50,000 of them
    kind: str  # "(", ")", AND, OR, NOT, NEAR, ATLEAST, FIELD, TERM, EOF
    column: int
    text: str = ""
    number: int | None = None
    term: Term | None = None


def _lex(text: str) -> list[_Lexeme]:
    """Split query text into lexemes; terms are already normalised here."""
    out: list[_Lexeme] = []
    i = 0
    while i < len(text):
        ch = text[i]
        column = i + 1
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Lexeme(ch, column, ch))
            i += 1
        elif ch in _OPEN_PHRASE:
            end = _find_close(text, i, _CLOSE_PHRASE, "phrase", '"')
            _no_wildcard(text, i + 1, end, "inside a phrase: its words are matched whole")
            words = tuple(normalize.tokenize(text[i + 1 : end]).folded)
            if not words:
                raise QueryError(column, "expected words inside the quotes")
            out.append(_Lexeme("TERM", column, text[i : end + 1], term=Phrase(words, column)))
            i = end + 1
        elif ch in _OPEN_EXACT:
            end = i
            while True:  # a quote closes only before a space, ')' or the end: 'O'Brien'
                end = _find_close(text, end, _CLOSE_EXACT, "exact term", "'")
                if end + 1 == len(text) or _BARE_END.match(text, end + 1):
                    break
            _no_wildcard(text, i + 1, end, "inside an exact term: it is matched as written")
            words = tuple(normalize.tokenize(text[i + 1 : end]).exact)
            if not words:
                raise QueryError(column, "expected words inside the quotes")
            out.append(_Lexeme("TERM", column, text[i : end + 1], term=Exact(words, column)))
            i = end + 1
        else:
            end_match = _BARE_END.search(text, i)
            end = end_match.start() if end_match else len(text)
            bare = text[i:end]
            field_match = _FIELD.match(bare) if ":" in bare else None
            if field_match:
                name = field_match.group(1)
                if name not in FIELDS:
                    expected = "expected title, summary or body"
                    raise QueryError(column, f"unknown field {name!r}: {expected}")
                out.append(_Lexeme("FIELD", column, name))
                i += len(field_match.group())
                continue
            out.append(_bare(bare, column))
            i = end
    out.append(_Lexeme("EOF", len(text) + 1, "end of query"))
    return out


def _no_wildcard(text: str, start: int, end: int, where: str) -> None:
    """A ``*`` in ``text[start:end]`` is an error: it would be dropped as punctuation, and
    the term silently become another (``"state dep*"`` the phrase "state dep")."""
    star = text.find("*", start, end)
    if star != -1:
        raise QueryError(star + 1, f"a wildcard * has no place {where}")


def _find_close(text: str, start: int, closers: str, what: str, expected: str) -> int:
    for j in range(start + 1, len(text)):
        if text[j] in closers:
            return j
    raise QueryError(start + 1, f"unterminated {what}: expected a closing {expected}")


def _bare(bare: str, column: int) -> _Lexeme:
    """Classify an unquoted run of characters: operator, entity, prefix or word(s)."""
    if bare in ("AND", "OR", "NOT"):
        return _Lexeme(bare, column, bare)
    if "/" in bare and bare.upper().startswith(("NEAR/", "ATLEAST/")):
        op = bare.split("/", 1)[0]
        if op != op.upper():  # near/5 was the phrase "near 5"
            raise QueryError(column, f"operators are written in capitals: {op.upper()}/, not {op}/")
        counted = _COUNTED.fullmatch(bare)
        if counted is None or counted.group(2) is None or (op == "ATLEAST" and bare[-1] == "s"):
            wanted = "a number or s" if op == "NEAR" else "a number"
            raise QueryError(column + len(op) + 1, f"expected {wanted} after {op}/")
        arg = counted.group(2)
        number = None
        if arg != "s":
            digits = arg.lstrip("0") or "0"  # NEAR/007 is NEAR/7
            # the length first: int() refuses 4,300 digits and more
            if len(digits) > len(str(MAX_COUNT)) or int(digits) > MAX_COUNT:
                raise QueryError(column + len(op) + 1, f"{op}/n takes n up to {MAX_COUNT:,}")
            number = int(digits)
        if number == 0:
            raise QueryError(column + len(op) + 1, f"{op}/0 can never match: use 1 or more")
        return _Lexeme(op, column, bare, number=number)
    if bare.startswith(("-", "–", "—")) and bare[1:2].isalpha():  # -sport was sport, required
        raise QueryError(column, f"a leading - excludes nothing: write NOT {bare[1:]}")
    if bare.startswith("@"):
        entity = _ENTITY.fullmatch(bare)
        if entity is None:
            raise QueryError(column, f"expected an entity name after @, found {bare!r}")
        return _Lexeme("TERM", column, bare, term=EntityRef(entity.group(1), column))
    if "*" in bare[:-1]:  # emb*assy was the phrase "emb assy"
        raise QueryError(column + bare.index("*"), "a wildcard * goes at the end of a word")
    if bare.endswith("*"):
        tokens = normalize.tokenize(bare[:-1])
        if len(tokens) != 1 or tokens.acronym[0]:
            raise QueryError(column, "expected one word before the wildcard *")
        return _Lexeme("TERM", column, bare, term=Prefix(tokens.folded[0], column))
    tokens = normalize.tokenize(bare)
    words = tokens.folded
    if not words:
        raise QueryError(column, f"expected a term, found {bare!r}")
    # "anti-war" or "Russia-U.S." are several words: match them as the phrase they form;
    # so is an acronym in capitals, one word with no inflections (AIDS is not "aid").
    acronym = len(words) == 1 and bare[:2].isupper() and _capitals(tokens.exact[0])
    term: Term = (
        Word(words[0], column) if len(words) == 1 and not acronym else Phrase(tuple(words), column)
    )
    return _Lexeme("TERM", column, bare, term=term)


def _capitals(word: str) -> bool:
    """An acronym written as one: two letters or more, all capitals (NATO, AIDS)."""
    return len(word) > 1 and word.isalpha() and word.isupper()


# --- parser ----------------------------------------------------------------------------

_STARTS_OPERAND = frozenset({"(", "NOT", "ATLEAST", "FIELD", "TERM"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.lexemes = _lex(text)
        self.pos = 0
        self.peek = self.lexemes[0]  # the next lexeme; an attribute, read 20 times a query
        self.depth = 0
        self.scope: str | None = None

    def take(self) -> _Lexeme:
        """The next lexeme, moving past it (never past the end: EOF is never taken)."""
        lexeme = self.peek
        self.pos += 1
        self.peek = self.lexemes[self.pos]
        return lexeme

    def expect_operand(self, after: _Lexeme) -> None:
        if self.peek.kind not in _STARTS_OPERAND:
            raise QueryError(self.peek.column, f"expected a term after {after.text}")

    def descend(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(column, f"query nested more than {MAX_DEPTH} levels deep")

    def query(self) -> Node:
        if self.peek.kind == "EOF":
            raise QueryError(1, "empty query: expected a term")
        root = self.or_()
        if self.peek.kind != "EOF":
            found = self.peek
            if found.kind == ")":
                raise QueryError(found.column, "unexpected ) without a matching (")
            raise QueryError(found.column, f"expected AND, OR or the end, found {found.text}")
        return root

    def or_(self) -> Node:
        first = self.peek.column
        items = [self.and_()]
        while self.peek.kind == "OR":
            self.expect_operand(self.take())
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items), first)

    def and_(self) -> Node:
        first = self.peek.column
        items = [self.unary()]
        while self.peek.kind == "AND" or self.peek.kind in _STARTS_OPERAND:
            if self.peek.kind == "AND":
                self.expect_operand(self.take())
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items), first)

    def unary(self) -> Node:
        if self.peek.kind != "NOT":
            return self.near()
        op = self.take()
        self.expect_operand(op)
        self.descend(op.column)
        item = self.unary()
        self.depth -= 1
        return Not(item, op.column)

    def near(self) -> Node:
        """A chain of NEARs nests each in the next (``a NEAR b NEAR c`` is ``(a NEAR b)
        NEAR c``), so each counts as a level: 250 of them exhausted the stack when the
        plan was built."""
        left, levels = self.primary(), 0
        while self.peek.kind == "NEAR":
            op = self.take()
            self.descend(op.column)
            levels += 1
            if self.peek.kind not in _STARTS_OPERAND - {"NOT"}:
                raise QueryError(self.peek.column, f"expected a term after {op.text}")
            right = self.primary()
            for side in (left, right):
                _require_positional(side, op.text)
            left = Near(left, right, op.number, left.column)
        self.depth -= levels
        return left

    def primary(self) -> Node:
        lexeme = self.peek
        if lexeme.kind == "TERM":
            self.take()
            assert lexeme.term is not None
            return lexeme.term
        if lexeme.kind == "(":
            self.take()
            self.descend(lexeme.column)
            if self.peek.kind == ")":
                raise QueryError(self.peek.column, "expected a term inside ( )")
            self.expect_operand(lexeme)
            inner = self.or_()
            if self.peek.kind != ")":
                raise QueryError(
                    self.peek.column,
                    f"expected ) to close the ( at column {lexeme.column}, found {self.peek.text}",
                )
            self.take()
            self.depth -= 1
            return inner
        if lexeme.kind in ("ATLEAST", "FIELD"):
            self.take()
            shown = f"{lexeme.text}:" if lexeme.kind == "FIELD" else lexeme.text
            if self.peek.kind not in _STARTS_OPERAND - {"NOT"}:
                raise QueryError(self.peek.column, f"expected a term after {shown}")
            self.descend(lexeme.column)
            outer_scope = self.scope
            if lexeme.kind == "FIELD":
                if outer_scope is not None and outer_scope != lexeme.text:
                    raise QueryError(
                        lexeme.column, f"{lexeme.text}: inside {outer_scope}: can never match"
                    )
                self.scope = lexeme.text
            item = self.primary()
            self.scope = outer_scope
            self.depth -= 1
            if lexeme.kind == "FIELD":
                return Scope(lexeme.text, item, lexeme.column)
            _require_positional(item, lexeme.text)
            assert lexeme.number is not None
            return AtLeast(lexeme.number, item, lexeme.column)
        if lexeme.kind == "EOF":
            raise QueryError(lexeme.column, "expected a term")
        if lexeme.kind == ")":
            raise QueryError(lexeme.column, "unexpected ) without a matching (")
        raise QueryError(lexeme.column, f"expected a term, found {lexeme.text}")


def _require_positional(node: Node, op: str) -> None:
    """NEAR and ATLEAST count places in the text, so AND/NOT have no place to give them."""
    if not is_positional(node):
        raise QueryError(
            node.column, f"{op} needs words, phrases, entities or OR-groups of them, not AND/NOT"
        )


def is_positional(node: Node) -> bool:
    """Whether ``node`` has positions in the text (so NEAR and ATLEAST can use it)."""
    if isinstance(node, Or):
        return all(is_positional(item) for item in node.items)
    if isinstance(node, Scope):
        return is_positional(node.item)
    return not isinstance(node, And | Not | AtLeast)


def parse_query(text: str) -> Query:
    """Parse ``text`` into a Query; raises QueryError with the column and what was expected."""
    return Query(text, _Parser(text).query())


# --- unparse ---------------------------------------------------------------------------


def unparse(node: Node) -> str:
    """Query text for ``node`` that parses back to an equal AST; used by explanations."""
    if isinstance(node, Word):
        return node.key
    if isinstance(node, Phrase):
        return '"' + " ".join(node.words) + '"'
    if isinstance(node, Exact):
        return "'" + " ".join(node.words) + "'"
    if isinstance(node, Prefix):
        return node.stem + "*"
    if isinstance(node, EntityRef):
        return "@" + node.name
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return joiner.join(_group(item) for item in node.items)
    if isinstance(node, Not):
        return "NOT " + _group(node.item)
    if isinstance(node, Near):
        arg = "s" if node.distance is None else str(node.distance)
        return f"{_group(node.left)} NEAR/{arg} {_group(node.right)}"
    if isinstance(node, AtLeast):
        return f"ATLEAST/{node.count} {_group(node.item)}"
    return f"{node.field}:{_group(node.item)}"


def _group(node: Node) -> str:
    return unparse(node) if isinstance(node, Term | Scope) else f"({unparse(node)})"


def parse_form(text: str) -> Phrase | Exact:
    """Parse one entity surface form: words (a phrase) or a single 'exact' form.

    Forms are phrases rather than terms, so "Russia" matches "Russia's" but not "Russias".
    """
    lexemes = _lex(text)[:-1]
    terms = [lexeme.term for lexeme in lexemes]
    if len(terms) == 1 and isinstance(terms[0], Exact):
        return terms[0]
    words: list[str] = []
    for lexeme, term in zip(lexemes, terms, strict=True):
        if isinstance(term, Word):
            words.append(term.key)
        elif isinstance(term, Phrase):
            words.extend(term.words)
        else:
            raise QueryError(
                lexeme.column,
                f"an entity form is plain words or one 'exact' form, found {lexeme.text}",
            )
    if not words:
        raise QueryError(1, "expected the words of the form")
    return Phrase(tuple(words), 1)
