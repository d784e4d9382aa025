"""Verify and sign webhooks: GitHub, Stripe, Shopify, Slack, Standard Webhooks, Twilio, HMAC.

Stdlib only (Ed25519 ``v1a`` keys need the ``[ed25519]`` extra). Every scheme has the same
shape::

    from rws.webhook import GitHub, WebhookError

    scheme = GitHub(secret)
    try:
        scheme.verify(body, headers)      # -> Verified, or raises a WebhookError subclass
    except WebhookError as exc:
        return 400, exc.reason

    scheme.sign(body)                      # -> the headers to send
"""

from .asgi import WebhookMiddleware, verify_webhook
from .errors import (
    InvalidSignatureError,
    MalformedHeaderError,
    MalformedPayloadError,
    MissingHeaderError,
    ReplayedMessageError,
    TimestampOutOfRangeError,
    WebhookConfigError,
    WebhookError,
)
from .hmac_scheme import GitHub, HmacScheme, Shopify, Slack
from .replay import AsyncSeenStore, MemorySeenStore, SeenStore
from .result import Verified
from .scheme import Scheme
from .standard import StandardWebhooks
from .stripe import Stripe
from .twilio import Twilio

__all__ = [
    "AsyncSeenStore",
    "GitHub",
    "HmacScheme",
    "InvalidSignatureError",
    "MalformedHeaderError",
    "MalformedPayloadError",
    "MemorySeenStore",
    "MissingHeaderError",
    "ReplayedMessageError",
    "Scheme",
    "SeenStore",
    "Shopify",
    "Slack",
    "StandardWebhooks",
    "Stripe",
    "TimestampOutOfRangeError",
    "Twilio",
    "Verified",
    "WebhookConfigError",
    "WebhookError",
    "WebhookMiddleware",
    "verify_webhook",
]
