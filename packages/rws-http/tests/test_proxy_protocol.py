"""PROXY protocol parser: the spec's examples, every malformed case, and real senders.

Real peers: ``curl --haproxy-protocol`` (v1) and HAProxy itself (``send-proxy``,
``send-proxy-v2`` with CRC32C and unique-id TLVs) in front of a small asyncio server that
uses the parser, plus the ``proxy-protocol`` package as an independent header builder.

On a TLS listener the header comes before the handshake: a real rws-http server is given the
header and then a real TLS handshake (the stdlib ``ssl`` module, over BIOs so the test picks
the segments), then HTTP/1.1, HTTP/2 (ALPN) and WebSocket; and HAProxy ``send-proxy-v2`` in
TCP mode forwards curl's TLS to it.
Missing tools skip with the reason, or fail under ``RWS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from rws.http.server import Config, Server
from rws.http.server.cycle import Receive, Scope, Send
from rws.http.server.proxy_protocol import (
    MAX_V1_LINE,
    MAX_V2_TLV_BYTES,
    V2_SIGNATURE,
    ProxyProtocolError,
    ProxyProtocolParser,
    ProxyResult,
    crc32c,
    header_length,
)
from rws.http.server.proxy_tls import read_proxy_header

REQUEST = b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"


def missing(reason: str) -> NoReturn:
    """Skip the test naming what is missing; fail instead under RWS_REQUIRE_SERVICES=1."""
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def parse(data: bytes) -> ProxyResult:
    """Feed ``data`` in one go and insist on a result."""
    result = ProxyProtocolParser().feed(data)
    assert result is not None, f"parser wants more bytes after {data!r}"
    return result


def v2(
    *,
    command: int = 0x1,
    family: int = 0x11,
    block: bytes = b"",
    version: int = 2,
    length: int | None = None,
) -> bytes:
    """A v2 header built by hand: signature, ver/cmd, fam/transport, length, block."""
    size = len(block) if length is None else length
    return V2_SIGNATURE + struct.pack("!BBH", version << 4 | command, family, size) + block


def inet4(src: str, dst: str, sport: int, dport: int) -> bytes:
    return struct.pack(
        "!4s4sHH",
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
        sport,
        dport,
    )


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return struct.pack(
        "!16s16sHH",
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
        sport,
        dport,
    )


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def with_crc(header_without_crc: bytes, *, corrupt: bool = False) -> bytes:
    """Append a CRC32C TLV to a v2 header (fixing its length) and fill in the checksum."""
    body = header_without_crc[16:] + tlv(0x03, b"\x00" * 4)
    header = header_without_crc[:14] + struct.pack("!H", len(body)) + body
    checksum = crc32c(header) ^ (1 if corrupt else 0)
    return header[:-4] + checksum.to_bytes(4, "big")


# -- version 1 ----------------------------------------------------------------------------


def test_v1_spec_example() -> None:
    result = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + REQUEST)
    assert result == ProxyResult(
        client=("192.168.0.1", 56324),
        server=("192.168.0.11", 443),
        version=1,
        remainder=REQUEST,
        tlvs={},
    )


@pytest.mark.parametrize(
    ("line", "client", "server"),
    [
        pytest.param(
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            ("255.255.255.255", 65535),
            ("255.255.255.255", 65535),
            id="tcp4-longest",
        ),
        pytest.param(
            b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n",
            ("0.0.0.0", 0),
            ("10.0.0.1", 0),
            id="tcp4-zeros",
        ),
        pytest.param(
            b"PROXY TCP6 "
            + b":".join([b"ffff"] * 8)
            + b" "
            + b":".join([b"FFFF"] * 8)
            + b" 65535 65535\r\n",
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            id="tcp6-longest-104-bytes",
        ),
        pytest.param(
            b"PROXY TCP6 2001:DB8::1 ::1 4711 8443\r\n",
            ("2001:db8::1", 4711),
            ("::1", 8443),
            id="tcp6-normalised",
        ),
        pytest.param(
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
            (str(ipaddress.IPv6Address("::ffff:192.0.2.1")), 1),  # 3.13 prints the dotted form
            ("::1", 2),
            id="tcp6-v4-mapped",
        ),
    ],
)
def test_v1_valid_lines(line: bytes, client: tuple[str, int], server: tuple[str, int]) -> None:
    result = parse(line + b"rest")
    assert (result.client, result.server, result.remainder) == (client, server, b"rest")
    assert result.version == 1
    assert result.tlvs == {}


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"PROXY UNKNOWN\r\n", id="short-form"),
        pytest.param(
            b"PROXY UNKNOWN "
            + b":".join([b"ffff"] * 8)
            + b" "
            + b":".join([b"ffff"] * 8)
            + b" 65535 65535\r\n",
            id="worst-case-107-bytes",
        ),
        pytest.param(b"PROXY UNKNOWN garbage \x00\xff is ignored\r\n", id="ignored-tail"),
    ],
)
def test_v1_unknown_means_use_the_socket(line: bytes) -> None:
    assert len(line) <= MAX_V1_LINE
    result = parse(line + REQUEST)
    assert result == ProxyResult(client=None, server=None, version=1, remainder=REQUEST)


def test_v1_longest_line_is_accepted_and_one_more_byte_is_not() -> None:
    fill = b"PROXY UNKNOWN "
    longest = fill + b"x" * (MAX_V1_LINE - len(fill) - 2) + b"\r\n"
    assert len(longest) == MAX_V1_LINE == 107
    assert parse(longest + b"GET").remainder == b"GET"
    too_long = fill + b"x" * (MAX_V1_LINE - len(fill) - 1) + b"\r\n"
    with pytest.raises(ProxyProtocolError, match="no CRLF within 107 bytes"):
        ProxyProtocolParser().feed(too_long)


def test_v1_without_crlf_is_refused_once_107_bytes_arrived() -> None:
    parser = ProxyProtocolParser()
    assert parser.feed(b"PROXY UNKNOWN " + b"x" * 92) is None  # 106 bytes: may still end
    with pytest.raises(ProxyProtocolError, match="no CRLF within 107"):
        parser.feed(b"x")


V1_MALFORMED = [
    # framing
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR not followed by LF"),
    (b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "LF without CR"),
    (b"PROXY\r\n", "not a PROXY protocol header"),
    (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
    (b"PROXY \r\n", "not one of TCP4, TCP6, UNKNOWN"),
    (b"PROXY UNKNOWNX\r\n", "not one of TCP4, TCP6, UNKNOWN"),
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "'TCP5' is not one of"),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "'tcp4' is not one of"),
    (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "'' is not one of"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "6 fields"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "6 fields"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "6 fields"),
    (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "6 fields"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8\t1 2\r\n", "non-printable"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n", "non-printable"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xd9\xa3 2\r\n", "non-printable"),
    # addresses
    (b"PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n", "source address '256.1.1.1'"),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "source address '01.2.3.4'"),
    (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "source address '1.2.3'"),
    (b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "source address 'localhost'"),
    (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "destination address '::1' is not a valid IPv4"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source address '1.2.3.4' is not a valid IPv6"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "zone IDs are not allowed"),
    (b"PROXY TCP6 [::1] ::1 1 2\r\n", "source address"),
    (b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "source address"),
    # ports
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port '65536'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "destination port '99999'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "source port '01'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", "source port '00'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "source port '-1'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "source port '\\+1'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", "source port '1a'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1_0 2\r\n", "source port '1_0'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n", "destination port '0x10'"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n", "source port '123456'"),
]


@pytest.mark.parametrize(("data", "message"), V1_MALFORMED, ids=[repr(d) for d, _ in V1_MALFORMED])
def test_v1_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProxyProtocolError, match=message):
        ProxyProtocolParser().feed(data + REQUEST)


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"PRI * HTTP/2.0", b"PROXYX", b"\r\n\r\n\x01"],
)
def test_other_protocols_are_refused_at_the_first_wrong_byte(data: bytes) -> None:
    """A plain HTTP or TLS client on a PROXY listener is refused at once, not timed out."""
    parser = ProxyProtocolParser()
    for index in range(len(data) - 1):
        prefix_ok = V2_SIGNATURE.startswith(data[: index + 1]) or b"PROXY ".startswith(
            data[: index + 1]
        )
        if not prefix_ok:
            with pytest.raises(ProxyProtocolError, match="not a PROXY protocol header"):
                parser.feed(data[index : index + 1])
            return
        assert parser.feed(data[index : index + 1]) is None
    with pytest.raises(ProxyProtocolError, match="not a PROXY protocol header"):
        parser.feed(data[-1:])


# -- version 2 ----------------------------------------------------------------------------


def test_v2_tcp4() -> None:
    header = v2(family=0x11, block=inet4("192.0.2.1", "198.51.100.7", 56324, 443))
    assert parse(header + REQUEST) == ProxyResult(
        client=("192.0.2.1", 56324),
        server=("198.51.100.7", 443),
        version=2,
        remainder=REQUEST,
        tlvs={},
    )


def test_v2_tcp6() -> None:
    header = v2(family=0x21, block=inet6("2001:db8::17", "2001:db8:cafe::1", 4711, 8443))
    result = parse(header + REQUEST)
    assert result.client == ("2001:db8::17", 4711)
    assert result.server == ("2001:db8:cafe::1", 8443)
    assert result.remainder == REQUEST


def test_v2_udp_addresses_are_reported_too() -> None:
    result = parse(v2(family=0x12, block=inet4("10.0.0.1", "10.0.0.2", 53, 5353)))
    assert (result.client, result.server) == (("10.0.0.1", 53), ("10.0.0.2", 5353))


def test_v2_unix_reports_no_address_but_keeps_tlvs() -> None:
    paths = b"/run/client.sock".ljust(108, b"\x00") + b"/run/haproxy.sock".ljust(108, b"\x00")
    header = v2(family=0x31, block=paths + tlv(0x02, b"example.com"))
    assert parse(header + REQUEST) == ProxyResult(
        client=None, server=None, version=2, remainder=REQUEST, tlvs={0x02: b"example.com"}
    )


def test_v2_tlvs_are_returned_and_noop_padding_dropped() -> None:
    ssl_value = b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3")
    block = (
        inet4("192.0.2.1", "192.0.2.2", 1, 2)
        + tlv(0x01, b"h2")
        + tlv(0x04, b"")
        + tlv(0x02, b"example.com")
        + tlv(0x04, b"\x00" * 5)
        + tlv(0x05, b"\xab" * 128)
        + tlv(0x20, ssl_value)
        + tlv(0xE0, b"")
    )
    result = parse(v2(block=block) + REQUEST)
    assert result.tlvs == {
        0x01: b"h2",
        0x02: b"example.com",
        0x05: b"\xab" * 128,
        0x20: ssl_value,
        0xE0: b"",
    }
    assert result.remainder == REQUEST


def test_v2_tlvs_up_to_the_cap_are_accepted() -> None:
    value = b"v" * (MAX_V2_TLV_BYTES - 3)
    result = parse(v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0xE1, value)))
    assert result.tlvs == {0xE1: value}


def test_v2_crc32c_is_verified() -> None:
    header = with_crc(v2(block=inet4("192.0.2.1", "192.0.2.2", 1, 2) + tlv(0x02, b"a.example")))
    result = parse(header + REQUEST)
    assert result.client == ("192.0.2.1", 1)
    assert set(result.tlvs) == {0x02, 0x03}
    assert result.remainder == REQUEST


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # RFC 3720 appendix B.4 and the usual "123456789" check value.
        (b"123456789", 0xE3069283),
        (b"\x00" * 32, 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (b"", 0),
    ],
)
def test_crc32c_known_vectors(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(v2(command=0x0, family=0x00), id="unspec"),
        pytest.param(
            v2(command=0x0, family=0x11, block=inet4("1.2.3.4", "5.6.7.8", 1, 2)),
            id="with-addresses",
        ),
        pytest.param(v2(command=0x0, family=0xFF, block=b"\xff" * 7), id="junk-family-ignored"),
        pytest.param(
            v2(command=0x0, family=0x11, block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"\x01"),
            id="block-skipped-not-parsed",
        ),
    ],
)
def test_v2_local_means_use_the_socket(header: bytes) -> None:
    """LOCAL (health checks): the spec says accept, skip the block, ignore the family."""
    assert parse(header + REQUEST) == ProxyResult(
        client=None, server=None, version=2, remainder=REQUEST
    )


@pytest.mark.parametrize(
    "family", [pytest.param(0x00, id="af-unspec"), pytest.param(0x10, id="transport-unspec")]
)
def test_v2_proxy_unspec_ignores_the_block(family: int) -> None:
    result = parse(v2(family=family, block=b"opaque") + REQUEST)
    assert result == ProxyResult(client=None, server=None, version=2, remainder=REQUEST)


V2_MALFORMED: list[tuple[str, bytes, str]] = [
    ("bad-signature", b"\r\n\r\n\x00\r\nQUIT\x0b" + b"\x21\x11\x00\x00", "not a PROXY"),
    ("version-1", v2(version=1, block=inet4("1.2.3.4", "5.6.7.8", 1, 2)), "version 1"),
    ("version-3", v2(version=3, block=inet4("1.2.3.4", "5.6.7.8", 1, 2)), "version 3"),
    ("command-2", v2(command=0x2, block=inet4("1.2.3.4", "5.6.7.8", 1, 2)), "command 0x2"),
    ("command-f", v2(command=0xF), "command 0xf"),
    ("family-4", v2(family=0x41, block=b"\x00" * 12), "family 0x4"),
    ("family-f", v2(family=0xF1, block=b"\x00" * 12), "family 0xf"),
    ("transport-3", v2(family=0x13, block=b"\x00" * 12), "transport 0x3"),
    ("inet-short", v2(family=0x11, block=b"\x00" * 11), "11 bytes; family 0x1 needs 12"),
    ("inet6-short", v2(family=0x21, block=b"\x00" * 35), "35 bytes; family 0x2 needs 36"),
    ("unix-short", v2(family=0x31, block=b"\x00" * 215), "215 bytes; family 0x3 needs 216"),
    ("length-max", v2(command=0x0, family=0x00, length=0xFFFF), "announces 65535 bytes"),
    (
        "tlvs-over-cap",
        v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0xE0, b"v" * (MAX_V2_TLV_BYTES - 2))),
        "TLVs take 4097 bytes; at most 4096",
    ),
    (
        "tlv-truncated-header",
        v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"\x02\x00"),
        "TLV at offset 28 is truncated",
    ),
    (
        "tlv-value-overruns",
        v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"\x02\x00\x05abc"),
        "TLV 0x02 claims 5 bytes but only 3 remain",
    ),
    (
        "tlv-duplicate",
        v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x02, b"a") + tlv(0x02, b"b")),
        "TLV 0x02 appears more than once",
    ),
    (
        "crc-wrong-size",
        v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x03, b"\x00\x00\x00")),
        "CRC32C TLV has 3 bytes, not 4",
    ),
    (
        "crc-mismatch",
        with_crc(v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2)), corrupt=True),
        "CRC32C mismatch",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), [(d, m) for _, d, m in V2_MALFORMED], ids=[i for i, _, _ in V2_MALFORMED]
)
def test_v2_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProxyProtocolError, match=message):
        ProxyProtocolParser().feed(data + REQUEST)


def test_v2_crc_tampering_is_detected() -> None:
    """The checksum covers the addresses: rewriting the client after signing fails."""
    header = bytearray(with_crc(v2(block=inet4("192.0.2.1", "192.0.2.2", 1, 2))))
    header[16] = 10  # 192.0.2.1 -> 10.0.2.1
    with pytest.raises(ProxyProtocolError, match="CRC32C mismatch"):
        ProxyProtocolParser().feed(bytes(header))


def test_v2_bad_fixed_part_is_refused_before_the_block_arrives() -> None:
    """Version, command and length are judged at byte 16, not after 64 KiB of waiting."""
    parser = ProxyProtocolParser()
    with pytest.raises(ProxyProtocolError, match="announces 65535 bytes"):
        parser.feed(v2(length=0xFFFF))
    with pytest.raises(ProxyProtocolError, match="version 3"):
        ProxyProtocolParser().feed(v2(version=3, length=12))


# -- incremental feeding ------------------------------------------------------------------

FEED_CASES = [
    pytest.param(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", id="v1-tcp4"),
    pytest.param(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", id="v1-tcp6"),
    pytest.param(b"PROXY UNKNOWN\r\n", id="v1-unknown"),
    pytest.param(v2(block=inet4("192.0.2.1", "192.0.2.2", 1, 2)), id="v2-tcp4"),
    pytest.param(
        with_crc(v2(family=0x21, block=inet6("::1", "::2", 3, 4) + tlv(0x05, b"id"))),
        id="v2-tcp6-tlvs-crc",
    ),
    pytest.param(v2(command=0x0, family=0x00), id="v2-local"),
]


@pytest.mark.parametrize("header", FEED_CASES)
def test_byte_by_byte(header: bytes) -> None:
    expected = parse(header + REQUEST)
    parser = ProxyProtocolParser()
    for index, byte in enumerate(header[:-1]):
        assert parser.feed(bytes([byte])) is None, f"result after {index + 1} bytes"
    result = parser.feed(header[-1:])
    assert result is not None
    assert result.remainder == b""
    assert (result.client, result.server, result.version, result.tlvs) == (
        expected.client,
        expected.server,
        expected.version,
        expected.tlvs,
    )


@pytest.mark.parametrize("header", FEED_CASES)
def test_every_split_point_keeps_the_remainder(header: bytes) -> None:
    data = header + REQUEST
    expected = parse(data)
    for split in range(len(data) + 1):
        parser = ProxyProtocolParser()
        first = parser.feed(data[:split])
        if split < len(header):
            assert first is None
            second = parser.feed(data[split:])
            assert second == expected
        else:
            assert first is not None
            assert first.remainder + data[split:] == REQUEST


def test_empty_feeds_wait() -> None:
    parser = ProxyProtocolParser()
    assert parser.feed(b"") is None
    assert parser.feed(b"PROXY") is None
    assert parser.feed(b"") is None
    result = parser.feed(b" UNKNOWN\r\n")
    assert result is not None
    assert result.remainder == b""


def test_parser_is_single_use() -> None:
    done = ProxyProtocolParser()
    assert done.feed(b"PROXY UNKNOWN\r\n") is not None
    with pytest.raises(RuntimeError, match="already finished"):
        done.feed(b"GET")
    failed = ProxyProtocolParser()
    with pytest.raises(ProxyProtocolError):
        failed.feed(b"GET")
    with pytest.raises(RuntimeError, match="already failed"):
        failed.feed(b"PROXY UNKNOWN\r\n")


def test_result_is_frozen_and_slotted() -> None:
    result = parse(b"PROXY UNKNOWN\r\n")
    with pytest.raises(AttributeError):
        result.client = ("1.2.3.4", 1)  # type: ignore[misc]
    assert not hasattr(result, "__dict__")
    assert issubclass(ProxyProtocolError, ValueError)


# -- an independent header builder: the `proxy-protocol` package --------------------------


@pytest.fixture
def peer_lib() -> object:
    try:
        import proxyprotocol.v2
    except ImportError as exc:
        missing(f"the proxy-protocol package is not installed ({exc})")
    return proxyprotocol.v2


def test_headers_built_by_the_proxy_protocol_package(peer_lib: object) -> None:
    from proxyprotocol.result import (
        ProxyResultIPv4,
        ProxyResultIPv6,
        ProxyResultLocal,
        ProxyResultUnix,
    )
    from proxyprotocol.tlv import ProxyProtocolTLV
    from proxyprotocol.v1 import ProxyProtocolV1
    from proxyprotocol.v2 import ProxyProtocolV2

    stream = socket.SOCK_STREAM
    v4 = ProxyResultIPv4(
        (ipaddress.IPv4Address("203.0.113.9"), 50123),
        (ipaddress.IPv4Address("10.1.2.3"), 443),
        protocol=stream,
        tlv=ProxyProtocolTLV(authority="example.org", unique_id=b"abc"),
    )
    v6 = ProxyResultIPv6(
        (ipaddress.IPv6Address("2001:db8::dead:beef"), 1),
        (ipaddress.IPv6Address("2001:db8::1"), 8443),
        protocol=stream,
    )
    unix = ProxyResultUnix("/tmp/a.sock", "/tmp/b.sock", protocol=stream)

    assert parse(ProxyProtocolV1().pack(v4) + REQUEST) == ProxyResult(
        ("203.0.113.9", 50123), ("10.1.2.3", 443), 1, REQUEST, {}
    )
    assert parse(ProxyProtocolV1().pack(v6)).client == ("2001:db8::dead:beef", 1)

    got = parse(ProxyProtocolV2().pack(v4) + REQUEST)
    assert (got.client, got.server, got.version, got.remainder) == (
        ("203.0.113.9", 50123),
        ("10.1.2.3", 443),
        2,
        REQUEST,
    )
    assert got.tlvs[0x02] == b"example.org"
    assert got.tlvs[0x05] == b"abc"
    assert parse(ProxyProtocolV2().pack(v6)).server == ("2001:db8::1", 8443)
    assert parse(ProxyProtocolV2().pack(unix)).client is None
    assert parse(ProxyProtocolV2().pack(ProxyResultLocal())) == ProxyResult(None, None, 2)


# -- real senders over real sockets -------------------------------------------------------


class Recorder:
    """A tiny TCP server that parses the PROXY header, then echoes what it learnt as JSON.

    It reads until the end of the request head (a blank line) follows the header, so the
    reply also shows that nothing after the header was lost or duplicated, whether the
    sender wrote the header and the request together or apart.
    """

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[:2])
        parser = ProxyProtocolParser()
        result: ProxyResult | None = None
        try:
            while result is None:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                result = parser.feed(chunk)
            payload = result.remainder
            while b"\r\n\r\n" not in payload:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                payload += chunk
            body = json.dumps(
                {
                    "client": result.client,
                    "server": result.server,
                    "version": result.version,
                    "tlvs": {str(k): v.hex() for k, v in result.tlvs.items()},
                    "payload": payload.decode("latin-1"),
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        except ProxyProtocolError as exc:
            writer.write(f"ERROR {exc}".encode())
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def recorder(host: str = "127.0.0.1") -> AsyncIterator[tuple[Recorder, int]]:
    rec = Recorder()
    server = await asyncio.start_server(rec.handle, host, 0)
    try:
        yield rec, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def response_json(raw: bytes) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    parsed = json.loads(body)
    assert isinstance(parsed, dict)
    return parsed


async def test_curl_haproxy_protocol_v1() -> None:
    curl = shutil.which("curl")
    if curl is None:
        missing("curl is not installed (apt-get install curl)")
    async with recorder() as (rec, port):
        proc = await asyncio.create_subprocess_exec(
            curl, "-sS", "--haproxy-protocol", "--max-time", "20",
            f"http://127.0.0.1:{port}/hello",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
    assert proc.returncode == 0, err
    seen = json.loads(out)
    # curl announces its own socket: the client is exactly the TCP peer we accepted.
    assert [tuple(seen["client"])] == rec.peers
    assert seen["server"] == ["127.0.0.1", port]
    assert seen["version"] == 1
    assert str(seen["payload"]).startswith("GET /hello HTTP/1.1\r\n")


def haproxy_binary() -> str:
    path = shutil.which("haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    if path is None:
        missing("haproxy is not installed (apt-get install haproxy)")
    assert path is not None
    return path


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[str, str, int], tuple[str, int]]]:
    """Start HAProxy in TCP mode: a frontend on an ephemeral port, one backend server.

    The frontend socket is bound and listening here and handed over as ``fd@N``, so there
    is no race for a port and no waiting for HAProxy to start: the kernel queues the
    connection until HAProxy accepts it.
    """
    binary = haproxy_binary()
    procs: list[subprocess.Popen[bytes]] = []
    sockets: list[socket.socket] = []

    def start(family_host: str, server_options: str, backend_port: int) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in family_host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        sockets.append(listener)
        try:
            listener.bind((family_host, 0))
        except OSError as exc:
            pytest.skip(f"cannot bind {family_host}: {exc}")
        listener.listen(16)
        config = tmp_path / f"haproxy-{len(procs)}.cfg"
        config.write_text(
            "global\n"
            "    nbthread 1\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 10s\n"
            "    timeout client 20s\n"
            "    timeout server 20s\n"
            "frontend fe\n"
            f"    bind fd@{listener.fileno()}\n"
            "    unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid\n"
            "    default_backend be\n"
            "backend be\n"
            f"    server s1 127.0.0.1:{backend_port} {server_options}\n"
        )
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(config)],
            capture_output=True,
            pass_fds=[listener.fileno()],
            check=False,
        )
        assert check.returncode == 0, check.stderr.decode()
        procs.append(
            subprocess.Popen(
                [binary, "-db", "-f", str(config)],
                pass_fds=[listener.fileno()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
        host, port = listener.getsockname()[:2]
        return host, port

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=30)
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize(
    ("frontend", "options", "version"),
    [
        pytest.param("127.0.0.1", "send-proxy", 1, id="v1-ipv4"),
        pytest.param("::1", "send-proxy", 1, id="v1-ipv6"),
        pytest.param("127.0.0.1", "send-proxy-v2", 2, id="v2-ipv4"),
        pytest.param("::1", "send-proxy-v2", 2, id="v2-ipv6"),
        pytest.param(
            "127.0.0.1", "send-proxy-v2 proxy-v2-options crc32c,unique-id", 2, id="v2-crc-id"
        ),
    ],
)
async def test_haproxy_in_front(
    haproxy: Callable[[str, str, int], tuple[str, int]],
    frontend: str,
    options: str,
    version: int,
) -> None:
    async with recorder() as (_, backend_port):
        front_host, front_port = haproxy(frontend, options, backend_port)
        async with asyncio.timeout(30):  # a safety net against a hang, not a sync point
            reader, writer = await asyncio.open_connection(front_host, front_port)
            client_host, client_port = writer.get_extra_info("sockname")[:2]
            writer.write(REQUEST)
            await writer.drain()
            raw = await reader.read()
            writer.close()
    seen = response_json(raw)
    assert seen["client"] == [client_host, client_port]
    assert seen["server"] == [front_host, front_port]
    assert seen["version"] == version
    assert seen["payload"] == REQUEST.decode()
    tlvs = seen["tlvs"]
    assert isinstance(tlvs, dict)
    if "crc32c" in options:
        # HAProxy computed the checksum; the parser verified it (or the reply is an ERROR).
        assert set(tlvs) == {"3", "5"}
        # unique-id-format starts with %{+X}o%ci:%cp, the client's address and port in hex.
        ip_hex, port_hex = bytes.fromhex(tlvs["5"]).decode().split("_")[0].split(":")
        assert (int(ip_hex, 16), int(port_hex, 16)) == (
            int(ipaddress.ip_address(client_host)),
            client_port,
        )
    else:
        assert tlvs == {}


# -- header_length: where the header ends, for a reader that must not read past it ----------


@pytest.mark.parametrize(
    ("data", "length"),
    [
        pytest.param(b"", 0, id="nothing-yet"),
        pytest.param(b"PROX", 4, id="v1-prefix"),
        pytest.param(b"PROXY TCP4 192.0.2.1", 20, id="v1-no-lf-yet"),
        pytest.param(b"PROXY UNKNOWN\r\n\x16\x03\x01", 15, id="v1-shortest"),
        pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\x16\x03", 32, id="v1-tcp4"),
        pytest.param(b"PROXY TCP4\n\x16", 11, id="v1-bare-lf-ends-it-for-the-parser"),
        pytest.param(V2_SIGNATURE[:5], 5, id="v2-signature-prefix"),
        pytest.param(v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2))[:15], 15, id="v2-fixed-part"),
        pytest.param(v2(block=inet4("1.2.3.4", "5.6.7.8", 1, 2)) + b"\x16\x03", 28, id="v2"),
        pytest.param(v2(length=100) + b"x" * 40, 56, id="v2-block-incomplete"),
        pytest.param(v2(length=100) + b"x" * 200, 116, id="v2-block-then-more"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01", 6, id="no-header-counts-whole"),
    ],
)
def test_header_length(data: bytes, length: int) -> None:
    assert header_length(data) == length


# -- PROXY header before TLS, on a real rws-http server ------------------------------------


@dataclass(frozen=True)
class PKI:
    server_pem: str  # certificate chain and key, for 127.0.0.1, ::1 and localhost
    ca_pem: str

    def client_context(self, *alpn: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_pem)
        context.set_alpn_protocols(list(alpn or ("http/1.1",)))
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    try:
        import trustme
    except ImportError as exc:
        missing(f"trustme is not installed ({exc})")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    folder = tmp_path_factory.mktemp("proxy-tls")
    server_pem = folder / "server.pem"
    ca_pem = folder / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    return PKI(str(server_pem), str(ca_pem))


class WhoAmI:
    """An ASGI app answering what its scope says about the connection, as JSON."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        info = json.dumps(
            {
                "type": scope["type"],
                "client": scope["client"],
                "scheme": scope["scheme"],
                "http_version": scope["http_version"],
            }
        )
        if scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": info})
            await send({"type": "websocket.close", "code": 1000})
            return
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": info.encode()})


