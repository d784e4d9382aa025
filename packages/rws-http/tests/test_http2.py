"""HTTP/2 against a real server: curl, httpx, h2load, and h2 / raw-frame clients for the rest.

The raw-frame client (:class:`RawClient`) is for what well-behaved clients never send (floods,
invalid frames) and for graceful shutdown: the h2 library, as a client, drops a connection's
remaining streams once it has seen a GOAWAY, so it cannot check that they complete.
Every wait below is for an event (a frame, a response, EOF); timeouts are only upper bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from rws.http.server import Config, Server
from rws.http.server.cycle import Receive, Scope, Send
from rws.http.server.http2 import STREAM_WINDOW, H2Protocol

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# -- helpers ------------------------------------------------------------------------------------


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


async def run(*command: str, within: float = 60.0) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return process.returncode, out, err


async def read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)


async def respond(send: Send, status: int, body: bytes, headers: Iterable[Any] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """What the app saw, as JSON; ``/big/N`` answers N bytes streamed in 64 KiB chunks."""
    if scope["type"] != "http":
        return
    if scope["path"].startswith("/big/"):
        size = int(scope["path"][5:])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = bytes(range(256)) * 256
        sent = 0
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            sent += len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": sent < size})
        return
    body = await read_body(receive)
    info = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "extensions": sorted(scope.get("extensions", {})),
    }
    await respond(send, 200, json.dumps(info).encode(), [(b"content-type", b"application/json")])


def request_headers(
    path: str = "/", method: str = "GET", extra: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    return [
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        *extra,
    ]


class StreamRecord:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.informational: list[list[tuple[bytes, bytes]]] = []
        self.body = bytearray()
        self.frames: list[int] = []
        self.trailers: dict[bytes, bytes] | None = None
        self.ended = False
        self.reset: int | None = None


class Client:
    """The h2 library as a client over asyncio streams; reads only when a test waits."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: h2.connection.H2Connection,
        auto_ack: bool,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.auto_ack = auto_ack
        self.streams: dict[int, StreamRecord] = {}
        self.order: list[tuple[int, int, bool]] = []  # (stream, DATA size, END_STREAM)
        self.remote_settings: dict[int, int] = {}
        self.window_updates: list[int] = []
        self.pings = 0
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False

    @classmethod
    async def connect(
        cls,
        address: str,
        *,
        settings: dict[SettingCodes, int] | None = None,
        auto_ack: bool = True,
    ) -> Client:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if settings:
            conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        conn.initiate_connection()
        client = cls(reader, writer, conn, auto_ack)
        client.flush()
        return client

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def stream(self, stream_id: int) -> StreamRecord:
        return self.streams.setdefault(stream_id, StreamRecord())

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        extra: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        end: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.stream(stream_id)
        self.conn.send_headers(
            stream_id, request_headers(path, method, extra), end_stream=end and not body
        )
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    async def upload(self, stream_id: int, data: bytes, end: bool = True) -> None:
        view = memoryview(data)
        while view:
            window = self.conn.local_flow_control_window(stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(view))
            if size <= 0:
                await self.read()
                continue
            self.conn.send_data(stream_id, view[:size].tobytes())
            view = view[size:]
            self.flush()
        if end:
            self.conn.end_stream(stream_id)
            self.flush()

    async def read(self) -> None:
        if self.closed:
            raise AssertionError("the server closed the connection")
        try:
            data = await self.reader.read(65536)
        except ConnectionError:
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._handle(event)
        self.flush()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            record = self.stream(event.stream_id)
            record.headers = dict(event.headers)
            record.status = int(record.headers[b":status"])
        elif isinstance(event, h2.events.InformationalResponseReceived):
            self.stream(event.stream_id).informational.append(list(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            record = self.stream(event.stream_id)
            record.body += event.data
            record.frames.append(len(event.data))
            self.order.append((event.stream_id, len(event.data), event.stream_ended is not None))
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.stream(event.stream_id).trailers = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            self.stream(event.stream_id).ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.stream(event.stream_id).reset = event.error_code
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.remote_settings[int(code)] = change.new_value
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_updates.append(event.stream_id)
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings += 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not check():
                await self.read()

    async def response(self, stream_id: int) -> StreamRecord:
        record = self.stream(stream_id)
        await self.until(lambda: record.ended or record.reset is not None)
        return record

    async def ping(self) -> None:
        """A round trip: everything sent before was processed by the server."""
        expected = self.pings + 1
        self.conn.ping(b"12345678")
        self.flush()
        await self.until(lambda: self.pings >= expected)

    async def wait_closed(self) -> None:
        async with asyncio.timeout(20):
            while not self.closed:
                await self.read()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class RawClient:
    """Frames in, frames out: for floods, invalid frames and GOAWAY handling."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.headers: dict[int, list[dict[bytes, bytes]]] = {}
        self.closed = False

    @classmethod
    async def connect(cls, address: str, *, preface: bool = True) -> RawClient:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        client = cls(reader, writer)
        if preface:
            writer.write(PREFACE + SettingsFrame(0).serialize())
        return client

    def send(self, *frames: Frame) -> None:
        self.writer.write(b"".join(frame.serialize() for frame in frames))

    def block(self, path: str = "/", extra: Iterable[tuple[str, str]] = ()) -> bytes:
        return self.encoder.encode(request_headers(path, extra=extra))

    def request(self, stream_id: int, path: str = "/", *, end_stream: bool = True) -> None:
        frame = HeadersFrame(stream_id, self.block(path))
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        self.send(frame)

    async def frame(self) -> Frame | None:
        """The next frame from the server; None once it closed the connection."""
        async with asyncio.timeout(20):
            while True:
                if len(self.buffer) >= 9:
                    frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                    if len(self.buffer) >= 9 + length:
                        frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                        del self.buffer[: 9 + length]
                        self._track(frame)
                        return frame
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    data = b""
                if not data:
                    self.closed = True
                    return None
                self.buffer += data

    def _track(self, frame: Frame) -> None:
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.send(ack)
        elif isinstance(frame, HeadersFrame):
            decoded = dict(self.decoder.decode(frame.data, raw=True))
            self.headers.setdefault(frame.stream_id, []).append(decoded)

    async def until(self, check: Callable[[Frame], bool]) -> list[Frame]:
        frames: list[Frame] = []
        while True:
            frame = await self.frame()
            if frame is None:
                raise AssertionError(f"closed before the expected frame; got {frames}")
            frames.append(frame)
            if check(frame):
                return frames

    async def until_closed(self) -> list[Frame]:
        frames: list[Frame] = []
        while (frame := await self.frame()) is not None:
            frames.append(frame)
        return frames

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def goaways(frames: list[Frame]) -> list[GoAwayFrame]:
    return [frame for frame in frames if isinstance(frame, GoAwayFrame)]


# -- real clients -------------------------------------------------------------------------------


async def test_curl_prior_knowledge(running: Any, no_escaped_errors: None) -> None:
    curl = need_tool("curl")
    async with running(echo) as server:
        url = f"http://{server.addresses[0]}/a%20b?x=1"
        code, out, err = await run(
            curl, "-sS", "--http2-prior-knowledge", "-D", "-", "-w", "\n%{http_version}", url
        )
        assert code == 0, err
        head, _, rest = out.decode().partition("\r\n\r\n")
        body, _, version = rest.rpartition("\n")
        assert version == "2"
        assert head.startswith("HTTP/2 200")
        assert "server: rws" in head and "date: " in head
        info = json.loads(body)
        assert info["path"] == "/a b" and info["query"] == "x=1"
        assert info["http_version"] == "2" and info["scheme"] == "http"
        assert ["host", server.addresses[0]] in info["headers"]
        assert info["extensions"] == [
            "http.response.early_hint",
            "http.response.pathsend",
            "http.response.trailers",
            "rws.http.body_limit",
            "rws.http.request_trailers",
        ]

        upload = os.urandom(3_000_000)
        process = await asyncio.create_subprocess_exec(
            curl,
            "-sS",
            "--http2-prior-knowledge",
            "--data-binary",
            "@-",
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(upload), 60)
        assert process.returncode == 0, err
        info = json.loads(out)
        assert info["length"] == len(upload)
        assert info["sha256"] == hashlib.sha256(upload).hexdigest()

        code, out, err = await run(
            curl, "-sS", "--http2-prior-knowledge", f"http://{server.addresses[0]}/big/20000000"
        )
        assert code == 0, err
        assert len(out) == 20_000_000
        assert out[:512] == bytes(range(256)) * 2


async def test_refused_upload_over_tls_still_gets_its_answer(
    running: Any,
    certificates: tuple[str, str, ssl.SSLContext],
    no_escaped_errors: None,
    tmp_path: Path,
) -> None:
    """HTTP/1.1 over TLS: the 413 arrives although the client is still sending its body."""
    curl = need_tool("curl")
    server_pem, ca_pem, _ = certificates
    upload = tmp_path / "upload"
    upload.write_bytes(b"t" * 8_000_000)
    async with running(echo, certfile=server_pem, max_body_size=1000) as server:
        port = server.addresses[0].rsplit(":", 1)[1]
        for _ in range(3):
            code, out, err = await run(
                curl, "-sS", "--http1.1", "-H", "Expect:", "--data-binary", f"@{upload}",
                "--cacert", ca_pem, "--resolve", f"localhost:{port}:127.0.0.1",
                "-w", "\n%{http_code}", f"https://localhost:{port}/",
            )  # fmt: skip
            assert code == 0, err
            assert out.endswith(b"Request body too large\n413"), out[-200:]


async def test_curl_tls_alpn_h2_and_http11_fallback(
    running: Any, certificates: tuple[str, str, ssl.SSLContext], no_escaped_errors: None
) -> None:
    curl = need_tool("curl")
    server_pem, ca_pem, _ = certificates
    async with running(echo, certfile=server_pem) as server:
        port = server.addresses[0].rsplit(":", 1)[1]
        url = f"https://localhost:{port}/tls"
        resolve = f"localhost:{port}:127.0.0.1"
        for flag, expected in (("--http2", "2"), ("--http1.1", "1.1")):
            code, out, err = await run(
                curl,
                "-sS",
                flag,
                "--cacert",
                ca_pem,
                "--resolve",
                resolve,
                "-w",
                "\n%{http_version}",
                url,
            )
            assert code == 0, err
            body, _, version = out.decode().rpartition("\n")
            assert version == expected
            info = json.loads(body)
            assert info["http_version"] == expected and info["scheme"] == "https"


async def test_curl_h2c_upgrade(running: Any, no_escaped_errors: None) -> None:
    curl = need_tool("curl")
    async with running(echo) as server:
        url = f"http://{server.addresses[0]}/up?q=1"
        code, out, err = await run(curl, "-sS", "-v", "--http2", "-w", "\n%{http_version}", url)
        assert code == 0, err
        assert b"101 Switching Protocols" in err
        body, _, version = out.decode().rpartition("\n")
        assert version == "2"
        info = json.loads(body)
        assert info["path"] == "/up" and info["query"] == "q=1"
        assert info["http_version"] == "2" and info["method"] == "GET"
        names = {name for name, _ in info["headers"]}
        assert "host" in names
        assert not names & {"connection", "upgrade", "http2-settings"}

        # With a body the upgrade is ignored: the request is served over HTTP/1.1.
        code, out, err = await run(
            curl, "-sS", "-v", "--http2", "-d", "abc", "-w", "\n%{http_version}", url
        )
        assert code == 0, err
        assert b"101" not in err
        body, _, version = out.decode().rpartition("\n")
        assert version == "1.1"
        assert json.loads(body)["length"] == 3


async def test_h2c_upgrade_raw_then_more_streams(running: Any, no_escaped_errors: None) -> None:
    async with running(echo) as server:
        host, port = server.addresses[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        client = RawClient(reader, writer)
        # The preface follows the request in the same write: it reaches the server as the
        # bytes after the request head, which the upgrade must pass on.
        writer.write(
            b"GET /first HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            + PREFACE
            + SettingsFrame(0).serialize()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"upgrade: h2c" in head.lower()
        frames = await client.until(lambda f: isinstance(f, DataFrame) and "END_STREAM" in f.flags)
        assert client.headers[1][0][b":status"] == b"200"
        body = b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
        info = json.loads(body)
        assert info["path"] == "/first" and ["host", "example.com"] in info["headers"]
        client.request(3, "/second")
        frames = await client.until(lambda f: isinstance(f, DataFrame) and "END_STREAM" in f.flags)
        assert client.headers[3][0][b":status"] == b"200"
        body = b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == 3)
        assert json.loads(body)["path"] == "/second"
        await client.close()


async def test_h2c_upgrade_ignored_over_tls_and_with_bad_settings(
    running: Any, certificates: tuple[str, str, ssl.SSLContext], no_escaped_errors: None
) -> None:
    server_pem, ca_pem, _ = certificates
    request = (
        b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n"
    )
    async with running(echo, certfile=server_pem) as server:
        host, port = server.addresses[0].rsplit(":", 1)
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=ca_pem)
        context.set_alpn_protocols(["http/1.1"])
        reader, writer = await asyncio.open_connection(
            host, int(port), ssl=context, server_hostname="localhost"
        )
        writer.write(request % b"AAMAAABkAAQAAP__")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    async with running(echo) as server:
        host, port = server.addresses[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request % b"not*base64!")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_httpx_over_tls_and_prior_knowledge(
    running: Any, certificates: tuple[str, str, ssl.SSLContext], no_escaped_errors: None
) -> None:
    server_pem, _, client_context = certificates
    async with running(echo, certfile=server_pem) as server:
        port = server.addresses[0].rsplit(":", 1)[1]
        async with httpx.AsyncClient(http2=True, verify=client_context) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"https://localhost:{port}/n/{i}", content=b"x" * i * 1000)
                    for i in range(20)
                )
            )
        for i, response in enumerate(responses):
            assert response.http_version == "HTTP/2"
            info = response.json()
            assert info["path"] == f"/n/{i}" and info["length"] == i * 1000
            assert info["scheme"] == "https"
    async with running(echo) as server, httpx.AsyncClient(http1=False, http2=True) as client:
        response = await client.get(f"http://{server.addresses[0]}/big/3000000")
        assert response.http_version == "HTTP/2"
        assert len(response.content) == 3_000_000


async def test_h2load(running: Any, no_escaped_errors: None) -> None:
    h2load = need_tool("h2load")

    async def hello(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"Hello, world!", [(b"content-type", b"text/plain")])

    async with running(hello) as server:
        code, out, err = await run(
            h2load, "-n", "2000", "-c", "4", "-m", "10", f"http://{server.addresses[0]}/"
        )
        assert code == 0, err
        text = out.decode()
        assert re.search(r"2000 succeeded, 0 failed, 0 errored, 0 timeout", text), text
        assert "status codes: 2000 2xx" in text


async def test_starlette_app(running: Any, tmp_path: Path, no_escaped_errors: None) -> None:
    download = tmp_path / "data.bin"
    download.write_bytes(os.urandom(700_000))

    async def home(request: Request) -> JSONResponse:
        return JSONResponse(
            {"version": request.scope["http_version"], "q": request.query_params["q"]}
        )

    async def upload(request: Request) -> PlainTextResponse:
        digest = hashlib.sha256()
        async for chunk in request.stream():
            digest.update(chunk)
        return PlainTextResponse(digest.hexdigest())

    async def stream(request: Request) -> StreamingResponse:
        async def numbers() -> AsyncIterator[bytes]:
            for i in range(100):
                yield f"{i}\n".encode()

        return StreamingResponse(numbers(), media_type="text/plain")

    async def file(request: Request) -> FileResponse:
        return FileResponse(download)

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/upload", upload, methods=["POST"]),
            Route("/stream", stream),
            Route("/file", file),
        ]
    )
    async with running(app, lifespan="auto") as server:
        base = f"http://{server.addresses[0]}"
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            response = await client.get(f"{base}/?q=hi")
            assert response.json() == {"version": "2", "q": "hi"}
            data = os.urandom(2_500_000)
            response = await client.post(f"{base}/upload", content=data)
            assert response.text == hashlib.sha256(data).hexdigest()
            response = await client.get(f"{base}/stream")
            assert response.text == "".join(f"{i}\n" for i in range(100))
            response = await client.get(f"{base}/file")
            assert response.content == download.read_bytes()
            assert response.headers["content-length"] == str(700_000)
            response = await client.get(f"{base}/missing")
            assert response.status_code == 404
            assert response.http_version == "HTTP/2"


# -- protections --------------------------------------------------------------------------------


async def test_streams_beyond_the_limit_are_refused(running: Any, no_escaped_errors: None) -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await respond(send, 200, b"ok")

    async with running(app, h2_max_concurrent_streams=5) as server:
        client = await RawClient.connect(server.addresses[0])
        for i in range(8):  # sent before the server's SETTINGS could have been read
            client.request(1 + 2 * i)
        seen: list[Frame] = []

        def three_resets(frame: Frame) -> bool:
            seen.append(frame)
            return sum(isinstance(g, RstStreamFrame) for g in seen) >= 3

        frames = await client.until(three_resets)
        settings = next(f for f in frames if isinstance(f, SettingsFrame) and f.settings)
        assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 5
        resets = [f for f in frames if isinstance(f, RstStreamFrame)]
        assert {f.stream_id for f in resets} == {11, 13, 15}
        assert {f.error_code for f in resets} == {ErrorCodes.REFUSED_STREAM}
        release.set()
        done: set[int] = set()

        def five_done(frame: Frame) -> bool:
            if isinstance(frame, DataFrame) and "END_STREAM" in frame.flags:
                done.add(frame.stream_id)
            return len(done) == 5

        await client.until(five_done)
        assert done == {1, 3, 5, 7, 9}
        assert all(client.headers[i][0][b":status"] == b"200" for i in done)
        # Slots are free again: a new stream is served.
        client.request(17)
        await client.until(lambda f: isinstance(f, DataFrame) and f.stream_id == 17)
        await client.close()


async def test_rapid_reset_ends_the_connection(running: Any, no_escaped_errors: None) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)

    async with running(app, h2_max_resets=10, h2_reset_window=60) as server:
        client = await RawClient.connect(server.addresses[0])
        for i in range(30):
            client.request(1 + 2 * i, end_stream=False)
            client.send(RstStreamFrame(1 + 2 * i, error_code=ErrorCodes.CANCEL))
        frames = await client.until_closed()
        (goaway,) = goaways(frames)
        assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        await client.close()


@pytest.mark.parametrize("kind", ["many-frames", "never-ending", "too-many-bytes"])
async def test_continuation_flood(running: Any, kind: str, no_escaped_errors: None) -> None:
    async with running(echo, h2_max_continuation_frames=16, h2_max_header_list_size=8192) as server:
        client = await RawClient.connect(server.addresses[0])
        block = client.block("/", extra=[("x-a", "b" * 100)])
        client.send(HeadersFrame(1, block[:10]))  # no END_HEADERS
        if kind == "many-frames":
            for _ in range(20):
                client.send(ContinuationFrame(1, b""))
            client.send(ContinuationFrame(1, block[10:], flags=["END_HEADERS"]))
        elif kind == "never-ending":
            for _ in range(100):
                client.send(ContinuationFrame(1, b"\x00"))
        else:
            for _ in range(4):
                client.send(ContinuationFrame(1, b"\x00" * 4000))
        frames = await client.until_closed()
        (goaway,) = goaways(frames)
        assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        assert not client.headers  # the request never reached the app
        await client.close()


async def test_header_block_within_limits_in_continuation_frames(
    running: Any, no_escaped_errors: None
) -> None:
    async with running(echo) as server:
        client = await Client.connect(server.addresses[0])
        extra = [(f"x-h{i}", "v" * 1000) for i in range(40)]  # ~40 KB: HEADERS + CONTINUATIONs
        record = await client.response(client.request("/big-head", extra=extra))
        assert record.status == 200
        info = json.loads(record.body)
        assert ["x-h39", "v" * 1000] in info["headers"]
        await client.close()


@pytest.mark.parametrize("encoded", ["small", "large"])
async def test_oversized_header_list_ends_the_connection(
    running: Any, encoded: str, no_escaped_errors: None
) -> None:
    async with running(echo, h2_max_header_list_size=16384) as server:
        client = await RawClient.connect(server.addresses[0])
        if encoded == "small":
            # The same field 30 times: HPACK sends it once, then as a one-byte index, so the
            # block is small and only decoding finds 30 KB of fields.
            extra = [("x-big", "a" * 1000)] * 30
        else:
            extra = [(f"x-big{i}", os.urandom(500).hex()) for i in range(30)]
        block = client.block("/", extra=extra)
        assert (len(block) < 16384) == (encoded == "small")
        frames: list[Frame] = [HeadersFrame(1, block[:16000])]
        for offset in range(16000, len(block), 16000):
            frames.append(ContinuationFrame(1, block[offset : offset + 16000]))
        frames[-1].flags.add("END_HEADERS")
        client.send(*frames)
        (goaway,) = goaways(await client.until_closed())
        assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        await client.close()


async def test_too_many_header_fields_is_431_on_the_stream(
    running: Any, no_escaped_errors: None
) -> None:
    async with running(echo, max_header_count=50) as server:
        client = await Client.connect(server.addresses[0])
        extra = [(f"x-h{i}", "v") for i in range(60)]
        record = await client.response(client.request("/", extra=extra))
        assert record.status == 431
        assert record.body == b"Too many header fields"
        record = await client.response(client.request("/again"))
        assert record.status == 200
        await client.close()


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


INVALID = {
    "data-on-stream-0": (_frame(0x0, 0x1, 0, b"x"), ErrorCodes.PROTOCOL_ERROR),
    "window-update-zero": (_frame(0x8, 0, 0, b"\x00\x00\x00\x00"), ErrorCodes.PROTOCOL_ERROR),
    "frame-too-large": (_frame(0x0, 0, 1, b"x" * 20000), ErrorCodes.FRAME_SIZE_ERROR),
    "headers-on-even-stream": (None, ErrorCodes.PROTOCOL_ERROR),
    "bad-initial-window": (
        _frame(0x4, 0, 0, b"\x00\x04\x80\x00\x00\x00"),
        ErrorCodes.FLOW_CONTROL_ERROR,
    ),
    "short-ping": (_frame(0x6, 0, 0, b"1234"), ErrorCodes.FRAME_SIZE_ERROR),
    "naked-continuation": (_frame(0x9, 0x4, 1, b"\x82"), ErrorCodes.PROTOCOL_ERROR),
    "uppercase-header": (None, ErrorCodes.PROTOCOL_ERROR),
    "content-length-mismatch": (None, ErrorCodes.PROTOCOL_ERROR),
    "garbage-hpack": (
        _frame(0x1, 0x5, 1, b"\xff\xff\xff\xff\xff\xff"),
        ErrorCodes.COMPRESSION_ERROR,
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_frames_get_goaway(running: Any, case: str, no_escaped_errors: None) -> None:
    payload, code = INVALID[case]
    async with running(echo) as server:
        client = await RawClient.connect(server.addresses[0])
        if case == "headers-on-even-stream":
            client.request(2)
        elif case == "uppercase-header":
            block = client.encoder.encode([*request_headers(), ("X-Upper", "1")])
            client.send(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]))
        elif case == "content-length-mismatch":
            block = client.encoder.encode(
                request_headers(method="POST", extra=[("content-length", "10")])
            )
            client.send(
                HeadersFrame(1, block, flags=["END_HEADERS"]),
                DataFrame(1, b"12345", flags=["END_STREAM"]),
            )
        else:
            assert payload is not None
            client.writer.write(payload)
        frames = await client.until_closed()
        assert [g.error_code for g in goaways(frames)] == [code]
        await client.close()


async def test_bad_preface_after_the_switch(running: Any, no_escaped_errors: None) -> None:
    async with running(echo) as server:
        client = await RawClient.connect(server.addresses[0], preface=False)
        client.writer.write(PREFACE[:16])
        # The server's SETTINGS show that it switched to HTTP/2 on those bytes.
        await client.until(lambda f: isinstance(f, SettingsFrame))
        client.writer.write(b"XX\r\n\r\n" + SettingsFrame(0).serialize())
        frames = await client.until_closed()
        assert [g.error_code for g in goaways(frames)] == [ErrorCodes.PROTOCOL_ERROR]
        await client.close()


async def test_preface_and_header_block_timeouts(running: Any, no_escaped_errors: None) -> None:
    async with running(echo, header_timeout=0.2, keep_alive_timeout=30) as server:
        client = await RawClient.connect(server.addresses[0], preface=False)
        client.writer.write(PREFACE[:16])  # and then nothing
        frames = await client.until_closed()
        assert any(isinstance(f, SettingsFrame) for f in frames)
        await client.close()

        client = await RawClient.connect(server.addresses[0])
        client.send(HeadersFrame(1, client.block()[:5]))  # a header block never finished
        frames = await client.until_closed()
        assert [g.error_code for g in goaways(frames)] == [ErrorCodes.PROTOCOL_ERROR]
        await client.close()


async def test_idle_connection_gets_goaway(running: Any, no_escaped_errors: None) -> None:
    async with running(echo, keep_alive_timeout=0.2) as server:
        client = await Client.connect(server.addresses[0])
        record = await client.response(client.request("/"))
        assert record.status == 200
        await client.wait_closed()
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCodes.NO_ERROR
        assert client.goaway.last_stream_id == 1
        await client.close()


async def test_request_body_limit(running: Any, no_escaped_errors: None) -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])
        if scope["path"] == "/started":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
        body = await read_body(receive)
        if scope["path"] == "/started":
            await send({"type": "http.response.body", "body": b"never"})
            return
        await respond(send, 200, str(len(body)).encode())

    async with running(app, max_body_size=1000) as server:
        client = await Client.connect(server.addresses[0])
        # Announced too large: refused when the app asks for the body, before a byte of it
        # is taken (the app could have raised its limit first).
        sid = client.request("/announced", "POST", [("content-length", "5000")], end=False)
        record = await client.response(sid)
        assert record.status == 413 and record.body == b"Request body too large"
        # Found too large while reading: 413, the app sees a disconnect.
        sid = client.request("/streamed", "POST", end=False)
        await client.upload(sid, b"x" * 600, end=False)
        await client.upload(sid, b"x" * 600, end=False)
        record = await client.response(sid)
        assert record.status == 413
        # The response had started: the stream is reset.
        sid = client.request("/started", "POST", end=False)
        await client.until(lambda: client.stream(sid).status == 200)
        await client.upload(sid, b"x" * 1200, end=False)
        record = await client.response(sid)
        assert record.reset == ErrorCodes.CANCEL
        assert bytes(record.body) == b"first"
        # Within the limit: served.
        record = await client.response(client.request("/fine", "POST", body=b"y" * 1000))
        assert record.status == 200 and record.body == b"1000"
        await client.close()


async def test_request_trailers_reach_the_app(running: Any, no_escaped_errors: None) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "rws.http.request_trailers" in scope["extensions"]
        body, last = b"", {}
        while True:
            last = await receive()
            body += last.get("body", b"")
            if not last.get("more_body"):
                break
        trailers = [[n.decode(), v.decode()] for n, v in last.get("trailers", [])]
        await respond(send, 200, json.dumps([body.decode(), trailers]).encode())

    async with running(app, max_header_count=5) as server:
        client = await Client.connect(server.addresses[0])
        sid = client.request("/", "POST", [("te", "trailers")], body=b"payload", end=False)
        client.conn.send_headers(sid, [("x-checksum", "abc")], end_stream=True)
        client.flush()
        record = await client.response(sid)
        assert json.loads(bytes(record.body)) == ["payload", [["x-checksum", "abc"]]]
        # No trailers: no key.
        record = await client.response(client.request("/", "POST", body=b"plain"))
        assert json.loads(bytes(record.body)) == ["plain", []]
        # More trailer fields than max_header_count: the stream is reset.
        sid = client.request("/", "POST", body=b"x", end=False)
        client.conn.send_headers(sid, [(f"x-{i}", "v") for i in range(6)], end_stream=True)
        client.flush()
        record = await client.response(sid)
        assert record.reset == ErrorCodes.PROTOCOL_ERROR
        await client.close()


async def test_app_sets_its_own_body_limit_per_route(running: Any, no_escaped_errors: None) -> None:
    """The ``rws.http.body_limit`` extension works over HTTP/2 as over HTTP/1.1."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["extensions"]["rws.http.body_limit"] == {"max_body_size": 1000}
        if scope["path"] == "/upload":
            await send({"type": "rws.http.body_limit", "max_body_size": 200_000})
        body = await read_body(receive)
        await respond(send, 200, str(len(body)).encode())

    async with running(app, max_body_size=1000) as server:
        client = await Client.connect(server.addresses[0])
        for path, size, status in (
            ("/upload", 150_000, 200),
            ("/upload", 200_001, 413),
            ("/", 1001, 413),
            ("/", 1000, 200),
        ):
            for announced in (True, False):
                extra = [("content-length", str(size))] if announced else []
                sid = client.request(path, "POST", extra, end=False)
                await client.upload(sid, b"u" * size)
                record = await client.response(sid)
                assert record.status == status, (path, size, announced)
                if status == 200:
                    assert bytes(record.body) == str(size).encode()
        # Refused bodies gave their flow-control credit back: the connection still carries
        # a body larger than the initial 64 KiB window.
        sid = client.request("/upload", "POST", end=False)
        await client.upload(sid, b"v" * 100_000)
        assert (await client.response(sid)).status == 200
        await client.close()


# -- flow control -------------------------------------------------------------------------------


async def test_client_with_tiny_window_gets_large_body(
    running: Any, no_escaped_errors: None
) -> None:
    async with running(echo) as server:
        client = await Client.connect(
            server.addresses[0], settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000}
        )
        record = await client.response(client.request("/big/300000"))
        assert record.status == 200
        assert len(record.body) == 300_000
        assert bytes(record.body) == (bytes(range(256)) * 256 * 5)[:300_000]
        assert max(record.frames) <= 1000
        await client.close()

        client = await Client.connect(server.addresses[0])
        record = await client.response(client.request("/big/5000000"))
        assert len(record.body) == 5_000_000
        assert max(record.frames) <= 16384  # the client's SETTINGS_MAX_FRAME_SIZE
        await client.close()


async def test_slow_app_back_pressures_a_large_upload(
    running: Any, no_escaped_errors: None
) -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        body = await read_body(receive)
        await respond(send, 200, hashlib.sha256(body).hexdigest().encode())

    data = os.urandom(6 * 1024 * 1024)
    async with running(app) as server:
        client = await Client.connect(server.addresses[0])
        await client.until(lambda: SettingCodes.INITIAL_WINDOW_SIZE in client.remote_settings)
        sid = client.request("/upload", "POST", end=False)
        sent = 0
        while (window := client.conn.local_flow_control_window(sid)) > 0:
            size = min(window, client.conn.max_outbound_frame_size)
            client.conn.send_data(sid, data[sent : sent + size])
            sent += size
            client.flush()
        assert sent == STREAM_WINDOW
        # Whatever the server would do about those bytes, it has done by the PING's answer.
        await client.ping()
        assert client.conn.local_flow_control_window(sid) == 0
        assert sid not in client.window_updates
        release.set()
        await client.upload(sid, data[sent:])
        record = await client.response(sid)
        assert record.status == 200
        assert record.body.decode() == hashlib.sha256(data).hexdigest()
        await client.close()


async def test_concurrent_streams_interleave(running: Any, no_escaped_errors: None) -> None:
    count = 10
    barrier = asyncio.Barrier(count)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in range(3):
            await barrier.wait()  # every stream sends part n before any sends part n + 1
            body = f"{scope['path']}:{part};".encode()
            await send({"type": "http.response.body", "body": body, "more_body": part < 2})

    async with running(app) as server:
        client = await Client.connect(server.addresses[0])
        ids = [client.request(f"/s{i}") for i in range(count)]
        for sid in ids:
            await client.response(sid)
        for i, sid in enumerate(ids):
            assert client.streams[sid].body.decode() == "".join(f"/s{i}:{p};" for p in range(3))
        first_end = next(n for n, (_, _, end) in enumerate(client.order) if end)
        assert {sid for sid, _, _ in client.order[:first_end]} == set(ids)
        await client.close()


async def test_connection_window_is_shared_fairly(running: Any, no_escaped_errors: None) -> None:
    size = 300_000

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, scope["path"].encode()[-1:] * size)

    async with running(app) as server:
        client = await Client.connect(server.addresses[0])  # 64 KiB windows (h2's default)
        ids = [client.request(f"/{name}") for name in "abc"]
        for sid in ids:
            record = await client.response(sid)
            assert len(record.body) == size
        first_end = next(n for n, (_, _, end) in enumerate(client.order) if end)
        # Every stream got data before any finished, and well before: no stream waited
        # for another to finish.
        assert {sid for sid, _, _ in client.order[:first_end]} == set(ids)
        before = [sum(n for sid2, n, _ in client.order[:first_end] if sid2 == sid) for sid in ids]
        assert min(before) >= size // 3, before
        await client.close()


