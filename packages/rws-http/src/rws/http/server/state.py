"""State shared by every connection of one server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

from .config import Config
from .cycle import ASGIApp, HeldHeads


class AccessLogger(Protocol):
    def log(self, record: Any) -> None: ...

    def reopen(self) -> None: ...

    async def aclose(self) -> None: ...


class Closable(Protocol):
    def shutdown(self) -> None:
        """Finish the exchange in progress, then close; close at once when idle."""

    def abort(self) -> None:
        """Close now, telling the app its client is gone."""


@dataclass(slots=True)
class ServerState:
    app: ASGIApp
    config: Config
    #: What lifespan startup put in ``scope["state"]``; copied into every request scope.
    lifespan_state: dict[str, Any] = field(default_factory=dict)
    connections: set[Closable] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    access_log: AccessLogger | None = None
    shutting_down: bool = False
    default_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    held_heads: HeldHeads = field(default_factory=HeldHeads)

    def __post_init__(self) -> None:
        if self.config.server_header:
            self.default_headers.append((b"server", b"rws"))


class DateHeader:
    """``Date`` value, formatted once per second rather than once per response."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


date_header = DateHeader()
