from collections.abc import Callable, Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet

from monitor.models import MatchedTerm
from monitor.rules.index import PythonGatherer, PythonMatcher
from monitor.rules.normalize import Spelling
from monitor.rules.plan import PythonEvaluator, View

def split_plain(
    text: str,
    cache: dict[str, Spelling],
    spell: Callable[[str], Spelling],
    stop: Spelling,
    base: int = 0,
    /,
) -> tuple[list[str], list[Spelling | None], list[str], list[int], bytes | None]: ...
def place(fields: Sequence[list[str]], stride: int, /) -> dict[str, list[int]]: ...

# The compiled form of index.PythonGatherer: the same constructor and methods, packed in C
# arrays (tests/test_rules_native.py proves them equal).
Gatherer: type[PythonGatherer]
# The compiled form of plan.PythonEvaluator (tests/test_rules_native.py proves them equal).
Evaluator: type[PythonEvaluator]
# The compiled form of index.PythonMatcher (tests/test_rules_native.py proves them equal).
Matcher: type[PythonMatcher]

def word_occurrences(
    where: dict[str, list[int]], keys: Iterable[str], fields: AbstractSet[int], stride: int, /
) -> list[tuple[int, int, int, tuple[tuple[int, int, int], ...]]]: ...
def phrase_occurrences(
    where: dict[str, list[int]],
    folded: Sequence[list[str]],
    keys: Iterable[str],
    anchor: int,
    sequence: list[str],
    fields: AbstractSet[int],
    stride: int,
    /,
) -> list[tuple[int, int, int, tuple[tuple[int, int, int], ...]]]: ...
def matched_terms(
    spans: Collection[tuple[int, int, int]],
    made: dict[tuple[int, int, int], MatchedTerm],
    make: Callable[[View, tuple[int, int, int]], MatchedTerm],
    view: View,
    /,
) -> tuple[MatchedTerm, ...]: ...

class TermMaker:
    """snippet.make_term where the ASCII split packed the words' offsets, else
    ``fallback``; ``fields`` names the fields by index."""

    def __init__(
        self,
        cls: type[MatchedTerm],
        fields: tuple[str, ...],
        fallback: Callable[[View, tuple[int, int, int]], MatchedTerm],
    ) -> None: ...
    def __call__(self, view: View, span: tuple[int, int, int]) -> MatchedTerm: ...
