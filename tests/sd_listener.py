"""A test double for systemd's notification socket, shared by the sd_notify tests."""

from __future__ import annotations

import asyncio
import socket
from typing import Self

import pytest


class Listener:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET spells it
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._bound = "\0" + address[1:] if address.startswith("@") else address
        self.sock.bind(self._bound)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def receive_now(self) -> dict[str, str]:
        """The next datagram, which must already have arrived."""
        return _fields(self.sock.recv(4096))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            async with self._changed:
                self.messages.append(_fields(data))
                self._changed.notify_all()

    def start(self) -> None:
        self._task = asyncio.create_task(self._collect())

    async def wait_for(self, key: str, count: int = 1, timeout: float = 60.0) -> None:
        def seen() -> bool:
            return sum(key in m for m in self.messages) >= count

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(seen)

    async def collected(self) -> None:
        """Returns once every datagram sent before the call is in ``messages``: a marker
        sent now queues behind them (the socket's queue is first in, first out)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(f"{_MARKER}=1".encode(), self._bound)
        await self.wait_for(_MARKER)
        self.messages = [m for m in self.messages if _MARKER not in m]

    async def __aenter__(self) -> Self:
        """Collecting datagrams until the block ends."""
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task
        self.sock.close()


_MARKER = "X_TEST_COLLECTED"  # no key systemd defines


def _fields(data: bytes) -> dict[str, str]:
    lines = data.decode().splitlines()
    return dict(line.split("=", 1) for line in lines)