@contextlib.asynccontextmanager
async def proxied_tls_server(
    app: WhoAmI, pki: PKI, **options: object
) -> AsyncIterator[tuple[Server, str, int]]:
    """A real rws-http server: TLS with ``proxy_protocol=True``; yields it, its host, port."""
    config = Config(
        bind=("127.0.0.1:0",), certfile=pki.server_pem, proxy_protocol=True, lifespan="off"
    )
    server = Server(app, dataclasses.replace(config, **options))
    await server.start()
    try:
        host, port = server.addresses[0].rsplit(":", 1)
        yield server, host, int(port)
    finally:
        await server.shutdown(grace=2)


class TLSClient:
    """A TLS client on asyncio streams through ``ssl.MemoryBIO``.

    With the BIOs the test, not asyncio, decides what goes in which write: the PROXY header
    and the ClientHello in a single write (one segment, as a balancer may send them, so the
    server finds both queued at once) or the header in pieces, apart from the handshake.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname="localhost")

    @classmethod
    async def connect(
        cls, host: str, port: int, header: bytes, context: ssl.SSLContext, *, together: bool
    ) -> TLSClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer, context)
        with contextlib.suppress(ssl.SSLWantReadError):
            client.tls.do_handshake()  # writes the ClientHello, then wants the answer
        hello = client._out.read()
        if together:
            writer.write(header + hello)
        else:
            third = max(1, len(header) // 3)
            for start in range(0, len(header), third):
                writer.write(header[start : start + third])
                await writer.drain()
                # Not a sync point: it only makes it likely that the server sees the header
                # in several reads, the ClientHello after it. Either way it must work.
                await asyncio.sleep(0.02)
            writer.write(hello)
        try:
            await client._handshake()
        except BaseException:
            await client.close()
            raise
        return client

    async def _handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                self._flush()
                return
            self._flush()
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionAbortedError("the server closed during the handshake")
            self._in.write(data)

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.writer.write(data)

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    async def receive(self) -> bytes:
        """Decrypted bytes as they come; ``b""`` once the server closed."""
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._flush()
                raw = await self.reader.read(65536)
                if raw:
                    self._in.write(raw)
                else:
                    self._in.write_eof()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            self._flush()
            return data

    async def receive_all(self) -> bytes:
        received = b""
        while data := await self.receive():
            received += data
        return received

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What arrives until the server closes the connection (a reset counts as closing)."""
    received = b""
    try:
        while data := await reader.read(65536):
            received += data
    except ConnectionResetError:
        pass
    return received


