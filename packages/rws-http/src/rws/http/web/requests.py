"""The incoming request as an object: lazy views over the ASGI scope plus the body stream.

Nothing is parsed until asked for (headers, query, cookies, URL are built on first access
and cached in the instance), so a handler that only reads a path parameter pays for none
of it. The body can be read once as a stream or many times once buffered by ``body()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .cookies import parse_cookie_header
from .datastructures import URL, Address, Headers, QueryParams, State
from .exceptions import HTTPException
from .types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .forms import FormData, FormLimits

__all__ = ["ClientDisconnect", "HTTPConnection", "Request"]


class ClientDisconnect(Exception):  # noqa: N818 (Starlette's name)
    """The client went away before the whole body arrived."""


async def _empty_receive() -> Message:
    raise RuntimeError("this request was built without a receive channel")


async def _empty_send(message: Message) -> None:
    raise RuntimeError("this request was built without a send channel")


class HTTPConnection:
    """What HTTP requests and WebSocket connections share: the scope's parts."""

    def __init__(self, scope: Scope, receive: Receive = _empty_receive) -> None:
        self.scope = scope
        self._receive = receive
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._url: URL | None = None

    @property
    def app(self) -> Any:
        return self.scope.get("app")

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope.get("query_string", b""))
        return self._query

    @property
    def path_params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.scope.get("path_params", {})
        return params

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            cookies: dict[str, str] = {}
            for header in self.headers.getlist("cookie"):
                for key, value in parse_cookie_header(header).items():
                    cookies.setdefault(key, value)
            self._cookies = cookies
        return self._cookies

    @property
    def client(self) -> Address | None:
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None

    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = URL(scope=self.scope)
        return self._url

    @property
    def base_url(self) -> URL:
        """The app's root URL (where the app is mounted), ending in ``/``."""
        root = self.scope.get("app_root_path", self.scope.get("root_path", ""))
        return self.url.replace(path=root.rstrip("/") + "/", query="", fragment="")

    @property
    def state(self) -> State:
        """Per-request state, shared with middleware through ``scope["state"]``."""
        return State(self.scope.setdefault("state", {}))

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """Absolute URL of the route called ``name`` in the app serving this request."""
        app = self.app
        if app is None:
            raise RuntimeError("url_for needs the App in scope['app'] (set by App.__call__)")
        path: str = app.url_path_for(name, **path_params)
        root = self.scope.get("app_root_path", self.scope.get("root_path", ""))
        return self.url.replace(path=root + path, query="", fragment="")


class Request(HTTPConnection):
    """An HTTP request. ``await request.body()``, ``.json()``, ``.form()``, or
    ``async for chunk in request.stream()``.

    ``max_body_size`` (set by the route, else the app) caps what is read: a declared
    ``Content-Length`` above it, or a stream growing past it, raises HTTPException(413).
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive = _empty_receive,
        send: Send = _empty_send,
        *,
        max_body_size: int | None = None,
    ) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Request needs an http scope, not {scope['type']!r}")
        super().__init__(scope, receive)
        self._send = send
        self.max_body_size = max_body_size
        self._body: bytes | None = None
        self._stream_consumed = False
        self._form: FormData | None = None

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def receive(self) -> Receive:
        return self._receive

    def _check_declared_length(self) -> None:
        if self.max_body_size is None:
            return
        for key, value in self.scope.get("headers", ()):
            if key == b"content-length":
                if value.isdigit() and int(value) > self.max_body_size:
                    raise HTTPException(
                        413, f"request body is larger than {self.max_body_size} bytes"
                    )
                return

    async def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk (each chunk at most what the server read)."""
        if self._body is not None:
            yield self._body
            return
        if self._stream_consumed:
            raise RuntimeError("the request body was already streamed; read it once")
        self._stream_consumed = True
        self._check_declared_length()
        limit = self.max_body_size
        received = 0
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "http.request":
                chunk: bytes = message.get("body", b"")
                received += len(chunk)
                if limit is not None and received > limit:
                    raise HTTPException(413, f"request body is larger than {limit} bytes")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return
            elif kind == "http.disconnect":
                raise ClientDisconnect
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} while reading the body")

    async def body(self) -> bytes:
        if self._body is None:
            chunks = [chunk async for chunk in self.stream()]
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON answers 400."""
        body = await self.body()
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise HTTPException(400, f"request body is not valid JSON: {error}") from None

    async def form(self, limits: FormLimits | None = None) -> FormData:
        """The body parsed as ``multipart/form-data`` or urlencoded; uploads above the spool
        threshold go to temporary files, closed when the request ends."""
        if self._form is None:
            from .forms import FormLimits, parse_form

            if limits is None:
                limits = FormLimits()
            if self.max_body_size is not None and self.max_body_size < limits.max_body_size:
                limits = dataclasses.replace(limits, max_body_size=self.max_body_size)
            self._form = await parse_form(
                self.headers.get("content-type", ""), self.stream(), limits
            )
        return self._form

    async def close(self) -> None:
        """Release what the request holds (upload temp files); the app calls it."""
        if self._form is not None:
            await self._form.close()

    async def is_disconnected(self) -> bool:
        """True when the client already went away (does not wait; body must be read)."""
        if not self._stream_consumed and self._body is None:
            return False
        try:
            async with asyncio.timeout(0):
                message = await self._receive()
        except TimeoutError:
            return False
        return bool(message.get("type") == "http.disconnect")
