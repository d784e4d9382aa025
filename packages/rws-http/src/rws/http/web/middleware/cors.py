"""CORS: answer browser preflights and label responses for the origins you allow.

Differences from Starlette's ``CORSMiddleware``, on purpose:

* ``allow_origins=["*"]`` together with ``allow_credentials=True`` is **refused** at
  construction (``ValueError``). Starlette accepts it and echoes any origin, which lets every
  website make credentialed requests as your logged-in users; if that is really wanted, say so
  explicitly with ``allow_origin_regex=".*"``.
* ``Vary: Origin`` is sent on every response whose CORS headers depend on the origin, including
  responses to requests *without* an ``Origin`` header, so a shared cache never serves a
  response stored for one origin (or for none) to another.
* Configured origins are validated (``scheme://host[:port]``, no path): the classic
  ``"https://example.com/"`` with a trailing slash never matches a browser's ``Origin`` and is
  reported instead of silently denying everything. Origins are compared exactly (scheme, host
  and port); ``allow_origin_regex`` must match the whole origin (``fullmatch``).
* A refused preflight is a ``400`` whose body names what was refused (origin, method,
  headers), as in Starlette; an accepted one is ``204``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORSMiddleware"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
#: Request headers a browser sends without asking (the Fetch standard's CORS-safelisted ones).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9_.~-]+)(:[0-9]{1,5})?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PREFLIGHT_VARY = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _tokens(option: str, values: Iterable[str]) -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    for value in values:
        if value != "*" and not _TOKEN.fullmatch(value):
            raise ValueError(f"{option}: {value!r} is not a valid HTTP token")
    return values


class CORSMiddleware:
    """Cross-origin resource sharing for ``http`` scopes (other scopes pass through).

    ``allow_origins``: exact origins (``"https://app.example.com"``) or ``["*"]`` for any.
    ``allow_origin_regex``: origins matched by this regex (whole origin). ``allow_methods``
    / ``allow_headers``: what a preflight may ask for (``["*"]`` for any; the safelisted
    headers are always allowed). ``allow_credentials``: cookies / Authorization allowed
    (never combined with a literal ``*``: the origin, method and headers are echoed instead).
    ``expose_headers``: response headers scripts may read. ``max_age``: seconds a browser may
    cache a preflight answer. ``allow_private_network``: answer Chrome's Private Network
    Access preflights (a public site calling this server on a private address) with yes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: Collection[str] = (),
        allow_origin_regex: str | None = None,
        allow_methods: Collection[str] = ("GET", "HEAD", "POST"),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
        allow_private_network: bool = False,
    ) -> None:
        origins = [allow_origins] if isinstance(allow_origins, str) else list(allow_origins)
        for origin in origins:
            if origin in ("*", "null"):
                continue
            if not _ORIGIN.fullmatch(origin):
                hint = (
                    " (an origin has no path: drop the trailing '/')"
                    if "/" in origin.split("://", 1)[-1]
                    else ""
                )
                raise ValueError(
                    f"allow_origins: {origin!r} is not an origin 'scheme://host[:port]'{hint}"
                )
        self.allow_all_origins = "*" in origins
        if self.allow_all_origins and allow_credentials:
            raise ValueError(
                "allow_origins=['*'] with allow_credentials=True would let every website send "
                "credentialed requests; list the origins, or use allow_origin_regex if you "
                "really mean any origin"
            )
        try:
            self.allow_origin_regex = (
                None if allow_origin_regex is None else re.compile(allow_origin_regex)
            )
        except re.error as error:
            raise ValueError(f"allow_origin_regex: {error}") from None
        methods = [method.upper() for method in _tokens("allow_methods", allow_methods)]
        headers = [header.lower() for header in _tokens("allow_headers", allow_headers)]
        exposed = _tokens("expose_headers", expose_headers)
        if allow_credentials and "*" in exposed:
            raise ValueError(
                "expose_headers: '*' means a literal header name when credentials are allowed; "
                "list the headers"
            )
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age: expected seconds >= 0, got {max_age!r}")

        self.app = app
        self.allow_origins = frozenset(origins) - {"*"}
        self.allow_all_methods = "*" in methods
        self.allow_methods = frozenset(ALL_METHODS if self.allow_all_methods else methods)
        self.allow_all_headers = "*" in headers
        self.allow_headers = frozenset(headers) | SAFELISTED_HEADERS
        self.allow_credentials = allow_credentials
        self.expose_headers = ", ".join(exposed)
        self.max_age = max_age
        self.allow_private_network = allow_private_network
        # With "*" and no credentials every origin gets the same answer: nothing to Vary on.
        self.origin_dependent = not self.allow_all_origins

    def is_allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins or origin in self.allow_origins:
            return True
        return self.allow_origin_regex is not None and bool(
            self.allow_origin_regex.fullmatch(origin)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and scope["method"] == "OPTIONS":
            requested_method = _header(scope, b"access-control-request-method")
            if requested_method is not None:
                await self.preflight(origin, requested_method, scope, send)
                return
        await self.app(scope, receive, self._simple_send(origin, send))

    def _origin_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        allowed = "*" if self.allow_all_origins else origin
        headers = [(b"access-control-allow-origin", allowed.encode("latin-1"))]
        if self.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    async def preflight(self, origin: str, method: str, scope: Scope, send: Send) -> None:
        requested = _header(scope, b"access-control-request-headers") or ""
        names = [name.strip().lower() for name in requested.split(",") if name.strip()]
        failures: list[str] = []
        if not self.is_allowed_origin(origin):
            failures.append("origin")
        if not self.allow_all_methods and method.upper() not in self.allow_methods:
            failures.append("method")
        if not self.allow_all_headers and any(n not in self.allow_headers for n in names):
            failures.append("headers")
        private = _header(scope, b"access-control-request-private-network") is not None
        if private and not self.allow_private_network:
            failures.append("private-network")
        headers = [(b"vary", _PREFLIGHT_VARY.encode())]
        if failures:
            body = ("Disallowed CORS " + ", ".join(failures)).encode()
            headers += [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers += self._origin_headers(origin)
        if self.allow_all_methods:
            # A literal "*" is not a wildcard for credentialed requests: echo instead.
            allow_methods = method if self.allow_credentials else "*"
        else:
            allow_methods = ", ".join(sorted(self.allow_methods))
        headers.append((b"access-control-allow-methods", allow_methods.encode("latin-1")))
        if names:
            if self.allow_all_headers and not self.allow_credentials:
                allow_headers = "*"
            else:
                allow_headers = ", ".join(names)
            headers.append((b"access-control-allow-headers", allow_headers.encode("latin-1")))
        if private:
            headers.append((b"access-control-allow-private-network", b"true"))
        headers.append((b"access-control-max-age", str(self.max_age).encode()))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _simple_send(self, origin: str | None, send: Send) -> Send:
        extra: list[tuple[bytes, bytes]] = []
        if origin is not None and self.is_allowed_origin(origin):
            extra = self._origin_headers(origin)
            if self.expose_headers:
                extra.append((b"access-control-expose-headers", self.expose_headers.encode()))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (key, value)
                    for key, value in message.get("headers", ())
                    if not (extra and bytes(key).lower().startswith(b"access-control-"))
                ]
                headers += extra
                if self.origin_dependent:
                    _add_vary(headers, b"Origin")
                message["headers"] = headers
            await send(message)

        return send_wrapper


def _add_vary(headers: list[tuple[bytes, bytes]], name: bytes) -> None:
    """Add ``name`` to the response's Vary, merging with what the app already said."""
    for index, (key, value) in enumerate(headers):
        if bytes(key).lower() == b"vary":
            present = {item.strip().lower() for item in bytes(value).split(b",")}
            if name.lower() not in present and b"*" not in present:
                headers[index] = (key, bytes(value) + b", " + name)
            return
    headers.append((b"vary", name))