#: Headers and the client each one must put in the scope; ``None``: the TCP peer's own.
PROXIED = [
    pytest.param(
        b"PROXY TCP4 203.0.113.9 10.0.0.1 50123 443\r\n", ("203.0.113.9", 50123), id="v1-tcp4"
    ),
    pytest.param(
        b"PROXY TCP6 2001:db8::9 2001:db8::1 40000 443\r\n", ("2001:db8::9", 40000), id="v1-tcp6"
    ),
    pytest.param(b"PROXY UNKNOWN\r\n", None, id="v1-unknown"),
    pytest.param(
        v2(block=inet4("198.51.100.7", "10.0.0.1", 61000, 443)),
        ("198.51.100.7", 61000),
        id="v2-tcp4",
    ),
    pytest.param(
        with_crc(
            v2(
                family=0x21,
                block=inet6("2001:db8::dead", "2001:db8::1", 1, 443)
                + tlv(0x05, b"unique")
                + tlv(0x04, b"\x00" * (MAX_V2_TLV_BYTES - 200)),
            )
        ),
        ("2001:db8::dead", 1),
        id="v2-tcp6-large-tlvs-crc",
    ),
    pytest.param(v2(command=0x0, family=0x00), None, id="v2-local"),
]


@pytest.mark.parametrize("together", [True, False], ids=["with-clienthello", "apart"])
@pytest.mark.parametrize(("header", "client"), PROXIED)
async def test_tls_after_proxy_header_http11(
    pki: PKI,
    no_escaped_errors: None,
    header: bytes,
    client: tuple[str, int] | None,
    together: bool,
) -> None:
    async with (
        proxied_tls_server(WhoAmI(), pki) as (_, host, port),
        asyncio.timeout(30),  # a safety net against a hang, not a sync point
    ):
        tls = await TLSClient.connect(
            host, port, header, pki.client_context("http/1.1"), together=together
        )
        tls.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        raw = await tls.receive_all()
        peer = tls.writer.get_extra_info("sockname")[:2]
        await tls.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    seen = json.loads(body)
    assert seen["client"] == list(client or peer)
    assert (seen["scheme"], seen["http_version"]) == ("https", "1.1")


