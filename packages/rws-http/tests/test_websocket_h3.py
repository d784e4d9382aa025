"""WebSocket over HTTP/3 (RFC 9220 extended CONNECT) against a real server.

The client is aioquic's HTTP/3 connection (client side) for the QUIC and HTTP/3 framing and
wsproto's post-handshake ``Connection`` for the WebSocket frames the stream carries. Every wait
is for an event; the timeouts are only upper bounds. Without aioquic (the ``rws-http[h3]``
extra) the module is skipped with the reason, or fails under ``RWS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from typing import Any

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import client_extensions_handshake

from rws.http.server.cycle import Scope

try:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import ErrorCode, H3Connection, Setting
    from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
    from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset
except ImportError as exc:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(f"test tool not installed: {exc.name}", allow_module_level=True)

GUARD = 10.0
Headers = list[tuple[bytes, bytes]]


def extended_connect(path: str = "/", *extra: tuple[bytes, bytes]) -> Headers:
    """The request head of an RFC 9220 WebSocket: CONNECT with ``:protocol websocket``."""
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":path", path.encode()),
        (b":authority", b"localhost"),
        (b"sec-websocket-version", b"13"),
        *extra,
    ]


class Client(QuicConnectionProtocol):
    """aioquic's HTTP/3 client; HTTP/3 events (and stream resets) are queued per stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.queues: dict[int, asyncio.Queue[H3Event | StreamReset | None]] = {}
        self.settings_received = asyncio.Event()
        #: Datagrams held back (not read) while this is a list: the server gets no ACKs.
        self.held: list[tuple[bytes, Any]] | None = None

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if self.held is not None and isinstance(data, bytes):
            self.held.append((data, addr))
            return
        super().datagram_received(data, addr)

    def release(self) -> None:
        """Read the datagrams held back, and all from now on."""
        held, self.held = self.held or [], None
        for data, addr in held:
            super().datagram_received(data, addr)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset) and event.stream_id in self.queues:
            self.queues[event.stream_id].put_nowait(event)
        if isinstance(event, ConnectionTerminated):
            for queue in self.queues.values():
                queue.put_nowait(None)
        for h3_event in self.h3.handle_event(event):
            queue = self.queues.get(getattr(h3_event, "stream_id", -1))
            if queue is not None:
                queue.put_nowait(h3_event)
        if self.h3.received_settings is not None:
            self.settings_received.set()

    async def settings(self) -> dict[int, int]:
        async with asyncio.timeout(GUARD):
            await self.settings_received.wait()
        assert self.h3.received_settings is not None
        return self.h3.received_settings

    def open(self, headers: Headers, *, end: bool = False) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        self.queues[stream_id] = asyncio.Queue()
        self.h3.send_headers(stream_id, headers, end_stream=end)
        self.transmit()
        return stream_id

    async def event(self, stream_id: int) -> H3Event | StreamReset | None:
        async with asyncio.timeout(GUARD):
            return await self.queues[stream_id].get()

    async def response(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes]:
        """Headers and whole body of a response that ends its stream."""
        headers: dict[bytes, bytes] = {}
        body = b""
        while True:
            event = await self.event(stream_id)
            if isinstance(event, HeadersReceived):
                headers = dict(event.headers)
            elif isinstance(event, DataReceived):
                body += event.data
            else:
                raise AssertionError(f"unexpected {event!r}")
            if event.stream_ended:
                return headers, body

    async def websocket(
        self,
        path: str = "/",
        *,
        subprotocols: Iterable[str] = (),
        deflate: bool = False,
    ) -> WebSocket:
        """An extended CONNECT; the server must accept it."""
        headers = extended_connect(path)
        offered = list(subprotocols)
        if offered:
            headers.append((b"sec-websocket-protocol", ", ".join(offered).encode()))
        extensions: list[Extension] = []
        if deflate:
            extension = PerMessageDeflate()
            offer = extension.offer()
            assert isinstance(offer, str)
            headers.append((b"sec-websocket-extensions", f"{extension.name}; {offer}".encode()))
            extensions.append(extension)
        stream_id = self.open(headers)
        event = await self.event(stream_id)
        assert isinstance(event, HeadersReceived), event
        assert not event.stream_ended
        response = dict(event.headers)
        assert response[b":status"] == b"200"
        accepted = response.get(b"sec-websocket-extensions", b"").decode()
        agreed = client_extensions_handshake([accepted] if accepted else [], extensions)
        return WebSocket(self, stream_id, response, Connection(ConnectionType.CLIENT, agreed))


