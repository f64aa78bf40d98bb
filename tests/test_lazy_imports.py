"""Libraries only some watchlists need are imported when one does: a daemon without email
or metrics never loads them (docs/performance.md, memory), and one whose reload adds an
email notifier still delivers by email."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.store import Store
from tests.daemon import ROOT
from tests.servers import Item, Publisher
from tests.smtp_server import Recorder
from tests.watchlists import watchlist

CONSOLE = '[notifiers.hook]\ntype = "console"\n'
OPTIONAL = ("aiosmtplib", "prometheus_client", "aiohttp.web")


def test_a_daemon_without_email_or_metrics_loads_neither(tmp_path: Path) -> None:
    """`newsmon run`'s imports and a daemon's start with a console notifier and no metrics
    endpoint leave aiosmtplib, prometheus_client and aiohttp's server unimported."""
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=[]), encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        import monitor.cli
        from monitor.config import load_config
        from monitor.daemon import Daemon

        async def main():
            async with Daemon.open(load_config(Path({str(path)!r}))) as daemon:
                await daemon.run_once(delivery_deadline=1.0)

        asyncio.run(main())
        print(" ".join(m for m in {OPTIONAL!r} if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


async def test_commands_that_read_the_watchlist_or_database_load_no_network(
    tmp_path: Path,
) -> None:
    """`check`, `status` and `hits` answer without importing aiohttp, the scheduler or the
    extractor: half a second of imports a person at the prompt would wait for."""
    path = tmp_path / "newsmon.toml"
    path.write_text(watchlist(feeds=["http://127.0.0.1:9/rss.xml"]), encoding="utf-8")
    await (await Store.open(tmp_path / "newsmon.db")).close()  # status and hits read it
    script = textwrap.dedent(
        f"""
        import sys
        from monitor.cli import main

        codes = [main([c, "--config", {str(path)!r}]) for c in ("check", "status", "hits")]
        print(codes, [m for m in ("aiohttp", "apscheduler", "trafilatura") if m in sys.modules])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[0, 0, 0] []"


async def test_an_email_notifier_added_by_a_reload_delivers(
    publisher: Publisher,
    smtpd: tuple[Recorder, int],
    write_watchlist,
) -> None:
    """A reload that turns the rule's destination into an email notifier sends the next
    hit by email: the notifier's module is imported on the way."""
    recorder, port = smtpd
    publisher.rss_items = [Item("Embassy row", "/x", summary="Russia recalls embassy staff.")]
    text = watchlist(feeds=[f"{publisher.base}/rss.xml"])
    path = write_watchlist(text)
    async with Daemon.open(load_config(path)) as daemon:
        email = (
            f'[notifiers.hook]\ntype = "email"\nhost = "127.0.0.1"\nport = {port}\n'
            'security = "none"\nfrom = "newsmon <alerts@example.org>"\nto = ["desk@example.org"]\n'
        )
        path.write_text(text.replace(CONSOLE, email), encoding="utf-8")
        assert await daemon.reload() is True
        await daemon.run_once(delivery_deadline=30.0)
    (message,) = recorder.messages
    assert message.rcpt_tos == ["desk@example.org"]
    assert "Embassy row" in str(message.message["Subject"])
