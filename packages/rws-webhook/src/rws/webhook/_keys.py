"""Secrets with rotation: the first key signs, every key verifies.

During a rotation a receiver must accept both the new and the old secret, and a sender that
supports it signs with both so receivers on either side of the switch keep working.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import WebhookConfigError

Secret = str | bytes
Secrets = Secret | Sequence[Secret]

#: Digests accepted by the schemes. MD5 is not here on purpose.
DIGESTS = ("sha1", "sha256", "sha384", "sha512")


def secret_list(secrets: Secrets, what: str = "secret") -> tuple[Secret, ...]:
    """Validate ``secret`` or ``[current, previous, ...]`` without decoding it."""
    items: tuple[object, ...]
    if isinstance(secrets, str | bytes):
        items = (secrets,)
    elif isinstance(secrets, Sequence):
        items = tuple(secrets)
    else:
        raise WebhookConfigError(f"{what} must be str, bytes or a list of them")
    if not items:
        raise WebhookConfigError(f"at least one {what} is required")
    for item in items:
        if not isinstance(item, str | bytes):
            raise WebhookConfigError(f"{what} must be str or bytes, not {type(item).__name__}")
        if not item:
            raise WebhookConfigError(f"{what} must not be empty")
    return items  # type: ignore[return-value]


def utf8_keys(secrets: Secrets, what: str = "secret") -> tuple[bytes, ...]:
    return tuple(s.encode() if isinstance(s, str) else s for s in secret_list(secrets, what))


def digest_name(algorithm: str) -> str:
    name = algorithm.lower() if isinstance(algorithm, str) else ""
    if name not in DIGESTS:
        raise WebhookConfigError(
            f"unsupported algorithm {algorithm!r}; use one of {', '.join(DIGESTS)}"
        )
    return name


class HmacKeyring:
    """Compute and check HMACs of one message under every configured key."""

    __slots__ = ("_digest", "keys")

    def __init__(self, keys: tuple[bytes, ...], algorithm: str = "sha256") -> None:
        self.keys = keys
        self._digest = digest_name(algorithm)

    def sign(self, message: bytes, key_index: int = 0) -> bytes:
        # hmac.digest is the one-shot C path: no HMAC object, several times cheaper.
        return hmac.digest(self.keys[key_index], message, self._digest)

    def match(self, message: bytes, candidates: Sequence[bytes]) -> int | None:
        """Index of the key that produced one of ``candidates``, or ``None``.

        Every comparison is constant-time and all candidates are compared, so timing tells
        an attacker nothing about the expected value.
        """
        for index, key in enumerate(self.keys):
            if any_equal(hmac.digest(key, message, self._digest), candidates):
                return index
        return None


def any_equal(expected: bytes, candidates: Sequence[bytes]) -> bool:
    """Whether any candidate equals ``expected``, comparing every one in constant time."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(expected, candidate)
    return found