class WebSocket:
    def __init__(
        self, client: Client, stream_id: int, headers: dict[bytes, bytes], ws: Connection
    ) -> None:
        self.client = client
        self.stream_id = stream_id
        self.headers = headers
        self.ws = ws
        self.ended = False

    def send(self, event: Event) -> None:
        self.client.h3.send_data(self.stream_id, self.ws.send(event), end_stream=False)
        self.client.transmit()

    async def receive(self) -> Event:
        """The next WebSocket event, a message whole (HTTP/3 events in between are applied)."""
        parts: list[Any] = []
        while True:
            for event in self.ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    parts.append(event.data)
                    if not event.message_finished:
                        continue
                    data = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                    return type(event)(data=data)
                return event
            if self.ended:
                raise AssertionError("the stream ended without another WebSocket event")
            h3_event = await self.client.event(self.stream_id)
            if not isinstance(h3_event, DataReceived):
                raise AssertionError(f"unexpected {h3_event!r}")
            self.ws.receive_data(h3_event.data)
            self.ended = h3_event.stream_ended

    async def end(self) -> None:
        """Wait for the server's FIN, then send ours."""
        while not self.ended:
            event = await self.client.event(self.stream_id)
            if not isinstance(event, DataReceived):
                raise AssertionError(f"unexpected {event!r}")
            self.ended = event.stream_ended
        self.client.h3.send_data(self.stream_id, b"", end_stream=True)
        self.client.transmit()


# -- tests ----------------------------------------------------------------------------------------


async def test_settings_enable_the_connect_protocol(
    quic: Any, ws_echo: Any, certificates: Any
) -> None:
    async with quic.running(ws_echo()) as server, quic.connect(server, Client) as h3:
        settings = await h3.settings()
    assert settings[Setting.ENABLE_CONNECT_PROTOCOL] == 1


