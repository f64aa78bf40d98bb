"""The compiled story fingerprints (monitor/_fingerprint.c) give exactly what the
pure-Python forms in monitor/cluster.py give, survive hostile input, and keep no memory.

Fingerprints and band keys are stored in users' databases, so "the same" means bit for
bit: shingle hashes, counts, signatures, band keys and the containment float. CI builds
the extension and sets NEWSMON_REQUIRE_NATIVE=1, so that a failed build (which an
optional extension only warns about) fails the suite; it then runs the cluster tests
again with NEWSMON_PURE_PYTHON=1, through the fallback.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import struct
import tracemalloc
from itertools import chain
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor import cluster
from monitor.models import Fingerprint
from tests.native import required
from tests.test_cluster import story

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"


def compiled() -> ModuleType:
    """The extension, built or not: these tests compare it whatever the environment says."""
    return pytest.importorskip("monitor._fingerprint", reason="the extension is not built")


def fingerprinter() -> Any:
    """A compiled fingerprinter with cluster.py's tables, as cluster.py makes it."""
    probes = bytes(chain.from_iterable(cluster._PROBES))
    return compiled().Fingerprinter(cluster._TYPOGRAPHY, probes, Fingerprint)


def agree(text: str) -> Fingerprint | None:
    """Both forms give the same shingles, fingerprint and band keys for ``text``; the
    fingerprint."""
    c = fingerprinter()
    assert c.shingles(text) == cluster.shingles_python(text)
    made = c.fingerprint(text)
    assert made == cluster.fingerprint_python(text)
    if made is not None:
        assert compiled().bands(made) == cluster.bands_python(made)
    return made


def test_extension_loads_where_required() -> None:
    """Under NEWSMON_REQUIRE_NATIVE=1 (CI) the extension is built and cluster.py uses it."""
    _fingerprint = required("monitor._fingerprint", cluster.COMPILED)
    assert cluster.bands is _fingerprint.bands
    assert cluster.containment is _fingerprint.containment
    assert isinstance(cluster.fingerprint.__self__, _fingerprint.Fingerprinter)  # type: ignore[attr-defined]
    assert cluster.shingles.__self__ is cluster.fingerprint.__self__  # type: ignore[attr-defined]


def test_pure_python_when_asked() -> None:
    """NEWSMON_PURE_PYTHON=1 makes clustering run its pure-Python functions."""
    forms = (cluster.shingles, cluster.fingerprint, cluster.bands, cluster.containment)
    python = (
        cluster.shingles_python,
        cluster.fingerprint_python,
        cluster.bands_python,
        cluster.containment_python,
    )
    if not cluster.COMPILED:
        assert forms == python
    else:
        assert os.environ.get("NEWSMON_PURE_PYTHON") != "1"
        assert not set(forms) & set(python)


def test_constants_agree() -> None:
    """The sizes compiled into the extension are cluster.py's."""
    c = compiled()
    assert (c.BINS, c.ROWS, c.SHINGLE_WORDS, c.MIN_SHINGLES) == (
        cluster.BINS,
        cluster.ROWS,
        cluster.SHINGLE_WORDS,
        cluster.MIN_SHINGLES,
    )


UNICODE = " ".join(
    f"Die Straße {i} nach Zürich — «ΟΔΟΣ» İstanbul 東京タワー{i} 서울’s" for i in range(12)
)


def test_stored_fingerprints_stay_valid() -> None:
    """Whichever form runs, fixed texts give the fingerprints that migration 7's code gave
    and the 32-bit band keys that migration 9's gave (pinned from them), so stored
    signatures and keys keep matching new ones."""
    digest = hashlib.sha256()
    for text in [story(0), story(1), story(2), UNICODE]:
        made = cluster.fingerprint(text)
        assert made is not None
        digest.update(made.shingles.to_bytes(4, "little") + made.signature)
        for key in cluster.bands(made):
            digest.update(key.to_bytes(4, "little", signed=True))
    assert digest.hexdigest() == "4ecbff2096b59d3400cfd7307bc03ccf400dda88acc5d52ae3bb110c171b7bb8"


# What sends text down each path of the split: ASCII words and punctuation, the
# typographic separators (alone: the ASCII path; with other characters: the Unicode
# one), letters whose lower case changes length or depends on context (İ, final Σ),
# CJK runs and single characters, combining marks, digits of other scripts, control
# characters, NUL and a lone surrogate.
ASCII_CHUNKS = ["The", "U.S.", "don't", "state-of-the-art", "3.5%", "(Reuters)", "A_B"]
ASCII_CHUNKS += ["\x00", "\x1c", "\x7f", "\t", "\n\n", " ", "  ", "WORD", "word"]
TYPOGRAPHY_CHUNKS = [*cluster._TYPOGRAPHY, "’s", "“Quote”", "—and—"]
UNICODE_CHUNKS = ["é", "Zu\u0308rich", "ΟΔΟΣ", "Σ’Α", "İstanbul", "東京", "タワー", "・"]
UNICODE_CHUNKS += ["서울", "ＵＳ", "¼", "٣", "ﬁnal", "\u2009", "\ud800", "\U0001f600", "ß"]
UNICODE_CHUNKS += ["\u3099", "\u30a0", "\ud7a4", "Ǆ", "ǅ", "\u0345", "x\u0307"]
VOCABULARY = [f"w{i}" for i in range(12)]

