"""Sans-IO parser for the PROXY protocol, versions 1 (text) and 2 (binary).

An L4 load balancer (HAProxy ``send-proxy``/``send-proxy-v2``, AWS NLB, nginx ``stream``)
puts one header in front of the bytes it relays, telling the server which client and which
listening address the connection really belongs to. The header arrives before any HTTP byte,
so the transport feeds the first bytes of the connection here until a :class:`ProxyResult`
comes back, then hands ``result.remainder`` to the HTTP protocol. On a TLS listener the
header precedes the ClientHello instead, and :func:`header_length` lets the reader take
exactly the header off the socket and leave the rest to the handshake (see ``proxy_tls``).

The parser owns no socket and no clock. The transport must still bound the time it waits
for the header (the spec says the header is sent at once, so a short timeout is fair) and
must only enable this for listeners whose peers are trusted balancers: anyone who can send
this header can claim any address.

Reference: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt (the "spec" below).

What the result says, by case:

============================  ===========================  ============================
header                        ``client`` / ``server``      ``tlvs``
============================  ===========================  ============================
v1 ``TCP4`` / ``TCP6``        ``(ip, port)`` each          ``{}``
v1 ``UNKNOWN``                ``None`` (use the socket's)  ``{}``
v2 ``PROXY`` over IPv4/IPv6   ``(ip, port)`` each          the TLVs, minus ``NOOP``
v2 ``PROXY`` over ``AF_UNIX`` ``None``: a path is not an   the TLVs, minus ``NOOP``
                              ASGI client, which is an
                              address and a port
v2 ``PROXY`` ``AF_UNSPEC``    ``None``                     ``{}`` (block is skipped)
v2 ``LOCAL`` (health check)   ``None``                     ``{}`` (block is skipped)
============================  ===========================  ============================

``None`` always means "the balancer did not say; use the real socket endpoints", which is
what the spec asks receivers to do for ``UNKNOWN``, ``LOCAL`` and ``AF_UNSPEC``.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_V1_LINE",
    "MAX_V2_TLV_BYTES",
    "V2_SIGNATURE",
    "ProxyProtocolError",
    "ProxyProtocolParser",
    "ProxyResult",
    "crc32c",
    "header_length",
]

#: The longest v1 line the spec allows, CRLF included ("PROXY UNKNOWN" with two full IPv6
#: addresses and two 5-digit ports). A sender never needs more, so more is an error.
MAX_V1_LINE: Final = 107

#: The 12 bytes that open every v2 header; built so that HTTP, TLS, SMTP... parsers choke.
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"

#: Cap on the TLV bytes after the v2 address block. The length field allows 64 KiB, but real
#: senders (HAProxy with every ``proxy-v2-options``, AWS NLB's VPC endpoint TLV) stay well
#: under 1 KiB; 4 KiB leaves room for a client-certificate CN and a 128-byte unique ID while
#: keeping what an unauthenticated peer can make us buffer small.
MAX_V2_TLV_BYTES: Final = 4096

_V1_PREFIX: Final = b"PROXY "
_V2_FIXED: Final = 16  # signature, version/command, family/transport, 2-byte length
_UNIX_ADDRESS_BYTES: Final = 108  # sizeof(sun_path)
#: Address block size per v2 family (high nibble of byte 14).
_V2_ADDRESS_BYTES: Final = {0x1: 2 * 4 + 2 * 2, 0x2: 2 * 16 + 2 * 2, 0x3: 2 * _UNIX_ADDRESS_BYTES}
#: The largest address block plus the TLV cap: any longer header is refused on sight.
_MAX_V2_BLOCK: Final = max(_V2_ADDRESS_BYTES.values()) + MAX_V2_TLV_BYTES
#: The longest header the parser accepts (v2 with the largest address block and TLVs up to
#: the cap; a v1 line is shorter): what a reader may have to hold before it has a result.
MAX_HEADER_BYTES: Final = _V2_FIXED + _MAX_V2_BLOCK
_CMD_LOCAL: Final = 0x0
_CMD_PROXY: Final = 0x1
_TLV_CRC32C: Final = 0x03
_TLV_NOOP: Final = 0x04

_PORT = re.compile(r"0|[1-9][0-9]{0,4}")


class ProxyProtocolError(ValueError):
    """The bytes are not a valid PROXY protocol header; the connection must be closed."""


@dataclass(frozen=True, slots=True)
class ProxyResult:
    """What a complete PROXY header said, and the bytes that followed it.

    ``client`` and ``server`` are ``(host, port)`` with the host in the normal text form of
    :mod:`ipaddress` (lower-case, compressed IPv6), or ``None`` when the header carries no
    address (see the module docstring's table). ``remainder`` is the start of the relayed
    stream (the HTTP request) and must be fed to the HTTP protocol, even when empty.
    """

    client: tuple[str, int] | None
    server: tuple[str, int] | None
    version: int
    remainder: bytes = b""
    tlvs: dict[int, bytes] = field(default_factory=dict)


class ProxyProtocolParser:
    """Accumulates the first bytes of a connection until a whole PROXY header is in.

    ``feed`` returns ``None`` while more bytes are needed and a :class:`ProxyResult` once
    the header is complete. Bytes that cannot start or continue a valid header raise
    :class:`ProxyProtocolError` as soon as they are seen, so a client that speaks plain
    HTTP to a PROXY listener is refused at its first byte rather than after a timeout.
    The parser is single-use: feeding it after it returned a result or raised is a bug in
    the caller and raises :class:`RuntimeError`.
    """

    __slots__ = ("_buffer", "_state")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state: str = "reading"

    def feed(self, data: bytes) -> ProxyResult | None:
        """Add ``data``; return the result once the header is complete, else ``None``."""
        if self._state != "reading":
            raise RuntimeError(f"ProxyProtocolParser already {self._state}; it is single-use")
        self._buffer += data
        try:
            result = self._parse()
        except ProxyProtocolError:
            self._state = "failed"
            self._buffer.clear()
            raise
        if result is not None:
            self._state = "finished"
            self._buffer.clear()
        return result

    def _parse(self) -> ProxyResult | None:
        buffer = bytes(self._buffer)
        if buffer.startswith(V2_SIGNATURE):
            return _parse_v2(buffer)
        if buffer.startswith(_V1_PREFIX):
            return _parse_v1(buffer)
        if V2_SIGNATURE.startswith(buffer) or _V1_PREFIX.startswith(buffer):
            return None  # a prefix of one of the two signatures: wait for more
        raise ProxyProtocolError(
            f"not a PROXY protocol header: starts with {buffer[:16]!r}; expected "
            f"{_V1_PREFIX!r} (v1) or the v2 signature {V2_SIGNATURE!r}"
        )


def header_length(data: bytes) -> int:
    """How many leading bytes of ``data``, the first bytes of a connection, are PROXY header.

    For a reader that must consume the header and not one byte more, because what follows is
    read by someone else (a TLS handshake). A v1 header ends at its first LF; a v2 header
    after its 16 fixed bytes plus the length they announce. While the end is not in ``data``
    yet, all of ``data`` is header. Nothing is validated (the parser does that): bytes that
    start no header at all count whole, since the parser refuses them anyway.
    """
    if data[:1] == V2_SIGNATURE[:1] and len(data) >= _V2_FIXED:
        length = int.from_bytes(data[_V2_FIXED - 2 : _V2_FIXED], "big")
        return min(len(data), _V2_FIXED + length)
    if data[:1] == _V1_PREFIX[:1]:
        end = data.find(b"\n")
        return len(data) if end < 0 else end + 1
    return len(data)


# -- version 1 --------------------------------------------------------------------------------


def _parse_v1(buffer: bytes) -> ProxyResult | None:
    """Parse ``PROXY <TCP4|TCP6|UNKNOWN> <src> <dst> <sport> <dport>\\r\\n``."""
    window = buffer[:MAX_V1_LINE]
    cr, lf = window.find(b"\r"), window.find(b"\n")
    if lf != -1 and (cr == -1 or lf < cr):
        raise ProxyProtocolError("PROXY v1 line ends with LF without CR; CRLF is required")
    if cr == -1 or cr + 1 == len(window):
        if len(buffer) >= MAX_V1_LINE:
            raise ProxyProtocolError(f"PROXY v1 line has no CRLF within {MAX_V1_LINE} bytes")
        return None
    if window[cr + 1] != 0x0A:
        raise ProxyProtocolError("PROXY v1 line has a CR not followed by LF; CRLF is required")
    line, remainder = buffer[:cr], buffer[cr + 2 :]

    if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
        # The spec: "the receiver must ignore anything presented before the CRLF".
        return ProxyResult(client=None, server=None, version=1, remainder=remainder)
    if any(not 0x20 <= byte <= 0x7E for byte in line):
        raise ProxyProtocolError(f"PROXY v1 line has non-printable bytes: {line!r}")
    fields = line.decode("ascii").split(" ")
    if fields[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(
            f"PROXY v1 protocol {fields[1]!r} is not one of TCP4, TCP6, UNKNOWN"
        )
    if len(fields) != 6:
        raise ProxyProtocolError(
            f"PROXY v1 {fields[1]} line needs 6 fields separated by single spaces, "
            f"got {len(fields)}: {line!r}"
        )
    _, family, src, dst, src_port, dst_port = fields
    version = 4 if family == "TCP4" else 6
    return ProxyResult(
        client=(_v1_address(src, version, "source"), _v1_port(src_port, "source")),
        server=(_v1_address(dst, version, "destination"), _v1_port(dst_port, "destination")),
        version=1,
        remainder=remainder,
    )


def _v1_address(text: str, version: int, which: str) -> str:
    """Validate a v1 address against its declared family; return its normal form."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if version == 4:
            address = ipaddress.IPv4Address(text)  # refuses leading zeros, as the spec does
        else:
            if "%" in text:  # a zone ID names an interface of the sender, not an address
                raise ValueError("zone IDs are not allowed")
            address = ipaddress.IPv6Address(text)
    except ValueError as exc:
        raise ProxyProtocolError(
            f"PROXY v1 {which} address {text!r} is not a valid IPv{version} address: {exc}"
        ) from None
    return str(address)


def _v1_port(text: str, which: str) -> int:
    """Decimal 0..65535 without leading zeros (the spec forbids them: octal confusion)."""
    if _PORT.fullmatch(text) is None or int(text) > 0xFFFF:
        raise ProxyProtocolError(
            f"PROXY v1 {which} port {text!r} is not a decimal 0-65535 without leading zeros"
        )
    return int(text)


# -- version 2 --------------------------------------------------------------------------------


def _parse_v2(buffer: bytes) -> ProxyResult | None:
    """Parse the binary header: 16 fixed bytes, then ``length`` bytes of addresses + TLVs."""
    if len(buffer) < _V2_FIXED:
        return None
    version_command, family_transport, length = struct.unpack_from("!BBH", buffer, 12)
    version, command = version_command >> 4, version_command & 0x0F
    if version != 2:
        raise ProxyProtocolError(f"PROXY v2 header has version {version}; only 2 exists")
    if command not in (_CMD_LOCAL, _CMD_PROXY):
        raise ProxyProtocolError(
            f"PROXY v2 command {command:#x} is neither LOCAL (0x0) nor PROXY (0x1)"
        )
    family, transport = family_transport >> 4, family_transport & 0x0F
    if command == _CMD_PROXY:
        # LOCAL ignores the family byte entirely (spec 2.2), so it is only checked here.
        if family not in (0x0, *_V2_ADDRESS_BYTES):
            raise ProxyProtocolError(f"PROXY v2 address family {family:#x} is not 0x0-0x3")
        if transport > 0x2:
            raise ProxyProtocolError(
                f"PROXY v2 transport {transport:#x} is not UNSPEC, STREAM or DGRAM"
            )
    if length > _MAX_V2_BLOCK:
        raise ProxyProtocolError(
            f"PROXY v2 header announces {length} bytes after its fixed part; at most "
            f"{_MAX_V2_BLOCK} (addresses plus {MAX_V2_TLV_BYTES} bytes of TLVs) are accepted"
        )
    end = _V2_FIXED + length
    if len(buffer) < end:
        return None
    header, remainder = buffer[:end], buffer[end:]

    if command == _CMD_LOCAL or family == 0x0 or transport == 0x0:
        # The spec: use the real endpoints and ignore the block (and so its TLVs, whose
        # start cannot even be found for AF_UNSPEC).
        return ProxyResult(client=None, server=None, version=2, remainder=remainder)

    address_bytes = _V2_ADDRESS_BYTES[family]
    if length < address_bytes:
        raise ProxyProtocolError(
            f"PROXY v2 address block is {length} bytes; family {family:#x} needs {address_bytes}"
        )
    if length - address_bytes > MAX_V2_TLV_BYTES:
        raise ProxyProtocolError(
            f"PROXY v2 TLVs take {length - address_bytes} bytes; at most {MAX_V2_TLV_BYTES}"
        )
    client, server = _v2_addresses(family, header[_V2_FIXED : _V2_FIXED + address_bytes])
    tlvs = _v2_tlvs(header, _V2_FIXED + address_bytes)
    return ProxyResult(client=client, server=server, version=2, remainder=remainder, tlvs=tlvs)


def _v2_addresses(
    family: int, block: bytes
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    if family == 0x1:
        src4, dst4, src_port, dst_port = struct.unpack("!4s4sHH", block)
        return (
            (str(ipaddress.IPv4Address(src4)), src_port),
            (str(ipaddress.IPv4Address(dst4)), dst_port),
        )
    if family == 0x2:
        src6, dst6, src_port, dst_port = struct.unpack("!16s16sHH", block)
        return (
            (str(ipaddress.IPv6Address(src6)), src_port),
            (str(ipaddress.IPv6Address(dst6)), dst_port),
        )
    # AF_UNIX: an ASGI client is (host, port); a socket path is neither, and the real peer
    # of a unix-socket client is None in ASGI servers too. Both ends report None.
    return None, None


def _v2_tlvs(header: bytes, start: int) -> dict[int, bytes]:
    """Parse ``type(1) length(2) value`` records up to the end of ``header``.

    NOOP records are padding and dropped. A repeated type is an error rather than a silent
    "last one wins", since two AUTHORITY or UNIQUE_ID values cannot both be believed. A
    CRC32C record is verified over the whole header with its own value zeroed (spec 2.2.3).
    """
    tlvs: dict[int, bytes] = {}
    crc_offset = -1
    offset = start
    while offset < len(header):
        if offset + 3 > len(header):
            raise ProxyProtocolError(
                f"PROXY v2 TLV at offset {offset} is truncated: "
                f"{len(header) - offset} bytes left, a TLV needs at least 3"
            )
        kind, size = struct.unpack_from("!BH", header, offset)
        value_start = offset + 3
        offset = value_start + size
        if offset > len(header):
            raise ProxyProtocolError(
                f"PROXY v2 TLV {kind:#04x} claims {size} bytes but only "
                f"{len(header) - value_start} remain in the header"
            )
        if kind == _TLV_NOOP:
            continue
        if kind in tlvs:
            raise ProxyProtocolError(f"PROXY v2 TLV {kind:#04x} appears more than once")
        tlvs[kind] = header[value_start:offset]
        if kind == _TLV_CRC32C:
            if size != 4:
                raise ProxyProtocolError(f"PROXY v2 CRC32C TLV has {size} bytes, not 4")
            crc_offset = value_start
    if crc_offset != -1:
        zeroed = header[:crc_offset] + b"\x00\x00\x00\x00" + header[crc_offset + 4 :]
        expected = int.from_bytes(tlvs[_TLV_CRC32C], "big")
        actual = crc32c(zeroed)
        if actual != expected:
            raise ProxyProtocolError(
                f"PROXY v2 CRC32C mismatch: header says {expected:#010x}, computed {actual:#010x}"
            )
    return tlvs


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # reflected Castagnoli
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 4960 appendix B), as the v2 CRC32C TLV uses.

    ``zlib.crc32`` is the other polynomial, and the ``crc32c`` package would be a
    dependency for at most a few KiB per connection, so this is a plain table lookup.
    """
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
