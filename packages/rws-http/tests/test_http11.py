"""HTTP/1.1 and 1.0 behaviour against a real server, with curl, httpx and raw sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import h11
import httpx
import pytest

from rws.http.server import Config, ConfigError, Server

Scope = dict[str, Any]


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Answers with what it saw: method, path, query, headers and the body length."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    info = {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "http_version": scope["http_version"],
        "root_path": scope["root_path"],
        "host": dict(scope["headers"]).get(b"host", b"").decode(),
        "length": len(body),
        "client": list(scope["client"]) if scope["client"] else None,
        "state": scope["state"],
    }
    payload = json.dumps(info).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def test_get_with_httpx(serve: Any) -> None:
    address = await serve(echo)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/a%20b/c?x=1&y=%20")
    assert response.status_code == 200
    assert response.reason_phrase == "OK"
    assert response.headers["server"] == "rws"
    assert "date" in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    info = response.json()
    assert info["path"] == "/a b/c"
    assert info["raw_path"] == "/a%20b/c"
    assert info["query"] == "x=1&y=%20"
    assert info["http_version"] == "1.1"
    assert info["client"][0] == "127.0.0.1"


async def test_curl_post_and_chunked_upload(serve: Any, helpers: Any) -> None:
    curl = helpers.need_tool("curl")
    address = await serve(echo)
    body = b"x" * 300_000
    code, out, err = await helpers.run(
        curl, "-sS", "--data-binary", "@-", f"http://{address}/up", input=body
    )
    assert code == 0, err
    assert json.loads(out)["length"] == 300_000
    code, out, err = await helpers.run(
        curl,
        "-sS",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "@-",
        f"http://{address}/chunked",
        input=body,
    )
    assert code == 0, err
    assert json.loads(out)["length"] == 300_000


async def test_keep_alive_and_pipelining_in_order(serve: Any) -> None:
    address = await serve(echo)
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    requests = (
        b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
        + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    writer.write(requests)
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    paths = [m.decode() for m in re.findall(rb'"path": "([^"]*)"', data)]
    assert data.count(b"HTTP/1.1 200 OK") == 6
    assert paths == ["/0", "/1", "/2", "/3", "/4", "/last"]


async def streaming(scope: Scope, receive: Any, send: Any) -> None:
    """Streams its response, with trailers when asked."""
    trailers = scope["path"] == "/trailers"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"trailer", b"x-checksum")] if trailers else [],
            "trailers": trailers,
        }
    )
    for i in range(3):
        await send({"type": "http.response.body", "body": b"chunk%d;" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": trailers})
    if trailers:
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})


async def test_streamed_response_is_chunked_and_single_shot_has_length(
    serve: Any, helpers: Any
) -> None:
    address = await serve(streaming)
    raw = await helpers.exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"7\r\nchunk0;\r\n7\r\nchunk1;\r\n7\r\nchunk2;\r\n0\r\n\r\n"


async def test_trailers_on_http11(serve: Any, helpers: Any) -> None:
    address = await serve(streaming)
    raw = await helpers.exchange(
        address, b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n"
    )
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/trailers", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    events = []
    while (event := client.next_event()) is not h11.NEED_DATA:
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    end = events[-1]
    assert isinstance(end, h11.EndOfMessage)
    assert list(end.headers) == [(b"x-checksum", b"abc")]
    body = b"".join(e.data for e in events if isinstance(e, h11.Data))
    assert body == b"chunk0;chunk1;chunk2;"


async def test_request_body_streams_as_it_arrives(serve: Any) -> None:
    """The app answers after the first chunk, before the client has sent the rest."""

    async def first_chunk(scope: Scope, receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {
                "type": "http.response.body",
                "body": b"got %d" % len(message["body"]),
                "more_body": True,
            }
        )
        rest = await read_body(receive)
        await send({"type": "http.response.body", "body": b" then %d" % len(rest)})

    address = await serve(first_chunk)
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"got 5"), 10)
    assert head.startswith(b"HTTP/1.1 200 OK")
    writer.write(b"3\r\nabc\r\n0\r\n\r\n")
    await writer.drain()
    rest = await asyncio.wait_for(reader.readuntil(b"then 3"), 10)
    assert rest.endswith(b"then 3")
    writer.close()


async def test_slow_client_back_pressure_bounds_buffering(serve: Any) -> None:
    """A client that does not read stops the app's send() instead of filling memory."""
    sent = 0
    chunk = b"x" * 65536

    async def firehose(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal sent
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(2000):  # 128 MiB if nothing pushed back
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        await send({"type": "http.response.body", "body": b""})

    address = await serve(firehose, write_buffer_size=65536)
    host, port = address.split(":")
    _reader, writer = await asyncio.open_connection(host, int(port), limit=1024)
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    # Let the server run until it is blocked by back-pressure.
    previous = -1
    while previous != sent:
        previous = sent
        await asyncio.sleep(0.2)
    assert sent < 32 * 1024 * 1024, f"server buffered {sent} bytes for a client that reads none"
    writer.close()


async def test_head_keeps_length_and_sends_no_body(serve: Any, helpers: Any) -> None:
    address = await serve(echo)
    raw = await helpers.exchange(
        address, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b""


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses(serve: Any, helpers: Any, status: int) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"must not be sent"})

    address = await serve(app)
    raw = await helpers.exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status)
    assert body == b""
    assert b"content-length" not in head.lower()


