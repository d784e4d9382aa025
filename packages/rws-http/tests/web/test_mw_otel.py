"""OpenTelemetryMiddleware, served by both servers, spans collected by the real OpenTelemetry
SDK (a test-only dependency) in memory."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from rws.http.web.middleware.otel import OpenTelemetryMiddleware
from rws.http.web.routing import Mount, Route, Router
from rws.http.web.types import Receive, Scope, Send

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Tracing:
    def __init__(self) -> None:
        self.exporter = in_memory.InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> Sequence[ReadableSpan]:
        spans: Sequence[ReadableSpan] = self.exporter.get_finished_spans()
        return spans

    def server_spans(self) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.kind is SpanKind.SERVER]

    async def wait(self, check: Callable[[list[ReadableSpan]], bool]) -> list[ReadableSpan]:
        """Spans end when the app returns, just after the client got its response."""
        async with asyncio.timeout(5):
            while not check(self.server_spans()):  # noqa: ASYNC110 (the SDK has no event)
                await asyncio.sleep(0.01)
        return self.server_spans()


@pytest.fixture
def tracing() -> Tracing:
    return Tracing()


async def text(send: Send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await text(send, b"ok")


async def boom(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("handler failed")


async def unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    await text(send, b"later", status=503)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text")})


def make_app(tracing: Tracing, **options: Any) -> OpenTelemetryMiddleware:
    tracer = tracing.provider.get_tracer("test.handler")

    async def user(scope: Scope, receive: Receive, send: Send) -> None:
        with tracer.start_as_current_span("db"):
            await asyncio.sleep(0)
        await text(send, b"user")

    router = Router(
        [
            Route("/users/{id:int}", user, methods=["GET"]),
            Mount("/api", routes=[Route("/items/{name}", ok)]),
            Route("/boom", boom),
            Route("/unavailable", unavailable),
            Route("/health", ok),
            Route("/static/{rest:path}", ok),
            Route("/ws/{room}", echo, websocket=True),
        ]
    )
    return OpenTelemetryMiddleware(router, tracer_provider=tracing.provider, **options)


async def test_server_span_name_and_attributes(served: Any, tracing: Tracing) -> None:
    base = await served(make_app(tracing))
    port = int(base.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/users/7?x=1&y=2", headers={"User-Agent": "tester/1.0"})
    assert response.text == "user"
    [span] = await tracing.wait(lambda spans: len(spans) == 1)
    assert span.name == "GET /users/{id:int}"
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    client_port = attributes.pop("client.port")
    assert isinstance(client_port, int)
    assert attributes == {
        "http.request.method": "GET",
        "url.path": "/users/7",
        "url.scheme": "http",
        "url.query": "x=1&y=2",
        "http.route": "/users/{id:int}",
        "http.response.status_code": 200,
        "server.address": "127.0.0.1",
        "server.port": port,
        "client.address": "127.0.0.1",
        "user_agent.original": "tester/1.0",
        "network.protocol.version": "1.1",
    }


async def test_handler_span_is_a_child_of_the_server_span(served: Any, tracing: Tracing) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app(tracing))) as client:
        await client.get("/users/1")
    [server] = await tracing.wait(lambda spans: len(spans) == 1)
    [db] = [span for span in tracing.spans() if span.name == "db"]
    assert db.parent is not None and server.context is not None and db.context is not None
    assert db.parent.span_id == server.context.span_id
    assert db.context.trace_id == server.context.trace_id
    assert server.parent is None  # no traceparent: a new trace


async def test_traceparent_continues_the_callers_trace(served: Any, tracing: Tracing) -> None:
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    async with httpx.AsyncClient(base_url=await served(make_app(tracing))) as client:
        await client.get("/api/items/x", headers=headers)
    [server] = await tracing.wait(lambda spans: len(spans) == 1)
    assert server.name == "GET /api/items/{name}"
    assert server.context is not None and server.parent is not None
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.parent.is_remote


async def test_exception_sets_error_and_is_recorded(served: Any, tracing: Tracing) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app(tracing))) as client:
        assert (await client.get("/boom")).status_code == 500
    [span] = await tracing.wait(lambda spans: len(spans) == 1)
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: handler failed"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["http.response.status_code"] == 500
    [event] = [event for event in span.events if event.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "handler failed"
    assert "Traceback" in str(event.attributes["exception.stacktrace"])


async def test_status_codes(served: Any, tracing: Tracing) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app(tracing))) as client:
        assert (await client.get("/unavailable")).status_code == 503
        assert (await client.get("/no/such/page")).status_code == 404
        assert (await client.request("BREW", "/users/1")).status_code == 405
    spans = await tracing.wait(lambda spans: len(spans) == 3)
    by_path = {span.attributes["url.path"]: span for span in spans if span.attributes}
    failing = by_path["/unavailable"]
    assert failing.status.status_code is StatusCode.ERROR
    assert failing.attributes is not None and failing.attributes["error.type"] == "503"
    missing = by_path["/no/such/page"]
    assert missing.name == "GET"  # no route: never the raw path
    assert missing.status.status_code is StatusCode.UNSET
    assert missing.attributes is not None
    assert missing.attributes["http.response.status_code"] == 404
    assert "http.route" not in missing.attributes
    brewed = by_path["/users/1"]
    assert brewed.name == "HTTP /users/{id:int}"
    assert brewed.attributes is not None
    assert brewed.attributes["http.request.method"] == "_OTHER"
    assert brewed.attributes["http.request.method_original"] == "BREW"


async def test_excluded_paths_make_no_span(served: Any, tracing: Tracing) -> None:
    app = make_app(tracing, excluded_paths=["/health", "/static/"])
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for path in ("/health", "/static/app.js", "/static/img/a.png", "/health"):
            assert (await client.get(path)).status_code == 200
        await client.get("/api/items/last")
    spans = await tracing.wait(lambda spans: len(spans) >= 1)
    await asyncio.sleep(0.05)
    assert [span.name for span in tracing.server_spans()] == ["GET /api/items/{name}"]
    assert len(spans) == 1


async def test_websocket_session_span(served: Any, tracing: Tracing) -> None:
    client = pytest.importorskip("websockets.asyncio.client")
    base = await served(make_app(tracing))
    async with client.connect(base.replace("http://", "ws://") + "/ws/lobby") as websocket:
        await websocket.send("hello")
        assert await websocket.recv() == "hello"
    [span] = await tracing.wait(lambda spans: len(spans) == 1)
    assert span.name == "GET /ws/{room}"
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 101
    assert span.attributes["url.scheme"] == "ws"
    assert span.attributes["url.path"] == "/ws/lobby"
    assert span.status.status_code is StatusCode.UNSET


async def test_span_ends_when_the_client_goes_away(served: Any, tracing: Tracing) -> None:
    entered = asyncio.Event()

    async def hang(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        while (await receive())["type"] != "http.disconnect":
            pass

    app = OpenTelemetryMiddleware(Router([Route("/hang", hang)]), tracer_provider=tracing.provider)
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        request = asyncio.create_task(client.get("/hang"))
        await asyncio.wait_for(entered.wait(), 5)
        request.cancel()  # closes the connection under the handler
        with pytest.raises(asyncio.CancelledError):
            await request
    [span] = await tracing.wait(lambda spans: len(spans) == 1)
    assert span.name == "GET /hang"
    assert span.end_time is not None


def test_missing_otel_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"rws-http\[otel\]"):
        OpenTelemetryMiddleware(ok)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"excluded_paths": "/health"}, "excluded_paths"),
        ({"excluded_paths": ["health"]}, "excluded_paths"),
        ({"tracer_provider": object()}, "tracer_provider"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        OpenTelemetryMiddleware(ok, **options)
