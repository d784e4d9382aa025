"""PROXY protocol parser: the spec's examples, every malformed case, and real senders.

Real peers: ``curl --haproxy-protocol`` (v1) and HAProxy itself (``send-proxy``,
``send-proxy-v2`` with CRC32C and unique-id TLVs) in front of a small asyncio server that
uses the parser, plus the ``proxy-protocol`` package as an independent header builder.
Missing tools skip with the reason, or fail under ``RWS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from rws.http.server.proxy_protocol import (
    MAX_V1_LINE,
    MAX_V2_TLV_BYTES,
    V2_SIGNATURE,
    ProxyProtocolError,
    ProxyProtocolParser,
    ProxyResult,
    crc32c,
)

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