@pytest.mark.parametrize(("header", "client"), PROXIED[:4:3])
async def test_tls_after_proxy_header_h2_alpn(
    pki: PKI, no_escaped_errors: None, header: bytes, client: tuple[str, int]
) -> None:
    import h2.config
    import h2.connection
    import h2.events

    async with (
        proxied_tls_server(WhoAmI(), pki) as (_, host, port),
        asyncio.timeout(30),
    ):
        tls = await TLSClient.connect(
            host, port, header, pki.client_context("h2", "http/1.1"), together=True
        )
        assert tls.tls.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        request = [(":method", "GET"), (":path", "/"), (":scheme", "https")]
        conn.send_headers(1, [*request, (":authority", "localhost")], end_stream=True)
        tls.send(conn.data_to_send())
        status, body, ended = None, b"", False
        while not ended:
            data = await tls.receive()
            assert data, "the server closed before the response ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            tls.send(conn.data_to_send())
        conn.close_connection()
        tls.send(conn.data_to_send())
        await tls.close()
    assert status == b"200"
    seen = json.loads(body)
    assert seen["client"] == list(client)
    assert (seen["scheme"], seen["http_version"]) == ("https", "2")


async def test_tls_after_proxy_header_websocket(pki: PKI, no_escaped_errors: None) -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    header = v2(family=0x21, block=inet6("2001:db8::77", "2001:db8::1", 4444, 443))
    async with (
        proxied_tls_server(WhoAmI(), pki) as (_, host, port),
        asyncio.timeout(30),
    ):
        tls = await TLSClient.connect(host, port, header, pki.client_context(), together=True)
        ws = WSConnection(ConnectionType.CLIENT)
        tls.send(ws.send(Request(host="localhost", target="/ws")))
        events: list[object] = []
        while not any(isinstance(event, CloseConnection) for event in events):
            data = await tls.receive()
            assert data, f"the server closed early; events so far: {events}"
            ws.receive_data(data)
            events.extend(ws.events())
        await tls.close()
    assert isinstance(events[0], AcceptConnection)
    (message,) = [event for event in events if isinstance(event, TextMessage)]
    seen = json.loads(message.data)
    assert seen["type"] == "websocket" and seen["scheme"] == "wss"
    assert seen["client"] == ["2001:db8::77", 4444]


