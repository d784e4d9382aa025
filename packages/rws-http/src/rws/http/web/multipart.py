"""A sans-IO, streaming ``multipart/form-data`` parser (RFC 7578 over RFC 2046).

Bytes go in through :meth:`MultipartParser.feed`, events come out; the parser owns no socket,
no file and no event loop, so the caller decides where part bodies go (memory, a spooled
temporary file, a hash) and the parser is tested without I/O.

Why it is written this way:

* **Linear time on any input.** Every byte is searched for the delimiter at most once, plus a
  hold-back of at most ``len(delimiter) - 1`` bytes per :meth:`~MultipartParser.feed` (a
  partial delimiter at the end of a chunk). Header blocks are searched from where the last
  search stopped. :attr:`MultipartParser.bytes_scanned` counts the bytes handed to searches
  so tests can prove the bound instead of timing it.
* **Bounded memory.** Part bodies are never buffered: they leave as :class:`PartData` events
  as soon as they cannot be the start of a delimiter. Only a part's header block is buffered,
  up to ``max_part_header_size``; the preamble and epilogue are discarded as they arrive.
* **No regular expressions** on attacker-controlled header values (python-multipart's
  CVE-2024-24762 was a ReDoS in exactly that place); parameters are read in one pass.

A delimiter is ``CRLF "--" boundary`` followed by ``"--"`` (the close delimiter) or optional
spaces/tabs and ``CRLF``; anything else after ``CRLF "--" boundary`` is part data, as RFC 2046
section 5.1.1 says. The first delimiter may also start the body without the leading CRLF.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias
from urllib.parse import unquote_to_bytes

__all__ = [
    "DEFAULT_MAX_PART_HEADER_SIZE",
    "Event",
    "MultipartError",
    "MultipartLimitError",
    "MultipartLimits",
    "MultipartParser",
    "PartData",
    "PartEnd",
    "PartStart",
    "parse_options_header",
    "validate_boundary",
]

#: A part's header block is a Content-Disposition, maybe a Content-Type and rarely more;
#: browsers send about 150 bytes. 8 KiB matches common HTTP header-line limits and bounds the
#: only buffer this parser grows.
DEFAULT_MAX_PART_HEADER_SIZE: Final = 8 * 1024

#: RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.
_MAX_BOUNDARY_LENGTH: Final = 70
_BCHARS: Final = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)
_CR: Final = 0x0D
_LF: Final = 0x0A
_DASH: Final = 0x2D
_LWSP: Final = (0x20, 0x09)
_STARTS_AFTER_DELIMITER: Final = frozenset((_DASH, _CR, *_LWSP))


class MultipartError(ValueError):
    """The body is not valid ``multipart/form-data``; the message says what is wrong."""


class MultipartLimitError(MultipartError):
    """A documented limit was exceeded; ``limit`` names it (e.g. ``"max_part_header_size"``)."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)


