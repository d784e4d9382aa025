"""One HTTP request/response exchange as ASGI sees it, for every HTTP version.

The protocol layers (HTTP/1.1 on h11, HTTP/2 on h2) parse bytes into request events and turn
response calls into bytes; this module is the single bridge between those events and the
application's ``receive``/``send``. HTTP/1.1 and HTTP/2 therefore behave identically for the
app: body streaming, 100-continue, trailers, HEAD, 204/304, errors and disconnects.

The protocol feeds the request side (:meth:`HTTPCycle.feed_body`, :meth:`feed_end`,
:meth:`feed_disconnect`) and implements :class:`ResponseSink` for the response side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

logger = logging.getLogger("rws.http.error")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

#: Statuses whose responses never carry a body (RFC 9110 6.4.1).
NO_BODY_STATUS = frozenset({204, 304})
_PATHSEND_CHUNK = 256 * 1024

_INTERNAL_ERROR_BODY = b"Internal Server Error"
#: A header name is a token (RFC 9110 5.1); a value has no CR, LF or NUL (RFC 9110 5.5).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\r\n\x00]")
#: Fields that frame or route a message: meaningless in a 1xx, and refused there.
_NOT_IN_HINTS = frozenset(
    {
        b"connection",
        b"content-length",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_ERROR_HEADERS: Headers = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"connection", b"close"),
]


class ResponseSink(Protocol):
    """What a protocol provides to write one response (one stream, for HTTP/2)."""

    def send_informational(self, status: int, headers: Headers) -> None: ...

    def send_head(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        """Status line and headers, with the first body bytes (``end``: nothing follows)."""

    def send_data(self, data: bytes, end: bool) -> None: ...

    def send_trailers(self, headers: Headers) -> None:
        """Trailer fields; ends the message."""

    async def drain(self) -> None:
        """Wait until the client has taken enough of what was written (back-pressure)."""

    def body_consumed(self, size: int) -> None:
        """The app took ``size`` request body bytes: read more / open the flow window."""

    def abort(self) -> None:
        """The response cannot be completed: close the connection or reset the stream."""

    def done(self, cycle: HTTPCycle) -> None:
        """The exchange is over (the response is complete or aborted)."""


class HeldHeads:
    """Response heads waiting for their first body bytes, flushed by one callback per turn.

    A head is held so it leaves with the first body chunk (one write). When the app yields
    before sending any body, the head must go out on its own; one loop callback per turn of
    the loop does that for every held head of the server, instead of one callback per request.
    """

    __slots__ = ("_cycles",)

    def __init__(self) -> None:
        self._cycles: list[HTTPCycle] = []

    def add(self, cycle: HTTPCycle) -> None:
        cycles = self._cycles
        if not cycles:
            asyncio.get_running_loop().call_soon(self._flush)
        cycles.append(cycle)

    def _flush(self) -> None:
        cycles, self._cycles = self._cycles, []
        for cycle in cycles:
            cycle._flush_head()


class HTTPCycle:
    """ASGI ``receive``/``send`` for one request, plus the app runner around them."""

    __slots__ = (
        "_body",
        "_body_waiter",
        "_buffered",
        "_deferred_error",
        "_disconnected",
        "_eof",
        "_expect_100",
        "_final_sent",
        "_has_trailers",
        "_headers",
        "_hold_head",
        "_limit_fixed",
        "_more_body",
        "_received",
        "_status",
        "_trailers",
        "complete",
        "declared_length",
        "head_request",
        "held_heads",
        "max_body_size",
        "response_bytes",
        "scope",
        "sink",
        "started",
        "status",
    )

    def __init__(
        self,
        scope: Scope,
        sink: ResponseSink,
        *,
        more_body: bool,
        expect_100: bool = False,
        max_body_size: int = 0,
        declared_length: int = -1,
        held_heads: HeldHeads | None = None,
    ) -> None:
        self.scope = scope
        self.sink = sink
        self.head_request = scope["method"] == "HEAD"
        self.max_body_size = max_body_size
        self.declared_length = declared_length
        self.held_heads = held_heads
        # Until the app first reads (or starts its response) it may still change the limit
        # with an ``rws.http.body_limit`` message, so the limit is applied from then on.
        self._limit_fixed = not more_body
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._received = 0
        self._more_body = more_body
        self._expect_100 = expect_100 and more_body
        self._body_waiter: asyncio.Future[None] | None = None
        self._final_sent = False
        self._deferred_error: Exception | None = None
        self._disconnected = False
        self._eof = False
        self.started = False
        self.complete = False
        self.status = 0
        self.response_bytes = 0
        self._status = 0
        self._headers: Headers = []
        self._has_trailers = False
        self._hold_head = False
        self._trailers: Headers | None = None

    # -- request side, fed by the protocol ---------------------------------------------------

    @property
    def buffered(self) -> int:
        return self._buffered

    def feed_body(self, data: bytes) -> bool:
        """Queue request body bytes; ``False`` when they push the body over its limit.

        Before the limit is fixed the protocol's read buffer (HTTP/1.1) or flow-control
        window (HTTP/2) bounds what can pile up here.
        """
        self._received += len(data)
        if (
            self.max_body_size
            and self._received > self.max_body_size
            and (self._limit_fixed or self._status)
        ):
            return False
        self._body.append(data)
        self._buffered += len(data)
        self._wake()
        return True

    def feed_end(self, trailers: Headers | None = None) -> None:
        """The request body is complete; ``trailers``: its trailer fields, if it had any."""
        self._more_body = False
        if trailers:
            self._trailers = trailers
        self._wake()

    def feed_disconnect(self) -> None:
        """The client went away (or the server is shutting the exchange down)."""
        self._disconnected = True
        self._wake()

    def feed_eof(self) -> None:
        """The client finished sending (TCP FIN) while its response is pending.

        Most such clients have gone away (a closed browser tab, a cancelled long poll), so
        once the body has been delivered ``receive()`` reports ``http.disconnect``, as
        uvicorn and nginx do; unlike a real disconnect the response is still sent, for the
        few clients that half-close and then wait for the answer (``nc``, HTTP/1.0 scripts).
        """
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the ASGI callables -----------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._limit_fixed and not self._fix_limit():
            return {"type": "http.disconnect"}
        while True:
            if self._body:
                data = self._body.popleft() if len(self._body) == 1 else self._drain_body()
                self._buffered -= len(data)
                self.sink.body_consumed(len(data))
                more = self._more_body or bool(self._body)
                self._final_sent = not more
                if not more and self._trailers is not None:
                    return self._last_message(data)
                return {"type": "http.request", "body": data, "more_body": more}
            if self._disconnected or self.complete:
                return {"type": "http.disconnect"}
            if not self._more_body:
                if not self._final_sent:
                    self._final_sent = True
                    return self._last_message(b"")
                if self._eof:
                    return {"type": "http.disconnect"}
                # The whole body was delivered: block until the client leaves or the
                # response completes, as ASGI asks.
            elif self._expect_100:
                self._expect_100 = False
                if not self.started:
                    self.sink.send_informational(100, [])
            self._body_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._body_waiter
            finally:
                self._body_waiter = None

    def _last_message(self, data: bytes) -> Message:
        """The last ``http.request``, with the request's trailers if it had any.

        ASGI has no message for request trailers; the ``rws.http.request_trailers`` extension
        puts them on this one.
        """
        message: Message = {"type": "http.request", "body": data, "more_body": False}
        if self._trailers is not None:
            message["trailers"] = self._trailers
        return message

    def _fix_limit(self) -> bool:
        """Apply the body limit now that the app has had its say; ``False``: refused (413).

        Nothing of a body announced too large has been asked for yet: with
        ``Expect: 100-continue`` the client gets the 413 instead of ``100 Continue``.
        """
        self._limit_fixed = True
        limit = self.max_body_size
        if not limit or (self.declared_length <= limit and self._received <= limit):
            return True
        if self.started:
            self.sink.abort()
            self.complete = True
            self.sink.done(self)
        else:
            self.respond(413, b"Request body too large")
        self._disconnected = True
        if self._buffered:
            self.sink.body_consumed(self._buffered)  # HTTP/2: give the flow window back
            self._body.clear()
            self._buffered = 0
        return False

    def set_body_limit(self, message: Message) -> None:
        """The ``rws.http.body_limit`` extension: this request's own body limit.

        A per-route limit (an upload route above the server default, a JSON API below it)
        must be set before the app reads the body or starts its response.
        """
        size = message.get("max_body_size")
        if type(size) is not int or size < 0:
            raise RuntimeError(
                f"rws.http.body_limit needs max_body_size as an int >= 0 (0: no limit), "
                f"not {size!r}"
            )
        if (self._limit_fixed or self._status) and self._more_body:
            raise RuntimeError(
                "rws.http.body_limit must be sent before the body is read or the response starts"
            )
        self.max_body_size = size

    def _drain_body(self) -> bytes:
        data = b"".join(self._body)
        self._body.clear()
        return data

    async def send(self, message: Message) -> None:
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        kind = message["type"]
        if kind == "http.response.body":
            await self._send_body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.trailers":
            self._send_trailers(message)
        elif kind == "http.response.pathsend":
            await self._send_path(message)
        elif kind == "http.response.early_hint":
            self._send_early_hint(message)
        elif kind == "rws.http.body_limit":
            self.set_body_limit(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    def _start(self, message: Message) -> None:
        if self._disconnected and self.complete:
            return  # the server answered already (413) or the client left: nothing to send
        if self._status or self.complete:
            raise RuntimeError("http.response.start sent twice")
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 999:
            raise RuntimeError(f"invalid HTTP status {status!r} (1xx are not responses)")
        headers = message.get("headers", ())
        self._headers = headers if type(headers) is list else list(headers)
        self._status = status
        self._has_trailers = bool(message.get("trailers", False))
        # The head goes out with the first body chunk (one write, and a Content-Length for
        # single-shot bodies). If the app yields before sending any body (SSE, long polls),
        # a callback sends the head alone so the client is not left waiting for it.
        if self.held_heads is not None:
            self.held_heads.add(self)
        else:
            asyncio.get_running_loop().call_soon(self._flush_head)

    def _send_early_hint(self, message: Message) -> None:
        """``http.response.early_hint``: a ``103 Early Hints`` (RFC 8297), sent at once.

        Before ``http.response.start`` only, as often as the app likes. ``links`` (the ASGI
        extension's key, as Hypercorn reads it) are ``Link`` values; ``headers`` (an rws
        addition: RFC 8297 allows any field) are more ``(name, value)`` pairs. The protocol
        drops it for HTTP/1.0 clients, which must not see a 1xx.
        """
        if self.complete and self._disconnected:
            return  # the server answered already (413) or the client left
        if self._status or self.started or self.complete:
            raise RuntimeError("http.response.early_hint must come before http.response.start")
        headers = early_hint_headers(message)
        if not self._disconnected:
            self.sink.send_informational(103, headers)

    def _flush_head(self) -> None:
        if self.started or self.complete or self._disconnected or not self._status:
            return
        if self._hold_head:
            return
        self.started = True
        self.status = self._status
        try:
            self.sink.send_head(self._status, self._headers, b"", False)
        except Exception as exc:  # re-raised into the app by its next send()
            self._deferred_error = exc

    async def _send_body(self, body: bytes, more: bool) -> None:
        if self.complete:
            if self._disconnected:
                return
            raise RuntimeError("http.response.body sent after the response completed")
        if not self._status:
            raise RuntimeError("http.response.body sent before http.response.start")
        if self._disconnected:
            return
        if type(body) is not bytes:
            body = bytes(body)
        end = not more and not self._has_trailers
        if self.head_request or self._status in NO_BODY_STATUS:
            body = b""
        if not self.started:
            self.started = True
            self.status = self._status
            headers = self._headers
            if not more and not self._has_trailers and not self.head_request:
                headers = _with_length(headers, len(body), self._status)
            self.sink.send_head(self._status, headers, body, end)
        elif body or end:
            self.sink.send_data(body, end)
        self.response_bytes += len(body)
        if end:
            self._finish()
        elif body:
            await self.sink.drain()

    def _send_trailers(self, message: Message) -> None:
        if not self._has_trailers or not self.started or self.complete:
            raise RuntimeError("http.response.trailers needs trailers=True and a started body")
        if message.get("more_trailers", False):
            raise RuntimeError("more_trailers is not supported: send all trailers at once")
        headers = message.get("headers", ())
        self.sink.send_trailers(list(headers))
        self._finish()

    async def _send_path(self, message: Message) -> None:
        path = message["path"]
        if not self._status or self.started:
            raise RuntimeError("http.response.pathsend must follow http.response.start alone")
        loop = asyncio.get_running_loop()
        self._hold_head = True  # the size, known after open(), goes into the head
        file = await loop.run_in_executor(None, open, path, "rb")
        try:
            size = os.fstat(file.fileno()).st_size
            first = True
            remaining = size
            while first or remaining > 0:
                chunk = await loop.run_in_executor(None, file.read, _PATHSEND_CHUNK)
                remaining -= len(chunk)
                if first and not self._has_content_length():
                    self._headers = [*self._headers, (b"content-length", str(size).encode())]
                first = False
                await self._send_body(chunk, more=remaining > 0 and bool(chunk))
                if not chunk:
                    break
        finally:
            file.close()

    def _has_content_length(self) -> bool:
        return any(name.lower() == b"content-length" for name, _ in self._headers)

    def _finish(self) -> None:
        self.complete = True
        self._wake()
        self.sink.done(self)

    # -- running the app ---------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Run the app for this request; never lets an app error escape to the server."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self.complete:
                self.sink.abort()
                self.complete = True
                self.sink.done(self)
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            logger.error(
                "exception in ASGI application for %s %s",
                self.scope["method"],
                self.scope["path"],
                exc_info=exc,
            )
            self._fail()
        else:
            gone = self._disconnected or self._eof
            if not self.started and not self.complete and gone:
                # The client left (or reset the stream) and the app stopped: nothing to say.
                self.complete = True
                self.sink.done(self)
            elif not self.started and not self.complete:
                logger.error(
                    "ASGI callable returned without starting a response for %s %s",
                    self.scope["method"],
                    self.scope["path"],
                )
                self._fail()
            elif not self.complete:
                if not gone:  # a streaming app stopping because the client left is normal
                    logger.error("ASGI callable returned without completing the response")
                self.sink.abort()
                self.complete = True
                self.sink.done(self)

    def _fail(self) -> None:
        if self.complete:
            return
        if self.started or self._disconnected:
            self.sink.abort()
            self.complete = True
            self.sink.done(self)
            return
        self.respond(500, _INTERNAL_ERROR_BODY, close=True)

    def respond(self, status: int, body: bytes, *, close: bool = True) -> None:
        """Answer on the server's behalf (errors, limits), if no response has started."""
        if self.started or self.complete:
            return
        headers: Headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if close:
            headers.append((b"connection", b"close"))
        headers.append((b"content-length", str(len(body)).encode()))
        self.started = True
        self.status = status
        self._status = status
        self._has_trailers = False
        self.response_bytes = 0 if self.head_request else len(body)
        self.sink.send_head(status, headers, b"" if self.head_request else body, True)
        self._finish()


