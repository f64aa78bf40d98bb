"""The ``newsmon`` command. Exit codes: 0 done, 1 the operation failed, 2 usage or
configuration error (or an unknown name or id)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.config import Config, load_config
from monitor.daemon import Daemon, install_signals
from monitor.durations import parse_duration
from monitor.errors import ConfigError, FetchError, NewsmonError, StoreError
from monitor.extract import Extractor
from monitor.fetch import Fetcher, make_session
from monitor.log import configure_logging
from monitor.models import Document
from monitor.rules import render_explanation
from monitor.status import format_status, gather_status
from monitor.store import FeedRow, Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _health(row: FeedRow) -> str:
    if row.disabled_reason:
        return "disabled"
    if row.consecutive_errors:
        return f"failing x{row.consecutive_errors}"
    return "ok" if row.last_success_at is not None else "not polled yet"


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("NEWSMON_CONFIG") or "newsmon.toml")


async def _cmd_run(args: argparse.Namespace, config: Config) -> int:
    async with Daemon.open(config) as daemon:
        if args.once:
            await daemon.run_once()
        else:
            stop, reload = asyncio.Event(), asyncio.Event()
            install_signals(stop, reload)
            await daemon.run_forever(stop, reload)
    return EXIT_OK


async def _cmd_check(args: argparse.Namespace, config: Config) -> int:
    enabled = sum(r.enabled for r in config.rules)
    print(
        f"{config.path}: ok (feeds: {len(config.feeds)}, rules: {enabled} enabled of "
        f"{len(config.rules)}, notifiers: {len(config.notifiers)})"
    )
    return EXIT_OK


async def _with_store(config: Config, action: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    store = await Store.open(config.monitor.database, durability=config.monitor.durability)
    try:
        return await action(store)
    finally:
        await store.close()


async def _cmd_feeds(args: argparse.Namespace, config: Config) -> int:
    async def show(store: Store) -> int:
        rows = await store.feeds()
        watched = {f.url for f in config.feeds if f.enabled}
        table = [
            [
                r.name or r.url,
                _health(r),
                str(r.last_status or "-"),
                _when(r.last_poll_at),
                _when(r.next_poll_at)
                if r.url in watched and not r.disabled_reason
                else "-"
                if r.url in watched
                else "not watched",
                f"disabled: {r.disabled_reason}" if r.disabled_reason else r.last_error or "",
            ]
            for r in rows
        ]
        if not table:
            print("no feed polled yet")
            return EXIT_OK
        print(_table(["feed", "health", "http", "last poll", "next poll", "last error"], table))
        return EXIT_OK

    return await _with_store(config, show)


async def _cmd_hits(args: argparse.Namespace, config: Config) -> int:
    since = time.time() - parse_duration(args.since)

    async def show(store: Store) -> int:
        hits = await store.hits(rule=args.rule, since=since)
        if args.json:
            print(json.dumps([asdict(h) for h in hits], indent=2, ensure_ascii=False))
        elif not hits:
            print("no hits")
        for h in [] if args.json else hits:
            print(f"{_when(h.created_at)}  [{h.rule}] {h.title}\n  {h.feed}: {h.url or '-'}")
            print(f"  matched: {', '.join(h.matched)}\n  {h.snippet}\n")
        return EXIT_OK

    return await _with_store(config, show)


async def _cmd_deliveries(args: argparse.Namespace, config: Config) -> int:
    async def show(store: Store) -> int:
        rows = await store.deliveries(failed_only=args.failed)
        if args.json:
            print(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
            return EXIT_OK
        if not rows:
            print("no deliveries")
            return EXIT_OK
        table = [
            [r.id[:12], r.notifier, r.state, str(r.attempts), _when(r.updated_at), r.rule,
             r.title[:50], r.last_error or ""]
            for r in rows
        ]  # fmt: skip
        headers = ["id", "notifier", "state", "tries", "updated", "rule", "title", "reason"]
        print(_table(headers, table))
        return EXIT_OK

    return await _with_store(config, show)


async def _cmd_redeliver(args: argparse.Namespace, config: Config) -> int:
    async def requeue(store: Store) -> int:
        matches = [
            r.id for r in await store.deliveries(limit=1_000_000) if r.id.startswith(args.id)
        ]
        if len(matches) != 1:
            print(f"newsmon: no single delivery with id {args.id!r}", file=sys.stderr)
            return EXIT_USAGE
        if not await store.requeue(matches[0], time.time()):
            print(f"newsmon: delivery {matches[0]} is not failed or expired", file=sys.stderr)
            return EXIT_USAGE
        print(f"delivery {matches[0]} queued again; the running daemon sends it")
        return EXIT_OK

    return await _with_store(config, requeue)


async def _cmd_status(args: argparse.Namespace, config: Config) -> int:
    database = config.monitor.database
    if not database.exists():
        print(f"no database at {database}: newsmon has not run yet")
        return EXIT_OK

    async def show(store: Store) -> int:
        report = await gather_status(store, config, time.time())
        if args.json:
            print(json.dumps(asdict(report), indent=2, default=str))
        else:
            print(format_status(report))
        return EXIT_OK

    return await _with_store(config, show)


async def _cmd_resume(args: argparse.Namespace, config: Config) -> int:
    feed = next((f for f in config.feeds if args.name in (f.url, f.label)), None)
    if feed is None:
        print(f"newsmon: no feed named {args.name!r} in the watchlist", file=sys.stderr)
        return EXIT_USAGE

    async def enable(store: Store) -> int:
        if await store.enable_feed(feed.url, time.time()):
            print(f"feed {feed.label} enabled again; the running daemon polls it shortly")
        else:
            print(f"feed {feed.label} was not disabled")
        return EXIT_OK

    return await _with_store(config, enable)


async def _target_document(target: str, config: Config) -> tuple[Document, str]:
    """The story at ``target`` (URL, file or '-'), through the real fetch and extraction;
    and a line saying where its text came from."""
    m = config.monitor
    if target.startswith(("http://", "https://")):
        async with make_session(concurrency=1, per_host=1, user_agent=m.user_agent) as session:
            page = await Fetcher(session, timeout=m.timeout).get(target, max_bytes=m.page_max_bytes)
        data, source = page.body, page.url
    elif target == "-":
        data, source = await asyncio.to_thread(sys.stdin.buffer.read), "standard input"
    else:
        try:
            data, source = await asyncio.to_thread(Path(target).read_bytes), target
        except OSError as e:
            raise ConfigError("", f"cannot read {target}: {e.strerror}") from None
    if not _looks_like_html(data):
        text = data.decode("utf-8", "replace")
        return Document("", "", text), f"{source}: {len(text.split())} words of plain text"
    extractor = Extractor(workers=1, timeout=m.extract_timeout)
    try:
        extracted = await extractor.extract(data, source if source.startswith("http") else None)
    finally:
        extractor.close()
    words = len(extracted.body.split())
    note = f" ({extracted.detail})" if extracted.detail else ""
    line = f"{source}: {words} words, {extracted.status.value}{note}"
    return Document("", "", extracted.body), line


def _looks_like_html(data: bytes) -> bool:
    head = data[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<body" in head


async def _cmd_test(args: argparse.Namespace, config: Config) -> int:
    names = [args.rule] if args.rule else [r.name for r in config.rules]
    if args.rule and config.rule(args.rule) is None:
        print(f"newsmon: no rule named {args.rule!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        document, source = await _target_document(args.target, config)
    except FetchError as e:
        print(f"newsmon: cannot fetch {args.target}: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(source, end="\n\n")
    for name in names:
        print(render_explanation(config.index.explain(document, name)), end="\n\n")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="watchlist (default $NEWSMON_CONFIG, ./newsmon.toml)")
    common.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser = argparse.ArgumentParser(prog="newsmon", description="News monitoring and alerts.")
    parser.add_argument("--version", action="version", version=f"newsmon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument("--once", action="store_true", help="poll every feed, deliver, exit")
    run.set_defaults(handler=_cmd_run)
    sub.add_parser("check", parents=[common], help="validate the watchlist").set_defaults(
        handler=_cmd_check
    )
    sub.add_parser("feeds", parents=[common], help="feed health").set_defaults(handler=_cmd_feeds)
    status = sub.add_parser("status", parents=[common], help="is it working? at a glance")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_cmd_status)
    hits = sub.add_parser("hits", parents=[common], help="stored hits")
    hits.add_argument("--rule")
    hits.add_argument("--since", default="1d")
    hits.add_argument("--json", action="store_true")
    hits.set_defaults(handler=_cmd_hits)
    deliveries = sub.add_parser("deliveries", parents=[common], help="the alert outbox")
    deliveries.add_argument("--failed", action="store_true", help="failed and expired only")
    deliveries.add_argument("--json", action="store_true")
    deliveries.set_defaults(handler=_cmd_deliveries)
    redeliver = sub.add_parser("redeliver", parents=[common], help="re-queue a delivery")
    redeliver.add_argument("id", help="delivery id (a unique prefix will do)")
    redeliver.set_defaults(handler=_cmd_redeliver)
    test = sub.add_parser("test", parents=[common], help="which rules match a story, and why")
    test.add_argument("target", help="a URL, an HTML or text file, or - for standard input")
    test.add_argument("--rule", help="only this rule")
    test.set_defaults(handler=_cmd_test)
    resume = sub.add_parser("resume", parents=[common], help="poll a disabled feed again")
    resume.add_argument("name", help="the feed's name or URL")
    resume.set_defaults(handler=_cmd_resume)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    if getattr(args, "since", None):
        try:
            parse_duration(args.since)
        except ValueError as e:
            print(f"newsmon: --since: {e}", file=sys.stderr)
            return EXIT_USAGE
    try:
        config = load_config(_config_path(args))
    except ConfigError as e:
        print(f"newsmon: configuration error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = asyncio.run(args.handler(args, config))
    except StoreError as e:
        print(f"newsmon: database error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except NewsmonError as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
