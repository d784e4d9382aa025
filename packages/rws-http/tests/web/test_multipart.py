"""The streaming multipart parser and ``parse_form``, fed by async generators in any chunking.

No server here: ``test_forms_served.py`` covers real clients. These tests pin the parser's
behaviour byte by byte (every split position), its linear-time bound on adversarial input
(counted, never timed), the limits, the cleanup of temporary files, and agreement with
python-multipart and ``urllib.parse`` on randomised bodies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import tempfile
import threading
import tracemalloc
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rws.http.web.exceptions import HTTPException
from rws.http.web.forms import FormData, FormLimits, UnsupportedMediaType, UploadFile, parse_form
from rws.http.web.multipart import (
    DEFAULT_MAX_PART_HEADER_SIZE,
    Event,
    MultipartError,
    MultipartLimitError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    parse_options_header,
)

BOUNDARY = b"rws-b0undary"
CT = "multipart/form-data; boundary=" + BOUNDARY.decode()


def part(
    name: str,
    data: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    extra: str = "",
) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"Content-Disposition: {disposition}{extra}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data


def body_of(*parts: bytes, boundary: bytes = BOUNDARY) -> bytes:
    out = b""
    for p in parts:
        out += b"--" + boundary + b"\r\n" + p + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def merged(events: Iterable[Event]) -> list[Event]:
    """Join consecutive PartData events: how bodies are sliced depends on the chunking."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, PartData) and out and isinstance(out[-1], PartData):
            out[-1] = PartData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def parse_chunks(chunks: Iterable[bytes], boundary: bytes = BOUNDARY) -> list[Event]:
    parser = MultipartParser(boundary)
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    parser.close()
    return merged(events)


def feed_all(parser: MultipartParser, chunks: Iterable[bytes]) -> None:
    for chunk in chunks:
        parser.feed(chunk)