# -- HTTP semantics -------------------------------------------------------------------------------


async def test_trailers_both_ways(running: Any, no_escaped_errors: None) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"trailer", b"x-digest")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": body[:3], "more_body": True})
        await send({"type": "http.response.body", "body": body[3:], "more_body": False})
        digest = hashlib.sha256(body).hexdigest().encode()
        await send({"type": "http.response.trailers", "headers": [(b"x-digest", digest)]})

    async with running(app) as server:
        client = await Client.connect(server.addresses[0])
        sid = client.request("/", "POST", body=b"hello world", end=False)
        client.conn.send_headers(sid, [("x-request-trailer", "yes")], end_stream=True)
        client.flush()
        record = await client.response(sid)
        assert record.status == 200
        assert bytes(record.body) == b"hello world"
        assert record.trailers == {b"x-digest": hashlib.sha256(b"hello world").hexdigest().encode()}
        await client.close()


async def test_head_204_304_and_headers(running: Any, no_escaped_errors: None) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        status = int(scope["path"][1:]) if scope["path"][1:].isdigit() else 200
        headers = [
            (b"Content-Type", b"text/plain"),
            (b"connection", b"keep-alive"),
            (b"x-spaced", b"  value  "),
        ]
        if scope["path"] == "/te":
            headers.append((b"transfer-encoding", b"chunked"))
        if scope["path"] == "/own-server":
            headers.append((b"server", b"mine"))
        await respond(send, status, b"body!", headers)

    async with running(app) as server, httpx.AsyncClient(http1=False, http2=True) as client:
        base = f"http://{server.addresses[0]}"
        response = await client.head(f"{base}/")
        assert response.status_code == 200 and response.content == b""
        response = await client.get(f"{base}/")
        assert response.content == b"body!"
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["content-length"] == "5"
        assert response.headers["x-spaced"] == "value"
        assert "connection" not in response.headers
        response = await client.get(f"{base}/te")
        assert response.content == b"body!"
        assert "transfer-encoding" not in response.headers
        assert response.headers["server"] == "rws"
        response = await client.get(f"{base}/own-server")
        assert response.headers.get_list("server") == ["mine"]
        for status in (204, 304):
            response = await client.get(f"{base}/{status}")
            assert response.status_code == status and response.content == b""


