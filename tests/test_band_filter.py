"""The map of written band keys (monitor/band_filter.py): it never rules out a key that
was written, rules out most that were not, and spares the table the lookups it rules out
while a copy on disk is still found, across growth, prunes and restarts; its compiled
form (monitor/_fingerprint.c) marks and reads exactly the bits the Python form does."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import tracemalloc
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import band_filter, story_index
from monitor.band_filter import BandFilter
from monitor.models import Story
from monitor.store import Store
from tests.native import required
from tests.test_cluster import story, trimmed
from tests.test_cluster_store import T0, commit, item, story_keys
from tests.test_story_index import open_store

KEYS = st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=300)


@given(written=KEYS, others=KEYS)
def test_a_key_written_is_never_ruled_out(written: list[int], others: list[int]) -> None:
    """Whatever the keys (negative, extreme, repeated), every one added may be there."""
    keys = BandFilter()
    keys.add(written)
    assert keys.maybe(written) == written
    assert set(written) <= set(keys.maybe(written + others))


def compiled() -> ModuleType:
    return pytest.importorskip("monitor._fingerprint", reason="the extension is not built")


def test_the_compiled_form_is_used_where_required() -> None:
    fingerprint = required("monitor._fingerprint", band_filter._mark is not band_filter.mark_python)
    assert (band_filter._mark, band_filter._marked) == (fingerprint.mark, fingerprint.marked)


ANY_KEYS = st.lists(
    st.one_of(st.integers(), st.integers(-(2**70), 2**70), st.booleans()), max_size=200
)


@given(written=ANY_KEYS, asked=ANY_KEYS, width=st.integers(3, 16))
def test_both_forms_mark_and_read_the_same_bits(
    written: list[int], asked: list[int], width: int
) -> None:
    """Any ints (huge, negative, bools), any map size: the same bytes, counts and keys."""
    fast = compiled()
    mask = (1 << width) - 1
    ours, theirs = bytearray((mask + 1) // 8), bytearray((mask + 1) // 8)
    assert fast.mark(ours, mask, iter(written)) == band_filter.mark_python(theirs, mask, written)
    assert ours == theirs
    assert fast.marked(ours, mask, iter(written + asked)) == band_filter.marked_python(
        theirs, mask, written + asked
    )


def test_hostile_arguments_raise() -> None:
    """Wrong counts and types, a mask past the map or negative, a read-only map: Python
    exceptions, and the map keeps the bits set before a bad key."""
    fast = compiled()
    bits = bytearray(8)
    for call, args, error in [
        (fast.mark, (bits, 63), TypeError),
        (fast.marked, (bits, 63, [1], 4), TypeError),
        (fast.mark, (bits, 64, [1]), ValueError),
        (fast.marked, (bits, -1, [1]), OverflowError),
        (fast.mark, (bits, 1 << 70, [1]), OverflowError),
        (fast.mark, (bits, 63, 5), TypeError),
        (fast.marked, ("not a buffer", 63, [1]), TypeError),
        (fast.mark, (bytes(8), 63, [1]), BufferError),
        (fast.mark, (bits, 63, [1, "2", 3]), TypeError),
        (fast.marked, (bits, 63, [1.5]), TypeError),
    ]:
        with pytest.raises(error):
            call(*args)
    assert bits == bytearray(b"\x02" + bytes(7))  # key 1, before the bad "2"


def test_no_memory_kept() -> None:
    """A thousand rounds of both functions, the failing path too, keep nothing (one object
    a round would show as 30 KB or more)."""
    fast = compiled()
    bits, mask = bytearray(1 << 10), (1 << 13) - 1

    def one_round() -> None:
        keys = [2**40 + k for k in range(-500, 500)]  # made each round: a leak keeps them
        fast.mark(bits, mask, keys)
        fast.marked(bits, mask, keys)
        with contextlib.suppress(TypeError):  # raised, and the list made meanwhile freed
            fast.marked(bits, mask, [1, None])

    for _ in range(10):
        one_round()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(1000):
            one_round()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4_000


def test_most_keys_never_written_are_ruled_out() -> None:
    """Filled to its share (a key per SPARE bits), the map lets through about one absent
    key in nine (1 - e^(-1/8)); here under one in seven, on random 32-bit keys."""
    rng = random.Random(11)
    keys = BandFilter()
    keys.add(
        rng.randrange(-(2**31), 2**31) for _ in range(band_filter.MIN_BITS // band_filter.SPARE)
    )
    absent = [rng.randrange(-(2**31), 2**31) for _ in range(20_000)]
    assert len(keys.maybe(absent)) < len(absent) / 7
    assert not keys.crowded()
    keys.add(absent[:10])
    assert keys.crowded()


def test_a_map_of_the_table_is_sized_for_its_keys() -> None:
    """Made from story_bands: every key in it, in at least SPARE bits a key."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE story_bands (band INTEGER, entry_id INTEGER)")
    rng = random.Random(5)
    rows = [(rng.randrange(-(2**31), 2**31), i) for i in range(band_filter.MIN_BITS // 4)]
    db.executemany("INSERT INTO story_bands VALUES (?, ?)", rows)
    keys = BandFilter.of_table(db)
    db.close()
    assert keys.maybe(band for band, _ in rows) == [band for band, _ in rows]
    assert not keys.crowded()


async def test_the_table_is_asked_only_for_keys_that_may_be_there_and_copies_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll of a story new to the map does not probe story_bands; a copy of a story
    whose keys are on disk is found there: after they are written, after the map grows
    past its size (made again from the table), after a prune, after a restart, and
    once written to a map already made."""
    monkeypatch.setattr(story_index, "FLUSH_ENTRIES", 1)  # every key on disk at once
    monkeypatch.setattr(band_filter, "MIN_BITS", 1 << 6)  # crowded by the second entry
    path = tmp_path / "newsmon.db"
    store = await open_store(path)
    try:
        await commit(store, 0, [item("https://a.test/1", story(1))])
        await commit(store, 0, [item("https://a.test/2", story(2))])
        remade, probes = await reads(store, [item("https://a.test/3", story(3))])
        assert (remade, probes) == (1, 1)  # crowded: mapped again; 64 bits: still asked
        assert await commit(store, 1, [item("https://b.test/1", trimmed(story(1), 3))]) == []
        assert await store.prune(T0 + 60, 30 * 86400, 3 * 86400) == 0
        assert await commit(store, 1, [item("https://b.test/2", trimmed(story(2), 3))]) == []
    finally:
        await store.close()
    monkeypatch.setattr(band_filter, "MIN_BITS", 1 << 22)
    store = await Store.open(path)
    try:
        assert await reads(store, [item("https://c.test/9", story(9))]) == (1, 0)
        assert await commit(store, 2, [item("https://c.test/1", trimmed(story(1), 4))]) == []
        assert await commit(store, 1, [item("https://b.test/9", trimmed(story(9), 3))]) == []
        keys = await story_keys(store)
    finally:
        await store.close()
    a1, a2, a3 = (f"https://a.test/{n}" for n in (1, 2, 3))
    c9 = "https://c.test/9"
    assert keys == [a1, a2, a3, a1, a2, c9, a1, c9]  # each copy joined its story


async def reads(store: Store, stories: list[Story]) -> tuple[int, int]:
    """Commit ``stories`` (feed 2); how many times story_bands was read whole (the map
    made) and probed for keys."""
    statements: list[str] = []
    await store._in_thread(lambda db: db.set_trace_callback(statements.append))
    await commit(store, 2, stories)
    await store._in_thread(lambda db: db.set_trace_callback(None))
    made = sum(s == "SELECT band FROM story_bands" for s in statements)
    return made, sum("FROM story_bands AS b" in s for s in statements)
