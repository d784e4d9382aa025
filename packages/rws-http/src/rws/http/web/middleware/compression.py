"""Response compression negotiated from ``Accept-Encoding``: gzip, and brotli / zstd when their
modules are installed.

**Streaming stays streaming.** Every body chunk the app sends with ``more_body=True`` is
compressed and *flushed* (a sync flush: the client can decode everything sent so far), so
server-sent events and long polls arrive as they are produced instead of sitting in the
compressor's window (the complaint against Starlette's ``GZipMiddleware``, which buffers small
chunks). The cost: tiny chunks compress less well. ``text/event-stream`` is therefore
compressed too; every event is flushed as the app sends it.

**When it does not compress** (the response goes out untouched): HEAD requests, status 1xx,
204, 206 and 304, a response that already has ``Content-Encoding`` or a ``Content-Range``, one
marked ``Cache-Control: no-transform``, a content type that is already compressed (see
:data:`DEFAULT_SKIP_CONTENT_TYPES`), a single-chunk body shorter than ``minimum_size``, or a
``Content-Length`` below it.

**What it changes when it compresses**: ``Content-Encoding``; ``Content-Length`` is recomputed
for a single-chunk body and dropped for a streamed one; a strong ``ETag`` becomes weak
(``W/"…"``: the bytes differ from the identity representation, RFC 9110 §8.8.1).
``Vary: Accept-Encoding`` is added to every response whose encoding depends on the request,
compressed or not, so caches keep the variants apart.

Limit: the app's ``http.response.pathsend`` / ``zerocopysend`` extensions are hidden from it
when a compressed answer is possible (a file sent by the server cannot be compressed here).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_SKIP_CONTENT_TYPES", "CompressionMiddleware", "available_encodings"]

#: Media types whose bodies are already compressed: compressing them again costs CPU for
#: nothing. ``type/*`` entries cover a whole type, except :data:`_COMPRESSIBLE_EXCEPTIONS`.
DEFAULT_SKIP_CONTENT_TYPES = frozenset(
    {
        "image/*",
        "video/*",
        "audio/*",
        "font/woff",
        "font/woff2",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/zstd",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/octet-stream",
        "application/pdf",
    }
)
#: Text-like or raw formats inside otherwise compressed types: still worth compressing.
_COMPRESSIBLE_EXCEPTIONS = frozenset({"image/svg+xml", "image/bmp", "image/x-icon"})
_SKIP_STATUS = frozenset({204, 206, 304})


class _Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...  # everything so far decodable; stream continues
    def finish(self) -> bytes: ...


class _Gzip:
    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip framing

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


def _optional(*names: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


_brotli = _optional("brotli", "brotlicffi")
_zstandard = _optional("zstandard")
_stdlib_zstd: Any = _optional("compression.zstd")  # Python 3.14+


class _Brotli:
    def __init__(self, level: int) -> None:
        self._c = _brotli.Compressor(quality=level)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._c.process(data))

    def flush(self) -> bytes:
        return bytes(self._c.flush())

    def finish(self) -> bytes:
        return bytes(self._c.finish())


class _Zstd:
    def __init__(self, level: int) -> None:
        if _zstandard is not None:
            self._c = _zstandard.ZstdCompressor(level=level).compressobj()
            self._block = _zstandard.COMPRESSOBJ_FLUSH_BLOCK
        else:
            self._c = _stdlib_zstd.ZstdCompressor(level=level)
            self._block = _stdlib_zstd.ZstdCompressor.FLUSH_BLOCK

    def compress(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data))

    def flush(self) -> bytes:
        return bytes(self._c.flush(self._block))

    def finish(self) -> bytes:
        return bytes(self._c.flush())


_ENCODERS: dict[str, Callable[[int], _Encoder]] = {"gzip": _Gzip}
if _brotli is not None:
    _ENCODERS["br"] = _Brotli
if _zstandard is not None or _stdlib_zstd is not None:
    _ENCODERS["zstd"] = _Zstd
_PREFERENCE = ("br", "zstd", "gzip")
_MODULE_HINT = {"br": "the 'brotli' module", "zstd": "the 'zstandard' module"}


def available_encodings() -> tuple[str, ...]:
    """The codings this process can produce, in the default order of preference."""
    return tuple(name for name in _PREFERENCE if name in _ENCODERS)


def parse_accept_encoding(value: str) -> dict[str, float]:
    """``"gzip;q=0.8, br"`` -> ``{"gzip": 0.8, "br": 1.0}``; malformed q-values count as 0."""
    accepted: dict[str, float] = {}
    for item in value.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(raw.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        accepted["gzip" if name == "x-gzip" else name] = q
    return accepted


def _choose(accepted: dict[str, float], preference: Sequence[str]) -> str | None:
    star = accepted.get("*")
    best: str | None = None
    best_q = 0.0
    for name in preference:
        q = accepted.get(name, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = name, q
    # Identity is always acceptable; it wins only when the client rates it above the coding.
    identity = accepted.get("identity", 0.0)
    if best is not None and identity > best_q:
        return None
    return best


def _level(option: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{option}: expected an integer from {low} to {high}, got {value!r}")
    return value


class CompressionMiddleware:
    """Compress ``http`` responses for clients that accept it (other scopes pass through).

    ``minimum_size``: bytes below which a single-chunk body is sent as is (default 500).
    ``compresslevel``: gzip level 1-9 (default 6: most of level 9's ratio at a fraction of
    its CPU). ``brotli_quality`` 0-11 (default 4) and ``zstd_level`` 1-22 (default 3) likewise
    trade ratio for speed. ``encodings``: the codings to offer, in the server's order of
    preference, used to break ties between equal q-values (default ``br, zstd, gzip``, those
    installed); asking for one whose module is missing is an error. ``skip_content_types``:
    media types (``type/*`` allowed) never compressed (default
    :data:`DEFAULT_SKIP_CONTENT_TYPES`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int = 500,
        compresslevel: int = 6,
        brotli_quality: int = 4,
        zstd_level: int = 3,
        encodings: Sequence[str] | None = None,
        skip_content_types: Collection[str] | None = None,
    ) -> None:
        if isinstance(minimum_size, bool) or not isinstance(minimum_size, int) or minimum_size < 0:
            raise ValueError(f"minimum_size: expected bytes >= 0, got {minimum_size!r}")
        self.levels = {
            "gzip": _level("compresslevel", compresslevel, 1, 9),
            "br": _level("brotli_quality", brotli_quality, 0, 11),
            "zstd": _level("zstd_level", zstd_level, 1, 22),
        }
        if encodings is None:
            preference = available_encodings()
        else:
            if isinstance(encodings, str):
                raise ValueError("encodings: expected a list of codings, got a string")
            preference = tuple(name.lower() for name in encodings)
            for name in preference:
                if name not in _PREFERENCE:
                    raise ValueError(f"encodings: unknown coding {name!r}; use br, zstd or gzip")
                if name not in _ENCODERS:
                    raise ValueError(f"encodings: {name!r} needs {_MODULE_HINT[name]} installed")
            if not preference:
                raise ValueError("encodings: at least one coding is needed")
        self.app = app
        self.minimum_size = minimum_size
        self.preference = preference
        skip = DEFAULT_SKIP_CONTENT_TYPES if skip_content_types is None else skip_content_types
        self.skip_content_types = frozenset(item.lower() for item in skip)

    def compressible_type(self, content_type: str) -> bool:
        media = content_type.split(";", 1)[0].strip().lower()
        if media in self.skip_content_types:
            return False
        major = media.split("/", 1)[0] + "/*"
        return major not in self.skip_content_types or media in _COMPRESSIBLE_EXCEPTIONS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        accept = ""
        for key, value in scope["headers"]:
            if key.lower() == b"accept-encoding":
                accept += bytes(value).decode("latin-1") + ","
        coding = _choose(parse_accept_encoding(accept), self.preference)
        if coding is not None and "extensions" in scope:
            extensions = scope["extensions"] or {}
            scope["extensions"] = {
                key: value
                for key, value in extensions.items()
                if key not in ("http.response.pathsend", "http.response.zerocopysend")
            }
        responder = _Responder(self, coding, send)
        await self.app(scope, receive, responder.send)


class _Responder:
    """One response's state: undecided until the first body chunk, then identity or encoding."""

    def __init__(self, middleware: CompressionMiddleware, coding: str | None, send: Send) -> None:
        self.middleware = middleware
        self.coding = coding
        self.downstream = send
        self.start: Message | None = None
        self.encoder: _Encoder | None = None
        self.passthrough = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.on_start(message)
            if self.passthrough:
                await self.downstream(message)
            return
        if kind != "http.response.body" or self.passthrough:
            await self.downstream(message)
            return
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self.encoder is None:
            await self.first_body(body, more)
            return
        data = self.encoder.compress(body)
        data += self.encoder.flush() if more else self.encoder.finish()
        await self.downstream({"type": "http.response.body", "body": data, "more_body": more})

    def on_start(self, message: Message) -> None:
        headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
        status = int(message["status"])
        found = dict(headers)
        content_type = found.get(b"content-type", b"").decode("latin-1")
        cache_control = found.get(b"cache-control", b"").lower()
        depends = not (
            status < 200
            or status in _SKIP_STATUS
            or b"content-encoding" in found
            or b"content-range" in found
            or b"no-transform" in cache_control
            or (content_type and not self.middleware.compressible_type(content_type))
        )
        length = found.get(b"content-length")
        small = (
            length is not None and length.isdigit() and int(length) < self.middleware.minimum_size
        )
        if depends and not small:
            message["headers"] = headers
            _add_vary(headers, b"Accept-Encoding")
        if not depends or small or self.coding is None:
            self.passthrough = True
            return
        self.start = message

    async def first_body(self, body: bytes, more: bool) -> None:
        assert self.start is not None and self.coding is not None
        start, self.start = self.start, None
        if not more and len(body) < self.middleware.minimum_size:
            self.passthrough = True
            await self.downstream(start)
            await self.downstream({"type": "http.response.body", "body": body})
            return
        encoder = _ENCODERS[self.coding](self.middleware.levels[self.coding])
        self.encoder = encoder
        data = encoder.compress(body) + (encoder.flush() if more else encoder.finish())
        headers: list[tuple[bytes, bytes]] = []
        for key, value in start["headers"]:
            if key == b"content-length":
                continue
            if key == b"etag" and value.startswith(b'"'):
                value = b"W/" + value
            headers.append((key, value))
        headers.append((b"content-encoding", self.coding.encode()))
        if not more:
            headers.append((b"content-length", str(len(data)).encode()))
        start["headers"] = headers
        await self.downstream(start)
        await self.downstream({"type": "http.response.body", "body": data, "more_body": more})


def _add_vary(headers: list[tuple[bytes, bytes]], name: bytes) -> None:
    for index, (key, value) in enumerate(headers):
        if key == b"vary":
            present = {item.strip().lower() for item in value.split(b",")}
            if name.lower() not in present and b"*" not in present:
                headers[index] = (key, value + b", " + name)
            return
    headers.append((b"vary", name))