async def test_expect_100_continue_only_when_app_reads(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/reject":
            await send({"type": "http.response.start", "status": 403, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
            return
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    address = await serve(app)
    host, port = address.split(":")
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"

    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head % b"/reject")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert first.startswith(b"HTTP/1.1 403")
    writer.close()

    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head % b"/read")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"data")
    final = await asyncio.wait_for(reader.readuntil(b"data"), 10)
    assert final.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def test_http10_request(serve: Any, helpers: Any) -> None:
    address = await serve(echo)
    raw = await helpers.exchange(address, b"GET /old HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(body)["http_version"] == "1.0"


async def test_absolute_form_target(serve: Any, helpers: Any) -> None:
    address = await serve(echo)
    raw = await helpers.exchange(
        address,
        b"GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    )
    info = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert (info["path"], info["query"], info["host"]) == ("/p/q", "x=1", "example.com:8080")


async def test_root_path_is_part_of_path(serve: Any) -> None:
    address = await serve(echo, root_path="/api")
    async with httpx.AsyncClient() as client:
        info = (await client.get(f"http://{address}/items")).json()
    assert (info["root_path"], info["path"]) == ("/api", "/api/items")


# -- limits and hostile input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(101))
            + b"\r\n",
            431,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/2.7\r\nHost: x\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
    ],
    ids=[
        "long-line",
        "big-head",
        "header-count",
        "cl-and-te",
        "two-cl",
        "bad-chunk",
        "obs-fold",
        "bare-lf",
        "mixed-lf",
        "no-host",
        "garbage",
        "version",
        "cl-too-big",
    ],
)
async def test_bad_requests_get_an_error_and_a_closed_connection(
    serve: Any, helpers: Any, request_bytes: bytes, status: int
) -> None:
    called = False

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal called
        called = called or scope["type"] == "http"
        await echo(scope, receive, send)

    address = await serve(app, max_body_size=1_000_000)
    raw = await helpers.exchange(address, request_bytes)
    assert raw.startswith(b"HTTP/1.1 %d " % status), raw[:200]
    assert b"connection: close" in raw.lower()
    # A bad chunk is only found after the (valid) head started the app; a body announced too
    # large is refused when the app asks for it (the app may raise the limit first).
    assert called == ((status == 400 and b"zz" in request_bytes) or status == 413)


