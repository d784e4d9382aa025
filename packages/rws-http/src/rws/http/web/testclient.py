"""In-process test clients: drive any ASGI app through httpx, without a socket.

``TestClient`` is an ``httpx.Client`` whose transport runs the app on an asyncio loop in a
background thread (one loop per client, kept for the client's life, so loop-bound objects made
in one request still work in the next); ``AsyncTestClient`` is an ``httpx.AsyncClient`` that
runs the app in the test's own loop. Both share one core: the scope builder, the HTTP
exchange, the WebSocket session and the lifespan driver below are written once, async, and
the sync client only drives them on its loop thread.

What a real server does, they do: request bodies reach the app as ``http.request`` chunks,
response bodies reach the test as the app sends them (``client.stream(...)`` sees chunk 1
before the app writes chunk 2), a test that closes a response early makes the app's next
``receive()`` return ``http.disconnect`` and its next ``send()`` raise ``OSError`` (ASGI 2.4),
and ``path`` includes ``root_path`` (ASGI 2.4, as rws-http and uvicorn do).

Errors: with ``raise_server_exceptions`` (the default) an app exception reaches the test, after
the part of the response already sent; without it a failed request is a 500 if nothing was
sent. Errors the app raised only because the test left (``OSError`` from ``send()``,
Starlette's ``ClientDisconnect``, a ``WebSocketDisconnect`` let through) are not reported. A
lifespan ``*.failed`` message raises ``LifespanError`` with the app's message; an app that
raises instead of answering ``lifespan.startup`` does not support lifespan, and ASGI says to
carry on without it.

Limits, all documented here so a stuck app fails a test instead of hanging the suite:

- ``timeout`` (default ``DEFAULT_TIMEOUT``, 30 s) bounds every wait for the app: the response
  start and each body chunk (``httpx.ReadTimeout``), a WebSocket ``receive_*`` and the
  handshake (``TimeoutError``), lifespan startup/shutdown (``TimeoutError``), and how long the
  app may keep running after its response ended (``httpx.ReadTimeout``). ``None`` waits forever.
- after the test went away (closed a response early, closed a WebSocket, left the ``with``
  block) the app gets ``DISCONNECT_GRACE`` seconds to return before it is cancelled.
- a request body given as a sync iterator is read on the client's loop thread: it must not
  block waiting for the app.
- the app may get ``RESPONSE_BUFFER`` bytes ahead of the test's reading before its ``send()``
  blocks, as on a socket whose peer reads nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without httpx
    raise ImportError(
        "rws.http.web.testclient needs httpx, which rws-http does not install by default: "
        "pip install 'rws-http[test]'"
    ) from exc

from .types import ASGIApp, Message, Receive, Scope, Send
from .websockets import WebSocketDisconnect

__all__ = [
    "DEFAULT_TIMEOUT",
    "DISCONNECT_GRACE",
    "RESPONSE_BUFFER",
    "AsyncTestClient",
    "AsyncWebSocketSession",
    "LifespanError",
    "TestClient",
    "WebSocketDenialResponse",
    "WebSocketDisconnect",
    "WebSocketSession",
]

#: Seconds any single wait for the app may last before the test fails instead of hanging.
DEFAULT_TIMEOUT = 30.0
#: Seconds an app gets to return after the test went away, before it is cancelled. Short,
#: because a correct app notices at once (its receive() says so, its send() raises).
DISCONNECT_GRACE = 1.0
#: Unread response bytes the app may run ahead of the test: a socket's send buffer, roughly.
RESPONSE_BUFFER = 64 * 1024

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}

T = TypeVar("T")
Mode = Literal["text", "binary"]


class LifespanError(RuntimeError):
    """The app's lifespan startup or shutdown failed; the message is the app's own."""


class WebSocketDenialResponse(WebSocketDisconnect):
    """The app refused the handshake with an HTTP response (ASGI WebSocket Denial Response).

    No close frame exists in that case, so ``code`` is 1006 as in WebSocket clients; the
    response (status, headers, body) is ``response``, an ``httpx.Response``.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(1006, f"HTTP {response.status_code}")

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers

    @property
    def content(self) -> bytes:
        return self.response.content


class _ClientGoneError(OSError):
    """What the app's send() raises once the test went away (ASGI 2.4 asks for an OSError)."""


