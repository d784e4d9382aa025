"""HTTP/3: a real server on 127.0.0.1 (TCP and UDP port 0) and aioquic's own HTTP/3 client.

Certificates come from trustme. Without aioquic (the ``rws-http[h3]`` extra) the module is
skipped with the reason, or fails under ``RWS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from rws.http.server import Config, Server
from rws.http.server.config import ConfigError

try:
    import httpx
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.buffer import encode_uint_var
    from aioquic.h3.connection import FrameType, H3Connection, encode_frame
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.events import QuicEvent, StreamDataReceived, StreamReset
except ImportError as exc:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(f"test tool not installed: {exc.name}", allow_module_level=True)

Scope = dict[str, Any]
#: The server's HTTP/3 control stream (the first server-initiated unidirectional stream).
_SERVER_CONTROL_STREAM = 3


@dataclass
class Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] | None = None
    reset: int | None = None
    interim: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)


class H3Client(QuicConnectionProtocol):
    """aioquic's HTTP/3 client, as in its examples/http3_client.py, reduced to requests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, Response] = {}
        self.control = bytearray()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == _SERVER_CONTROL_STREAM:
            self.control += event.data
        if isinstance(event, StreamReset):
            response = self.responses.get(event.stream_id)
            if response is not None and not response.done.done():
                response.reset = event.error_code
                response.done.set_result(None)
        for h3_event in self.h3.handle_event(event):
            response = self.responses.get(getattr(h3_event, "stream_id", -1))
            if response is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                status = dict(h3_event.headers).get(b":status")
                if status is not None and status.startswith(b"1"):
                    response.interim.append((int(status), list(h3_event.headers[1:])))
                    continue
                if status is not None:
                    response.status = int(status)
                    response.headers = [h for h in h3_event.headers if not h[0].startswith(b":")]
                else:
                    response.trailers = list(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                response.body += h3_event.data
            if getattr(h3_event, "stream_ended", False) and not response.done.done():
                response.done.set_result(None)

    def start(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        trailers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, Response]:
        stream_id = self._quic.get_next_available_stream_id()
        response = Response()
        self.responses[stream_id] = response
        block = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            *(headers or []),
        ]
        ends = not body and not trailers
        self.h3.send_headers(stream_id, block, end_stream=ends)
        if body:
            self.h3.send_data(stream_id, body, end_stream=not trailers)
        if trailers:
            self.h3.send_headers(stream_id, trailers, end_stream=True)
        self.transmit()
        return stream_id, response

    async def request(self, method: str, path: str, **options: Any) -> Response:
        _, response = self.start(method, path, **options)
        await asyncio.wait_for(response.done, 20)
        return response


async def read_body(receive: Any) -> tuple[bytes, dict[str, Any]]:
    chunks = []
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        chunks.append(message["body"])
        if not message.get("more_body", False):
            return b"".join(chunks), message


async def text(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"x-app", b"yes")]})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    body, last = await read_body(receive)
    info = {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "headers": [[n.decode(), v.decode()] for n, v in scope["headers"]],
        "extensions": sorted(scope["extensions"]),
        "client": scope["client"][0],
        "body": body.decode(),
        "trailers": [[n.decode(), v.decode()] for n, v in last.get("trailers", [])],
    }
    await text(send, json.dumps(info).encode())


# -- requests ----------------------------------------------------------------------------------


async def test_get_scope_headers_and_body(quic: Any, certificates: Any) -> None:
    async with quic.running(echo) as server, quic.connect(server, H3Client) as h3:
        response = await h3.request("GET", "/a%20b?x=1", headers=[(b"x-test", b"42")])
    assert response.status == 200
    assert response.header(b"server") == b"rws"
    assert response.header(b"date") is not None
    assert response.header(b"x-app") == b"yes"
    assert response.header(b"alt-svc") is None  # already on HTTP/3
    info = json.loads(response.body)
    assert int(response.header(b"content-length") or b"-1") == len(response.body)
    assert info["http_version"] == "3"
    assert info["scheme"] == "https"
    assert (info["method"], info["path"], info["query"]) == ("GET", "/a b", "x=1")
    assert ["x-test", "42"] in info["headers"]
    assert ["host", "localhost"] in info["headers"]
    assert "http.response.trailers" in info["extensions"]
    assert "rws.http.body_limit" in info["extensions"]
    assert info["client"] == "127.0.0.1"


