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

import hashlib
import random
import re
import struct

from monitor.models import Fingerprint

SHINGLE_WORDS = 4
BINS = 126
ROWS = 3  # signature values per LSH band: 42 bands of 3 rows
BANDS = BINS // ROWS
MIN_SHINGLES = 30  # fewer: a title or a one-line summary, too little to call a story
DEFAULT_THRESHOLD = 0.5

_SIGNATURE = struct.Struct(f"<{BINS}I")
# A CJK character is a word of its own: those scripts put no spaces between words.
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")
_PROBES = tuple(tuple(random.Random(i).sample(range(BINS), BINS)) for i in range(BINS))


def story_text(title: str, summary: str, body: str) -> str:
    """The text a story is recognised by: its body, else its title and summary.

    The headline is left out when there is a body, since outlets rewrite it.
    """
    return body if body.strip() else f"{title}\n{summary}"


def story_fingerprint(title: str, summary: str, body: str) -> Fingerprint | None:
    """The fingerprint of an entry's :func:`story_text`, or None when it is too short."""
    return fingerprint(story_text(title, summary, body))


def shingles(text: str) -> set[int]:
    """64-bit hashes of the text's overlapping runs of ``SHINGLE_WORDS`` lower-cased words."""
    words = _WORD.findall(text.lower())
    return {
        int.from_bytes(
            hashlib.blake2b(" ".join(words[i : i + SHINGLE_WORDS]).encode(), digest_size=8)
            .digest()
        )
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }  # fmt: skip


def fingerprint(text: str) -> Fingerprint | None:
    """The text's signature, or None when it has too few shingles to cluster safely."""
    hashed = shingles(text)
    if len(hashed) < MIN_SHINGLES:
        return None
    empty = 1 << 64
    mins = [empty] * BINS
    for h in hashed:
        b = h % BINS
        v = h // BINS
        if v < mins[b]:
            mins[b] = v
    real = [m < empty for m in mins]
    for i in range(BINS):
        if not real[i]:
            mins[i] = next(mins[j] for j in _PROBES[i] if real[j])
    return Fingerprint(len(hashed), _SIGNATURE.pack(*(m & 0xFFFFFFFF for m in mins)))


def bands(print_: Fingerprint) -> list[int]:
    """LSH keys, one per band: texts that agree on all rows of some band share a key.

    Signed 64-bit so SQLite stores them as INTEGER; the band number is hashed in, so equal
    values in different bands never collide.
    """
    sig = print_.signature
    width = ROWS * 4
    return [
        int.from_bytes(
            hashlib.blake2b(sig[b * width : (b + 1) * width], digest_size=8, salt=bytes([b]))
            .digest(),
            signed=True,
        )
        for b in range(BANDS)
    ]  # fmt: skip


def containment(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated share of the smaller text's shingles found in the larger one, 0..1.

    From the Jaccard estimate J (agreeing bins) and the sizes: |A ∩ B| = J(|A|+|B|)/(1+J).
    """
    sa, sb = _SIGNATURE.unpack(a.signature), _SIGNATURE.unpack(b.signature)
    agree: int = sum(x == y for x, y in zip(sa, sb, strict=True))
    jaccard = agree / BINS
    common = jaccard * (a.shingles + b.shingles) / (1 + jaccard)
    return min(1.0, common / min(a.shingles, b.shingles))