class MultipartLimits(Protocol):
    """What the parser needs from a limits object (``FormLimits`` satisfies it)."""

    @property
    def max_part_header_size(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part's headers were read; its body follows as :class:`PartData` events.

    ``headers`` keeps every header line in order, names lower-cased. ``filename`` is ``None``
    when the Content-Disposition has no filename parameter (a plain field) and may be ``""``
    (a browser's empty file input). ``content_type`` is ``None`` when the part sent none.
    """

    name: str
    filename: str | None
    content_type: str | None
    headers: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"PartStart.name must be str, got {type(self.name).__name__}")
        if self.filename is not None and not isinstance(self.filename, str):
            raise TypeError("PartStart.filename must be str or None")


@dataclass(frozen=True, slots=True)
class PartData:
    """The next slice of the current part's body (never empty)."""

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes) or not self.data:
            raise ValueError("PartData.data must be non-empty bytes")


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part's body is complete."""


Event: TypeAlias = PartStart | PartData | PartEnd


def validate_boundary(boundary: bytes) -> bytes:
    """Return ``boundary`` if RFC 2046 allows it, else raise :class:`MultipartError`.

    The parser relies on the boundary holding no CR: a delimiter then has exactly one CR, at
    its start, which is what lets it hold back at most one partial delimiter per chunk.
    """
    if not boundary:
        raise MultipartError("multipart boundary is empty")
    if len(boundary) > _MAX_BOUNDARY_LENGTH:
        raise MultipartError(
            f"multipart boundary is {len(boundary)} bytes long; RFC 2046 allows at most "
            f"{_MAX_BOUNDARY_LENGTH}"
        )
    if not _BCHARS.issuperset(boundary) or boundary.endswith(b" "):
        raise MultipartError(
            f"multipart boundary {boundary!r} holds characters RFC 2046 does not allow"
        )
    return boundary


class MultipartParser:
    """Turn a ``multipart/form-data`` body, fed in chunks of any size, into events.

    ``feed`` returns the events the new bytes completed; ``close`` says the body ended and
    raises :class:`MultipartError` if it ended before the close delimiter. After an error the
    parser is unusable. Part bodies are never buffered; the only buffered data is a part's
    header block, capped by ``limits.max_part_header_size``
    (:data:`DEFAULT_MAX_PART_HEADER_SIZE` when ``limits`` is ``None``).
    """

    _PREAMBLE: Final = 0
    _AFTER_DELIMITER: Final = 1
    _HEADERS: Final = 2
    _BODY: Final = 3
    _EPILOGUE: Final = 4
    _FAILED: Final = 5
    _CLOSED: Final = 6

    def __init__(self, boundary: bytes, *, limits: MultipartLimits | None = None) -> None:
        if not isinstance(boundary, bytes):
            raise TypeError(f"boundary must be bytes, got {type(boundary).__name__}")
        try:
            validate_boundary(boundary)
        except MultipartError as exc:
            raise ValueError(f"boundary: {exc}") from None
        header_limit = (
            DEFAULT_MAX_PART_HEADER_SIZE if limits is None else limits.max_part_header_size
        )
        if isinstance(header_limit, bool) or not isinstance(header_limit, int):
            raise ValueError("max_part_header_size must be an int")
        if header_limit < 1:
            raise ValueError(f"max_part_header_size must be >= 1, got {header_limit}")
        self._delimiter = b"\r\n--" + boundary
        self._max_header_size = header_limit
        # The body's first delimiter may lack its CRLF; pretending the body starts with one
        # lets one search find both forms. Preamble bytes are discarded, so it never leaks.
        self._buffer = bytearray(b"\r\n")
        self._state: int = self._PREAMBLE
        # Bytes seen after a delimiter while deciding whether it really is one.
        self._after = bytearray()
        self._came_from: int = self._PREAMBLE
        # Offset in the buffer where the next header-terminator search starts.
        self._header_scan = 0
        self.bytes_scanned = 0
        """Bytes handed to delimiter/terminator searches so far (a linear-time witness)."""

    @property
    def done(self) -> bool:
        """Whether the close delimiter was seen (later bytes are epilogue, ignored)."""
        return self._state in (self._EPILOGUE, self._CLOSED)

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data`` and return the events it completed (possibly none)."""
        if self._state == self._FAILED:
            raise MultipartError("the parser already failed; it cannot take more data")
        if self._state == self._CLOSED:
            raise MultipartError("the parser is closed")
        events: list[Event] = []
        if not data or self._state == self._EPILOGUE:
            return events
        buf = self._buffer
        buf += data
        try:
            pos = self._run(buf, events)
        except MultipartError:
            self._state = self._FAILED
            raise
        del buf[:pos]
        self._header_scan = max(0, self._header_scan - pos)
        return events

    def close(self) -> None:
        """Say the body ended; raise :class:`MultipartError` if it was cut short."""
        state = self._state
        if state == self._FAILED:
            raise MultipartError("the parser already failed")
        self._state = self._CLOSED
        self._buffer.clear()
        if state in (self._EPILOGUE, self._CLOSED):
            return
        self._state = self._FAILED
        if state == self._PREAMBLE:
            raise MultipartError("no multipart boundary found in the body")
        if state == self._HEADERS:
            raise MultipartError("the body ended inside a part's headers")
        raise MultipartError("the body ended before the closing multipart boundary")

    # -- internals -----------------------------------------------------------------------

    def _run(self, buf: bytearray, events: list[Event]) -> int:
        """Process ``buf`` as far as possible; return how many leading bytes are consumed."""
        pos = 0
        end = len(buf)
        delimiter = self._delimiter
        while pos < end:
            state = self._state
            if state == self._BODY or state == self._PREAMBLE:
                found = buf.find(delimiter, pos)
                self.bytes_scanned += end - pos
                if found >= 0:
                    if state == self._BODY and found > pos:
                        events.append(PartData(bytes(buf[pos:found])))
                    self._came_from = state
                    self._after.clear()
                    self._state = self._AFTER_DELIMITER
                    pos = found + len(delimiter)
                    continue
                # Only a suffix starting at the window's last CR can be a partial delimiter.
                keep = end
                cr = buf.rfind(b"\r", max(pos, end - len(delimiter) + 1), end)
                if cr >= 0 and delimiter.startswith(buf[cr:end]):
                    keep = cr
                if state == self._BODY and keep > pos:
                    events.append(PartData(bytes(buf[pos:keep])))
                return keep
            if state == self._AFTER_DELIMITER:
                pos = self._after_delimiter(buf, pos, events)
            elif state == self._HEADERS:
                new_pos = self._headers(buf, pos, events)
                if new_pos < 0:
                    return pos
                pos = new_pos
            else:  # epilogue: discard
                return end
        return pos

    def _after_delimiter(self, buf: bytearray, pos: int, events: list[Event]) -> int:
        """Decide, byte by byte, whether ``CRLF--boundary`` starts a delimiter line."""
        after = self._after
        end = len(buf)
        while pos < end:
            byte = buf[pos]
            if not after:
                if byte in _STARTS_AFTER_DELIMITER:
                    after.append(byte)
                    pos += 1
                    continue
                return self._not_a_delimiter(pos, events)
            last = after[-1]
            if after == b"-":
                if byte == _DASH:
                    self._finish_part(events)
                    self._state = self._EPILOGUE
                    return end
                return self._not_a_delimiter(pos, events)
            if last == _CR:
                if byte == _LF:
                    self._finish_part(events)
                    self._state = self._HEADERS
                    self._header_scan = pos + 1
                    return pos + 1
                return self._not_a_delimiter(pos, events)
            if byte in _LWSP or byte == _CR:
                # Transport padding (RFC 2046): allowed, but bounded like a header line.
                if len(after) >= self._max_header_size:
                    raise MultipartLimitError(
                        "max_part_header_size", "the line after a multipart boundary is too long"
                    )
                after.append(byte)
                pos += 1
                continue
            return self._not_a_delimiter(pos, events)
        return pos

    def _not_a_delimiter(self, pos: int, events: list[Event]) -> int:
        """``CRLF--boundary`` was followed by other bytes: it was data after all."""
        if self._came_from == self._BODY:
            events.append(PartData(self._delimiter + bytes(self._after)))
        self._after.clear()
        self._state = self._came_from
        return pos

    def _finish_part(self, events: list[Event]) -> None:
        if self._came_from == self._BODY:
            events.append(PartEnd())
        self._after.clear()

    def _headers(self, buf: bytearray, pos: int, events: list[Event]) -> int:
        """Parse a complete header block starting at ``pos``; return -1 if it is incomplete."""
        end = len(buf)
        if buf.startswith(b"\r\n", pos):
            block_end, next_pos = pos, pos + 2
        elif end - pos < 2 and buf[pos] == _CR:
            return -1
        else:
            start = max(pos, self._header_scan)
            found = buf.find(b"\r\n\r\n", start)
            self.bytes_scanned += end - start
            if found < 0:
                if end - pos > self._max_header_size + 3:
                    raise MultipartLimitError(
                        "max_part_header_size",
                        f"a part's headers exceed max_part_header_size "
                        f"({self._max_header_size} bytes)",
                    )
                self._header_scan = max(pos, end - 3)
                return -1
            block_end, next_pos = found, found + 4
        if block_end - pos > self._max_header_size:
            raise MultipartLimitError(
                "max_part_header_size",
                f"a part's headers exceed max_part_header_size ({self._max_header_size} bytes)",
            )
        events.append(_part_start(bytes(buf[pos:block_end])))
        self._state = self._BODY
        return next_pos


def _decode_header_text(raw: bytes) -> str:
    """RFC 7578 section 5.1: field names and filenames may be raw UTF-8; else keep the bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _part_start(block: bytes) -> PartStart:
    headers: list[tuple[str, str]] = []
    for line in block.split(b"\r\n") if block else []:
        if line[:1] in (b" ", b"\t"):
            # Obsolete line folding: a continuation of the previous header's value.
            if not headers:
                raise MultipartError("a part's headers start with a continuation line")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {_decode_header_text(line.strip())}")
            continue
        raw_name, colon, raw_value = line.partition(b":")
        raw_name = raw_name.strip()
        if not colon or not raw_name or any(c <= 0x20 or c >= 0x7F for c in raw_name):
            raise MultipartError(f"malformed part header line {line[:100]!r}")
        headers.append(
            (raw_name.decode("ascii").lower(), _decode_header_text(raw_value.strip(b" \t")))
        )
    disposition = [value for name, value in headers if name == "content-disposition"]
    if len(disposition) != 1:
        raise MultipartError(
            f"a part must have exactly one Content-Disposition header, found {len(disposition)}"
        )
    kind, params = parse_options_header(disposition[0])
    if kind != "form-data":
        raise MultipartError(f'a part\'s Content-Disposition must be "form-data", got {kind!r}')
    if "name" not in params:
        raise MultipartError('a part\'s Content-Disposition has no "name" parameter')
    filename = params.get("filename")
    if filename is not None and (filename[1:3] == ":\\" or filename.startswith("\\\\")):
        # Old Internet Explorer sends the whole Windows path; keep the file's name only.
        filename = filename.rsplit("\\", 1)[-1]
    content_types = [value for name, value in headers if name == "content-type"]
    return PartStart(
        name=params["name"],
        filename=filename,
        content_type=content_types[-1] if content_types else None,
        headers=tuple(headers),
    )


def parse_options_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type; a=1; b="x \\" y"`` into ``("type", {"a": "1", "b": 'x " y'})``.

    One left-to-right pass (no regular expression, so no ReDoS). The type and parameter
    names are lower-cased; quoted strings honour backslash escapes of ``"`` and ``\\`` (any
    other backslash is literal, as browsers send Windows paths unescaped). RFC 5987 / 2231
    extended parameters (``filename*=UTF-8''%E2%82%AC.txt``, ``name*0*=`` continuations) are
    decoded and win over the plain parameter. A repeated parameter is an error: two parsers
    disagreeing about which copy counts is how smuggling starts.
    """
    cut = value.find(";")
    kind = (value if cut < 0 else value[:cut]).strip(" \t").lower()
    pairs: list[tuple[str, str]] = []
    length = len(value)
    pos = length if cut < 0 else cut
    while pos < length:
        pos += 1  # past ";"
        while pos < length and value[pos] in " \t":
            pos += 1
        start = pos
        while pos < length and value[pos] not in "=;":
            pos += 1
        name = value[start:pos].strip(" \t").lower()
        if pos >= length or value[pos] == ";":
            if name:
                pairs.append((name, ""))
            continue
        pos += 1  # past "="
        while pos < length and value[pos] in " \t":
            pos += 1
        if pos < length and value[pos] == '"':
            pos += 1
            chunks: list[str] = []
            while True:
                stop = _find_any(value, pos, '"\\')
                if stop < 0:
                    raise MultipartError(f"unterminated quoted string in {value[:200]!r}")
                chunks.append(value[pos:stop])
                if value[stop] == '"':
                    pos = stop + 1
                    break
                if stop + 1 < length and value[stop + 1] in '"\\':
                    chunks.append(value[stop + 1])
                    pos = stop + 2
                else:
                    chunks.append("\\")
                    pos = stop + 1
            while pos < length and value[pos] in " \t":
                pos += 1
            if pos < length and value[pos] != ";":
                raise MultipartError(
                    f"unexpected text after the quoted value of {name!r} in {value[:200]!r}"
                )
            pairs.append((name, "".join(chunks)))
        else:
            stop = value.find(";", pos)
            stop = length if stop < 0 else stop
            pairs.append((name, value[pos:stop].strip(" \t")))
            pos = stop
    return kind, _combine_parameters(pairs)


def _find_any(text: str, start: int, chars: str) -> int:
    found = [i for i in (text.find(c, start) for c in chars) if i >= 0]
    return min(found) if found else -1


def _combine_parameters(pairs: list[tuple[str, str]]) -> dict[str, str]:
    plain: dict[str, str] = {}
    extended: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[bool, str]]] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise MultipartError(f"parameter {name!r} is repeated")
        seen.add(name)
        base, star, rest = name.partition("*")
        if not star:
            plain[name] = value
        elif not rest:
            extended[base] = _decode_extended(name, value)
        else:
            encoded = rest.endswith("*")
            number = rest[:-1] if encoded else rest
            if (
                not (number.isascii() and number.isdigit())
                or len(number) > 3
                or (len(number) > 1 and number.startswith("0"))
            ):
                raise MultipartError(f"malformed RFC 2231 parameter name {name!r}")
            sections.setdefault(base, {})[int(number)] = (encoded, value)
    for base, parts in sections.items():
        if base in extended:
            continue
        if sorted(parts) != list(range(len(parts))):
            raise MultipartError(f"RFC 2231 parameter {base!r} has missing sections")
        extended[base] = _join_sections(base, parts)
    plain.update(extended)
    return plain


def _charset_and_text(name: str, value: str) -> tuple[str, str]:
    charset, quote1, rest = value.partition("'")
    _language, quote2, text = rest.partition("'")
    if not quote1 or not quote2 or not charset:
        raise MultipartError(f"malformed RFC 5987 value for {name!r}: {value[:200]!r}")
    try:
        return codecs.lookup(charset).name, text
    except LookupError:
        raise MultipartError(f"unknown charset {charset!r} in {name!r}") from None


def _decode_extended(name: str, value: str) -> str:
    charset, text = _charset_and_text(name, value)
    try:
        return unquote_to_bytes(text).decode(charset)
    except UnicodeDecodeError:
        raise MultipartError(f"{name!r} is not valid {charset}") from None


def _join_sections(base: str, parts: dict[int, tuple[bool, str]]) -> str:
    charset = "utf-8"
    raw = bytearray()
    for index in range(len(parts)):
        encoded, text = parts[index]
        if encoded:
            if index == 0:
                charset, text = _charset_and_text(f"{base}*0*", text)
            raw += unquote_to_bytes(text)
        else:
            raw += text.encode(charset, errors="surrogateescape")
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        raise MultipartError(f"{base!r} is not valid {charset}") from None