ascii_texts = st.lists(
    st.one_of(
        st.sampled_from(VOCABULARY),
        st.sampled_from(ASCII_CHUNKS),
        st.text("aZ09 .,'-_\x00\n", max_size=8),
    ),
    max_size=120,
).map(" ".join)
typeset_texts = st.lists(
    st.one_of(st.sampled_from(VOCABULARY), st.sampled_from(TYPOGRAPHY_CHUNKS)), max_size=120
).map(" ".join)
any_texts = st.lists(
    st.one_of(
        st.sampled_from([" ", "\n", *VOCABULARY]),
        st.sampled_from(ASCII_CHUNKS + TYPOGRAPHY_CHUNKS + UNICODE_CHUNKS),
        st.text(max_size=4),
    ),
    max_size=200,
).map("".join)


@settings(max_examples=300, derandomize=True)
@given(ascii_texts)
@example("")
@example("\x00" * 50)
def test_agree_on_ascii_text(text: str) -> None:
    """On random ASCII text both forms give the same shingles, fingerprint and bands."""
    agree(text)


@settings(max_examples=200, derandomize=True)
@given(typeset_texts)
def test_agree_on_typeset_text(text: str) -> None:
    """Text that is ASCII but for typographic quotes, dashes and spaces agrees."""
    agree(text)


@settings(max_examples=300, derandomize=True)
@given(any_texts)
@example("ΟΔΟΣ’Α ΟΔΟΣ—Α")  # the separator decides final sigma: replaced before lower()
@example("\ud800 w1 w2 w3 w4")
def test_agree_on_any_text(text: str) -> None:
    """Any Unicode text, lone surrogates included, agrees."""
    agree(text)


def test_shingle_count_bounds() -> None:
    """No fingerprint below MIN_SHINGLES distinct shingles, one at exactly that many, in
    both forms; repeats count once."""
    words = [f"w{i}" for i in range(cluster.MIN_SHINGLES + cluster.SHINGLE_WORDS - 1)]
    assert agree(" ".join(words[:-1])) is None  # 29 shingles
    exactly = agree(" ".join(words))
    assert exactly is not None
    assert exactly.shingles == cluster.MIN_SHINGLES
    repeated = agree(" ".join(words + words[:4]))  # 34 shingles, the first one twice
    assert repeated is not None
    assert repeated.shingles == 33
    assert agree(" ".join(words[:4] * 40)) is None  # 160 words, 4 distinct shingles
    for text in ["", " ", "one", "one two three", "a b c d", "東京"]:
        assert agree(text) is None


def test_agree_on_huge_text() -> None:
    """A text of 200,000 words, with NULs, typography and (then) other Unicode, agrees
    (the word numbers and the shingle set leave their stack buffers)."""
    rng = random.Random(8)
    vocabulary = [f"w{i}" for i in range(5000)] + ["\x00", "’", "—"]
    huge = " ".join(rng.choices(vocabulary, k=200_000))
    made = agree(huge)
    assert made is not None
    assert made.shingles > 190_000
    agree(huge + " é")


@pytest.mark.slow
def test_agree_on_every_code_point() -> None:
    """Every code point, inside a word, alone, doubled and beside letters whose lower
    case depends on context, splits the same in both forms."""
    c = fingerprinter()
    for start in range(0, 0x110000, 4096):
        text = " ".join(
            f"q{ch}w {ch}{ch}x Σ{ch}Σ İ{ch}"
            for ch in map(chr, range(start, min(start + 4096, 0x110000)))
        )
        assert c.shingles(text) == cluster.shingles_python(text), hex(start)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not present")
