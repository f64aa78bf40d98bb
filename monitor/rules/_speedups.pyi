from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from monitor.rules.normalize import Spelling

def split_plain(
    text: str,
    cache: dict[str, Spelling],
    spell: Callable[[str], Spelling],
    stop: Spelling,
    /,
) -> tuple[list[str], list[Spelling | None], list[str], list[int]]: ...
def place(fields: Sequence[list[str]], stride: int, /) -> dict[str, list[int]]: ...
def gather(
    present: Iterable[str],
    word_sets: Mapping[str, Sequence[int]],
    pair_sets: Mapping[tuple[str, str], Sequence[int]],
    fields: Sequence[list[str]],
    needs: Sequence[Sequence[int]],
    by_need: Mapping[int, Sequence[int]],
    sets: int,
    /,
) -> tuple[list[int], Collection[int]]: ...
