"""App: decorators, mounts, hosts, URL building, lifespan hooks and state, exception handlers
per type and per status, 404/405 as JSON, per-route middleware; served by rws-http and
uvicorn (the ``served`` fixture runs each test under both)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest

from rws.http.web import (
    App,
    HTTPException,
    JSONResponse,
    Path,
    PlainTextResponse,
    Request,
    Response,
    Router,
)
from rws.http.web.routing import Route
from rws.http.web.types import Receive, Scope, Send


async def raw_hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw " + scope["path"].encode()})


def make_app() -> App:
    app = App()

    @app.get("/")
    async def home() -> str:
        return "home"

    @app.get("/users/{id:int}", name="user")
    async def user(id: int) -> dict[str, Any]:
        return {"id": id, "type": type(id).__name__}

    @app.post("/users", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        return {"created": await request.json()}

    @app.route("/items/{name}", ["PUT", "DELETE"])
    async def item(name: str, request: Request) -> dict[str, str]:
        return {"method": request.method, "name": name}

    @app.get("/empty")
    async def empty() -> None:
        return None

    @app.get("/bytes")
    async def raw_bytes() -> bytes:
        return b"\x00\x01"

    @app.get("/url")
    async def url(request: Request) -> dict[str, str]:
        return {
            "user": str(request.url_for("user", id=3)),
            "path": app.url_path_for("user", id=4),
            "sub": str(request.url_for("sub:leaf", x="y")),
        }

    sub = App()

    @sub.get("/leaf/{x}", name="leaf")
    async def leaf(x: str, request: Request) -> dict[str, str]:
        return {"x": x, "root_path": request.scope["root_path"]}

    app.mount("/sub", sub, name="sub")
    app.add_route("/raw", raw_hello)
    app.mount("/router", Router([Route("/inner", raw_hello)]))
    return app


async def test_handlers_return_values_become_responses(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        home = await client.get("/")
        assert (home.status_code, home.text) == (200, "home")
        assert home.headers["content-type"] == "text/plain; charset=utf-8"
        user = await client.get("/users/42")
        assert user.json() == {"id": 42, "type": "int"}
        assert user.headers["content-type"] == "application/json"
        created = await client.post("/users", json={"name": "Ana"})
        assert (created.status_code, created.json()) == (201, {"created": {"name": "Ana"}})
        empty = await client.get("/empty")
        assert (empty.status_code, empty.content) == (204, b"")
        data = await client.get("/bytes")
        assert data.content == b"\x00\x01"
        assert data.headers["content-type"] == "application/octet-stream"
        put = await client.put("/items/x")
        assert put.json() == {"method": "PUT", "name": "x"}


async def test_404_and_405_are_json_with_allow(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        missing = await client.get("/nope")
        assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
        wrong = await client.get("/items/x")
        assert wrong.status_code == 405
        assert wrong.json() == {"detail": "Method Not Allowed"}
        assert wrong.headers["allow"] == "DELETE, PUT"
        head = await client.head("/users/1")
        assert head.status_code == 200 and head.content == b""


async def test_mounts_raw_asgi_and_url_building(served: Any) -> None:
    base = await served(make_app())
    async with httpx.AsyncClient(base_url=base) as client:
        leaf = await client.get("/sub/leaf/abc")
        assert leaf.json() == {"x": "abc", "root_path": "/sub"}
        assert (await client.get("/raw")).text == "raw /raw"
        assert (await client.get("/router/inner")).text == "raw /router/inner"
        urls = (await client.get("/url")).json()
        assert urls == {"user": f"{base}/users/3", "path": "/users/4", "sub": f"{base}/sub/leaf/y"}


async def test_host_routing(served: Any) -> None:
    api = App()

    @api.get("/")
    async def api_home(request: Request) -> dict[str, Any]:
        return {"site": "api", "sub": request.path_params["sub"]}

    app = App()
    app.host("{sub}.example.com", api)

    @app.get("/")
    async def default_home() -> dict[str, str]:
        return {"site": "default"}

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        hit = await client.get("/", headers={"host": "eu.example.com:8080"})
        assert hit.json() == {"site": "api", "sub": "eu"}
        other = await client.get("/", headers={"host": "example.org"})
        assert other.json() == {"site": "default"}


async def test_lifespan_hooks_context_and_state(server_context: Any) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("enter")
        app.state.pool = "pool-object"
        yield {"db": "connected"}
        events.append("exit")

    app = App(lifespan=lifespan, on_startup=[lambda: events.append("startup")])

    @app.on_shutdown
    async def bye() -> None:
        events.append("shutdown")

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"db": request.state.db, "pool": request.app.state.pool}

    async with server_context(app) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/state")).json() == {"db": "connected", "pool": "pool-object"}
        assert events == ["startup", "enter"]
    assert events == ["startup", "enter", "exit", "shutdown"]


class TeapotError(Exception):
    pass


class SpecificTeapotError(TeapotError):
    pass


async def test_exception_handlers_by_type_and_status(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.exception_handler(TeapotError)
    async def teapot(request: Request, error: Exception) -> Response:
        return JSONResponse({"teapot": type(error).__name__, "path": request.url.path}, 418)

    @app.exception_handler(404)
    def not_found(request: Request, error: Exception) -> Response:
        return PlainTextResponse(f"no page at {request.url.path}", 404)

    @app.exception_handler(500)
    async def server_error(request: Request, error: Exception) -> Response:
        return PlainTextResponse(f"sorry: {type(error).__name__}", 500)

    @app.get("/teapot")
    async def raise_teapot() -> None:
        raise SpecificTeapotError

    @app.get("/gone")
    async def gone() -> None:
        raise HTTPException(404, "gone", headers={"x-why": "deleted"})

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise HTTPException(403)

    @app.get("/crash")
    async def crash() -> None:
        raise ZeroDivisionError

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        tea = await client.get("/teapot")
        assert (tea.status_code, tea.json()) == (
            418,
            {"teapot": "SpecificTeapotError", "path": "/teapot"},
        )
        assert (await client.get("/nowhere")).text == "no page at /nowhere"
        assert (await client.get("/gone")).text == "no page at /gone"
        denied = await client.get("/forbidden")
        assert (denied.status_code, denied.json()) == (403, {"detail": "Forbidden"})
        with caplog.at_level(logging.ERROR, logger="rws.http.web"):
            crashed = await client.get("/crash")
        assert (crashed.status_code, crashed.text) == (500, "sorry: ZeroDivisionError")
        assert any(record.exc_info for record in caplog.records if record.name == "rws.http.web")


async def test_unhandled_error_is_500_without_details_unless_debug(served: Any) -> None:
    for debug in (False, True):
        app = App(debug=debug)

        @app.get("/crash")
        async def crash() -> None:
            raise ValueError("secret internals")

        async with httpx.AsyncClient(base_url=await served(app)) as client:
            answer = await client.get("/crash")
        assert answer.status_code == 500
        if debug:
            assert "secret internals" in answer.text and "Traceback" in answer.text
        else:
            assert answer.json() == {"detail": "Internal Server Error"}
            assert "secret" not in answer.text


class AddHeader:
    """A pure ASGI middleware, as third-party ones are written."""

    def __init__(self, app: Any, name: str, value: str) -> None:
        self.app = app
        self.header = (name.encode(), value.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, wrapped)


async def test_app_and_route_middleware_order(served: Any) -> None:
    from rws.http.web.middleware import Middleware

    app = App(middleware=[Middleware(AddHeader, "x-first", "1")])
    app.add_middleware(AddHeader, "x-second", "2")

    async def only_here() -> str:
        return "ok"

    app.add_route("/mw", only_here, ["GET"], middleware=[Middleware(AddHeader, "x-route", "r")])

    @app.get("/plain")
    async def plain() -> str:
        return "plain"

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        routed = await client.get("/mw")
        assert routed.headers["x-first"] == "1" and routed.headers["x-second"] == "2"
        assert routed.headers["x-route"] == "r"
        plain_answer = await client.get("/plain")
        assert "x-route" not in plain_answer.headers and plain_answer.headers["x-first"] == "1"
        # Errors raised by the router still pass through user middleware as responses.
        missing = await client.get("/missing")
        assert missing.status_code == 404 and missing.headers["x-first"] == "1"


async def test_routes_cannot_change_after_start() -> None:
    app = App()

    @app.get("/")
    async def home() -> str:
        return "x"

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    with pytest.raises(RuntimeError, match="cannot change"):
        app.add_route("/late", home)


async def test_sync_handlers_run_off_the_loop(served: Any) -> None:
    app = App()
    loop_threads: set[int] = set()

    @app.get("/sync")
    def sync_handler() -> dict[str, bool]:
        import threading

        loop_threads.add(threading.get_ident())
        return {"in_thread": threading.current_thread() is not threading.main_thread()}

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        assert (await client.get("/sync")).json() == {"in_thread": True}


def test_handler_errors_fail_at_registration() -> None:
    app = App()

    async def no_hint(x) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(TypeError, match="needs a type hint"):
        app.add_route("/x", no_hint)

    async def wrong_path(id: int) -> None:
        return None

    async def marked(other: Annotated[int, Path()]) -> None:
        return None

    with pytest.raises(TypeError, match="not a parameter of the route path"):
        app.add_route("/y/{id}", marked)


async def test_lifespan_startup_failure_stops_the_server(caplog: pytest.LogCaptureFixture) -> None:
    """rws-http only: uvicorn answers a failed startup with sys.exit() inside the event loop,
    which a test cannot catch."""
    from rws.http.server import Config, Server

    app = App(on_startup=[lambda: 1 / 0])
    server = Server(app, Config(bind=("127.0.0.1:0",)))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        async with asyncio.timeout(10):
            await server.start()


def test_url_for_a_file_under_a_named_mount() -> None:
    async def files(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    app = App()
    app.mount("/static", files, name="static")
    assert app.url_path_for("static", path="/css/site.css") == "/static/css/site.css"
    assert app.url_path_for("static") == "/static/"


async def test_client_leaving_mid_body_is_not_a_server_error(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    reached = asyncio.Event()

    @app.post("/upload")
    async def upload(request: Request) -> str:
        async for _ in request.stream():
            reached.set()
        return "complete"

    base = await served(app)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
    )
    await writer.drain()
    async with asyncio.timeout(10):
        await reached.wait()
    writer.close()
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_405_allow_lists_every_route_on_the_path(served: Any) -> None:
    app = App()

    @app.get("/items")
    async def list_items() -> list[int]:
        return []

    @app.post("/items")
    async def add_item() -> None:
        return None

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        refused = await client.delete("/items")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, POST"
