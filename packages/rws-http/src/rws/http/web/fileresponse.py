"""A file as an HTTP response: validators, conditional requests and byte ranges.

The file is opened (and ``fstat``-ed) *before* the start message goes out, so the headers
describe the very bytes that follow: a missing file is an error before anything is sent,
and a file replaced between a directory lookup and the open cannot make ``Content-Length``
lie. The body is read in :data:`CHUNK_SIZE` pieces in a worker thread, so neither a slow
disk nor a large file blocks the event loop or sits whole in memory.

**ETag.** A *strong* tag built from the modification time in nanoseconds and the size
(``"<mtime_ns>-<size>"`` in hex), as nginx and Apache do. Strong, because only strong
validators may answer ``If-Range`` and ``If-Match`` (RFC 9110 §13.1.5, §13.1.1): a weak tag
would make every resumed download start over. The tag is not a content hash (that would mean
reading the whole file for each request); two different contents share a tag only if the file
is rewritten with the same size within one tick of the filesystem clock. The inode is left out
so that replicas serving copies of the same files agree on the tag.

**Conditional requests** follow RFC 9110 §13.2.2 in its order: ``If-Match`` (412),
``If-Unmodified-Since`` (412), ``If-None-Match`` (304 for GET/HEAD, 412 otherwise),
``If-Modified-Since`` (304), then ``If-Range``. They apply only when the response would be
a 200, as §13.2.1 says (a ``404.html`` page never answers 304).

**Ranges** (RFC 9110 §14) apply to GET only: a single range gives 206 with
``Content-Range``; several give ``multipart/byteranges`` in the order asked, with
overlapping or adjacent ranges coalesced; a header with more than :data:`MAX_RANGES`
ranges, a unit other than ``bytes`` or any syntax error is ignored (200, the whole file), as
§14.2 allows, while a valid header none of whose ranges fits the file gets 416 with
``Content-Range: bytes */size``. Several ranges of a content-encoded file (a pre-compressed
variant) get the whole file instead: a multipart body is not itself in that encoding, so
``Content-Encoding`` on it would be a lie.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Mapping
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import quote

from .datastructures import Headers, MutableHeaders
from .responses import BackgroundTask, Response, run_until_disconnect
from .types import Receive, Scope, Send

__all__ = [
    "CHUNK_SIZE",
    "MAX_RANGES",
    "FileResponse",
    "content_disposition",
    "guess_media_type",
    "make_etag",
    "parse_range",
]

#: Bytes read and sent per message: large enough that per-chunk overhead (a thread hop, an
#: ASGI message) is small, small enough that many concurrent downloads stay cheap.
CHUNK_SIZE = 64 * 1024

#: More ranges than this and the ``Range`` header is ignored: each part costs a header and a
#: seek, so thousands of tiny ranges would turn one request into a lot of work and output
#: (the "Apache killer" amplification). Real clients (browsers, PDF viewers, download
#: managers) ask for one range, or a handful.
MAX_RANGES = 16

# Stable answers for the web's main types, whatever /etc/mime.types says on this machine.
_WEB_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",  # RFC 9239; Python 3.11 says application/javascript
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".txt": "text/plain",
}

# mimetypes reports "x.tar.gz" as ("application/x-tar", "gzip"): the bytes on disk are the
# compressed ones, and without Content-Encoding they must be labelled as such.
_COMPRESSED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
}

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")  # [0-9], not \d: int() takes "٣" and "1_0"
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')
_HUGE = 10**18  # stands in for numbers too long to matter (and for int()'s digit limit)


def guess_media_type(path: str | os.PathLike[str]) -> str:
    """The ``Content-Type`` for ``path`` from its extension; unknown -> octet-stream."""
    name = os.fspath(path)
    media_type, encoding = mimetypes.guess_type(name)
    if encoding is not None:
        return _COMPRESSED_TYPES.get(encoding, "application/octet-stream")
    extension = os.path.splitext(name)[1].lower()
    return _WEB_TYPES.get(extension) or media_type or "application/octet-stream"


def make_etag(stat_result: os.stat_result, suffix: str = "") -> str:
    """A strong validator from mtime (ns) and size (see the module docstring for why)."""
    return f'"{stat_result.st_mtime_ns:x}-{stat_result.st_size:x}{suffix}"'


def content_disposition(disposition_type: str, filename: str) -> str:
    """``attachment; filename="..."`` with an ASCII fallback and RFC 6266 ``filename*``.

    Old clients read the quoted ASCII name (accents stripped, other characters as ``_``);
    current ones prefer ``filename*=UTF-8''...``, sent whenever the two differ.
    """
    if disposition_type not in ("attachment", "inline"):
        raise ValueError(
            f"content_disposition_type must be 'attachment' or 'inline', got {disposition_type!r}"
        )
    if not filename or any(ord(char) < 32 or ord(char) == 127 for char in filename):
        raise ValueError(f"filename must be non-empty without control characters: {filename!r}")
    decomposed = unicodedata.normalize("NFKD", filename)
    fallback = "".join(
        char if char.isascii() else "_" for char in decomposed if not unicodedata.combining(char)
    )
    quoted = fallback.replace("\\", "\\\\").replace('"', '\\"')
    value = f'{disposition_type}; filename="{quoted}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='!#$&+^`|')}"
    return value


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(
    header: str, size: int, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]] | None:
    """The ranges of a ``Range`` header as ``(start, end)`` pairs, ``end`` exclusive.

    ``None``: ignore the header and send the whole file (another unit, a syntax error, a
    ``last-pos`` before its ``first-pos``, more than ``max_ranges`` ranges). ``[]``: the
    header is valid but no range overlaps the file (416). Otherwise the satisfiable ranges,
    overlapping or adjacent ones merged, in the order the client listed them.
    """
    unit, equals, spec = header.partition("=")
    if not equals or unit.strip(" \t").lower() != "bytes":
        return None
    parts = [part.strip(" \t") for part in spec.split(",")]
    parts = [part for part in parts if part]  # the list rule allows empty elements
    if not parts or len(parts) > max_ranges:
        return None
    ranges: list[tuple[int, int]] = []
    for part in parts:
        found = _RANGE_SPEC.fullmatch(part)
        if found is None:
            return None
        first, last = found.groups()
        if first:
            start = _number(first)
            if last and _number(last) < start:
                return None
            if start >= size:
                continue  # unsatisfiable, but the others may still be served
            end = min(_number(last) + 1, size) if last else size
            ranges.append((start, end))
        elif last:
            length = _number(last)
            if length and size:
                ranges.append((max(size - length, 0), size))
        else:
            return None  # a lone "-"
    return _coalesce(ranges)


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    groups: list[tuple[int, int, int]] = []  # start, end, position of its first member
    for position in sorted(range(len(ranges)), key=ranges.__getitem__):
        start, end = ranges[position]
        if groups and start <= groups[-1][1]:
            first, last, at = groups[-1]
            groups[-1] = (first, max(last, end), min(at, position))
        else:
            groups.append((start, end, position))
    groups.sort(key=lambda group: group[2])
    return [(start, end) for start, end, _ in groups]


def _http_date(value: str) -> int | None:
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _tags(value: str) -> list[str] | None:
    """The entity tags of an ``If-(None-)Match`` value; ``None`` for ``*``."""
    if value.strip() == "*":
        return None
    return _ENTITY_TAG.findall(value)


def _weak_equal(tag: str, etag: str) -> bool:
    return tag.removeprefix("W/") == etag.removeprefix("W/")


def _strong_equal(tag: str, etag: str) -> bool:
    return tag == etag and not tag.startswith("W/")


def evaluate_preconditions(
    method: str, request: Headers, etag: str, last_modified: int | None
) -> int | None:
    """RFC 9110 §13.2.2, steps 1-4: 412, 304, or ``None`` to go on with the request."""
    if "if-match" in request:
        tags = _tags(", ".join(request.getlist("if-match")))
        if tags is not None and not any(_strong_equal(tag, etag) for tag in tags):
            return 412
    elif "if-unmodified-since" in request and last_modified is not None:
        date = _http_date(request["if-unmodified-since"])
        if date is not None and last_modified > date:
            return 412
    if "if-none-match" in request:
        tags = _tags(", ".join(request.getlist("if-none-match")))
        if tags is None or any(_weak_equal(tag, etag) for tag in tags):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD") and "if-modified-since" in request:
        date = _http_date(request["if-modified-since"])
        if date is not None and last_modified is not None and last_modified <= date:
            return 304
    return None


def _if_range_holds(value: str, etag: str, last_modified: int | None) -> bool:
    """RFC 9110 §13.1.5: a strong tag equal to ours, or exactly our Last-Modified date."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return _strong_equal(value, etag)
    date = _http_date(value)
    return date is not None and date == last_modified


