"""CompressionMiddleware under both servers, decoded by real clients: httpx, curl, and the
brotli / zstandard modules."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable, Sequence

import httpx
import pytest

from rws.http.web.middleware.compression import CompressionMiddleware, parse_accept_encoding
from rws.http.web.routing import Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served

TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(200))
Headers = Sequence[tuple[bytes, bytes]]


def respond(
    body: bytes = TEXT,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    status: int = 200,
    headers: Headers = (),
    length: bool = True,
) -> ASGIApp:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        all_headers = [(b"content-type", content_type), *headers]
        if length:
            all_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": body})

    return endpoint


def chunks(parts: Sequence[bytes], content_type: bytes = b"text/plain") -> ASGIApp:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", content_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return endpoint


def app(**options: object) -> ASGIApp:
    routes = [
        Route("/text", respond()),
        Route("/small", respond(b"tiny")),
        Route("/png", respond(TEXT, content_type=b"image/png")),
        Route("/svg", respond(TEXT, content_type=b"image/svg+xml")),
        Route("/octet", respond(TEXT, content_type=b"application/octet-stream")),
        Route("/encoded", respond(gzip.compress(TEXT), headers=[(b"content-encoding", b"gzip")])),
        Route("/no-transform", respond(headers=[(b"cache-control", b"public, no-transform")])),
        Route("/etag", respond(headers=[(b"etag", b'"v1"'), (b"vary", b"Cookie")])),
        Route("/weak", respond(headers=[(b"etag", b'W/"v1"')])),
        Route("/empty", respond(b"", status=204, length=False)),
        Route("/not-modified", respond(b"", status=304, length=False)),
        Route("/stream", chunks([TEXT[:1000], TEXT[1000:2000], TEXT[2000:]])),
    ]
    return CompressionMiddleware(Router(routes), **options)  # type: ignore[arg-type]


async def get_raw(base: str, path: str, accept: str | None, method: str = "GET") -> httpx.Response:
    """The response with its body as sent (not decoded by httpx)."""
    headers = {"accept-encoding": accept} if accept is not None else {}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        request = client.build_request(method, path, headers=headers)
        if accept is None:
            del request.headers["accept-encoding"]
        response = await client.send(request, stream=True)
        response._content = b"".join([part async for part in response.aiter_raw()])
        await response.aclose()
    return response


async def test_gzip_decoded_by_httpx(served: Served) -> None:
    base = await served(app())
    raw = await get_raw(base, "/text", "gzip")
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    assert int(raw.headers["content-length"]) == len(raw.content) < len(TEXT)
    assert gzip.decompress(raw.content) == TEXT
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        decoded = await client.get("/text", headers={"accept-encoding": "gzip"})
    assert decoded.content == TEXT


async def curl(*args: str) -> tuple[str, bytes]:
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-D", "-", "-o", "/dev/stdout", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), body


@pytest.mark.parametrize("coding", ["gzip", None])
async def test_curl_compressed_decodes_it(served: Served, coding: str | None) -> None:
    """``curl --compressed`` (offering every coding curl knows) decodes whichever we chose."""
    base = await served(app())
    extra = ["-H", f"Accept-Encoding: {coding}"] if coding else []
    head, body = await curl("--compressed", *extra, f"{base}/text")
    assert body == TEXT
    assert "content-encoding: " in head
    if coding:
        assert "content-encoding: gzip" in head
    head, body = await curl("--compressed", f"{base}/stream")
    assert body == TEXT and "content-encoding: " in head


async def test_brotli(served: Served) -> None:
    brotli = pytest.importorskip("brotli")
    base = await served(app())
    raw = await get_raw(base, "/text", "br")
    assert raw.headers["content-encoding"] == "br"
    assert brotli.decompress(raw.content) == TEXT
    raw = await get_raw(base, "/stream", "br")
    assert raw.headers["content-encoding"] == "br"
    assert brotli.decompress(raw.content) == TEXT


async def test_zstd(served: Served) -> None:
    zstandard = pytest.importorskip("zstandard")
    base = await served(app())
    for path in ("/text", "/stream"):
        raw = await get_raw(base, path, "zstd")
        assert raw.headers["content-encoding"] == "zstd"
        assert zstandard.ZstdDecompressor().decompressobj().decompress(raw.content) == TEXT


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip;q=0", None),
        ("gzip;q=0, br;q=0, zstd;q=0", None),
        ("identity", None),
        ("", None),
        ("gzip;q=0.5, identity;q=1", None),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate, gzip;q=0.2", "gzip"),
        ("gzip;q=1, br;q=0.5, zstd;q=0.4", "gzip"),
        ("gzip;q=bogus, zstd;q=0.1", "zstd"),
    ],
)
async def test_negotiation_with_q_values(served: Served, accept: str, expected: str | None) -> None:
    if expected == "zstd":
        pytest.importorskip("zstandard")
    raw = await get_raw(await served(app()), "/text", accept)
    assert raw.headers.get("content-encoding") == expected
    assert raw.headers["vary"] == "Accept-Encoding"  # the answer depends on the header
    if expected is None:
        assert raw.content == TEXT


async def test_server_preference_breaks_ties(served: Served) -> None:
    pytest.importorskip("brotli")
    base = await served(app())
    assert (await get_raw(base, "/text", "gzip, br")).headers["content-encoding"] == "br"
    assert (await get_raw(base, "/text", "*")).headers["content-encoding"] == "br"
    base = await served(app(encodings=["gzip"]))
    assert (await get_raw(base, "/text", "gzip, br")).headers["content-encoding"] == "gzip"
    assert "content-encoding" not in (await get_raw(base, "/text", "br")).headers


@pytest.mark.parametrize(
    "path", ["/small", "/png", "/octet", "/encoded", "/no-transform", "/empty", "/not-modified"]
)
async def test_left_alone(served: Served, path: str) -> None:
    base = await served(app())
    raw = await get_raw(base, path, "gzip")
    if path == "/encoded":
        assert raw.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw.content) == TEXT  # not compressed twice
    else:
        assert "content-encoding" not in raw.headers
    assert "accept-encoding" not in raw.headers.get("vary", "").lower()


async def test_head_is_not_compressed(served: Served) -> None:
    raw = await get_raw(await served(app()), "/text", "gzip", method="HEAD")
    assert raw.status_code == 200
    assert "content-encoding" not in raw.headers
    assert raw.headers["content-length"] == str(len(TEXT))


async def test_svg_is_compressed_although_an_image(served: Served) -> None:
    raw = await get_raw(await served(app()), "/svg", "gzip")
    assert raw.headers["content-encoding"] == "gzip"


async def test_minimum_size_option(served: Served) -> None:
    base = await served(app(minimum_size=1))
    raw = await get_raw(base, "/small", "gzip")
    assert raw.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw.content) == b"tiny"
    base = await served(app(minimum_size=len(TEXT) + 1))
    assert "content-encoding" not in (await get_raw(base, "/text", "gzip")).headers


async def test_strong_etag_weakened_and_vary_merged(served: Served) -> None:
    base = await served(app())
    raw = await get_raw(base, "/etag", "gzip")
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["etag"] == 'W/"v1"'
    assert raw.headers["vary"] == "Cookie, Accept-Encoding"
    assert (await get_raw(base, "/etag", None)).headers["etag"] == '"v1"'
    assert (await get_raw(base, "/weak", "gzip")).headers["etag"] == 'W/"v1"'


async def test_streamed_body_drops_content_length(served: Served) -> None:
    raw = await get_raw(await served(app()), "/stream", "gzip")
    assert raw.headers["content-encoding"] == "gzip"
    assert "content-length" not in raw.headers
    assert gzip.decompress(raw.content) == TEXT


def incremental_decoder(coding: str) -> Callable[[bytes], bytes]:
    if coding == "gzip":
        return zlib.decompressobj(31).decompress
    if coding == "br":
        brotli = pytest.importorskip("brotli")
        decoder = brotli.Decompressor()
        return lambda data: bytes(decoder.process(data))
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdDecompressor().decompressobj().decompress  # type: ignore[no-any-return]


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_streaming_still_streams(served: Served, coding: str) -> None:
    """Each event reaches the client, decodable, before the app produces the next one."""
    decode = incremental_decoder(coding)
    events = [b"data: %d\n\n" % n for n in range(3)]
    delivered = [asyncio.Event() for _ in events]

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event, seen in zip(events, delivered, strict=True):
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await seen.wait()  # the client must have decoded this event by now
        await send({"type": "http.response.body", "body": b""})

    base = await served(CompressionMiddleware(Router([Route("/events", stream)])))
    received = b""
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as client,
        client.stream("GET", "/events", headers={"accept-encoding": coding}) as response,
    ):
        assert response.headers["content-encoding"] == coding
        async for part in response.aiter_raw():
            received += decode(part)
            for count, seen in enumerate(delivered, 1):
                if received == b"".join(events[:count]):
                    seen.set()
    assert all(seen.is_set() for seen in delivered)
    assert received == b"".join(events)


async def test_starlette_app_inside(served: Served) -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route as StarletteRoute

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(TEXT.decode())

    inner = Starlette(routes=[StarletteRoute("/", page)])
    raw = await get_raw(await served(CompressionMiddleware(inner)), "/", "gzip")
    assert raw.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw.content) == TEXT


def test_parse_accept_encoding() -> None:
    assert parse_accept_encoding("gzip;q=0.5, BR ; q=1.5, zstd;q=-1, , x-gzip;Q=0.1") == {
        "gzip": 0.1,
        "br": 1.0,
        "zstd": 0.0,
    }


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"minimum_size": -1}, "minimum_size"),
        ({"compresslevel": 10}, "compresslevel"),
        ({"compresslevel": 0}, "compresslevel"),
        ({"brotli_quality": 12}, "brotli_quality"),
        ({"zstd_level": 0}, "zstd_level"),
        ({"encodings": ["lzma"]}, "encodings"),
        ({"encodings": "gzip"}, "encodings"),
        ({"encodings": []}, "encodings"),
    ],
)
def test_bad_options(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CompressionMiddleware(respond(), **options)  # type: ignore[arg-type]
