"""TimeoutMiddleware under both servers: 504 before the response starts, an aborted
connection after, real cancellation of the handler, per-route and nested deadlines."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from rws.http.web.middleware.timeout import TIMEOUT_KEY, ResponseTimeoutError, TimeoutMiddleware
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served


async def ok(send: Send, body: bytes = b"ok") -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def forever(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.Event().wait()


async def fast(scope: Scope, receive: Receive, send: Send) -> None:
    await ok(send, b"fast")


async def test_slow_handler_gets_504_json(served: Served) -> None:
    app = TimeoutMiddleware(Router([Route("/slow", forever), Route("/fast", fast)]), seconds=0.2)
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        slow = await client.get("/slow")
        quick = await client.get("/fast")
    assert slow.status_code == 504
    assert slow.headers["content-type"] == "application/json"
    assert slow.json() == {"detail": "Gateway Timeout"}
    assert quick.status_code == 200 and quick.text == "fast"


async def test_handler_is_cancelled_and_its_finally_runs(served: Served) -> None:
    seen: dict[str, bool] = {}

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        finally:
            seen["finally"] = True

    app = Router([Route("/", TimeoutMiddleware(handler, seconds=0.2))])
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/")
    assert response.status_code == 504
    assert seen == {"cancelled": True, "finally": True}


async def test_per_route_timeout_leaves_other_routes_alone(served: Served) -> None:
    async def slowish(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.3)
        await ok(send, b"done")

    app = Router(
        [
            Route("/limited", TimeoutMiddleware(forever, seconds=0.2)),
            Route("/unlimited", slowish),
        ]
    )
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        limited = await client.get("/limited")
        unlimited = await client.get("/unlimited")
    assert limited.status_code == 504
    assert unlimited.status_code == 200 and unlimited.text == "done"


@pytest.mark.parametrize(("outer", "inner"), [(30.0, 0.2), (0.2, 30.0)])
async def test_nested_timeouts_earliest_deadline_wins(
    served: Served, outer: float, inner: float
) -> None:
    seen: list[float] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        timeout = scope[TIMEOUT_KEY]
        assert isinstance(timeout, asyncio.Timeout)
        when = timeout.when()
        assert when is not None
        seen.append(when - asyncio.get_running_loop().time())
        await asyncio.Event().wait()

    app = TimeoutMiddleware(
        Router([Route("/", TimeoutMiddleware(handler, seconds=inner))]), seconds=outer
    )
    # The client waits far less than the longer deadline: only the shorter one can answer.
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/")
    assert response.status_code == 504
    assert response.json() == {"detail": "Gateway Timeout"}
    # scope["rws.timeout"] is the innermost Timeout, even when the outer one is shorter.
    assert len(seen) == 1
    assert (seen[0] > 10) is (inner > 10)


async def test_handler_can_reschedule_its_timeout(served: Served) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        scope[TIMEOUT_KEY].reschedule(asyncio.get_running_loop().time() + 30)
        await asyncio.sleep(0.5)
        await ok(send, b"extended")

    app = TimeoutMiddleware(Router([Route("/", handler)]), seconds=0.2)
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/")
    assert response.status_code == 200 and response.text == "extended"


async def test_timeout_after_response_started_aborts_the_connection(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    async def stalls(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.Event().wait()

    raised: list[BaseException] = []
    middleware = TimeoutMiddleware(Router([Route("/", stalls)]), seconds=0.2)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await middleware(scope, receive, send)
        except BaseException as error:
            raised.append(error)
            raise

    caplog.set_level(logging.WARNING, logger="rws.http.web.timeout")
    async with (
        httpx.AsyncClient(base_url=await served(app), timeout=10) as client,
        client.stream("GET", "/") as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await response.aread()
    assert any("response already started" in record.getMessage() for record in caplog.records), (
        caplog.text
    )
    assert len(raised) == 1 and isinstance(raised[0], ResponseTimeoutError)


async def test_handler_swallowing_cancellation_still_gets_504(served: Served) -> None:
    async def stubborn(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return  # a badly behaved handler: the middleware must still answer

    app = Router([Route("/", TimeoutMiddleware(stubborn, seconds=0.2))])
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/")
    assert response.status_code == 504


async def test_the_apps_own_timeout_error_is_not_a_504(served: Served) -> None:
    async def own_timeout(scope: Scope, receive: Receive, send: Send) -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(60)

    raised: list[BaseException] = []

    async def catcher(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await TimeoutMiddleware(own_timeout, seconds=30)(scope, receive, send)
        except BaseException as error:
            raised.append(error)
            raise

    app = Router([Route("/", catcher)])
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/")
    assert response.status_code == 500
    assert len(raised) == 1 and type(raised[0]) is TimeoutError


async def test_lifespan_and_websocket_pass_through(served: Served) -> None:
    websockets = pytest.importorskip("websockets.asyncio.client")

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.4)  # longer than the timeout: WebSockets are not cut
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close", "code": 1000})

    app = TimeoutMiddleware(Router([Route("/ws", echo, websocket=True)]), seconds=0.2)
    base = await served(app)
    async with websockets.connect(base.replace("http://", "ws://") + "/ws") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan"), True, "1"])
def test_bad_seconds_are_refused(seconds: object) -> None:
    with pytest.raises(ValueError, match="seconds"):
        TimeoutMiddleware(fast, seconds=seconds)  # type: ignore[arg-type]


async def test_scope_key_is_restored_after_an_inner_timeout(served: Served) -> None:
    seen: list[object] = []

    def between(app: ASGIApp) -> ASGIApp:
        async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
            before = scope.get(TIMEOUT_KEY)
            await app(scope, receive, send)
            seen.extend([before, scope.get(TIMEOUT_KEY)])

        return wrapper

    inner = Router([Route("/", TimeoutMiddleware(fast, seconds=5))])
    async with httpx.AsyncClient(
        base_url=await served(between(TimeoutMiddleware(between(inner), seconds=30))), timeout=10
    ) as client:
        assert (await client.get("/")).text == "fast"
    outer_timeout, after_inner, no_timeout, after_outer = seen
    assert isinstance(outer_timeout, asyncio.Timeout) and after_inner is outer_timeout
    assert no_timeout is None and after_outer is None
