"""Story fingerprints: MinHash over word shingles, banded for an LSH index. Pure, no I/O.

Two entries tell the same story when most of the shorter text's word 4-grams (shingles)
also occur in the longer one: a trimmed or padded copy keeps the shingles it kept, so the
measure is containment (overlap coefficient), estimated from two MinHash signatures and
the two shingle counts. See docs/clustering.md for why MinHash and how it was tuned.

The signature is one-permutation MinHash (Li, Owen & Zhang 2012): each shingle is hashed
once and kept if it is the smallest in its bin, so a signature costs one hash per shingle
instead of one per shingle and permutation. Empty bins (short texts) are filled by
optimal densification (Shrivastava 2017): bin ``i`` borrows from the first non-empty bin on
its own fixed pseudo-random probe sequence, which is the same for every text, so two texts
agree on a borrowed bin exactly when they agree on the bin it came from.
"""

from __future__ import annotations

import operator
import random
import re
import struct
import sys
import zlib
from collections.abc import Callable
from itertools import chain, repeat

from monitor import native
from monitor.models import Fingerprint

SHINGLE_WORDS = 4
BINS = 126
ROWS = 3  # signature values per LSH band: 42 bands of 3 rows
BANDS = BINS // ROWS
MIN_SHINGLES = 30  # fewer: a title or a one-line summary, too little to call a story
DEFAULT_THRESHOLD = 0.5

_SIGNATURE = struct.Struct(f"<{BINS}I")
HIGH_HALF = sys.hash_info.width - 32  # a band key keeps the hash's top 32 bits
# A CJK character is a word of its own: those scripts put no spaces between words.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")
_TYPOGRAPHY = "\u00a0\u00ab\u00bb\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026"
# ASCII text: every byte that is not a letter or digit becomes a space, letters lower-case
_ASCII_WORDS = bytes(c if chr(c).isalnum() else 32 for c in range(128)).lower() + b" " * 128
_PROBES = tuple(tuple(random.Random(i).sample(range(BINS), BINS)) for i in range(BINS))


def story_text(title: str, summary: str, body: str) -> str:
    """The text a story is recognised by: its body, else its title and summary.

    The headline is left out when there is a body, since outlets rewrite it.
    """
    return body if body.strip() else f"{title}\n{summary}"


def story_fingerprint(title: str, summary: str, body: str) -> Fingerprint | None:
    """The fingerprint of an entry's :func:`story_text`, or None when it is too short."""
    return fingerprint(story_text(title, summary, body))


def shingles_python(text: str) -> set[int]:
    """64-bit hashes of the text's overlapping runs of ``SHINGLE_WORDS`` lower-cased words.

    Built from C-level primitives so a poll's worth of entries costs little: each word is
    numbered by its CRC-32, and each run of four numbers hashed as a tuple. Both are
    independent of Python's per-process hash seed (integers and tuples of integers are
    not salted), which matters because fingerprints are stored.
    """
    for mark in _TYPOGRAPHY:  # separators either way; without them most news is ASCII
        if mark in text:
            text = text.replace(mark, " ")
    if text.isascii():  # then bytes.translate is several times the regex's speed
        words: list[bytes] = text.encode().translate(_ASCII_WORDS).split()
    else:
        words = [w.encode() for w in _WORD.findall(text.lower())]
    ids = list(map(zlib.crc32, words))
    return set(map(hash, zip(ids, ids[1:], ids[2:], ids[3:], strict=False)))


def fingerprint_python(text: str) -> Fingerprint | None:
    """The text's signature, or None when it has too few shingles to cluster safely."""
    hashed = shingles_python(text)
    if len(hashed) < MIN_SHINGLES:
        return None
    largest_first = sorted(hashed, reverse=True)
    # the last write per bin wins: each bin keeps its smallest hash
    least = dict(zip(map(operator.mod, largest_first, repeat(BINS)), largest_first, strict=False))
    mins = list(map(least.get, range(BINS)))
    found = least.__contains__
    for i in [i for i, m in enumerate(mins) if m is None]:
        mins[i] = least[next(filter(found, _PROBES[i]))]  # the first filled bin on its path
    values = map(operator.and_, map(operator.floordiv, mins, repeat(BINS)), repeat(0xFFFFFFFF))
    return Fingerprint(len(hashed), _SIGNATURE.pack(*values))


def bands_python(print_: Fingerprint) -> list[int]:
    """LSH keys, one per band: texts that agree on all rows of some band share a key.

    The band number is hashed in, so equal values in different bands do not collide.
    Unsalted, like the shingle hashes. Signed 32-bit (the hash's high half): SQLite
    stores such a key in 4 bytes instead of 8, which halves the band index and its
    writes (docs/clustering.md); a chance collision only adds a candidate that
    containment then turns down. A 32-bit interpreter's hash is already that wide.
    """
    values = _SIGNATURE.unpack(print_.signature)
    rows = (values[r::ROWS] for r in range(ROWS))
    return [key >> HIGH_HALF for key in map(hash, zip(range(BANDS), *rows, strict=True))]


def containment_python(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated share of the smaller text's shingles found in the larger one, 0..1.

    From the Jaccard estimate J (agreeing bins) and the sizes: |A ∩ B| = J(|A|+|B|)/(1+J).
    """
    sa, sb = _SIGNATURE.unpack(a.signature), _SIGNATURE.unpack(b.signature)
    agree: int = sum(map(operator.eq, sa, sb))
    jaccard = agree / BINS
    common = jaccard * (a.shingles + b.shingles) / (1 + jaccard)
    return min(1.0, common / min(a.shingles, b.shingles))


# The one place that decides: monitor/_fingerprint.c where it is built (unless
# NEWSMON_PURE_PYTHON=1), the forms above otherwise, with identical results
# (tests/test_cluster_native.py). The Python forms are the reference.
shingles: Callable[[str], set[int]]
fingerprint: Callable[[str], Fingerprint | None]
bands: Callable[[Fingerprint], list[int]]
containment: Callable[[Fingerprint, Fingerprint], float]
COMPILED = native.compiled("monitor._fingerprint")
if COMPILED:
    from monitor import _fingerprint

    _compiled = _fingerprint.Fingerprinter(
        _TYPOGRAPHY, bytes(chain.from_iterable(_PROBES)), Fingerprint
    )
    shingles, fingerprint = _compiled.shingles, _compiled.fingerprint
    bands, containment = _fingerprint.bands, _fingerprint.containment
else:
    shingles, fingerprint = shingles_python, fingerprint_python
    bands, containment = bands_python, containment_python
