"""A handler function as an ASGI app: fill its parameters, call it, send what it returns.

Return values become responses: a :class:`Response` is sent as is; ``None`` is an empty
204 (or the route's ``status_code``); ``str`` is text; ``bytes`` is
``application/octet-stream``; anything else (dicts, lists, dataclasses, models) is JSON.
Sync handlers run in a worker thread so a blocking call cannot stall the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Collection
from typing import Any

from .exceptions import ValidationError, WebSocketException
from .params import Signature
from .requests import Request
from .responses import JSONResponse, PlainTextResponse, Response
from .types import Receive, Scope, Send
from .websockets import WebSocket

__all__ = ["Endpoint", "to_response"]

#: Route-level "inherit the app's body limit" marker (``None`` means no limit).
INHERIT: Any = ...


def to_response(result: Any, status_code: int | None = None) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(b"", status_code or 204)
    if isinstance(result, str):
        return PlainTextResponse(result, status_code or 200)
    if isinstance(result, bytes | bytearray | memoryview):
        return Response(result, status_code or 200, media_type="application/octet-stream")
    return JSONResponse(result, status_code or 200)


async def _tell_server_body_limit(scope: Scope, send: Send, limit: int) -> None:
    """Give rws-http the route's body limit (its ``rws.http.body_limit`` extension), so the
    server refuses an oversized body before reading it, with its own limit lifted or
    lowered to the route's. Skipped when the server's limit is already the same or the
    request has no body, which keeps a message off the hot path of GET requests."""
    extension = scope.get("extensions", {}).get("rws.http.body_limit")
    if extension is None or extension.get("max_body_size") == limit:
        return
    # HTTP/2 and HTTP/3 bodies need no Content-Length: only the method hints at one there.
    may_have_body = scope.get("http_version") in ("2", "3") and scope["method"] not in (
        "GET",
        "HEAD",
    )
    for key, value in scope["headers"]:
        if (key == b"content-length" and value != b"0") or key == b"transfer-encoding":
            may_have_body = True
            break
    if may_have_body:
        await send({"type": "rws.http.body_limit", "max_body_size": limit or 0})


class Endpoint:
    """The ASGI app a route calls for one handler function.

    ``openapi`` holds what the handler's route says about itself (summary, tags,
    responses …) for :mod:`rws.http.web.openapi`.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        path_params: Collection[str] = (),
        *,
        status_code: int | None = None,
        max_body_size: int | None = INHERIT,
        websocket: bool = False,
        openapi: dict[str, Any] | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"handler {func!r} is not callable")
        self.func = func
        self.signature = Signature(func, path_params)
        self.status_code = status_code
        self.max_body_size = max_body_size
        self.websocket = websocket
        self.openapi = dict(openapi or {})
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 (an async __call__ object)
        )
        functools.update_wrapper(self, func)

    def __repr__(self) -> str:
        return f"Endpoint({getattr(self.func, '__qualname__', self.func)!r})"

    async def call(self, kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            return await self.func(**kwargs)
        return await asyncio.to_thread(functools.partial(self.func, **kwargs))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.websocket:
            await self.serve_websocket(scope, receive, send)
            return
        limit = self.max_body_size
        if limit is INHERIT:
            app = scope.get("app")
            limit = getattr(app, "max_body_size", None)
        if limit is not None:
            await _tell_server_body_limit(scope, send, limit)
        request = Request(scope, receive, send, max_body_size=limit)
        try:
            kwargs = {} if self.signature.simple else await self.signature.extract(request)
            result = await self.call(kwargs)
            response = to_response(result, self.status_code)
            await response(scope, receive, send)
        finally:
            if request._form is not None:
                await request.close()

    async def serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        try:
            kwargs = await self.signature.extract(websocket)
        except ValidationError as error:
            raise WebSocketException(1008, f"invalid request: {error.errors}"[:120]) from None
        await self.call(kwargs)
