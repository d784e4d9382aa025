"""SecurityHeadersMiddleware under both servers: defaults, overrides, HSTS on https only,
and the app's own headers always winning."""

from __future__ import annotations

import httpx
import pytest

from rws.http.web.middleware.security_headers import SecurityHeadersMiddleware
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served

DEFAULTS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cross-origin-opener-policy": "same-origin",
}


async def plain(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def framable(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"X-Frame-Options", b"SAMEORIGIN"), (b"content-security-policy", b"default-src *")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def forwarded_proto(app: ASGIApp) -> ASGIApp:
    """What a proxy-headers layer does: the scheme comes from X-Forwarded-Proto."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"x-forwarded-proto", b"https") in scope["headers"]:
            scope["scheme"] = "https"
        await app(scope, receive, send)

    return wrapper


def app(**options: object) -> ASGIApp:
    router = Router([Route("/", plain), Route("/framable", framable)])
    return forwarded_proto(SecurityHeadersMiddleware(router, **options))  # type: ignore[arg-type]


async def test_defaults_on_http(served: Served) -> None:
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/")
        missing = await client.get("/missing")  # the router's own 404 gets them too
    for name, value in DEFAULTS.items():
        assert response.headers[name] == value
        assert missing.headers[name] == value
    for name in ("strict-transport-security", "content-security-policy", "permissions-policy"):
        assert name not in response.headers


async def test_hsts_only_on_https(served: Served) -> None:
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_app_headers_are_never_overwritten(served: Served) -> None:
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/framable")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("content-security-policy") == ["default-src *"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_overrides_and_disabling(served: Served) -> None:
    options = {
        "frame_options": None,
        "referrer_policy": "no-referrer",
        "content_security_policy": "default-src 'self'",
        "permissions_policy": "geolocation=()",
        "strict_transport_security": None,
        "extra": {"Cross-Origin-Resource-Policy": "same-site"},
    }
    async with httpx.AsyncClient(base_url=await served(app(**options)), timeout=10) as client:
        response = await client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert "x-frame-options" not in response.headers
    assert "strict-transport-security" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == "default-src 'self'"
    assert response.headers["permissions-policy"] == "geolocation=()"
    assert response.headers["cross-origin-resource-policy"] == "same-site"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"frame_options": "DENY\r\nSet-Cookie: x=1"}, "frame_options"),
        ({"content_security_policy": ""}, "content_security_policy"),
        ({"referrer_policy": 3}, "referrer_policy"),
        ({"extra": {"bad name": "x"}}, "extra"),
        ({"extra": {"X-Ok": "line\nbreak"}}, "extra"),
    ],
)
def test_bad_options(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SecurityHeadersMiddleware(plain, **options)  # type: ignore[arg-type]