async def test_access_log_has_the_proxied_client(
    pki: PKI, no_escaped_errors: None, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    header = b"PROXY TCP4 192.0.2.200 10.0.0.1 33333 443\r\n"
    options = {"access_log": str(log), "access_log_format": "json"}
    async with proxied_tls_server(WhoAmI(), pki, **options) as (_, host, port):
        tls = await TLSClient.connect(host, port, header, pki.client_context(), together=True)
        tls.send(b"GET /logged HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert (await tls.receive_all()).startswith(b"HTTP/1.1 200")
        await tls.close()
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert (record["client_addr"], record["client_port"]) == ("192.0.2.200", 33333)
    assert (record["target"], record["scheme"], record["status"]) == ("/logged", "https", 200)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(
            b"PROXY TCP4 256.0.0.1 10.0.0.1 1 443\r\n", "not a valid IPv4", id="v1-bad-address"
        ),
        pytest.param(b"PROXY TCP4 " + b"1" * 120, "no CRLF within 107", id="v1-too-long"),
        pytest.param(v2(length=0xFFFF) + b"\x00" * 64, "announces 65535", id="v2-too-long"),
        pytest.param(v2(version=1, length=12) + b"\x00" * 12, "version 1", id="v2-bad-version"),
        pytest.param(
            with_crc(v2(block=inet4("192.0.2.1", "192.0.2.2", 1, 2)), corrupt=True),
            "CRC32C mismatch",
            id="v2-bad-crc",
        ),
    ],
)
async def test_bad_proxy_header_closes_before_tls(
    pki: PKI,
    no_escaped_errors: None,
    caplog: pytest.LogCaptureFixture,
    header: bytes,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="rws.http.error")
    app = WhoAmI()
    async with proxied_tls_server(app, pki) as (_, host, port), asyncio.timeout(30):
        with pytest.raises(ConnectionError):
            await TLSClient.connect(host, port, header, pki.client_context(), together=True)
    assert app.calls == 0
    (record,) = [r for r in caplog.records if "bad PROXY protocol header" in r.getMessage()]
    assert record.levelno == logging.INFO and reason in record.getMessage()


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"PROXY TCP4 203.0.113.9", id="half-a-v1-header"),
        pytest.param(v2(block=inet4("192.0.2.1", "192.0.2.2", 1, 2))[:20], id="half-a-v2-header"),
        pytest.param(b"PROXY TCP4 203.0.113.9 10.0.0.1 50123 443\r\n", id="header-but-no-tls"),
    ],
)
async def test_silent_client_is_closed_after_header_timeout(
    pki: PKI, no_escaped_errors: None, sent: bytes
) -> None:
    app = WhoAmI()
    async with (
        proxied_tls_server(app, pki, header_timeout=0.3) as (_, host, port),
        asyncio.timeout(30),
    ):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(sent)
        assert await closed_by_server(reader) == b""
        writer.close()
    assert app.calls == 0