def split_every(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def stream(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for chunk in split_every(data, size):
        yield chunk


def open_files_under(path: Path) -> list[str]:
    """Files this process holds open below ``path`` (unlinked temp files included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


HAS_PROC = Path("/proc/self/fd").is_dir()
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="needs /proc")


SAMPLE = (
    b"This is the preamble; ignored.\r\n"
    + body_of(
        part("title", b"hello\r\nworld"),
        part("empty", b""),
        part("doc", b"\r\n--rws-b0undar\r\n-- data", filename="a.txt", content_type="text/plain"),
        part("bin", bytes(range(256)), filename="b.bin"),
    )
    + b"and an epilogue, ignored too\r\n"
)
SAMPLE_EVENTS = [
    PartStart("title", None, None, (("content-disposition", 'form-data; name="title"'),)),
    PartData(b"hello\r\nworld"),
    PartEnd(),
    PartStart("empty", None, None, (("content-disposition", 'form-data; name="empty"'),)),
    PartEnd(),
    PartStart(
        "doc",
        "a.txt",
        "text/plain",
        (
            ("content-disposition", 'form-data; name="doc"; filename="a.txt"'),
            ("content-type", "text/plain"),
        ),
    ),
    PartData(b"\r\n--rws-b0undar\r\n-- data"),
    PartEnd(),
    PartStart(
        "bin", "b.bin", None, (("content-disposition", 'form-data; name="bin"; filename="b.bin"'),)
    ),
    PartData(bytes(range(256))),
    PartEnd(),
]


# -- the parser -------------------------------------------------------------------------


def test_parser_emits_parts_in_order() -> None:
    assert parse_chunks([SAMPLE]) == SAMPLE_EVENTS


def test_every_split_position_gives_the_same_events() -> None:
    for cut in range(len(SAMPLE) + 1):
        assert parse_chunks([SAMPLE[:cut], SAMPLE[cut:]]) == SAMPLE_EVENTS, cut


def test_every_chunk_size_gives_the_same_events() -> None:
    for size in range(1, len(SAMPLE) + 1):
        assert parse_chunks(split_every(SAMPLE, size)) == SAMPLE_EVENTS, size


def test_every_pair_of_cuts_in_a_small_body() -> None:
    body = body_of(part("a", b"x\r\n"), part("b", b"", filename="f"))
    expected = parse_chunks([body])
    for i in range(len(body) + 1):
        for j in range(i, len(body) + 1):
            assert parse_chunks([body[:i], body[i:j], body[j:]]) == expected


def test_parser_never_buffers_part_bodies() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(b"--" + BOUNDARY + b"\r\n" + part("f", b"", filename="x"))
    events = parser.feed(b"a" * 100_000)
    assert events == [PartData(b"a" * 100_000)]
    # A chunk ending in a possible delimiter prefix holds back only that prefix.
    assert parser.feed(b"b\r\n--rws") == [PartData(b"b")]
    assert parser.feed(b"-nope") == [PartData(b"\r\n--rws-nope")]


def test_boundary_lookalikes_are_data() -> None:
    """RFC 2046: CRLF--boundary is a delimiter only when followed by "--" or LWSP* CRLF."""
    tricky = b"\r\n--" + BOUNDARY + b"x\r\n--" + BOUNDARY + b"-y \r\n--" + BOUNDARY + b" \rz"
    body = body_of(part("a", tricky), part("b", b"--" + BOUNDARY))
    events = parse_chunks([body])
    assert events[1] == PartData(tricky)
    assert events[4] == PartData(b"--" + BOUNDARY)
    for size in range(1, 12):
        assert parse_chunks(split_every(body, size)) == events


def test_transport_padding_and_no_leading_crlf() -> None:
    body = b"--" + BOUNDARY + b" \t \r\n" + part("a", b"1") + b"\r\n--" + BOUNDARY + b"--"
    assert parse_chunks([body])[1] == PartData(b"1")


def test_a_boundary_not_at_a_line_start_is_preamble() -> None:
    body = b"x--" + BOUNDARY + b"\r\n" + body_of(part("a", b"1"))
    events = parse_chunks([body])
    assert [type(e) for e in events] == [PartStart, PartData, PartEnd]


def test_preamble_and_epilogue_of_crlfs_are_cheap() -> None:
    """python-multipart's CVE-2024-53981: per-byte work (logging) on CR/LF outside parts."""
    noise = b"\r\n" * 500_000
    body = noise + body_of(part("a", b"1")) + noise
    parser = MultipartParser(BOUNDARY)
    events: list[Event] = []
    for chunk in split_every(body, 4096):
        events += parser.feed(chunk)
    parser.close()
    assert merged(events)[1] == PartData(b"1")
    assert parser.bytes_scanned < 2 * len(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no multipart boundary"),
        (b"just text\r\n", "no multipart boundary"),
        (b"--" + BOUNDARY + b"\r\nContent-Disposition: form", "inside a part's headers"),
        (b"--" + BOUNDARY + b"\r\n" + part("a", b"cut"), "before the closing"),
        (b"--" + BOUNDARY + b"\r\n" + part("a", b"x") + b"\r\n--" + BOUNDARY, "before the closing"),
    ],
)
def test_truncated_bodies_fail_on_close(body: bytes, message: str) -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(body)
    with pytest.raises(MultipartError, match=message):
        parser.close()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (b"Content-Type: text/plain", "exactly one Content-Disposition"),
        (b"Content-Disposition: attachment; name=a", 'must be "form-data"'),
        (b"Content-Disposition: form-data; filename=a", 'no "name"'),
        (b"Content-Disposition: form-data; name=a; name=b", "repeated"),
        (b'Content-Disposition: form-data; name="a', "unterminated"),
        (b'Content-Disposition: form-data; name="a"x', "unexpected text"),
        (b"no colon here", "malformed part header"),
        (b"Bad Name: x\r\nContent-Disposition: form-data; name=a", "malformed part header"),
        (b" folded: x", "continuation"),
        (b"Content-Disposition: form-data; name*=nope", "malformed RFC 5987"),
        (b"Content-Disposition: form-data; name*=x-nope''a", "unknown charset"),
        (b"Content-Disposition: form-data; name*=utf-8''%ff", "not valid utf-8"),
        (b"Content-Disposition: form-data; name*1=a", "missing sections"),
        (b"Content-Disposition: form-data; name*01=a", "malformed RFC 2231"),
    ],
)
def test_malformed_part_headers(headers: bytes, message: str) -> None:
    parser = MultipartParser(BOUNDARY)
    with pytest.raises(MultipartError, match=message):
        parser.feed(b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n\r\ndata\r\n")
    with pytest.raises(MultipartError, match="already failed"):
        parser.feed(b"more")


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        ('form-data; name="a\\"b"; filename="c\\\\d\\"e"', 'a"b', 'c\\d"e'),
        ('form-data; name="x"; filename="C:\\Users\\me\\pic.jpg"', "x", "pic.jpg"),
        ('form-data; name="x"; filename="a\\b.txt"', "x", "a\\b.txt"),
        ("form-data; name=plain; filename=unquoted.txt", "plain", "unquoted.txt"),
        ('FORM-DATA ;  NAME = "sp" ; FileName = "f"', "sp", "f"),
        ('form-data; name="semi;colon"; filename=""', "semi;colon", ""),
        (
            'form-data; name="f"; filename="x"; filename*=UTF-8\'\'%E2%82%AC%20rates.txt',
            "f",
            "€ rates.txt",
        ),
        ("form-data; name=\"f\"; filename*=iso-8859-1'en'%A3.txt", "f", "£.txt"),
        ("form-data; name*=UTF-8''na%C3%AFve", "naïve", None),
        (
            "form-data; name=f; filename*0*=UTF-8''%E2%82; filename*1*=%AC; filename*2=.txt",
            "f",
            "€.txt",
        ),
        ('form-data; name="caf\u00e9"; filename="\u65e5\u672c.txt"', "café", "日本.txt"),
    ],
)
def test_content_disposition_parameters(disposition: str, name: str, filename: str | None) -> None:
    body = body_of(f"Content-Disposition: {disposition}\r\n\r\nv".encode())
    start = parse_chunks([body])[0]
    assert isinstance(start, PartStart)
    assert (start.name, start.filename) == (name, filename)


