"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) against a real server.

The client is the h2 library (client side) for the HTTP/2 framing and wsproto's post-handshake
``Connection`` for the WebSocket frames the stream carries. Every wait is for an event and the
timeouts are only upper bounds, except where a test checks that something does *not* happen
(the server holding back a window): there it gives the server a few loop turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import client_extensions_handshake

from rws.http.server import Server
from rws.http.server.cycle import Scope

GUARD = 10.0


def extended_connect(path: str = "/", *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    """The request head of an RFC 8441 WebSocket: CONNECT with ``:protocol websocket``."""
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", b"example.test"),
        (b"sec-websocket-version", b"13"),
        *extra,
    ]


class Client:
    """One HTTP/2 connection (prior knowledge, cleartext); events are queued per stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.reader = reader
        self.writer = writer
        self.queues: dict[int, asyncio.Queue[h2.events.Event | None]] = {}
        self.settings = asyncio.Event()
        #: Whether received DATA is acknowledged (WINDOW_UPDATE) as it arrives.
        self.acknowledging = True
        self.unacknowledged: dict[int, int] = {}
        self.task = asyncio.get_running_loop().create_task(self._read())

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        self.settings.set()
                    elif isinstance(event, h2.events.WindowUpdated):
                        continue
                    elif isinstance(event, h2.events.DataReceived):
                        length = event.flow_controlled_length
                        if self.acknowledging:
                            self.conn.acknowledge_received_data(length, event.stream_id)
                        else:
                            held = self.unacknowledged.get(event.stream_id, 0)
                            self.unacknowledged[event.stream_id] = held + length
                    stream_id = getattr(event, "stream_id", 0)
                    if stream_id in self.queues:
                        self.queues[stream_id].put_nowait(event)
                self.flush()
        except h2.exceptions.ProtocolError:
            pass  # frames after a GOAWAY: h2 (client side) has closed the connection
        finally:
            for queue in self.queues.values():
                queue.put_nowait(None)

    def acknowledge(self) -> None:
        """Acknowledge what arrived meanwhile, and all DATA from now on."""
        self.acknowledging = True
        for stream_id, size in self.unacknowledged.items():
            self.conn.acknowledge_received_data(size, stream_id)
        self.unacknowledged.clear()
        self.flush()

    def open(self, headers: list[tuple[bytes, bytes]], *, end: bool = False) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.queues[stream_id] = asyncio.Queue()
        self.conn.send_headers(stream_id, headers, end_stream=end)
        self.flush()
        return stream_id

    async def event(self, stream_id: int) -> h2.events.Event | None:
        async with asyncio.timeout(GUARD):
            return await self.queues[stream_id].get()

    async def response(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes]:
        """Headers and whole body of a response that ends its stream."""
        headers: dict[bytes, bytes] = {}
        body = b""
        while True:
            event = await self.event(stream_id)
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
            elif isinstance(event, h2.events.StreamEnded):
                return headers, body
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def websocket(
        self,
        path: str = "/",
        *,
        subprotocols: Iterable[str] = (),
        deflate: bool = False,
        extra: Iterable[tuple[bytes, bytes]] = (),
    ) -> WebSocket:
        """An extended CONNECT; the server must accept it."""
        headers = extended_connect(path, *extra)
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
        assert isinstance(event, h2.events.ResponseReceived), event
        response = dict(event.headers)
        assert response[b":status"] == b"200"
        accepted = response.get(b"sec-websocket-extensions", b"").decode()
        agreed = client_extensions_handshake([accepted] if accepted else [], extensions)
        return WebSocket(self, stream_id, response, Connection(ConnectionType.CLIENT, agreed))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self.task


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
        self.client.conn.send_data(self.stream_id, self.ws.send(event))
        self.client.flush()

    def send_raw(self, event: Event) -> None:
        """Send a frame where h2 no longer would (after the server's GOAWAY)."""
        frame = DataFrame(self.stream_id, self.ws.send(event))
        self.client.writer.write(frame.serialize())

    async def receive(self) -> Event:
        """The next WebSocket event (h2 events in between are applied)."""
        while True:
            for event in self.ws.events():
                return event
            h2_event = await self.client.event(self.stream_id)
            if isinstance(h2_event, h2.events.DataReceived):
                self.ws.receive_data(h2_event.data)
            elif isinstance(h2_event, h2.events.StreamEnded):
                self.ended = True
            else:
                raise AssertionError(f"unexpected {h2_event!r}")

    async def end(self) -> None:
        """Wait for the server's END_STREAM."""
        while not self.ended:
            event = await self.client.event(self.stream_id)
            if isinstance(event, h2.events.StreamEnded):
                self.ended = True
            elif not isinstance(event, h2.events.DataReceived):
                raise AssertionError(f"unexpected {event!r}")


@contextlib.asynccontextmanager
async def client_for(server: Server) -> AsyncIterator[Client]:
    host, port = server.addresses[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    client = Client(reader, writer)
    client.conn.initiate_connection()
    client.flush()
    async with asyncio.timeout(GUARD):
        await client.settings.wait()
    try:
        yield client
    finally:
        await client.close()


# -- tests ----------------------------------------------------------------------------------------


async def test_settings_enable_the_connect_protocol(ws_echo: Any, running: Any) -> None:
    async with running(ws_echo()) as server, client_for(server) as client:
        assert client.conn.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


@pytest.mark.parametrize("deflate", [False, True])
async def test_echo_text_and_binary(ws_echo: Any, running: Any, deflate: bool) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        ws = await client.websocket("/chat?room=1", deflate=deflate)
        extensions = ws.headers.get(b"sec-websocket-extensions", b"")
        assert extensions.startswith(b"permessage-deflate") == deflate
        ws.send(TextMessage(data="héllo " * 100))
        event = await ws.receive()
        assert isinstance(event, TextMessage) and event.data == "héllo " * 100
        ws.send(BytesMessage(data=b"\x00\xff" * 5000))
        event = await ws.receive()
        assert isinstance(event, BytesMessage) and event.data == b"\x00\xff" * 5000
        ws.send(CloseConnection(code=1000))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1000
        await ws.end()
        assert (await app.disconnect())["code"] == 1000
    (scope,) = app.scopes
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat"
    assert scope["query_string"] == b"room=1"
    assert "method" not in scope
    assert (b"host", b"example.test") in scope["headers"]
    assert "websocket.http.response" in scope["extensions"]


async def test_subprotocol_selection(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        ws = await client.websocket(subprotocols=["chat.v2", "chat.v1"])
        assert ws.headers[b"sec-websocket-protocol"] == b"chat.v2"
        plain = await client.websocket()
        assert b"sec-websocket-protocol" not in plain.headers
    assert [s["subprotocols"] for s in app.scopes] == [["chat.v2", "chat.v1"], []]


async def test_app_close_code_reaches_the_client(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        ws = await client.websocket()
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


async def test_client_close_code_reaches_the_app(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        ws = await client.websocket()
        ws.send(CloseConnection(code=4002, reason="leaving"))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 4002
        await ws.end()
        message = await app.disconnect()
        assert (message["code"], message["reason"]) == (4002, "leaving")


async def test_close_before_accept_is_403(ws_echo: Any, running: Any) -> None:
    async with running(ws_echo()) as server, client_for(server) as client:
        stream_id = client.open(extended_connect("/refuse"))
        headers, _ = await client.response(stream_id)
        assert headers[b":status"] == b"403"


async def test_denial_response_extension(ws_echo: Any, running: Any) -> None:
    async with running(ws_echo()) as server, client_for(server) as client:
        stream_id = client.open(extended_connect("/deny"))
        headers, body = await client.response(stream_id)
        assert headers[b":status"] == b"401"
        assert headers[b"x-why"] == b"no"
        assert body == b"go away"


@pytest.mark.parametrize(
    ("protocol", "version", "status"),
    [(b"websocket", b"8", b"400"), (b"not-websocket", b"13", b"501")],
)
async def test_invalid_extended_connects_are_refused_before_the_app(
    ws_echo: Any, running: Any, protocol: bytes, version: bytes, status: bytes
) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        stream_id = client.open(
            [
                (b":method", b"CONNECT"),
                (b":protocol", protocol),
                (b":scheme", b"http"),
                (b":path", b"/"),
                (b":authority", b"example.test"),
                (b"sec-websocket-version", version),
            ]
        )
        headers, _ = await client.response(stream_id)
        assert headers[b":status"] == status
    assert app.scopes == []


async def test_extended_connect_is_refused_without_the_setting(
    ws_echo: Any,
    running: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rws.http.server import http2

    setup = http2.H2Protocol._setup

    def without_setting(self: http2.H2Protocol, upgrade: bytes | None) -> None:
        setup(self, upgrade)
        self.conn.local_settings.enable_connect_protocol = 0
        self.conn.local_settings.acknowledge()

    monkeypatch.setattr(http2.H2Protocol, "_setup", without_setting)
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        stream_id = client.open(extended_connect("/"))
        event = await client.event(stream_id)
        assert isinstance(event, h2.events.StreamReset)
        assert event.error_code == ErrorCodes.PROTOCOL_ERROR
    assert app.scopes == []


async def test_message_size_limit_closes_1009(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app, ws_max_message_size=1000) as server, client_for(server) as client:
        ws = await client.websocket()
        ws.send(BytesMessage(data=b"x" * 1000))
        event = await ws.receive()
        assert isinstance(event, BytesMessage) and len(event.data) == 1000
        ws.send(BytesMessage(data=b"x" * 1001))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1009
        await ws.end()
        assert (await app.disconnect())["code"] == 1009


async def test_websockets_and_a_request_share_a_connection(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        first = await client.websocket("/one")
        second = await client.websocket("/two")
        request = client.open(
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":path", b"/plain"),
                (b":authority", b"example.test"),
            ],
            end=True,
        )
        first.send(TextMessage(data="to one"))
        second.send(TextMessage(data="to two"))
        headers, body = await client.response(request)
        assert (headers[b":status"], body) == (b"200", b"plain http")
        event = await second.receive()
        assert isinstance(event, TextMessage) and event.data == "to two"
        event = await first.receive()
        assert isinstance(event, TextMessage) and event.data == "to one"
        for ws in (first, second):
            ws.send(CloseConnection(code=1000))
            event = await ws.receive()
            assert isinstance(event, CloseConnection) and event.code == 1000
            await ws.end()
    assert sorted(s["path"] for s in app.scopes) == ["/one", "/two"]


async def test_graceful_shutdown_closes_with_1001(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        ws = await client.websocket()
        shutdown = asyncio.get_running_loop().create_task(server.shutdown(grace=5))
        event = await ws.receive()
        assert isinstance(event, CloseConnection) and event.code == 1001
        # The server sent GOAWAY too, after which the h2 client sends nothing: answer raw.
        ws.send_raw(event.response())
        assert (await app.disconnect())["code"] == 1001
        async with asyncio.timeout(GUARD):
            await shutdown
        assert not server.state.connections


async def test_accepting_a_subprotocol_not_offered_is_an_app_error(
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "never-offered"})

    async with running(app) as server, client_for(server) as client:
        stream_id = client.open(extended_connect("/", (b"sec-websocket-protocol", b"chat")))
        headers, _ = await client.response(stream_id)
        assert headers[b":status"] == b"500"
    assert "invalid websocket.accept" in caplog.text


async def test_client_reset_reports_1006(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        ws = await client.websocket()
        client.conn.reset_stream(ws.stream_id, ErrorCodes.CANCEL)
        client.flush()
        assert (await app.disconnect())["code"] == 1006


async def test_received_data_is_acknowledged_as_the_app_reads(running: Any) -> None:
    """A slow app holds back the stream's window; reading opens it again."""
    release = asyncio.Event()
    received: list[int] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while len(received) < 40:
            message = await receive()
            received.append(len(message["bytes"]))
        await send({"type": "websocket.send", "text": "done"})

    async with running(app, read_buffer_size=65536) as server, client_for(server) as client:
        ws = await client.websocket()
        start = client.conn.local_flow_control_window(ws.stream_id)
        # 640 kB, more than h2's threshold for a WINDOW_UPDATE (half the 1 MiB window).
        for _ in range(40):
            ws.send(BytesMessage(data=b"x" * 16000))
        sent = client.conn.local_flow_control_window(ws.stream_id)
        assert sent < start - 40 * 16000
        for _ in range(5):
            await asyncio.sleep(0.02)
        # The server took about read_buffer_size for the app and acknowledged no more.
        assert client.conn.local_flow_control_window(ws.stream_id) == sent
        release.set()
        event = await ws.receive()
        assert isinstance(event, TextMessage) and event.data == "done"
        assert received == [16000] * 40
        assert client.conn.local_flow_control_window(ws.stream_id) > sent


async def test_send_waits_for_the_client_window(running: Any) -> None:
    """An app sending faster than its client reads waits in send() (bounded memory)."""
    sent: list[int] = []
    started = asyncio.Event()
    stop = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for number in range(64):
            await send({"type": "websocket.send", "bytes": b"y" * 16384})
            sent.append(number)
            if number == 1:
                started.set()
        stop.set()

    async with running(app, write_buffer_size=65536) as server, client_for(server) as client:
        client.acknowledging = False
        ws = await client.websocket()
        async with asyncio.timeout(GUARD):
            await started.wait()
        for _ in range(5):
            await asyncio.sleep(0.02)
        # Held back: a 64 KiB window and 64 KiB of write buffer.
        assert not stop.is_set()
        assert len(sent) <= 10
        client.acknowledge()
        total = 0
        while total < 64 * 16384:
            event = await ws.receive()
            assert isinstance(event, BytesMessage)
            total += len(event.data)
        async with asyncio.timeout(GUARD):
            await stop.wait()


async def test_plain_connect_is_still_an_http_request(ws_echo: Any, running: Any) -> None:
    app = ws_echo()
    async with running(app) as server, client_for(server) as client:
        stream_id = client.open(
            [(b":method", b"CONNECT"), (b":authority", b"example.test:443")], end=True
        )
        headers, body = await client.response(stream_id)
        assert (headers[b":status"], body) == (b"200", b"plain http")
    assert app.scopes == []
