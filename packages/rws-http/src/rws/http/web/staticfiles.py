"""A directory of files as an ASGI app: ``Mount("/static", StaticFiles(directory="static"))``.

The file's path is the request path below ``root_path`` (what :class:`Mount` and Starlette's
router both set under ASGI 2.4). Each decision is made on the path's segments, never by
normalising a joined string, so nothing the client sends can point outside the directory:

* **404** for anything that is not a plain relative path: a ``..`` or ``.`` segment (also
  when it arrived percent-encoded: the server decodes ``%2e%2e`` before the app sees it),
  an empty segment (``//etc/passwd``), a backslash, a NUL or another control character, a
  Windows drive (``C:``). These name nothing in the tree, so there is nothing to reveal.
* **403** for a file whose real path (symlinks resolved) lies outside the real directory
  while ``follow_symlinks`` is off: the file exists, the operator's own link is refused, and
  a distinct status tells them which switch to flip.
* Directories are never listed. With ``html=True`` a directory serves its ``index.html``
  (``/docs`` redirects with 307 to ``docs/``, a relative ``Location`` so it stays right
  behind proxies that rewrite prefixes) and a miss serves ``404.html`` with status 404.

**Pre-compressed variants.** With ``precompressed=True``, ``app.js.br`` / ``app.js.gz`` next
to ``app.js`` are sent instead when ``Accept-Encoding`` allows (highest q-value wins, br on a
tie), with ``Content-Encoding``, the original's ``Content-Type``, an ETag of their own
(``...-br"``), and ``Vary: Accept-Encoding`` on every answer for a file that has a variant.
Conditional and range requests then apply to the variant's bytes.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from .datastructures import Headers
from .fileresponse import FileResponse, guess_media_type, make_etag
from .routing import method_not_allowed, plain_response
from .types import Receive, Scope, Send

__all__ = ["StaticFiles"]

CacheControl = str | Callable[[str], str | None] | None

_DRIVE = re.compile(r"^[A-Za-z]:")
_VARIANTS = (("br", ".br"), ("gzip", ".gz"))  # preference order on equal q-values


@dataclass
class _Found:
    """What a lookup decided; built in a worker thread, answered on the loop."""

    status: int  # 200, 307, 403, 404
    path: str = ""  # the file to send (for 404: the 404.html page, or "")
    relative: str = ""  # the served file below the directory, "/"-separated
    media_type: str | None = None
    encoding: str | None = None
    vary: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class _EncodedFileResponse(FileResponse):
    """A pre-compressed variant: its ETag must differ from the identity file's."""

    def __init__(
        self,
        path: str,
        status_code: int,
        headers: dict[str, str],
        media_type: str | None,
        *,
        encoding: str,
    ) -> None:
        self.encoding = encoding
        super().__init__(path, status_code, headers, media_type)

    def etag(self, stat_result: os.stat_result) -> str:
        return make_etag(stat_result, f"-{self.encoding}")


