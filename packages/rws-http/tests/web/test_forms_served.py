"""``parse_form`` on a real ``receive()`` stream, under rws-http and uvicorn, fed by real clients.

The app is raw ASGI on purpose: it depends on nothing but ``parse_form``, so these tests pin
the form parser's contract with servers and clients (httpx, curl) independently of the
Request class.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rws.http.web.exceptions import HTTPException
from rws.http.web.forms import FormLimits, UploadFile, parse_form
from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

from .conftest import Served


async def request_bodies(receive: Receive) -> AsyncIterator[bytes]:
    """The ``http.request`` bodies as an async iterator; a disconnect ends it with an error."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def echo_form(limits: FormLimits = FormLimits()) -> ASGIApp:  # noqa: B008
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status = 200
        payload: Any
        try:
            stream = request_bodies(receive)
            async with await parse_form(headers.get("content-type", ""), stream, limits) as form:
                payload = []
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read()
                        payload.append(
                            [
                                key,
                                {
                                    "filename": value.filename,
                                    "content_type": value.content_type,
                                    "size": value.size,
                                    "sha256": hashlib.sha256(data).hexdigest(),
                                    "rolled_to_disk": value.rolled_to_disk,
                                },
                            ]
                        )
                    else:
                        payload.append([key, value])
        except HTTPException as exc:
            status, payload = exc.status_code, {"detail": exc.detail}
        body = json.dumps(payload).encode()
        start: Message = {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_httpx_multipart_fields_and_files(served: Served) -> None:
    base = await served(echo_form())
    big = bytes(range(256)) * 8192  # 2 MiB: spills past the 1 MiB spool threshold
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            "/",
            data={"a": "1", "tags": ["x", "y"], "text": "Grüße\r\nline 2"},
            files=[
                ("f", ("hello.txt", b"hi there", "text/plain")),
                ("f", ("big.bin", big, "application/octet-stream")),
            ],
        )
    assert response.status_code == 200, response.text
    assert response.json() == [
        ["a", "1"],
        ["tags", "x"],
        ["tags", "y"],
        ["text", "Grüße\r\nline 2"],
        [
            "f",
            {
                "filename": "hello.txt",
                "content_type": "text/plain",
                "size": 8,
                "sha256": sha(b"hi there"),
                "rolled_to_disk": False,
            },
        ],
        [
            "f",
            {
                "filename": "big.bin",
                "content_type": "application/octet-stream",
                "size": len(big),
                "sha256": sha(big),
                "rolled_to_disk": True,
            },
        ],
    ]


async def test_chunked_multipart_in_small_pieces(served: Served) -> None:
    """The body arrives as many ``http.request`` messages with boundaries split anywhere."""
    base = await served(echo_form())
    boundary = "rws-chunked-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="n"\r\n\r\nv\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="f.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n{'z' * 5000}\r\n--{boundary}--\r\n"
    ).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            "/",
            content=pieces(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 200, response.text
    assert response.json()[0] == ["n", "v"]
    assert response.json()[1][1]["sha256"] == sha(b"z" * 5000)


async def test_httpx_urlencoded(served: Served) -> None:
    base = await served(echo_form())
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            "/", data={"q": "a b+c&d=e", "empty": "", "many": ["1", "2"], "ünï": "çödé"}
        )
    assert response.status_code == 200
    assert response.json() == [
        ["q", "a b+c&d=e"],
        ["empty", ""],
        ["many", "1"],
        ["many", "2"],
        ["ünï", "çödé"],
    ]


async def curl(*args: str) -> tuple[int, Any]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-w", "\n%{http_code}", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    body, _, code = out.decode().rpartition("\n")
    return int(code), json.loads(body)


async def test_curl_several_files_and_a_non_ascii_filename(served: Served, tmp_path: Path) -> None:
    base = await served(echo_form())
    resume = tmp_path / "résumé 日本.txt"
    resume.write_bytes(b"bonjour\n")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 10)
    status, payload = await curl(
        "-F",
        "note=héllo wörld",
        "-F",
        f"doc=@{resume}",
        "-F",
        f"doc=@{blob};type=application/x-test",
        "-F",
        f"other=@{blob};filename=renamed.dat",
        base + "/",
    )
    assert status == 200, payload
    assert payload[0] == ["note", "héllo wörld"]
    assert [(k, v["filename"], v["size"]) for k, v in payload[1:]] == [
        ("doc", "résumé 日本.txt", len(b"bonjour\n")),
        ("doc", "blob.bin", 2560),
        ("other", "renamed.dat", 2560),
    ]
    assert payload[2][1]["content_type"] == "application/x-test"
    assert payload[2][1]["sha256"] == sha(bytes(range(256)) * 10)


async def test_curl_escaped_quotes_in_names(served: Served, tmp_path: Path) -> None:
    """``--form-escape`` backslash-escapes quotes; the default percent-encodes them (kept)."""
    base = await served(echo_form())
    file = tmp_path / 'say "hi".txt'
    file.write_bytes(b"x")
    status, payload = await curl("--form-escape", "-F", 'na"me=v', "-F", f"f=@{file}", base + "/")
    assert status == 200, payload
    assert payload[0] == ['na"me', "v"]
    assert payload[1][1]["filename"] == 'say "hi".txt'
    status, payload = await curl("-F", 'na"me=v', base + "/")
    assert payload == [["na%22me", "v"]]


async def test_curl_urlencoded(served: Served) -> None:
    base = await served(echo_form())
    status, payload = await curl("--data-urlencode", "msg=a&b c", "--data", "x=1&flag", base + "/")
    assert status == 200
    assert payload == [["msg", "a&b c"], ["x", "1"], ["flag", ""]]


async def test_oversize_upload_is_413(served: Served) -> None:
    base = await served(echo_form(FormLimits(max_body_size=64 * 1024)))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/", files={"f": ("big.bin", b"x" * 200_000)})
        small = await client.post("/", files={"f": ("small.bin", b"x" * 1000)})
    assert response.status_code == 413
    assert "max_body_size" in response.json()["detail"]
    assert small.status_code == 200


async def test_too_many_files_is_413(served: Served) -> None:
    base = await served(echo_form(FormLimits(max_files=2)))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/", files=[("f", (f"{i}.txt", b"x")) for i in range(3)])
    assert response.status_code == 413
    assert "max_files" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "detail"),
    [
        ("multipart/form-data; boundary=abc", b"--abc\r\nbroken header\r\n\r\n", 400, "header"),
        ("multipart/form-data; boundary=abc", b"--abc\r\n\r\ndata", 400, "Content-Disposition"),
        ("multipart/form-data", b"whatever", 400, "boundary"),
        ("application/json", b"{}", 415, "multipart/form-data"),
    ],
)
async def test_malformed_and_unsupported_bodies(
    served: Served, content_type: str, body: bytes, status: int, detail: str
) -> None:
    base = await served(echo_form())
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert detail in response.json()["detail"]
