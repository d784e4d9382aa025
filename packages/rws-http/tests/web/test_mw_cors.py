"""CORSMiddleware under both servers (preflights, simple requests, Vary, credentials), the
``Middleware`` wrapper, and composition with Starlette in both directions."""

from __future__ import annotations

import httpx
import pytest

from rws.http.web.middleware import Middleware
from rws.http.web.middleware.cors import CORSMiddleware
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served

SITE = "https://app.example.com"


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"content-type", b"text/plain"), (b"x-total", b"3"), (b"vary", b"Cookie")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": scope["method"].encode()})


def app(**options: object) -> ASGIApp:
    router = Router([Route("/", hello)])
    return CORSMiddleware(router, **options)  # type: ignore[arg-type]


def preflight(origin: str, method: str = "PUT", headers: str | None = None) -> dict[str, str]:
    result = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        result["Access-Control-Request-Headers"] = headers
    return result


async def test_preflight_allowed(served: Served) -> None:
    base = await served(
        app(allow_origins=[SITE], allow_methods=["GET", "put"], allow_headers=["X-Token"])
    )
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.options(
            "/", headers=preflight(SITE, "PUT", "x-token, Content-Type")
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["access-control-allow-methods"] == "GET, PUT"
    assert response.headers["access-control-allow-headers"] == "x-token, content-type"
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"] == (
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
        "Access-Control-Request-Private-Network"
    )
    assert "access-control-allow-private-network" not in response.headers


async def test_private_network_preflight(served: Served) -> None:
    asked = {**preflight(SITE, "GET"), "Access-Control-Request-Private-Network": "true"}
    refused_base = await served(app(allow_origins=[SITE]))
    allowed_base = await served(app(allow_origins=[SITE], allow_private_network=True))
    async with httpx.AsyncClient(timeout=10) as client:
        refused = await client.options(refused_base + "/", headers=asked)
        allowed = await client.options(allowed_base + "/", headers=asked)
    assert refused.status_code == 400 and refused.text == "Disallowed CORS private-network"
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-private-network"] == "true"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (preflight("https://evil.example"), "origin"),
        (preflight(SITE, "DELETE"), "method"),
        (preflight(SITE, "PUT", "x-token, x-other"), "headers"),
        (preflight("https://evil.example", "DELETE", "x-other"), "origin, method, headers"),
    ],
)
async def test_preflight_refused_with_reason(
    served: Served, headers: dict[str, str], reason: str
) -> None:
    base = await served(app(allow_origins=[SITE], allow_methods=["PUT"], allow_headers=["x-token"]))
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.options("/", headers=headers)
    assert response.status_code == 400
    assert response.text == f"Disallowed CORS {reason}"
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"].startswith("Origin")


@pytest.mark.parametrize(
    "origin",
    [
        "http://app.example.com",  # scheme differs
        "https://app.example.com:8443",  # port differs
        "https://APP.example.com.evil.net",
        "https://sub.app.example.com",
        "null",
    ],
)
async def test_origins_compared_exactly(served: Served, origin: str) -> None:
    base = await served(
        app(allow_origins=[SITE], allow_origin_regex=r"https://[a-z]+\.example\.org")
    )
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get("/", headers={"Origin": origin})
        regex_hit = await client.get("/", headers={"Origin": "https://a.example.org"})
        regex_suffix = await client.get("/", headers={"Origin": "https://a.example.org.evil"})
    assert "access-control-allow-origin" not in response.headers
    assert regex_hit.headers["access-control-allow-origin"] == "https://a.example.org"
    assert "access-control-allow-origin" not in regex_suffix.headers  # fullmatch


async def test_simple_request_and_vary(served: Served) -> None:
    base = await served(app(allow_origins=[SITE], expose_headers=["X-Total"]))
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        allowed = await client.get("/", headers={"Origin": SITE})
        refused = await client.get("/", headers={"Origin": "https://evil.example"})
        no_origin = await client.get("/")
        options = await client.options("/", headers={"Origin": SITE})  # not a preflight
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert allowed.headers["access-control-expose-headers"] == "X-Total"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in refused.headers
    # Every answer depends on Origin, including the one to a request without it (caches!).
    for response in (allowed, refused, no_origin):
        assert response.headers["vary"] == "Cookie, Origin"
        assert response.text == "GET"
    assert options.status_code == 200 and options.text == "OPTIONS"


