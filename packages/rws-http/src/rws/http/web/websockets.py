"""The WebSocket connection as an object: accept, send and receive text/bytes/JSON, close.

The state machine is ASGI's: ``connecting`` until ``accept()`` (or a close/denial),
``connected`` until either side closes. Misuse (sending before accepting, accepting twice)
raises RuntimeError at the call, not a protocol error somewhere inside the server.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from .encoding import dumps
from .requests import HTTPConnection
from .types import Message, Receive, Scope, Send

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketState"]


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2


class WebSocketDisconnect(Exception):  # noqa: N818 (Starlette's name)
    """The peer closed the connection (``code``, ``reason`` as it sent them)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}" if reason else str(code))


class WebSocket(HTTPConnection):
    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"WebSocket needs a websocket scope, not {scope['type']!r}")
        super().__init__(scope, receive)
        self._send = send
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING

    @property
    def subprotocols(self) -> list[str]:
        protocols: list[str] = self.scope.get("subprotocols", [])
        return protocols

    async def receive(self) -> Message:
        """The next ASGI message; the first is ``websocket.connect`` (read by ``accept``)."""
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError("the WebSocket is closed; nothing more will be received")
        message = await self._receive()
        kind = message["type"]
        if kind == "websocket.connect":
            return message
        if kind == "websocket.disconnect":
            self.client_state = WebSocketState.DISCONNECTED
        elif self.client_state is WebSocketState.CONNECTING:
            self.client_state = WebSocketState.CONNECTED
        return message

    async def send(self, message: Message) -> None:
        if self.application_state is WebSocketState.DISCONNECTED:
            raise RuntimeError("the WebSocket is closed; nothing more can be sent")
        kind = message["type"]
        if self.application_state is WebSocketState.CONNECTING:
            if kind == "websocket.accept":
                self.application_state = WebSocketState.CONNECTED
            elif kind in ("websocket.close", "websocket.http.response.start"):
                self.application_state = WebSocketState.DISCONNECTED
            else:
                raise RuntimeError(f"{kind!r} before websocket.accept")
        elif kind == "websocket.close":
            self.application_state = WebSocketState.DISCONNECTED
        elif kind == "websocket.accept":
            raise RuntimeError("the WebSocket was already accepted")
        await self._send(message)

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        if self.client_state is WebSocketState.CONNECTING:
            message = await self._receive()  # websocket.connect
            if message["type"] == "websocket.disconnect":
                self.client_state = WebSocketState.DISCONNECTED
                raise WebSocketDisconnect(message.get("code", 1006))
            self.client_state = WebSocketState.CONNECTED
        raw = [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers]
        await self.send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw})

    def _data(self, message: Message, key: str) -> Any:
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        value = message.get(key)
        if value is None:
            other = "bytes" if key == "text" else "text"
            raise TypeError(f"expected a {key} frame, got {other}")
        return value

    async def receive_text(self) -> str:
        text: str = self._data(await self.receive(), "text")
        return text

    async def receive_bytes(self) -> bytes:
        data: bytes = self._data(await self.receive(), "bytes")
        return data

    async def receive_json(self, mode: str = "text") -> Any:
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            self._data(message, "text")
        raw = message.get("text") if mode == "text" else message.get("bytes")
        if raw is None:
            raw = message.get("bytes") or message.get("text") or ""
        return json.loads(raw)

    async def iter_text(self) -> AsyncIterator[str]:
        """Text frames until the peer closes (the close ends the loop, it does not raise)."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            return

    async def iter_json(self) -> AsyncIterator[Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            return

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, mode: str = "text") -> None:
        encoded = dumps(data)
        if mode == "binary":
            await self.send({"type": "websocket.send", "bytes": encoded})
        else:
            await self.send({"type": "websocket.send", "text": encoded.decode("utf-8")})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.send({"type": "websocket.close", "code": code, "reason": reason or ""})
