"""Which band keys may be in ``story_bands``: a bitmap, so that a poll's lookup asks the
table only for the keys some written entry may have.

Most of a poll's band keys are new (a story seen once), and probing the table for each
was about a quarter of a cold ingest's database thread (docs/performance.md).
Band keys are hashes (monitor/cluster.py), so their low bits are spread evenly and
number the bits directly: one bit per key, no hashing of our own. A set bit may be
another key's (about one absent key in nine once the map holds its share), so such a
key is still looked up; a clear bit proves the key absent. Keys that a prune deletes
keep their bits until the map is made again from the table, which happens only once it
is as full as it was sized for: a prune every few hours deletes a few hours' keys, and
making the map again read every key in the table (0.5 s at three days of 10,000 entries,
in the database thread, while polls wait to commit).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from monitor import native

# 2 MiB: a new database's map is first made again past some 50,000 entries. At 512 KiB
# it was made again at 12,500, reading every key in the table (0.2 s at 546,000 keys)
# while polls waited, and let through more absent keys until then; a daemon holding more
# than 12,500 entries has a map of 2 MiB or more either way.
MIN_BITS = 1 << 24
MAX_BITS = 1 << 27  # 16 MiB: past some 16 million keys, chance hits grow instead
SPARE = 8  # bits per key: 1 - e^(-1/8), about 12% of absent keys hit a set bit


class BandFilter:
    """A bit per key (its low bits) that may be in the table."""

    def __init__(self, size: int = MIN_BITS) -> None:
        if size < 8 or size & (size - 1):
            raise ValueError(f"a map of {size} bits: a power of two, 8 at least")
        self._bits = bytearray(size // 8)
        self._mask = size - 1
        self._marked = 0  # keys added, repeats counted: how full the bits are
        self._live = 0  # of those, the ones the table still holds, as far as told

    @classmethod
    def of_table(cls, db: sqlite3.Connection) -> BandFilter:
        """A map of every key in ``story_bands``, sized for twice as many: as many keys
        again are written before it is crowded and made anew. Sized for them alone, a
        table that prunes kept near a power of two would be mapped again every flush."""
        (count,) = db.execute("SELECT COUNT(*) FROM story_bands").fetchone()
        size = MIN_BITS
        while size < 2 * count * SPARE and size < MAX_BITS:
            size <<= 1
        made = cls(size)
        keys = db.cursor()
        keys.row_factory = None  # plain tuples, whatever the connection's rows are
        made.add(band for (band,) in keys.execute("SELECT band FROM story_bands"))
        return made

    def add(self, keys: Iterable[int]) -> None:
        added = _mark(self._bits, self._mask, keys)
        self._marked += added
        self._live += added

    def deleted(self, count: int) -> None:
        """``count`` of the keys added are gone from the table; their bits stay set."""
        self._live = max(0, self._live - count)

    def crowded(self) -> bool:
        """Holding more keys than it was sized for, where a map made again from the table
        would be emptier: larger, or at its largest with half its keys deleted since."""
        size = self._mask + 1
        return self._marked * SPARE > size and (size < MAX_BITS or self._marked > 2 * self._live)

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
    """The keys whose bit (``key & mask``) is set, in order."""
    found = []
    for key in keys:
        bit = key & mask
        if bits[bit >> 3] >> (bit & 7) & 1:
            found.append(key)
    return found


# monitor/_fingerprint.c's forms where it is built (a cold ingest's 420,000 keys each
# way: 0.15 s CPU in Python, 0.03 s in C), these otherwise (tests/test_band_filter.py).
_mark: Callable[[bytearray, int, Iterable[int]], int]
_marked: Callable[[bytearray, int, Iterable[int]], list[int]]
if native.compiled("monitor._fingerprint", needs=("mark", "marked")):
    from monitor._fingerprint import mark as _mark
    from monitor._fingerprint import marked as _marked
else:
    _mark, _marked = mark_python, marked_python
