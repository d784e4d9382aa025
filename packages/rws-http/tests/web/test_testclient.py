"""The in-process test clients drive real ASGI apps (plain callables and Starlette) as a server
would: streamed bodies both ways, disconnects, lifespan, cookies, redirects, WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from rws.http.web.testclient import (
    AsyncTestClient,
    LifespanError,
    TestClient,
    WebSocketDenialResponse,
    WebSocketDisconnect,
)
from rws.http.web.types import Receive, Scope, Send

from .conftest import Served

# --------------------------------------------------------------------------- apps under test


async def respond(send: Send, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> list[tuple[bytes, bool]]:
    """Every http.request message as (body, more_body), as the app saw them."""
    messages = []
    while True:
        message = await receive()
        messages.append((message.get("body", b""), message.get("more_body", False)))
        if not message.get("more_body", False):
            return messages


async def scope_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope (JSON-friendly) and the request body chunks it received."""
    assert scope["type"] == "http"
    chunks = await read_body(receive)
    described = {
        key: value.decode("latin-1") if isinstance(value, bytes) else value
        for key, value in scope.items()
        if key not in ("headers", "state")
    }
    described["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    described["chunks"] = [[body.decode(), more] for body, more in chunks]
    described["loop"] = id(asyncio.get_running_loop())
    headers = [(b"content-type", b"application/json")]
    await respond(send, 200, json.dumps(described).encode(), headers)


class Lifespan:
    """An app with a lifespan that records what ran; failures are configurable."""

    def __init__(self, fail_startup: str = "", crash_startup: bool = False) -> None:
        self.events: list[str] = []
        self.fail_startup = fail_startup
        self.crash_startup = crash_startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.crash_startup:
                        raise ConnectionError("database unreachable")
                    if self.fail_startup:
                        await send(
                            {"type": "lifespan.startup.failed", "message": self.fail_startup}
                        )
                        return
                    scope["state"]["db"] = "connected"
                    self.events.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self.events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await read_body(receive)
        await respond(send, 200, scope["state"].get("db", "no state").encode())


async def no_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']}")
    await respond(send, 200, b"ok")


class Echo:
    """A WebSocket echo that records how the client closed."""

    def __init__(self) -> None:
        self.closed_with: tuple[int, str] | None = None
        self.scope: Scope = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        assert (await receive())["type"] == "websocket.connect"
        offered = scope["subprotocols"]
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-echo", b"1")],
            }
        )
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.closed_with = (message["code"], message.get("reason") or "")
                return
            if message.get("text") == "close please":
                await send({"type": "websocket.close", "code": 4002, "reason": "bye"})
                continue
            reply = {"type": "websocket.send"}
            if message.get("text") is not None:
                reply["text"] = "echo: " + message["text"]
            else:
                reply["bytes"] = b"echo: " + message["bytes"]
            await send(reply)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(scope_app) as client:
        yield client


# --------------------------------------------------------------------------- HTTP


def test_scope_is_what_a_server_builds(client: TestClient) -> None:
    response = client.get(
        "/caf%C3%A9/x", params={"q": "naïve café", "n": "1"}, headers={"X-Token": "abc"}
    )
    assert response.status_code == 200
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["server"] == ["testserver", 80]
    assert scope["client"] == ["testclient", 50000]
    assert scope["path"] == "/café/x"
    assert scope["raw_path"] == "/caf%C3%A9/x"
    assert scope["query_string"] == "q=na%C3%AFve+caf%C3%A9&n=1"
    assert scope["root_path"] == ""
    assert scope["extensions"] == {}
    headers = dict(scope["headers"])
    assert headers["x-token"] == "abc"
    assert headers["host"] == "testserver"
    assert headers["user-agent"] == "testclient"
    assert all(name == name.lower() for name, _ in scope["headers"])


def test_https_base_url_and_client_address() -> None:
    with TestClient(scope_app, "https://example.org:8443", client=("10.0.0.7", 1234)) as c:
        scope = c.get("/").json()
    assert scope["scheme"] == "https"
    assert scope["server"] == ["example.org", 8443]
    assert scope["client"] == ["10.0.0.7", 1234]


def test_root_path_prefixes_path_as_asgi_2_4_says() -> None:
    with TestClient(scope_app, root_path="/api") as c:
        scope = c.get("/items/7").json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/7"
    assert scope["raw_path"] == "/api/items/7"


