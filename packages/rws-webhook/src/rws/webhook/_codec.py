"""Strict decoders for the encodings that appear in signature headers.

The stdlib decoders are lenient in ways that matter here: ``int()`` accepts ``" 12"``,
``"1_2"`` and non-ASCII digits, ``base64.b64decode`` silently drops characters outside the
alphabet unless told otherwise, and both raise ``ValueError``/``binascii.Error`` that must
never escape :meth:`verify`. Everything here raises :class:`MalformedHeaderError` instead.
"""

from __future__ import annotations

import base64
import binascii
import re

from .errors import MalformedHeaderError

_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]*")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def parse_timestamp(value: str, header: str) -> int:
    """Unix seconds as sent by every scheme here: plain ASCII digits, nothing else."""
    if not _DIGITS.fullmatch(value):
        raise MalformedHeaderError(header, "timestamp is not a whole number of seconds")
    return int(value)


def decode_hex(value: str, header: str) -> bytes:
    if len(value) % 2 or not _HEX.fullmatch(value):
        raise MalformedHeaderError(header, "signature is not hexadecimal")
    return bytes.fromhex(value)


def decode_base64(value: str, header: str, *, urlsafe: bool = False) -> bytes:
    pattern = _B64URL if urlsafe else _B64
    if not pattern.fullmatch(value):
        raise MalformedHeaderError(header, "signature is not base64")
    padded = value + "=" * (-len(value) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedHeaderError(header, "signature is not base64") from None


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    if urlsafe:
        return base64.urlsafe_b64encode(data).decode("ascii")
    return base64.b64encode(data).decode("ascii")
