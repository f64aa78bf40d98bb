"""The ``newsmon`` command. Exit codes: 0 done, 1 the operation failed, 2 usage or
configuration error (or an unknown name or id)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from monitor import __version__, heap
from monitor.backtest import Caught, scan
from monitor.backup import back_up
from monitor.config import Config, config_warnings, load_config, require_runnable
from monitor.durations import parse_duration
from monitor.errors import (
    ConfigError,
    EmptyWatchlist,
    FetchError,
    NewsmonError,
    RuleCompileError,
    StoreError,
)
from monitor.log import configure_logging
from monitor.models import Alert, Document, Outcome
from monitor.notify.text import one_line
from monitor.opml import plan_import, read_opml, render_feeds
from monitor.plaintext import MAX_CONTENT, clean_text
from monitor.rules import RuleIndex, compile_rules, render_explanation
from monitor.run_lock import exclusive_run
from monitor.status import format_status, gather_status, size
from monitor.store import DeliveryRow, DestinationRow, FeedRow, Store
from monitor.urls import without_password

# What only some commands need (aiohttp, the scheduler, the extractor: half a second) is
# imported by the command, so that `check`, `hits` or `status` answer at once.

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a process that SIGPIPE ended


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns, each cell on one line: a line break in a publisher's title would
    print a row of its own making."""
    rows = [[one_line(cell) for cell in row] for row in rows]
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
    from monitor.daemon import Daemon, install_signals
    from monitor.start_wait import daemon_when_storage_allows

    if args.once:
        with exclusive_run(config.monitor.database):
            async with Daemon.open(config) as daemon:
                await daemon.run_once()
        return EXIT_OK
    stop, reload = asyncio.Event(), asyncio.Event()
    install_signals(stop, reload)
    async with daemon_when_storage_allows(config, stop, reload) as started:
        if started is not None:
            await started.run_forever(stop, reload)
    return EXIT_OK


async def _cmd_check(args: argparse.Namespace, config: Config) -> int:
    for warning in config_warnings(config):  # where an error would be, but exit 0
        print(f"newsmon: warning: {warning}", file=sys.stderr)
    enabled = sum(r.enabled for r in config.rules)
    print(
        f"{config.path}: ok (feeds: {len(config.feeds)}, rules: {enabled} enabled of "
        f"{len(config.rules)}, notifiers: {len(config.notifiers)})"
    )
    return EXIT_OK


