"""Verify webhooks before an ASGI app sees them.

The middleware reads the body once (bounded by ``max_body_size``), verifies it, and hands
the very same bytes to the app through a replayed ``receive``, so the app can still call
``await request.body()``. Failures are answered here with the scheme's status and a JSON
reason; the app is never called for a request that did not verify.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from .errors import WebhookConfigError, WebhookError
from .result import Verified
from .scheme import Scheme

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Scope key under which the app finds the :class:`Verified` result.
SCOPE_KEY = "rws.webhook"
#: Default body limit. GitHub caps payloads at 25 MB; most providers stay far below 1 MB.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024

logger = logging.getLogger("rws.webhook")


class _BodyTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def request_url(scope: Scope, public_url: str | None = None) -> str:
    """The absolute URL of the request, as the sender addressed it.

    Behind a TLS-terminating proxy the scope says ``http`` and an internal host, so schemes
    that sign the URL (Twilio) need ``public_url``, e.g. ``"https://example.com"``.
    """
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    target = raw_path.decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    if public_url is not None:
        return public_url.rstrip("/") + target
    host = None
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            break
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{target}"


async def _respond(send: Send, status: int, payload: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WebhookMiddleware:
    """ASGI middleware that lets only verified webhooks through to ``app``.

    ``paths`` limits verification to those exact paths (others pass straight through);
    ``None`` verifies every HTTP request, which suits wrapping a single endpoint. The app
    finds the :class:`Verified` result in ``scope["rws.webhook"]``. If the app fails (raises
    or answers 5xx) the message is forgotten by the seen-store, so the sender's retry is
    accepted instead of being refused as a replay.
    """

    def __init__(
        self,
        app: ASGIApp,
        scheme: Scheme,
        *,
        paths: Collection[str] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        public_url: str | None = None,
    ) -> None:
        if not isinstance(scheme, Scheme):
            raise WebhookConfigError("scheme must be a rws.webhook scheme, e.g. GitHub(secret)")
        if max_body_size < 0:
            raise WebhookConfigError("max_body_size must be >= 0")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise WebhookConfigError("public_url must start with http:// or https://")
        self.app = app
        self.scheme = scheme
        self.paths = None if paths is None else frozenset(paths)
        self.max_body_size = max_body_size
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.paths is not None and scope["path"] not in self.paths):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._body(scope, receive)
        except _BodyTooLargeError:
            await _respond(send, 413, {"error": "payload_too_large"})
            return
        except _ClientGoneError:
            return
        try:
            verified = await self.scheme.averify(
                body, scope["headers"], url=request_url(scope, self.public_url)
            )
        except WebhookConfigError:
            logger.exception("webhook scheme %s is misconfigured", self.scheme.name)
            await _respond(send, 500, {"error": "configuration_error"})
            return
        except WebhookError as exc:
            logger.info("rejected %s webhook on %s: %s", self.scheme.name, scope["path"], exc)
            await _respond(send, exc.status, {"error": exc.reason, "detail": exc.message})
            return
        await self._call_app(scope, body, receive, send, verified)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                # Refuse before reading when the sender announces too much.
                if value.isdigit() and int(value) > self.max_body_size:
                    raise _BodyTooLargeError
                break
        return await _read_body(receive, self.max_body_size)

    async def _call_app(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, verified: Verified
    ) -> None:
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        child = dict(scope)
        child[SCOPE_KEY] = verified
        try:
            await self.app(child, replay, watch)
        except BaseException:
            await self.scheme.aforget(verified)
            raise
        if status >= 500 or status == 0:
            await self.scheme.aforget(verified)


def verify_webhook(
    scheme: Scheme,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    public_url: str | None = None,
) -> Callable[[ASGIApp], WebhookMiddleware]:
    """Decorator form: ``@verify_webhook(GitHub(secret))`` on an ASGI endpoint."""

    def decorate(app: ASGIApp) -> WebhookMiddleware:
        return WebhookMiddleware(app, scheme, max_body_size=max_body_size, public_url=public_url)

    return decorate