def test_latin1_header_bytes_survive() -> None:
    body = body_of(b'Content-Disposition: form-data; name="\xe9t\xe9"\r\n\r\nv')
    start = parse_chunks([body])[0]
    assert isinstance(start, PartStart) and start.name == "été"


def test_folded_headers_and_header_case() -> None:
    body = body_of(
        b'CONTENT-disposition: form-data;\r\n name="a"\r\n'
        b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\nv"
    )
    start = parse_chunks([body])[0]
    assert isinstance(start, PartStart)
    assert start.name == "a"
    assert start.content_type == "text/plain; charset=utf-8"


def test_header_size_limit() -> None:
    @dataclasses.dataclass(frozen=True)
    class Limits:
        max_part_header_size: int

    line = b"Content-Disposition: form-data; name=a\r\nX-Pad: "
    ok = line + b"p" * (100 - len(line))
    assert len(ok) == 100
    parse_chunks([body_of(ok + b"\r\n\r\nv")], BOUNDARY)
    parser = MultipartParser(BOUNDARY, limits=Limits(100))
    assert parser.feed(body_of(ok + b"\r\n\r\nv"))[1] == PartData(b"v")
    for size in (1, 7, 4096):
        parser = MultipartParser(BOUNDARY, limits=Limits(100))
        chunks = list(split_every(body_of(ok + b"p\r\n\r\nv"), size))
        with pytest.raises(MultipartLimitError, match="max_part_header_size") as info:
            feed_all(parser, chunks)
        assert info.value.limit == "max_part_header_size"
    # Without a terminator at all the parser stops at the limit instead of buffering on.
    parser = MultipartParser(BOUNDARY)
    parser.feed(b"--" + BOUNDARY + b"\r\n")
    with pytest.raises(MultipartLimitError):
        feed_all(parser, [b"xy"] * DEFAULT_MAX_PART_HEADER_SIZE)


def test_padding_after_a_boundary_is_bounded() -> None:
    parser = MultipartParser(BOUNDARY)
    with pytest.raises(MultipartLimitError):
        parser.feed(b"--" + BOUNDARY + b" " * (DEFAULT_MAX_PART_HEADER_SIZE + 1))


@pytest.mark.parametrize(
    ("boundary", "message"),
    [
        (b"", "empty"),
        (b"x" * 71, "at most 70"),
        (b"a\rb", "characters"),
        (b"a\nb", "characters"),
        (b"trailing ", "characters"),
        (b'quote"s', "characters"),
    ],
)
def test_invalid_boundaries_are_rejected_at_construction(boundary: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"boundary: .*{message}"):
        MultipartParser(boundary)


def test_bad_options() -> None:
    with pytest.raises(TypeError, match="boundary must be bytes"):
        MultipartParser("str")  # type: ignore[arg-type]

    @dataclasses.dataclass(frozen=True)
    class Limits:
        max_part_header_size: int

    with pytest.raises(ValueError, match="max_part_header_size"):
        MultipartParser(BOUNDARY, limits=Limits(0))


