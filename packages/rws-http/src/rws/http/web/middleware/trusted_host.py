"""Refuse requests whose ``Host`` is not one of yours (DNS rebinding, poisoned absolute URLs).

Matching is case-insensitive, ignores the port and a trailing dot, and understands IPv6
literals (``[::1]:8000`` is host ``::1``; Starlette's ``split(":")`` cuts it at the first
colon). ``*.example.com`` matches any subdomain (not ``example.com`` itself: list both); a lone
``*`` allows everything. A refused HTTP request gets ``400 Invalid host header``; a refused
WebSocket is closed before it is accepted (the server answers the handshake with 403).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import quote

from rws.http.web.types import ASGIApp, Receive, Scope, Send

__all__ = ["TrustedHostMiddleware", "split_host"]

_BODY = b"Invalid host header"


def split_host(value: str) -> tuple[str, str]:
    """``"[::1]:8000"`` -> ``("::1", "8000")``; ``"Example.COM."`` -> ``("example.com", "")``."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return "", ""  # malformed: matches nothing
        return host, rest[1:]
    if value.count(":") > 1:  # a bare IPv6 address (as written in allowed_hosts)
        return value, ""
    host, _, port = value.partition(":")
    return host.rstrip("."), port


def _normalise(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"allowed_hosts: {pattern!r} is not a host name")
    if pattern == "*":
        return pattern
    if "*" in pattern[1:] or (pattern.startswith("*") and not pattern.startswith("*.")):
        raise ValueError(
            f"allowed_hosts: {pattern!r}: a wildcard is only allowed as '*' or '*.domain'"
        )
    host, port = split_host(pattern)
    if port:
        raise ValueError(f"allowed_hosts: {pattern!r}: ports are ignored, list the host only")
    return host


class TrustedHostMiddleware:
    """Only serve ``http`` / ``websocket`` requests for ``allowed_hosts`` (lifespan passes).

    ``www_redirect`` (default ``True``, as in Starlette): a request for ``example.com`` when
    ``www.example.com`` is listed (literally, not through a wildcard) and ``example.com`` is
    not is redirected there (308, method kept) instead of refused.
    """

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Collection[str] = ("*",), www_redirect: bool = True
    ) -> None:
        if isinstance(allowed_hosts, str):
            raise ValueError("allowed_hosts: expected a list of hosts, got a string")
        patterns = [_normalise(pattern) for pattern in allowed_hosts]
        if not patterns:
            raise ValueError("allowed_hosts: empty: every request would be refused")
        self.app = app
        self.allow_any = "*" in patterns
        self.exact = frozenset(p for p in patterns if not p.startswith("*"))
        self.suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))
        self.www_redirect = www_redirect

    def is_allowed(self, host: str) -> bool:
        return self.allow_any or host in self.exact or host.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allow_any:
            await self.app(scope, receive, send)
            return
        raw = ""
        for key, value in scope["headers"]:
            if key.lower() == b"host":
                raw = bytes(value).decode("latin-1")
                break
        host, _ = split_host(raw)
        if host and self.is_allowed(host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if host and self.www_redirect and "www." + host in self.exact:
            await send_redirect(scope, send, "www." + raw.strip())
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(_BODY)).encode()),
        ]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": _BODY})


async def send_redirect(scope: Scope, send: Send, netloc: str) -> None:
    raw_path = scope.get("raw_path")
    # raw_path keeps the client's own percent-encoding; some servers leave the query on it.
    path = (
        bytes(raw_path).partition(b"?")[0].decode("latin-1") if raw_path else quote(scope["path"])
    )
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    location = f"{scope.get('scheme', 'http')}://{netloc}{path}" + (f"?{query}" if query else "")
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 308, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
