"""Ed25519 for Standard Webhooks' ``v1a``, from the optional ``[ed25519]`` extra.

The core of rws-webhook is stdlib-only; ``cryptography`` is imported only when an asymmetric
key is configured, and its absence is reported by naming the extra to install.
"""

from __future__ import annotations

from typing import Any

from .errors import WebhookConfigError

_EXTRA = "pip install 'rws-webhook[ed25519]'"


def _module() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise WebhookConfigError(
            f"Ed25519 (v1a) keys need the cryptography package: {_EXTRA}"
        ) from exc
    return ed25519


class Ed25519Key:
    """A public key (verify) or a private key (sign and verify), never both kinds at once."""

    __slots__ = ("_private", "_public")

    def __init__(self, *, public: bytes | None = None, private_seed: bytes | None = None) -> None:
        ed25519 = _module()
        self._private: Any = None
        if private_seed is not None:
            if len(private_seed) != 32:
                raise WebhookConfigError("an Ed25519 private key (whsk_) is a 32-byte seed")
            self._private = ed25519.Ed25519PrivateKey.from_private_bytes(private_seed)
            self._public: Any = self._private.public_key()
        elif public is not None:
            if len(public) != 32:
                raise WebhookConfigError("an Ed25519 public key (whpk_) is 32 bytes")
            self._public = ed25519.Ed25519PublicKey.from_public_bytes(public)
        else:
            raise WebhookConfigError("an Ed25519 key needs public or private bytes")

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    def public_bytes(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        raw: bytes = self._public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return raw

    def sign(self, message: bytes) -> bytes:
        if self._private is None:
            raise WebhookConfigError("signing with v1a needs the private key (whsk_...)")
        signature: bytes = self._private.sign(message)
        return signature

    def verify(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        if len(signature) != 64:
            return False
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def generate_seed() -> bytes:
    """A new random private seed (for :func:`StandardWebhooks.generate_keypair`)."""
    from cryptography.hazmat.primitives import serialization

    key = _module().Ed25519PrivateKey.generate()
    seed: bytes = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return seed