def test_events_are_frozen_slotted_values() -> None:
    event = PartData(b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = b"y"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    with pytest.raises(ValueError, match="non-empty"):
        PartData(b"")
    with pytest.raises(TypeError):
        PartStart(b"name", None, None, ())  # type: ignore[arg-type]


def test_closed_parser_refuses_data() -> None:
    parser = MultipartParser(BOUNDARY)
    parser.feed(body_of(part("a", b"1")) + b"epilogue")
    assert parser.done
    assert parser.feed(b"more epilogue") == []
    parser.close()
    with pytest.raises(MultipartError, match="closed"):
        parser.feed(b"x")


def test_ten_megabytes_of_near_miss_delimiters_in_seven_byte_chunks() -> None:
    """Linear time, proved by counting: each byte is searched once, plus a bounded hold-back.

    The body is wall-to-wall ``CRLF--<boundary minus its last byte>``, the worst case for a
    parser that rescans its buffer: every chunk ends in a partial delimiter.
    """
    boundary = b"B" * 40
    delimiter_length = len(b"\r\n--" + boundary)
    near_miss = b"\r\n--" + boundary[:-1]
    payload = near_miss * (10_000_000 // len(near_miss))
    body = body_of(part("f", payload, filename="x"), boundary=boundary)
    parser = MultipartParser(boundary)
    received = 0
    feeds = 0
    for chunk in split_every(body, 7):
        feeds += 1
        for event in parser.feed(chunk):
            if isinstance(event, PartData):
                received += len(event.data)
    parser.close()
    assert received == len(payload)
    assert parser.bytes_scanned <= len(body) + feeds * (delimiter_length - 1)


def test_header_search_does_not_rescan() -> None:
    """A header block fed byte by byte is searched from where the last search stopped."""
    headers = b"Content-Disposition: form-data; name=a\r\n" + b"X-A: b\r\n" * 900 + b"\r\n"
    parser = MultipartParser(BOUNDARY)
    parser.feed(b"--" + BOUNDARY + b"\r\n")
    before = parser.bytes_scanned
    for chunk in split_every(headers, 1):
        parser.feed(chunk)
    # Each 1-byte feed searches at most the 3 bytes kept for a split CRLFCRLF plus itself;
    # a rescan of the growing block would be ~len(headers) ** 2 / 2 (26 million here).
    assert parser.bytes_scanned - before <= 4 * len(headers)
    assert parser.feed(b"v\r\n--" + BOUNDARY + b"--") == [PartData(b"v"), PartEnd()]


# -- parse_options_header ---------------------------------------------------------------


def test_content_type_redos_payloads_are_linear() -> None:
    """CVE-2024-24762 (python-multipart/Starlette): a regex backtracked on these headers."""
    payloads = [
        'application/x-www-form-urlencoded; !="' + "\\" * 200_000,
        "multipart/form-data; a=" + ";" * 200_000,
        "multipart/form-data;" + " a=b;" * 50_000,
        'multipart/form-data; boundary="' + '\\"' * 100_000 + '"',
    ]
    for payload in payloads:
        try:
            kind, _ = parse_options_header(payload)
        except MultipartError:
            continue
        assert kind in ("multipart/form-data", "application/x-www-form-urlencoded")


async def test_parse_form_rejects_redos_content_type_quickly() -> None:
    header = 'application/x-www-form-urlencoded; !="' + "\\" * 200_000
    with pytest.raises(HTTPException) as info:
        await parse_form(header, stream(b"a=1"))
    assert info.value.status_code == 400


# -- parse_form: urlencoded -------------------------------------------------------------

URLENCODED = "application/x-www-form-urlencoded"


async def test_urlencoded_follows_urllib_rules() -> None:
    body = b"a=1&b=x+y%2Bz&empty=&bare&a=2&&caf%C3%A9=%E2%82%AC&sp%20ace=%26%3D"
    for size in (1, 3, 1000):
        form = await parse_form(URLENCODED, stream(body, size))
        assert form.multi_items() == urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        assert form["a"] == "2"
        assert form.getlist("a") == ["1", "2"]
        assert form["bare"] == ""


async def test_urlencoded_matches_parse_qsl_on_random_bodies() -> None:
    rng = random.Random(7578)
    alphabet = "ab=&+%20%41%C3%A9 é;x"
    for _ in range(300):
        text = "".join(
            rng.choice(["a", "b", "=", "&", "+", "%20", "%41", "%C3%A9", ";", "x"])
            for _ in range(rng.randrange(40))
        )
        form = await parse_form(URLENCODED, stream(text.encode(), rng.randrange(1, 9)))
        assert form.multi_items() == urllib.parse.parse_qsl(text, keep_blank_values=True), text
    assert alphabet


async def test_urlencoded_charset_parameter() -> None:
    form = await parse_form(URLENCODED + "; charset=latin-1", stream(b"n=%E9t%E9"))
    assert form["n"] == "été"
    with pytest.raises(UnsupportedMediaType):
        await parse_form(URLENCODED + "; charset=x-unknown", stream(b"n=1"))


async def test_urlencoded_invalid_utf8_is_400() -> None:
    with pytest.raises(HTTPException) as info:
        await parse_form(URLENCODED, stream(b"n=%FF"))
    assert info.value.status_code == 400
    assert "'n'" in info.value.detail


@pytest.mark.parametrize(
    ("limits", "body", "limit"),
    [
        (FormLimits(max_body_size=100), b"a=" + b"x" * 100, "max_body_size"),
        (FormLimits(max_fields=3), b"a=1&b=2&c=3&d=4", "max_fields"),
        (FormLimits(max_field_size=10), b"a=1&b=" + b"x" * 10, "max_field_size"),
        (FormLimits(max_field_size=10), b"b" * 11, "max_field_size"),
    ],
)
async def test_urlencoded_limits_are_413(limits: FormLimits, body: bytes, limit: str) -> None:
    with pytest.raises(HTTPException) as info:
        await parse_form(URLENCODED, stream(body, 3), limits)
    assert info.value.status_code == 413
    assert limit in info.value.detail


async def test_urlencoded_at_the_limits_passes() -> None:
    limits = FormLimits(max_body_size=15, max_fields=4, max_field_size=3)
    form = await parse_form(URLENCODED, stream(b"a=1&b=2&c=3&d=4"), limits)
    assert len(form) == 4


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "", "multipart/mixed; boundary=x"]
)
async def test_other_content_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        await parse_form(content_type, stream(b"{}"))
    assert info.value.status_code == 415