async def test_post_large_body_streams_to_the_app(quic: Any, certificates: Any) -> None:
    payload = os.urandom(5 * 1024 * 1024)
    seen: list[int] = []

    async def digest(scope: Scope, receive: Any, send: Any) -> None:
        hasher = hashlib.sha256()
        while True:
            message = await receive()
            hasher.update(message["body"])
            seen.append(len(message["body"]))
            if not message.get("more_body", False):
                break
        await text(send, hasher.hexdigest().encode())

    async with quic.running(digest) as server, quic.connect(server, H3Client) as h3:
        response = await h3.request(
            "POST",
            "/upload",
            headers=[(b"content-length", str(len(payload)).encode())],
            body=payload,
        )
    assert response.status == 200
    assert response.body.decode() == hashlib.sha256(payload).hexdigest()
    assert sum(seen) == len(payload)
    assert len(seen) > 1  # streamed, not buffered whole


async def test_large_response_body_with_back_pressure(
    quic: Any, certificates: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """drain() waits while more than write_buffer_size bytes of the stream are unsent."""
    from rws.http.server import http3

    payload = os.urandom(3 * 1024 * 1024)
    unsent_at_drain: list[int] = []
    real_unsent = http3._unsent

    def spy(quic: Any, stream_id: int) -> int:
        value = real_unsent(quic, stream_id)
        unsent_at_drain.append(value)
        return value

    monkeypatch.setattr(http3, "_unsent", spy)

    async def big(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for start in range(0, len(payload), 256 * 1024):
            chunk = payload[start : start + 256 * 1024]
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with quic.running(big) as server, quic.connect(server, H3Client) as h3:
        response = await h3.request("GET", "/big")
    assert response.status == 200
    assert bytes(response.body) == payload
    limit = Config().write_buffer_size
    assert max(unsent_at_drain) > limit  # the app had to wait at least once
    # ...and never got more than one chunk ahead of the limit.
    assert max(unsent_at_drain) <= limit + 256 * 1024 + 64


async def test_twenty_concurrent_streams(quic: Any, certificates: Any) -> None:
    arrived = 0
    everyone = asyncio.Event()

    async def gather(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 20:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), 10)  # all 20 are running at once
        await text(send, scope["path"].encode())

    async with quic.running(gather) as server, quic.connect(server, H3Client) as h3:
        responses = await asyncio.gather(*(h3.request("GET", f"/r/{i}") for i in range(20)))
    assert [r.status for r in responses] == [200] * 20
    assert [bytes(r.body) for r in responses] == [f"/r/{i}".encode() for i in range(20)]


async def test_response_and_request_trailers(quic: Any, certificates: Any) -> None:
    async def trailing(scope: Scope, receive: Any, send: Any) -> None:
        body, last = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        got = b",".join(b"%s=%s" % pair for pair in last.get("trailers", []))
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc"), (b"x-got", got)],
            }
        )

    async with quic.running(trailing) as server, quic.connect(server, H3Client) as h3:
        response = await h3.request(
            "POST", "/t", body=b"hello", trailers=[(b"x-request-trailer", b"1")]
        )
    assert response.status == 200
    assert response.body == b"hello"
    assert response.trailers is not None
    assert dict(response.trailers) == {b"x-checksum": b"abc", b"x-got": b"x-request-trailer=1"}