# Representation metadata a 304 must not carry (RFC 9110 §15.4.5): the client keeps its own.
_NOT_ON_304 = frozenset(
    {
        b"content-length",
        b"content-type",
        b"content-encoding",
        b"content-language",
        b"content-disposition",
        b"content-range",
        b"accept-ranges",
    }
)


def _open(path: str) -> tuple[BinaryIO, os.stat_result]:
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise RuntimeError(f"FileResponse: file at path {path!r} does not exist") from None
    except OSError as error:
        raise RuntimeError(f"FileResponse: cannot open {path!r}: {error.strerror}") from error
    try:
        stat_result = os.fstat(fd)
        if stat.S_ISDIR(stat_result.st_mode):
            raise RuntimeError(f"FileResponse: path {path!r} is a directory, not a file")
        if not stat.S_ISREG(stat_result.st_mode):
            raise RuntimeError(f"FileResponse: path {path!r} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0), stat_result
    except BaseException:
        os.close(fd)
        raise


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    file.seek(offset)
    return file.read(size)


class FileResponse(Response):
    """The file at ``path``, with ETag, Last-Modified, conditional requests and ranges.

    ``media_type`` defaults to a guess from ``filename`` or ``path``; ``filename`` adds a
    ``Content-Disposition`` (``content_disposition_type`` ``"attachment"`` or
    ``"inline"``). ``stat_result`` is accepted for Starlette compatibility, but the headers
    always come from the ``fstat`` of the file actually opened. Headers passed in win over
    the computed ``ETag`` / ``Last-Modified``. When the server offers the ASGI
    ``http.response.pathsend`` extension, a whole-file 200 is handed to it instead of read
    here. A missing path or a directory raises ``RuntimeError`` when the response is sent.
    ``background`` runs after the response, also when the client went away early (so it
    can delete a temporary file).
    """

    chunk_size = CHUNK_SIZE
    max_ranges = MAX_RANGES

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
        stat_result: os.stat_result | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.path = os.fspath(path)
        # ASGI pathsend wants an absolute path; resolved now, against today's cwd.
        self.absolute_path = os.path.abspath(self.path)
        self.filename = filename
        self.stat_result = stat_result
        if content_disposition_type not in ("attachment", "inline"):
            raise ValueError(
                "content_disposition_type must be 'attachment' or 'inline', "
                f"got {content_disposition_type!r}"
            )
        disposition = (
            None if filename is None else content_disposition(content_disposition_type, filename)
        )
        if media_type is None:
            media_type = guess_media_type(filename or self.path)
        super().__init__(None, status_code, headers, media_type, background)
        self.raw_headers = self.initial_headers(headers, None)
        if disposition is not None:
            self.headers.setdefault("content-disposition", disposition)

    def etag(self, stat_result: os.stat_result) -> str:
        """The ETag for the opened file (a hook: StaticFiles marks encoded variants)."""
        return make_etag(stat_result)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        file, stat_result = await asyncio.to_thread(_open, self.path)
        try:
            # Whether or not the client stayed, the background task runs (class docstring).
            await run_until_disconnect(self._respond(scope, send, file, stat_result), receive)
        finally:
            await asyncio.to_thread(file.close)
        if self.background is not None:
            await self.background()

    async def _respond(
        self, scope: Scope, send: Send, file: BinaryIO, stat_result: os.stat_result
    ) -> None:
        method = str(scope.get("method", "GET")).upper()
        size = stat_result.st_size
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers.setdefault("accept-ranges", "bytes")
        etag = headers.setdefault("etag", self.etag(stat_result))
        modified = headers.setdefault(
            "last-modified", formatdate(stat_result.st_mtime, usegmt=True)
        )
        last_modified = _http_date(modified)
        request = Headers(scope=scope)
        ranges: list[tuple[int, int]] | None = None
        if self.status_code == 200:
            outcome = evaluate_preconditions(method, request, etag, last_modified)
            if outcome == 304:
                kept = [item for item in headers.raw if item[0] not in _NOT_ON_304]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
                return
            if outcome == 412:
                await _plain(send, 412, b"Precondition Failed", [(b"etag", etag.encode())])
                return
            if_range = request.get("if-range")
            if (
                method == "GET"
                and "range" in request
                and (if_range is None or _if_range_holds(if_range, etag, last_modified))
            ):
                ranges = parse_range(request["range"], size, self.max_ranges)
                if ranges is not None and len(ranges) > 1 and "content-encoding" in headers:
                    ranges = None  # a multipart body is not in the variant's encoding
        body = method != "HEAD"
        if ranges == []:
            extra = [(b"content-range", f"bytes */{size}".encode())]
            await _plain(send, 416, b"Range Not Satisfiable", extra)
            return
        if ranges is None:
            headers["content-length"] = str(size)
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": headers.raw})
            if body and "http.response.pathsend" in scope.get("extensions", {}):
                await send({"type": "http.response.pathsend", "path": self.absolute_path})
                return
            if body:
                await self._send_span(send, file, 0, size)
            await send({"type": "http.response.body", "body": b""})
            return
        if len(ranges) == 1:
            first, end = ranges[0]
            headers["content-range"] = f"bytes {first}-{end - 1}/{size}"
            headers["content-length"] = str(end - first)
            await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
            if body:
                await self._send_span(send, file, first, end)
            await send({"type": "http.response.body", "body": b""})
            return
        await self._send_multipart(send, file, headers, ranges, size, body)

    async def _send_multipart(
        self,
        send: Send,
        file: BinaryIO,
        headers: MutableHeaders,
        ranges: list[tuple[int, int]],
        size: int,
        body: bool,
    ) -> None:
        boundary = secrets.token_hex(16)
        part_type = headers.get("content-type", "application/octet-stream")
        heads = [
            (
                ("\r\n" if index else "")
                + f"--{boundary}\r\nContent-Type: {part_type}\r\n"
                + f"Content-Range: bytes {first}-{end - 1}/{size}\r\n\r\n"
            ).encode("latin-1")
            for index, (first, end) in enumerate(ranges)
        ]
        closing = f"\r\n--{boundary}--\r\n".encode("latin-1")
        length = sum(len(head) for head in heads) + sum(end - first for first, end in ranges)
        headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
        headers["content-length"] = str(length + len(closing))
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        if body:
            for head, (first, end) in zip(heads, ranges, strict=True):
                await send({"type": "http.response.body", "body": head, "more_body": True})
                await self._send_span(send, file, first, end)
            await send({"type": "http.response.body", "body": closing})
        else:
            await send({"type": "http.response.body", "body": b""})

    async def _send_span(self, send: Send, file: BinaryIO, start: int, end: int) -> None:
        while start < end:
            chunk = await asyncio.to_thread(
                _read_at, file, start, min(self.chunk_size, end - start)
            )
            if not chunk:
                # Content-Length is out; the server has to cut the connection, not pad it.
                raise RuntimeError(f"FileResponse: {self.path!r} shrank while it was being sent")
            start += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _plain(send: Send, status: int, text: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
