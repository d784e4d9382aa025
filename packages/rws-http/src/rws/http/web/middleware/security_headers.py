"""Baseline security response headers, without overriding what the app decided.

Each header has a sensible default and can be changed or turned off (``None``). A header the
app already set on a response is never overwritten, so one route can relax a policy (say, a
page meant to be framed setting its own ``X-Frame-Options``/CSP) without a second mechanism.
``Strict-Transport-Security`` is only sent on https requests: on plain http browsers ignore
it (RFC 6797 §8.1), and sending it there usually means the app cannot tell which scheme it is
behind (fix the proxy headers rather than this).
"""

from __future__ import annotations

from collections.abc import Mapping

from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersMiddleware"]


def _check(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
        raise ValueError(f"{option}: expected a non-empty printable ASCII string or None")
    return value


class SecurityHeadersMiddleware:
    """Add security headers to ``http`` responses (other scopes pass through).

    Defaults: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
    ``Referrer-Policy: strict-origin-when-cross-origin``, ``Cross-Origin-Opener-Policy:
    same-origin`` and, on https only, ``Strict-Transport-Security: max-age=31536000;
    includeSubDomains`` (one year; add ``preload`` yourself once you mean it).
    ``Content-Security-Policy`` and ``Permissions-Policy`` are off until given, because no
    default fits every app. ``extra``: more headers, same never-overwrite rule.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        content_type_options: str | None = "nosniff",
        frame_options: str | None = "DENY",
        referrer_policy: str | None = "strict-origin-when-cross-origin",
        cross_origin_opener_policy: str | None = "same-origin",
        content_security_policy: str | None = None,
        permissions_policy: str | None = None,
        strict_transport_security: str | None = "max-age=31536000; includeSubDomains",
        extra: Mapping[str, str] | None = None,
    ) -> None:
        options = {
            "x-content-type-options": ("content_type_options", content_type_options),
            "x-frame-options": ("frame_options", frame_options),
            "referrer-policy": ("referrer_policy", referrer_policy),
            "cross-origin-opener-policy": (
                "cross_origin_opener_policy",
                cross_origin_opener_policy,
            ),
            "content-security-policy": ("content_security_policy", content_security_policy),
            "permissions-policy": ("permissions_policy", permissions_policy),
        }
        headers: list[tuple[bytes, bytes]] = []
        for name, (option, value) in options.items():
            checked = _check(option, value)
            if checked is not None:
                headers.append((name.encode(), checked.encode()))
        for name, value in (extra or {}).items():
            if (
                not isinstance(name, str)
                or not name.isascii()
                or not name.replace("-", "").isalnum()
            ):
                raise ValueError(f"extra: {name!r} is not a valid header name")
            headers.append((name.lower().encode(), str(_check(f"extra[{name!r}]", value)).encode()))
        hsts = _check("strict_transport_security", strict_transport_security)
        self.app = app
        self.headers = headers
        self.hsts = None if hsts is None else (b"strict-transport-security", hsts.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = self.headers
        if self.hsts is not None and scope.get("scheme") == "https":
            defaults = [*defaults, self.hsts]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(key).lower() for key, _ in headers}
                headers += [(key, value) for key, value in defaults if key not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
