"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`` over ``"{t}.{body}"``."""

from __future__ import annotations

import time

from ._codec import decode_hex, parse_timestamp
from ._headers import Headers
from ._keys import HmacKeyring, Secrets, utf8_keys
from ._window import window
from .errors import InvalidSignatureError, MalformedHeaderError
from .hmac_scheme import MAX_SIGNATURES
from .replay import AsyncSeenStore, SeenStore
from .result import Verified
from .scheme import Scheme

SIGNATURE_HEADER = "Stripe-Signature"


class Stripe(Scheme):
    """Stripe webhooks (``whsec_...`` endpoint secrets, used as-is, not base64-decoded).

    Stripe sends one ``v1`` signature per active endpoint secret while you roll one, so every
    ``v1`` is checked against every configured secret. ``v0`` and unknown schemes are ignored,
    as Stripe's own library does. Unlike that library the window is two-sided.
    """

    name = "stripe"
    header_names = frozenset({SIGNATURE_HEADER.lower()})
    sign_options = frozenset({"timestamp"})

    def __init__(
        self,
        secret: Secrets,
        tolerance: float = 300,
        *,
        future_tolerance: float | None = None,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(seen_store=seen_store, replay_ttl=replay_ttl)
        self._keys = HmacKeyring(utf8_keys(secret))
        self.window = window(tolerance, future_tolerance)

    def replay_ttl(self) -> float:
        return self.window.span if self._replay_ttl is None else self._replay_ttl

    def _parse(self, value: str) -> tuple[int, list[bytes]]:
        timestamp: int | None = None
        signatures: list[bytes] = []
        items = value.split(",")
        if len(items) > MAX_SIGNATURES + 4:
            raise MalformedHeaderError(SIGNATURE_HEADER, "too many elements")
        for item in items:
            key, sep, val = item.strip().partition("=")
            if not sep:
                raise MalformedHeaderError(SIGNATURE_HEADER, f"element without '=': {key[:20]!r}")
            if key == "t":
                if timestamp is not None:
                    raise MalformedHeaderError(SIGNATURE_HEADER, "more than one timestamp")
                timestamp = parse_timestamp(val, SIGNATURE_HEADER)
            elif key == "v1":
                signatures.append(decode_hex(val, SIGNATURE_HEADER))
        if timestamp is None:
            raise MalformedHeaderError(SIGNATURE_HEADER, "no timestamp (t=)")
        if not signatures:
            raise MalformedHeaderError(SIGNATURE_HEADER, "no v1 signature")
        return timestamp, signatures

    def _verify(
        self, body: bytes, headers: Headers, now: float | None, url: str | None
    ) -> tuple[Verified, bytes]:
        timestamp, signatures = self._parse(headers.require(SIGNATURE_HEADER))
        message = b"%d.%s" % (timestamp, body)
        index = self._keys.match(message, signatures)
        if index is None:
            raise InvalidSignatureError("no v1 signature matches the body and timestamp")
        self.window.check(timestamp, now)
        return Verified(self.name, index, timestamp=timestamp), message

    def _sign(
        self, body: bytes, timestamp: int | None, message_id: str | None, url: str | None
    ) -> dict[str, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        message = b"%d.%s" % (ts, body)
        parts = [f"t={ts}"]
        parts += [f"v1={self._keys.sign(message, i).hex()}" for i in range(len(self._keys.keys))]
        return {SIGNATURE_HEADER: ",".join(parts)}
