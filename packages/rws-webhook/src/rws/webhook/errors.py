"""The one exception family a webhook receiver has to catch.

Every way a request can fail verification maps to a subclass of :class:`WebhookError`, so
``except WebhookError`` is always enough and nothing from inside (``ValueError``,
``binascii.Error``, ``UnicodeDecodeError``) leaks out of :meth:`verify`. Each error carries a
short machine-readable ``reason`` and the HTTP status a receiver should answer with, so the
ASGI middleware and hand-written handlers answer the same way.
"""

from __future__ import annotations


class WebhookError(Exception):
    """Base class: the request is not an authentic, fresh webhook."""

    #: Short, stable, machine-readable code (safe to log and to return to the sender).
    reason: str = "webhook_error"
    #: The HTTP status a receiver should answer with.
    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingHeaderError(WebhookError):
    """A header the scheme needs is absent."""

    reason = "missing_header"

    def __init__(self, header: str) -> None:
        super().__init__(f"missing header {header!r}")
        self.header = header


class MalformedHeaderError(WebhookError):
    """A header is present but cannot be parsed (bad base64/hex, garbage, wrong type)."""

    reason = "malformed_header"

    def __init__(self, header: str, detail: str) -> None:
        super().__init__(f"malformed header {header!r}: {detail}")
        self.header = header
        self.detail = detail


class MalformedPayloadError(WebhookError):
    """The body has the wrong type or cannot be interpreted as the scheme requires."""

    reason = "malformed_payload"


class InvalidSignatureError(WebhookError):
    """No signature in the request matches any configured key."""

    reason = "invalid_signature"
    status = 401


class TimestampOutOfRangeError(WebhookError):
    """The signed timestamp is outside the accepted window (too old or in the future)."""

    reason = "timestamp_out_of_range"
    status = 401

    def __init__(self, message: str, *, timestamp: int, now: float) -> None:
        super().__init__(message)
        self.timestamp = timestamp
        self.now = now


class ReplayedMessageError(WebhookError):
    """A message with this id (or signature) was already accepted inside its window."""

    reason = "replayed_message"
    status = 409

    def __init__(self, key: str) -> None:
        super().__init__("message was already received (replay)")
        self.key = key


class WebhookConfigError(WebhookError, ValueError):
    """The scheme itself is misconfigured (empty secret, unknown algorithm, missing extra).

    Raised when a scheme is built or asked to sign, never because of what a sender sent.
    It is also a ``ValueError`` so configuration code that validates settings catches it.
    """

    reason = "configuration_error"
    status = 500
