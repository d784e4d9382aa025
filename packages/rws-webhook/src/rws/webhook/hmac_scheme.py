"""A configurable HMAC scheme, and the engine behind GitHub, Shopify and Slack.

Most providers sign ``HMAC(secret, <something built from the body>)`` and put the digest,
hex or base64, maybe behind a prefix, in one header. One well-tested implementation of that
shape serves all of them; the named schemes only fix its parameters.
"""

from __future__ import annotations

import re
import time
from typing import Literal

from ._codec import decode_base64, decode_hex, encode_base64, parse_timestamp
from ._headers import Headers
from ._keys import HmacKeyring, Secrets, utf8_keys
from ._window import window
from .errors import InvalidSignatureError, MalformedHeaderError, WebhookConfigError
from .replay import AsyncSeenStore, SeenStore
from .result import Verified
from .scheme import Scheme

Encoding = Literal["hex", "base64", "base64url"]
_PLACEHOLDER = re.compile(r"\{(body|timestamp|id)\}")
#: More signatures than this in one header is not a rotation, it is an attack on our CPU.
MAX_SIGNATURES = 16


def _compile_template(template: str) -> list[str]:
    """Split ``"v0:{timestamp}:{body}"`` into literal and placeholder parts, once."""
    parts = _PLACEHOLDER.split(template)
    # re.split with one group alternates literal, name, literal, ...
    names = parts[1::2]
    if names.count("body") != 1:
        raise WebhookConfigError("signed_payload must contain {body} exactly once")
    leftover = "".join(parts[0::2])
    if "{" in leftover or "}" in leftover:
        raise WebhookConfigError(
            "signed_payload may only use the placeholders {body}, {timestamp} and {id}"
        )
    return parts


