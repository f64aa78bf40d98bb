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
from tests.db import traced
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


@pytest.mark.parametrize("size", [0, 4, 12, 1000])
def test_a_map_is_a_power_of_two_bits(size: int) -> None:
    with pytest.raises(ValueError, match="a power of two"):
        BandFilter(size)


def compiled() -> ModuleType:
    return pytest.importorskip("monitor._fingerprint", reason="the extension is not built")


def test_the_compiled_form_is_used_where_required() -> None:
    fingerprint = required("monitor._fingerprint", band_filter._mark is not band_filter.mark_python)
    assert (band_filter._mark, band_filter._marked) == (fingerprint.mark, fingerprint.marked)


ANY_KEYS = st.lists(
    st.one_of(st.integers(), st.integers(-(2**70), 2**70), st.booleans()), max_size=200
)


@given(written=ANY_KEYS, asked=ANY_KEYS, width=st.integers(0, 16))
def test_both_forms_mark_and_read_the_same_bits(
    written: list[int], asked: list[int], width: int
) -> None:
    """Any ints (huge, negative, bools), any mask: the same bytes, counts and keys."""
    fast = compiled()
    mask = (1 << width) - 1
    ours, theirs = bytearray((mask >> 3) + 1), bytearray((mask >> 3) + 1)
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


def test_a_map_of_the_table_is_sized_for_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Made from story_bands: every key in it, and room for as many again before it is
    crowded (made anew every flush otherwise, where prunes hold the count near a power of
    two)."""
    monkeypatch.setattr(band_filter, "MIN_BITS", 1 << 22)  # a table past it, built quickly
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE story_bands (band INTEGER, entry_id INTEGER)")
    rng = random.Random(5)
    rows = [(rng.randrange(-(2**31), 2**31), i) for i in range(band_filter.MIN_BITS // 4)]
    db.executemany("INSERT INTO story_bands VALUES (?, ?)", rows)
    keys = BandFilter.of_table(db)
    db.close()
    assert keys.maybe(band for band, _ in rows) == [band for band, _ in rows]
    keys.add(band - 1 for band, _ in rows)  # as many again: still not crowded
    assert not keys.crowded()
    keys.add([0])
    assert keys.crowded()


def test_deleted_keys_keep_their_bits_until_half_the_map_is_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys deleted from the table still pass (a wasted probe each); a map at its largest
    and fuller than sized for is made again only once more than half the keys it marked
    are gone: made before that, it would be as full."""
    monkeypatch.setattr(band_filter, "MAX_BITS", band_filter.MIN_BITS)
    share = band_filter.MIN_BITS // band_filter.SPARE
    keys = BandFilter()
    keys.add(range(share + 2))  # past its share, at its largest, every key in the table
    assert not keys.crowded()
    keys.deleted(share // 2 + 1)  # exactly half
    assert not keys.crowded()
    keys.deleted(1)  # now more than half are gone
    assert keys.crowded()
    assert keys.maybe(range(share + 2)) == list(range(share + 2))


async def test_a_prune_that_leaves_the_map_mostly_stale_has_it_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prune tells the map how many keys it deleted: a map at its largest whose keys
    are all gone is dropped, and made again from the table when next needed."""
    monkeypatch.setattr(story_index, "FLUSH_ENTRIES", 1)
    monkeypatch.setattr(band_filter, "MAX_BITS", band_filter.MIN_BITS)
    store = await open_store(tmp_path / "newsmon.db")
    try:
        for n in range(1, 4):
            await commit(store, 0, [item(f"https://a.test/{n}", story(n))])
        monkeypatch.setattr(band_filter, "SPARE", 1 << 20)  # past its share already
        written = store._stories._written
        assert written is not None
        assert not written.crowded()  # at its largest, every key still in the table
        later = T0 + 10 * 86400  # the window (3 days) has passed for all of them
        await store.prune(later, 30 * 86400, 3 * 86400)
        assert store._stories._written is None
    finally:
        await store.close()


async def every_key_written_passes(store: Store) -> bool:
    """Whether the store's map, if it has one now, rules out none of the keys in
    story_bands (the map may be gone, to be made again: then there is nothing to check)."""

    def check(db: sqlite3.Connection) -> bool:
        written = store._stories._written
        keys = [band for (band,) in db.execute("SELECT band FROM story_bands")]
        return written is None or written.maybe(keys) == keys

    return await store._in_thread(check)


async def test_no_key_written_is_ever_ruled_out_and_copies_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every commit (a flush every second one), the map's growth past its size, a
    prune that deletes keys and a restart, every key in story_bands passes the map, and
    a copy of a story whose keys are on disk joins it; the map is made before the poll
    takes the write lock, and a story new to it is not probed for."""
    monkeypatch.setattr(story_index, "FLUSH_ENTRIES", 2)
    path = tmp_path / "newsmon.db"
    store = await open_store(path)
    try:
        for n in range(1, 7):
            await commit(store, 0, [item(f"https://a.test/{n}", story(n))])
            assert store._stories._written is not None
            assert await every_key_written_passes(store)
        assert await reads(store, [item("https://a.test/7", story(7))]) == (0, 0)
        assert await commit(store, 1, [item("https://b.test/1", trimmed(story(1), 3))]) == []

        monkeypatch.setattr(band_filter, "SPARE", 1 << 20)  # the next flush crowds it
        for n in (8, 9):
            await commit(store, 0, [item(f"https://a.test/{n}", story(n))])
        assert store._stories._written is None
        monkeypatch.setattr(band_filter, "SPARE", 8)
        assert await reads(store, [item("https://a.test/12", story(12))]) == (1, 0)
        assert await every_key_written_passes(store)

        later = T0 + 10 * 86400  # the window (3 days) has passed for all of them
        await commit(store, 2, [item("https://c.test/10", story(10))], later)
        assert await store.prune(later, 30 * 86400, 3 * 86400) == 0  # no text that old
        assert store._stories._written is not None  # deleted keys only waste probes
        made, _ = await reads(store, [item("https://c.test/11", story(11))], later)
        assert made == 0  # the table is not read whole again
        assert await every_key_written_passes(store)
        copy = item("https://b.test/10", trimmed(story(10), 3))
        assert await commit(store, 1, [copy], later) == []
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        copy = item("https://b.test/11", trimmed(story(11), 3))
        assert await commit(store, 1, [copy], later + 60) == []
        assert await every_key_written_passes(store)
        keys = await story_keys(store)
    finally:
        await store.close()
    assert keys[-2:] == ["https://c.test/10", "https://c.test/11"]


async def reads(store: Store, stories: list[Story], now: float = T0) -> tuple[int, int]:
    """Commit ``stories`` (feed 2); how many times story_bands was read whole to make the
    map (before the poll's BEGIN, or it fails) and probed for keys."""
    async with traced(store) as statements:
        await commit(store, 2, stories, now)
    made = [i for i, s in enumerate(statements) if s == "SELECT band FROM story_bands"]
    begun = statements.index("BEGIN IMMEDIATE")
    assert all(i < begun for i in made), statements
    return len(made), sum("FROM story_bands AS b" in s for s in statements)
