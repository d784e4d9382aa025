"""The ASGI lifespan protocol: startup before serving, shutdown after the last request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .config import LifespanMode
from .cycle import ASGIApp, Message

logger = logging.getLogger("rws.http.error")


class LifespanError(RuntimeError):
    """Startup or shutdown failed; the server must not serve (or exits non-zero)."""


class Lifespan:
    """Runs the app's lifespan coroutine alongside the server.

    In ``auto`` mode an app that raises before answering the first lifespan message is taken
    not to support lifespan (as Uvicorn does) and the server starts without it.
    """

    def __init__(self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any]) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._supported = True
        self._answered = False

    async def startup(self) -> None:
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._to_app.put({"type": "lifespan.startup"})
        failure = await self._startup
        if failure is not None:
            raise LifespanError(f"application startup failed: {failure}")

    async def shutdown(self) -> None:
        if self._task is None or not self._supported:
            return
        assert self._shutdown is not None
        await self._to_app.put({"type": "lifespan.shutdown"})
        failure = await self._shutdown
        if failure is not None:
            raise LifespanError(f"application shutdown failed: {failure}")

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            if not self._answered and self.mode == "auto":
                self._supported = False
                logger.info("the application does not support lifespan (%r); continuing", exc)
                self._settle(self._startup, None)
                self._settle(self._shutdown, None)
                return
            logger.error("exception in the lifespan protocol", exc_info=exc)
            self._settle(self._startup, repr(exc))
            self._settle(self._shutdown, repr(exc))
            return
        # The app returned: whatever was not answered is considered done (or unsupported).
        if not self._answered and self.mode == "on":
            self._settle(self._startup, "the application returned without answering startup")
        self._settle(self._startup, None)
        self._settle(self._shutdown, None)

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if not kind.startswith("lifespan."):
            # Not a lifespan app at all (it answered as if this were HTTP).
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
        self._answered = True
        if kind == "lifespan.startup.complete":
            self._settle(self._startup, None)
        elif kind == "lifespan.startup.failed":
            self._settle(self._startup, message.get("message", "") or "startup failed")
        elif kind == "lifespan.shutdown.complete":
            self._settle(self._shutdown, None)
        elif kind == "lifespan.shutdown.failed":
            self._settle(self._shutdown, message.get("message", "") or "shutdown failed")
        else:
            raise RuntimeError(f"unexpected lifespan message {kind!r}")

    @staticmethod
    def _settle(future: asyncio.Future[str | None] | None, value: str | None) -> None:
        if future is not None and not future.done():
            future.set_result(value)
