"""One log line per request, written by the framework so it is the same under any server.

The line is emitted after the app returned, so it carries the final status, the bytes of body
actually sent, the duration, and the route template the router matched
(``scope["rws.route_template"]``: ``/users/{id:int}`` rather than ``/users/7``). Each record
also has the fields as ``record.access`` (a dict), for JSON/structured formatters.

Secrets: ``Authorization``, ``Proxy-Authorization``, ``Cookie`` and ``Set-Cookie`` values are
never written, even when listed in ``headers`` (they are logged as ``[redacted]``). The query
string *is* logged, as part of the path: do not put secrets in URLs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_FORMAT", "SENSITIVE_HEADERS", "AccessLogMiddleware", "logger"]

logger = logging.getLogger("rws.http.web.access")

#: ``%``-style, with the fields listed on :class:`AccessLogMiddleware`.
DEFAULT_FORMAT = (
    '%(client)s "%(method)s %(path)s HTTP/%(http_version)s" %(status)s %(bytes)s '
    "%(duration_ms).1fms route=%(route)s request_id=%(request_id)s"
)
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SAMPLE: dict[str, Any] = {
    "client": "-",
    "method": "GET",
    "path": "/",
    "http_version": "1.1",
    "status": 200,
    "bytes": 0,
    "duration_ms": 0.0,
    "route": "-",
    "request_id": "-",
    "scheme": "http",
    "user_agent": "-",
    "referer": "-",
    "headers": {},
}


def _clean(text: str) -> str:
    """Escape control characters, so a crafted path or header cannot forge log lines."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _client(client: Any) -> str:
    if not client:
        return "-"
    host = str(client[0])
    return f"[{host}]:{client[1]}" if ":" in host else f"{host}:{client[1]}"


class AccessLogMiddleware:
    """Log each ``http`` request on ``rws.http.web.access`` at INFO (other scopes pass).

    ``format``: a ``%``-style string over the fields ``client`` (``host:port``), ``method``,
    ``path`` (with the query string), ``http_version``, ``status`` (500 when the app raised
    before answering), ``bytes`` (body bytes sent), ``duration_ms``, ``route`` (the route
    template, ``-`` if none), ``request_id`` (from :class:`RequestIdMiddleware`, ``-`` if
    none), ``scheme``, ``user_agent``, ``referer`` and ``headers`` (a dict of the request
    headers named in ``headers``). Checked at construction. ``logger``: another logger.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        format: str = DEFAULT_FORMAT,
        headers: Iterable[str] = (),
        logger: logging.Logger = logger,
    ) -> None:
        if not isinstance(format, str):
            raise ValueError(f"format: expected a %-style string, got {format!r}")
        try:
            format % _SAMPLE
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(
                f"format: {format!r} does not fit the access-log fields: {error!r}"
            ) from None
        if isinstance(headers, str):
            raise ValueError("headers: expected a list of header names, got a string")
        self.app = app
        self.format = format
        self.headers = tuple(name.lower() for name in headers)
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The path is read now: routers and mounts rewrite the scope on the way in.
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        started = time.perf_counter()
        status = 500
        sent = 0

        async def send_counting(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            if self.logger.isEnabledFor(logging.INFO):
                duration_ms = (time.perf_counter() - started) * 1000
                self.log(scope, path, status, sent, duration_ms)

    def log(self, scope: Scope, path: str, status: int, sent: int, duration_ms: float) -> None:
        request_headers: dict[str, str] = {}
        user_agent = referer = "-"
        for key, value in scope["headers"]:
            name = bytes(key).decode("latin-1").lower()
            if name == "user-agent":
                user_agent = _clean(bytes(value).decode("latin-1"))
            elif name == "referer":
                referer = _clean(bytes(value).decode("latin-1"))
            if name in self.headers:
                text = (
                    "[redacted]"
                    if name in SENSITIVE_HEADERS
                    else _clean(bytes(value).decode("latin-1"))
                )
                request_headers[name] = text
        client = scope.get("client")
        state = scope.get("state") or {}
        fields: dict[str, Any] = {
            "client": _client(client),
            "method": scope["method"],
            "path": _clean(path),
            "http_version": scope.get("http_version", "1.1"),
            "status": status,
            "bytes": sent,
            "duration_ms": duration_ms,
            "route": scope.get("rws.route_template") or "-",
            "request_id": state.get("request_id") or "-",
            "scheme": scope.get("scheme", "http"),
            "user_agent": user_agent,
            "referer": referer,
            "headers": request_headers,
        }
        self.logger.info(self.format, fields, extra={"access": fields})
