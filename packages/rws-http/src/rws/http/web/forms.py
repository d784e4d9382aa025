"""Form bodies (``multipart/form-data`` and ``application/x-www-form-urlencoded``), streamed.

:func:`parse_form` reads the body chunk by chunk and never holds more of it than the limits
allow: text fields (at most ``max_field_size`` each) stay in memory, files go to a
:class:`tempfile.SpooledTemporaryFile` that moves to disk past ``spool_threshold``. Every limit
answers 413 naming the limit, malformed bodies answer 400 saying what is wrong, and on any
failure (including cancellation) each temporary file already created is closed, so nothing
stays on disk or open.

Compared with Starlette's ``formparsers.py``: the body size, the part-header size and the
file count are limited too, fields without a filename are capped (Starlette's
CVE-2024-47874), the Content-Type is parsed without a regular expression (python-multipart's
CVE-2024-24762), and a write that makes a spooled file roll over to disk runs in a thread,
not on the event loop (Starlette's CVE-2025-54121).
"""

from __future__ import annotations

import asyncio
import codecs
import tempfile
import types
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import IO, Final, Self
from urllib.parse import unquote_to_bytes

from rws.http.web.exceptions import HTTPException
from rws.http.web.multipart import (
    MultipartError,
    MultipartLimitError,
    MultipartParser,
    PartData,
    PartStart,
    parse_options_header,
    validate_boundary,
)

__all__ = [
    "FormData",
    "FormLimits",
    "UnsupportedMediaType",
    "UploadFile",
    "parse_form",
]

_MIB: Final = 1024 * 1024
_DEFAULT_CHARSET: Final = "utf-8"


@dataclass(frozen=True, slots=True)
class FormLimits:
    """The limits :func:`parse_form` enforces; each one exceeded answers 413 naming it.

    * ``max_body_size`` (10 MiB): the whole body as received, files included. Raise it for
      upload endpoints: the default suits ordinary forms and keeps a client from filling the
      disk.
    * ``max_fields`` (1000): text fields (multipart parts without a filename, or urlencoded
      pairs).
    * ``max_files`` (100): file parts.
    * ``max_field_size`` (1 MiB): one text field's bytes, kept in memory (for urlencoded, the
      encoded ``name=value``).
    * ``max_part_header_size`` (8 KiB): one multipart part's header block.
    * ``spool_threshold`` (1 MiB): a file stays in memory up to this size, then moves to disk.
    * ``tempdir`` (``None`` = the system default): where spilled files are created.
    """

    max_body_size: int = 10 * _MIB
    max_fields: int = 1000
    max_files: int = 100
    max_field_size: int = _MIB
    max_part_header_size: int = 8 * 1024
    spool_threshold: int = _MIB
    tempdir: str | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "tempdir":
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"FormLimits.tempdir must be a str or None, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"FormLimits.{field.name} must be an int, got {value!r}")
            minimum = 0 if field.name in ("max_fields", "max_files") else 1
            if value < minimum:
                raise ValueError(f"FormLimits.{field.name} must be >= {minimum}, got {value}")


class UnsupportedMediaType(HTTPException):
    """415: the body is not a form (or names a charset Python does not know)."""

    def __init__(self, detail: str) -> None:
        super().__init__(415, detail)


class UploadFile:
    """An uploaded file: metadata plus a spooled temporary file holding its bytes.

    ``size`` counts the bytes written. The async methods run on the event loop while the
    file is in memory and in a thread once it lives on disk (or is about to: the write that
    rolls it over is disk I/O too). ``file`` is the underlying file object for code that
    needs a synchronous one. ``headers`` are the part's headers, names lower-cased (a
    repeated header's values joined with ", ").
    """

    def __init__(
        self,
        filename: str | None = None,
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        file: IO[bytes] | None = None,
        spool_threshold: int = _MIB,
        tempdir: str | None = None,
    ) -> None:
        if isinstance(spool_threshold, bool) or not isinstance(spool_threshold, int):
            raise ValueError(f"spool_threshold must be an int, got {spool_threshold!r}")
        if spool_threshold < 1:
            raise ValueError(f"spool_threshold must be >= 1, got {spool_threshold}")
        self.filename = filename
        self.content_type = content_type
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        joined: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self.headers: Mapping[str, str] = types.MappingProxyType(joined)
        self.file: IO[bytes] = (
            file
            if file is not None
            else tempfile.SpooledTemporaryFile(max_size=spool_threshold, dir=tempdir)  # noqa: SIM115
        )
        self.size = 0

    @property
    def rolled_to_disk(self) -> bool:
        """Whether the bytes now live in a file on disk rather than in memory."""
        # SpooledTemporaryFile has no public flag; anything else counts as on disk.
        return bool(getattr(self.file, "_rolled", True))

    @property
    def closed(self) -> bool:
        return self.file.closed

    def _will_touch_disk(self, size: int) -> bool:
        if self.rolled_to_disk:
            return True
        max_size = getattr(self.file, "_max_size", 0)
        return bool(max_size) and self.file.tell() + size > max_size

    async def write(self, data: bytes) -> None:
        if self._will_touch_disk(len(data)):
            await asyncio.to_thread(self.file.write, data)
        else:
            self.file.write(data)
        self.size += len(data)

    async def read(self, size: int = -1) -> bytes:
        if self.rolled_to_disk:
            return await asyncio.to_thread(self.file.read, size)
        return self.file.read(size)

    async def seek(self, offset: int, whence: int = 0) -> int:
        if self.rolled_to_disk:
            return await asyncio.to_thread(self.file.seek, offset, whence)
        return self.file.seek(offset, whence)

    async def close(self) -> None:
        if self.rolled_to_disk:
            await asyncio.to_thread(self.file.close)
        else:
            self.file.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={self.size!r})"
        )