async def test_app_errors(running: Any, no_escaped_errors: None) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/raise":
            raise ValueError("boom")
        if scope["path"] == "/bad-header":
            await respond(send, 200, b"x", [(b"bad header", b"v")])
            return
        if scope["path"] == "/bad-value":
            await respond(send, 200, b"x", [(b"x-a", b"line\r\nbreak")])
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("after start")

    async with running(app) as server:
        client = await Client.connect(server.addresses[0])
        for path in ("/raise", "/bad-header", "/bad-value"):
            record = await client.response(client.request(path))
            assert record.status == 500, path
            assert record.body == b"Internal Server Error"
        record = await client.response(client.request("/after-start"))
        assert record.reset == ErrorCodes.INTERNAL_ERROR
        assert record.body == b"partial"
        # The connection (and its HPACK state) is fine.
        record = await client.response(client.request("/raise"))
        assert record.status == 500
        await client.close()


async def test_pseudo_headers_cookies_and_host(running: Any, no_escaped_errors: None) -> None:
    async with running(echo) as server:
        client = await Client.connect(server.addresses[0])
        sid = client.request(
            "/p?x=%20", "OPTIONS", [("cookie", "a=1"), ("cookie", "b=2"), ("x-b", "c")]
        )
        info = json.loads((await client.response(sid)).body)
        assert info["method"] == "OPTIONS" and info["path"] == "/p" and info["query"] == "x=%20"
        headers = info["headers"]
        assert headers[0] == ["host", "localhost"]
        assert ["cookie", "a=1; b=2"] in headers
        assert not [name for name, _ in headers if name.startswith(":")]
        await client.close()