async def test_tls_without_proxy_header_is_refused(
    pki: PKI, no_escaped_errors: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rws.http.error")
    app = WhoAmI()
    async with proxied_tls_server(app, pki) as (_, host, port), asyncio.timeout(30):
        with pytest.raises((ConnectionError, ssl.SSLError)):  # the handshake fails
            await asyncio.open_connection(
                host, port, ssl=pki.client_context(), server_hostname="localhost"
            )
    assert app.calls == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("bad PROXY protocol header" in m and "\\x16\\x03" in m for m in messages)


async def test_shutdown_drops_connections_still_before_their_handshake(
    pki: PKI, no_escaped_errors: None
) -> None:
    app = WhoAmI()
    async with asyncio.timeout(30):
        async with proxied_tls_server(app, pki) as (server, host, port):
            early, early_writer = await asyncio.open_connection(host, port)
            early_writer.write(b"PROXY TCP4 203.0.1")
            await early_writer.drain()
            later, later_writer = await asyncio.open_connection(host, port)
            later_writer.write(b"PROXY TCP4 203.0.113.9 10.0.0.1 50123 443\r\n")
            await later_writer.drain()
            await server.shutdown(grace=2)  # well before header_timeout (10 s)
            assert await closed_by_server(early) == b""
            assert await closed_by_server(later) == b""
            early_writer.close()
            later_writer.close()
            with pytest.raises(ConnectionError):
                await asyncio.open_connection(host, port)  # the listener is gone
    assert app.calls == 0


async def test_read_proxy_header_leaves_what_follows_on_the_socket() -> None:
    """The header is consumed to its last byte and the bytes after it stay unread."""
    loop = asyncio.get_running_loop()
    first, second = socket.socketpair()
    with first, second:
        first.setblocking(False)
        second.setblocking(False)
        headers = [case.values[0] for case in FEED_CASES]
        for header in headers:
            assert isinstance(header, bytes)
            second.sendall(header + b"\x16\x03\x01rest")
            result = await read_proxy_header(loop, first)
            assert result == parse(header)
            assert first.recv(100) == b"\x16\x03\x01rest"
        second.sendall(b"PROXY UNKN")
        second.shutdown(socket.SHUT_WR)
        assert await read_proxy_header(loop, first) is None  # closed before the end


# -- HAProxy in TCP mode in front of rws-http's TLS ---------------------------------------


@pytest.mark.parametrize(
    ("frontend", "options", "version"),
    [
        pytest.param("127.0.0.1", "send-proxy-v2", "1.1", id="v2-ipv4-http11"),
        pytest.param("::1", "send-proxy-v2", "2", id="v2-ipv6-h2"),
        pytest.param("127.0.0.1", "send-proxy", "2", id="v1-ipv4-h2"),
        pytest.param(
            "127.0.0.1", "send-proxy-v2 proxy-v2-options crc32c,unique-id", "1.1", id="v2-crc-id"
        ),
    ],
)
async def test_haproxy_send_proxy_in_front_of_tls(
    haproxy: Callable[[str, str, int], tuple[str, int]],
    pki: PKI,
    no_escaped_errors: None,
    tmp_path: Path,
    frontend: str,
    options: str,
    version: str,
) -> None:
    curl = shutil.which("curl")
    if curl is None:
        missing("curl is not installed (apt-get install curl)")
    log = tmp_path / "access.log"
    app = WhoAmI()
    settings = {"access_log": str(log), "access_log_format": "json"}
    async with proxied_tls_server(app, pki, **settings) as (_, _, backend_port):
        front_host, front_port = haproxy(frontend, options, backend_port)
        url_host = f"[{front_host}]" if ":" in front_host else front_host
        proc = await asyncio.create_subprocess_exec(
            curl, "-sS", "--max-time", "20", "--cacert", pki.ca_pem,
            "--http2" if version == "2" else "--http1.1",
            "-w", "\n%{local_port} %{http_version}",
            f"https://{url_host}:{front_port}/via-haproxy",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    body, _, tail = out.decode().rpartition("\n")
    local_port, http_version = tail.split()
    assert http_version == version
    seen = json.loads(body)
    # HAProxy connected to rws-http from 127.0.0.1 and another port; the header told curl's.
    assert seen["client"] == [front_host, int(local_port)]
    assert (seen["scheme"], seen["http_version"]) == ("https", version)
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert (record["client_addr"], record["client_port"]) == (front_host, int(local_port))
