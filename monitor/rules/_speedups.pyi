from collections.abc import Callable, Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet

from monitor.rules.normalize import Spelling

def split_plain(
    text: str,
    cache: dict[str, Spelling],
    spell: Callable[[str], Spelling],
    stop: Spelling,
    /,
) -> tuple[list[str], list[Spelling | None], list[str], list[int]]: ...
def place(fields: Sequence[list[str]], stride: int, /) -> dict[str, list[int]]: ...

class Gatherer:
    def __init__(
        self,
        word_sets: dict[str, tuple[int, ...]],
        pair_sets: dict[tuple[str, str], list[int]],
        needs: list[tuple[int, ...]],
        by_need: dict[int, list[int]],
        sets: int,
    ) -> None: ...
    def refile(self, by_need: dict[int, list[int]], /) -> None: ...
    def gather(
        self, present: Iterable[str], fields: Sequence[list[str]], learn: bool, /
    ) -> tuple[list[int], Collection[int]]: ...

def word_occurrences(
    where: dict[str, list[int]], keys: Iterable[str], fields: AbstractSet[int], stride: int, /
) -> list[tuple[int, int, int, tuple[tuple[int, int, int], ...]]]: ...
