"""Send plain-http clients to https (and ``ws://`` to ``wss://``), keeping path and query.

The default status is **308**, which keeps the method and body (a POST stays a POST); 301/302
let clients turn it into a GET, 307 is the temporary equivalent of 308. Starlette uses 307.
The ``Location`` keeps the host, drops the port when it is the https default (443) and uses
``https_port`` otherwise; a ``Host`` header that is not a host name or IP literal gets
``400 Invalid host header`` rather than a redirect it could steer. A WebSocket handshake gets
the redirect as a denial response when the server supports the ``websocket.http.response``
extension; otherwise it is closed before accept (403), since a browser WebSocket does not
follow redirects anyway.

Behind a TLS-terminating proxy, the scheme the app sees must come from the proxy headers
(``--proxy-headers``), or every request looks like http and this redirects forever.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from rws.http.web.types import ASGIApp, Receive, Scope, Send

__all__ = ["HTTPSRedirectMiddleware"]

_STATUSES = frozenset({301, 302, 307, 308})


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]*)?")


def _host(scope: Scope) -> str | None:
    """The request's host without its port; ``None`` if the Host header is not a host
    (``evil.com/x``, ``a@b``...), so it can never steer the redirect elsewhere."""
    for key, value in scope["headers"]:
        if key.lower() == b"host":
            found = _HOST.fullmatch(bytes(value).decode("latin-1").strip())
            return found.group(1) if found else None
    server = scope.get("server")
    if server:
        name = str(server[0])
        return f"[{name}]" if ":" in name else name
    return "localhost"


class HTTPSRedirectMiddleware:
    """Redirect ``http``/``ws`` requests to ``https``/``wss`` (lifespan passes through).

    ``status_code``: 301, 302, 307 or 308 (default 308). ``https_port``: the port in the
    ``Location`` (default 443, then omitted).
    """

    def __init__(self, app: ASGIApp, *, status_code: int = 308, https_port: int = 443) -> None:
        if status_code not in _STATUSES:
            raise ValueError(
                f"status_code: expected one of 301, 302, 307, 308, got {status_code!r}"
            )
        if (
            isinstance(https_port, bool)
            or not isinstance(https_port, int)
            or not 0 < https_port < 65536
        ):
            raise ValueError(f"https_port: expected a port 1-65535, got {https_port!r}")
        self.app = app
        self.status_code = status_code
        self.https_port = https_port

    def location(self, scope: Scope) -> str | None:
        host = _host(scope)
        if host is None:
            return None
        scheme = "wss" if scope["type"] == "websocket" else "https"
        netloc = host + ("" if self.https_port == 443 else f":{self.https_port}")
        raw_path = scope.get("raw_path")
        if raw_path:
            path = bytes(raw_path).partition(b"?")[0].decode("latin-1")
        else:
            path = quote(scope.get("root_path", "") + scope["path"])
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("scheme") in ("https", "wss"):
            await self.app(scope, receive, send)
            return
        location = self.location(scope)
        if location is None:
            await _refuse(scope, send)
            return
        headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
        if scope["type"] == "http":
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": b""})
        elif "websocket.http.response" in (scope.get("extensions") or {}):
            start = {"type": "websocket.http.response.start", "status": self.status_code}
            await send({**start, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": b""})
        else:
            await send({"type": "websocket.close", "code": 1008})


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = b"Invalid host header"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"19")]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