async def _with_store(config: Config, action: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    m = config.monitor
    if not m.database.exists():  # opening would create it (and its directory), empty
        print(f"newsmon: no database at {m.database}: newsmon has not run yet", file=sys.stderr)
        return EXIT_FAILED
    store = await Store.open(m.database, durability=m.durability, migrate=False)
    try:
        return await action(store)
    finally:
        await store.close()


def _next_poll(row: FeedRow, watched: set[str]) -> str:
    if row.url not in watched:
        return "not watched"
    return "-" if row.disabled_reason else _when(row.next_poll_at)


OFF = "enabled = false in the watchlist"


def _feed_note(row: FeedRow) -> str:
    """The one thing worth knowing: why it is disabled, its last error, or its move."""
    if row.disabled_reason:
        return f"disabled: {row.disabled_reason}"
    if row.last_error:
        return row.last_error
    if row.moved_to:
        return f"redirects permanently to {row.moved_to} (not yet confirmed)"
    return f"moved to {without_password(row.fetch_url)}" if row.fetch_url != row.url else ""


async def _cmd_feeds(args: argparse.Namespace, config: Config) -> int:
    async def show(store: Store) -> int:
        known = {f.url for f in config.feeds}
        # the feeds that need attention first, then by name; those gone from the watchlist
        # (their history stays) last
        rows = sorted(
            await store.feeds(),
            key=lambda r: (
                r.url not in known,
                not (r.disabled_reason or r.consecutive_errors),
                r.name or r.url,
            ),
        )
        watched = {f.url for f in config.feeds if f.enabled}
        off = {f.url: f for f in config.feeds if not f.enabled}
        table = []
        for r in rows:
            if r.url in off:
                health, note = "disabled", OFF
            elif r.url not in known:
                health, note = "removed", "no longer in the watchlist"
            else:
                health, note = _health(r), _feed_note(r)
            when = (_when(r.last_poll_at), _next_poll(r, watched))
            table.append([r.shown, health, str(r.last_status or "-"), *when, note])
        # as `status` counts them: a feed switched off in the watchlist, polled or not
        stored = {r.url for r in rows}
        table += [
            [f.shown, "disabled", "-", "-", "-", OFF] for f in off.values() if f.url not in stored
        ]
        if not table:
            print("no feed polled yet")
            return EXIT_OK
        print(_table(["feed", "health", "http", "last poll", "next poll", "note"], table))
        return EXIT_OK

    return await _with_store(config, show)


async def _cmd_hits(args: argparse.Namespace, config: Config) -> int:
    since = time.time() - parse_duration(args.since)

    async def show(store: Store) -> int:
        hits = await store.hits(rule=args.rule, since=since)
        if not hits and args.rule is not None and config.rule(args.rule) is None:
            # a rule since removed from the watchlist still shows the hits it had
            print(f"newsmon: no rule named {args.rule!r}", file=sys.stderr)
            return EXIT_USAGE
        if not hits and not args.json:
            print("no hits")
        also = await store.also_seen([h.id for h in hits])
        if args.json:
            rows = [asdict(h) | {"also": [asdict(a) for a in also.get(h.id, [])]} for h in hits]
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        for h in [] if args.json else hits:
            print(f"{_when(h.created_at)}  [{h.rule}] {one_line(h.title)}")
            print(f"  {one_line(h.feed)}: {h.url or '-'}")
            print(f"  matched: {one_line(', '.join(h.matched))}")
            if also.get(h.id):
                seen = "; ".join(f"{a.feed}: {a.url or a.title}" for a in also[h.id])
                print(f"  also seen in: {one_line(seen)}")
            print(f"  {one_line(h.snippet)}\n")
        return EXIT_OK

    return await _with_store(config, show)


def _reason(row: DeliveryRow) -> str:
    """Why a delivery is where it is, on one line."""
    if row.state == "failed":
        return f"refused: {row.last_error}"
    if row.state in ("expired", "cancelled"):
        return row.last_error or ""
    if row.state == "pending" and row.last_error and not row.attempts:  # redelivered
        return f"queued again; it had failed: {row.last_error}"
    if row.state == "pending" and row.last_error:
        return f"retry at {_when(row.next_attempt_at)} after: {row.last_error}"
    if row.state == "pending" and row.digest_id:
        return f"in digest {row.digest_id[:12]}"
    return ""


def _paused_line(d: DestinationRow) -> str:
    return (
        f"PAUSED {d.notifier} since {_when(d.paused_at)}: {d.paused_reason}; "
        f"its pending deliveries wait; `newsmon resume {d.notifier}` sends them"
        " (a failed one needs `newsmon redeliver ID`)"
    )


async def _cmd_deliveries(args: argparse.Namespace, config: Config) -> int:
    async def show(store: Store) -> int:
        rows = await store.deliveries(failed_only=args.failed)
        paused = [d for d in await store.destinations() if d.paused_at is not None]
        notices = await store.notices(limit=10)
        if args.json:
            document = {
                "paused": [asdict(d) for d in paused],
                "notices": [asdict(n) | {"state": state} for n, state in notices],
                "deliveries": [asdict(r) | {"reason": _reason(r)} for r in rows],
            }
            print(json.dumps(document, indent=2, ensure_ascii=False))
            return EXIT_OK
        for destination in paused:
            print(_paused_line(destination))
        for notice, state in notices:
            print(
                f"NOTICE {_when(notice.created_at)} to {notice.notifier} ({state}): {notice.text}"
            )
        if not rows:
            print("no deliveries")
            return EXIT_OK
        table = [
            [r.id[:12], r.notifier, r.state, str(r.attempts), _when(r.updated_at), r.rule,
             r.title[:50], _reason(r)]
            for r in rows
        ]  # fmt: skip
        headers = ["id", "notifier", "state", "tries", "updated", "rule", "title", "reason"]
        print(_table(headers, table))
        return EXIT_OK

    return await _with_store(config, show)


async def _cmd_redeliver(args: argparse.Namespace, config: Config) -> int:
    async def requeue(store: Store) -> int:
        matches = await store.delivery_ids(args.id)
        if len(matches) != 1:
            why = "more than one delivery" if matches else "no delivery"
            hint = ": give more of its id" if matches else " (`newsmon deliveries` lists them)"
            print(f"newsmon: {why} has an id starting {args.id!r}{hint}", file=sys.stderr)
            return EXIT_USAGE
        refused = await store.requeue(matches[0], time.time(), config.notifiers.keys())
        if refused is not None:
            why = f"delivery {matches[0]} cannot be sent again: {refused}"
            print(f"newsmon: {why}", file=sys.stderr)
            return EXIT_USAGE
        # a running daemon looks at the outbox every deliver.LOOK_AGAIN seconds
        print(
            f"delivery {matches[0]} queued again: a running daemon sends it within seconds,"
            " or the next `newsmon run` does"
        )
        return EXIT_OK

    return await _with_store(config, requeue)


def _test_alert(name: str) -> Alert:
    now = datetime.now(UTC)
    return Alert(
        delivery_id=f"test-{name}-{now.strftime('%Y%m%dT%H%M%SZ')}",
        hit_id="test",
        rule="notify-test",
        title="newsmon test alert",
        url=None,
        feed="newsmon",
        published=now,
        matched=(),
        snippet=f"If you can read this, the notifier {name!r} works.",
    )


async def _cmd_notify_test(args: argparse.Namespace, config: Config) -> int:
    """Send one test alert now, outside the outbox, and print what the destination said."""
    from monitor.daemon import build_notifier
    from monitor.fetch import make_session

    cfg = config.notifiers.get(args.name)
    if cfg is None:
        known = ", ".join(sorted(config.notifiers)) or "none"
        print(f"newsmon: no notifier named {args.name!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    m = config.monitor
    async with make_session(user_agent=m.user_agent) as session:
        notifier = build_notifier(cfg, session)
        try:
            result = await notifier.send(_test_alert(args.name))
        finally:
            await notifier.close()
    verdict = {
        Outcome.SENT: "sent",
        Outcome.RETRY: "failed (temporary)",
        Outcome.PERMANENT: "refused",
    }[result.outcome]
    print(f"{args.name}: {verdict}: {result.detail}")
    return EXIT_OK if result.outcome is Outcome.SENT else EXIT_FAILED


async def _cmd_status(args: argparse.Namespace, config: Config) -> int:
    database = config.monitor.database
    if not database.exists():
        why = (
            "newsmon has not run yet, or cannot create it (a running daemon then says why"
            " in its log and STATUS=)"
        )
        if args.json:  # a script reads JSON either way
            print(json.dumps({"database": str(database), "error": f"no database: {why}"}))
        else:
            print(f"no database at {database}: {why}")
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
    """Resume a paused notifier, or poll a disabled feed again, by name: a feed's URL, its
    name in the watchlist, or the title `newsmon feeds` shows for it."""

    async def resume(store: Store) -> int:
        titled = {r.name: r.url for r in await store.feeds() if r.name}
        url = titled.get(args.name, args.name)
        feed = next((f for f in config.feeds if url in (f.url, f.label)), None)
        if feed is None and args.name not in config.notifiers:
            print(f"newsmon: no notifier or feed named {args.name!r}", file=sys.stderr)
            return EXIT_USAGE
        if args.name in config.notifiers:
            if await store.resume(args.name):
                print(
                    f"{args.name} resumed: a running daemon sends what waits within seconds,"
                    " or the next `newsmon run` does"
                )
            else:
                print(f"{args.name} was not paused")
        if feed is not None:
            if await store.enable_feed(feed.url, time.time()):
                print(
                    f"feed {feed.shown} enabled again: a running daemon polls it within"
                    " seconds, or the next `newsmon run` does"
                )
            else:
                print(f"feed {feed.shown} was not disabled")
        return EXIT_OK

    return await _with_store(config, resume)


async def _cmd_backup(args: argparse.Namespace, config: Config) -> int:
    if not args.path.strip():  # Path("") is ".", which exists
        raise ConfigError("PATH", "expected the path of the copy, got nothing")
    database = config.monitor.database
    cancelled = threading.Event()
    try:
        done = await asyncio.to_thread(back_up, database, Path(args.path), cancelled)
    except asyncio.CancelledError:  # Ctrl-C: the thread copies on, to no file
        cancelled.set()
        raise
    print(
        f"backed up {database} to {done.path}: {size(done.size)}, schema {done.schema},"
        f" in {done.seconds:.1f} s"
    )
    return EXIT_OK


async def _cmd_import_opml(args: argparse.Namespace, config: Config | None) -> int:
    """[[feeds]] tables to paste; ``config`` (when there is a watchlist yet) says which
    feeds and names are taken."""
    data, source = await _read_input(args.file)
    feeds = config.feeds if config is not None else ()
    taken = [*(f.name for f in feeds if f.name), *(tag for f in feeds for tag in f.tags)]
    plan = plan_import(read_opml(data, source), [f.url for f in feeds], taken)
    print(f"# from {source}: {len(plan.feeds)} new feeds, {plan.watched} already watched")
    if config is None:
        print(f"# no watchlist at {_config_path(args)} to compare with: every feed is new")
    for url in plan.skipped:
        print(f"# skipped, not an http(s) URL: {url}")
    for url in plan.repeated:
        print(f"# skipped, listed before: {url}")
    print(render_feeds(plan.feeds), end="")
    return EXIT_OK


async def _target_document(target: str, config: Config) -> tuple[Document, str]:
    """The story at ``target`` (URL, file or '-'), through the real fetch and extraction;
    and a line saying where its text came from."""
    from monitor.extract import Extractor
    from monitor.fetch import fetcher_for, make_session
    from monitor.pipeline import HTML_TYPES

    m = config.monitor
    if target.startswith(("http://", "https://")):
        async with make_session(user_agent=m.user_agent) as session:
            page = await fetcher_for(session, m).get(
                target, max_bytes=m.page_max_bytes, trusted_origin=target, accept_body=HTML_TYPES
            )
        data, source = page.body, page.url
    else:
        data, source = await _read_input(target)
    if not _looks_like_html(data):  # cleaned as the daemon cleans a feed's text
        text = clean_text(data.decode("utf-8", "replace"), MAX_CONTENT)
        return Document("", "", text), f"{source}: {len(text.split())} words of plain text"
    extractor = Extractor(workers=1, timeout=m.extract_timeout)
    try:
        extracted = await extractor.extract(data, source if source.startswith("http") else None)
    finally:
        extractor.close()
    words = len(extracted.body.split())
    note = f" ({extracted.detail})" if extracted.detail else ""
    line = f"{source}: {words} words, {extracted.status.value}{note}"
    # the page's headline as the title, as the daemon takes it for an entry without one
    return Document(extracted.title or "", "", extracted.body), line


async def _read_input(name: str) -> tuple[bytes, str]:
    """The bytes of a file argument ('-': standard input; a file:// URL), and how to name
    it."""
    if name == "-":
        return await asyncio.to_thread(sys.stdin.buffer.read), "standard input"
    if name.startswith("file://"):
        name = unquote(urlsplit(name).path)
    if not name.strip():  # Path("") is the current directory
        raise ConfigError("", "expected a URL, a file or - for standard input, got nothing")
    try:
        return await asyncio.to_thread(Path(name).read_bytes), name
    except OSError as e:
        raise ConfigError("", f"cannot read {name}: {e.strerror}") from None


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


ArchiveRule = tuple[RuleIndex, str, set[str] | None]  # index, rule name, feed URLs or all


def _archive_rule(args: argparse.Namespace, config: Config) -> ArchiveRule:
    """The rule to run over the archive: a watchlist rule (with its feed scope) or a query;
    raises ConfigError for an unknown name or a query that does not compile."""
    if getattr(args, "rule", None):
        rule = config.rule(args.rule)
        if rule is None:
            raise ConfigError("--rule", f"no rule named {args.rule!r}")
        query, name = rule.query, rule.name
        feeds = {f.url for f in config.feeds if {"*", f.label, *f.tags} & set(rule.feeds)}
    else:
        query, name, feeds = args.query, "query", None
    try:
        return compile_rules({name: query}, config.entities), name, feeds
    except RuleCompileError as e:
        given = "QUERY" if args.command == "search" else "--query"  # search's is positional
        raise ConfigError(given if feeds is None else "--rule", str(e.error)) from None


def _progress(total: int) -> Callable[[int], None] | None:
    """A progress bar on standard error, only when a person is watching it."""
    if not sys.stderr.isatty() or total == 0:
        return None

    def show(done: int) -> None:
        filled = 30 * done // total
        end = "\n" if done >= total else ""
        print(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,}", end=end, file=sys.stderr
        )

    return show


async def _caught(args: argparse.Namespace, rule: ArchiveRule, store: Store) -> list[Caught]:
    index, name, feeds = rule
    since = time.time() - parse_duration(args.since)
    progress = _progress(await store.archive_size(since))
    return [c async for c in scan(store, index, name, since, feeds=feeds, progress=progress)]


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _day(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")


async def _cmd_backtest(args: argparse.Namespace, config: Config) -> int:
    rule = _archive_rule(args, config)  # ConfigError: exit 2

    async def run(store: Store) -> int:
        caught = await _caught(args, rule, store)
        for c in caught:
            e = c.entry
            print(f"{_when(e.published or e.seen_at)}  {one_line(f'{e.feed}  {e.title}')}")
            print(f"  {e.url or '-'}\n  matched: {one_line(', '.join(c.matched))}")
        entries = _count(len(caught), "entry", "entries")
        stories = _count(len({c.entry.story_key for c in caught}), "story", "stories")
        print(f"\n{entries} ({stories}) since {args.since} ago matched")
        for what, key in (
            ("day", lambda c: _day(c.entry.seen_at)),
            ("feed", lambda c: c.entry.feed),
        ):
            counts: dict[str, int] = {}
            for c in caught:
                counts[key(c)] = counts.get(key(c), 0) + 1
            if counts:
                rows = [[k, str(v)] for k, v in sorted(counts.items())]
                print("\n" + _table([what, "entries"], rows))
        return EXIT_OK

    return await _with_store(config, run)


async def _cmd_search(args: argparse.Namespace, config: Config) -> int:
    rule = _archive_rule(args, config)  # ConfigError: exit 2

    async def run(store: Store) -> int:
        stories: dict[str, list[Caught]] = {}
        for c in await _caught(args, rule, store):
            stories.setdefault(c.entry.story_key, []).append(c)
        if not stories:
            print("no stored story matches")
        for copies in sorted(stories.values(), key=lambda cs: -cs[-1].entry.seen_at)[: args.limit]:
            e = copies[0].entry
            print(f"{_when(e.published or e.seen_at)}  {one_line(e.title)}")
            print(f"  {one_line(e.feed)}: {e.url or '-'}")
            others = {c.entry.feed for c in copies[1:] if c.entry.feed_url != e.feed_url}
            if others:  # not the feed just named again, for a copy it posted twice
                print(f"  also in: {one_line(', '.join(sorted(others)))}")
            print(f"  matched: {one_line(', '.join(copies[0].matched))}\n")
        return EXIT_OK

    return await _with_store(config, run)


def _parser() -> argparse.ArgumentParser:
    # --config and --log-level go before the command or after it: the command's copies
    # set nothing unless given, so they never undo what came before the command
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="newsmon", description="News monitoring and alerts.")
    for options in (common, parser):
        options.add_argument("--config", help="watchlist (default $NEWSMON_CONFIG, ./newsmon.toml)")
        options.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(config=None, log_level="info")
    parser.add_argument("--version", action="version", version=f"newsmon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument("--once", action="store_true", help="poll every feed, deliver, exit")
    # only what sends reads secrets, and `check`, which answers for `run`: the others
    # answer without the service's environment, as an operator's shell lacks it
    run.set_defaults(handler=_cmd_run, runs_daemon=True, reads_secrets=True)
    sub.add_parser("check", parents=[common], help="validate the watchlist").set_defaults(
        handler=_cmd_check, runs_daemon=True, reads_secrets=True
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

    notify_test = sub.add_parser(
        "notify-test", parents=[common], help="send a test alert, show the answer"
    )
    notify_test.add_argument("name", help="notifier name")
    notify_test.set_defaults(handler=_cmd_notify_test, reads_secrets=True)
    resume = sub.add_parser(
        "resume", parents=[common], help="unpause a notifier or re-enable a feed"
    )
    resume.add_argument("name", help="a notifier name, or a feed's name or URL")
    resume.set_defaults(handler=_cmd_resume)
    backtest = sub.add_parser("backtest", parents=[common], help="what a rule would have caught")
    which = backtest.add_mutually_exclusive_group(required=True)
    which.add_argument("--rule", help="a rule of the watchlist (even a disabled one)")
    which.add_argument("--query", help="a query in the rule language")
    backtest.add_argument("--since", default="7d")
    backtest.set_defaults(handler=_cmd_backtest)
    search = sub.add_parser("search", parents=[common], help="stored stories matching a query")
    search.add_argument("query", help="a query in the rule language")
    search.add_argument("--since", default="7d")
    search.add_argument("--limit", type=int, default=50, help="stories shown, newest first")
    search.set_defaults(handler=_cmd_search)
    opml = sub.add_parser(
        "import-opml", parents=[common], help="[[feeds]] tables to paste, from an OPML file"
    )
    opml.add_argument("file", help="an OPML export of a feed reader, or '-'")
    opml.set_defaults(handler=_cmd_import_opml, watchlist_optional=True)
    backup = sub.add_parser("backup", parents=[common], help="a consistent copy of the database")
    backup.add_argument("path", help="where the copy goes; must not exist yet")
    backup.set_defaults(handler=_cmd_backup)
    return parser


def main(argv: list[str] | None = None) -> int:
    heap.unmap_large_blocks()  # first, so the watchlist's compilation leaves no holes
    heap.one_arena()
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    if getattr(args, "since", None):
        try:
            parse_duration(args.since)
        except ValueError as e:
            print(f"newsmon: --since: {e}", file=sys.stderr)
            return EXIT_USAGE
    path = _config_path(args)
    # only the default ./newsmon.toml may be missing: a named one is meant to be there
    named = args.config or os.environ.get("NEWSMON_CONFIG")
    optional = getattr(args, "watchlist_optional", False)
    absent = optional and not named and not path.exists()
    secrets = getattr(args, "reads_secrets", False)
    try:
        config = None if absent else load_config(path, secrets=secrets)
        if config is not None and getattr(args, "runs_daemon", False):
            require_runnable(config)
    except ConfigError as e:
        # `import-opml x.opml > newsmon.toml`: the shell made the file empty, and that is
        # no watchlist yet
        if not (optional and isinstance(e, EmptyWatchlist)):
            print(f"newsmon: configuration error: {e}", file=sys.stderr)
            return EXIT_USAGE
        config = None
    try:
        code: int = asyncio.run(args.handler(args, config))
    except StoreError as e:
        print(f"newsmon: database error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as e:  # a bad argument that names a rule, a query or a file
        print(f"newsmon: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NewsmonError as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:  # `newsmon hits | head`: the reader has what it wanted
        # and stdout goes nowhere, so that flushing it at exit raises nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
