from collections.abc import Callable, Sequence

from monitor.rules.normalize import Spelling

def split_plain(
    text: str,
    cache: dict[str, Spelling],
    spell: Callable[[str], Spelling],
    stop: Spelling,
    /,
) -> tuple[list[str], list[Spelling | None], list[str], list[int]]: ...
def place(fields: Sequence[list[str]], stride: int, /) -> dict[str, list[int]]: ...
