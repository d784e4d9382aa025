"""WebSocket (RFC 6455 on wsproto, ASGI ``websocket`` scope) against a real server.

Clients: the ``websockets`` library (its asyncio client), httpx for denial responses, Starlette
as the app framework, and a raw-socket client that writes frames byte by byte for everything a
well-behaved client never sends. The raw tests cover the Autobahn testsuite's categories
(framing and length encodings, pings and pongs, reserved bits, opcodes, fragmentation with
interleaved control frames, UTF-8 validation, close handling and close codes), because the
testsuite itself (``autobahntestsuite`` on PyPI) is Python 2 code that cannot run on 3.11.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import socket
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from rws.http.server import Config, ConfigError, Server
from rws.http.server.websocket import MAX_QUEUED_MESSAGES, ClientDisconnected, WSProtocol

Scope = dict[str, Any]
Message = dict[str, Any]

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
#: The reserved bits as ``frame(rsv=...)`` takes them: the three bits after FIN.
RSV1, RSV2, RSV3 = 0b100, 0b010, 0b001
KEY = base64.b64encode(b"0123456789abcdef").decode()
ACCEPT = base64.b64encode(
    hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()  # noqa: S324
).decode()
#: Hang guard for every wait on the network: never a measurement, only a bound on failure.
GUARD = 10.0


# -- apps ------------------------------------------------------------------------------------------


class Echo:
    """Accepts and echoes; ``!close CODE REASON`` closes, ``!raise`` fails; records disconnects."""

    def __init__(self, *, subprotocol: str | None = None, headers: Any = ()) -> None:
        self.subprotocol = subprotocol
        self.headers = list(headers)
        self.scopes: list[Scope] = []
        self.disconnects: asyncio.Queue[Message] = asyncio.Queue()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"plain http"})
            return
        self.scopes.append(scope)
        assert (await receive()) == {"type": "websocket.connect"}
        subprotocol = self.subprotocol
        if subprotocol == "last-offered":
            subprotocol = scope["subprotocols"][-1] if scope["subprotocols"] else None
        await send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": self.headers}
        )
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await self.disconnects.put(message)
                return
            text = message.get("text")
            if text is not None and text.startswith("!close"):
                _, code, reason = text.split(" ", 2)
                await send({"type": "websocket.close", "code": int(code), "reason": reason})
            elif text == "!raise":
                raise ValueError("the app broke")
            elif text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    async def disconnect(self) -> Message:
        async with asyncio.timeout(GUARD):
            return await self.disconnects.get()


def connect(address: str, path: str = "/", **options: Any) -> Any:
    options.setdefault("proxy", None)
    options.setdefault("open_timeout", GUARD)
    options.setdefault("close_timeout", GUARD)
    return ws_connect(f"ws://{address}{path}", **options)


def only_ws_protocol(server: Server) -> WSProtocol:
    (protocol,) = [c for c in server.state.connections if isinstance(c, WSProtocol)]
    return protocol


# -- a raw client: frames exactly as written -------------------------------------------------------


def mask(data: bytes, key: bytes) -> bytes:
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(data), "big")


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def handshake(
    path: str = "/",
    *,
    method: str = "GET",
    version: str = "1.1",
    headers: str | None = None,
    extra: str = "",
) -> bytes:
    if headers is None:
        headers = (
            "Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
        )
    return f"{method} {path} HTTP/{version}\r\n{headers}{extra}\r\n".encode()


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    def close(self) -> tuple[int, str]:
        assert self.opcode == CLOSE, self
        if not self.payload:
            return 1005, ""
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:].decode()


class Raw:
    """A WebSocket client that sends whatever bytes it is told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.head = b""

    @classmethod
    async def open(
        cls, address: str, request: bytes | None = None, *, rcvbuf: int | None = None
    ) -> Raw:
        host, port = address.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        raw = cls(reader, writer)
        if request is not None:
            writer.write(request)
            raw.head = await raw.read_head()
        return raw

    async def read_head(self) -> bytes:
        async with asyncio.timeout(GUARD):
            return await self.reader.readuntil(b"\r\n\r\n")

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> Frame:
        async with asyncio.timeout(GUARD):
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "a server must not mask its frames"
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(size)
        return Frame(bool(first & 0x80), (first >> 4) & 7, first & 0x0F, payload)

    async def next_data(self) -> Frame:
        """The next frame that is not a ping (server keep-alive pings may come any time)."""
        while True:
            received = await self.frame()
            if received.opcode != PING:
                return received

    async def at_eof(self) -> bool:
        async with asyncio.timeout(GUARD):
            return await self.reader.read() == b""

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def raw(address: str, request: bytes | None = None, **options: Any) -> AsyncIterator[Raw]:
    client = await Raw.open(address, handshake() if request is None else request, **options)
    try:
        yield client
    finally:
        await client.aclose()