class StaticFiles:
    """Serve the files under ``directory`` (GET and HEAD; see the module docstring).

    ``cache_control`` is the ``Cache-Control`` of every served file, or a function of the
    file's path below the directory (``"css/site.css"``) returning one or ``None``; ``None``
    sends none. ``check_dir=False`` lets the directory appear after start-up (404 until then).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        html: bool = False,
        index: str = "index.html",
        follow_symlinks: bool = False,
        precompressed: bool = True,
        cache_control: CacheControl = "public, max-age=3600",
        check_dir: bool = True,
    ) -> None:
        self.directory = os.fspath(directory)
        if check_dir and not os.path.isdir(self.directory):
            raise ValueError(
                f"StaticFiles directory {self.directory!r} does not exist or is not a directory"
            )
        if not index or "/" in index or "\\" in index or index in (".", ".."):
            raise ValueError(f"StaticFiles index must be a plain file name, got {index!r}")
        if isinstance(cache_control, str) and ("\r" in cache_control or "\n" in cache_control):
            raise ValueError("StaticFiles cache_control holds CR or LF")
        if cache_control is not None and not isinstance(cache_control, str | Callable):
            raise ValueError("StaticFiles cache_control must be a str, a callable or None")
        self.html = html
        self.index = index
        self.follow_symlinks = follow_symlinks
        self.precompressed = precompressed
        self.cache_control = cache_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served on its own, not mounted
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["method"] not in ("GET", "HEAD"):
            await method_not_allowed(["GET", "HEAD"], send)
            return
        relative = _relative_path(scope)
        segments = _segments(relative)
        if segments is None:
            found = await asyncio.to_thread(self._not_found)
        else:
            parts, trailing = segments
            accept = Headers(scope=scope).get("accept-encoding", "")
            found = await asyncio.to_thread(self._lookup, parts, trailing, accept)
        await self._answer(found, scope, receive, send)

    async def _answer(self, found: _Found, scope: Scope, receive: Receive, send: Send) -> None:
        if found.status == 307:
            last = scope["path"].rstrip("/").rsplit("/", 1)[-1]
            location = "./" + quote(last) + "/"
            query = scope.get("query_string", b"")
            if query:
                location += "?" + query.decode("latin-1")
            await plain_response(send, 307, b"", [(b"location", location.encode("latin-1"))])
            return
        if found.status == 403:
            await plain_response(send, 403, b"Forbidden", [])
            return
        if found.status == 404 and not found.path:
            await plain_response(send, 404, b"Not Found", [])
            return
        headers = dict(found.headers)
        if found.status == 200:
            value = (
                self.cache_control(found.relative)
                if callable(self.cache_control)
                else self.cache_control
            )
            if value is not None:
                headers["cache-control"] = value
        response: FileResponse
        if found.encoding is not None:
            headers["content-encoding"] = found.encoding
            response = _EncodedFileResponse(
                found.path,
                found.status,
                headers,
                found.media_type,
                encoding=found.encoding,
            )
        else:
            response = FileResponse(found.path, found.status, headers, found.media_type)
        await response(scope, receive, send)

    # -- lookup (runs in a worker thread: every stat may block) --------------------------

    def _root(self) -> str:
        return os.path.realpath(self.directory)

    def _check(self, root: str, parts: list[str]) -> tuple[int, str, os.stat_result | None]:
        """(200, path, stat) for an existing entry, 404 for none, 403 for a symlink escape."""
        path = os.path.join(root, *parts)
        try:
            stat_result = os.stat(path)
        except (OSError, ValueError):
            return 404, path, None
        if not self.follow_symlinks:
            real = os.path.realpath(path)
            try:
                inside = os.path.commonpath((real, root)) == root
            except ValueError:  # another drive, on Windows
                inside = False
            if not inside:
                return 403, path, None
        return 200, path, stat_result

    def _not_found(self) -> _Found:
        if self.html:
            status, path, result = self._check(self._root(), ["404.html"])
            if status == 200 and result is not None and stat.S_ISREG(result.st_mode):
                return _Found(404, path=path, media_type="text/html")
        return _Found(404)

    def _lookup(self, parts: list[str], trailing: bool, accept: str) -> _Found:
        root = self._root()
        if not os.path.isdir(root):
            return self._not_found()
        status, path, result = self._check(root, parts)
        if status == 403:
            return _Found(403)
        if result is None:
            return self._not_found()
        if stat.S_ISDIR(result.st_mode):
            if not self.html:
                return self._not_found()
            if not trailing:
                return _Found(307)
            parts = [*parts, self.index]
            status, path, result = self._check(root, parts)
            if status == 403:
                return _Found(403)
            trailing = False
        if result is None or not stat.S_ISREG(result.st_mode) or trailing:
            return self._not_found()
        found = _Found(200, path=path, relative="/".join(parts), media_type=guess_media_type(path))
        if self.precompressed:
            self._pick_variant(found, root, parts, accept)
        return found

    def _pick_variant(self, found: _Found, root: str, parts: list[str], accept: str) -> None:
        weights = _accepted_encodings(accept)
        best: tuple[float, str, str] | None = None
        for encoding, suffix in _VARIANTS:
            status, path, result = self._check(root, [*parts[:-1], parts[-1] + suffix])
            if status != 200 or result is None or not stat.S_ISREG(result.st_mode):
                continue
            found.vary = True
            weight = weights.get(encoding, weights.get("*", 0.0))
            if weight > 0 and (best is None or weight > best[0]):
                best = (weight, encoding, path)
        if found.vary:
            found.headers["vary"] = "Accept-Encoding"
        if best is not None:
            found.encoding, found.path = best[1], best[2]


def _relative_path(scope: Scope) -> str:
    """The path below ``root_path``: ``""`` for the mount point itself without its slash."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def _segments(relative: str) -> tuple[list[str], bool] | None:
    """The path's segments and whether it ended in ``/``; ``None`` if it is not safe."""
    if relative == "":
        return [], False
    if not relative.startswith("/") or "\\" in relative:
        return None
    parts = relative[1:].split("/")
    trailing = parts[-1] == ""
    if trailing:
        parts.pop()
    for part in parts:
        if part in ("", ".", "..") or _DRIVE.match(part):
            return None
        if any(ord(char) < 32 or ord(char) == 127 for char in part):
            return None
    return parts, trailing


def _accepted_encodings(header: str) -> dict[str, float]:
    """``Accept-Encoding`` as {coding: q}; a malformed q counts as 0 (not acceptable)."""
    weights: dict[str, float] = {}
    for item in header.split(","):
        name, *params = item.split(";")
        coding = name.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0
                if not 0.0 <= weight <= 1.0:
                    weight = 0.0
        weights[coding] = weight
    return weights