async def test_informational_response(running: Any, no_escaped_errors: None) -> None:
    servers: list[Server] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # ASGI has no message for 1xx; reach the stream's sink the way a protocol would.
        (protocol,) = [c for c in servers[0].state.connections if isinstance(c, H2Protocol)]
        (stream,) = [s for s in protocol.streams.values() if s.cycle.scope is scope]
        stream.send_informational(103, [(b"link", b"</style.css>; rel=preload")])
        await respond(send, 200, b"done")

    async with running(app) as server:
        servers.append(server)
        client = await Client.connect(server.addresses[0])
        record = await client.response(client.request("/"))
        assert record.informational == [
            [(b":status", b"103"), (b"link", b"</style.css>; rel=preload")]
        ]
        assert record.status == 200 and record.body == b"done"
        await client.close()


async def test_access_log(running: Any, tmp_path: Path, no_escaped_errors: None) -> None:
    log = tmp_path / "access.log"
    async with running(echo, access_log=str(log), access_log_format="json") as server:
        client = await Client.connect(server.addresses[0])
        await client.response(client.request("/logged?a=1", extra=[("user-agent", "test/1")]))
        await client.close()
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert record["http_version"] == "2" and record["target"] == "/logged?a=1"
    assert record["status"] == 200 and record["user_agent"] == "test/1"
    assert record["host"] == "localhost"