async def test_chunked_body_over_limit_is_cut_mid_stream(serve: Any, helpers: Any) -> None:
    seen = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break

    address = await serve(app, max_body_size=10_000)
    chunk = b"1000\r\n" + b"z" * 4096 + b"\r\n"
    raw = await helpers.exchange(
        address,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 5
        + b"0\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert seen[-1] == "http.disconnect"


# -- request trailers (the rws.http.request_trailers extension) ---------------------------------


async def trailer_echo(scope: Scope, receive: Any, send: Any) -> None:
    assert "rws.http.request_trailers" in scope["extensions"]
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if not message.get("more_body"):
            break
    trailers = [[n.decode(), v.decode()] for n, v in messages[-1].get("trailers", [])]
    body = b"".join(m.get("body", b"") for m in messages).decode()
    payload = json.dumps({"body": body, "trailers": trailers}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


async def test_chunked_request_trailers_reach_the_app(serve: Any, helpers: Any) -> None:
    address = await serve(trailer_echo)
    raw = await helpers.exchange(
        address,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Count: 2\r\n\r\n"
        # and, on the same connection, a body without trailers: no "trailers" key
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )
    first, second = re.findall(rb"\{.*?\}(?=HTTP|$)", raw)
    assert json.loads(first) == {
        "body": "hello world",
        "trailers": [["x-checksum", "abc"], ["x-count", "2"]],
    }
    assert json.loads(second) == {"body": "ok", "trailers": []}


async def test_too_many_request_trailers_are_refused(serve: Any, helpers: Any) -> None:
    address = await serve(trailer_echo, max_header_count=3)
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(4))
    raw = await helpers.exchange(
        address,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\n" + trailers + b"\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 431 "), raw


# -- per-route body limits (the rws.http.body_limit extension) ---------------------------------


async def routed_limits(scope: Scope, receive: Any, send: Any) -> None:
    """``/upload`` raises the limit to 100 kB, ``/tiny`` lowers it to 10 bytes, ``/`` keeps it."""
    limits = {"/upload": 100_000, "/tiny": 10, "/unlimited": 0}
    extension = scope["extensions"]["rws.http.body_limit"]
    if scope["path"] in limits:
        await send({"type": "rws.http.body_limit", "max_body_size": limits[scope["path"]]})
    body = await read_body(receive)
    payload = json.dumps({"length": len(body), "default": extension["max_body_size"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


@pytest.mark.parametrize(
    ("path", "size", "status"),
    [
        ("/", 1000, 200),
        ("/", 1001, 413),
        ("/upload", 60_000, 200),
        ("/upload", 100_001, 413),
        ("/unlimited", 300_000, 200),
        ("/tiny", 10, 200),
        ("/tiny", 11, 413),
    ],
)
async def test_app_sets_its_own_body_limit_per_route(
    serve: Any, path: str, size: int, status: int
) -> None:
    address = await serve(routed_limits, max_body_size=1000)
    async with httpx.AsyncClient() as client:
        announced = await client.post(f"http://{address}{path}", content=b"x" * size)

        async def chunks() -> Any:  # no Content-Length: found too large while reading
            for _ in range(size // 500):
                yield b"y" * 500
            yield b"y" * (size % 500)

        streamed = await client.post(f"http://{address}{path}", content=chunks())
    for response in (announced, streamed):
        assert response.status_code == status, response.text
        if status == 200:
            assert response.json() == {"length": size, "default": 1000}
        else:
            assert response.text == "Request body too large"
            assert response.headers["connection"] == "close"


async def test_expect_100_gets_413_instead_of_100_continue(serve: Any) -> None:
    address = await serve(routed_limits, max_body_size=1000)
    host, port = address.split(":")
    for path, answer in (("/", b"HTTP/1.1 413 "), ("/upload", b"HTTP/1.1 100 ")):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n" % path.encode()
        )
        await writer.drain()
        # Nothing of the body has been sent: the server answers from the head alone.
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert first.startswith(answer), first
        if answer.endswith(b"100 "):
            writer.write(b"z" * 5000)
            rest = await asyncio.wait_for(reader.readuntil(b"}"), 10)
            assert rest.startswith(b"HTTP/1.1 200 ") and b'"length": 5000' in rest
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "rws.http.body_limit", "max_body_size": -1}, "int >= 0"),
        ({"type": "rws.http.body_limit", "max_body_size": "10"}, "int >= 0"),
        ({"type": "rws.http.body_limit"}, "int >= 0"),
    ],
)
async def test_bad_body_limit_message_is_an_app_error(
    serve: Any, caplog: pytest.LogCaptureFixture, message: dict[str, Any], error: str
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(message)

    address = await serve(app)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://{address}/", content=b"abc")
    assert response.status_code == 500
    assert any(error in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_body_limit_after_reading_is_refused(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "rws.http.body_limit", "max_body_size": 10**9})

    address = await serve(app)
    async with httpx.AsyncClient() as client:

        async def chunks() -> Any:
            yield b"a"
            await asyncio.sleep(0.05)
            yield b"b"

        response = await client.post(f"http://{address}/", content=chunks())
    assert response.status_code == 500
    assert any(
        "before the body is read" in str(r.exc_info[1]) for r in caplog.records if r.exc_info
    )


async def test_refused_upload_still_gets_its_answer(serve: Any, helpers: Any) -> None:
    """Closing on unread upload bytes would reset the connection and lose the 413 (lingering)."""
    curl = helpers.need_tool("curl")
    address = await serve(routed_limits, max_body_size=1000)
    body = b"w" * 8_000_000
    for _ in range(3):
        # No Expect: 100-continue, so curl sends the whole body at once.
        code, out, err = await helpers.run(
            curl,
            "-sS",
            "-H",
            "Expect:",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code}",
            f"http://{address}/",
            input=body,
        )
        assert code == 0, err
        assert out.endswith(b"Request body too large\n413"), out[-200:]
    # A raw client that sends it all before reading gets the whole answer, then EOF.
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
    writer.write(b"q" * 500_000)
    answer = await asyncio.wait_for(reader.read(), 10)
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"Request body too large")
    writer.close()