async def test_any_origin_without_credentials(served: Served) -> None:
    base = await served(app(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]))
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        simple = await client.get("/", headers={"Origin": "https://anyone.example"})
        pre = await client.options("/", headers=preflight("https://x.example", "PATCH", "x-a"))
    assert simple.headers["access-control-allow-origin"] == "*"
    assert simple.headers["vary"] == "Cookie"  # same answer for every origin
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert pre.headers["access-control-allow-methods"] == "*"
    assert pre.headers["access-control-allow-headers"] == "*"


async def test_credentials_never_use_a_wildcard(served: Served) -> None:
    base = await served(
        app(
            allow_origin_regex=r"https://.*",
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            max_age=60,
        )
    )
    origin = "https://anyone.example"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        simple = await client.get("/", headers={"Origin": origin})
        pre = await client.options("/", headers=preflight(origin, "PATCH", "X-A, x-b"))
    assert simple.headers["access-control-allow-origin"] == origin
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in simple.headers["vary"]
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == origin
    assert pre.headers["access-control-allow-credentials"] == "true"
    assert pre.headers["access-control-allow-methods"] == "PATCH"
    assert pre.headers["access-control-allow-headers"] == "x-a, x-b"
    assert pre.headers["access-control-max-age"] == "60"
    for response in (simple, pre):
        assert "*" not in "".join(
            value for key, value in response.headers.items() if key.startswith("access-control")
        )


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, "allow_credentials"),
        ({"allow_origins": ["https://example.com/"]}, "trailing '/'"),
        ({"allow_origins": ["example.com"]}, "allow_origins"),
        ({"allow_origin_regex": "("}, "allow_origin_regex"),
        ({"allow_methods": ["GET POST"]}, "allow_methods"),
        ({"allow_headers": ["bad header"]}, "allow_headers"),
        ({"expose_headers": ["*"], "allow_origins": [SITE], "allow_credentials": True}, "expose"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": "600"}, "max_age"),
    ],
)
def test_bad_options(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CORSMiddleware(hello, **options)  # type: ignore[arg-type]


def test_middleware_wrapper() -> None:
    spec = Middleware(CORSMiddleware, allow_origins=[SITE], max_age=5)
    assert repr(spec) == f"Middleware(CORSMiddleware, allow_origins=['{SITE}'], max_age=5)"
    cls, args, kwargs = spec
    assert (cls, args, kwargs) == (CORSMiddleware, (), {"allow_origins": [SITE], "max_age": 5})
    built = spec.build(hello)
    assert isinstance(built, CORSMiddleware) and built.app is hello and built.max_age == 5


async def test_middleware_wrapper_in_a_starlette_app(served: Served) -> None:
    """Starlette's ``middleware=[...]`` unpacks rws ``Middleware`` objects like its own."""
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as StarletteRoute

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("starlette")

    inner = Starlette(
        routes=[StarletteRoute("/", page)],
        middleware=[Middleware(CORSMiddleware, allow_origins=[SITE])],  # type: ignore[list-item]
    )
    async with httpx.AsyncClient(base_url=await served(inner), timeout=10) as client:
        response = await client.get("/", headers={"Origin": SITE})
        pre = await client.options("/", headers=preflight(SITE, "GET"))
    assert response.text == "starlette"
    assert response.headers["access-control-allow-origin"] == SITE
    assert pre.status_code == 204


async def test_starlette_app_wrapped_by_rws_middleware(served: Served) -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as StarletteRoute

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("starlette")

    wrapped = CORSMiddleware(Starlette(routes=[StarletteRoute("/", page)]), allow_origins=[SITE])
    async with httpx.AsyncClient(base_url=await served(wrapped), timeout=10) as client:
        response = await client.get("/", headers={"Origin": SITE})
    assert response.text == "starlette"
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["vary"] == "Origin"


async def test_starlette_middleware_wrapping_a_rws_router(served: Served) -> None:
    pytest.importorskip("starlette")
    from starlette.middleware.cors import CORSMiddleware as StarletteCORS
    from starlette.middleware.gzip import GZipMiddleware

    big = b"x" * 2000

    async def large(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": big})

    router = Router([Route("/", hello), Route("/large", large)])
    wrapped = GZipMiddleware(StarletteCORS(router, allow_origins=[SITE]))
    async with httpx.AsyncClient(base_url=await served(wrapped), timeout=10) as client:
        response = await client.get("/", headers={"Origin": SITE})
        compressed = await client.get("/large", headers={"Accept-Encoding": "gzip"})
        missing = await client.get("/nowhere")
    assert response.text == "GET"
    assert response.headers["access-control-allow-origin"] == SITE
    assert compressed.headers["content-encoding"] == "gzip" and compressed.content == big
    assert missing.status_code == 404