class HmacScheme(Scheme):
    """HMAC over the body (optionally with a timestamp and id), in one header.

    ``signed_payload`` says what is signed, e.g. ``"{timestamp}.{body}"``; ``{timestamp}``
    needs ``timestamp_header`` and ``{id}`` needs ``id_header``. ``delivery_id_header`` names
    an unsigned per-delivery id used only as the replay key (GitHub's ``X-GitHub-Delivery``).
    With ``separator`` set
    (e.g. ``","``) the header may carry several signatures and :meth:`sign` emits one per
    configured secret, so receivers keep working across a rotation.
    """

    name = "hmac"

    def __init__(
        self,
        secret: Secrets,
        *,
        header: str,
        algorithm: str = "sha256",
        encoding: Encoding = "hex",
        prefix: str = "",
        signed_payload: str = "{body}",
        timestamp_header: str | None = None,
        id_header: str | None = None,
        delivery_id_header: str | None = None,
        separator: str | None = None,
        tolerance: float = 300,
        future_tolerance: float | None = None,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(seen_store=seen_store, replay_ttl=replay_ttl)
        if not header:
            raise WebhookConfigError("header must name the signature header")
        if encoding not in ("hex", "base64", "base64url"):
            raise WebhookConfigError(f"encoding must be hex, base64 or base64url, not {encoding!r}")
        self._parts = _compile_template(signed_payload)
        self._body_only = self._parts == ["", "body", ""]
        names = set(self._parts[1::2])
        if "timestamp" in names and timestamp_header is None:
            raise WebhookConfigError("signed_payload uses {timestamp}: set timestamp_header")
        if "id" in names and id_header is None:
            raise WebhookConfigError("signed_payload uses {id}: set id_header")
        if separator == "":
            raise WebhookConfigError("separator must be a non-empty string or None")
        self._keys = HmacKeyring(utf8_keys(secret), algorithm)
        self.header = header
        self.encoding: Encoding = encoding
        self.prefix = prefix
        self.timestamp_header = timestamp_header
        self.id_header = id_header
        self.signs_message_id = id_header is not None
        self.header_names = frozenset(
            name.lower()
            for name in (header, timestamp_header, id_header, delivery_id_header)
            if name is not None
        )
        self.sign_options = frozenset(
            name
            for name, header in (("timestamp", timestamp_header), ("message_id", id_header))
            if header is not None
        )
        self.delivery_id_header = delivery_id_header
        self.separator = separator
        self.window = window(tolerance, future_tolerance)

    def replay_ttl(self) -> float:
        if self._replay_ttl is None and self.timestamp_header is not None:
            return self.window.span
        return super().replay_ttl()

    def _message(self, body: bytes, timestamp: int | None, ident: str | None) -> bytes:
        if self._body_only:
            return body
        out = bytearray()
        for position, part in enumerate(self._parts):
            if position % 2 == 0:
                out += part.encode()
            elif part == "body":
                out += body
            elif part == "timestamp":
                out += str(timestamp).encode()
            else:
                out += (ident or "").encode()
        return bytes(out)

    def _decode(self, value: str) -> bytes:
        if self.encoding == "hex":
            return decode_hex(value, self.header)
        return decode_base64(value, self.header, urlsafe=self.encoding == "base64url")

    def _encode(self, digest: bytes) -> str:
        if self.encoding == "hex":
            return digest.hex()
        return encode_base64(digest, urlsafe=self.encoding == "base64url")

    def _signatures(self, value: str) -> list[bytes]:
        items = value.split(self.separator) if self.separator else [value]
        if len(items) > MAX_SIGNATURES:
            raise MalformedHeaderError(self.header, f"more than {MAX_SIGNATURES} signatures")
        signatures = []
        for item in items:
            item = item.strip()
            if not item.startswith(self.prefix):
                raise MalformedHeaderError(self.header, f"expected {self.prefix!r} prefix")
            signatures.append(self._decode(item[len(self.prefix) :]))
        return signatures

    def _verify(
        self, body: bytes, headers: Headers, now: float | None, url: str | None
    ) -> tuple[Verified, bytes]:
        signatures = self._signatures(headers.require(self.header))
        timestamp = None
        if self.timestamp_header is not None:
            raw = headers.require(self.timestamp_header)
            timestamp = parse_timestamp(raw, self.timestamp_header)
        ident = headers.require(self.id_header) if self.id_header is not None else None
        message = self._message(body, timestamp, ident)
        index = self._keys.match(message, signatures)
        if index is None:
            raise InvalidSignatureError("signature does not match the body")
        # Freshness is checked after authenticity: an unauthenticated timestamp says nothing.
        if timestamp is not None:
            self.window.check(timestamp, now)
        if ident is None and self.delivery_id_header is not None:
            ident = headers.get(self.delivery_id_header)
        return Verified(self.name, index, timestamp=timestamp, message_id=ident), message

    def _sign(
        self, body: bytes, timestamp: int | None, message_id: str | None, url: str | None
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.timestamp_header is not None:
            timestamp = int(time.time()) if timestamp is None else timestamp
            headers[self.timestamp_header] = str(timestamp)
        if self.id_header is not None:
            if not message_id:
                raise WebhookConfigError(f"sign() needs message_id for {self.id_header}")
            headers[self.id_header] = message_id
        message = self._message(body, timestamp, message_id)
        # One header value can carry several signatures only with a separator.
        count = len(self._keys.keys) if self.separator else 1
        values = [self.prefix + self._encode(self._keys.sign(message, i)) for i in range(count)]
        headers[self.header] = (self.separator or "").join(values)
        return headers


class GitHub(HmacScheme):
    """GitHub: ``X-Hub-Signature-256: sha256=<hex>`` (Gitea and Forgejo send the same).

    GitHub signs no timestamp, so freshness comes only from a seen-store. The
    ``X-GitHub-Delivery`` id is reported in the result but is not signed, so the store is
    keyed by the signature instead; a redelivery from GitHub's UI repeats it, so forget it
    when handling fails (the ASGI middleware does).
    """

    name = "github"

    def __init__(
        self,
        secret: Secrets,
        *,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(
            secret,
            header="X-Hub-Signature-256",
            prefix="sha256=",
            delivery_id_header="X-GitHub-Delivery",
            seen_store=seen_store,
            replay_ttl=replay_ttl,
        )


class Shopify(HmacScheme):
    """Shopify: ``X-Shopify-Hmac-Sha256: <base64>``; reports ``X-Shopify-Webhook-Id``."""

    name = "shopify"

    def __init__(
        self,
        secret: Secrets,
        *,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(
            secret,
            header="X-Shopify-Hmac-Sha256",
            encoding="base64",
            delivery_id_header="X-Shopify-Webhook-Id",
            seen_store=seen_store,
            replay_ttl=replay_ttl,
        )


class Slack(HmacScheme):
    """Slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:{timestamp}:{body}``, 5 min window."""

    name = "slack"

    def __init__(
        self,
        secret: Secrets,
        *,
        tolerance: float = 300,
        future_tolerance: float | None = None,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(
            secret,
            header="X-Slack-Signature",
            prefix="v0=",
            signed_payload="v0:{timestamp}:{body}",
            timestamp_header="X-Slack-Request-Timestamp",
            tolerance=tolerance,
            future_tolerance=future_tolerance,
            seen_store=seen_store,
            replay_ttl=replay_ttl,
        )
