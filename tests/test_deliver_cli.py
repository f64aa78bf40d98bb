"""`newsmon notify-test`, `resume` and `deliveries` as a user runs them, and the proof
that no destination secret reaches a log line or the CLI's output."""

from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from monitor.config import load_config
from monitor.daemon import build_notifier
from monitor.deliver import Relay, RetryPolicy
from monitor.fetch import make_session
from monitor.models import LanePolicy
from monitor.store import Store
from tests.daemon import newsmon_async
from tests.hostile import StubResolver
from tests.outbox import Answer, Hook, ManualClock, add_hits
from tests.smtp_server import Recorder

TOKEN = "t0k3n-in-the-path"  # the Hook's URL path
HMAC_SECRET = "hmac-Secret-77f2"
SLACK_TOKEN = "T000/B000/slackSECRETxyz"
PASSWORD = "wrong-Pa55-secret-91"


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def watchlist(tmp_path: Path, hook_url: str, smtp_port: int = 25) -> Path:
    path = tmp_path / "newsmon.toml"
    path.write_text(
        f"""
[monitor]
database = "newsmon.db"

[[rules]]
name = "r"
query = "Russia"
notify = ["hook", "slack", "mail"]

[notifiers.hook]
type = "webhook"
url = "{hook_url}"
secret = "{HMAC_SECRET}"
pause_after = 1
max_age = "1s"

[notifiers.slack]
type = "slack"
url = "http://127.0.0.1:{closed_port()}/services/{SLACK_TOKEN}"
max_age = "1s"
rate = 1000

[notifiers.mail]
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
username = "alerts"
password = "{PASSWORD}"
from = "newsmon <alerts@example.org>"
to = ["desk@example.org"]
max_age = "1s"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    async with Hook() as server:
        yield server


async def test_notify_test_prints_the_answer_and_exits_by_outcome(
    hook: Hook, tmp_path: Path
) -> None:
    """notify-test: exit 0 and the answer when accepted, 1 when refused, 2 for a name
    that is no notifier; the test alert reaches the destination signed."""
    path = watchlist(tmp_path, hook.url)
    done = await newsmon_async("notify-test", "hook", "--config", str(path))
    assert (done.returncode, done.stdout) == (0, "hook: sent: HTTP 200\n"), done.stderr
    (got,) = hook.accepted
    assert got.body["rule"] == "notify-test"
    assert got.headers["X-Newsmon-Signature"].startswith("sha256=")

    hook.script = [Answer(404)]
    refused = await newsmon_async("notify-test", "hook", "--config", str(path))
    assert (refused.returncode, refused.stdout) == (1, "hook: refused: HTTP 404: answer\n")
    down = await newsmon_async("notify-test", "slack", "--config", str(path))
    assert down.returncode == 1
    assert down.stdout.startswith("slack: failed (temporary): connection failed: ")
    unknown = await newsmon_async("notify-test", "nope", "--config", str(path))
    assert unknown.returncode == 2
    assert "no notifier named 'nope'" in unknown.stderr


async def test_deliveries_explains_failures_and_shows_pauses_until_resume(
    hook: Hook, tmp_path: Path
) -> None:
    """After a refusal pauses a destination, `deliveries` says so on top and explains each
    row in one line; `resume` unpauses it (exit 2 for an unknown name)."""
    path = watchlist(tmp_path, hook.url)
    config = load_config(path)
    hook.script = [Answer(410)]
    store = await Store.open(config.monitor.database)
    try:
        await add_hits(store, 2, ["hook"], 1_750_000_000.0)
        async with make_session(user_agent="t") as session:
            notifiers = {"hook": build_notifier(config.notifiers["hook"], session)}
            lanes = {"hook": config.notifiers["hook"].lane}
            relay = Relay(store, notifiers, policy=RetryPolicy(), clock=lambda: 1.75e9,
                          lanes=lanes)  # fmt: skip
            await relay.run(until_empty=True)
    finally:
        await store.close()

    shown = await newsmon_async("deliveries", "--config", str(path))
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("PAUSED hook since ")
    assert "1 permanent failures in a row, the last: HTTP 410: answer" in lines[0]
    assert "`newsmon resume hook`" in lines[0]
    assert any(" failed " in x and x.endswith("refused: HTTP 410: answer") for x in lines)
    assert any(" pending " in x for x in lines)
    as_json = json.loads(
        (await newsmon_async("deliveries", "--json", "--config", str(path))).stdout
    )
    assert [d["notifier"] for d in as_json["paused"]] == ["hook"]
    assert {d["reason"] for d in as_json["deliveries"]} == {"refused: HTTP 410: answer", ""}

    assert (await newsmon_async("resume", "nope", "--config", str(path))).returncode == 2
    resumed = await newsmon_async("resume", "hook", "--config", str(path))
    assert resumed.returncode == 0
    assert resumed.stdout.startswith("hook resumed")
    again = await newsmon_async("deliveries", "--config", str(path))
    assert "PAUSED" not in again.stdout
    assert (
        await newsmon_async("resume", "hook", "--config", str(path))
    ).stdout == "hook was not paused\n"

    [failed] = [d["id"] for d in as_json["deliveries"] if d["state"] == "failed"]
    requeued = await newsmon_async("redeliver", failed[:8], "--config", str(path))
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.startswith(f"delivery {failed} queued again")
    shown = await newsmon_async("deliveries", "--config", str(path))
    [line] = [x for x in shown.stdout.splitlines() if x.startswith(failed[:12])]
    assert " pending " in line
    assert line.endswith("queued again; it had failed: HTTP 410: answer")
    twice = await newsmon_async("redeliver", failed, "--config", str(path))
    assert twice.returncode == 2
    assert "cannot be sent again: it is pending, not failed" in twice.stderr
    unknown = await newsmon_async("redeliver", "zz", "--config", str(path))
    assert unknown.returncode == 2
    assert "no delivery has an id starting 'zz'" in unknown.stderr


async def test_a_name_that_does_not_resolve_is_retried_shown_and_then_sent(
    hook: Hook, tmp_path: Path
) -> None:
    """A destination whose host name does not resolve (RELIABILITY.md case 46, a resolver
    stub: no query leaves the machine): the attempt fails as a connection failure that says
    so, the delivery stays pending, and `newsmon deliveries` shows its one try and
    when the next is due. Once the name resolves, the same delivery is sent, once."""
    path = watchlist(tmp_path, hook.url.replace("127.0.0.1", "hooks.test"))
    config = load_config(path)
    clock = ManualClock()
    resolver = StubResolver({})
    store = await Store.open(config.monitor.database)
    try:
        await add_hits(store, 1, ["hook"], clock())
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(connector=connector) as session:
            notifier = build_notifier(config.notifiers["hook"], session)
            relay = Relay(store, {"hook": notifier}, policy=RetryPolicy(), clock=clock,
                          rng=random.Random(5), lanes={"hook": LanePolicy()})  # fmt: skip
            await relay.send_due("hook")
            (row,) = await store.deliveries()
            assert (row.state, row.attempts) == ("pending", 1)
            assert (
                row.last_error
                == "connection failed: ClientConnectorDNSError (Name or service not known)"
            )
            shown = await newsmon_async("deliveries", "--config", str(path))
            (line,) = [x for x in shown.stdout.splitlines() if " pending " in x]
            assert line.split()[3] == "1"  # tries
            when = datetime.fromtimestamp(row.next_attempt_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            assert f"retry at {when} after: connection failed: " in line

            resolver.script["hooks.test"] = [["127.0.0.1"]]
            clock.now = row.next_attempt_at
            await relay.send_due("hook")
        (row,) = await store.deliveries()
    finally:
        await store.close()
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(hook.accepted) == 1
    assert resolver.queries == ["hooks.test", "hooks.test"]


async def test_no_secret_in_logs_or_cli_output_when_destinations_fail(
    tmp_path: Path,
    smtpd: tuple[Recorder, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A webhook that echoes its request (token in the URL, HMAC secret set), a Slack URL
    that refuses connections and an SMTP login refused: no URL token, password or HMAC
    secret shows in the relay's logs, in `notify-test` or in `deliveries`
    (RELIABILITY.md case 54)."""
    _, smtp_port = smtpd
    async with Hook([Answer(500, echo=True)] * 100) as server:
        path = watchlist(tmp_path, server.url, smtp_port)
        config = load_config(path)
        names = ["hook", "slack", "mail"]
        store = await Store.open(config.monitor.database)
        try:
            await add_hits(store, 2, names, 1_750_000_000.0)
            async with make_session(user_agent="t") as session:
                notifiers = {n: build_notifier(config.notifiers[n], session) for n in names}
                lanes = {n: config.notifiers[n].lane for n in names}
                relay = Relay(
                    store, notifiers, policy=RetryPolicy(base=0.01, cap=0.05, floor=0.01),
                    clock=lambda: 1_750_000_000.0, rng=random.Random(5), lanes=lanes,
                )  # fmt: skip
                with caplog.at_level(logging.DEBUG):
                    for name in names:
                        await relay.send_due(name)
        finally:
            await store.close()
        assert len(server.seen) == 1  # the echoing webhook was asked, and answered 500
        outputs = [
            await newsmon_async("--version"),
            *[await newsmon_async("notify-test", n, "--log-level", "debug", "--config", str(path))
              for n in names],
            await newsmon_async("deliveries", "--config", str(path)),
            await newsmon_async("deliveries", "--json", "--config", str(path)),
        ]  # fmt: skip
    assert [o.returncode for o in outputs[1:4]] == [1, 1, 1]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("newsmon"))
    assert "delivery_retry" in logged
    printed = "\n".join(o.stdout + o.stderr for o in outputs)
    assert "authentication failed: 535" in printed
    for secret in (TOKEN, HMAC_SECRET, SLACK_TOKEN, "slackSECRETxyz", PASSWORD):
        assert secret not in logged
        assert secret not in printed
