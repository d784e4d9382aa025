"""TrustedHostMiddleware under both servers: exact and wildcard hosts, ports, IPv6 literals,
the www redirect, and refused WebSocket handshakes."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from rws.http.web.middleware.trusted_host import TrustedHostMiddleware, split_host
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served

ALLOWED = ["example.com", "*.example.org", "::1", "www.shop.test"]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def ws(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})


def app(**options: object) -> ASGIApp:
    options.setdefault("allowed_hosts", ALLOWED)
    router = Router([Route("/{path:path}", hello), Route("/ws", ws, websocket=True)])
    return TrustedHostMiddleware(router, **options)  # type: ignore[arg-type]


async def get(base: str, host: str, path: str = "/") -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        return await client.get(path, headers={"Host": host})


@pytest.mark.parametrize(
    "host",
    ["example.com", "EXAMPLE.com:8080", "example.com.", "a.example.org", "a.b.example.org:1",
     "[::1]:8000", "[::1]", "www.shop.test"],
)  # fmt: skip
async def test_allowed(served: Served, host: str) -> None:
    response = await get(await served(app()), host)
    assert response.status_code == 200 and response.text == "hello"


@pytest.mark.parametrize(
    "host",
    ["evil.com", "example.com.evil.com", "example.org", "aexample.org", "notexample.com",
     "[::2]:80", "[::1", "[::1]junk", "", "example.com@evil.com"],
)  # fmt: skip
async def test_refused(served: Served, host: str) -> None:
    response = await get(await served(app()), host)
    assert response.status_code == 400
    assert response.text == "Invalid host header"


async def test_www_redirect(served: Served) -> None:
    base = await served(app())
    response = await get(base, "shop.test:8000", "/caf%C3%A9/x?q=a%20b")
    assert response.status_code == 308
    assert response.headers["location"] == "http://www.shop.test:8000/caf%C3%A9/x?q=a%20b"
    base = await served(app(www_redirect=False))
    assert (await get(base, "shop.test")).status_code == 400


async def test_star_allows_everything(served: Served) -> None:
    response = await get(await served(app(allowed_hosts=["*"])), "anything.invalid")
    assert response.status_code == 200


async def handshake(base: str, host: str) -> str:
    """The status line a raw WebSocket handshake gets (a refused one never reaches 101)."""
    address = urlsplit(base)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    return head.split(b"\r\n", 1)[0].decode()


async def test_websocket_refused_before_accept(served: Served) -> None:
    base = await served(app())
    assert " 101 " in await handshake(base, "example.com")
    assert " 403 " in await handshake(base, "evil.com")


def test_split_host() -> None:
    assert split_host("[::1]:8000") == ("::1", "8000")
    assert split_host("Example.COM.:80") == ("example.com", "80")
    assert split_host("fe80::1") == ("fe80::1", "")


@pytest.mark.parametrize(
    "hosts", [["foo.*.com"], ["*example.com"], ["example.com:80"], [""], [], "example.com"]
)
def test_bad_allowed_hosts(hosts: object) -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        TrustedHostMiddleware(hello, allowed_hosts=hosts)  # type: ignore[arg-type]