async def test_early_hints(quic: Any, certificates: Any) -> None:
    async def hinting(scope: Scope, receive: Any, send: Any) -> None:
        assert "http.response.early_hint" in scope["extensions"]
        await send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]})
        await text(send, b"page")

    async with quic.running(hinting) as server, quic.connect(server, H3Client) as h3:
        response = await h3.request("GET", "/")
    assert response.interim == [(103, [(b"link", b"</s.css>; rel=preload")])]
    assert (response.status, response.body) == (200, b"page")


# -- limits and errors -------------------------------------------------------------------------


async def test_body_over_max_body_size_is_413(quic: Any, certificates: Any) -> None:
    async def reader(scope: Scope, receive: Any, send: Any) -> None:
        body, _ = await read_body(receive)
        await text(send, str(len(body)).encode())

    async with (
        quic.running(reader, max_body_size=1000) as server,
        quic.connect(server, H3Client) as h3,
    ):
        declared = await h3.request(
            "POST", "/", headers=[(b"content-length", b"5000")], body=b"x" * 5000
        )
        streamed = await h3.request("POST", "/", body=b"x" * 5000)
        fine = await h3.request("POST", "/", body=b"x" * 1000)
    assert declared.status == 413
    assert declared.body == b"Request body too large"
    # Without a length the app reads part of it first; then it is 413 too (or a reset
    # if the app had already started its response, which this one does not).
    assert streamed.status == 413
    assert (fine.status, fine.body) == (200, b"1000")


async def test_too_many_headers_is_431_before_the_app(quic: Any, certificates: Any) -> None:
    called = False

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal called
        called = True
        await text(send, b"no")

    headers = [(f"x-h{i}".encode(), b"v") for i in range(20)]
    async with (
        quic.running(app, max_header_count=10) as server,
        quic.connect(server, H3Client) as h3,
    ):
        many = await h3.request("GET", "/", headers=headers)
        large = await h3.request("GET", "/", headers=[(b"x-big", b"v" * 20000)])
    assert many.status == 431
    assert large.status == 431  # over max_header_bytes (16384)
    assert not called


