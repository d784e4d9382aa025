"""Standard Webhooks (and Svix): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

Signed content is ``"{id}.{timestamp}.{body}"``. The signature header is a space-separated
list of ``<version>,<base64>`` entries: ``v1`` is HMAC-SHA256 with a ``whsec_`` secret,
``v1a`` is Ed25519 with a ``whpk_`` public / ``whsk_`` private key (extra ``[ed25519]``).
Svix sends the same thing under ``svix-*`` header names; both are read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets as _secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ._codec import decode_base64, encode_base64, parse_timestamp
from ._ed25519 import Ed25519Key, generate_seed
from ._headers import Headers
from ._keys import Secrets, any_equal, secret_list
from ._window import window
from .errors import InvalidSignatureError, MalformedHeaderError, WebhookConfigError
from .hmac_scheme import MAX_SIGNATURES
from .replay import AsyncSeenStore, SeenStore
from .result import Verified
from .scheme import Scheme

ID_HEADERS = ("webhook-id", "svix-id")
TIMESTAMP_HEADERS = ("webhook-timestamp", "svix-timestamp")
SIGNATURE_HEADERS = ("webhook-signature", "svix-signature")
MAX_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class _SymmetricKey:
    secret: bytes


def _b64_key(text: str, prefix: str) -> bytes:
    try:
        return base64.b64decode(text[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        raise WebhookConfigError(f"{prefix or 'secret'} key is not valid base64") from None


def _parse_key(secret: str | bytes) -> _SymmetricKey | Ed25519Key:
    """Bind each configured key to exactly one algorithm, decided by its prefix."""
    if isinstance(secret, bytes):
        return _SymmetricKey(secret)
    if secret.startswith("whpk_"):
        return Ed25519Key(public=_b64_key(secret, "whpk_"))
    if secret.startswith("whsk_"):
        return Ed25519Key(private_seed=_b64_key(secret, "whsk_"))
    prefix = "whsec_" if secret.startswith("whsec_") else ""
    key = _b64_key(secret, prefix)
    if not key:
        raise WebhookConfigError("the whsec_ secret is empty")
    return _SymmetricKey(key)


class StandardWebhooks(Scheme):
    """Standard Webhooks / Svix, symmetric (``v1``) and asymmetric (``v1a``).

    ``secret`` is one key or ``[current, previous, ...]``: ``"whsec_<base64>"`` (or the bare
    base64, as the reference library also accepts), raw ``bytes``, ``"whpk_<base64>"`` to
    verify ``v1a`` or ``"whsk_<base64>"`` (a 32-byte Ed25519 seed) to sign and verify it.
    A key only ever checks signatures of its own version. The id is signed, so it keys the
    seen-store; ids containing ``.`` are refused because ``id.timestamp.body`` would then be
    ambiguous (two different splits of the same signed bytes).
    """

    name = "standard"
    header_names = frozenset(ID_HEADERS + TIMESTAMP_HEADERS + SIGNATURE_HEADERS)
    signs_message_id = True
    sign_options = frozenset({"timestamp", "message_id"})

    def __init__(
        self,
        secret: Secrets,
        *,
        tolerance: float = 300,
        future_tolerance: float | None = None,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(seen_store=seen_store, replay_ttl=replay_ttl)
        self._keys = tuple(_parse_key(s) for s in secret_list(secret))
        self.window = window(tolerance, future_tolerance)

    @staticmethod
    def generate_secret(length: int = 32) -> str:
        """A new ``whsec_`` secret (the spec asks for 24 to 64 bytes)."""
        if not 24 <= length <= 64:
            raise WebhookConfigError("Standard Webhooks secrets are 24 to 64 bytes")
        return "whsec_" + base64.b64encode(_secrets.token_bytes(length)).decode()

    @staticmethod
    def generate_keypair() -> tuple[str, str]:
        """A new ``(whsk_ private, whpk_ public)`` Ed25519 pair (extra ``[ed25519]``)."""
        seed = generate_seed()
        public = Ed25519Key(private_seed=seed).public_bytes()
        return "whsk_" + base64.b64encode(seed).decode(), "whpk_" + base64.b64encode(
            public
        ).decode()

    def replay_ttl(self) -> float:
        return self.window.span if self._replay_ttl is None else self._replay_ttl

    def _signatures(self, value: str) -> list[tuple[str, bytes]]:
        entries = value.split()
        if len(entries) > MAX_SIGNATURES:
            raise MalformedHeaderError(
                SIGNATURE_HEADERS[0], f"more than {MAX_SIGNATURES} signatures"
            )
        found: list[tuple[str, bytes]] = []
        for entry in entries:
            version, sep, encoded = entry.partition(",")
            if not sep:
                raise MalformedHeaderError(
                    SIGNATURE_HEADERS[0], "entry is not '<version>,<base64>'"
                )
            if version in ("v1", "v1a"):
                found.append((version, decode_base64(encoded, SIGNATURE_HEADERS[0])))
        return found

    def _verify(
        self, body: bytes, headers: Headers, now: float | None, url: str | None
    ) -> tuple[Verified, bytes]:
        ident = headers.require(*ID_HEADERS)
        if "." in ident or len(ident) > MAX_ID_LENGTH:
            raise MalformedHeaderError(
                ID_HEADERS[0], f"id must be at most {MAX_ID_LENGTH} chars, no '.'"
            )
        timestamp = parse_timestamp(headers.require(*TIMESTAMP_HEADERS), TIMESTAMP_HEADERS[0])
        signatures = self._signatures(headers.require(*SIGNATURE_HEADERS))
        message = b"%s.%d.%s" % (ident.encode(), timestamp, body)
        index = self._match(message, signatures)
        if index is None:
            raise InvalidSignatureError("no signature matches the message")
        self.window.check(timestamp, now)
        return Verified(self.name, index, timestamp=timestamp, message_id=ident), message

    def _match(self, message: bytes, signatures: Sequence[tuple[str, bytes]]) -> int | None:
        hmac_candidates = [sig for version, sig in signatures if version == "v1"]
        ed_candidates = [sig for version, sig in signatures if version == "v1a"]
        for index, key in enumerate(self._keys):
            if isinstance(key, _SymmetricKey):
                expected = hmac.digest(key.secret, message, "sha256")
                if any_equal(expected, hmac_candidates):
                    return index
            elif any(key.verify(candidate, message) for candidate in ed_candidates):
                return index
        return None

    def _sign(
        self, body: bytes, timestamp: int | None, message_id: str | None, url: str | None
    ) -> dict[str, str]:
        if not message_id or "." in message_id or len(message_id) > MAX_ID_LENGTH:
            raise WebhookConfigError(
                f"message_id must be 1 to {MAX_ID_LENGTH} characters without '.'"
            )
        ts = int(time.time()) if timestamp is None else timestamp
        message = b"%s.%d.%s" % (message_id.encode(), ts, body)
        entries = []
        for key in self._keys:
            if isinstance(key, _SymmetricKey):
                digest = hmac.digest(key.secret, message, "sha256")
                entries.append("v1," + encode_base64(digest))
            elif key.can_sign:
                entries.append("v1a," + encode_base64(key.sign(message)))
        if not entries:
            raise WebhookConfigError("no key can sign: whpk_ public keys only verify")
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": " ".join(entries),
        }
