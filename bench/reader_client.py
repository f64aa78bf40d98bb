"""One benchmark run of lemon24/reader, in its own interpreter (a separate virtualenv).

    /tmp/reader-venv/bin/python bench/reader_client.py < JOB_JSON

Standard library and reader only: it must not import newsmon. Prints one JSON line with
the same keys as bench/newsmon_client.py.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from reader import make_reader


def main() -> None:
    job = json.loads(sys.stdin.read())
    with tempfile.TemporaryDirectory(prefix="reader-bench-") as tmp:
        reader = make_reader(str(Path(tmp) / "reader.sqlite"))
        for url in job["feeds"]:
            reader.add_feed(url)
        workers = job.get("reader_workers", 16)
        t0 = time.perf_counter()
        reader.update_feeds(workers=workers, scheduled=False)
        seconds = time.perf_counter() - t0
        entries = reader.get_entry_counts().total
        result = {"seconds": seconds, "entries": entries, "polls": len(job["feeds"])}
        if job["scenario"] == "rounds":
            before = entries
            t0 = time.perf_counter()
            for _ in range(job["rounds"]):
                reader.update_feeds(workers=workers, scheduled=False)
            seconds = time.perf_counter() - t0
            entries = reader.get_entry_counts().total - before
            polls = job["rounds"] * len(job["feeds"])
            result = {"seconds": seconds, "entries": entries, "polls": polls}
        reader.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
