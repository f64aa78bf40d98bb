from collections.abc import Callable

from monitor.models import Fingerprint

BINS: int
ROWS: int
SHINGLE_WORDS: int
MIN_SHINGLES: int

class Fingerprinter:
    def __init__(
        self,
        separators: str,
        probes: bytes,
        make: Callable[[int, bytes], Fingerprint],
    ) -> None: ...
    def shingles(self, text: str, /) -> set[int]: ...
    def fingerprint(self, text: str, /) -> Fingerprint | None: ...

def bands(print_: Fingerprint, /) -> list[int]: ...
def containment(a: Fingerprint, b: Fingerprint, /) -> float: ...
