"""The extraction ceiling: raw trafilatura on the same pages, in the same number of
worker processes, with nothing else to do.

    python -m bench.ceiling < JOB_JSON   # {"pages": [url, ...], "workers": 2}

Pages are downloaded first (untimed); the pool is started and warmed before the clock
starts, as newsmon's workers are in the cold-extraction scenario. Prints one JSON line.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
import urllib.request

from monitor.extract import TRAFILATURA_OPTIONS


def _extract(page: tuple[bytes, str]) -> bool:
    import trafilatura

    return trafilatura.bare_extraction(page[0], url=page[1], **TRAFILATURA_OPTIONS) is not None


def main() -> None:
    job = json.loads(sys.stdin.read())
    pages = []
    for url in job["pages"]:
        with urllib.request.urlopen(url, timeout=30) as answer:
            pages.append((answer.read(), url))
    with multiprocessing.get_context("spawn").Pool(job["workers"]) as pool:
        pool.map(_extract, pages[: job["workers"]])  # import trafilatura in every worker
        t0 = time.perf_counter()
        found = sum(pool.imap_unordered(_extract, pages))
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "pages": len(pages), "found": found}), flush=True)


if __name__ == "__main__":
    main()
