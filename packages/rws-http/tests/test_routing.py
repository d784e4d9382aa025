"""rws.http.web routing: patterns, matching, 404/405, mounts, hosts, url_path_for, and a
router served for real by uvicorn and by rws-http, queried with httpx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from rws.http.web import Host, Mount, NoMatchFound, Route, Router
from rws.http.web.routing import Match

Scope = dict[str, Any]


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Replies with what routing put in the scope, as JSON."""
    route = scope.get("route")
    body = {
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "params": {key: str(value) for key, value in scope.get("path_params", {}).items()},
        "types": {key: type(value).__name__ for key, value in scope.get("path_params", {}).items()},
        "route": route.name if route is not None else None,
    }
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(body)})
        await send({"type": "websocket.close"})
        return
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": data})


def named(name: str) -> Callable[[Any, Any, Any], Any]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["tag"] = name
        await echo(scope, receive, send)

    return app


async def call(app: Any, path: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    """Run ``app`` on an HTTP scope; the response status, headers, JSON (or text) body."""
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        **extra,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    try:
        content: Any = json.loads(body)
    except ValueError:
        content = body.decode()
    return {
        "status": sent[0]["status"],
        "headers": dict(sent[0]["headers"]),
        "body": content,
        "scope": scope,
    }


# Patterns ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    ["/a/{id:nope}", "/a/{id}/{id:int}", "/a/{id", "/a/id}", "/a/{{id}}", "/a/{}", "/a/{1x}"],
)
def test_bad_pattern_is_a_value_error_naming_it(pattern: str) -> None:
    with pytest.raises(ValueError, match=f"pattern {pattern!r}".replace("{", r"\{")):
        Route(pattern, echo)


def test_route_path_must_start_with_slash() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        Route("users", echo)


async def test_typed_parameters() -> None:
    uid = uuid.uuid4()
    router = Router(
        [
            Route("/users/{id:int}", echo, name="user"),
            Route("/files/{rest:path}", echo, name="file"),
            Route("/n/{n:float}", echo, name="n"),
            Route("/u/{u:uuid}", echo, name="u"),
            Route("/s/{name}", echo, name="s"),
            Route("/pair/{a:int}-{b}", echo, name="pair"),
        ]
    )
    result = await call(router, "/users/42")
    assert result["body"]["params"] == {"id": "42"}
    assert result["body"]["types"] == {"id": "int"}
    assert result["scope"]["path_params"] == {"id": 42}
    assert result["scope"]["route"] is router.routes[0]
    assert (await call(router, "/files/a/b/c.txt"))["body"]["params"] == {"rest": "a/b/c.txt"}
    assert (await call(router, "/n/2.5"))["scope"]["path_params"] == {"n": 2.5}
    assert (await call(router, f"/u/{uid}"))["scope"]["path_params"] == {"u": uid}
    assert (await call(router, "/s/bob"))["scope"]["path_params"] == {"name": "bob"}
    assert (await call(router, "/pair/3-x"))["scope"]["path_params"] == {"a": 3, "b": "x"}
    assert (await call(router, "/users/abc"))["status"] == 404
    assert (await call(router, "/s/a/b"))["status"] == 404  # str stops at a slash
    assert (await call(router, "/u/not-a-uuid"))["status"] == 404


# 404 / 405 / websocket -------------------------------------------------------------------


async def test_404_plain_text() -> None:
    result = await call(Router([Route("/a", echo)]), "/b")
    assert result["status"] == 404
    assert result["body"] == "Not Found"
    assert result["headers"][b"content-type"].startswith(b"text/plain")


async def test_405_lists_allowed_methods_with_head() -> None:
    router = Router(
        [
            Route("/items/{id:int}", echo, methods=["get"]),
            Route("/items/{id:int}", echo, methods=["DELETE"]),
        ]
    )
    result = await call(router, "/items/1", "POST")
    assert result["status"] == 405
    # Allow names every method served at the path, by any route (RFC 9110 §10.2.1).
    assert result["headers"][b"allow"] == b"DELETE, GET, HEAD"
    assert (await call(router, "/items/1", "HEAD"))["status"] == 200
    # A later route that takes the method still wins over the 405.
    assert (await call(router, "/items/1", "DELETE"))["status"] == 200