# -- shutdown -----------------------------------------------------------------------------------


async def test_graceful_shutdown_lets_streams_finish(no_escaped_errors: None) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await release.wait()
        await respond(send, 200, b"finished")

    server = Server(app, Config(bind=("127.0.0.1:0",), lifespan="off"))
    await server.start()
    client = await RawClient.connect(server.addresses[0])
    client.request(1)
    await started.wait()
    stopping = asyncio.create_task(server.shutdown(grace=10))
    (goaway,) = goaways(await client.until(lambda f: isinstance(f, GoAwayFrame)))
    assert goaway.error_code == ErrorCodes.NO_ERROR and goaway.last_stream_id == 1
    client.request(3)  # after GOAWAY: refused, never processed
    (reset,) = [
        f
        for f in await client.until(lambda f: isinstance(f, RstStreamFrame))
        if isinstance(f, RstStreamFrame)
    ]
    assert reset.stream_id == 3 and reset.error_code == ErrorCodes.REFUSED_STREAM
    release.set()
    frames = await client.until_closed()
    assert client.headers[1][0][b":status"] == b"200"
    assert b"".join(f.data for f in frames if isinstance(f, DataFrame)) == b"finished"
    await asyncio.wait_for(stopping, 10)
    await client.close()


async def test_max_requests_per_connection(running: Any, no_escaped_errors: None) -> None:
    async with running(echo, max_requests_per_connection=2) as server:
        client = await RawClient.connect(server.addresses[0])
        client.request(1)
        client.request(3)
        frames = await client.until_closed()
        assert [g.last_stream_id for g in goaways(frames)] == [3]
        ended = {
            f.stream_id for f in frames if isinstance(f, DataFrame) and "END_STREAM" in f.flags
        }
        assert ended == {1, 3}
        await client.close()