def test_agree_on_the_corpus() -> None:
    """Every corpus article, its summary-sized start, and its upper-cased and title-cased
    copies agree, and so does containment between neighbouring articles."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))]
    assert len(texts) > 100
    prints = []
    for text in texts:
        prints.append(agree(text))
        for variant in (text[:400], text.upper(), text.title()):
            agree(variant)
    made = [p for p in prints if p is not None]
    containment = compiled().containment
    for a, b in zip(made, made[1:] + made[:1], strict=True):
        assert containment(a, b) == cluster.containment_python(a, b)
        assert containment(a, a) == cluster.containment_python(a, a) == 1.0


signatures = st.binary(min_size=cluster.BINS * 4, max_size=cluster.BINS * 4)
counts = st.integers(min_value=1, max_value=2**40)


@settings(max_examples=300, derandomize=True)
@given(signatures, signatures, counts, counts, st.integers(0, cluster.BINS))
def test_bands_and_containment_agree(
    sig_a: bytes, sig_b: bytes, count_a: int, count_b: int, shared: int
) -> None:
    """On any signatures and shingle counts, sharing any number of bins, band keys and
    containment are the same, to the last bit of the float."""
    c = compiled()
    sig_b = sig_a[: shared * 4] + sig_b[shared * 4 :]
    a, b = Fingerprint(count_a, sig_a), Fingerprint(count_b, sig_b)
    assert c.bands(a) == cluster.bands_python(a)
    assert c.bands(Fingerprint(1, bytearray(sig_a))) == cluster.bands_python(a)  # any buffer
    assert struct.pack("d", c.containment(a, b)) == struct.pack(
        "d", cluster.containment_python(a, b)
    )


def test_hostile_arguments() -> None:
    """Wrong types raise TypeError, wrong sizes ValueError, and the arithmetic errors are
    the Python form's; nothing crashes."""
    c, fp = compiled(), fingerprinter()
    good = fp.fingerprint(story(1))
    for text in (b"bytes", None, 5, ["a list"]):
        with pytest.raises(TypeError):
            fp.fingerprint(text)
        with pytest.raises(TypeError):
            fp.shingles(text)
    for print_ in (None, 5, "text", Fingerprint(good.shingles, "504 characters" * 36)):
        with pytest.raises(TypeError):
            c.bands(print_)
        with pytest.raises(TypeError):
            c.containment(good, print_)
    for wrong in (Fingerprint(30, b""), Fingerprint(30, good.signature + b"x")):
        with pytest.raises(ValueError, match="504 bytes"):
            c.bands(wrong)
    for args in [(), (good,), (good, good, good)]:
        with pytest.raises(TypeError):
            c.containment(*args)
    with pytest.raises(TypeError):
        c.containment(good, Fingerprint("30", good.signature))  # type: ignore[arg-type]
    empty = Fingerprint(0, good.signature)
    with pytest.raises(ZeroDivisionError):
        cluster.containment_python(good, empty)
    with pytest.raises(ZeroDivisionError):
        c.containment(good, empty)
    with pytest.raises(OverflowError):
        c.containment(good, Fingerprint(2**63, good.signature))
    with pytest.raises(OverflowError):
        c.containment(Fingerprint(2**62, good.signature), Fingerprint(2**62, good.signature))
    probes = bytes(chain.from_iterable(cluster._PROBES))
    make = c.Fingerprinter
    for args, error in [
        ((cluster._TYPOGRAPHY, probes[:-1], Fingerprint), ValueError),
        ((cluster._TYPOGRAPHY, probes[:-1] + b"\x7e", Fingerprint), ValueError),  # bin 126
        ((cluster._TYPOGRAPHY, probes[1:2] + probes[1:], Fingerprint), ValueError),  # repeat
        (("\xa0 ", probes, Fingerprint), ValueError),  # an ASCII separator
        ((b"\xa0", probes, Fingerprint), TypeError),
        ((cluster._TYPOGRAPHY, "probes", Fingerprint), TypeError),
        ((cluster._TYPOGRAPHY, probes, "not callable"), TypeError),
        ((cluster._TYPOGRAPHY, probes), TypeError),
    ]:
        with pytest.raises(error):
            make(*args)

    def refuse(shingles: int, signature: bytes) -> Fingerprint:
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        make(cluster._TYPOGRAPHY, probes, refuse).fingerprint(story(1))


def test_str_subclass_reads_as_str() -> None:
    """A str subclass gives the fingerprint of its plain value."""

    class Text(str):
        pass

    assert fingerprinter().fingerprint(Text(UNICODE)) == cluster.fingerprint_python(UNICODE)


def test_no_memory_kept() -> None:
    """Fingerprinting ASCII and Unicode text, hashing bands and comparing thousands of
    times keeps nothing (a missed reference count would keep every object made)."""
    c, fp = compiled(), fingerprinter()
    texts = [story(2), UNICODE, story(3, paragraphs=40)]  # the last leaves the stack buffers

    def run(times: int) -> None:
        for _ in range(times):
            prints = [fp.fingerprint(text) for text in texts]
            assert len(fp.shingles(texts[1])) == 104
            for print_ in prints:
                assert len(c.bands(print_)) == cluster.BANDS
            assert c.containment(prints[0], prints[2]) < 0.5
            try:
                fp.fingerprint(b"bytes")
            except TypeError:
                pass
            else:
                raise AssertionError("bytes were fingerprinted")

    runs = 2000
    run(50)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(runs)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # Anything kept per run (an object, or a buffer of PyMem_Malloc) is ``runs`` more live
    # blocks at the line that made it. Free lists of floats, lists and tuples hold up to a
    # hundred or so whatever the number of runs.
    kept = [s for s in after.compare_to(before, "lineno") if s.count_diff >= runs // 2]
    assert kept == []
