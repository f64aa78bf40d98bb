"""The LSH band index of story fingerprints, with its newest keys held back in memory.

Each fingerprinted entry has ``cluster.BANDS`` (42) band keys. They are random numbers, so
written as they come, every entry touched some 40 pages of the on-disk B-tree and every
commit wrote those pages again: profiling put most of a cold or incremental poll's
database time there (docs/performance.md). Here an entry's fingerprint row is written with
its poll, flagged ``banded = 0``, and its band keys wait in memory; once ``FLUSH_ENTRIES``
have gathered they go to ``story_bands`` together, sorted, in one transaction, which
writes each page once for all of them. Lookups read both the table and the memory.

Nothing is lost in a crash: at start the rows still flagged 0 are put back in memory from
their stored signatures. All methods run in the database thread (``Store._in_thread``),
inside the caller's transaction unless they say otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from monitor import cluster
from monitor.band_filter import BandFilter
from monitor.models import Fingerprint

FLUSH_ENTRIES = 1_000  # entries whose band keys wait in memory before they are written
MAX_CANDIDATES = 20  # earlier entries compared in full per new entry, best agreement first
# The newest entries read under one band key. A key shared by more is a crowd of
# near-identical entries (a feed posting one text under new links): its newest stand for
# the rest, and a new entry's lookup costs the same however long the flood goes on.
MAX_PER_BAND = 2 * MAX_CANDIDATES

_Held = tuple[int, list[int]]  # entry id, band keys (its seen_at: StoryIndex._seen_at)


class StoryIndex:
    """Band keys of recent fingerprints: the ``story_bands`` table plus those held back."""

    def __init__(self) -> None:
        self._held: list[_Held] = []
        # band key -> the first held entry under it, and the later ones where there are
        # any: nearly every key has one entry, and dict operations on whole key lists
        # keep holding and forgetting them out of the interpreter's loop
        self._owner: dict[int, int] = {}
        self._more: dict[int, list[int]] = {}
        self._seen_at: dict[int, float] = {}
        # the keys the table may hold, mapped when a poll or a lookup first needs them: a
        # command that looks none up (status, hits) does not read every key
        self._written: BandFilter | None = None

    def load(self, db: sqlite3.Connection) -> None:
        """Hold back again what a crash left unwritten."""
        self._forget()
        self._written = None
        rows = db.execute(
            "SELECT entry_id, shingles, signature, seen_at FROM story_prints"
            " WHERE banded = 0 ORDER BY entry_id"
        ).fetchall()
        for entry_id, shingles, signature, seen_at in rows:
            self._hold(entry_id, seen_at, cluster.bands(Fingerprint(shingles, signature)))

    def add(
        self,
        db: sqlite3.Connection,
        entry_id: int,
        print_: Fingerprint,
        bands: list[int],
        now: float,
    ) -> None:
        """Index a new entry's fingerprint (its row now, its ``bands`` at the next flush)."""
        db.execute(
            "INSERT INTO story_prints (entry_id, shingles, signature, seen_at, banded)"
            " VALUES (?, ?, ?, ?, 0)",
            (entry_id, print_.shingles, print_.signature, now),
        )
        self._hold(entry_id, now, bands)

    def mark(self) -> int:
        """Where to roll back to if the transaction (or savepoint) that follows fails."""
        return len(self._held)

    def roll_back(self, mark: int) -> None:
        """Forget what was held since ``mark``: its rows were rolled back."""
        while len(self._held) > mark:
            entry_id, bands = self._held.pop()
            del self._seen_at[entry_id]
            for band in dict.fromkeys(bands):  # the latest held under each: this entry
                later = self._more.get(band)
                if later:
                    later.pop()
                    if not later:
                        del self._more[band]
                else:
                    del self._owner[band]

    def due(self) -> bool:
        return len(self._held) >= FLUSH_ENTRIES

    def flush(self, db: sqlite3.Connection) -> None:
        """Write the held band keys in ONE transaction of its own; a failure keeps them
        held for the next try.

        One statement over a JSON document of them all, not ``executemany``: the
        sqlite3 module lets go of the GIL around each statement's step, and taking it back
        after each of 42,000 rows waited on the event loop's thread each time. With a
        busy thread beside it, a 1,000-entry flush took 0.9-2.0 s that way, 0.4-0.8 s
        this way, for the same CPU time or less (docs/performance.md). The keys go in
        in their order, so each page of the table's b-tree is visited once, not once
        per key in it: half the time of random order."""
        if not self._held:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(  # MATERIALIZED: each entry's fields read once, not once per key
                "WITH held (entry_id, bands) AS MATERIALIZED (SELECT"
                " json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
                " INSERT OR IGNORE INTO story_bands (band, entry_id)"
                " SELECT band.value, held.entry_id FROM held, json_each(held.bands) AS band"
                " ORDER BY band.value",
                (json.dumps(self._held),),
            )
            db.execute(
                "UPDATE story_prints SET banded = 1 WHERE entry_id IN"
                " (SELECT value FROM json_each(?))",
                (json.dumps([entry_id for entry_id, _ in self._held]),),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        if self._written is not None:
            self._written.add(band for _, bands in self._held for band in bands)
            self._unless_crowded()
        self._forget()

    def pruned(self, db: sqlite3.Connection, deleted: int) -> None:
        """A prune is deleting ``deleted`` keys, in the transaction that runs this. Their
        bits stay in the map, each a wasted probe at most, until it is crowded and made
        again."""
        if self._written is not None:
            self._written.deleted(deleted)
            self._unless_crowded()

    def _unless_crowded(self) -> None:
        """Keep the map, unless a new one made from the table would be emptier: it is
        made when next needed."""
        if self._written is not None and self._written.crowded():
            self._written = None

    def map_written(self, db: sqlite3.Connection) -> BandFilter:
        """The map of the keys written, made from the table if there is none (at 1.26
        million keys about 0.5 s): a poll asks for it before taking the write lock, so
        that no other writer waits while it is made."""
        if self._written is None:
            self._written = BandFilter.of_table(db)
        return self._written

    def on_disk(
        self, db: sqlite3.Connection, bands: Iterable[int], since: float
    ) -> dict[int, list[int]]:
        """The newest ``MAX_PER_BAND`` written entries seen since ``since`` under each of
        ``bands``: one query for a whole poll, since written keys change only between
        polls, and for the keys the map of written keys may hold."""
        found: defaultdict[int, list[int]] = defaultdict(list)
        maybe = self.map_written(db).maybe(bands)
        if not maybe:
            return found
        rows = db.execute(  # the join reads seen_at for the few keys found, not per row
            "SELECT b.band, b.entry_id FROM (SELECT DISTINCT value FROM json_each(?)) AS k"
            " JOIN story_bands AS b ON b.band = k.value AND b.entry_id >= coalesce((SELECT"
            " entry_id FROM story_bands WHERE band = k.value ORDER BY entry_id DESC"
            " LIMIT 1 OFFSET ?), 0)"
            " JOIN story_prints AS p ON p.entry_id = b.entry_id WHERE p.seen_at >= ?",
            (json.dumps(maybe), MAX_PER_BAND - 1, since),
        )
        for band, entry_id in rows:
            found[band].append(entry_id)
        return found

    def candidates(
        self, bands: list[int], since: float, on_disk: Mapping[int, list[int]]
    ) -> list[int]:
        """Entries seen since ``since`` that share a band with ``bands`` (``on_disk``: what
        ``on_disk`` found for them), the ones sharing most first (ties: the older first),
        at most ``MAX_CANDIDATES``."""
        agree: Counter[int] = Counter()
        for ids in filter(None, map(on_disk.get, bands)):
            agree.update(ids)
        held = Counter(filter(None, map(self._owner.get, bands)))  # entry ids start at 1
        for ids in filter(None, map(self._more.get, bands)):
            held.update(ids[1 - MAX_PER_BAND :])  # and the owner: MAX_PER_BAND in all
        seen_at = self._seen_at
        agree.update({i: n for i, n in held.items() if seen_at[i] >= since})
        return sorted(agree, key=lambda i: (-agree[i], i))[:MAX_CANDIDATES]

    def _hold(self, entry_id: int, seen_at: float, bands: list[int]) -> None:
        self._held.append((entry_id, bands))
        self._seen_at[entry_id] = seen_at
        mine = dict.fromkeys(bands, entry_id)
        for band in mine.keys() & self._owner.keys():  # rare: a band shared with another
            del mine[band]
            self._more.setdefault(band, []).append(entry_id)
        self._owner.update(mine)

    def _forget(self) -> None:
        self._held.clear()
        self._owner.clear()
        self._more.clear()
        self._seen_at.clear()