# -- parse_form: multipart --------------------------------------------------------------


async def test_multipart_fields_and_files() -> None:
    body = body_of(
        part("name", "Zoë".encode()),
        part("tag", b"a"),
        part("tag", b"b"),
        part("doc", b"file body\r\n", filename="d.txt", content_type="text/plain"),
        part("none", b"", filename=""),
    )
    for size in (1, 7, 65536):
        async with await parse_form(CT, stream(body, size)) as form:
            assert form["name"] == "Zoë"
            assert form["tag"] == "b"  # the last value, as in Starlette
            assert form.getlist("tag") == ["a", "b"]
            assert form.getlist("missing") == []
            assert list(form) == ["name", "tag", "doc", "none"]
            assert [k for k, _ in form.multi_items()] == ["name", "tag", "tag", "doc", "none"]
            doc = form["doc"]
            assert isinstance(doc, UploadFile)
            assert (doc.filename, doc.content_type, doc.size) == ("d.txt", "text/plain", 11)
            assert doc.headers["content-type"] == "text/plain"
            assert await doc.read() == b"file body\r\n"
            assert not doc.rolled_to_disk
            empty = form["none"]
            assert isinstance(empty, UploadFile) and empty.filename == ""
            assert await empty.read() == b""
        assert doc.closed


