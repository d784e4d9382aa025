"""RequestIdMiddleware under both servers: generated or trusted ids, visible to the handler,
the response, the WebSocket handshake and log records."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from rws.http.web.middleware.request_id import (
    RequestIdLogFilter,
    RequestIdMiddleware,
    request_id_var,
)
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served

handler_logger = logging.getLogger("tests.web.request_id.handler")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdLogFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def show_id(scope: Scope, receive: Receive, send: Send) -> None:
    handler_logger.warning("handling")
    body = json.dumps({"state": scope["state"]["request_id"], "var": request_id_var.get()}).encode()
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"app-set")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def ws_show_id(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": scope["state"]["request_id"]})
    await send({"type": "websocket.close", "code": 1000})


def app(**options: object) -> ASGIApp:
    routes = [Route("/", show_id), Route("/ws", ws_show_id, websocket=True)]
    return RequestIdMiddleware(Router(routes), **options)  # type: ignore[arg-type]


async def test_generated_id_reaches_handler_response_and_logs(served: Served) -> None:
    collect = Collect()
    handler_logger.addHandler(collect)
    try:
        async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
            first = await client.get("/")
            second = await client.get("/")
    finally:
        handler_logger.removeHandler(collect)
    request_id = first.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert first.headers.get_list("x-request-id") == [request_id]  # replaces the app's own
    assert first.json() == {"state": request_id, "var": request_id}
    assert second.headers["x-request-id"] != request_id
    assert [getattr(r, "request_id", None) for r in collect.records] == [
        request_id,
        second.headers["x-request-id"],
    ]
    assert request_id_var.get() is None  # reset after the request


def test_log_filter_outside_a_request() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    assert RequestIdLogFilter().filter(record) is True
    assert getattr(record, "request_id", None) == "-"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    RequestIdLogFilter(default="none").filter(record)
    assert getattr(record, "request_id", None) == "none"


async def test_valid_incoming_id_is_trusted(served: Served) -> None:
    incoming = "edge-7f3a:9b2c/" + "x" * 185  # 200 visible ASCII characters
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/", headers={"X-Request-Id": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.json()["state"] == incoming


@pytest.mark.parametrize("incoming", ["x" * 201, "has space", "tab\there", "é-accent", ""])
async def test_invalid_incoming_id_is_replaced(served: Served, incoming: str) -> None:
    async with httpx.AsyncClient(base_url=await served(app()), timeout=10) as client:
        response = await client.get("/", headers=[(b"X-Request-Id", incoming.encode())])
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_untrusted_and_custom_options(served: Served) -> None:
    ids = iter(["id-1", "id-2"])
    options = {
        "trust_incoming": False,
        "header": "X-Correlation-Id",
        "generator": lambda: next(ids),
    }
    async with httpx.AsyncClient(base_url=await served(app(**options)), timeout=10) as client:
        response = await client.get("/", headers={"X-Correlation-Id": "client-chosen"})
    assert response.headers["x-correlation-id"] == "id-1"
    assert response.headers["x-request-id"] == "app-set"  # not ours: left alone
    assert response.json()["state"] == "id-1"


async def test_websocket_handshake_carries_the_id(served: Served) -> None:
    client = pytest.importorskip("websockets.asyncio.client")
    base = await served(app())
    async with client.connect(
        base.replace("http://", "ws://") + "/ws", additional_headers={"X-Request-Id": "ws-42"}
    ) as ws:
        assert ws.response.headers["x-request-id"] == "ws-42"
        assert await ws.recv() == "ws-42"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"header": "bad header"}, "header"),
        ({"header": ""}, "header"),
        ({"generator": 3}, "generator"),
    ],
)
def test_bad_options(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RequestIdMiddleware(show_id, **options)  # type: ignore[arg-type]


def test_generator_returning_garbage_is_an_error() -> None:
    middleware = RequestIdMiddleware(show_id, generator=lambda: "two\nlines")
    with pytest.raises(ValueError, match="invalid request id"):
        middleware.request_id({"type": "http", "headers": []})
