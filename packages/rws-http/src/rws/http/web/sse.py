"""Server-Sent Events (the WHATWG ``text/event-stream`` format) as a streaming response.

An event is framed exactly as the browser's parser reads it: every line of ``data`` becomes
its own ``data:`` line (``\\r\\n``, ``\\r`` and ``\\n`` all end a line there, and only those:
``str.splitlines`` would also split on form feeds and U+2028, which the parser keeps), and
``event`` / ``id`` refuse line breaks, which would otherwise let a value start a field of its
own. An ``id`` with NUL is refused too, since browsers silently drop it.

The producer is told the client's ``Last-Event-ID`` (sent when an ``EventSource``
reconnects) by being a callable: ``EventSourceResponse(events)`` with
``async def events(last_event_id: str | None): ...`` is called with it when the response is
sent. When the client disconnects the producer is cancelled and closed, so its ``finally``
blocks run (release the subscription there). While the producer is idle for
``ping_interval`` seconds a ``: ping`` comment goes out, which keeps proxies from timing the
connection out and finds dead clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

from .datastructures import Headers
from .encoding import dumps
from .responses import BackgroundTask, StreamingResponse, run_until_disconnect
from .types import Receive, Scope, Send

__all__ = ["EventSourceResponse", "ServerSentEvent"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PING = b": ping\n\n"

Events = AsyncIterable["ServerSentEvent | Mapping[str, Any] | str"]
Producer = Callable[[str | None], Events]


class ServerSentEvent:
    """One event. ``data`` that is not a ``str`` is sent as compact JSON; ``None`` sends no
    ``data`` line (a comment or a ``retry`` alone). ``retry`` is the reconnection delay in
    milliseconds."""

    __slots__ = ("comment", "data", "event", "id", "retry")

    def __init__(
        self,
        data: Any = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        if event is not None and ("\r" in event or "\n" in event):
            raise ValueError(f"ServerSentEvent event holds CR or LF: {event!r}")
        if id is not None and ("\r" in id or "\n" in id or "\0" in id):
            raise ValueError(f"ServerSentEvent id holds CR, LF or NUL: {id!r}")
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry < 0
        ):
            raise ValueError(f"ServerSentEvent retry must be an int >= 0 (ms), got {retry!r}")
        if data is not None and not isinstance(data, str):
            data = dumps(data).decode("utf-8")
        self.data: str | None = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    def __repr__(self) -> str:
        fields = ("data", "event", "id", "retry", "comment")
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in fields if getattr(self, name) is not None
        )
        return f"ServerSentEvent({shown})"

    def encode(self) -> bytes:
        """The event's lines, ending in the blank line that dispatches it."""
        lines: list[str] = []
        if self.comment is not None:
            lines.extend(f": {line}" for line in _LINE_BREAK.split(self.comment))
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        if self.data is not None:
            lines.extend(f"data: {line}" for line in _LINE_BREAK.split(self.data))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _as_event(item: object) -> ServerSentEvent:
    if isinstance(item, ServerSentEvent):
        return item
    if isinstance(item, str):
        return ServerSentEvent(item)
    if isinstance(item, Mapping):
        return ServerSentEvent(**item)
    raise TypeError(
        "EventSourceResponse content must yield ServerSentEvent, dict or str, "
        f"not {type(item).__name__}"
    )


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` of ``content``'s events until it ends or the client leaves.

    ``content`` is an async iterable of :class:`ServerSentEvent`, ``dict`` (its keyword
    arguments) or ``str`` (the data), or a callable taking the request's ``Last-Event-ID``
    (``None`` if absent) and returning one. ``ping_interval=None`` turns pings off.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: Events | Producer,
        *,
        ping_interval: float | None = 15.0,
        headers: Mapping[str, str] | None = None,
        status_code: int = 200,
        background: BackgroundTask | None = None,
    ) -> None:
        if ping_interval is not None and not ping_interval > 0:
            raise ValueError(f"ping_interval must be > 0 seconds or None, got {ping_interval!r}")
        if not isinstance(content, AsyncIterable) and not callable(content):
            raise TypeError("EventSourceResponse content must be an async iterable or a callable")
        self.producer = content
        self.ping_interval = ping_interval
        super().__init__((), status_code, headers, background=background)
        self.headers.setdefault("cache-control", "no-cache")
        # nginx buffers proxied responses by default, which would hold events back.
        self.headers.setdefault("x-accel-buffering", "no")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = await run_until_disconnect(self._stream(scope, send), receive)
        if not disconnected and self.background is not None:
            await self.background()

    async def _stream(self, scope: Scope, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        producer = self.producer
        if isinstance(producer, AsyncIterable):
            events = producer
        else:
            events = producer(Headers(scope=scope).get("last-event-id"))
        iterator = aiter(events)
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait((pending,), timeout=self.ping_interval)
                if not done:
                    await send({"type": "http.response.body", "body": _PING, "more_body": True})
                    continue
                finished, pending = pending, None
                try:
                    item = finished.result()
                except StopAsyncIteration:
                    break
                body = _as_event(item).encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await _close(pending, iterator)


async def _close(pending: asyncio.Future[Any] | None, iterator: AsyncIterator[Any]) -> None:
    """Stop the producer so its ``finally`` blocks run, whether it is waiting or suspended."""
    if pending is not None and not pending.done():
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending
    closer = getattr(iterator, "aclose", None)
    if closer is not None:
        await closer()