async def test_slowloris_head_timeout_closes(serve: Any) -> None:
    address = await serve(echo, header_timeout=0.3)
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    for _ in range(3):
        writer.write(b"X-Slow: 1\r\n")  # trickle, never finishing the head
        await asyncio.sleep(0.05)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


async def test_keep_alive_idle_timeout_closes(serve: Any) -> None:
    address = await serve(echo, keep_alive_timeout=0.2)
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 10)  # the response, then EOF when idle
    assert data.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def test_max_requests_per_connection(serve: Any, helpers: Any) -> None:
    address = await serve(echo, max_requests_per_connection=2)
    raw = await helpers.exchange(address, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert raw.lower().count(b"connection: close") == 1


# -- application failures ----------------------------------------------------------------------


async def test_app_errors_become_500_and_the_server_survives(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/raise":
            raise ValueError("boom")
        if scope["path"] == "/silent":
            return
        if scope["path"] == "/late":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise ValueError("late boom")
        await echo(scope, receive, send)

    address = await serve(app)
    caplog.set_level(logging.ERROR, logger="rws.http.error")
    async with httpx.AsyncClient() as client:
        raised = await client.get(f"http://{address}/raise")
        silent = await client.get(f"http://{address}/silent")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"http://{address}/late")
        fine = await client.get(f"http://{address}/fine")
    assert raised.status_code == silent.status_code == 500
    assert raised.text == "Internal Server Error"
    assert fine.status_code == 200
    messages = [r.getMessage() for r in caplog.records]
    assert any("exception in ASGI application" in m for m in messages)
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    assert any("without starting a response" in m for m in messages)


async def test_invalid_response_from_app_is_a_500(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"bad header", b"x")]}
        )
        await send({"type": "http.response.body", "body": b""})

    address = await serve(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/")
    assert response.status_code == 500


# -- lifespan, state, pathsend, starlette, unix sockets ------------------------------------------


async def test_lifespan_state_reaches_requests(serve: Any) -> None:
    events = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await echo(scope, receive, send)

    server = Server(app, Config(bind=("127.0.0.1:0",)))
    await server.start()
    async with httpx.AsyncClient() as client:
        info = (await client.get(f"http://{server.addresses[0]}/")).json()
    await server.shutdown()
    assert info["state"] == {"db": "connected"}
    assert events == ["lifespan.startup", "lifespan.shutdown"]


async def test_lifespan_startup_failure_stops_the_server() -> None:
    from rws.http.server.lifespan import LifespanError

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = Server(app, Config(bind=("127.0.0.1:0",)))
    with pytest.raises(LifespanError, match="no database"):
        await server.start()
    assert server.addresses == []


async def test_pathsend(serve: Any, tmp_path: Any) -> None:
    payload = bytes(range(256)) * 4000
    (tmp_path / "blob").write_bytes(payload)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "blob")})

    address = await serve(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/")
    assert response.content == payload
    assert response.headers["content-length"] == str(len(payload))


async def test_starlette_app(serve: Any) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def upload(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body()), "q": request.query_params["q"]})

    async def stream(request: Request) -> StreamingResponse:
        async def gen() -> Any:
            for i in range(3):
                yield f"{i}\n"

        return StreamingResponse(gen(), media_type="text/plain")

    app = Starlette(routes=[Route("/up", upload, methods=["POST"]), Route("/stream", stream)])
    address = await serve(app)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://{address}/up?q=ok", content=b"a" * 1000)
        streamed = await client.get(f"http://{address}/stream")
        missing = await client.get(f"http://{address}/nope")
    assert response.json() == {"size": 1000, "q": "ok"}
    assert streamed.text == "0\n1\n2\n"
    assert missing.status_code == 404