def status_line(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


# -- opening handshake and scope -------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_echo_text_and_binary(serve: Any, compression: str | None) -> None:
    address = await serve(Echo(), lifespan="off")
    async with connect(address, compression=compression, max_size=None) as ws:
        await ws.send("héllo wörld")
        assert await ws.recv() == "héllo wörld"
        await ws.send(b"\x00\xff" * 10)
        assert await ws.recv() == b"\x00\xff" * 10
        await ws.send("")
        assert await ws.recv() == ""
        big = os.urandom(3 * 1024 * 1024)
        await ws.send(big)
        assert await ws.recv() == big
        extensions = ws.response.headers.get("sec-websocket-extensions")
        if compression is None:
            assert extensions is None
        else:
            assert extensions is not None and extensions.startswith("permessage-deflate")


async def test_scope_follows_the_asgi_websocket_spec(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off", root_path="/api")
    async with connect(address, "/chat%20room?x=1", subprotocols=["a", "b"]) as ws:
        await ws.send("ping")
        await ws.recv()
    (scope,) = app.scopes
    assert scope["type"] == "websocket"
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert "method" not in scope
    assert scope["path"] == "/api/chat room"
    assert scope["raw_path"] == b"/api/chat%20room"
    assert scope["root_path"] == "/api"
    assert scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"][0] == "127.0.0.1"
    assert dict(scope["headers"])[b"upgrade"] == b"websocket"


async def test_subprotocol_negotiation(serve: Any) -> None:
    address = await serve(Echo(subprotocol="last-offered"), lifespan="off")
    async with connect(address, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["sec-websocket-protocol"] == "chat.v2"
    async with connect(address) as ws:
        assert ws.subprotocol is None
        assert "sec-websocket-protocol" not in ws.response.headers


async def test_accepting_a_subprotocol_not_offered_is_an_app_error(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = await serve(Echo(subprotocol="never-offered"), lifespan="off")
    with pytest.raises(InvalidStatus) as info:
        async with connect(address, subprotocols=["chat"]):
            pass
    assert info.value.response.status_code == 500
    assert "invalid websocket.accept" in caplog.text


async def test_accept_headers_reach_the_client(serve: Any) -> None:
    headers = [(b"x-session", b"abc"), (b"set-cookie", b"a=b")]
    address = await serve(Echo(headers=headers), lifespan="off")
    async with connect(address) as ws:
        response = ws.response
    assert response.status_code == 101
    assert response.reason_phrase == "Switching Protocols"
    assert response.headers["x-session"] == "abc"
    assert response.headers["set-cookie"] == "a=b"
    assert response.headers["server"] == "rws"
    assert "date" in response.headers


async def test_frames_sent_with_the_handshake_are_kept(serve: Any) -> None:
    address = await serve(Echo(), lifespan="off")
    early = frame(TEXT, b"early bird")
    async with raw(address, handshake() + early) as client:
        assert status_line(client.head) == b"HTTP/1.1 101 Switching Protocols"
        assert f"\r\nSec-WebSocket-Accept: {ACCEPT}\r\n".encode() in client.head
        assert (await client.next_data()).payload == b"early bird"


@pytest.mark.parametrize("pipelined", [False, True])
async def test_upgrade_after_a_keep_alive_request(serve: Any, pipelined: bool) -> None:
    address = await serve(Echo(), lifespan="off")
    plain = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    async with raw(address, plain + handshake() if pipelined else plain) as client:
        assert status_line(client.head) == b"HTTP/1.1 200 OK"
        async with asyncio.timeout(GUARD):
            assert await client.reader.readexactly(len(b"plain http")) == b"plain http"
        if not pipelined:
            client.send(handshake())
        head = await client.read_head()
        assert status_line(head) == b"HTTP/1.1 101 Switching Protocols"
        client.send(frame(TEXT, b"after http"))
        assert (await client.next_data()).payload == b"after http"


@pytest.mark.parametrize(
    ("request_bytes", "status", "needle"),
    [
        pytest.param(
            handshake(headers="Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Version: 13\r\n"),
            400, b"Sec-WebSocket-Key", id="no-key",
        ),
        pytest.param(
            handshake(headers="Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n"),
            426, b"sec-websocket-version: 13", id="old-version",
        ),
        pytest.param(
            handshake(method="POST", extra="Content-Length: 0\r\n"),
            400, b"GET", id="post",
        ),
        pytest.param(handshake(version="1.0"), 400, b"needs HTTP/1.1", id="http-1.0"),
        pytest.param(
            handshake(extra="Content-Length: 5\r\n"), 400, b"body", id="with-body",
        ),
        pytest.param(
            handshake(headers="Host: xn--zz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"),
            400, b"invalid", id="bad-idna-host",
        ),
        pytest.param(
            handshake(extra="Sec-WebSocket-Protocol: café\r\n"),
            400, b"invalid", id="non-ascii-subprotocol",
        ),
    ],
)  # fmt: skip
async def test_bad_handshakes_are_refused_before_the_app(
    serve: Any, request_bytes: bytes, status: int, needle: bytes
) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with raw(address, request_bytes) as client:
        assert client.head.startswith(b"HTTP/1.1 %d " % status)
        assert needle.lower() in (client.head + await client.reader.read()).lower()
    assert app.scopes == []


# -- refusing: close before accept, the denial response extension, errors --------------------------


async def test_close_before_accept_is_403(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 4003})
        assert await receive() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}

    address = await serve(app, lifespan="off")
    with pytest.raises(InvalidStatus) as info:
        async with connect(address):
            pass
    response = info.value.response
    assert response.status_code == 403
    assert response.reason_phrase == "Forbidden"
    assert response.headers["content-length"] == "0"
    assert response.headers["connection"] == "close"


async def test_denial_response_extension(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        chunked = scope["path"] == "/chunked"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")],
            }
        )
        if chunked:
            await send({"type": "websocket.http.response.body", "body": b"log ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"in first"})

    address = await serve(app, lifespan="off")
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    async with httpx.AsyncClient(trust_env=False, timeout=GUARD) as client:
        plain = await client.get(f"http://{address}/plain", headers=headers)
        chunked = await client.get(f"http://{address}/chunked", headers=headers)
    for response, body in ((plain, b"in first"), (chunked, b"log in first")):
        assert response.status_code == 401
        assert response.reason_phrase == "Unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["server"] == "rws"
        assert response.content == body
    assert plain.headers["content-length"] == "8"
    assert chunked.headers["transfer-encoding"] == "chunked"
    with pytest.raises(InvalidStatus) as info:
        async with connect(address, "/plain"):
            pass
    assert info.value.response.status_code == 401
    assert info.value.response.body == b"in first"


async def test_app_exception_before_accept_is_500(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("no database")

    address = await serve(app, lifespan="off")
    with pytest.raises(InvalidStatus) as info:
        async with connect(address, "/room"):
            pass
    assert info.value.response.status_code == 500
    (record,) = [r for r in caplog.records if r.name == "rws.http.error" and r.exc_info]
    assert record.levelno == logging.ERROR
    assert "/room" in record.getMessage()
    assert record.exc_info is not None and "no database" in str(record.exc_info[1])


async def test_app_returning_without_answering_is_500(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()

    address = await serve(app, lifespan="off")
    with pytest.raises(InvalidStatus) as info:
        async with connect(address):
            pass
    assert info.value.response.status_code == 500
    assert "without accepting or refusing" in caplog.text


async def test_send_before_accept_is_an_app_error(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.send", "text": "too early"})

    address = await serve(app, lifespan="off")
    with pytest.raises(InvalidStatus) as info:
        async with connect(address):
            pass
    assert info.value.response.status_code == 500


# -- messages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_fragmented_messages_are_reassembled(serve: Any, compression: str | None) -> None:
    address = await serve(Echo(), lifespan="off")
    async with connect(address, compression=compression) as ws:
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"\x01", b"\x02\x03", b""])
        assert await ws.recv() == b"\x01\x02\x03"


async def test_control_frames_between_fragments(serve: Any) -> None:
    address = await serve(Echo(), lifespan="off")
    text = "κόσμε".encode()
    async with raw(address) as client:
        # A UTF-8 character split across fragments, a ping and a pong in the middle.
        client.send(frame(TEXT, text[:3], fin=False))
        client.send(frame(PING, b"in between"))
        client.send(frame(PONG, b"unsolicited"))
        client.send(frame(CONT, text[3:7], fin=False))
        client.send(frame(CONT, text[7:]))
        pong = await client.frame()
        assert (pong.opcode, pong.payload) == (PONG, b"in between")
        echoed = await client.next_data()
        assert (echoed.opcode, echoed.fin, echoed.payload) == (TEXT, True, text)


@pytest.mark.parametrize("size", [0, 125, 126, 127, 65535, 65536, 300_000])
async def test_payload_length_encodings(serve: Any, size: int) -> None:
    address = await serve(Echo(), lifespan="off")
    payload = os.urandom(size)
    async with raw(address) as client:
        client.send(frame(BINARY, payload))
        echoed = await client.next_data()
        assert (echoed.opcode, echoed.rsv, echoed.payload) == (BINARY, 0, payload)


async def test_ping_payload_is_echoed(serve: Any) -> None:
    address = await serve(Echo(), lifespan="off")
    async with raw(address) as client:
        for payload in (b"", os.urandom(125)):
            client.send(frame(PING, payload))
            pong = await client.frame()
            assert (pong.opcode, pong.payload) == (PONG, payload)
    async with connect(address) as ws:
        async with asyncio.timeout(GUARD):
            await (await ws.ping(b"websockets"))


# -- closing ---------------------------------------------------------------------------------------


async def test_app_close_code_and_reason_reach_the_client(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with connect(address) as ws:
        await ws.send("!close 4001 see you")
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "see you")
    assert await app.disconnect() == {
        "type": "websocket.disconnect",
        "code": 4001,
        "reason": "see you",
    }


async def test_client_close_code_and_reason_reach_the_app(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with connect(address) as ws:
        await ws.close(4002, "done here")
    assert ws.close_code == 4002  # echoed by the server
    assert await app.disconnect() == {
        "type": "websocket.disconnect",
        "code": 4002,
        "reason": "done here",
    }


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 3999, 4000, 4999])
async def test_closing_handshake_echoes_valid_codes(serve: Any, code: int) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with raw(address) as client:
        client.send(frame(CLOSE, close_payload(code, b"bye")))
        assert (await client.next_data()).close() == (code, "bye")
        assert await client.at_eof()  # the server closes TCP first (RFC 6455 7.1.1)
    assert (await app.disconnect())["code"] == code


async def test_close_without_code_reports_1005(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with raw(address) as client:
        client.send(frame(CLOSE))
        answer = await client.next_data()
        assert (answer.opcode, answer.payload) == (CLOSE, b"")
        assert await client.at_eof()
    assert await app.disconnect() == {"type": "websocket.disconnect", "code": 1005, "reason": ""}


async def test_lost_connection_reports_1006(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with raw(address) as client:
        client.send(frame(TEXT, b"hi"))
        await client.next_data()
    assert (await app.disconnect())["code"] == 1006


async def test_receive_after_disconnect_and_send_after_close(serve: Any) -> None:
    results: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        first = await receive()
        second = await receive()
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except OSError as exc:
            await results.put((first, second, exc))
            raise

    address = await serve(app, lifespan="off")
    async with connect(address) as ws:
        await ws.close(1000)
    async with asyncio.timeout(GUARD):
        first, second, exc = await results.get()
    assert first == second == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
    assert isinstance(exc, ClientDisconnected)


async def test_app_exception_after_accept_closes_1011(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = await serve(Echo(), lifespan="off")
    async with connect(address) as ws:
        await ws.send("!raise")
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert "the app broke" in caplog.text
    assert any(r.exc_info for r in caplog.records if r.name == "rws.http.error")


async def test_app_returning_after_accept_closes_1000(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "goodbye"})

    address = await serve(app, lifespan="off")
    async with connect(address) as ws:
        assert await ws.recv() == "goodbye"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1000


async def test_invalid_close_code_from_the_app_is_an_error(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    address = await serve(Echo(), lifespan="off")
    async with connect(address) as ws:
        await ws.send("!close 1005 reserved")
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert "not a close code" in caplog.text


# -- invalid input from the peer -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(frame(TEXT, b"hi", masked=False), 1002, id="unmasked"),
        pytest.param(frame(TEXT, b"\xce\xba\xff"), 1007, id="bad-utf8"),
        # Fail fast: the bad sequence ends no message yet (Autobahn 6.4).
        pytest.param(frame(TEXT, b"\xce\xba\xed\xa0\x80", fin=False), 1007, id="utf8-fail-fast"),
        pytest.param(frame(TEXT, b"\xce", fin=False) + frame(CONT, b"\x41"), 1007,
                     id="utf8-split-bad"),
        pytest.param(frame(0x3), 1002, id="reserved-opcode"),
        pytest.param(frame(0xB), 1002, id="reserved-control-opcode"),
        pytest.param(frame(TEXT, b"x", rsv=RSV1), 1002, id="rsv1-without-extension"),
        pytest.param(frame(TEXT, b"x", rsv=RSV2), 1002, id="rsv2"),
        pytest.param(frame(PING, b"x", rsv=RSV3), 1002, id="rsv3-on-control"),
        pytest.param(frame(PING, b"x" * 126), 1002, id="control-too-long"),
        pytest.param(frame(PING, b"x", fin=False), 1002, id="fragmented-control"),
        pytest.param(frame(CONT, b"x"), 1002, id="continuation-first"),
        pytest.param(frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002,
                     id="new-message-inside-fragmented"),
        pytest.param(b"\x81\xfe\x00\x05" + b"k" * 4 + b"hello", 1002, id="non-minimal-length"),
        pytest.param(frame(CLOSE, b"\x03"), 1002, id="close-one-byte"),
        pytest.param(frame(CLOSE, close_payload(999)), 1002, id="close-999"),
        pytest.param(frame(CLOSE, close_payload(1004)), 1002, id="close-1004"),
        pytest.param(frame(CLOSE, close_payload(1005)), 1002, id="close-1005"),
        pytest.param(frame(CLOSE, close_payload(1006)), 1002, id="close-1006"),
        pytest.param(frame(CLOSE, close_payload(1016)), 1002, id="close-1016"),
        pytest.param(frame(CLOSE, close_payload(2999)), 1002, id="close-2999"),
        pytest.param(frame(CLOSE, close_payload(5000)), 1002, id="close-5000"),
        pytest.param(frame(CLOSE, close_payload(1000, b"\xff")), 1007, id="close-bad-utf8"),
    ],
)  # fmt: skip
async def test_invalid_frames_fail_the_connection(serve: Any, frames: bytes, code: int) -> None:
    app = Echo()
    address = await serve(app, lifespan="off")
    async with raw(address) as client:
        client.send(frames)
        received = await client.next_data()
        assert received.close()[0] == code
        assert await client.at_eof()
    assert (await app.disconnect())["code"] == code


# -- limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_message_size_limit_closes_1009(serve: Any, compression: str | None) -> None:
    app = Echo()
    address = await serve(app, lifespan="off", ws_max_message_size=1000)
    async with connect(address, compression=compression) as ws:
        await ws.send("x" * 1000)  # exactly the limit passes
        assert await ws.recv() == "x" * 1000
        await ws.send(["é" * 300, "é" * 300])  # 1200 UTF-8 bytes in two fragments
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    disconnect = await app.disconnect()
    assert disconnect["code"] == 1009
    assert "1000 bytes" in disconnect["reason"]


async def test_compressed_bomb_is_stopped_at_the_limit(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off", ws_max_message_size=1024 * 1024)
    async with connect(address, compression="deflate") as ws:
        await ws.send(bytes(64 * 1024 * 1024))  # 64 MiB of zeros: ~64 KiB on the wire
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert (await app.disconnect())["code"] == 1009


async def test_reading_pauses_while_the_app_does_not_receive(
    running: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = MAX_QUEUED_MESSAGES * 20
    paused = asyncio.Event()
    received: list[bytes] = []
    held: list[Server] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        transport = only_ws_protocol(held[0]).transport
        assert transport is not None
        original = transport.pause_reading

        def pause_reading() -> None:
            paused.set()
            original()

        monkeypatch.setattr(transport, "pause_reading", pause_reading)
        await paused.wait()  # the app reads nothing until the server stopped reading
        while len(received) < count:
            message = await receive()
            received.append(message["bytes"])
        await send({"type": "websocket.send", "text": "got all"})
        await receive()

    async with running(app) as server:
        held.append(server)
        async with raw(server.addresses[0]) as client:
            messages = [i.to_bytes(4, "big") * 256 for i in range(count)]
            client.send(b"".join(frame(BINARY, m) for m in messages))
            async with asyncio.timeout(GUARD):
                await client.writer.drain()
            assert (await client.next_data()).payload == b"got all"
            client.send(frame(CLOSE, close_payload(1000)))
            await client.next_data()
    assert paused.is_set()
    assert received == messages


async def test_send_waits_for_a_slow_reader(running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    count, size = 64, 256 * 1024
    paused = asyncio.Event()
    sent_all = asyncio.Event()
    buffered: list[int] = []
    held: list[Server] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        protocol = only_ws_protocol(held[0])
        original = protocol.pause_writing

        def pause_writing() -> None:
            paused.set()
            original()

        monkeypatch.setattr(protocol, "pause_writing", pause_writing)
        assert protocol.transport is not None
        for i in range(count):
            await send({"type": "websocket.send", "bytes": bytes([i]) * size})
            buffered.append(protocol.transport.get_write_buffer_size())
        sent_all.set()
        await receive()

    async with running(app) as server:
        held.append(server)
        async with raw(server.addresses[0], rcvbuf=4096) as client:
            # Read nothing until the server had to hold back (or, failing that, sent it all).
            waits = [asyncio.create_task(paused.wait()), asyncio.create_task(sent_all.wait())]
            done, pending = await asyncio.wait(
                waits, timeout=GUARD, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            assert done
            for i in range(count):
                assert (await client.next_data()).payload == bytes([i]) * size
            client.send(frame(CLOSE, close_payload(1000)))
            await client.next_data()
    assert paused.is_set(), "the client never pushed back; the test proved nothing"
    assert len(buffered) == count
    assert max(buffered) <= server.config.write_buffer_size


# -- keep-alive ------------------------------------------------------------------------------------


async def test_server_pings_and_a_live_peer_stays(serve: Any) -> None:
    address = await serve(Echo(), lifespan="off", ws_ping_interval=0.01, ws_ping_timeout=5.0)
    async with raw(address) as client:
        for _ in range(3):
            ping = await client.frame()
            assert ping.opcode == PING and len(ping.payload) == 4
            client.send(frame(PONG, ping.payload))
        client.send(frame(TEXT, b"still here"))
        assert (await client.next_data()).payload == b"still here"


async def test_unanswered_ping_drops_the_peer(serve: Any) -> None:
    app = Echo()
    address = await serve(app, lifespan="off", ws_ping_interval=0.01, ws_ping_timeout=0.01)
    async with raw(address) as client:
        assert (await client.frame()).opcode == PING  # and never answered
        closing = await client.next_data()
        assert closing.close() == (1011, "keepalive ping timeout")
        assert await client.at_eof()
    assert (await app.disconnect())["code"] == 1011


async def test_websockets_client_answers_server_pings(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pongs = 0
    three_pongs = asyncio.Event()
    on_pong = WSProtocol._on_pong

    def counting(self: WSProtocol, payload: bytes) -> None:
        nonlocal pongs
        pongs += 1
        if pongs == 3:
            three_pongs.set()
        on_pong(self, payload)

    monkeypatch.setattr(WSProtocol, "_on_pong", counting)
    address = await serve(Echo(), lifespan="off", ws_ping_interval=0.01, ws_ping_timeout=5.0)
    async with connect(address, ping_interval=None) as ws:
        async with asyncio.timeout(GUARD):
            await three_pongs.wait()
        await ws.send("still open")
        assert await ws.recv() == "still open"


# -- shutdown --------------------------------------------------------------------------------------


async def test_graceful_shutdown_closes_open_websockets_1001(
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Echo()
    async with running(app, graceful_timeout=60.0) as server, connect(server.addresses[0]) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        # The guard is far below the 60 s grace period: shutdown must not wait for it.
        async with asyncio.timeout(GUARD):
            await server.shutdown()
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1001, "server shutting down")
    assert (await app.disconnect())["code"] == 1001
    assert "still running" not in caplog.text


async def test_shutdown_during_the_handshake_is_503(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    waiting = asyncio.Event()
    outcome: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        waiting.set()
        message = await receive()  # nothing until the server gives up on the client
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            await outcome.put((message, exc))
            raise

    async with running(app, graceful_timeout=60.0) as server:

        async def try_to_connect() -> None:
            async with connect(server.addresses[0]):
                pass

        attempt = asyncio.create_task(try_to_connect())
        async with asyncio.timeout(GUARD):
            await waiting.wait()
            await server.shutdown()
        with pytest.raises(InvalidStatus) as info:
            await attempt
    assert info.value.response.status_code == 503
    message, exc = outcome.get_nowait()
    assert message["code"] == 1001
    assert isinstance(exc, ClientDisconnected)
    assert "still running" not in caplog.text
    assert "exception in ASGI application" not in caplog.text


# -- frameworks ------------------------------------------------------------------------------------


async def test_starlette_websocket_route(serve: Any) -> None:
    disconnects: asyncio.Queue[int] = asyncio.Queue()

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="chat")
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{websocket.path_params['room']}: {text}")
        except WebSocketDisconnect as exc:
            await disconnects.put(exc.code)

    async def refuse(websocket: WebSocket) -> None:
        await websocket.close(code=4403)

    async def homepage(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(
        routes=[
            Route("/", homepage),
            WebSocketRoute("/ws/{room}", chat),
            WebSocketRoute("/refuse", refuse),
        ]
    )
    address = await serve(app, lifespan="off")
    async with connect(address, "/ws/lobby", subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat"
        await ws.send("hi")
        assert await ws.recv() == "lobby: hi"
        await ws.close(4000, "later")
    async with asyncio.timeout(GUARD):
        assert await disconnects.get() == 4000
    with pytest.raises(InvalidStatus) as info:
        async with connect(address, "/refuse"):
            pass
    assert info.value.response.status_code == 403
    async with httpx.AsyncClient(trust_env=False, timeout=GUARD) as client:
        assert (await client.get(f"http://{address}/")).text == "home"


async def test_starlette_send_after_client_left_raises_disconnect(serve: Any) -> None:
    outcome: asyncio.Queue[BaseException] = asyncio.Queue()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()
        try:
            await websocket.send_text("too late")
        except WebSocketDisconnect as exc:  # Starlette's translation of our OSError
            await outcome.put(exc)

    app = Starlette(routes=[WebSocketRoute("/", endpoint)])
    address = await serve(app, lifespan="off")
    async with connect(address):
        pass
    async with asyncio.timeout(GUARD):
        exc = await outcome.get()
    assert isinstance(exc, WebSocketDisconnect)


# -- access log ------------------------------------------------------------------------------------


async def test_access_log_records_each_websocket_when_it_ends(running: Any, tmp_path: Any) -> None:
    """nginx's way: the upgrade GET, 101 (or the refusal's status), bytes sent, its lifetime."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/refused":
            await send({"type": "websocket.close"})
            return
        if scope["path"] == "/denied":
            await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
            await send({"type": "websocket.http.response.body", "body": b"log in"})
            return
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"] * 2})

    log = tmp_path / "access.log"
    async with running(app, access_log=str(log), access_log_format="json") as server:
        address = server.addresses[0]
        chat = connect(address, "/chat?room=1", user_agent_header="ws-test/1", compression=None)
        async with chat as ws:
            for text in ("hi", "there"):
                await ws.send(text)
                assert await ws.recv() == text * 2
            await asyncio.sleep(0.05)
        for path in ("/refused", "/denied"):
            with pytest.raises(InvalidStatus):
                async with connect(address, path):
                    pass
        # A handshake the server itself refuses (no Sec-WebSocket-Key) is logged too.
        raw = b"GET /bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        reader, writer = await asyncio.open_connection(*address.rsplit(":", 1))
        writer.write(raw)
        assert (await asyncio.wait_for(reader.read(), GUARD)).startswith(b"HTTP/1.1 400 ")
        writer.close()
        await writer.wait_closed()
        # Still open at shutdown: closed with 1001 and logged before the log closes.
        lingering = await connect(address, "/open-at-shutdown", compression=None)
        await lingering.send("x")
        assert await lingering.recv() == "xx"
    with contextlib.suppress(ConnectionClosed):
        await lingering.recv()
    assert lingering.close_code == 1001
    records = {r["target"]: r for r in map(json.loads, log.read_text().splitlines())}
    assert set(records) == {"/chat?room=1", "/refused", "/denied", "/bad", "/open-at-shutdown"}
    assert records["/open-at-shutdown"]["status"] == 101
    chat = records["/chat?room=1"]
    assert chat["method"] == "GET" and chat["status"] == 101 and chat["scheme"] == "ws"
    assert chat["http_version"] == "1.1" and chat["user_agent"] == "ws-test/1"
    assert chat["response_bytes"] == (2 + 4) + (2 + 10)  # two frames: header + payload
    assert chat["duration_ms"] >= 40  # it lived through the 50 ms sleep
    assert records["/refused"]["status"] == 403
    assert records["/denied"]["status"] == 401
    assert records["/denied"]["response_bytes"] == len(b"log in")
    assert records["/bad"]["status"] == 400


# -- permessage-deflate (RFC 7692) -----------------------------------------------------------------


def deflate(data: bytes) -> bytes:
    """A message's payload as a permessage-deflate sender writes it (RFC 7692 7.2.1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    step = 1 << 20
    out = b"".join(compressor.compress(data[i : i + step]) for i in range(0, len(data), step))
    out += compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def offering(extensions: str) -> bytes:
    return handshake(extra=f"Sec-WebSocket-Extensions: {extensions}\r\n")


def extensions_header(head: bytes) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-extensions":
            return value.strip()
    return None


async def test_per_message_deflate_round_trips_large_messages(running: Any) -> None:
    text = json.dumps([{"id": i, "name": "item", "tags": ["a", "b"]} for i in range(100_000)])
    data = bytes(range(256)) * 16 * 1024  # 4 MiB
    async with (
        running(Echo()) as server,
        connect(server.addresses[0], compression="deflate", max_size=None) as ws,
    ):
        # websockets offers "permessage-deflate; client_max_window_bits".
        assert ws.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
        for _ in range(2):  # the second time with the context of the first
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send(data)
            assert await ws.recv() == data
        # Compressed on the wire: the server's frames are a fraction of what they carry.
        sent = only_ws_protocol(server)._log_bytes
        assert sent < (len(text) + len(data)) // 4


async def test_per_message_deflate_honours_the_client_parameters(serve: Any) -> None:
    address = await serve(Echo(), lifespan="off")
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=12,
    )
    async with connect(address, compression=None, extensions=[factory]) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10"
        )
        for message in ("abc" * 5000, "abc" * 5000, "xyz" * 10):
            await ws.send(message)
            assert await ws.recv() == message
    # Raw: without context takeover every message the server sends stands alone.
    async with raw(
        await serve(Echo(), lifespan="off"),
        offering("permessage-deflate; server_no_context_takeover"),
    ) as client:
        assert extensions_header(client.head) == "permessage-deflate; server_no_context_takeover"
        for _ in range(2):
            client.send(frame(TEXT, deflate(b"same" * 100), rsv=RSV1))
            echoed = await client.next_data()
            assert echoed.rsv == RSV1 and inflate(echoed.payload) == b"same" * 100


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (
            'permessage-deflate; server_max_window_bits="12"',
            "permessage-deflate; server_max_window_bits=12",
        ),
        # The first acceptable offer wins; the ones the server cannot take are skipped.
        (
            "permessage-deflate; x-unknown, permessage-deflate; server_max_window_bits=8, "
            "permessage-deflate; server_no_context_takeover, permessage-deflate",
            "permessage-deflate; server_no_context_takeover",
        ),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; client_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=abc", None),
        ("x-webkit-deflate-frame", None),
    ],
)
async def test_per_message_deflate_negotiation(serve: Any, offer: str, answer: str | None) -> None:
    address = await serve(Echo(), lifespan="off")
    async with raw(address, offering(offer)) as client:
        assert status_line(client.head) == b"HTTP/1.1 101 Switching Protocols"
        assert extensions_header(client.head) == answer
        payload = deflate(b"hello") if answer else b"hello"
        client.send(frame(TEXT, payload, rsv=RSV1 if answer else 0))
        echoed = await client.next_data()
        assert (inflate(echoed.payload) if answer else echoed.payload) == b"hello"


async def test_per_message_deflate_can_be_turned_off(serve: Any) -> None:
    address = await serve(Echo(), lifespan="off", ws_per_message_deflate=False)
    async with connect(address, compression="deflate") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("plain " * 1000)
        assert await ws.recv() == "plain " * 1000
    async with raw(address, offering("permessage-deflate")) as client:
        assert extensions_header(client.head) is None
        # RSV1 without a negotiated extension is a protocol error (RFC 6455 5.2).
        client.send(frame(TEXT, deflate(b"hello"), rsv=RSV1))
        assert (await client.next_data()).close()[0] == 1002


async def test_control_frames_between_compressed_fragments(serve: Any) -> None:
    """RFC 6455 5.4: a ping may come between the frames of a (compressed) message."""
    address = await serve(Echo(), lifespan="off")
    message = "fragmented and compressed " * 50
    payload = deflate(message.encode())
    half = len(payload) // 2
    async with raw(address, offering("permessage-deflate")) as client:
        client.send(frame(TEXT, payload[:half], fin=False, rsv=RSV1))
        client.send(frame(PING, b"in between"))
        client.send(frame(CONT, payload[half:]))
        pong = await client.frame()
        assert (pong.opcode, pong.payload) == (PONG, b"in between")
        echoed = await client.next_data()
        assert echoed.opcode == TEXT and inflate(echoed.payload).decode() == message


@pytest.mark.parametrize("frames", [1, 16])
async def test_hostile_compressed_bomb_is_stopped_early(running: Any, frames: int) -> None:
    """~100 KiB on the wire inflating to 100 MiB: 1009 after about 1 MiB, memory bounded."""
    limit = 1024 * 1024
    app = Echo()
    payload = deflate(bytes(100 * 1024 * 1024))
    assert len(payload) < 200 * 1024
    size = -(-len(payload) // frames)
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    wire = b"".join(
        frame(BINARY if i == 0 else CONT, part, fin=i == len(parts) - 1, rsv=RSV1 if i == 0 else 0)
        for i, part in enumerate(parts)
    )
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        async with running(app, ws_max_message_size=limit) as server:
            address = server.addresses[0]
            async with raw(address, offering("permessage-deflate")) as client:
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                client.send(wire)
                closing = await client.next_data()
                assert closing.close() == (1009, f"message larger than {limit} bytes")
                assert await client.at_eof()
                peak = tracemalloc.get_traced_memory()[1] - before
            disconnect = await app.disconnect()
            assert disconnect["code"] == 1009
            # The server inflated little more than the limit (not 100 MiB, not even 4 MiB).
            assert peak < 4 * limit, peak
            # ... and it serves others as before.
            async with connect(address, compression="deflate") as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"
    finally:
        if started:
            tracemalloc.stop()


def test_per_message_deflate_setting_from_env_toml_and_flags(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rws.http.server import cli

    assert Config().ws_per_message_deflate is True
    assert (
        Config.from_env({"RWS_HTTP_WS_PER_MESSAGE_DEFLATE": "off"}).ws_per_message_deflate is False
    )
    toml = tmp_path / "rws.toml"
    toml.write_text("ws_per_message_deflate = false\n")
    assert Config.from_toml(toml).ws_per_message_deflate is False
    with pytest.raises(ConfigError, match="ws_per_message_deflate must be true or false"):
        Config.from_mapping({"ws_per_message_deflate": "yes"})
    monkeypatch.delenv("RWS_HTTP_WS_PER_MESSAGE_DEFLATE", raising=False)
    args = cli._parser().parse_args(["serve", "app:app", "--no-ws-per-message-deflate"])
    assert cli._settings(args).ws_per_message_deflate is False