async def test_app_exception_is_500_and_the_server_survives(
    quic: Any, certificates: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await text(send, b"ok")

    async with quic.running(app) as server, quic.connect(server, H3Client) as h3:
        broken = await h3.request("GET", "/boom")
        after = await h3.request("GET", "/fine")
    assert broken.status == 500
    assert broken.body == b"Internal Server Error"
    assert (after.status, after.body) == (200, b"ok")
    assert "exception in ASGI application" in caplog.text


async def test_access_log_records_http3(quic: Any, certificates: Any, tmp_path: Any) -> None:
    log = tmp_path / "access.json"
    async with (
        quic.running(echo, access_log=str(log), access_log_format="json") as server,
        quic.connect(server, H3Client) as h3,
    ):
        await h3.request("GET", "/logged?q=1")
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["status"] == 200
    assert record["http_version"] == "3"
    assert "/logged?q=1" in json.dumps(record)


async def test_a_cancelled_request_is_a_disconnect_for_the_app(
    quic: Any, certificates: Any
) -> None:
    messages: list[str] = []
    finished = asyncio.Event()

    async def waiting(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/ok":
            await text(send, b"ok")
            return
        try:
            while True:
                message = await receive()
                messages.append(message["type"])
                if message["type"] == "http.disconnect":
                    return
        finally:
            finished.set()

    async with quic.running(waiting) as server, quic.connect(server, H3Client) as h3:
        stream_id = h3._quic.get_next_available_stream_id()
        h3.responses[stream_id] = Response()
        block = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", b"/"),
        ]
        h3.h3.send_headers(stream_id, block)
        h3.h3.send_data(stream_id, b"part", end_stream=False)
        h3.transmit()
        for _ in range(100):
            if messages:
                break
            await asyncio.sleep(0.02)
        h3._quic.reset_stream(stream_id, 0x10C)  # H3_REQUEST_CANCELLED
        h3._quic.stop_stream(stream_id, 0x10C)
        h3.transmit()
        await asyncio.wait_for(finished.wait(), 10)
        after = await h3.request("GET", "/ok")  # the connection still serves
    assert (after.status, after.body) == (200, b"ok")
    assert messages == ["http.request", "http.disconnect"]


async def test_connections_over_quic_max_connections_are_refused(
    quic: Any, certificates: Any
) -> None:
    async with (
        quic.running(echo, quic_max_connections=1) as server,
        quic.connect(server, H3Client) as first,
    ):
        with pytest.raises(ConnectionError):
            async with quic.connect(server, H3Client):
                pass
        response = await first.request("GET", "/")
    assert response.status == 200


# -- the TCP side ------------------------------------------------------------------------------


async def test_alt_svc_on_http11_and_http2_points_at_the_quic_port(
    quic: Any, certificates: Any
) -> None:
    _, _, context = certificates

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        own = [(b"Alt-Svc", b"clear")] if scope["path"] == "/own" else []
        await send({"type": "http.response.start", "status": 200, "headers": own})
        await send({"type": "http.response.body", "body": b"ok"})

    async with quic.running(app) as server:
        quic_port = server.quic_addresses[0].rsplit(":", 1)[1]
        async with httpx.AsyncClient(verify=context) as http:
            response = await http.get(f"https://{server.addresses[0]}/")
            own = await http.get(f"https://{server.addresses[0]}/own")
        async with httpx.AsyncClient(verify=context, http2=True) as http:
            over_h2 = await http.get(f"https://{server.addresses[0]}/")
    assert over_h2.http_version == "HTTP/2"
    assert over_h2.headers["alt-svc"] == f'h3=":{quic_port}"; ma=86400'
    assert response.http_version == "HTTP/1.1"
    assert response.headers["alt-svc"] == f'h3=":{quic_port}"; ma=86400'
    assert own.headers.get_list("alt-svc") == ["clear"]  # the app's own wins, not doubled


# -- shutdown ----------------------------------------------------------------------------------


async def test_graceful_shutdown_lets_a_request_finish(quic: Any, certificates: Any) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(scope: Scope, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.wait_for(release.wait(), 10)
        await text(send, b"finished")

    server_pem, _, _ = certificates
    config = Config(
        bind=("127.0.0.1:0",), quic_bind=("127.0.0.1:0",), certfile=server_pem, lifespan="off"
    )
    server = Server(slow, config)
    await server.start()
    try:
        async with quic.connect(server, H3Client) as h3:
            stream_id, response = h3.start("GET", "/slow")
            await asyncio.wait_for(started.wait(), 10)
            stopping = asyncio.create_task(server.shutdown(grace=10))
            await asyncio.sleep(0.2)
            assert not stopping.done()
            # GOAWAY names the first stream the client may no longer use.
            goaway = encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id + 4))
            assert bytes(h3.control).endswith(goaway)
            release.set()
            await asyncio.wait_for(response.done, 10)
            await asyncio.wait_for(stopping, 10)
            await asyncio.wait_for(h3.wait_closed(), 10)
    finally:
        await server.shutdown(grace=1)
    assert response.status == 200
    assert response.body == b"finished"
    assert server.quic_addresses  # still reported; the sockets are closed


# -- configuration -----------------------------------------------------------------------------


