"""HTTPSRedirectMiddleware under both servers: 308 by default, path and query kept, default
port dropped, WebSocket handshakes sent to wss."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from rws.http.web.middleware.https_redirect import HTTPSRedirectMiddleware
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


async def ws(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})


def forwarded_proto(app: ASGIApp) -> ASGIApp:
    """What a proxy-headers layer does: the scheme comes from X-Forwarded-Proto."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if (b"x-forwarded-proto", b"https") in scope.get("headers", []):
            scope["scheme"] = "https" if scope["type"] == "http" else "wss"
        await app(scope, receive, send)

    return wrapper


def app(**options: object) -> ASGIApp:
    router = Router([Route("/{path:path}", hello), Route("/ws", ws, websocket=True)])
    return forwarded_proto(HTTPSRedirectMiddleware(router, **options))  # type: ignore[arg-type]


async def test_redirects_to_https_keeping_path_and_query(served: Served) -> None:
    base = await served(app())
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get("/caf%C3%A9/a%2Fb?q=a%20b&x=1")
        posted = await client.post("/form", content=b"data")
    assert response.status_code == 308
    assert response.headers["location"] == "https://127.0.0.1/caf%C3%A9/a%2Fb?q=a%20b&x=1"
    assert posted.status_code == 308
    assert posted.headers["location"] == "https://127.0.0.1/form"


async def test_https_requests_pass(served: Served) -> None:
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200 and response.text == "https"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("example.com:8080", 443, "https://example.com/p"),
        ("example.com", 8443, "https://example.com:8443/p"),
        ("[::1]:8000", 443, "https://[::1]/p"),
        ("[::1]", 8443, "https://[::1]:8443/p"),
    ],
)
async def test_host_and_port(served: Served, host: str, port: int, expected: str) -> None:
    base = await served(app(https_port=port, status_code=301))
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get("/p", headers={"Host": host})
    assert response.status_code == 301
    assert response.headers["location"] == expected


@pytest.mark.parametrize("host", ["evil.com/phish", "a@evil.com", "evil.com\\x", "[::1]x"])
async def test_a_host_header_that_is_not_a_host_is_refused(served: Served, host: str) -> None:
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/p", headers={"Host": host})
    assert response.status_code == 400
    assert response.text == "Invalid host header"
    assert "location" not in response.headers


async def test_websocket_goes_to_wss(served: Served) -> None:
    address = urlsplit(await served(app()))
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        b"GET /ws?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
    finally:
        writer.close()
    assert head.startswith("http/1.1 308 ")
    assert "\r\nlocation: wss://example.com/ws?x=1\r\n" in head


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"status_code": 200}, "status_code"),
        ({"status_code": 303}, "status_code"),
        ({"https_port": 0}, "https_port"),
        ({"https_port": 70000}, "https_port"),
        ({"https_port": "443"}, "https_port"),
    ],
)
def test_bad_options(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        HTTPSRedirectMiddleware(hello, **options)  # type: ignore[arg-type]
