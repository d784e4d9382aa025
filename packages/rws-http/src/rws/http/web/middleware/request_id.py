"""A request id for every request: taken from the client (or the proxy in front) when it looks
sane, generated otherwise, echoed on the response and made visible to handlers and logs.

The incoming id is only trusted if it is at most :data:`MAX_LENGTH` visible ASCII characters
(``!`` to ``~``): an id is copied into every log line, so anything else (spaces, control
characters, newlines forging log lines, megabyte headers) is replaced by a fresh one.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable

from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_LENGTH", "RequestIdLogFilter", "RequestIdMiddleware", "request_id_var"]

#: Longest incoming id accepted; longer ones are replaced (200 fits any UUID, ULID or trace id).
MAX_LENGTH = 200
_VALID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_LENGTH)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: The current request's id, for code that has no scope at hand (logging, outgoing calls).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rws_request_id", default=None
)


def _uuid4_hex() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give each ``http`` and ``websocket`` request an id (``lifespan`` passes through).

    ``header``: the request and response header carrying it (default ``X-Request-Id``).
    ``trust_incoming``: reuse a valid id sent by the client (default ``True``: right behind a
    proxy that sets it; set ``False`` on an edge server whose clients should not choose ids
    in your logs). ``generator``: makes new ids (default: ``uuid4().hex``).

    Handlers read it as ``scope["state"]["request_id"]``; log records get it through
    :class:`RequestIdLogFilter`. WebSocket handshakes get the header on the accept.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "X-Request-Id",
        trust_incoming: bool = True,
        generator: Callable[[], str] = _uuid4_hex,
    ) -> None:
        if not isinstance(header, str) or not _TOKEN.fullmatch(header):
            raise ValueError(f"header: {header!r} is not a valid header name")
        if not callable(generator):
            raise ValueError(f"generator: expected a callable returning str, got {generator!r}")
        self.app = app
        self.header = header.lower().encode("ascii")
        self.trust_incoming = trust_incoming
        self.generator = generator

    def request_id(self, scope: Scope) -> str:
        if self.trust_incoming:
            for key, value in scope["headers"]:
                if key.lower() == self.header:
                    if _VALID.fullmatch(value):
                        return bytes(value).decode("ascii")
                    break
        generated = self.generator()
        if not (
            isinstance(generated, str)
            and generated.isascii()
            and _VALID.fullmatch(generated.encode("ascii"))
        ):
            raise ValueError(f"generator returned an invalid request id: {generated!r}")
        return generated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = self.request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        start = "http.response.start" if scope["type"] == "http" else "websocket.accept"
        encoded = request_id.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == start:
                headers = [
                    (key, value)
                    for key, value in message.get("headers", ())
                    if bytes(key).lower() != self.header
                ]
                headers.append((self.header, encoded))
                message["headers"] = headers
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` (``default`` outside a request) so formats can use
    ``%(request_id)s``. Attach it to a handler: it then covers every logger's records."""

    def __init__(self, name: str = "", default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = request_id_var.get()
            record.request_id = self.default if request_id is None else request_id
        return True