async def test_405_for_a_literal_route() -> None:
    router = Router([Route("/x", echo, methods=["POST", "PUT"])])
    result = await call(router, "/x", "GET")
    assert (result["status"], result["headers"][b"allow"]) == (405, b"POST, PUT")


async def test_methods_none_accepts_every_method() -> None:
    assert (await call(Router([Route("/x", echo)]), "/x", "PATCH"))["status"] == 200


async def websocket(app: Any, path: str, headers: Any = ()) -> list[dict[str, Any]]:
    scope: Scope = {"type": "websocket", "path": path, "root_path": "", "headers": list(headers)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_websocket_routes() -> None:
    router = Router([Route("/ws/{room}", echo, websocket=True, name="ws"), Route("/ws/x", echo)])
    sent = await websocket(router, "/ws/lobby")
    assert sent[0] == {"type": "websocket.accept"}
    assert json.loads(sent[1]["text"])["params"] == {"room": "lobby"}
    # Nothing matches: closed before accept (the server answers 403).
    assert await websocket(router, "/nope") == [{"type": "websocket.close", "code": 1000}]
    # An HTTP route never serves a WebSocket, nor a WebSocket route HTTP.
    assert (await call(Router([Route("/ws", echo, websocket=True)]), "/ws"))["status"] == 404
    with pytest.raises(ValueError, match="takes no methods"):
        Route("/ws", echo, websocket=True, methods=["GET"])


async def test_lifespan_is_acknowledged() -> None:
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await Router()({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# Declaration order ------------------------------------------------------------------------


async def test_first_declared_wins_param_before_literal() -> None:
    router = Router(
        [Route("/users/{name}", named("param"), name="p"), Route("/users/me", echo, name="me")]
    )
    assert (await call(router, "/users/me"))["body"]["route"] == "p"


async def test_first_declared_wins_literal_before_param() -> None:
    router = Router([Route("/users/me", echo, name="me"), Route("/users/{name}", echo, name="p")])
    assert (await call(router, "/users/me"))["body"]["route"] == "me"
    assert (await call(router, "/users/bob"))["body"]["route"] == "p"


async def test_first_declared_wins_among_params_and_mounts() -> None:
    router = Router(
        [
            Route("/a/{x:int}", echo, name="int"),
            Route("/a/{x}", echo, name="str"),
            Mount("/m", echo),
            Route("/m/{x}", echo, name="after-mount"),
            Route("/k/{x}", echo, name="before-mount"),
            Mount("/k", echo),
        ]
    )
    assert (await call(router, "/a/1"))["body"]["route"] == "int"
    assert (await call(router, "/a/b"))["body"]["route"] == "str"
    assert (await call(router, "/m/1"))["body"]["root_path"] == "/m"  # the mount came first
    assert (await call(router, "/k/1"))["body"]["route"] == "before-mount"


async def test_order_across_prefix_groups() -> None:
    router = Router(
        [
            Route("/{a}/x", echo, name="any-first-segment"),
            Route("/b/{c}", echo, name="b"),
            Route("/api/v1/{d}/y", echo, name="deep"),
            Route("/api/{e}/z/y", echo, name="shallow"),
        ]
    )
    assert (await call(router, "/b/x"))["body"]["route"] == "any-first-segment"
    assert (await call(router, "/b/q"))["body"]["route"] == "b"
    assert (await call(router, "/api/v1/z/y"))["body"]["route"] == "deep"
    assert (await call(router, "/api/v2/z/y"))["body"]["route"] == "shallow"


async def test_many_routes_last_and_miss() -> None:
    routes: list[Any] = []
    for i in range(500):
        routes.append(Route(f"/static/{i}", echo, name=f"s{i}"))
        routes.append(Route(f"/items{i}/{{id:int}}", echo, name=f"i{i}"))
    router = Router(routes)
    assert (await call(router, "/items499/7"))["body"]["route"] == "i499"
    assert (await call(router, "/static/499"))["body"]["route"] == "s499"
    assert (await call(router, "/nothing"))["status"] == 404
    assert router.lookup({"type": "http", "path": "/nothing", "method": "GET"})[0] is Match.NONE


# Mount and Host ---------------------------------------------------------------------------


async def test_mount_root_path_asgi_2_4() -> None:
    inner = Router([Route("/users/{id:int}", echo, name="user"), Route("/", echo, name="home")])
    router = Router([Mount("/api/{version}", inner, name="api"), Mount("/static", echo)])
    body = (await call(router, "/api/v1/users/3"))["body"]
    assert body["path"] == "/api/v1/users/3"  # path keeps the full path
    assert body["root_path"] == "/api/v1"
    assert body["params"] == {"version": "v1", "id": "3"}
    assert (await call(router, "/api/v1"))["body"]["route"] == "home"
    assert (await call(router, "/api/v1/"))["body"]["route"] == "home"
    assert (await call(router, "/api/v1/nope"))["status"] == 404
    assert (await call(router, "/apix"))["status"] == 404
    # Under a server root_path the prefixes add up.
    body = (await call(router, "/base/static/x.css", root_path="/base"))["body"]
    assert (body["path"], body["root_path"]) == ("/base/static/x.css", "/base/static")


async def test_mount_routes_argument_and_validation() -> None:
    router = Router([Mount("/a", routes=[Route("/b", echo, name="b")], name="a")])
    assert (await call(router, "/a/b"))["body"]["route"] == "b"
    with pytest.raises(ValueError, match="exactly one"):
        Mount("/a")
    with pytest.raises(ValueError, match="must start and not end"):
        Mount("/a/", echo)


async def test_host_routing() -> None:
    router = Router(
        [
            Host("api.example.com", named("api"), name="api"),
            Host("{sub}.example.com", Router([Route("/", echo, name="sub")]), name="tenant"),
        ]
    )
    result = await call(router, "/", headers=[(b"host", b"api.example.com:8080")])
    assert result["scope"]["tag"] == "api"
    result = await call(router, "/", headers=[(b"host", b"acme.example.com")])
    assert result["body"]["params"] == {"sub": "acme"}
    assert result["body"]["route"] == "sub"
    assert (await call(router, "/", headers=[(b"host", b"other.org")]))["status"] == 404


# url_path_for -----------------------------------------------------------------------------


def test_url_path_for() -> None:
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    inner = Router(
        [Route("/users/{id:int}", echo, name="user"), Route("/f/{p:path}", echo, name="file")]
    )
    router = Router(
        [
            Route("/", echo, name="home"),
            Route("/s/{name}", echo, name="s"),
            Route("/n/{n:float}/{u:uuid}", echo, name="nu"),
            Mount("/api/{version}", inner, name="api"),
            Mount("/plain", Router([Route("/x", echo, name="unnamed-mount-route")])),
            Host("{sub}.example.com", Router([Route("/t", echo, name="t")]), name="tenant"),
        ]
    )
    assert router.url_path_for("home") == "/"
    assert router.url_path_for("s", name="a b?") == "/s/a%20b%3F"
    assert router.url_path_for("nu", n=2.5, u=uid) == f"/n/2.5/{uid}"
    assert router.url_path_for("api:user", version="v1", id=7) == "/api/v1/users/7"
    assert router.url_path_for("api:file", version="v1", p="a b/c.txt") == "/api/v1/f/a%20b/c.txt"
    assert router.url_path_for("api", version="v2") == "/api/v2/"
    assert router.url_path_for("unnamed-mount-route") == "/plain/x"
    assert router.url_path_for("tenant:t", sub="acme") == "/t"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, r"no route named 'nope' taking parameters \[\]"),
        ("user", {}, r"missing \['id'\]"),
        ("user", {"id": 1, "x": 2}, r"unexpected \['x'\]"),
        ("api:user", {"id": 1}, r"missing \['version'\]"),
        ("api:nope", {"version": "v1"}, "no route named 'api:nope'"),
    ],
)
def test_url_path_for_errors(name: str, params: dict[str, Any], message: str) -> None:
    router = Router(
        [
            Route("/users/{id:int}", echo, name="user"),
            Mount(
                "/api/{version}", Router([Route("/users/{id:int}", echo, name="user")]), name="api"
            ),
        ]
    )
    with pytest.raises(NoMatchFound, match=message):
        router.url_path_for(name, **params)


