"""A deadline for the app: past it, the handler is cancelled and the client gets a 504.

The downstream app runs under :func:`asyncio.timeout`, in the same task: on expiry the
handler is really *cancelled* (its ``finally:`` blocks and ``async with`` exits run, its
database query is abandoned), not merely ignored while it keeps running as with a
``wait_for`` on a detached task.

* No response started yet: a ``504`` with the JSON body ``{"detail": "Gateway Timeout"}``.
* The response already started: a status cannot be taken back. The middleware logs a warning
  and raises :class:`ResponseTimeoutError`, so the server aborts the connection and the client
  sees a truncated response rather than a body that looks complete.

Works as app-wide middleware and per route (``Route("/slow", TimeoutMiddleware(endpoint,
seconds=0.2))``); when timeouts nest the earliest deadline wins. The active
:class:`asyncio.Timeout` is ``scope["rws.timeout"]``: a handler that knows it needs longer can
``scope["rws.timeout"].reschedule(asyncio.get_running_loop().time() + 30)``.
"""

from __future__ import annotations

import asyncio
import logging
import math

from rws.http.web.tracking import TrackedSend
from rws.http.web.types import ASGIApp, Receive, Scope, Send

__all__ = ["TIMEOUT_KEY", "ResponseTimeoutError", "TimeoutMiddleware"]

#: Scope key holding the innermost active :class:`asyncio.Timeout`.
TIMEOUT_KEY = "rws.timeout"
_BODY = b'{"detail":"Gateway Timeout"}'
logger = logging.getLogger("rws.http.web.timeout")


class ResponseTimeoutError(TimeoutError):
    """The deadline passed after the response had started; the response is abandoned."""


class TimeoutMiddleware:
    """Cancel ``http`` requests still running after ``seconds`` (other scopes pass through:
    a WebSocket is long-lived by design, and lifespan must not be cut short)."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(f"seconds: expected a finite number > 0, got {seconds!r}")
        self.app = app
        self.seconds = float(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        outer = scope.get(TIMEOUT_KEY)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        try:
            async with asyncio.timeout_at(deadline) as timeout:
                scope[TIMEOUT_KEY] = timeout
                await self.app(scope, receive, tracked)
        except TimeoutError:
            if not timeout.expired():
                raise  # the app's own timeout, not ours
        finally:
            if outer is None:
                scope.pop(TIMEOUT_KEY, None)
            else:
                scope[TIMEOUT_KEY] = outer
        if not timeout.expired():
            return
        # Expired: either cancelled above, or the app swallowed the cancellation and returned.
        path = scope.get("path", "")
        if tracked.started:
            logger.warning(
                "%s %s: timed out after %ss with the response already started; aborting it",
                scope.get("method"),
                path,
                self.seconds,
            )
            raise ResponseTimeoutError(f"response to {path!r} timed out after {self.seconds}s")
        logger.warning("%s %s: timed out after %ss (504)", scope.get("method"), path, self.seconds)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
        ]
        await send({"type": "http.response.start", "status": 504, "headers": headers})
        await send({"type": "http.response.body", "body": _BODY})
