"""The shape every scheme shares: verify, sign, and replay protection around them."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import ClassVar, cast

from ._headers import Headers, HeadersInput
from .errors import MalformedPayloadError, ReplayedMessageError, WebhookConfigError
from .replay import AsyncSeenStore, SeenStore
from .result import Verified

#: How long to remember a message id for schemes with no signed timestamp (GitHub, Shopify):
#: their senders retry for up to a day or two, so a day is the useful horizon.
DEFAULT_REPLAY_TTL = 86_400.0


def body_bytes(body: object) -> bytes:
    """The raw body; text is refused because re-encoding it breaks signatures silently."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        raise MalformedPayloadError(
            "body must be the raw request bytes, not str: decoding and re-encoding a body "
            "changes it; pass e.g. `await request.body()`"
        )
    raise MalformedPayloadError(f"body must be bytes, not {type(body).__name__}")


class Scheme(ABC):
    """Base of every scheme: ``verify`` (sync), ``averify`` (async) and ``sign``.

    Subclasses implement :meth:`_verify`, which checks signature and freshness and returns a
    :class:`Verified`. This class adds the optional seen-store, so replay protection behaves
    the same for every scheme.
    """

    #: Stable scheme name, used in results, replay keys and the CLI.
    name: ClassVar[str]
    #: Whether ``Verified.message_id`` is covered by the signature. Only a signed id may key
    #: the seen-store: an unsigned one can be changed by whoever replays the request.
    signs_message_id: bool = False

    def __init__(
        self,
        *,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        if seen_store is not None and not isinstance(seen_store, SeenStore | AsyncSeenStore):
            raise WebhookConfigError("seen_store must implement remember() and forget()")
        self.seen_store = seen_store
        self._replay_ttl = replay_ttl

    # -- to implement --------------------------------------------------------------------

    @abstractmethod
    def _verify(
        self, body: bytes, headers: Headers, now: float | None, url: str | None
    ) -> tuple[Verified, bytes]:
        """Check signature and timestamp; raise a :class:`WebhookError` subclass.

        Returns the result and the exact bytes that were signed: the seen-store keys messages
        without a signed id by a digest of those bytes, which (unlike the header text) an
        attacker cannot vary by re-encoding the signature.
        """

    #: The (lowercase) headers the scheme reads; the others are not even looked at.
    header_names: frozenset[str] | None = None
    #: Which of ``sign``'s options the scheme uses (timestamp, message_id, url).
    sign_options: frozenset[str] = frozenset()

    @abstractmethod
    def _sign(
        self, body: bytes, timestamp: int | None, message_id: str | None, url: str | None
    ) -> dict[str, str]:
        """The headers for ``body``; options not in :attr:`sign_options` are ``None``."""

    def sign(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        message_id: str | None = None,
        url: str | None = None,
    ) -> dict[str, str]:
        """The headers a sender attaches to ``body`` so that receivers verify it.

        Schemes that can carry several signatures (Stripe, Standard Webhooks, an
        :class:`HmacScheme` with a separator) sign with every configured secret, so
        receivers on either side of a rotation accept the request. ``timestamp`` defaults to
        now; an option the scheme has no use for is an error rather than silently dropped.
        """
        given = {
            name
            for name, value in (("timestamp", timestamp), ("message_id", message_id), ("url", url))
            if value is not None
        }
        unused = given - self.sign_options
        if unused:
            raise WebhookConfigError(
                f"{self.name} signatures do not use {', '.join(sorted(unused))}"
            )
        if timestamp is not None and (
            isinstance(timestamp, bool) or not isinstance(timestamp, int)
        ):
            raise WebhookConfigError("timestamp must be an int (Unix seconds)")
        return self._sign(body_bytes(body), timestamp, message_id, url)

    def replay_ttl(self) -> float:
        """How long an accepted message must be remembered to make a replay useless."""
        return DEFAULT_REPLAY_TTL if self._replay_ttl is None else self._replay_ttl

    def replay_key(self, verified: Verified, signed: bytes) -> str:
        """The signed message id when there is one, else a digest of the signed bytes."""
        if self.signs_message_id and verified.message_id:
            return f"{self.name}:id:{verified.message_id}"
        return f"{self.name}:sha256:{hashlib.sha256(signed).hexdigest()}"

    # -- public --------------------------------------------------------------------------

    def verify(
        self,
        body: bytes,
        headers: HeadersInput,
        *,
        url: str | None = None,
        now: float | None = None,
    ) -> Verified:
        """Verify a request; return what was proven or raise a :class:`WebhookError`.

        ``headers`` may be any mapping (looked up case-insensitively) or raw ASGI pairs.
        ``url`` is the absolute URL the request was sent to; only schemes that sign it
        (Twilio) need it, the others ignore it. ``now`` (Unix seconds) exists for tests and
        for re-checking stored requests.
        """
        verified, key = self._authenticate(body, headers, url, now)
        if key is None or self.seen_store is None:
            return verified
        if inspect.iscoroutinefunction(self.seen_store.remember):
            raise WebhookConfigError(
                "this scheme has an asynchronous seen_store: use `await scheme.averify(...)`"
            )
        fresh = cast(SeenStore, self.seen_store).remember(key, self.replay_ttl())
        return _remembered(verified, key, fresh)

    async def averify(
        self,
        body: bytes,
        headers: HeadersInput,
        *,
        url: str | None = None,
        now: float | None = None,
    ) -> Verified:
        """:meth:`verify` for async code; works with sync and async seen-stores."""
        verified, key = self._authenticate(body, headers, url, now)
        if key is None or self.seen_store is None:
            return verified
        fresh = self.seen_store.remember(key, self.replay_ttl())
        if inspect.isawaitable(fresh):
            fresh = await cast(Awaitable[bool], fresh)
        return _remembered(verified, key, fresh)

    def _authenticate(
        self, body: bytes, headers: HeadersInput, url: str | None, now: float | None
    ) -> tuple[Verified, str | None]:
        """Signature and freshness, plus the replay key when a seen-store is configured."""
        view = Headers(headers, self.header_names)
        verified, signed = self._verify(body_bytes(body), view, now, url)
        key = None if self.seen_store is None else self.replay_key(verified, signed)
        return verified, key

    async def aforget(self, verified: Verified) -> None:
        """Let a retry of ``verified`` through again (its handling failed)."""
        if self.seen_store is None or verified.replay_key is None:
            return
        result = self.seen_store.forget(verified.replay_key)
        if inspect.isawaitable(result):
            await result

    def __repr__(self) -> str:
        # Never show secrets.
        return f"{type(self).__name__}(<{self.name} keys hidden>)"


def _remembered(verified: Verified, key: str, fresh: bool) -> Verified:
    if not fresh:
        raise ReplayedMessageError(key)
    return dataclasses.replace(verified, replay_key=key)