async def test_multipart_charsets() -> None:
    body = body_of(
        part("a", "é".encode("latin-1"), content_type="text/plain; charset=iso-8859-1"),
        part("_charset_", b"iso-8859-1"),
        part("b", "é".encode("latin-1")),
    )
    form = await parse_form(CT, stream(body))
    assert (form["a"], form["b"]) == ("é", "é")
    body = body_of(part("a", b"\xff"))
    with pytest.raises(HTTPException) as info:
        await parse_form(CT, stream(body))
    assert info.value.status_code == 400 and "'a'" in info.value.detail


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", b"", "no boundary"),
        ("multipart/form-data; boundary=", b"", "empty"),
        ("multipart/form-data; boundary=" + "x" * 71, b"", "at most 70"),
        ('multipart/form-data; boundary="a\rb"', b"", "characters"),
        ("multipart/form-data; boundary=caf\u00e9", b"", "non-ASCII"),
        (CT, b"no boundary anywhere", "no multipart boundary"),
        (CT, b"--" + BOUNDARY + b"\r\n" + part("a", b"truncated"), "closing multipart"),
        (CT, body_of(b"Content-Type: text/plain\r\n\r\nx"), "Content-Disposition"),
        ("multipart/form-data; boundary=a; boundary=b", b"", "repeated"),
    ],
)
async def test_malformed_multipart_is_400(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(HTTPException) as info:
        await parse_form(content_type, stream(body))
    assert info.value.status_code == 400
    assert message in info.value.detail


@pytest.mark.parametrize(
    ("limits", "parts", "limit"),
    [
        (FormLimits(max_body_size=200), [part("f", b"x" * 200, filename="f")], "max_body_size"),
        (FormLimits(max_fields=2), [part("a", b""), part("b", b""), part("c", b"")], "max_fields"),
        (
            FormLimits(max_files=1),
            [part("a", b"", filename="1"), part("a", b"", filename="2")],
            "max_files",
        ),
        (FormLimits(max_field_size=5), [part("a", b"123456")], "max_field_size"),
        (FormLimits(max_part_header_size=40), [part("a" * 40, b"")], "max_part_header_size"),
    ],
)
async def test_multipart_limits_are_413(limits: FormLimits, parts: list[bytes], limit: str) -> None:
    with pytest.raises(HTTPException) as info:
        await parse_form(CT, stream(body_of(*parts)), limits)
    assert info.value.status_code == 413
    assert limit in info.value.detail


async def test_file_count_zero_means_no_files() -> None:
    limits = FormLimits(max_files=0)
    form = await parse_form(CT, stream(body_of(part("a", b"1"))), limits)
    assert form["a"] == "1"
    with pytest.raises(HTTPException, match="max_files"):
        await parse_form(CT, stream(body_of(part("a", b"1", filename="f"))), limits)


async def test_fields_without_filename_are_capped_not_buffered() -> None:
    """Starlette's CVE-2024-47874: a part with no filename was buffered in memory unbounded."""

    async def huge_field() -> AsyncIterator[bytes]:
        yield b"--" + BOUNDARY + b"\r\n" + part("big", b"")
        chunk = b"x" * 65536
        for _ in range(50 * 16):  # 50 MiB, never all in memory at once
            yield chunk

    limits = FormLimits(max_body_size=1 << 40)
    tracemalloc.start()
    try:
        with pytest.raises(HTTPException) as info:
            await parse_form(CT, huge_field(), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.status_code == 413
    assert "max_field_size" in info.value.detail
    assert peak < 4 * limits.max_field_size


async def test_fifty_megabyte_upload_spills_to_disk(tmp_path: Path) -> None:
    chunk = bytes(range(256)) * 256  # 64 KiB
    count = 800  # 50 MiB
    digest = hashlib.sha256()

    async def upload() -> AsyncIterator[bytes]:
        yield b"--" + BOUNDARY + b"\r\n" + part("big", b"", filename="big.bin") + b""
        for _ in range(count):
            yield chunk
        yield b"\r\n--" + BOUNDARY + b"--\r\n"

    for _ in range(count):
        digest.update(chunk)
    limits = FormLimits(max_body_size=1 << 40, tempdir=str(tmp_path))
    tracemalloc.start()
    try:
        form = await parse_form(CT, upload(), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    async with form:
        big = form["big"]
        assert isinstance(big, UploadFile)
        assert big.rolled_to_disk
        assert big.size == count * len(chunk)
        assert peak < 8 * 1024 * 1024, peak
        if HAS_PROC:
            assert open_files_under(tmp_path)
        read_back = hashlib.sha256()
        while data := await big.read(1 << 20):
            read_back.update(data)
        assert read_back.digest() == digest.digest()
    assert big.closed
    assert os.listdir(tmp_path) == []


@needs_proc
@pytest.mark.parametrize("failure", ["truncated", "malformed", "limit", "stream error"])
async def test_temp_files_are_removed_on_every_error(tmp_path: Path, failure: str) -> None:
    limits = FormLimits(spool_threshold=1024, max_files=2, tempdir=str(tmp_path))
    seen_open: list[str] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"--" + BOUNDARY + b"\r\n" + part("a", b"x" * 5000, filename="a") + b"\r\n"
        yield b"--" + BOUNDARY + b"\r\n" + part("b", b"y" * 5000, filename="b")
        seen_open.extend(open_files_under(tmp_path))
        if failure == "truncated":
            return
        if failure == "malformed":
            yield b"\r\n--" + BOUNDARY + b"\r\nno colon\r\n\r\n"
        elif failure == "limit":
            yield b"\r\n--" + BOUNDARY + b"\r\n" + part("c", b"", filename="c")
        else:
            raise ConnectionResetError("client went away")

    with pytest.raises((HTTPException, ConnectionResetError)):
        await parse_form(CT, body(), limits)
    assert len(seen_open) == 2  # both files had spilled to disk before the failure
    assert open_files_under(tmp_path) == []
    assert os.listdir(tmp_path) == []


@needs_proc
async def test_client_filenames_never_reach_the_disk(tmp_path: Path) -> None:
    """python-multipart's UPLOAD_KEEP_FILENAME path traversal: we never use the name."""
    limits = FormLimits(spool_threshold=10, tempdir=str(tmp_path))
    body = body_of(part("f", b"x" * 100, filename="../../evil.sh"))
    async with await parse_form(CT, stream(body), limits) as form:
        upload = form["f"]
        assert isinstance(upload, UploadFile) and upload.rolled_to_disk
        assert upload.filename == "../../evil.sh"
        opened = open_files_under(tmp_path)
        assert opened and not any("evil" in path for path in opened)
        assert not any("evil" in name for name in os.listdir(tmp_path.parent))


# -- UploadFile / FormData / FormLimits -------------------------------------------------


async def test_upload_file_rollover_write_runs_in_a_thread(tmp_path: Path) -> None:
    """Starlette's CVE-2025-54121: the write that rolls a spooled file to disk blocked the loop."""
    rollover_threads: list[int] = []

    class Spy(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
        def rollover(self) -> None:
            rollover_threads.append(threading.get_ident())
            super().rollover()

    upload = UploadFile("x", file=Spy(max_size=10, dir=tmp_path))
    await upload.write(b"12345")
    assert not upload.rolled_to_disk
    await upload.write(b"678901")
    assert upload.rolled_to_disk
    assert rollover_threads and rollover_threads[0] != threading.get_ident()
    assert await upload.seek(0) == 0
    assert await upload.read(3) == b"123"
    assert await upload.read() == b"45678901"
    assert upload.size == 11
    await upload.close()
    assert upload.closed


async def test_upload_file_in_memory() -> None:
    upload = UploadFile("a.txt", content_type="text/plain", headers=[("X-A", "1"), ("x-a", "2")])
    await upload.write(b"hello")
    await upload.seek(0)
    assert await upload.read() == b"hello"
    assert not upload.rolled_to_disk
    assert dict(upload.headers) == {"x-a": "1, 2"}
    assert "a.txt" in repr(upload)
    with pytest.raises(TypeError):
        upload.headers["y"] = "z"  # type: ignore[index]
    await upload.close()
    with pytest.raises(ValueError, match="spool_threshold"):
        UploadFile(spool_threshold=0)


def test_form_data_is_an_immutable_multidict() -> None:
    form = FormData([("a", "1"), ("b", "2"), ("a", "3")])
    assert form["a"] == "3"
    assert form.get("a") == "3"
    assert form.get("zz", "d") == "d"
    assert form.getlist("a") == ["1", "3"]
    assert list(form.items()) == [("a", "3"), ("b", "2")]
    assert form.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert len(form) == 2 and "b" in form
    assert form == FormData([("a", "1"), ("b", "2"), ("a", "3")])
    assert form != FormData([("a", "3"), ("b", "2")])
    assert form == {"a": "3", "b": "2"}
    assert FormData({"x": "1"})["x"] == "1"
    with pytest.raises(TypeError):
        form["a"] = "4"  # type: ignore[index]
    form.getlist("a").append("mutated")
    assert form.getlist("a") == ["1", "3"]
    assert "FormData" in repr(form)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"max_body_size": 0}, "max_body_size"),
        ({"max_fields": -1}, "max_fields"),
        ({"max_files": 1.5}, "max_files"),
        ({"max_field_size": True}, "max_field_size"),
        ({"max_part_header_size": 0}, "max_part_header_size"),
        ({"spool_threshold": "1"}, "spool_threshold"),
        ({"tempdir": 3}, "tempdir"),
    ],
)
def test_form_limits_are_validated(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"FormLimits.{name}"):
        FormLimits(**options)