def _caused_by_client_leaving(error: BaseException) -> bool:
    """Whether the app only failed because the test left: that is not a bug to report.

    True for our own ``_ClientGoneError`` and anything raised while handling it (Starlette turns it
    into ``ClientDisconnect``), and for a framework's ``WebSocketDisconnect`` let through.
    """
    if isinstance(error, BaseExceptionGroup):
        return all(_caused_by_client_leaving(inner) for inner in error.exceptions)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _ClientGoneError) or any(
            cls.__name__ == "WebSocketDisconnect" for cls in type(current).__mro__
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclasses.dataclass(frozen=True)
class _Options:
    """What both clients pass to every scope they run; checked once, at construction."""

    app: ASGIApp
    root_path: str
    client: tuple[str, int]
    raise_server_exceptions: bool
    timeout: float | None
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    exchanges: set[_HTTPExchange] = dataclasses.field(default_factory=set)

    def __post_init__(self) -> None:
        if not callable(self.app):
            raise ValueError(f"app must be an ASGI callable, got {self.app!r}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ValueError(
                f"root_path must start with '/' and not end with one (e.g. '/api'), "
                f"got {self.root_path!r}"
            )
        host, port = self.client
        if not isinstance(host, str) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"client must be a (host, port) pair, got {self.client!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {self.timeout!r}"
            )


def _check_base_url(base_url: str) -> None:
    if httpx.URL(base_url).scheme not in ("http", "https"):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")


def _client_headers(headers: Mapping[str, str] | None) -> httpx.Headers:
    merged = httpx.Headers(headers)
    merged.setdefault("user-agent", "testclient")
    return merged


def _scope(options: _Options, request: httpx.Request, kind: Literal["http", "websocket"]) -> Scope:
    """The ASGI scope a real server would build for ``request`` (ASGI 2.4 ``path``)."""
    url = request.url
    scheme = url.scheme if kind == "http" else _WS_SCHEMES[url.scheme]
    root = options.root_path
    headers = [(name.lower(), value) for name, value in request.headers.raw]
    scope: Scope = {
        "type": kind,
        "asgi": dict(_ASGI),
        "http_version": "1.1",
        "scheme": scheme,
        "server": (url.host, url.port or _DEFAULT_PORTS[scheme]),
        "client": options.client,
        "root_path": root,
        "path": root + url.path,
        "raw_path": root.encode("ascii") + url.raw_path.partition(b"?")[0],
        "query_string": url.query,
        "headers": headers,
        "state": options.state.copy(),
        "extensions": {},
    }
    if kind == "http":
        scope["method"] = request.method
    else:
        offered = request.headers.get("sec-websocket-protocol", "")
        scope["subprotocols"] = [p.strip() for p in offered.split(",") if p.strip()]
        scope["extensions"] = {"websocket.http.response": {}}
    return scope


