"""The shipped unit: what it promises, systemd's own verdict on it, and the installer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_sdnotify import STOP_BOUND

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "newsmon.service"
INSTALL = ROOT / "scripts" / "install.sh"
MAX_EXPOSURE = 2.0
analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


def settings(text: str) -> dict[str, list[str]]:
    """Key -> values, in order; systemd units repeat keys, so configparser will not do."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_unit_is_a_notify_service_with_watchdog_reload_and_a_dynamic_user() -> None:
    """The unit asks for what the daemon does: sd_notify from the main process, a
    watchdog, reload by SIGHUP, a dynamic user with state and configuration folders."""
    unit = settings(UNIT.read_text(encoding="utf-8"))
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert seconds(unit["WatchdogSec"][0]) >= 10
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["ExecStart"] == ["/opt/newsmon/bin/newsmon run --config /etc/newsmon/newsmon.toml"]
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["newsmon"]
    assert unit["ConfigurationDirectory"] == ["newsmon"]
    assert unit["LoadCredential"]
    assert unit["IPAddressDeny"]
    assert seconds(unit["TimeoutStopSec"][0]) > STOP_BOUND  # what test_sdnotify measures


def test_every_credential_is_optional_and_in_the_credentials_folder() -> None:
    """Each LoadCredential= reads /etc/newsmon/credentials/ID and tolerates a missing file
    (the watchlist, not the unit, decides which secrets are needed)."""
    for value in settings(UNIT.read_text(encoding="utf-8"))["LoadCredential"]:
        name, source = value.removeprefix("-").split(":", 1)
        assert value.startswith("-")
        assert source == f"/etc/newsmon/credentials/{name}"


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart names an executable that exists, since verify
    checks it; everything else as shipped."""
    stub = tmp_path / "newsmon"
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8").replace("/opt/newsmon/bin/newsmon", str(stub))
    copy = tmp_path / "newsmon.service"
    copy.write_text(text, encoding="utf-8")
    return copy


@needs_analyze
def test_systemd_verify_is_clean(checkable_unit: Path) -> None:
    """`systemd-analyze verify` finds nothing to say about the unit."""
    assert analyze is not None
    done = subprocess.run(
        [analyze, "verify", str(checkable_unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


@needs_analyze
def test_security_exposure_is_at_most_2() -> None:
    """`systemd-analyze security --offline=true` rates the unit 2.0 or lower ("OK")."""
    assert analyze is not None
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match[1]) <= MAX_EXPOSURE, done.stdout


def install(destdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args],
        env={"PATH": "/usr/bin:/bin", "DESTDIR": str(destdir), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_install_dry_run_changes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    """--dry-run lists every step under DESTDIR, creates nothing, and prints the next
    steps: enable, reload, journalctl, status."""
    done = install(tmp_path / "root", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "root").exists()
    out = done.stdout
    assert f"-m venv {tmp_path}/root/opt/newsmon" in out
    assert f"{tmp_path}/root/etc/systemd/system/newsmon.service" in out
    assert f"{tmp_path}/root/etc/newsmon/newsmon.toml" in out
    for step in (
        "systemctl enable --now newsmon",
        "systemctl reload newsmon",
        "journalctl -u newsmon",
        "newsmon status",
    ):
        assert step in out


def test_install_refuses_an_unknown_option(tmp_path: Path) -> None:
    """A typo in an option stops the installer before it touches anything."""
    done = install(tmp_path / "root", "--dryrun")
    assert done.returncode == 2
    assert not (tmp_path / "root").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("NEWSMON_TEST_INSTALL"),
    reason="downloads newsmon's dependencies from the package index: tests talk to "
    "loopback only; run with NEWSMON_TEST_INSTALL=1",
)
def test_install_into_destdir_then_again_keeps_the_watchlist(tmp_path: Path) -> None:
    """A real install under DESTDIR: a working newsmon in the virtualenv, the unit, the
    example watchlist, a root-only credentials folder; a second run keeps an edited
    watchlist."""
    root = tmp_path / "root"
    done = install(root)
    assert done.returncode == 0, done.stdout + done.stderr
    version = subprocess.run(
        [root / "opt/newsmon/bin/newsmon", "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("newsmon ")
    assert (root / "etc/systemd/system/newsmon.service").read_text() == UNIT.read_text()
    assert (root / "etc/newsmon/credentials").stat().st_mode & 0o777 == 0o700
    watchlist = root / "etc/newsmon/newsmon.toml"
    assert watchlist.read_text() == (ROOT / "config.example.toml").read_text()

    watchlist.write_text("# mine\n", encoding="utf-8")
    again = install(root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "keeping the existing" in again.stdout
    assert watchlist.read_text() == "# mine\n"


def test_every_credential_the_docs_name_is_one_the_unit_loads() -> None:
    """A `${CREDENTIALS_DIRECTORY}/NAME` in the README, the example watchlist, the docs or
    the installer names a credential the unit's LoadCredential= lines hand over: the
    example's email password once read `smtp`, which the unit does not load, and so
    failed at start under systemd with a missing secret."""
    loaded = {
        value.lstrip("-").split(":", 1)[0] for value in settings(UNIT.read_text())["LoadCredential"]
    }
    texts = [ROOT / "README.md", ROOT / "config.example.toml", INSTALL, UNIT]
    texts += sorted((ROOT / "docs").glob("*.md"))
    named = {
        (path.name, name)
        for path in texts
        for name in re.findall(r"\$\{?CREDENTIALS_DIRECTORY\}?/(\w+)", path.read_text())
    }
    assert named
    assert {(where, name) for where, name in named if name not in loaded} == set()