async def test_client_ping_and_window_update_frames_are_answered(
    running: Any, no_escaped_errors: None
) -> None:
    async with running(echo) as server:
        client = await RawClient.connect(server.addresses[0])
        client.send(PingFrame(0, b"abcdefgh"), WindowUpdateFrame(0, window_increment=1000))
        frames = await client.until(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags)
        last = frames[-1]
        assert isinstance(last, PingFrame) and last.opaque_data == b"abcdefgh"
        await client.close()


async def test_shutdown_grace_over_aborts_running_streams(no_escaped_errors: None) -> None:
    seen: list[str] = []
    started = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tick", "more_body": True})
        started.set()
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        seen.append(message["type"])

    server = Server(app, Config(bind=("127.0.0.1:0",), lifespan="off"))
    await server.start()
    client = await RawClient.connect(server.addresses[0])
    client.request(1)
    await started.wait()
    await server.shutdown(grace=0.1)  # the app never finishes on its own
    frames = await client.until_closed()
    assert [g.error_code for g in goaways(frames)] == [ErrorCodes.NO_ERROR]
    assert seen == ["http.disconnect"]
    await client.close()


async def test_head_goes_out_before_a_delayed_body(running: Any, no_escaped_errors: None) -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()  # e.g. server-sent events: nothing to say yet
        await send({"type": "http.response.body", "body": b"event"})

    async with running(app) as server:
        client = await Client.connect(server.addresses[0])
        sid = client.request("/events")
        await client.until(lambda: client.stream(sid).status == 200)
        assert not client.stream(sid).body
        release.set()
        record = await client.response(sid)
        assert record.body == b"event"
        await client.close()


