"""Which band keys may be in ``story_bands``: a bitmap, so that a poll's lookup asks the
table only for the keys some written entry may have.

Most of a poll's band keys are new (a story seen once), and probing the table for each
cost a cold ingest's database thread about a sixth of its time (docs/clustering.md).
Band keys are hashes (monitor/cluster.py), so their low bits are spread evenly and
number the bits directly: one bit per key, no hashing of our own. A set bit may be
another key's (about one absent key in nine once the map holds its share), so such a
key is still looked up; a clear bit proves the key absent. Keys that a prune deletes
keep their bits until the map is made again from the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from monitor import native

MIN_BITS = 1 << 22  # 512 KiB
MAX_BITS = 1 << 27  # 16 MiB: past some 16 million keys, chance hits grow instead
SPARE = 8  # bits per key: 1 - e^(-1/8), about 12% of absent keys hit a set bit


class BandFilter:
    """A bit per key (its low bits) that may be in the table."""

    def __init__(self, size: int = MIN_BITS) -> None:
        self._bits = bytearray(size // 8)
        self._mask = size - 1
        self._keys = 0  # added, repeats counted

    @classmethod
    def of_table(cls, db: sqlite3.Connection) -> BandFilter:
        """A map of every key in ``story_bands``, sized for them."""
        (count,) = db.execute("SELECT COUNT(*) FROM story_bands").fetchone()
        size = MIN_BITS
        while size < count * SPARE and size < MAX_BITS:
            size <<= 1
        made = cls(size)
        made.add(band for (band,) in db.execute("SELECT band FROM story_bands"))
        return made

    def add(self, keys: Iterable[int]) -> None:
        self._keys += _mark(self._bits, self._mask, keys)

    def crowded(self) -> bool:
        """Holding more keys than it was sized for (and allowed to grow)."""
        size = self._mask + 1
        return self._keys * SPARE > size and size < MAX_BITS

    def maybe(self, keys: Iterable[int]) -> list[int]:
        """Those of ``keys`` that may be in the table."""
        return _marked(self._bits, self._mask, keys)


def mark_python(bits: bytearray, mask: int, keys: Iterable[int]) -> int:
    """Set each key's bit (``key & mask``); returns how many keys there were."""
    count = 0
    for key in keys:
        bit = key & mask
        bits[bit >> 3] |= 1 << (bit & 7)
        count += 1
    return count


def marked_python(bits: bytearray, mask: int, keys: Iterable[int]) -> list[int]:
    """The keys whose bit is set, in order."""
    return [key for key in keys if bits[(key & mask) >> 3] >> (key & 7) & 1]


# monitor/_fingerprint.c's forms where it is built (a poll's 2,100 keys: a tenth of a
# cold ingest's database thread in Python), these otherwise (tests/test_band_filter.py).
_mark: Callable[[bytearray, int, Iterable[int]], int]
_marked: Callable[[bytearray, int, Iterable[int]], list[int]]
if native.compiled("monitor._fingerprint"):
    from monitor._fingerprint import mark as _mark
    from monitor._fingerprint import marked as _marked
else:
    _mark, _marked = mark_python, marked_python
