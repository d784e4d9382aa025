"""Knowing whether a response has started, which decides how an error can still be reported."""

from __future__ import annotations

from .types import Message, Send

__all__ = ["TrackedSend"]


class TrackedSend:
    """``send`` that remembers whether the response started: an error after that point can
    no longer become an error response, only an aborted one."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)