@pytest.mark.parametrize("deflate", [False, True])
async def test_echo_text_and_binary(
    quic: Any, ws_echo: Any, certificates: Any, deflate: bool
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket("/chat?room=1", deflate=deflate)
        extensions = ws.headers.get(b"sec-websocket-extensions", b"")
        assert extensions.startswith(b"permessage-deflate") == deflate
        ws.send(TextMessage(data="héllo " * 100))
        event = await ws.receive()
        assert isinstance(event, TextMessage) and event.data == "héllo " * 100
        ws.send(BytesMessage(data=b"\x00\xff" * 50000))
        event = await ws.receive()
        assert isinstance(event, BytesMessage) and event.data == b"\x00\xff" * 50000
        ws.send(CloseConnection(code=1000))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1000
        await ws.end()
        assert (await app.disconnect())["code"] == 1000
    (scope,) = app.scopes
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "3"
    assert scope["scheme"] == "wss"
    assert scope["path"] == "/chat"
    assert scope["query_string"] == b"room=1"
    assert "method" not in scope
    assert (b"host", b"localhost") in scope["headers"]
    assert "websocket.http.response" in scope["extensions"]


async def test_subprotocol_selection(quic: Any, ws_echo: Any, certificates: Any) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket(subprotocols=["chat.v2", "chat.v1"])
        assert ws.headers[b"sec-websocket-protocol"] == b"chat.v2"
        plain = await h3.websocket()
        assert b"sec-websocket-protocol" not in plain.headers
    assert [s["subprotocols"] for s in app.scopes] == [["chat.v2", "chat.v1"], []]


async def test_app_close_code_reaches_the_client(
    quic: Any, ws_echo: Any, certificates: Any
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket()
        ws.send(TextMessage(data="!close 4001 bye now"))
        event = await ws.receive()
        assert isinstance(event, CloseConnection)
        assert (event.code, event.reason) == (4001, "bye now")
        ws.send(event.response())
        await ws.end()
        assert (await app.disconnect()) == {
            "type": "websocket.disconnect",
            "code": 4001,
            "reason": "bye now",
        }


async def test_client_close_code_reaches_the_app(
    quic: Any, ws_echo: Any, certificates: Any
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket()
        ws.send(CloseConnection(code=4002, reason="leaving"))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 4002
        await ws.end()
        message = await app.disconnect()
        assert (message["code"], message["reason"]) == (4002, "leaving")


async def test_close_before_accept_is_403(quic: Any, ws_echo: Any, certificates: Any) -> None:
    async with quic.running(ws_echo()) as server, quic.connect(server, Client) as h3:
        stream_id = h3.open(extended_connect("/refuse"))
        headers, _ = await h3.response(stream_id)
        assert headers[b":status"] == b"403"


async def test_denial_response_extension(quic: Any, ws_echo: Any, certificates: Any) -> None:
    async with quic.running(ws_echo()) as server, quic.connect(server, Client) as h3:
        stream_id = h3.open(extended_connect("/deny"))
        headers, body = await h3.response(stream_id)
        assert headers[b":status"] == b"401"
        assert headers[b"x-why"] == b"no"
        assert body == b"go away"


@pytest.mark.parametrize(
    ("protocol", "version", "status"),
    [(b"websocket", b"8", b"400"), (b"not-websocket", b"13", b"501")],
)
async def test_invalid_extended_connects_are_refused_before_the_app(
    quic: Any, ws_echo: Any, certificates: Any, protocol: bytes, version: bytes, status: bytes
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        stream_id = h3.open(
            [
                (b":method", b"CONNECT"),
                (b":protocol", protocol),
                (b":scheme", b"https"),
                (b":path", b"/"),
                (b":authority", b"localhost"),
                (b"sec-websocket-version", version),
            ]
        )
        headers, _ = await h3.response(stream_id)
        assert headers[b":status"] == status
    assert app.scopes == []


async def test_message_size_limit_closes_1009(quic: Any, ws_echo: Any, certificates: Any) -> None:
    app = ws_echo()
    async with (
        quic.running(app, ws_max_message_size=1000) as server,
        quic.connect(server, Client) as h3,
    ):
        ws = await h3.websocket()
        ws.send(BytesMessage(data=b"x" * 1000))
        event = await ws.receive()
        assert isinstance(event, BytesMessage) and len(event.data) == 1000
        ws.send(BytesMessage(data=b"x" * 1001))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1009
        await ws.end()
        assert (await app.disconnect())["code"] == 1009


async def test_a_websocket_and_a_request_share_a_connection(
    quic: Any, ws_echo: Any, certificates: Any
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket("/one")
        request = h3.open(
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":path", b"/plain"),
                (b":authority", b"localhost"),
            ],
            end=True,
        )
        ws.send(TextMessage(data="to one"))
        headers, body = await h3.response(request)
        assert (headers[b":status"], body) == (b"200", b"plain http")
        event = await ws.receive()
        assert isinstance(event, TextMessage) and event.data == "to one"
        ws.send(CloseConnection(code=1000))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1000
        await ws.end()
    assert [s["path"] for s in app.scopes] == ["/one"]


async def test_graceful_shutdown_closes_with_1001(
    quic: Any, ws_echo: Any, certificates: Any
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket()
        shutdown = asyncio.get_running_loop().create_task(server.shutdown(grace=5))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1001
        ws.send(event.response())
        assert (await app.disconnect())["code"] == 1001
        await ws.end()
        async with asyncio.timeout(GUARD):
            await shutdown
        assert not server.state.connections


async def test_client_reset_reports_1006(quic: Any, ws_echo: Any, certificates: Any) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        ws = await h3.websocket()
        h3._quic.reset_stream(ws.stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        h3.transmit()
        assert (await app.disconnect())["code"] == 1006
        event = await h3.event(ws.stream_id)  # the server resets its side too
        assert isinstance(event, StreamReset)
        assert event.error_code == ErrorCode.H3_REQUEST_CANCELLED
        after = await h3.websocket()  # the connection still serves
        after.send(TextMessage(data="still here"))
        echoed = await after.receive()
        assert isinstance(echoed, TextMessage) and echoed.data == "still here"


async def test_access_log_records_the_websocket(
    quic: Any, ws_echo: Any, certificates: Any, tmp_path: Any
) -> None:
    log = tmp_path / "access.json"
    app = ws_echo()
    async with (
        quic.running(app, access_log=str(log), access_log_format="json") as server,
        quic.connect(server, Client) as h3,
    ):
        ws = await h3.websocket("/logged")
        ws.send(CloseConnection(code=1000))
        event = await ws.receive()
        assert isinstance(event, CloseConnection)
        await ws.end()
        await app.disconnect()
    # The server has shut down: every WebSocket is over and logged.
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["status"] == 200
    assert record["http_version"] == "3"
    assert "/logged" in json.dumps(record)


async def test_plain_connect_is_still_an_http_request(
    quic: Any, ws_echo: Any, certificates: Any
) -> None:
    app = ws_echo()
    async with quic.running(app) as server, quic.connect(server, Client) as h3:
        stream_id = h3.open([(b":method", b"CONNECT"), (b":authority", b"localhost:443")], end=True)
        headers, body = await h3.response(stream_id)
        assert (headers[b":status"], body) == (b"200", b"plain http")
    assert app.scopes == []


async def test_send_waits_while_the_client_does_not_read(quic: Any, certificates: Any) -> None:
    """An app sending faster than its client reads waits in send() (bounded memory)."""
    sent: list[int] = []
    started = asyncio.Event()
    stop = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()  # the client is ready
        for number in range(64):
            await send({"type": "websocket.send", "bytes": b"y" * 16384})
            sent.append(number)
            if number == 1:
                started.set()
        stop.set()

    async with (
        quic.running(app, write_buffer_size=65536) as server,
        quic.connect(server, Client) as h3,
    ):
        ws = await h3.websocket()
        h3.held = []
        ws.send(TextMessage(data="go"))
        async with asyncio.timeout(GUARD):
            await started.wait()
        for _ in range(5):
            await asyncio.sleep(0.02)
        # No ACKs: QUIC's congestion window, then 64 KiB of write buffer, hold the app back.
        assert not stop.is_set()
        assert len(sent) <= 10
        h3.release()
        total = 0
        while total < 64 * 16384:
            event = await ws.receive()
            assert isinstance(event, BytesMessage)
            total += len(event.data)
        async with asyncio.timeout(GUARD):
            await stop.wait()


async def test_too_much_unread_input_resets_the_stream(
    quic: Any, certificates: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aioquic cannot hold a client back: past MAX_UNREAD unread bytes, the stream is reset."""
    from rws.http.server import http3

    monkeypatch.setattr(http3, "MAX_UNREAD", 200_000)
    release = asyncio.Event()
    codes: list[int] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                codes.append(message["code"])
                return

    async with (
        quic.running(app, read_buffer_size=65536) as server,
        quic.connect(server, Client) as h3,
    ):
        ws = await h3.websocket()
        for _ in range(40):
            ws.send(BytesMessage(data=b"x" * 16000))
        event = await h3.event(ws.stream_id)
        assert isinstance(event, StreamReset)
        assert event.error_code == ErrorCode.H3_REQUEST_CANCELLED
        release.set()
    assert codes == [1006]
