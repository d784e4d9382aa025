"""Request: headers (case-insensitive multi-dict), query, cookies, client, URL, body, stream,
json, body limits (app-wide and per route, 413), disconnect; served by both servers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from rws.http.web import App, Headers, MutableHeaders, QueryParams, Request
from rws.http.web.datastructures import URL


def make_app() -> App:
    app = App(max_body_size=1000)

    @app.route("/echo", ["GET", "POST"])
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "url": str(request.url),
            "path": request.url.path,
            "query": request.query_params.multi_items(),
            "last_tag": request.query_params.get("tag"),
            "accept": request.headers.getlist("X-Multi"),
            "first": request.headers.get("x-multi"),
            "cookies": request.cookies,
            "client": request.client.host if request.client else None,
            "body": (await request.body()).decode(),
            "again": (await request.body()).decode(),  # cached: readable twice
        }

    @app.post("/json")
    async def json_body(request: Request) -> Any:
        return await request.json()

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, int]:
        total = chunks = 0
        async for chunk in request.stream():
            total += len(chunk)
            chunks += 1
        return {"bytes": total, "chunks_seen": min(chunks, 1)}

    @app.post("/big", max_body_size=100_000)
    async def big(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/unlimited", max_body_size=None)
    async def unlimited(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


async def test_request_parts(served: Any) -> None:
    base = await served(make_app())
    async with httpx.AsyncClient(base_url=base, cookies={"a": "1", "b": '"quoted"'}) as client:
        answer = await client.post(
            "/echo?tag=x&tag=y&empty=&name=%C3%A9",
            content=b"hello",
            headers=[("X-Multi", "one"), ("x-multi", "two")],
        )
    data = answer.json()
    assert data["method"] == "POST"
    assert data["url"] == f"{base}/echo?tag=x&tag=y&empty=&name=%C3%A9"
    assert data["path"] == "/echo"
    assert data["query"] == [["tag", "x"], ["tag", "y"], ["empty", ""], ["name", "é"]]
    assert data["last_tag"] == "y"
    assert data["accept"] == ["one", "two"] and data["first"] == "one"
    assert data["cookies"] == {"a": "1", "b": "quoted"}
    assert data["client"] == "127.0.0.1"
    assert data["body"] == data["again"] == "hello"


async def test_json_and_bad_json(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        assert (await client.post("/json", json={"é": [1, None]})).json() == {"é": [1, None]}
        bad = await client.post("/json", content=b"{nope")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]


async def test_streamed_body_and_limits(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:

        async def chunks(count: int, size: int) -> Any:
            for _ in range(count):
                yield b"x" * size

        ok = await client.post("/stream", content=chunks(5, 100))
        assert ok.json() == {"bytes": 500, "chunks_seen": 1}
        # App-wide limit 1000 bytes: announced too large, and streamed too large.
        announced = await client.post("/stream", content=b"x" * 1001)
        assert announced.status_code == 413
        assert "1000 bytes" in announced.json()["detail"]
        streamed = await client.post("/stream", content=chunks(20, 100))
        assert streamed.status_code == 413
        # The route raises its own limit, and another route lifts it.
        assert (await client.post("/big", content=b"x" * 50_000)).json() == {"bytes": 50_000}
        assert (await client.post("/big", content=b"x" * 100_001)).status_code == 413
        lifted = await client.post("/unlimited", content=b"x" * 200_000)
        assert lifted.json() == {"bytes": 200_000}


async def test_disconnect_is_seen(served: Any) -> None:
    app = App()
    seen = asyncio.Event()

    @app.get("/wait")
    async def wait(request: Request) -> str:
        await request.body()
        for _ in range(500):
            if await request.is_disconnected():
                seen.set()
                return "gone"
            await asyncio.sleep(0.01)
        return "never"

    base = await served(app)
    async with httpx.AsyncClient(base_url=base) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/wait", timeout=0.3)
    async with asyncio.timeout(10):
        await seen.wait()


def test_headers_multidict() -> None:
    headers = Headers(raw=[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
    assert headers["A"] == "1" and headers.getlist("a") == ["1", "3"]
    assert "B" in headers and "c" not in headers and len(headers) == 3
    mutable = headers.mutablecopy()
    mutable["a"] = "9"
    assert mutable.raw == [(b"a", b"9"), (b"b", b"2")]
    mutable.append("Set-Cookie", "x=1")
    mutable.add_vary_header("Origin")
    mutable.add_vary_header("origin")
    assert mutable["vary"] == "Origin"
    del mutable["b"]
    assert "b" not in mutable
    with pytest.raises(ValueError, match="CR, LF"):
        mutable["x"] = "bad\r\nInjected: 1"
    shared: list[tuple[bytes, bytes]] = []
    MutableHeaders(raw=shared).append("x", "1")
    assert shared == [(b"x", b"1")]  # edits the list it wraps (an ASGI message's headers)


def test_query_params_and_url() -> None:
    params = QueryParams("a=1&a=2&b=%20x&c")
    assert params["a"] == "2" and params.getlist("a") == ["1", "2"]
    assert params["b"] == " x" and params["c"] == ""
    assert str(QueryParams({"q": "a b"})) == "q=a+b"
    url = URL("https://example.com:8443/a/b?x=1#frag")
    assert (url.scheme, url.hostname, url.port, url.path, url.query) == (
        "https",
        "example.com",
        8443,
        "/a/b",
        "x=1",
    )
    assert url.is_secure and url == "https://example.com:8443/a/b?x=1#frag"
    assert url.replace(port=None, query="") == "https://example.com/a/b#frag"
    assert url.include_query_params(y=2) == "https://example.com:8443/a/b?x=1&y=2#frag"
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("10.0.0.1", 80),
        "path": "/sub/p",
        "root_path": "/sub",
        "query_string": b"q=1",
        "headers": [],
    }
    assert URL(scope=scope) == "http://10.0.0.1/sub/p?q=1"


async def test_route_limit_overrides_rws_server_limit(served: Any, server_name: str) -> None:
    """Under rws-http the route's limit is passed to the server (rws.http.body_limit), so a
    route may accept more than the server's default and the server refuses early beyond it."""
    options = {"max_body_size": 1000} if server_name == "rws" else {}
    base = await served(make_app(), **options)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.post("/big", content=b"x" * 50_000)).json() == {"bytes": 50_000}
        assert (await client.post("/big", content=b"x" * 100_001)).status_code == 413
        # HTTP/1.1 chunked (no Content-Length) too.

        async def chunks() -> Any:
            for _ in range(50):
                yield b"x" * 1000

        assert (await client.post("/big", content=chunks())).json() == {"bytes": 50_000}


def test_query_fast_path_agrees_with_parse_qsl() -> None:
    """parse_query skips parse_qsl when nothing needs decoding; both must always agree."""
    import random
    from urllib.parse import parse_qsl

    from rws.http.web.datastructures import parse_query

    alphabet = "ab=&%+2Fé;x "
    generator = random.Random(20261122)
    for _ in range(5000):
        query = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 12)))
        assert parse_query(query) == parse_qsl(query, keep_blank_values=True), query
