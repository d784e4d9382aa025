"""Fixtures: a real rws-http server on 127.0.0.1:0 in the test's event loop, and real clients.

The server and the test share one event loop, so every client used here is asynchronous
(httpx.AsyncClient, asyncio streams, asyncio subprocesses for curl): a blocking client would
stall the server it is talking to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from rws.http.server import Config, Server
from rws.http.server.cycle import Message, Scope

Start = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Start]:
    """``address = await serve(app, **config)`` starts a server; all stop after the test."""
    servers: list[Server] = []

    async def start(app: Any, **options: Any) -> str:
        options.setdefault("bind", ("127.0.0.1:0",))
        server = Server(app, Config(**options))
        await server.start()
        servers.append(server)
        return server.addresses[0]

    yield start
    for server in servers:
        await server.shutdown(grace=2)


def need_tool(name: str) -> str:
    """Path of an external tool, or skip (fail under RWS_REQUIRE_SERVICES=1)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


async def exchange(address: str, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def run(
    *command: str, input: bytes | None = None, timeout: float = 30.0
) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(input), timeout)
    assert process.returncode is not None
    return process.returncode, out, err


@pytest.fixture
def helpers() -> Any:
    """The module-level helpers, reachable from test modules (which cannot import conftest)."""

    class Helpers:
        exchange = staticmethod(exchange)
        run = staticmethod(run)
        need_tool = staticmethod(need_tool)

    return Helpers


@pytest.fixture
def no_escaped_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail if asyncio reports an exception escaping a protocol callback or a task."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    yield
    escaped = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not escaped, [r.getMessage() for r in escaped]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, ssl.SSLContext]:
    """``(server PEM with key, CA PEM, client SSL context trusting the CA)``, from trustme."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    server_pem = folder / "server.pem"
    ca_pem = folder / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return str(server_pem), str(ca_pem), context


@pytest.fixture
def running() -> Callable[..., contextlib.AbstractAsyncContextManager[Server]]:
    """``async with running(app, **config) as server``: a server the test holds (to reach its
    connections or shut it down), on 127.0.0.1:0 with lifespan off unless told otherwise."""

    @contextlib.asynccontextmanager
    async def start(app: Any, **options: Any) -> AsyncIterator[Server]:
        options.setdefault("bind", ("127.0.0.1:0",))
        options.setdefault("lifespan", "off")
        server = Server(app, Config(**options))
        await server.start()
        try:
            yield server
        finally:
            await server.shutdown(grace=2)

    return start


GUARD = 10.0


class WebSocketEcho:
    """Accepts (the first subprotocol offered) and echoes; ``!close CODE REASON`` closes."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.disconnects: asyncio.Queue[Message] = asyncio.Queue()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"plain http"})
            return
        if scope["type"] != "websocket":
            return
        self.scopes.append(scope)
        assert (await receive()) == {"type": "websocket.connect"}
        path = scope["path"]
        if path == "/refuse":
            await send({"type": "websocket.close"})
            return
        if path == "/deny":
            headers = [(b"content-type", b"text/plain"), (b"x-why", b"no")]
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"away"})
            return
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await self.disconnects.put(message)
                return
            text = message.get("text")
            if text is not None and text.startswith("!close"):
                _, code, reason = text.split(" ", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
            elif text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    async def disconnect(self) -> Message:
        async with asyncio.timeout(GUARD):
            return await self.disconnects.get()


@pytest.fixture
def ws_echo() -> type[WebSocketEcho]:
    """The WebSocket echo app the HTTP/2 and HTTP/3 WebSocket tests serve (call it for one)."""
    return WebSocketEcho


class QuicTestServers:
    """``quic.running(app, **config)``: a server on 127.0.0.1:0 over TCP and QUIC with the test
    certificate; ``quic.connect(server, protocol_class)``: an aioquic client trusting it."""

    def __init__(self, certificates: tuple[str, str, ssl.SSLContext]) -> None:
        self.server_pem, self.ca_pem, _ = certificates

    @contextlib.asynccontextmanager
    async def running(self, app: Any, **options: Any) -> AsyncIterator[Server]:
        config = Config(
            bind=("127.0.0.1:0",),
            quic_bind=("127.0.0.1:0",),
            certfile=self.server_pem,
            lifespan="off",
            **options,
        )
        server = Server(app, config)
        await server.start()
        try:
            yield server
        finally:
            await server.shutdown(grace=2)

    @contextlib.asynccontextmanager
    async def connect(self, server: Server, protocol_class: type[Any]) -> AsyncIterator[Any]:
        from aioquic.asyncio.client import connect
        from aioquic.h3.connection import H3_ALPN
        from aioquic.quic.configuration import QuicConfiguration

        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        configuration.load_verify_locations(cafile=self.ca_pem)
        configuration.server_name = "localhost"
        host, port = server.quic_addresses[0].rsplit(":", 1)
        async with connect(
            host, int(port), configuration=configuration, create_protocol=protocol_class
        ) as protocol:
            assert isinstance(protocol, protocol_class)
            yield protocol


@pytest.fixture
def quic(certificates: tuple[str, str, ssl.SSLContext]) -> QuicTestServers:
    return QuicTestServers(certificates)