def test_post_body_whole_and_streamed(client: TestClient) -> None:
    assert client.post("/", content=b"hello").json()["chunks"] == [["hello", False]]

    def parts() -> Iterator[bytes]:
        yield b"one,"
        yield b"two,"
        yield b"three"

    chunks = client.post("/", content=parts()).json()["chunks"]
    assert chunks == [["one,", True], ["two,", True], ["three", True], ["", False]]
    form = client.post("/", data={"a": "1"}).json()
    assert form["chunks"] == [["a=1", False]]


def test_head_has_no_body(client: TestClient) -> None:
    response = client.head("/")
    assert response.status_code == 200
    assert response.content == b""


def test_one_event_loop_for_all_requests_without_with() -> None:
    """Loop-bound objects made in one request must work in the next (one loop per client)."""
    client = TestClient(scope_app)
    try:
        loops = {client.get("/").json()["loop"] for _ in range(3)}
    finally:
        client.close()
    assert len(loops) == 1


def test_streamed_response_arrives_chunk_by_chunk() -> None:
    go_on = threading.Event()
    sent: list[str] = []

    async def sse(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent.append("1")
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        released = await asyncio.to_thread(go_on.wait, 10)
        sent.append("2")
        body = b"data: 2\n\n" if released else b"data: too late\n\n"
        await send({"type": "http.response.body", "body": body})

    with TestClient(sse) as client, client.stream("GET", "/sse") as response:
        lines = response.iter_lines()
        assert next(lines) == "data: 1"
        assert sent == ["1"]  # the test holds chunk 1 while the app is still before chunk 2
        go_on.set()
        assert [line for line in lines if line] == ["data: 2"]


def test_closing_a_stream_early_disconnects_the_app() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        seen.append((await receive())["type"])
        try:
            await send({"type": "http.response.body", "body": b"second", "more_body": True})
        except OSError:
            seen.append("send raised OSError")

    with TestClient(app) as client:
        with client.stream("GET", "/") as response:
            assert next(response.iter_raw()) == b"first"
        assert seen == ["http.disconnect", "send raised OSError"]


def test_closing_a_starlette_stream_early_ends_it_quietly() -> None:
    ended: list[str] = []

    async def forever() -> AsyncIterator[str]:
        n = 0
        while True:
            n += 1
            yield f"data: {n}\n\n"
            await asyncio.sleep(0.01)

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(forever(), media_type="text/event-stream")

    starlette = Starlette(routes=[Route("/sse", endpoint)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await starlette(scope, receive, send)
        except BaseException as error:
            ended.append(type(error).__name__)
            raise
        ended.append("returned")

    with TestClient(app) as client:
        with client.stream("GET", "/sse") as response:
            lines = response.iter_lines()
            assert next(lines) == "data: 1"
            assert next(lines) == ""
            assert next(lines) == "data: 2"
        # The app stopped because the client left (ClientDisconnect); not a bug to report.
        assert ended == ["ClientDisconnect"]


def test_exception_before_response_is_raised_or_500() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("handler bug")

    with TestClient(broken) as client, pytest.raises(ValueError, match="handler bug"):
        client.get("/")
    with TestClient(broken, raise_server_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == 500


def test_exception_after_response_started() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise KeyError("late bug")

    with TestClient(half) as client, pytest.raises(KeyError, match="late bug"):
        client.get("/")
    with TestClient(half, raise_server_exceptions=False) as client:
        response = client.get("/")
    assert (response.status_code, response.content) == (200, b"partial")


def test_exception_after_a_complete_response_is_raised() -> None:
    """Like a background task failing after the response: the test must hear of it."""

    async def background_bug(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"done")
        await asyncio.sleep(0)
        raise LookupError("background bug")

    with TestClient(background_bug) as client, pytest.raises(LookupError, match="background"):
        client.get("/")


def test_app_that_never_responds() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return

    with TestClient(silent) as client, pytest.raises(RuntimeError, match=r"http\.response\.start"):
        client.get("/")
    with TestClient(silent, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 500


def test_stuck_app_times_out_instead_of_hanging() -> None:
    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.Event().wait()

    client = TestClient(stuck, timeout=0.05)
    try:
        with pytest.raises(httpx.ReadTimeout, match="timeout"):
            client.get("/")
    finally:
        client.close()
    with pytest.raises(TimeoutError, match="lifespan startup"), client:
        pytest.fail("a stuck lifespan startup must not let the test in")


def test_starlette_app_cookies_and_redirects() -> None:
    async def login(request: Request) -> Response:
        response = PlainTextResponse("logged in")
        response.set_cookie("session", "s3cret")
        return response

    async def whoami(request: Request) -> Response:
        return JSONResponse({"session": request.cookies.get("session")})

    async def old(request: Request) -> Response:
        return Response(status_code=307, headers={"location": "/whoami"})

    app = Starlette(routes=[Route("/login", login), Route("/whoami", whoami), Route("/old", old)])
    with TestClient(app) as client:
        assert client.get("/whoami").json() == {"session": None}
        client.get("/login")
        assert client.get("/whoami").json() == {"session": "s3cret"}
        response = client.get("/old")
        assert response.json() == {"session": "s3cret"}
        assert [r.status_code for r in response.history] == [307]
        assert client.get("/old", follow_redirects=False).status_code == 307
    with TestClient(app, follow_redirects=False, cookies={"session": "given"}) as client:
        assert client.get("/old").status_code == 307
        assert client.get("/whoami").json() == {"session": "given"}


# --------------------------------------------------------------------------- lifespan


def test_lifespan_runs_around_with_block_and_shares_state() -> None:
    app = Lifespan()
    with TestClient(app) as client:
        assert app.events == ["startup"]
        assert client.get("/").text == "connected"
    assert app.events == ["startup", "shutdown"]


def test_without_with_there_is_no_lifespan() -> None:
    app = Lifespan()
    client = TestClient(app)
    try:
        assert client.get("/").text == "no state"
    finally:
        client.close()
    assert app.events == []


def test_lifespan_startup_failure_raises_the_apps_message() -> None:
    with pytest.raises(LifespanError, match="cache is down"), TestClient(Lifespan("cache is down")):
        pytest.fail("the with body must not run")


def test_lifespan_startup_raising_means_unsupported_as_asgi_says() -> None:
    """ASGI: an exception instead of an answer to lifespan.startup means "no lifespan"."""
    with TestClient(Lifespan(crash_startup=True)) as client:
        assert client.get("/").text == "no state"


def test_starlette_lifespan_failure_raises() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise ConnectionRefusedError("no broker")
        yield

    app = Starlette(lifespan=lifespan)
    with pytest.raises(LifespanError, match="no broker"), TestClient(app):
        pytest.fail("the with body must not run")


def test_app_without_lifespan_support_is_tolerated() -> None:
    with TestClient(no_lifespan_app) as client:
        assert client.get("/").text == "ok"


# --------------------------------------------------------------------------- WebSocket


def test_websocket_text_bytes_json_echo() -> None:
    app = Echo()
    with TestClient(app) as client, client.websocket_connect("/ws?room=1") as ws:
        ws.send_text("héllo")
        assert ws.receive_text() == "echo: héllo"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"echo: \x00\x01"
        ws.send_json({"n": 1})
        assert ws.receive_text() == 'echo: {"n":1}'
        ws.send_json({"n": 2}, mode="binary")
        assert ws.receive_bytes() == b'echo: {"n":2}'
    assert app.scope["type"] == "websocket"
    assert app.scope["scheme"] == "ws"
    assert app.scope["path"] == "/ws"
    assert app.scope["query_string"] == b"room=1"
    assert app.scope["extensions"] == {"websocket.http.response": {}}
    assert app.closed_with == (1000, "")  # leaving the block closes normally


def test_websocket_subprotocol_and_headers() -> None:
    app = Echo()
    with (
        TestClient(app, headers={"x-client": "t"}) as client,
        client.websocket_connect(
            "/ws", subprotocols=["chat.v2", "chat.v1"], headers={"x-extra": "1"}
        ) as ws,
    ):
        assert ws.accepted_subprotocol == "chat.v2"
        assert ws.extra_headers == [(b"x-echo", b"1")]
    assert app.scope["subprotocols"] == ["chat.v2", "chat.v1"]
    headers = dict(app.scope["headers"])
    assert headers[b"x-extra"] == b"1"
    assert headers[b"x-client"] == b"t"
    assert headers[b"sec-websocket-version"] == b"13"


def test_websocket_close_codes_both_ways() -> None:
    app = Echo()
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.close(4001, "test is done")
        assert app.closed_with == (4001, "test is done")

        with client.websocket_connect("/ws") as ws:
            ws.send_text("close please")
            message = ws.receive()
            assert message == {"type": "websocket.close", "code": 4002, "reason": "bye"}
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert (closed.value.code, closed.value.reason) == (4002, "bye")

        with client.websocket_connect("/ws") as ws:
            ws.send_text("close please")
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4002
        assert app.closed_with == (4002, "")  # the app hears the client echo its close


def test_websocket_closed_before_accept() -> None:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 4403, "reason": "not allowed"})

    with TestClient(refuse) as client, pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect("/ws")
    assert (refused.value.code, refused.value.reason) == (4403, "not allowed")


def test_websocket_denial_response() -> None:
    async def deny(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"x-why", b"token")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"token"})

    with TestClient(deny) as client, pytest.raises(WebSocketDenialResponse) as denied:
        client.websocket_connect("/ws")
    assert denied.value.status_code == 401
    assert denied.value.headers["x-why"] == "token"
    assert denied.value.content == b"no token"
    assert isinstance(denied.value, WebSocketDisconnect)


def test_starlette_websocket_echo_and_denial() -> None:
    async def echo(websocket: WebSocket) -> None:
        if websocket.query_params.get("token") != "ok":
            await websocket.send_denial_response(PlainTextResponse("bad token", status_code=403))
            return
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})
        await websocket.close(code=4000)

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    with TestClient(app) as client:
        with client.websocket_connect("/ws?token=ok") as ws:
            ws.send_json([1, "two"])
            assert ws.receive_json() == {"got": [1, "two"]}
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 4000
        with pytest.raises(WebSocketDenialResponse) as denied:
            client.websocket_connect("/ws?token=no")
        assert (denied.value.status_code, denied.value.content) == (403, b"bad token")


