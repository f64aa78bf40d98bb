"""The sd_notify protocol, spoken directly: each message is one datagram to $NOTIFY_SOCKET.

See sd_notify(3) and systemd.service(5). No library is needed: a message is newline-separated
``KEY=VALUE`` lines sent to an AF_UNIX datagram socket whose address is a path, or an
abstract-namespace name written with a leading ``@``. Without NOTIFY_SOCKET (not under
systemd, or ``Type=`` is not notify) every call does nothing. A failed send never raises
into the daemon: the supervisor may be gone while we shut down; it is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from monitor.log import log_event

log = logging.getLogger("newsmon.sdnotify")
EXTEND_EVERY = 10.0  # seconds between EXTEND_TIMEOUT_USEC= messages in a long start-up step


def _address(value: str) -> str | None:
    """The socket address systemd means, or None for a form we do not speak.

    sd_notify(3): "/path" is a file system socket, "@name" the abstract namespace (the
    '@' stands for the leading NUL byte). systemd 254's "vsock:" addresses are not used by
    a service manager on the same host, so they are refused rather than misread.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


class SystemdNotifier:
    """Sends state changes to the service manager; a no-op when there is none."""

    def __init__(
        self, socket_path: str | None, *, monotonic_ns: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self._monotonic_ns = monotonic_ns
        self._failed = False
        self._socket: socket.socket | None = None
        self._address = _address(socket_path) if socket_path else None
        if socket_path and self._address is None:
            self._fail("unsupported NOTIFY_SOCKET address")
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, **fields: str) -> bool:
        """Send one message of ``KEY=value`` lines; True when the manager got it."""
        if self._socket is None or self._address is None:
            return False
        message = "".join(f"{key}={_line(value)}\n" for key, value in fields.items())
        try:
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as e:
            self._fail(e.strerror or type(e).__name__)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete: systemd considers the service running."""
        if status is None:
            return self.send(READY="1")
        return self.send(READY="1", STATUS=status)

    def status(self, text: str) -> bool:
        """A one-line state shown by ``systemctl status``."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def reloading(self) -> bool:
        """A reload begins; ``ready()`` ends it. MONOTONIC_USEC in the same datagram lets
        systemd (``Type=notify-reload``, v253+) match the message to the reload it asked for.
        """
        usec = self._monotonic_ns() // 1000
        return self.send(RELOADING="1", MONOTONIC_USEC=str(usec))

    def stopping(self) -> bool:
        """Shutdown has begun; systemd now waits up to TimeoutStopSec for the exit."""
        return self.send(STOPPING="1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _fail(self, reason: str) -> None:
        if not self._failed:
            self._failed = True
            log_event(log, logging.WARNING, "sd_notify_failed", reason=reason)


def _line(value: str) -> str:
    """A value may not span lines: a newline would start a new assignment."""
    return value.replace("\r", " ").replace("\n", " ")


def watchdog_interval(
    environ: Mapping[str, str] = os.environ, pid: int | None = None
) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises; None when no watchdog is asked of this process (WATCHDOG_PID names another)."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1e6 / 2


async def keep_alive(
    notifier: SystemdNotifier,
    interval: float,
    healthy: Callable[[], Awaitable[object]],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Ping the watchdog every ``interval`` seconds, from the event loop, while ``healthy()``
    returns within the interval. A stalled loop or a database that no longer answers stops
    the pings, and systemd restarts the service (RELIABILITY case 68). Runs until cancelled.
    """
    answering = True
    while True:
        try:
            async with asyncio.timeout(interval):
                await healthy()
        except Exception as e:  # any failure to answer means: do not ping
            if answering:
                log_event(log, logging.ERROR, "watchdog_withheld", reason=_reason(e))
            answering = False
        else:
            if not answering:
                log_event(log, logging.INFO, "watchdog_resumed")
            answering = True
            notifier.watchdog()
        await sleep(interval)


@asynccontextmanager
async def extending_start(
    notifier: SystemdNotifier, status: str, *, every: float = EXTEND_EVERY
) -> AsyncIterator[None]:
    """Hold off the start timeout while a long step of start-up runs, saying what it is.

    A schema upgrade of a large database may outlast the unit's ``TimeoutStartSec=``; a
    start killed there rolls the upgrade back, and each restart begins it again until
    ``StartLimitBurst`` gives up. Every ``every`` seconds EXTEND_TIMEOUT_USEC= grants three
    times that from the event loop, so a stalled loop still times out (sd_notify(3);
    systemd 236 and later, which older ones ignore)."""
    if not notifier.enabled:
        yield
        return

    async def extend() -> None:
        grant = str(round(every * 3 * 1e6))
        while True:
            notifier.send(EXTEND_TIMEOUT_USEC=grant, STATUS=status)
            await asyncio.sleep(every)

    task = asyncio.create_task(extend())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # not `await task`: our own cancellation must go on


def _reason(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return "the database did not answer in time"
    return f"{type(error).__name__}: {error}"
