"""FileResponse against real servers (rws-http and uvicorn), httpx and curl.

Range and multipart bodies are checked byte for byte against the file, and multipart
bodies are also parsed with the stdlib ``email`` parser, a client independent of ours.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import os
import shutil
import tracemalloc
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from rws.http.web.fileresponse import FileResponse, parse_range
from rws.http.web.responses import BackgroundTask
from rws.http.web.routing import Route, Router
from rws.http.web.types import Message, Receive, Scope, Send

from .conftest import Served

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset's value is predictable
SIZE = len(DATA)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


def file_app(path: Path, **options: Any) -> Router:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await FileResponse(path, **options)(scope, receive, send)

    return Router([Route("/file", endpoint)])


async def client_for(served: Served, path: Path, **options: Any) -> httpx.AsyncClient:
    base = await served(file_app(path, **options))
    return httpx.AsyncClient(base_url=base)


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err


def multipart_parts(response: httpx.Response) -> list[tuple[str, str, bytes]]:
    """(Content-Type, Content-Range, payload) per part, as the stdlib email parser reads it."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + response.content, policy=email.policy.HTTP)
    assert message.is_multipart()
    assert not message.defects
    parts = []
    for part in message.iter_parts():
        assert isinstance(part, email.message.EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts.append((part["content-type"], part["content-range"], payload))
    return parts


# -- whole file -------------------------------------------------------------------------


async def test_get_sends_the_file_with_validators(served: Served, data_file: Path) -> None:
    async with await client_for(served, data_file) as client:
        response = await client.get("/file")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["accept-ranges"] == "bytes"
    stat_result = os.stat(data_file)
    assert response.headers["etag"] == f'"{stat_result.st_mtime_ns:x}-{SIZE:x}"'  # strong
    assert response.headers["last-modified"] == formatdate(stat_result.st_mtime, usegmt=True)


async def test_head_has_the_headers_and_no_body(served: Served, data_file: Path) -> None:
    async with await client_for(served, data_file) as client:
        response = await client.head("/file")
        ranged = await client.head("/file", headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(SIZE)
    # RFC 9110 §14.2: range handling is defined for GET only.
    assert ranged.status_code == 200
    assert ranged.headers["content-length"] == str(SIZE)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("notes.txt", "text/plain; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("page.html", "text/html; charset=utf-8"),
        ("backup.tar.gz", "application/gzip"),
        ("blob.unknownext", "application/octet-stream"),
        ("font.woff2", "font/woff2"),
    ],
)
async def test_media_type_is_guessed(
    served: Served, tmp_path: Path, name: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    async with await client_for(served, path) as client:
        response = await client.get("/file")
    assert response.headers["content-type"] == expected


async def test_filename_gives_an_rfc6266_content_disposition(
    served: Served, data_file: Path
) -> None:
    async with await client_for(served, data_file, filename="résumé 2024.pdf") as client:
        response = await client.get("/file")
    value = response.headers["content-disposition"]
    assert value == (
        "attachment; filename=\"resume 2024.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.pdf"
    )
    assert response.headers["content-type"] == "application/pdf"
    # The extended parameter decodes with a real RFC 2231/5987 parser (the stdlib's; it
    # keeps the first of two filename parameters, so it is given that one alone).
    message = email.message.EmailMessage()
    message["Content-Disposition"] = "attachment; " + value.split("; ")[-1]
    assert message.get_filename() == "résumé 2024.pdf"


async def test_ascii_filename_is_quoted_and_escaped(served: Served, data_file: Path) -> None:
    options = {"filename": 'say "hi".txt', "content_disposition_type": "inline"}
    async with await client_for(served, data_file, **options) as client:
        response = await client.get("/file")
    assert response.headers["content-disposition"] == 'inline; filename="say \\"hi\\".txt"'


def test_bad_options_are_refused_at_construction(data_file: Path) -> None:
    with pytest.raises(ValueError, match="content_disposition_type"):
        FileResponse(data_file, content_disposition_type="download")
    with pytest.raises(ValueError, match="filename"):
        FileResponse(data_file, filename="a\r\nSet-Cookie: x=1")


# -- ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=-500", SIZE - 500, SIZE),  # suffix
        ("bytes=100-", 100, SIZE),  # open-ended
        ("bytes=10000-99999", 10000, SIZE),  # last-pos past the end is clamped
        ("bytes=-99999", 0, SIZE),  # suffix longer than the file
        ("BYTES = 5-5", 5, 6),  # unit is case-insensitive; whitespace tolerated
        ("bytes=0-1,20000-30000", 0, 2),  # the unsatisfiable one is dropped
        ("bytes=0-9,10-19", 0, 20),  # adjacent ranges coalesce into one part
        ("bytes=0-9,,", 0, 10),  # empty list elements are allowed
    ],
)
async def test_single_range(
    served: Served, data_file: Path, header: str, start: int, end: int
) -> None:
    async with await client_for(served, data_file) as client:
        response = await client.get("/file", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{SIZE}"
    assert response.headers["content-length"] == str(end - start)
    assert response.content == DATA[start:end]


@pytest.mark.parametrize(
    ("header", "spans"),
    [
        ("bytes=0-9,20-29,-5", [(0, 10), (20, 30), (SIZE - 5, SIZE)]),
        ("bytes=0-0,-1", [(0, 1), (SIZE - 1, SIZE)]),  # a Starlette bug report
        ("bytes=30-39,0-9,5-19", [(30, 40), (0, 20)]),  # request order kept, overlap merged
        ("bytes= 500-599 ,\t0-0", [(500, 600), (0, 1)]),
    ],
)
async def test_multiple_ranges_are_multipart(
    served: Served, data_file: Path, header: str, spans: list[tuple[int, int]]
) -> None:
    async with await client_for(served, data_file) as client:
        response = await client.get("/file", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(response.headers["content-length"]) == len(response.content)
    parts = multipart_parts(response)
    assert [(ctype, crange) for ctype, crange, _ in parts] == [
        ("application/octet-stream", f"bytes {start}-{end - 1}/{SIZE}") for start, end in spans
    ]
    assert [payload for _, _, payload in parts] == [DATA[start:end] for start, end in spans]


async def test_boundary_is_random(served: Served, data_file: Path) -> None:
    async with await client_for(served, data_file) as client:
        first = await client.get("/file", headers={"Range": "bytes=0-1,5-6"})
        second = await client.get("/file", headers={"Range": "bytes=0-1,5-6"})
    assert first.headers["content-type"] != second.headers["content-type"]


async def test_too_many_ranges_are_ignored(served: Served, data_file: Path) -> None:
    sixteen = ",".join(f"{n * 100}-{n * 100}" for n in range(16))
    seventeen = ",".join(f"{n * 100}-{n * 100}" for n in range(17))
    async with await client_for(served, data_file) as client:
        allowed = await client.get("/file", headers={"Range": f"bytes={sixteen}"})
        refused = await client.get("/file", headers={"Range": f"bytes={seventeen}"})
    assert allowed.status_code == 206
    assert len(multipart_parts(allowed)) == 16
    assert refused.status_code == 200
    assert refused.content == DATA


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "items=0-1",  # unknown unit
        "bytes=5-3",  # last-pos before first-pos: invalid, not unsatisfiable
        "bytes=",
        "bytes=-",
        "bytes 0-1",
        "bytes=1_0-20",  # int() would take these; the grammar does not
        "bytes=0x1-5",
        "bytes=+1-5",
        "bytes=0-1,x",  # one bad element spoils the header
    ],
)
async def test_invalid_range_is_ignored(served: Served, data_file: Path, header: str) -> None:
    async with await client_for(served, data_file) as client:
        response = await client.get("/file", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(served: Served, data_file: Path, header: str) -> None:
    async with await client_for(served, data_file) as client:
        response = await client.get("/file", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"


def test_parse_range_limits() -> None:
    assert parse_range("bytes=0-" + "9" * 5000, 10) == [(0, 10)]  # past int()'s digit limit
    assert parse_range("bytes=" + "9" * 5000 + "-", 10) == []
    assert parse_range("bytes=0-1", 0) == []  # an empty file has no satisfiable range
    assert parse_range("bytes=\u0663-5", 10) is None  # int() reads Arabic-Indic digits
    assert parse_range("bytes=0-1,2-3,4-5", 10, max_ranges=2) is None


# -- conditional requests --------------------------------------------------------------

PAST = "Mon, 01 Jan 2001 00:00:00 GMT"
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"


async def test_conditional_requests_follow_rfc9110_precedence(
    served: Served, data_file: Path
) -> None:
    async with await client_for(served, data_file) as client:
        first = await client.get("/file")
        etag, modified = first.headers["etag"], first.headers["last-modified"]

        async def status(method: str = "GET", **headers: str) -> int:
            named = {key.replace("_", "-"): value for key, value in headers.items()}
            response = await client.request(method, "/file", headers=named)
            return response.status_code

        # If-Match: strong comparison, 412 on mismatch; it takes precedence over IUS.
        assert await status(If_Match='"other"') == 412
        assert await status(If_Match=f'"other", {etag}') == 200
        assert await status(If_Match="*") == 200
        assert await status(If_Match=f"W/{etag}") == 412
        assert await status(If_Match=etag, If_Unmodified_Since=PAST) == 200
        # If-Unmodified-Since alone.
        assert await status(If_Unmodified_Since=PAST) == 412
        assert await status(If_Unmodified_Since=FUTURE) == 200
        assert await status(If_Unmodified_Since="not a date") == 200
        # If-None-Match: weak comparison, 304 for GET/HEAD, 412 for other methods.
        assert await status(If_None_Match=etag) == 304
        assert await status(If_None_Match=f"W/{etag}") == 304
        assert await status(If_None_Match=f'"a", "b", {etag}') == 304
        assert await status(If_None_Match="*") == 304
        assert await status("HEAD", If_None_Match=etag) == 304
        assert await status("POST", If_None_Match=etag) == 412
        assert await status(If_None_Match='"other"') == 200
        # If-None-Match wins over If-Modified-Since.
        assert await status(If_None_Match='"other"', If_Modified_Since=FUTURE) == 200
        # If-Modified-Since.
        assert await status(If_Modified_Since=modified) == 304
        assert await status(If_Modified_Since=FUTURE) == 304
        assert await status(If_Modified_Since=PAST) == 200
        assert await status(If_Modified_Since="yesterday") == 200
        # A failed precondition beats a Range.
        assert await status(If_None_Match=etag, Range="bytes=0-1") == 304


async def test_304_keeps_validators_and_drops_content_headers(
    served: Served, data_file: Path
) -> None:
    headers = {"Cache-Control": "public, max-age=60", "X-Custom": "kept"}
    async with await client_for(served, data_file, headers=headers) as client:
        etag = (await client.get("/file")).headers["etag"]
        response = await client.get("/file", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["x-custom"] == "kept"
    assert "last-modified" in response.headers
    assert "content-type" not in response.headers
    assert "accept-ranges" not in response.headers


async def test_non_200_status_ignores_preconditions_and_ranges(
    served: Served, data_file: Path
) -> None:
    async with await client_for(served, data_file, status_code=404) as client:
        response = await client.get("/file", headers={"If-None-Match": "*", "Range": "bytes=0-1"})
    assert response.status_code == 404
    assert response.content == DATA


async def test_if_range(served: Served, data_file: Path) -> None:
    async with await client_for(served, data_file) as client:
        first = await client.get("/file")
        etag, modified = first.headers["etag"], first.headers["last-modified"]

        async def get(if_range: str) -> httpx.Response:
            return await client.get("/file", headers={"Range": "bytes=0-9", "If-Range": if_range})

        assert (await get(etag)).status_code == 206
        assert (await get(modified)).status_code == 206
        stale = await get('"something-else"')
        assert stale.status_code == 200
        assert stale.content == DATA
        assert (await get(f"W/{etag}")).status_code == 200  # weak tags never match If-Range
        assert (await get(PAST)).status_code == 200
        assert (await get("garbage")).status_code == 200


async def test_caller_etag_wins(served: Served, data_file: Path) -> None:
    async with await client_for(served, data_file, headers={"ETag": '"v1"'}) as client:
        response = await client.get("/file", headers={"If-None-Match": '"v1"'})
    assert response.status_code == 304
    assert response.headers["etag"] == '"v1"'


# -- curl ----------------------------------------------------------------------------------


async def test_curl_range_and_resume(served: Served, data_file: Path, tmp_path: Path) -> None:
    base = await served(file_app(data_file))
    code, out, err = await curl("-r", "0-99", f"{base}/file")
    assert code == 0, err
    assert out == DATA[:100]

    partial = tmp_path / "download.bin"
    partial.write_bytes(DATA[:1000])  # an interrupted download
    code, _, err = await curl("-C", "-", "-o", str(partial), f"{base}/file")
    assert code == 0, err
    assert partial.read_bytes() == DATA


async def test_curl_if_modified_since(served: Served, data_file: Path, tmp_path: Path) -> None:
    base = await served(file_app(data_file))
    local = tmp_path / "local.bin"
    local.write_bytes(b"old copy")
    stat_result = os.stat(data_file)
    os.utime(local, ns=(stat_result.st_atime_ns, stat_result.st_mtime_ns))
    # -z FILE sends If-Modified-Since with FILE's mtime: same mtime, nothing new.
    code, out, err = await curl("-z", str(local), "-w", "%{http_code}", f"{base}/file")
    assert code == 0, err
    assert out == b"304"
    code, out, err = await curl("-z", PAST, "-o", os.devnull, "-w", "%{http_code}", f"{base}/file")
    assert code == 0, err
    assert out == b"200"


# -- memory, errors, pathsend --------------------------------------------------------------


def without_pathsend(app: Any) -> Any:
    """Hide the server's ``http.response.pathsend`` so FileResponse reads the file itself."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions.pop("http.response.pathsend", None)
            scope["extensions"] = extensions
        await app(scope, receive, send)

    return wrapper


async def test_a_100_mb_file_is_streamed_not_loaded(
    served: Served, server_name: str, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    size = 100 * 1024 * 1024
    with big.open("wb") as file:
        file.truncate(size)  # sparse: no 100 MB written to disk
    app = file_app(big)
    # FileResponse's own reading; and under rws-http, which offers pathsend, the server's.
    apps = [without_pathsend(app), app] if server_name == "rws" else [without_pathsend(app)]
    for served_app in apps:
        base = await served(served_app)
        # curl runs in its own process, so tracemalloc sees only the server and the app.
        tracemalloc.start()
        try:
            code, out, err = await curl("-o", os.devnull, "-w", "%{size_download}", f"{base}/file")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert code == 0, err
        assert int(out) == size
        assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


async def test_client_leaving_mid_download_ends_the_response(
    served: Served, tmp_path: Path
) -> None:
    big = tmp_path / "huge.bin"
    with big.open("wb") as file:
        file.truncate(1 << 40)  # a sparse 1 TiB: only stopping on disconnect can finish it
    finished = asyncio.Event()

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        response = FileResponse(big, background=BackgroundTask(finished.set))
        await response(scope, receive, send)

    base = await served(without_pathsend(Router([Route("/file", endpoint)])))
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/file") as response,
    ):
        assert len(await anext(response.aiter_raw())) > 0
    # The response ends (and its background task runs) without reading the rest.
    async with asyncio.timeout(10):
        await finished.wait()


async def test_pathsend_is_used_when_the_server_offers_it(
    served: Served, server_name: str, data_file: Path
) -> None:
    kinds: list[str] = []
    offered: list[bool] = []
    inner = file_app(data_file)

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        async def record(message: Message) -> None:
            kinds.append(message["type"])
            await send(message)

        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        offered.append("http.response.pathsend" in scope.get("extensions", {}))
        await inner(scope, receive, record)

    base = await served(recording)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/file")
    assert response.content == DATA
    assert offered == [server_name == "rws"]  # rws-http offers it, uvicorn does not
    body_kind = "http.response.pathsend" if offered[0] else "http.response.body"
    assert kinds[0] == "http.response.start"
    assert set(kinds[1:]) == {body_kind}


async def call_in_process(app: Any, scope: dict[str, Any]) -> list[Message]:
    """Drive an ASGI app the way a server does and keep what it sends."""
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(
    method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/file",
        "raw_path": b"/file",
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
    }


async def test_missing_file_or_directory_raises_before_sending(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(RuntimeError, match=r"missing\.txt.*does not exist"):
        await call_in_process(FileResponse(missing), http_scope())
    with pytest.raises(RuntimeError, match="is a directory"):
        await call_in_process(FileResponse(tmp_path), http_scope())


async def test_missing_file_is_a_500_not_a_half_response(served: Served, tmp_path: Path) -> None:
    async with await client_for(served, tmp_path / "missing.txt") as client:
        response = await client.get("/file")
    assert response.status_code == 500


async def test_background_runs_after_the_file(served: Served, data_file: Path) -> None:
    done = asyncio.Event()

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        response = FileResponse(data_file, background=BackgroundTask(done.set))
        await response(scope, receive, send)

    base = await served(Router([Route("/file", endpoint)]))
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/file")).content == DATA
    await asyncio.wait_for(done.wait(), 5)


async def test_pathsend_extension_is_used_for_whole_file_responses(data_file: Path) -> None:
    # A tiny in-test "server shim" that advertises http.response.pathsend and records what
    # it is sent: a fault-free fake of a server capability. rws-http offers the extension
    # for real (test above) but uvicorn does not, and the shim pins the exact messages for
    # the cases (range, HEAD) that must not use it.
    scope = http_scope()
    scope["extensions"] = {"http.response.pathsend": {}}
    sent = await call_in_process(FileResponse(data_file), scope)
    assert [message["type"] for message in sent] == [
        "http.response.start",
        "http.response.pathsend",
    ]
    assert sent[0]["status"] == 200
    assert sent[1]["path"] == str(data_file)  # absolute, as ASGI asks

    # Partial content, HEAD and 304 are not whole files: they are sent the ordinary way.
    ranged = {**scope, "headers": [(b"range", b"bytes=0-9")]}
    sent = await call_in_process(FileResponse(data_file), ranged)
    assert sent[0]["status"] == 206
    assert b"".join(message.get("body", b"") for message in sent[1:]) == DATA[:10]
    head = {**scope, "method": "HEAD"}
    sent = await call_in_process(FileResponse(data_file), head)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
