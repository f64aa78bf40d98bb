"""Article HTML to story text with trafilatura, in worker processes under a time budget.

Extraction is CPU-bound (about 25 ms a page on the corpus, far more for pathological
pages), so it runs off the event loop in worker processes, each owned by one slot and
talked to over its own pipe. A page that overruns its budget is abandoned and only ITS
worker is killed and replaced; pages in flight in other workers go on undisturbed. The
entry then falls back to the feed's own text, with the reason recorded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from monitor.clean import clean_body
from monitor.errors import NewsmonError
from monitor.models import BodyStatus, Extracted
from monitor.plaintext import MAX_CONTENT, MAX_TITLE, clean_text, single_line, without_headline
from monitor.urls import resolved
from monitor.workers import JobFailed, WorkerLost, WorkerPool

ExtractFunction = Callable[[bytes, str | None], Extracted]

# Chosen on the corpus (docs/extraction.md): precision mode keeps fewer stray lines, and
# tables are often the story (results, figures); comments never are.
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,
    "include_tables": True,
    "favor_precision": True,
    "with_metadata": True,
}
_WARM_UP = b"<html><body><article><p>newsmon worker warm-up.</p></article></body></html>"
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


def _canonical(tree: Any, url: str | None) -> str | None:
    """The page's <link rel="canonical">, resolved against its URL; http(s) only."""
    for link in tree.iterfind(".//link[@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            href = link.get("href", "").strip()
            return resolved(url or "", href)
    return None


def _language(tree: Any) -> str | None:
    """<html lang>, else <meta http-equiv="content-language">, as a lower-case tag."""
    candidates = [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    for meta in tree.iterfind(".//meta[@http-equiv]"):
        if meta.get("http-equiv", "").lower() == "content-language":
            candidates.append(meta.get("content"))
    for value in candidates:
        tag = (value or "").strip().lower().replace("_", "-").split(",")[0]
        if _LANGUAGE.fullmatch(tag):
            return tag
    return None


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _meta(value: str | None) -> str | None:
    return (single_line(clean_text(value, MAX_TITLE)) or None) if value else None


def extract_page(html: bytes, url: str | None) -> Extracted:
    """Runs in a worker: the page's story text (boilerplate lines removed) and metadata."""
    import trafilatura
    from trafilatura.settings import Document

    tree = trafilatura.load_html(html)
    if tree is None:
        return Extracted("", BodyStatus.EMPTY, "not parseable as HTML")
    canonical, language = _canonical(tree, url), _language(tree)
    try:
        found = trafilatura.bare_extraction(tree, url=url, **TRAFILATURA_OPTIONS)
    finally:
        _forget_page_texts()
    document = found if isinstance(found, Document) else Document()  # None: nothing found
    title = _meta(document.title)
    body = without_headline(clean_text(clean_body(document.text or ""), MAX_CONTENT), title)
    return Extracted(
        body,
        BodyStatus.EXTRACTED if body else BodyStatus.EMPTY,
        "" if body else "no article text found",
        canonical_url=canonical,
        title=title,
        published=_day(document.date),
        site_name=_meta(document.sitename),
        language=language,
    )


def _forget_page_texts() -> None:
    """Empty trafilatura's caches of a page's texts (``trim``: up to 1,024 element texts,
    some of them the whole article). The next page seldom meets them again; held, they
    were 1-3 MB of what a worker grew by, and retired it sooner (docs/performance.md)."""
    from trafilatura import utils

    utils.trim.cache_clear()
    utils.line_processing.cache_clear()
    utils.return_printables_and_spaces.cache_clear()


def warm_up() -> None:
    """Import trafilatura and run it once, so no page's budget pays for it, and load what
    its libraries load only for some pages: run in the zygote, that is loaded once for
    all its workers instead of once in each (docs/performance.md)."""
    _share_stop_words()
    extract_page(_WARM_UP, None)
    _load_on_demand_data()


def _load_on_demand_data() -> None:
    """What trafilatura's libraries load the first time a page needs it, as most news
    pages do: the public suffix list (courlan reads it for a host its own pattern does
    not, such as bbc.com or an IP address) and the standard library's strptime (for a
    date in JSON-LD). Loaded in a worker, about 2 MB and 30 ms, paid again in every
    fresh fork that meets such a page."""
    from courlan import extract_domain

    extract_domain("https://example.com/", fast=False)
    datetime.strptime("2024-01-15", "%Y-%m-%d")


def _share_stop_words() -> None:
    """justext's ``define_stoplist`` lower-cases a stop list into new strings even where
    the words are lower-case already, as every word of trafilatura's all-language list is
    (``trafilatura.external.jt_stoplist_init``): 154,000 strings, 11.5 MB, held twice in
    the zygote. Replaced by the same set built from the strings it is given where they
    are lower-case already (docs/performance.md, memory)."""
    import justext.core

    @functools.lru_cache(maxsize=128)  # as justext's own: one entry per stop list
    def define_stoplist(stoplist: tuple[str, ...]) -> frozenset[str]:
        return frozenset(_lower(word) for word in stoplist)

    justext.core.define_stoplist = define_stoplist


def _lower(word: str) -> str:
    lower = word.lower()
    return word if lower == word else lower


class Extractor:
    """Extraction in a WorkerPool under a per-page budget; never raises for a page's fault.

    Given no ``pool``, it makes (and closes) one of ``workers`` processes; ``function``
    (top-level, picklable) does the work in the worker, and tests inject one.
    """

    def __init__(
        self,
        *,
        timeout: float,
        workers: int = 0,
        pool: WorkerPool | None = None,
        function: ExtractFunction = extract_page,
    ) -> None:
        self._timeout = timeout
        self._function = function
        self._owned = pool is None
        self._pool = pool or WorkerPool(workers=workers)

    async def extract(
        self, html: bytes, url: str | None, *, budget: float | None = None
    ) -> Extracted:
        """The page's story text, or why there is none.

        ``budget`` (seconds) overrides the extractor's for this page: a caller may grant a
        big page more.
        """
        seconds = self._timeout if budget is None else budget
        try:
            return await self._pool.run(seconds, self._function, html, url, warm_up=warm_up)
        except TimeoutError:
            return Extracted("", BodyStatus.TIMEOUT, f"over the {seconds:g}s budget")
        except WorkerLost as e:
            return Extracted("", BodyStatus.EMPTY, f"extraction {e}")
        except JobFailed as e:  # its message is the class name of what the extractor raised
            return Extracted("", BodyStatus.EMPTY, f"extraction failed on an unexpected {e}")
        except NewsmonError as e:
            return Extracted("", BodyStatus.EMPTY, f"extraction failed: {e}")

    def close(self) -> None:
        """Stop the workers of a pool this extractor made; a shared pool is its owner's."""
        if self._owned:
            self._pool.close()