def test_websocket_receive_times_out() -> None:
    app = Echo()
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(TimeoutError, match="timeout="):
            ws.receive_text(timeout=0.05)
        ws.send_text("still alive")
        assert ws.receive_text() == "echo: still alive"


def test_websocket_app_error_is_raised() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise ZeroDivisionError("ws bug")

    with TestClient(crash) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("boom")
        with pytest.raises(ZeroDivisionError, match="ws bug"):
            ws.receive_text()


# --------------------------------------------------------------------------- async client


async def test_async_client_requests_and_scope() -> None:
    async with AsyncTestClient(scope_app, root_path="/api") as client:
        scope = (await client.get("/é", params={"q": "ü"})).json()
        assert scope["path"] == "/api/é"
        assert scope["query_string"] == "q=%C3%BC"
        assert scope["loop"] == id(asyncio.get_running_loop())  # the test's own loop

        async def parts() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        chunks = (await client.post("/", content=parts())).json()["chunks"]
        assert chunks == [["a", True], ["b", True], ["", False]]


async def test_async_client_streams_and_disconnects() -> None:
    go_on = asyncio.Event()
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen.append("sent one")
        await send({"type": "http.response.body", "body": b"one\n", "more_body": True})
        await go_on.wait()
        await send({"type": "http.response.body", "body": b"two\n", "more_body": True})
        seen.append((await receive())["type"])

    async with AsyncTestClient(app) as client:
        async with client.stream("GET", "/") as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "one"
            assert seen == ["sent one"]
            go_on.set()
            assert await anext(lines) == "two"
        assert seen == ["sent one", "http.disconnect"]