async def test_early_hints_on_http2(running: Any, no_escaped_errors: None) -> None:
    release = asyncio.Event()
    link = b"</style.css>; rel=preload; as=style"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "http.response.early_hint" in scope["extensions"]
        await send({"type": "http.response.early_hint", "links": [link]})
        await release.wait()
        await send({"type": "http.response.early_hint", "headers": [(b"X-Hint", b"2")]})
        if scope["path"] == "/late":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.early_hint", "links": [link]})
        await respond(send, 200, b"done")

    async with running(app) as server:
        client = await Client.connect(server.addresses[0])
        sid = client.request("/")
        # The first hint is on the wire while the app still waits.
        await client.until(lambda: bool(client.stream(sid).informational))
        assert client.stream(sid).informational == [[(b":status", b"103"), (b"link", link)]]
        assert client.stream(sid).status == 0
        release.set()
        record = await client.response(sid)
        assert record.informational == [
            [(b":status", b"103"), (b"link", link)],
            [(b":status", b"103"), (b"x-hint", b"2")],
        ]
        assert record.status == 200 and record.body == b"done"
        # After http.response.start it is an app error: a 500, and the connection lives on.
        record = await client.response(client.request("/late"))
        assert record.status == 500 and len(record.informational) == 2
        await client.close()

        curl = need_tool("curl")
        code, out, err = await run(
            curl, "-sS", "-i", "--http2-prior-knowledge", f"http://{server.addresses[0]}/"
        )
        assert code == 0, err
        assert out.startswith(b"HTTP/2 103 \r\nlink: " + link + b"\r\n\r\nHTTP/2 103 ")
        assert b"\r\n\r\nHTTP/2 200 \r\n" in out and out.endswith(b"done")
