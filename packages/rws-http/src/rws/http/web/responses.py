"""Responses: each is an ASGI app that sends itself (``await response(scope, receive, send)``).

The header list is built once, as ASGI wants it (lower-case ``bytes`` pairs), and
``Content-Length`` is always computed, never trusted from the caller. A HEAD request gets
the same headers and no body. ``background`` runs after the last byte is sent, so slow
follow-up work (emails, cache warming) does not delay the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .cookies import SameSite, build_set_cookie
from .datastructures import MutableHeaders
from .encoding import dumps
from .types import Receive, Scope, Send

__all__ = [
    "BackgroundTask",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]


class BackgroundTask:
    """``func(*args, **kwargs)`` to run after the response went out (sync runs in a thread)."""

    def __init__(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs

    async def __call__(self) -> None:
        if inspect.iscoroutinefunction(self.func):
            await self.func(*self.args, **self.kwargs)
        else:
            await asyncio.to_thread(self.func, *self.args, **self.kwargs)


class Response:
    """Bytes or text with a status and headers.

    ``media_type`` sets ``Content-Type`` (``; charset=utf-8`` added for ``text/*``) unless
    ``headers`` already has one.
    """

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if not 100 <= status_code <= 999:
            raise ValueError(f"status_code must be a 3-digit HTTP status, got {status_code}")
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        self.body = self.render(content)
        self.raw_headers = self.initial_headers(headers, len(self.body))

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, bytes | bytearray | memoryview):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(
            f"{type(self).__name__} takes bytes or str, not {type(content).__name__}; "
            "use JSONResponse for data"
        )

    def initial_headers(
        self, headers: Mapping[str, str] | None, length: int | None
    ) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = []
        has_type = False
        if headers:
            mutable = MutableHeaders(raw=raw)
            for key, value in headers.items():
                lower = key.lower()
                if lower == "content-length":
                    continue
                has_type = has_type or lower == "content-type"
                mutable.append(key, value)
        if length is not None and self.status_code >= 200 and self.status_code not in (204, 304):
            raw.append((b"content-length", str(length).encode()))
        if not has_type and self.media_type is not None:
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type:
                content_type += f"; charset={self.charset}"
            raw.append((b"content-type", content_type.encode("latin-1")))
        return raw

    @property
    def headers(self) -> MutableHeaders:
        """The response headers; edits change what is sent."""
        return MutableHeaders(raw=self.raw_headers)

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header (see :func:`rws.http.web.cookies.build_set_cookie`)."""
        header = build_set_cookie(
            key,
            value,
            max_age=max_age,
            expires=expires,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )
        self.raw_headers.append((b"set-cookie", header.encode("latin-1")))

    def delete_cookie(
        self,
        key: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
    ) -> None:
        """Expire the cookie: same name, path and domain, ``Max-Age=0`` and a past date."""
        self.set_cookie(
            key,
            max_age=0,
            expires=datetime(1970, 1, 1),  # naive means UTC here
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})
        if self.background is not None:
            await self.background()


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


class JSONResponse(Response):
    """``content`` encoded as compact UTF-8 JSON (see :mod:`rws.http.web.encoding`)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class RedirectResponse(Response):
    """A redirect to ``url`` (307 by default: keeps method and body; 303 after a form POST)."""

    def __init__(
        self,
        url: str,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if status_code not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect status must be 301/302/303/307/308, got {status_code}")
        if "\r" in url or "\n" in url:
            raise ValueError("redirect URL holds CR or LF")
        super().__init__(b"", status_code, headers, background=background)
        # Keep the URL's structure, percent-encode only what may not appear in a header.
        location = quote(url, safe=":/%#?=@[]!$&'()*+,;~")
        self.raw_headers.append((b"location", location.encode("latin-1")))


Content = AsyncIterable[str | bytes] | Iterable[str | bytes]


class StreamingResponse(Response):
    """Sends ``content`` chunk by chunk as it is produced.

    While it streams, a second task watches ``receive()``: when the client goes away the
    producer is cancelled at its next ``await`` (its ``finally`` blocks run), instead of
    producing into a dead connection until the server's send fails. A sync iterator is
    advanced in a thread so a blocking generator cannot stall the event loop.
    """

    def __init__(
        self,
        content: Content,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.content = content
        super().__init__(None, status_code, headers, media_type, background)
        self.raw_headers = self.initial_headers(headers, None)

    async def chunks(self) -> AsyncIterable[str | bytes]:
        if isinstance(self.content, AsyncIterable):
            async for chunk in self.content:
                yield chunk
            return
        iterator = iter(self.content)
        while True:
            item = await asyncio.to_thread(_next_or_none, iterator)
            if item is None:
                return
            yield item

    async def stream(self, scope: Scope, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if scope.get("method") != "HEAD":
            async for chunk in self.chunks():
                data = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = await run_until_disconnect(self.stream(scope, send), receive)
        if not disconnected and self.background is not None:
            await self.background()


def _next_or_none(iterator: Iterator[str | bytes]) -> str | bytes | None:
    return next(iterator, None)


async def run_until_disconnect(work: Awaitable[None], receive: Receive) -> bool:
    """Run ``work`` until it ends or the client disconnects; True if it was cut short.

    Only for code that no longer needs the request body: this consumes ``receive()``.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.cancelled():
        return True
    task.result()  # the producer's own error propagates
    return False


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
