"""StaticFiles mounted under the rws router (and Starlette's), against both servers.

Traversal attempts go out with ``curl --path-as-is``: httpx (like browsers) removes dot
segments before sending, so it could never send the requests an attacker would.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rws.http.web.routing import Mount, Router
from rws.http.web.staticfiles import StaticFiles

from .conftest import Served

SCRIPT = b'console.log("hello from app.js");\n' * 3
SCRIPT_GZ = gzip.compress(SCRIPT, mtime=0)
# brotli.compress(SCRIPT), kept literal so the test needs no brotli package.
SCRIPT_BR = (
    b"\x1be\x00\xf8-\x0el\x9bA\xf9\xdd\xb1\xb4f\x1c\x8fu\xcaN\xd8\x98\x16Aq\x81\x93\njl"
    b"\xe5rVosY\xc8,Ge\x0c\xbc\xb0\xa4\x8b\x95\xa1u\xddW\xd0\x00"
)
SECRET = b"outside the root"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "empty").mkdir()
    (site / "index.html").write_bytes(b"<h1>home</h1>")
    (site / "404.html").write_bytes(b"<h1>not here</h1>")
    (site / "hello.txt").write_bytes(b"hello")
    (site / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (site / "docs" / "guide.txt").write_bytes(b"guide")
    (site / "app.js").write_bytes(SCRIPT)
    (site / "app.js.gz").write_bytes(SCRIPT_GZ)
    (site / "app.js.br").write_bytes(SCRIPT_BR)
    (site / "only-gz.css").write_bytes(b"body{}")
    (site / "only-gz.css.gz").write_bytes(gzip.compress(b"body{}", mtime=0))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", site / "escape.txt")
    os.symlink(tmp_path / "outside", site / "escape-dir")
    os.symlink(site / "hello.txt", site / "alias.txt")  # inside: always fine
    return site


async def serve(served: Served, root: Path, **options: Any) -> str:
    return await served(Router([Mount("/static", StaticFiles(root, **options))]))


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err


async def raw_status(url: str) -> tuple[int, bytes]:
    """Status and body of a GET sent exactly as written (no dot-segment removal)."""
    code, out, err = await curl("--path-as-is", "-w", "\n%{http_code}", url)
    assert code == 0, err
    body, _, status = out.rpartition(b"\n")
    return int(status), body


async def test_serves_files_with_cache_headers(served: Served, root: Path) -> None:
    base = await serve(served, root)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/static/hello.txt")
        nested = await client.get("/static/docs/guide.txt")
        head = await client.head("/static/hello.txt")
        alias = await client.get("/static/alias.txt")
    assert response.status_code == 200
    assert response.content == b"hello"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["etag"].startswith('"')
    assert "last-modified" in response.headers
    assert "vary" not in response.headers  # no variant exists for hello.txt
    assert nested.content == b"guide"
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "5"
    assert alias.content == b"hello"


async def test_only_get_and_head(served: Served, root: Path) -> None:
    base = await serve(served, root)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/static/hello.txt")
        deleted = await client.delete("/static/hello.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert deleted.status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/docs/..%2f..%2fsecret.txt",
        "/static/docs/../../secret.txt",
        "/static/%5c..%5csecret.txt",
        "/static/..%5csecret.txt",
        "/static/hello.txt%00.png",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/C:/Windows/win.ini",
        "/static/c%3a%5cwindows%5cwin.ini",
        "/static/./hello.txt",
        "/static/docs/../hello.txt",  # harmless, but dot segments are never resolved
    ],
)
async def test_traversal_is_404(served: Served, root: Path, path: str) -> None:
    # html=True: the 404 page proves the app (not the server) saw and refused the request.
    base = await serve(served, root, html=True)
    status, body = await raw_status(base + path)
    assert (status, body) == (404, b"<h1>not here</h1>")


async def test_symlink_escape_is_403_unless_followed(served: Served, root: Path) -> None:
    base = await serve(served, root)
    async with httpx.AsyncClient(base_url=base) as client:
        escape = await client.get("/static/escape.txt")
        escape_dir = await client.get("/static/escape-dir/file.txt")
    assert escape.status_code == 403
    assert escape_dir.status_code == 403
    assert SECRET not in escape.content + escape_dir.content


async def test_follow_symlinks_serves_links_out(served: Served, root: Path) -> None:
    base = await serve(served, root, follow_symlinks=True)
    async with httpx.AsyncClient(base_url=base) as client:
        escape = await client.get("/static/escape.txt")
        escape_dir = await client.get("/static/escape-dir/file.txt")
    assert escape.content == SECRET
    assert escape_dir.content == SECRET


async def test_directories_are_never_listed(served: Served, root: Path) -> None:
    base = await serve(served, root)
    async with httpx.AsyncClient(base_url=base) as client:
        for path in ("/static", "/static/", "/static/docs", "/static/docs/", "/static/empty/"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert response.content == b"Not Found"
        assert (await client.get("/static/hello.txt/")).status_code == 404
        assert (await client.get("/static/missing.txt")).status_code == 404


async def test_html_mode_serves_index_and_404_page(served: Served, root: Path) -> None:
    base = await serve(served, root, html=True)
    async with httpx.AsyncClient(base_url=base) as client:
        index = await client.get("/static/")
        docs = await client.get("/static/docs/")
        missing = await client.get("/static/missing.txt")
        empty = await client.get("/static/empty/")
        head_missing = await client.head("/static/missing.txt")
        conditional_missing = await client.get("/static/nope", headers={"If-None-Match": "*"})
    assert index.content == b"<h1>home</h1>"
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert docs.content == b"<h1>docs</h1>"
    assert (missing.status_code, missing.content) == (404, b"<h1>not here</h1>")
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    assert "cache-control" not in missing.headers
    assert (empty.status_code, empty.content) == (404, b"<h1>not here</h1>")
    assert (head_missing.status_code, head_missing.content) == (404, b"")
    assert conditional_missing.status_code == 404  # preconditions apply to 200s only


async def test_html_mode_redirects_directories_to_their_slash(served: Served, root: Path) -> None:
    base = await serve(served, root, html=True)
    async with httpx.AsyncClient(base_url=base) as client:
        docs = await client.get("/static/docs?page=2")
        top = await client.get("/static")
        followed = await client.get("/static/docs", follow_redirects=True)
    assert docs.status_code == 307
    assert docs.headers["location"] == "./docs/?page=2"
    assert top.status_code == 307
    assert top.headers["location"] == "./static/"
    assert followed.content == b"<h1>docs</h1>"
    assert str(followed.url) == f"{base}/static/docs/"


async def test_html_mode_without_404_page(served: Served, root: Path) -> None:
    (root / "404.html").unlink()
    base = await serve(served, root, html=True)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/static/missing")
    assert (response.status_code, response.content) == (404, b"Not Found")


@pytest.mark.parametrize(
    ("accept", "encoding", "body"),
    [
        ("gzip, deflate, br", "br", SCRIPT_BR),
        ("gzip", "gzip", SCRIPT_GZ),
        ("br;q=0.5, gzip", "gzip", SCRIPT_GZ),
        ("br;q=0, gzip", "gzip", SCRIPT_GZ),
        ("*", "br", SCRIPT_BR),
        ("gzip;q=0.8, *;q=0.1", "gzip", SCRIPT_GZ),
        ("identity", None, SCRIPT),
        ("gzip;q=0, br;q=0", None, SCRIPT),
        ("br;q=banana", None, SCRIPT),
        ("", None, SCRIPT),
    ],
)
async def test_precompressed_variants(
    served: Served, root: Path, accept: str, encoding: str | None, body: bytes
) -> None:
    base = await serve(served, root)
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/static/app.js", headers={"Accept-Encoding": accept}) as response,
    ):
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert raw == body
    assert response.headers.get("content-encoding") == encoding
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["content-length"] == str(len(body))


async def test_variant_etags_differ_and_validate_their_own_bytes(
    served: Served, root: Path
) -> None:
    base = await serve(served, root)
    async with httpx.AsyncClient(base_url=base) as client:
        plain = await client.get("/static/app.js", headers={"Accept-Encoding": "identity"})
        brotli = await client.get("/static/app.js", headers={"Accept-Encoding": "br"})
        gzipped = await client.get("/static/app.js", headers={"Accept-Encoding": "gzip"})
        tags = {plain.headers["etag"], brotli.headers["etag"], gzipped.headers["etag"]}
        assert len(tags) == 3
        assert brotli.headers["etag"].endswith('-br"')
        not_modified = await client.get(
            "/static/app.js",
            headers={"Accept-Encoding": "br", "If-None-Match": brotli.headers["etag"]},
        )
        other_variant = await client.get(
            "/static/app.js",
            headers={"Accept-Encoding": "gzip", "If-None-Match": brotli.headers["etag"]},
        )
        ranged = await client.get(
            "/static/app.js", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"}
        )
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == brotli.headers["etag"]
    assert not_modified.headers["vary"] == "Accept-Encoding"
    assert not_modified.headers["cache-control"] == "public, max-age=3600"
    assert other_variant.status_code == 200
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 0-9/{len(SCRIPT_GZ)}"
    assert ranged.headers["content-encoding"] == "gzip"


async def test_several_ranges_of_a_variant_get_the_whole_variant(
    served: Served, root: Path
) -> None:
    # A multipart/byteranges body is not gzip itself, so it cannot carry Content-Encoding.
    base = await serve(served, root)
    headers = {"Accept-Encoding": "gzip", "Range": "bytes=0-1,5-6"}
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/static/app.js", headers=headers) as response,
    ):
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert raw == SCRIPT_GZ


async def test_curl_decodes_the_variant(served: Served, root: Path) -> None:
    base = await serve(served, root)
    code, out, err = await curl("--compressed", f"{base}/static/app.js")
    assert code == 0, err
    assert out == SCRIPT
    code, out, err = await curl(
        "-H", "Accept-Encoding: gzip", "--compressed", f"{base}/static/only-gz.css"
    )
    assert code == 0, err
    assert out == b"body{}"


async def test_precompressed_off(served: Served, root: Path) -> None:
    base = await serve(served, root, precompressed=False)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/static/app.js", headers={"Accept-Encoding": "br, gzip"})
    assert response.content == SCRIPT
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


async def test_cache_control_callable_and_none(served: Served, root: Path) -> None:
    seen: list[str] = []

    def policy(path: str) -> str | None:
        seen.append(path)
        if path.endswith(".html"):
            return "no-cache"
        return None if path.endswith(".txt") else "public, max-age=31536000, immutable"

    base = await serve(served, root, html=True, cache_control=policy)
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/static/docs/")
        text = await client.get("/static/hello.txt")
        script = await client.get("/static/app.js")
        revalidated = await client.get(
            "/static/docs/", headers={"If-None-Match": page.headers["etag"]}
        )
    assert page.headers["cache-control"] == "no-cache"
    assert "cache-control" not in text.headers
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert revalidated.status_code == 304
    assert revalidated.headers["cache-control"] == "no-cache"
    assert "docs/index.html" in seen


async def test_conditional_and_range_through_curl(served: Served, root: Path) -> None:
    base = await serve(served, root)
    code, out, err = await curl("-r", "1-3", f"{base}/static/hello.txt")
    assert (code, out) == (0, b"ell"), err
    local = root.parent / "copy.txt"
    local.write_bytes(b"hello")
    stat_result = (root / "hello.txt").stat()
    os.utime(local, ns=(stat_result.st_atime_ns, stat_result.st_mtime_ns))
    code, out, err = await curl("-z", str(local), "-w", "%{http_code}", f"{base}/static/hello.txt")
    assert (code, out) == (0, b"304"), err


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory"):
        StaticFiles(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="directory"):
        StaticFiles(tmp_path / "file")
    with pytest.raises(ValueError, match="index"):
        StaticFiles(tmp_path, index="../index.html")
    with pytest.raises(ValueError, match="cache_control"):
        StaticFiles(tmp_path, cache_control="public\r\nX-Evil: 1")
    StaticFiles(tmp_path / "later", check_dir=False)


async def test_directory_created_after_start(served: Served, tmp_path: Path) -> None:
    later = tmp_path / "later"
    base = await serve(served, later, check_dir=False)
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/static/a.txt")).status_code == 404
        later.mkdir()
        (later / "a.txt").write_bytes(b"a")
        assert (await client.get("/static/a.txt")).content == b"a"


async def test_mounted_by_starlette(served: Served, root: Path) -> None:
    routing = pytest.importorskip("starlette.routing")
    applications = pytest.importorskip("starlette.applications")
    mount: Callable[..., Any] = routing.Mount
    app = applications.Starlette(routes=[mount("/assets", app=StaticFiles(root, html=True))])
    base = await served(app)
    async with httpx.AsyncClient(base_url=base) as client:
        nested = await client.get("/assets/docs/guide.txt")
        index = await client.get("/assets/docs/")
        redirect = await client.get("/assets/docs")
        escape = await client.get("/assets/escape.txt")
    assert nested.content == b"guide"
    assert index.content == b"<h1>docs</h1>"
    assert redirect.headers["location"] == "./docs/"
    assert escape.status_code == 403
    status, body = await raw_status(base + "/assets/../secret.txt")
    assert status == 404
    assert SECRET not in body