# -- differential: python-multipart ---------------------------------------------------


def python_multipart_parse(
    body: bytes, boundary: bytes, chunks: list[int]
) -> list[tuple[Any, ...]]:
    python_multipart = pytest.importorskip("python_multipart")
    from python_multipart.multipart import parse_options_header as pm_options

    parts: list[dict[str, Any]] = []
    header = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": b""})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header["field"].lower()] = header["value"]
        header["field"] = header["value"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    parser = python_multipart.MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    pos = 0
    for size in chunks:
        parser.write(body[pos : pos + size])
        pos += size
    parser.finalize()
    out = []
    for p in parts:
        _, options = pm_options(p["headers"][b"content-disposition"].decode("latin-1"))
        filename = options.get(b"filename")
        ctype = p["headers"].get(b"content-type")
        out.append(
            (
                options[b"name"].decode("latin-1").encode("latin-1").decode("utf-8"),
                None if filename is None else filename.decode("latin-1").encode("latin-1").decode(),
                None if ctype is None else ctype.decode(),
                p["data"],
            )
        )
    return out


def ours(body: bytes, boundary: bytes, chunks: list[int]) -> list[tuple[Any, ...]]:
    pos = 0
    pieces = []
    for size in chunks:
        pieces.append(body[pos : pos + size])
        pos += size
    out: list[tuple[Any, ...]] = []
    for event in parse_chunks(pieces, boundary):
        if isinstance(event, PartStart):
            out.append((event.name, event.filename, event.content_type, b""))
        elif isinstance(event, PartData):
            name, filename, ctype, data = out[-1]
            out[-1] = (name, filename, ctype, data + event.data)
    return out


def random_body(rng: random.Random) -> tuple[bytes, bytes]:
    bchars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"
    boundary = "".join(rng.choice(bchars) for _ in range(rng.randrange(1, 71))).encode()
    noise = [b"\r", b"\n", b"\r\n", b"-", b"--", b"\r\n--", b"x", b"\x00", b"\xff", "é".encode()]
    parts = []
    for _ in range(rng.randrange(0, 6)):
        name = "".join(rng.choice("abc éç;=日") for _ in range(rng.randrange(1, 8)))
        data = bytearray()
        for _ in range(rng.randrange(0, 30)):
            pick = rng.random()
            if pick < 0.1:
                data += b"\r\n--" + boundary[: rng.randrange(len(boundary))]
            elif pick < 0.5:
                data += rng.choice(noise)
            else:
                data += rng.randbytes(rng.randrange(1, 20))
        filename = (
            "".join(rng.choice("ab.txt ü") for _ in range(rng.randrange(0, 8)))
            if rng.random() < 0.5
            else None
        )
        ctype = rng.choice([None, "text/plain", "application/octet-stream"])
        parts.append(part(name, bytes(data), filename=filename, content_type=ctype))
    # python-multipart refuses a preamble (RFC 2046 allows one; ours skips it), so none here.
    body = body_of(*parts, boundary=boundary)
    return body + rng.choice([b"", b"epilogue"]), boundary


def test_agrees_with_python_multipart_on_random_bodies() -> None:
    rng = random.Random(2046)
    for _ in range(400):
        body, boundary = random_body(rng)
        chunks = []
        left = len(body)
        while left:
            size = min(left, rng.choice([1, 2, 3, 7, 64, 1000]))
            chunks.append(size)
            left -= size
        assert ours(body, boundary, chunks) == python_multipart_parse(body, boundary, chunks), body


# -- the README example, verbatim -------------------------------------------------------

README_EXAMPLE = """
import asyncio
from collections.abc import AsyncIterator

from rws.http.web.forms import FormLimits, UploadFile, parse_form
from rws.http.web.multipart import MultipartParser, PartData, PartEnd, PartStart

BODY = (
    b"--xyz\\r\\n"
    b'Content-Disposition: form-data; name="title"\\r\\n\\r\\n'
    b"Holiday\\r\\n"
    b"--xyz\\r\\n"
    b'Content-Disposition: form-data; name="photo"; filename="beach.jpg"\\r\\n'
    b"Content-Type: image/jpeg\\r\\n\\r\\n"
    b"...jpeg bytes...\\r\\n"
    b"--xyz--\\r\\n"
)


async def body_chunks() -> AsyncIterator[bytes]:
    # In an ASGI app: yield message["body"] of each http.request until more_body is false.
    for i in range(0, len(BODY), 16):  # any chunking works
        yield BODY[i : i + 16]


async def main() -> None:
    limits = FormLimits(max_body_size=50 * 1024 * 1024, max_files=5)
    content_type = "multipart/form-data; boundary=xyz"
    async with await parse_form(content_type, body_chunks(), limits) as form:
        assert form["title"] == "Holiday"
        photo = form["photo"]
        assert isinstance(photo, UploadFile)
        print(photo.filename, photo.content_type, photo.size, photo.rolled_to_disk)
        assert await photo.read() == b"...jpeg bytes..."
    # Leaving the block closed the upload's temporary file.

    # The sans-IO parser alone, to stream parts elsewhere (object storage, a hash):
    parser = MultipartParser(b"xyz")
    for event in parser.feed(BODY):
        if isinstance(event, PartStart):
            print("part", event.name, event.filename)
        elif isinstance(event, PartData):
            print("  ", len(event.data), "bytes")
        elif isinstance(event, PartEnd):
            print("  end")
    parser.close()  # raises MultipartError if the body was cut short


asyncio.run(main())
"""


def test_readme_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(README_EXAMPLE, "README", "exec"), {"__name__": "readme"})  # noqa: S102
    out = capsys.readouterr().out
    assert "beach.jpg image/jpeg 16 False" in out
    assert "part photo beach.jpg" in out