FormValue = str | UploadFile


class FormData(Mapping[str, FormValue]):
    """An immutable multi-dict of form values, in body order.

    As in Starlette, ``form[key]``, ``get``, ``keys``, ``values`` and ``items`` see the
    *last* value of a repeated key (``len`` counts distinct keys); ``getlist`` and
    ``multi_items`` see every value. ``async with form:`` (or ``await form.close()``) closes
    every :class:`UploadFile` in it.
    """

    __slots__ = ("_items", "_last", "_lists")

    def __init__(
        self, items: Mapping[str, FormValue] | Iterable[tuple[str, FormValue]] = ()
    ) -> None:
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        self._items: tuple[tuple[str, FormValue], ...] = tuple(pairs)
        self._last: dict[str, FormValue] = {}
        self._lists: dict[str, list[FormValue]] = {}
        for key, value in pairs:
            self._last[key] = value
            self._lists.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> FormValue:
        return self._last[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[FormValue]:
        """Every value of ``key`` in body order (``[]`` if absent)."""
        return list(self._lists.get(key, ()))

    def multi_items(self) -> list[tuple[str, FormValue]]:
        """Every ``(key, value)`` pair in body order, repeats included."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FormData):
            return self._items == other._items
        if isinstance(other, Mapping):
            return dict(self._last) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._items)!r})"

    async def close(self) -> None:
        """Close every uploaded file (their temporary files are deleted)."""
        for _, value in self._items:
            if isinstance(value, UploadFile):
                await value.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _too_large(limit: str, message: str) -> HTTPException:
    return HTTPException(413, f"{message} (limit {limit})")


def _lookup_charset(name: str, *, for_field: str | None = None) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        if for_field is None:
            raise UnsupportedMediaType(f"unknown charset {name!r}") from None
        raise HTTPException(400, f"field {for_field!r} names an unknown charset {name!r}") from None


def _decode(raw: bytes, charset: str, name: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        raise HTTPException(400, f"form field {name!r} is not valid {charset}") from None


class _BodyMeter:
    """Counts body bytes against ``max_body_size`` before anything parses them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0

    def add(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit:
            raise _too_large("max_body_size", f"the request body is larger than {self.limit} bytes")


async def parse_form(
    content_type_header: str,
    stream: AsyncIterable[bytes],
    limits: FormLimits = FormLimits(),  # frozen, so sharing the default is safe
) -> FormData:
    """Read a form body from ``stream`` according to its Content-Type header.

    Raises :class:`UnsupportedMediaType` (415) for any other content type or an unknown
    charset, ``HTTPException(413)`` when a :class:`FormLimits` limit is exceeded (the detail
    names it), ``HTTPException(400)`` for a malformed body. The caller owns the returned
    :class:`FormData` and should close it (``async with``) to delete spilled files.
    """
    try:
        kind, params = parse_options_header(content_type_header)
    except MultipartError as exc:
        raise HTTPException(400, f"malformed Content-Type header: {exc}") from None
    if kind == "multipart/form-data":
        return await _parse_multipart(params, stream, limits)
    if kind == "application/x-www-form-urlencoded":
        charset = _lookup_charset(params.get("charset", _DEFAULT_CHARSET))
        return await _parse_urlencoded(charset, stream, limits)
    raise UnsupportedMediaType(
        "expected multipart/form-data or application/x-www-form-urlencoded, "
        f"got {kind or 'no content type'!r}"
    )


async def _parse_urlencoded(
    charset: str, stream: AsyncIterable[bytes], limits: FormLimits
) -> FormData:
    """``urllib.parse.parse_qsl(keep_blank_values=True)`` rules, one ``&`` segment at a time."""
    meter = _BodyMeter(limits.max_body_size)
    items: list[tuple[str, FormValue]] = []
    pending = bytearray()

    def add_segment() -> None:
        if not pending:
            return
        if len(items) >= limits.max_fields:
            raise _too_large("max_fields", f"the form has more than {limits.max_fields} fields")
        raw_name, _, raw_value = bytes(pending).partition(b"=")
        name = _decode(unquote_to_bytes(raw_name.replace(b"+", b" ")), charset, "?")
        value = _decode(unquote_to_bytes(raw_value.replace(b"+", b" ")), charset, name)
        items.append((name, value))
        pending.clear()

    async for chunk in stream:
        meter.add(chunk)
        start = 0
        while True:
            amp = chunk.find(b"&", start)
            pending += chunk[start:] if amp < 0 else chunk[start:amp]
            if len(pending) > limits.max_field_size:
                raise _too_large(
                    "max_field_size", f"a form field is larger than {limits.max_field_size} bytes"
                )
            if amp < 0:
                break
            add_segment()
            start = amp + 1
    add_segment()
    return FormData(items)


class _MultipartForm:
    """Turns parser events into form items, files into :class:`UploadFile` objects."""

    def __init__(self, limits: FormLimits, charset: str) -> None:
        self.limits = limits
        self.charset = charset
        self.items: list[tuple[str, FormValue]] = []
        self.uploads: list[UploadFile] = []
        self.fields = 0
        self.upload: UploadFile | None = None
        self.name = ""
        self.field_charset = charset
        self.value = bytearray()

    def start(self, event: PartStart) -> None:
        limits = self.limits
        self.name = event.name
        if event.filename is None:
            self.fields += 1
            if self.fields > limits.max_fields:
                raise _too_large("max_fields", f"the form has more than {limits.max_fields} fields")
            self.upload = None
            self.value.clear()
            self.field_charset = self.charset
            if event.content_type is not None:
                _, params = parse_options_header(event.content_type)
                if "charset" in params:
                    self.field_charset = _lookup_charset(params["charset"], for_field=event.name)
            return
        if len(self.uploads) >= limits.max_files:
            raise _too_large("max_files", f"the form has more than {limits.max_files} files")
        self.upload = UploadFile(
            event.filename,
            content_type=event.content_type,
            headers=event.headers,
            spool_threshold=limits.spool_threshold,
            tempdir=limits.tempdir,
        )
        self.uploads.append(self.upload)

    async def data(self, event: PartData) -> None:
        if self.upload is not None:
            await self.upload.write(event.data)
            return
        if len(self.value) + len(event.data) > self.limits.max_field_size:
            raise _too_large(
                "max_field_size",
                f"form field {self.name!r} is larger than {self.limits.max_field_size} bytes",
            )
        self.value += event.data

    async def end(self) -> None:
        if self.upload is not None:
            await self.upload.seek(0)
            self.items.append((self.name, self.upload))
            self.upload = None
            return
        value = _decode(bytes(self.value), self.field_charset, self.name)
        if self.name == "_charset_":
            # RFC 7578 section 4.6: the charset of the text fields that follow.
            self.charset = _lookup_charset(value, for_field=self.name)
        self.items.append((self.name, value))

    def discard(self) -> None:
        """Close every file synchronously: it must happen even while being cancelled."""
        for upload in self.uploads:
            upload.file.close()


async def _parse_multipart(
    params: Mapping[str, str], stream: AsyncIterable[bytes], limits: FormLimits
) -> FormData:
    boundary_text = params.get("boundary")
    if boundary_text is None:
        raise HTTPException(400, "multipart/form-data Content-Type has no boundary parameter")
    try:
        boundary = validate_boundary(boundary_text.encode("ascii"))
    except UnicodeEncodeError:
        raise HTTPException(400, "multipart boundary holds non-ASCII characters") from None
    except MultipartError as exc:
        raise HTTPException(400, str(exc)) from None
    charset = _lookup_charset(params.get("charset", _DEFAULT_CHARSET))
    parser = MultipartParser(boundary, limits=limits)
    form = _MultipartForm(limits, charset)
    meter = _BodyMeter(limits.max_body_size)
    try:
        async for chunk in stream:
            meter.add(chunk)
            for event in parser.feed(chunk):
                if isinstance(event, PartData):
                    await form.data(event)
                elif isinstance(event, PartStart):
                    form.start(event)
                else:
                    await form.end()
        parser.close()
    except MultipartLimitError as exc:
        form.discard()
        raise _too_large(exc.limit, str(exc)) from None
    except MultipartError as exc:
        form.discard()
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    except BaseException:
        form.discard()
        raise
    return FormData(form.items)