def _websocket_request(
    client: httpx.Client | httpx.AsyncClient,
    url: str,
    subprotocols: Sequence[str] | None,
    headers: Mapping[str, str] | None,
) -> httpx.Request:
    """A handshake request carrying the client's base URL, default headers and cookies."""
    extra = httpx.Headers(headers)
    extra.setdefault("connection", "upgrade")
    extra.setdefault("upgrade", "websocket")
    extra.setdefault("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    extra.setdefault("sec-websocket-version", "13")
    if subprotocols:
        extra["sec-websocket-protocol"] = ", ".join(subprotocols)
    return client.build_request("GET", url, headers=extra)


async def _from_sync(stream: httpx.SyncByteStream) -> AsyncGenerator[bytes, None]:
    for chunk in stream:
        yield chunk


async def _from_async(stream: httpx.AsyncByteStream) -> AsyncGenerator[bytes, None]:
    async for chunk in stream:
        yield chunk


def _request_body(request: httpx.Request, *, sync: bool) -> bytes | AsyncGenerator[bytes, None]:
    """The whole body if httpx has it, else its chunks as the app will receive them."""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        return b"".join(stream)
    if sync and isinstance(stream, httpx.SyncByteStream):
        return _from_sync(stream)
    if isinstance(stream, httpx.AsyncByteStream):
        return _from_async(stream)
    if isinstance(stream, httpx.SyncByteStream):
        return _from_sync(stream)
    raise TypeError(f"unsupported request stream {type(stream).__name__}")  # pragma: no cover


class _Inbox:
    """Messages one side sent that the other has not read yet, and whether more can come."""

    def __init__(self) -> None:
        self._messages: deque[Message] = deque()
        self._changed = asyncio.Event()
        self.ended = False

    def put(self, message: Message) -> None:
        self._messages.append(message)
        self._changed.set()

    def end(self) -> None:
        self.ended = True
        self._changed.set()

    async def get(self, limit: float | None) -> Message | None:
        """The next message, or None once none is left and none can come."""
        async with asyncio.timeout(limit):
            while not self._messages and not self.ended:
                self._changed.clear()
                await self._changed.wait()
        return self._messages.popleft() if self._messages else None


class _AppRun:
    """The app's task for one scope; its ``inbox`` ends when the app returns."""

    def __init__(
        self, options: _Options, scope: Scope, receive: Receive, send: Send, inbox: _Inbox
    ) -> None:
        self.overran = False
        self._task = asyncio.create_task(self._main(options.app, scope, receive, send, inbox))

    @staticmethod
    async def _main(
        app: ASGIApp, scope: Scope, receive: Receive, send: Send, inbox: _Inbox
    ) -> None:
        try:
            await app(scope, receive, send)
        finally:
            inbox.end()

    async def stop(self, wait: float | None, *, client_gone: bool = False) -> BaseException | None:
        """Let the app return within ``wait`` s, else cancel it; the error the test should see."""
        if not self._task.done():
            await asyncio.wait({self._task}, timeout=wait)
        if not self._task.done():
            self.overran = True
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._task.cancelled():
            return None
        error = self._task.exception()
        if error is None or (client_gone and _caused_by_client_leaving(error)):
            return None
        return error


class _HTTPExchange:
    """One request through the app: the scope, the body in, the response out as it comes."""

    def __init__(self, options: _Options, request: httpx.Request, *, sync: bool) -> None:
        self._options = options
        self._request = request
        self._scope = _scope(options, request, "http")
        self._body = _request_body(request, sync=sync)
        timeout = request.extensions.get("timeout", {}).get("read", options.timeout)
        self._timeout: float | None = timeout
        self._head = request.method == "HEAD"
        self._inbox = _Inbox()
        self._request_done = False
        self._started = False
        self._complete = False
        self._disconnected = False
        self._finished = False
        self._unread = 0

    async def start(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Run the app until it starts its response (or fails to); the body streams later."""
        self._gone = asyncio.Event()
        self._read_more = asyncio.Event()
        self._run = _AppRun(self._options, self._scope, self._receive, self._send, self._inbox)
        self._options.exchanges.add(self)
        message = await self._next()
        if message is not None:
            status, headers = message["status"], message["headers"]
        else:
            await self._finish(DISCONNECT_GRACE)
            if self._options.raise_server_exceptions:
                raise RuntimeError("the app returned without sending http.response.start")
            status, headers = 500, [(b"content-length", b"0")]
        return status, headers

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body as the app sent it; None at its end."""
        if self._finished:
            return None
        message = await self._next()
        if message is not None:
            body: bytes = message["body"]
            self._unread -= len(body)
            self._read_more.set()
            return body
        await self._finish(self._timeout)
        return None

    async def aclose(self) -> None:
        """The test is done with the response: if the body had not ended, it disconnected."""
        if self._finished:
            return
        if not self._complete:
            self._disconnected = True
            self._gone.set()
            self._read_more.set()
        await self._finish(DISCONNECT_GRACE if self._disconnected else self._timeout)

    async def abort(self, wait: float | None = DISCONNECT_GRACE) -> None:
        """Leave without reporting the app's errors: the client is closing or gave up."""
        self._options.exchanges.discard(self)
        if not self._finished:
            self._finished = True
            self._disconnected = True
            self._gone.set()
            self._read_more.set()
            await self._run.stop(wait, client_gone=True)

    async def _next(self) -> Message | None:
        try:
            return await self._inbox.get(self._timeout)
        except TimeoutError:
            await self.abort(0)  # it is late already: cancel it now
            raise httpx.ReadTimeout(
                f"the app sent nothing for {self._timeout} s (the client's timeout)",
                request=self._request,
            ) from None

    async def _finish(self, wait: float | None) -> None:
        self._finished = True
        self._options.exchanges.discard(self)
        if isinstance(self._body, AsyncGenerator):
            await self._body.aclose()
        error = await self._run.stop(wait, client_gone=self._disconnected)
        if self._run.overran and not self._disconnected:
            raise httpx.ReadTimeout(
                f"the app was still running {wait} s after its response (the client's timeout)",
                request=self._request,
            )
        if error is not None and self._options.raise_server_exceptions:
            raise error

    async def _receive(self) -> Message:
        if not self._request_done and not self._disconnected:
            if isinstance(self._body, bytes):
                self._request_done = True
                return {"type": "http.request", "body": self._body, "more_body": False}
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                self._request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": bytes(chunk), "more_body": True}
        # Like a kept-alive connection: nothing more comes until the response ends or the
        # client leaves, and then the request is over for the app.
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self._disconnected:
            raise _ClientGoneError("the test client closed the response before it ended")
        kind = message["type"]
        if kind == "http.response.start":
            if self._started:
                raise RuntimeError("the app sent http.response.start twice")
            self._started = True
            headers = [(bytes(name), bytes(value)) for name, value in message.get("headers", [])]
            self._inbox.put({"status": int(message["status"]), "headers": headers})
        elif kind == "http.response.body":
            if not self._started:
                raise RuntimeError("the app sent http.response.body before http.response.start")
            if self._complete:
                raise RuntimeError("the app sent http.response.body after the response ended")
            body = bytes(message.get("body", b""))
            if body and not self._head:
                self._unread += len(body)
                self._inbox.put({"body": body})
            if not message.get("more_body", False):
                self._complete = True
                self._gone.set()
                self._inbox.end()
            while self._unread > RESPONSE_BUFFER and not self._disconnected:
                self._read_more.clear()
                await self._read_more.wait()
            await asyncio.sleep(0)  # a send is a suspension point, as on a real socket
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an http scope")


async def _abort_all(options: _Options) -> None:
    for exchange in list(options.exchanges):
        await exchange.abort()


P = TypeVar("P", str, bytes)


def _payload(message: Message, kind: type[P]) -> P:
    """The text or bytes of a ``websocket.send``; the other kind is the test's mistake."""
    value = message.get("text" if kind is str else "bytes")
    if not isinstance(value, kind):
        raise TypeError(f"expected a {kind.__name__} message, the app sent {message!r}")
    return value


class AsyncWebSocketSession:
    """A WebSocket to the app: ``async with client.websocket_connect(...) as ws``.

    Receiving after the app closed raises ``WebSocketDisconnect`` with the app's code and
    reason (``receive()`` first returns the ``websocket.close`` message itself). Each
    ``receive*`` waits at most ``timeout`` seconds (default: the client's), then raises
    ``TimeoutError``.
    """

    def __init__(self, options: _Options, request: httpx.Request) -> None:
        self._options = options
        self._request = request
        self._scope = _scope(options, request, "websocket")
        self._timeout = options.timeout
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self._phase = "connecting"  # then "open", "denying", "closed"
        self._app_close: Message | None = None
        self._client_closed = False
        self._connected = False
        self._left = False

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._leave(report=exc_type is None)

    async def connect(self) -> None:
        """Run the handshake: return once accepted, else raise what the app answered."""
        if self._connected:
            raise RuntimeError("this WebSocket session is already connected")
        self._connected = True
        self._to_app = _Inbox()
        self._from_app = _Inbox()
        self._to_app.put({"type": "websocket.connect"})
        self._run = _AppRun(
            self._options, self._scope, self._app_receive, self._app_send, self._from_app
        )
        try:
            message = await self._next(None)
        except TimeoutError:
            await self._leave(report=False)
            raise
        if message is None:
            await self._leave(report=True)
            # What uvicorn answers an app that returned without a handshake.
            raise WebSocketDenialResponse(httpx.Response(500, request=self._request))
        if message["type"] == "websocket.accept":
            self.accepted_subprotocol = message.get("subprotocol")
            self.extra_headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", [])]
            return
        if message["type"] == "websocket.close":
            await self._leave(report=True)
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        body = []
        while (part := await self._next(None)) is not None:
            body.append(bytes(part.get("body", b"")))
        await self._leave(report=True)
        response = httpx.Response(
            message["status"],
            headers=[(bytes(n), bytes(v)) for n, v in message.get("headers", [])],
            content=b"".join(body),
            request=self._request,
        )
        raise WebSocketDenialResponse(response)

    async def send(self, message: Message) -> None:
        """Hand the app a raw ASGI message (normally ``websocket.receive``)."""
        if self._client_closed:
            raise RuntimeError("this WebSocket was closed by the test; nothing more can be sent")
        self._to_app.put(message)

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any, mode: Mode = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "binary":
            await self.send_bytes(text.encode("utf-8"))
        else:
            await self.send_text(text)

    async def receive(self, timeout: float | None = None) -> Message:  # noqa: ASYNC109
        """The app's next message (``websocket.send`` or ``websocket.close``)."""
        message = await self._next(timeout)
        if message is not None:
            return message
        if self._app_close is not None:
            raise WebSocketDisconnect(
                self._app_close.get("code", 1000), self._app_close.get("reason") or ""
            )
        error = await self._run.stop(DISCONNECT_GRACE)
        if error is not None and self._options.raise_server_exceptions:
            self._left = True  # reported now: leaving the block must not raise it again
            raise error
        # Returning after accept closes with 1000; an exception with 1011 (internal error).
        raise WebSocketDisconnect(1000 if error is None else 1011)

    async def receive_text(self, timeout: float | None = None) -> str:  # noqa: ASYNC109
        return _payload(await self._data(timeout), str)

    async def receive_bytes(self, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return _payload(await self._data(timeout), bytes)

    async def receive_json(self, mode: Mode = "text", timeout: float | None = None) -> Any:  # noqa: ASYNC109
        message = await self._data(timeout)
        if mode == "binary":
            return json.loads(_payload(message, bytes))
        return json.loads(_payload(message, str))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the test's side and wait (``DISCONNECT_GRACE`` at most) for the app."""
        if not self._client_closed and self._app_close is None:
            self._to_app.put({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._client_closed = True
        await self._leave(report=True)

    async def _data(self, limit: float | None) -> Message:
        message = await self.receive(limit)
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        return message

    async def _next(self, limit: float | None) -> Message | None:
        wait = self._timeout if limit is None else limit
        try:
            return await self._from_app.get(wait)
        except TimeoutError:
            raise TimeoutError(
                f"the app sent nothing on the WebSocket for {wait} s "
                "(pass timeout= to receive*() or to the client)"
            ) from None

    async def _leave(self, *, report: bool) -> None:
        if self._left:
            return
        self._left = True
        if not self._client_closed and self._app_close is None and self._phase == "open":
            self._to_app.put({"type": "websocket.disconnect", "code": 1000, "reason": ""})
        self._client_closed = True
        error = await self._run.stop(DISCONNECT_GRACE, client_gone=True)
        if report and error is not None and self._options.raise_server_exceptions:
            raise error

    async def _app_receive(self) -> Message:
        message = await self._to_app.get(None)
        if message is None:  # the connection is over: say so on every call
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        if message["type"] == "websocket.disconnect":
            self._to_app.end()
        return message

    async def _app_send(self, message: Message) -> None:
        kind = message["type"]
        if self._phase == "closed":
            raise RuntimeError(f"the app sent {kind!r} after the WebSocket closed")
        if self._client_closed:
            raise _ClientGoneError("the test closed the WebSocket")
        allowed = {
            "connecting": ("websocket.accept", "websocket.close", "websocket.http.response.start"),
            "open": ("websocket.send", "websocket.close"),
            "denying": ("websocket.http.response.body",),
        }[self._phase]
        if kind not in allowed:
            raise RuntimeError(f"the app sent {kind!r} while the WebSocket was {self._phase}")
        if kind == "websocket.send" and (message.get("text") is None) == (
            message.get("bytes") is None
        ):
            raise RuntimeError("websocket.send needs exactly one of 'text' and 'bytes'")
        self._from_app.put(message)
        if kind == "websocket.accept":
            self._phase = "open"
        elif kind == "websocket.http.response.start":
            self._phase = "denying"
        elif kind == "websocket.close":
            self._phase = "closed"
            self._from_app.end()
            self._app_close = message
            # The client answers a close frame with the same code, as real clients do.
            code = message.get("code", 1000)
            self._to_app.put({"type": "websocket.disconnect", "code": code, "reason": ""})
        elif kind == "websocket.http.response.body" and not message.get("more_body", False):
            self._phase = "closed"
            self._from_app.end()
        await asyncio.sleep(0)


class _Lifespan:
    """The app's lifespan task, from the client's enter to its exit (ASGI lifespan)."""

    def __init__(self, options: _Options) -> None:
        self._options = options
        self._phase = "startup"
        self._run: _AppRun | None = None

    async def startup(self) -> None:
        self._to_app = _Inbox()
        self._from_app = _Inbox()
        self._to_app.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": self._options.state}
        run = self._run = _AppRun(self._options, scope, self._receive, self._send, self._from_app)
        message = await self._answer(run, "startup")
        if message is None:
            # ASGI: an app that raises (or returns) instead of answering lifespan.startup does
            # not support lifespan, and the server carries on without it. Many plain apps
            # reject scope types they do not know that way.
            await run.stop(DISCONNECT_GRACE)
            self._run = None
        elif message["type"] == "lifespan.startup.failed":
            error = await run.stop(DISCONNECT_GRACE)
            self._run = None
            raise LifespanError(message.get("message") or "lifespan startup failed") from error

    async def shutdown(self) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        self._phase = "shutdown"
        self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._answer(run, "shutdown")
        error = await run.stop(self._options.timeout)
        if message is not None and message["type"] == "lifespan.shutdown.failed":
            raise LifespanError(message.get("message") or "lifespan shutdown failed") from error
        if error is not None:
            raise LifespanError(f"lifespan shutdown crashed: {error!r}") from error

    async def _answer(self, run: _AppRun, phase: str) -> Message | None:
        try:
            return await self._from_app.get(self._options.timeout)
        except TimeoutError:
            await run.stop(0)
            raise TimeoutError(
                f"lifespan {phase} did not finish within {self._options.timeout} s "
                "(the client's timeout)"
            ) from None

    async def _receive(self) -> Message:
        message = await self._to_app.get(None)
        assert message is not None  # _to_app never ends
        return message

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind not in (f"lifespan.{self._phase}.complete", f"lifespan.{self._phase}.failed"):
            raise RuntimeError(f"unexpected ASGI message {kind!r} during lifespan {self._phase}")
        self._from_app.put(message)


class _LoopThread:
    """An asyncio loop in a daemon thread that the sync client hands coroutines to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self._thread = threading.Thread(target=self._main, name="rws-testclient", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self.closed:
            coroutine.close()
            raise RuntimeError("the TestClient's event loop is closed")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "the sync TestClient was called from inside the app's own event loop; "
                "use AsyncTestClient there"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        if threading.current_thread() is self._thread:  # pragma: no cover - gc on the loop
            self.loop.call_soon(self.loop.stop)
            return
        asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    async def _drain(self) -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()


def _response(
    request: httpx.Request,
    head: tuple[int, list[tuple[bytes, bytes]]],
    stream: httpx.SyncByteStream | httpx.AsyncByteStream,
) -> httpx.Response:
    status, headers = head
    extensions = {"http_version": b"HTTP/1.1"}
    return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, loop: _LoopThread, exchange: _HTTPExchange) -> None:
        self._loop = loop
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._loop.run(self._exchange.next_chunk())) is not None:
            yield chunk

    def close(self) -> None:
        if not self._loop.closed:
            self._loop.run(self._exchange.aclose())


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, exchange: _HTTPExchange) -> None:
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._exchange.next_chunk()) is not None:
            yield chunk

    async def aclose(self) -> None:
        await self._exchange.aclose()


class _SyncTransport(httpx.BaseTransport):
    def __init__(self, options: _Options, loop: Callable[[], _LoopThread]) -> None:
        self._options = options
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        loop = self._loop()
        exchange = _HTTPExchange(self._options, request, sync=True)
        return _response(request, loop.run(exchange.start()), _SyncBody(loop, exchange))


class _AsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, options: _Options) -> None:
        self._options = options

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _HTTPExchange(self._options, request, sync=False)
        return _response(request, await exchange.start(), _AsyncBody(exchange))


class WebSocketSession:
    """The sync face of ``AsyncWebSocketSession``, run on the client's loop thread."""

    def __init__(self, loop: _LoopThread, session: AsyncWebSocketSession) -> None:
        self._loop = loop
        self._session = session

    @property
    def accepted_subprotocol(self) -> str | None:
        return self._session.accepted_subprotocol

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return self._session.extra_headers

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.run(self._session.__aexit__(exc_type, exc, tb))

    def send(self, message: Message) -> None:
        self._loop.run(self._session.send(message))

    def send_text(self, data: str) -> None:
        self._loop.run(self._session.send_text(data))

    def send_bytes(self, data: bytes) -> None:
        self._loop.run(self._session.send_bytes(data))

    def send_json(self, data: Any, mode: Mode = "text") -> None:
        self._loop.run(self._session.send_json(data, mode))

    def receive(self, timeout: float | None = None) -> Message:
        return self._loop.run(self._session.receive(timeout))

    def receive_text(self, timeout: float | None = None) -> str:
        return self._loop.run(self._session.receive_text(timeout))

    def receive_bytes(self, timeout: float | None = None) -> bytes:
        return self._loop.run(self._session.receive_bytes(timeout))

    def receive_json(self, mode: Mode = "text", timeout: float | None = None) -> Any:
        return self._loop.run(self._session.receive_json(mode, timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._loop.run(self._session.close(code, reason))


class _AppClient:
    """The constructor both clients share: options checked once, httpx set up around them."""

    __test__ = False  # not pytest test classes, whatever their names say

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        *,
        raise_server_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("testclient", 50000),
        headers: Mapping[str, str] | None = None,
        cookies: dict[str, str] | httpx.Cookies | None = None,
        follow_redirects: bool = True,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        _check_base_url(base_url)
        self._options = _Options(app, root_path, client, raise_server_exceptions, timeout)
        self._lifespan: _Lifespan | None = None
        httpx_options: dict[str, Any] = {
            "base_url": base_url,
            "headers": _client_headers(headers),
            "cookies": cookies,
            "follow_redirects": follow_redirects,
            "timeout": timeout,
            "transport": self._transport_for(self._options),
        }
        super().__init__(**httpx_options)

    def _transport_for(self, options: _Options) -> httpx.BaseTransport | httpx.AsyncBaseTransport:
        raise NotImplementedError

    @property
    def app_state(self) -> dict[str, Any]:
        """The lifespan state (ASGI ``scope["state"]``); each request gets a shallow copy."""
        return self._options.state


class TestClient(_AppClient, httpx.Client):
    """An ``httpx.Client`` wired to ``app`` in-process; ``with`` it to run the lifespan.

    The app runs on a private event loop in a background thread, started at the first
    request (or at ``with``) and kept until ``close()`` or the end of the ``with`` block.
    """

    _loop_thread: _LoopThread | None = None

    def _transport_for(self, options: _Options) -> httpx.BaseTransport:
        return _SyncTransport(options, self._loop)

    def _loop(self) -> _LoopThread:
        if self._loop_thread is None or self._loop_thread.closed:
            self._loop_thread = _LoopThread()
            weakref.finalize(self, self._loop_thread.stop)
        return self._loop_thread

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> WebSocketSession:
        """Open a WebSocket (the handshake runs now: a refusal raises here)."""
        loop = self._loop()
        session = AsyncWebSocketSession(
            self._options, _websocket_request(self, url, subprotocols, headers)
        )
        loop.run(session.connect())
        return WebSocketSession(loop, session)

    def __enter__(self) -> Self:
        lifespan = _Lifespan(self._options)
        try:
            self._loop().run(lifespan.startup())
        except BaseException:
            self._stop_loop()
            raise
        self._lifespan = lifespan
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        # Unlike httpx.Client, the client stays usable after the block (as Starlette's does).
        lifespan, self._lifespan = self._lifespan, None
        loop = self._loop_thread
        try:
            if loop is not None and not loop.closed:
                loop.run(_abort_all(self._options))
                if lifespan is not None:
                    loop.run(lifespan.shutdown())
        finally:
            self._stop_loop()

    def close(self) -> None:
        self._stop_loop()
        super().close()

    def _stop_loop(self) -> None:
        if self._loop_thread is not None:
            self._loop_thread.stop()


class AsyncTestClient(_AppClient, httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that runs ``app`` in the test's own event loop.

    ``async with`` it to run the lifespan. ``websocket_connect`` returns an
    ``AsyncWebSocketSession`` to use with ``async with``.
    """

    def _transport_for(self, options: _Options) -> httpx.AsyncBaseTransport:
        return _AsyncTransport(options)

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncWebSocketSession:
        """A WebSocket session; the handshake runs at ``async with`` (or ``connect()``)."""
        return AsyncWebSocketSession(
            self._options, _websocket_request(self, url, subprotocols, headers)
        )

    async def __aenter__(self) -> Self:
        lifespan = _Lifespan(self._options)
        await lifespan.startup()
        self._lifespan = lifespan
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        lifespan, self._lifespan = self._lifespan, None
        await _abort_all(self._options)
        if lifespan is not None:
            await lifespan.shutdown()

    async def aclose(self) -> None:
        await _abort_all(self._options)
        await super().aclose()