async def test_async_client_lifespan_and_errors() -> None:
    app = Lifespan()
    async with AsyncTestClient(app) as client:
        assert (await client.get("/")).text == "connected"
    assert app.events == ["startup", "shutdown"]
    with pytest.raises(LifespanError, match="no disk"):
        async with AsyncTestClient(Lifespan("no disk")):
            pytest.fail("the with body must not run")

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("async bug")

    async with AsyncTestClient(broken) as client:
        with pytest.raises(ValueError, match="async bug"):
            await client.get("/")
    async with AsyncTestClient(broken, raise_server_exceptions=False) as client:
        assert (await client.get("/")).status_code == 500


async def test_async_client_websocket() -> None:
    app = Echo()
    async with AsyncTestClient(app) as client:
        async with client.websocket_connect("/ws", subprotocols=["v1"]) as ws:
            assert ws.accepted_subprotocol == "v1"
            await ws.send_text("hi")
            assert await ws.receive_text() == "echo: hi"
            await ws.send_json({"k": [1]}, mode="binary")
            assert await ws.receive_bytes() == b'echo: {"k":[1]}'
            await ws.send_text("close please")
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
            assert (closed.value.code, closed.value.reason) == (4002, "bye")
        async with client.websocket_connect("/ws") as ws:
            await ws.close(4100, "async done")
        assert app.closed_with == (4100, "async done")
        with pytest.raises(TimeoutError):
            async with client.websocket_connect("/ws") as ws:
                await ws.receive(timeout=0.05)