def early_hint_headers(message: Message) -> Headers:
    """The fields of an ``http.response.early_hint`` message, checked; RuntimeError if bad."""
    links = message.get("links", ())
    extra = message.get("headers", ())
    if isinstance(links, bytes | str) or isinstance(extra, bytes | str):
        raise RuntimeError("http.response.early_hint: links and headers must be lists")
    headers: Headers = []
    try:
        for link in links:
            headers.append((b"link", link))
        for name, value in extra:
            headers.append((name, value))
    except (TypeError, ValueError):
        raise RuntimeError(
            "http.response.early_hint needs links as a list of bytes and headers as a list "
            "of (name, value) byte pairs"
        ) from None
    if not headers:
        raise RuntimeError("http.response.early_hint without links or headers")
    checked: Headers = []
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:
            raise RuntimeError(f"http.response.early_hint: {name!r}: {value!r} is not bytes")
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise RuntimeError(f"http.response.early_hint: invalid field {name!r}: {value!r}")
        name = name.lower()
        if name in _NOT_IN_HINTS:
            raise RuntimeError(f"http.response.early_hint cannot carry {name.decode()}")
        checked.append((name, value.strip(b" \t")))
    return checked


def _with_length(headers: Headers, length: int, status: int) -> Headers:
    """Add Content-Length to a single-shot response so it needs no chunked framing."""
    if status in NO_BODY_STATUS:
        return headers
    for name, _ in headers:
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            return headers
    return [*headers, (b"content-length", str(length).encode())]