def test_url_path_for_bad_values() -> None:
    router = Router([Route("/users/{id:int}", echo, name="user"), Route("/s/{x}", echo, name="s")])
    with pytest.raises(ValueError, match="non-negative int"):
        router.url_path_for("user", id=-1)
    with pytest.raises(ValueError, match="slash-free"):
        router.url_path_for("s", x="")
    with pytest.raises(ValueError, match="slash-free"):  # a str param cannot hold a slash
        router.url_path_for("s", x="a/b")


# Served for real ---------------------------------------------------------------------------


def real_router() -> Router:
    api = Router([Route("/users/{id:int}", echo, methods=["GET"], name="user")])
    return Router(
        [
            Host("tenant.example.com", Router([Route("/", named("tenant"), name="tenant-home")])),
            Route("/users/{id:int}", echo, methods=["GET", "POST"], name="user"),
            Mount("/api", api, name="api"),
        ]
    )


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, not an event)
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(params=["rws", "uvicorn"])
async def address(request: pytest.FixtureRequest, running: Any) -> AsyncIterator[str]:
    if request.param == "uvicorn":
        async with uvicorn_server(real_router()) as where:
            yield where
    else:
        async with running(real_router()) as server:
            yield server.addresses[0]


async def test_served_router(address: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        response = await client.get("/users/42")
        assert response.status_code == 200
        assert response.json()["params"] == {"id": "42"}
        assert response.json()["types"] == {"id": "int"}

        response = await client.get("/users/abc")
        assert (response.status_code, response.text) == (404, "Not Found")

        response = await client.delete("/users/42")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD, POST"

        response = await client.head("/users/42")
        assert response.status_code == 200

        body = (await client.get("/api/users/7")).json()
        assert (body["path"], body["root_path"], body["route"]) == ("/api/users/7", "/api", "user")

        response = await client.get("/", headers={"host": "tenant.example.com:1234"})
        assert (response.status_code, response.json()["route"]) == (200, "tenant-home")
        assert (await client.get("/", headers={"host": "other.example.com"})).status_code == 404


def linear_lookup(router: Router, scope: Scope) -> tuple[Match, Any]:
    """The reference: a plain scan, first full match, else first partial."""
    partial = None
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return match, route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def test_index_agrees_with_a_linear_scan() -> None:
    import random

    rng = random.Random(7)
    seen: set[Match] = set()
    pieces = ["a", "b", "{x}", "{n:int}", "{p:path}", "c{y}", "1"]
    for _ in range(40):
        routes: list[Any] = []
        for _ in range(rng.randint(1, 25)):
            depth = rng.randint(1, 3)
            names = iter(["x", "n", "p", "y"])
            segments = []
            for _ in range(depth):
                piece = rng.choice(pieces)
                if "{" in piece:
                    piece = piece.replace("{x}", "{" + next(names, "z") + "}")
                segments.append(piece)
            path = "/" + "/".join(segments)
            with contextlib.suppress(ValueError):  # a repeated name: not a valid route
                methods = rng.choice([None, ["GET"], ["POST"]])
                if rng.random() < 0.15:
                    routes.append(Mount("/" + segments[0].replace("{p:path}", "m"), echo))
                else:
                    routes.append(Route(path, echo, methods=methods))
        router = Router(routes)
        for _ in range(60):
            path = "/" + "/".join(rng.choice(["a", "b", "1", "c2", "zz"]) for _ in range(3))
            path = path[: rng.randint(1, len(path))]
            for method in ("GET", "POST"):
                scope: Scope = {"type": "http", "method": method, "path": path, "root_path": ""}
                match, route, _ = router.lookup(scope)
                assert (match, route) == linear_lookup(router, scope), (routes, path, method)
                seen.add(match)
    assert seen == set(Match)  # the tables exercised full, partial and no matches


def test_framework_does_not_import_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rws.http.web; assert 'rws.http.server' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