async def test_async_client_websocket_refusals() -> None:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if scope["path"] == "/close":
            await send({"type": "websocket.close", "code": 4401})
            return
        await send({"type": "websocket.http.response.start", "status": 429, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"slow down"})

    async with AsyncTestClient(refuse) as client:
        with pytest.raises(WebSocketDisconnect) as closed:
            async with client.websocket_connect("/close"):
                pytest.fail("not accepted")
        assert closed.value.code == 4401
        with pytest.raises(WebSocketDenialResponse) as denied:
            async with client.websocket_connect("/deny"):
                pytest.fail("not accepted")
        assert (denied.value.status_code, denied.value.content) == (429, b"slow down")


# --------------------------------------------------------------------------- the real thing


async def test_same_results_as_a_real_server(served: Served) -> None:
    """What the app sees and answers through TestClient is what it sees behind a server."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # both servers run it: answer as an app should
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = await read_body(receive)
        seen = {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode(),
            "query_string": scope["query_string"].decode(),
            "scheme": scope["scheme"],
            "http_version": scope["http_version"],
            "body": b"".join(body for body, _ in chunks).decode(),
            "x-custom": dict(scope["headers"]).get(b"x-custom", b"").decode(),
        }
        headers = [(b"content-type", b"application/json"), (b"set-cookie", b"k=v; Path=/")]
        await respond(send, 201, json.dumps(seen).encode(), headers)

    requests = [("GET", None), ("POST", "dé=jà".encode())]
    options: dict[str, Any] = {"params": {"q": "ß v"}, "headers": {"X-Custom": "1"}}

    def summary(response: httpx.Response) -> tuple[int, Any, str, str | None]:
        content_type = response.headers["content-type"]
        return response.status_code, response.json(), content_type, response.cookies.get("k")

    base = await served(app)
    async with httpx.AsyncClient(base_url=base) as real:
        expected = [
            summary(await real.request(method, "/p%C3%A5th/x", content=content, **options))
            for method, content in requests
        ]
    with TestClient(app) as client:
        got = [
            summary(client.request(method, "/p%C3%A5th/x", content=content, **options))
            for method, content in requests
        ]
    assert got == expected
    assert expected[1][1]["body"] == "dé=jà"


# --------------------------------------------------------------------------- README example


async def readme_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello"
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await receive()
        body = f"{scope['state']['greeting']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    else:  # websocket: echo text until the client leaves
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"].upper()})


def test_readme_example_sync() -> None:
    with TestClient(readme_app) as client:  # `with` runs the lifespan
        assert client.get("/world").text == "hello /world"
        with client.websocket_connect("/ws") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "HI"


async def test_readme_example_async() -> None:
    async with AsyncTestClient(readme_app) as client:
        assert (await client.get("/async")).text == "hello /async"
        async with client.websocket_connect("/ws") as ws:
            await ws.send_text("hey")
            assert await ws.receive_text(timeout=5) == "HEY"


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"root_path": "api"}, "root_path"),
        ({"root_path": "/api/"}, "root_path"),
        ({"base_url": "ftp://files"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"client": ("host", 70000)}, "client"),
    ],
)
def test_bad_options_name_themselves(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        TestClient(scope_app, **kwargs)
    with pytest.raises(ValueError, match=option):
        AsyncTestClient(scope_app, **kwargs)


def test_import_without_httpx_says_which_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "try:\n    import rws.http.web.testclient\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "pip install 'rws-http[test]'" in out