def test_config_quic_settings(certificates: Any) -> None:
    server_pem, _, _ = certificates
    with pytest.raises(ConfigError, match="quic_bind needs certfile"):
        Config(quic_bind=("127.0.0.1:4433",))
    with pytest.raises(ConfigError, match="quic_bind 'unix:/tmp/x' is not HOST:PORT"):
        Config(quic_bind=("unix:/tmp/x",), certfile=server_pem)
    with pytest.raises(ConfigError, match=r"quic_bind '127\.0\.0\.1' is not HOST:PORT"):
        Config(quic_bind=("127.0.0.1",), certfile=server_pem)
    with pytest.raises(ConfigError, match="quic_max_idle_timeout must be > 0"):
        Config(quic_max_idle_timeout=0)
    with pytest.raises(ConfigError, match="quic_max_connections must be > 0"):
        Config(quic_max_connections=0)
    with pytest.raises(ConfigError, match="did you mean 'quic_bind'"):
        Config.from_mapping({"quic_bnd": ["127.0.0.1:4433"]})
    config = Config.from_env(
        {
            "RWS_HTTP_QUIC_BIND": "127.0.0.1:4433, [::1]:4433",
            "RWS_HTTP_CERTFILE": server_pem,
            "RWS_HTTP_QUIC_MAX_IDLE_TIMEOUT": "12.5",
        }
    )
    assert config.quic_bind == ("127.0.0.1:4433", "[::1]:4433")
    assert config.quic_max_idle_timeout == 12.5
    assert Config().quic_bind == ()
    from rws.http.server.cli import _parser, _settings

    args = _parser().parse_args(
        ["serve", "main:app", "--quic-bind", "127.0.0.1:4433", "--certfile", server_pem]
    )
    assert _settings(args).quic_bind == ("127.0.0.1:4433",)


def test_config_quic_with_workers(certificates: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rws.http.server import config as config_module

    server_pem, _, _ = certificates
    monkeypatch.setattr(config_module, "reuse_port_balances", lambda: True)
    config = Config(quic_bind=("127.0.0.1:4433",), certfile=server_pem, workers=2)
    assert config.workers == 2
    # Where SO_REUSEPORT does not spread datagrams (macOS, BSD, Windows), it is refused.
    monkeypatch.setattr(config_module, "reuse_port_balances", lambda: False)
    with pytest.raises(ConfigError, match="quic_bind with workers > 1 needs SO_REUSEPORT") as error:
        Config(quic_bind=("127.0.0.1:4433",), certfile=server_pem, workers=2)
    assert "use one worker" in str(error.value)
    assert Config(quic_bind=("127.0.0.1:4433",), certfile=server_pem).workers == 1
    # A worker's pre-opened UDP sockets: one per quic_bind address.
    with pytest.raises(ValueError, match=r"quic_sockets has 0 socket\(s\) for 1 quic_bind"):
        Server(echo, Config(quic_bind=("127.0.0.1:4433",), certfile=server_pem), quic_sockets=[])


def test_quic_sockets_for_workers_share_one_port() -> None:
    import socket

    from rws.http.server.config import reuse_port_balances
    from rws.http.server.listeners import open_quic_sockets

    if not reuse_port_balances():
        pytest.skip("SO_REUSEPORT does not balance UDP here (Linux only)")
    slots = open_quic_sockets(["127.0.0.1:0", "127.0.0.1:0"], 3)
    try:
        assert len(slots) == 3
        assert all(len(slot) == 2 for slot in slots)
        for column in range(2):
            group = [slot[column] for slot in slots]
            assert len({sock.getsockname()[1] for sock in group}) == 1
            assert len({sock.fileno() for sock in group}) == 3
            assert all(sock.type == socket.SOCK_DGRAM for sock in group)
            assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in group)
        # Two addresses are two groups: port 0 picked a port for each.
        assert slots[0][0].getsockname()[1] != slots[0][1].getsockname()[1]
        # A port another socket holds without SO_REUSEPORT: the error names the address.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{port} \(UDP"):
                open_quic_sockets([f"127.0.0.1:{port}"], 2)
    finally:
        for slot in slots:
            for sock in slot:
                sock.close()


async def test_missing_aioquic_is_a_clear_startup_error(
    certificates: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(sys.modules):
        if name == "aioquic" or name.startswith("aioquic."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "rws.http.server.http3", raising=False)
    started = False

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal started
        started = True

    server_pem, _, _ = certificates
    config = Config(quic_bind=("127.0.0.1:0",), certfile=server_pem, bind=("127.0.0.1:0",))
    server = Server(app, config)
    with pytest.raises(ConfigError, match=r"pip install 'rws-http\[h3\]'"):
        await server.start()
    assert not started
    assert server.addresses == []