async def test_unix_socket(serve: Any, helpers: Any, tmp_path: Any) -> None:
    curl = helpers.need_tool("curl")
    path = tmp_path / "rws.sock"
    await serve(echo, bind=(f"unix:{path}",))
    code, out, err = await helpers.run(curl, "-sS", "--unix-socket", str(path), "http://x/unix")
    assert code == 0, err
    info = json.loads(out)
    assert info["path"] == "/unix"
    assert info["client"] is None


async def test_graceful_shutdown_finishes_in_flight_requests() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    server = Server(slow, Config(bind=("127.0.0.1:0",), lifespan="off"))
    await server.start()
    address = server.addresses[0]
    async with httpx.AsyncClient() as client:
        request = asyncio.ensure_future(client.get(f"http://{address}/"))
        await started.wait()
        stopping = asyncio.ensure_future(server.shutdown(grace=10))
        await asyncio.sleep(0.1)
        assert not stopping.done()
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://{address}/", headers={"connection": "close"})
        release.set()
        response = await request
        await stopping
    assert response.text == "finished"
    assert response.headers["connection"] == "close"


async def test_graceful_shutdown_is_bounded() -> None:
    async def forever(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    server = Server(forever, Config(bind=("127.0.0.1:0",), lifespan="off"))
    await server.start()
    host, port = server.addresses[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.wait_for(server.shutdown(grace=0.2), 10)
    assert await asyncio.wait_for(reader.read(), 10) is not None
    writer.close()


# -- configuration ------------------------------------------------------------------------------


def test_config_rejects_unknown_keys_with_a_suggestion(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="did you mean 'max_body_size'"):
        Config.from_mapping({"max_body_sise": 1})
    with pytest.raises(ConfigError, match="RWS_HTTP_KEEP_ALIVE_TIMEOUT"):
        Config.from_env({"RWS_HTTP_KEEP_ALIVE_TIMOUT": "3"})
    with pytest.raises(ConfigError, match="max_body_size must be a whole number"):
        Config.from_mapping({"max_body_size": "big"})
    with pytest.raises(ConfigError, match="must be one of"):
        Config.from_mapping({"client_cert": "sometimes"})
    with pytest.raises(ConfigError, match="keyfile is set but certfile is not"):
        Config(keyfile="k.pem")


def test_config_precedence_file_env_overrides(tmp_path: Any) -> None:
    path = tmp_path / "rws-http.toml"
    path.write_text('bind = ["127.0.0.1:9000"]\nmax_body_size = 10\nkeep_alive_timeout = 7\n')
    config = Config.load(
        file=path,
        environ={
            "RWS_HTTP_MAX_BODY_SIZE": "20",
            "RWS_HTTP_PROXY_HEADERS": "false",
            "OTHER": "ignored",
        },
        overrides={"keep_alive_timeout": 9.5},
    )
    assert config.bind == ("127.0.0.1:9000",)
    assert config.max_body_size == 20
    assert config.proxy_headers is False
    assert config.keep_alive_timeout == 9.5
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nbnd = 1\n")
    with pytest.raises(ConfigError, match=r"bnd.*did you mean 'bind'"):
        Config.from_toml(bad)


async def test_accepted_connections_disable_nagle() -> None:
    """Streamed responses must not wait for delayed ACKs: TCP_NODELAY on every connection."""
    import socket

    server = Server(echo, Config(bind=("127.0.0.1:0",), lifespan="off"))
    await server.start()
    host, port = server.addresses[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"}")
    (connection,) = server.state.connections
    sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    writer.close()
    await server.shutdown()


# -- 103 Early Hints ---------------------------------------------------------------------------

STYLE = b"</style.css>; rel=preload; as=style"
SCRIPT = b"</app.js>; rel=preload; as=script"


def hinting_app(release: asyncio.Event | None = None) -> Any:
    """Two early hints (``links``, then ``headers``), then 200; ``release`` holds it between."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert "http.response.early_hint" in scope["extensions"]
        await send({"type": "http.response.early_hint", "links": [STYLE, SCRIPT]})
        if release is not None:
            await release.wait()
        await send(
            {
                "type": "http.response.early_hint",
                "headers": [(b"Link", b"<https://cdn.example>; rel=preconnect")],
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})

    return app


async def test_early_hints_go_out_at_once_on_http11(serve: Any) -> None:
    release = asyncio.Event()
    address = await serve(hinting_app(release))
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # The first hint arrives while the app is still waiting: it was not held back.
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert first == b"HTTP/1.1 103 Early Hints\r\nlink: %s\r\nlink: %s\r\n\r\n" % (
            STYLE,
            SCRIPT,
        )
        release.set()
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert (
            second
            == b"HTTP/1.1 103 Early Hints\r\nlink: <https://cdn.example>; rel=preconnect\r\n\r\n"
        )
        final = await asyncio.wait_for(reader.readuntil(b"page"), 10)
        assert final.startswith(b"HTTP/1.1 200 OK\r\n")
        # The connection stays usable for the next request (``release`` is set now).
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 10)
        assert rest.count(b"HTTP/1.1 103 Early Hints\r\n") == 2
        assert b"HTTP/1.1 200 OK\r\n" in rest and rest.endswith(b"page")
    finally:
        writer.close()


async def test_early_hints_are_not_sent_to_http10_clients(serve: Any, helpers: Any) -> None:
    address = await serve(hinting_app())
    raw = await helpers.exchange(address, b"GET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in raw and raw.endswith(b"page")


async def test_curl_shows_early_hints(serve: Any, helpers: Any) -> None:
    curl = helpers.need_tool("curl")
    address = await serve(hinting_app())
    code, out, err = await helpers.run(curl, "-sS", "-i", f"http://{address}/")
    assert code == 0, err
    hint, final = out.split(b"\r\n\r\n", 1)[0], out.split(b"\r\n\r\n")[2]
    assert hint == b"HTTP/1.1 103 Early Hints\r\nlink: %s\r\nlink: %s" % (STYLE, SCRIPT)
    assert final.startswith(b"HTTP/1.1 200 OK")
    assert out.endswith(b"\r\n\r\npage")


async def test_misused_early_hints_are_app_errors(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["path"] == "/after-start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.early_hint", "links": [STYLE]})
        elif scope["path"] == "/bad-value":
            await send({"type": "http.response.early_hint", "links": [b"</a>\r\nx-injected: 1"]})
        elif scope["path"] == "/framing":
            await send({"type": "http.response.early_hint", "headers": [(b"content-length", b"0")]})
        elif scope["path"] == "/empty":
            await send({"type": "http.response.early_hint", "links": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    address = await serve(app)
    caplog.set_level(logging.ERROR, logger="rws.http.error")
    paths = ("/after-start", "/bad-value", "/framing", "/empty")
    async with httpx.AsyncClient() as client:
        for path in paths:
            response = await client.get(f"http://{address}{path}")
            assert response.status_code == 500, path
            assert b"x-injected" not in response.content
        fine = await client.get(f"http://{address}/fine")
    assert fine.status_code == 200 and fine.text == "fine"
    errors = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert len(errors) == len(paths)
    assert "must come before http.response.start" in errors[0]
    assert all("http.response.early_hint" in error for error in errors)


async def test_client_eof_is_a_disconnect_but_the_answer_still_goes_out(serve: Any) -> None:
    """A client that half-closes after its request: the app waiting on receive() learns the
    client is gone (long polls stop), yet a response it sends anyway is still delivered."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (message := await receive())["type"] != "http.disconnect":
            pass
        seen.append(message["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"after eof"})

    address = await serve(app)
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    writer.write_eof()
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert seen == ["http.disconnect"]
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"after eof")
