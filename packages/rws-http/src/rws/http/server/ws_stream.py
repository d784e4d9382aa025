"""The asyncio transport a WebSocket writes to when it rides on an HTTP/2 or HTTP/3 stream.

:class:`~rws.http.server.websocket.WSProtocol` is written against an asyncio transport. Over
an extended CONNECT (RFC 8441, RFC 9220) its bytes travel on one request stream instead, so
this transport maps the transport calls onto a :class:`WSStream`: writing sends DATA,
closing ends the stream, aborting resets it, pausing reading withholds flow-control credit
where the protocol allows. What differs between HTTP/2 and HTTP/3 (how much is unsent, how
the stream is reset, how held credit is given back) is the stream's to say.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class _WebSocket(Protocol):
    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class WSStream(Protocol):
    """What a protocol's WebSocket-carrying stream provides to :class:`StreamTransport`."""

    ws: Any
    closed: bool
    app_done: bool
    reading_paused: bool
    waiter: asyncio.Future[None] | None

    def send_data(self, data: bytes, end: bool) -> None: ...

    def peer_transport(self) -> asyncio.BaseTransport | None:
        """The connection's own transport (addresses, TLS facts)."""

    def write_backlog(self) -> int:
        """Unsent bytes that should hold the WebSocket's writing back (0: none)."""

    def drain_waiter(self) -> asyncio.Future[None]:
        """A future the protocol resolves once the stream has sent enough."""

    def drain_done(self, waiter: asyncio.Future[None]) -> None:
        """``waiter`` is resolved: stop tracking it."""

    def cancel(self) -> None:
        """Reset the stream now (RST_STREAM / RESET_STREAM with the protocol's code)."""

    def release_held(self) -> None:
        """Reading resumed: give back the flow-control credit held while it was paused."""

    def retire(self) -> None:
        """The stream is over for its protocol and for the WebSocket: forget it."""


class StreamTransport(asyncio.Transport):
    """The transport :class:`~rws.http.server.websocket.ConnectWSProtocol` is given."""

    def __init__(self, stream: WSStream) -> None:
        super().__init__()
        self._stream = stream
        self._closing = False
        self._lost = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._stream.peer_transport()
        return default if transport is None else transport.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        stream = self._stream
        if self._closing or stream.closed:
            return
        stream.send_data(bytes(data), False)
        self.hold_if_full()

    def hold_if_full(self) -> None:
        """Past the buffer limit: pause the WebSocket's writing until the stream drains."""
        stream = self._stream
        if stream.waiter is None and not stream.closed and stream.write_backlog():
            waiter = stream.waiter = stream.drain_waiter()
            waiter.add_done_callback(self._drained)
            stream.ws.pause_writing()

    def _drained(self, waiter: asyncio.Future[None]) -> None:
        stream = self._stream
        if stream.waiter is waiter:
            stream.waiter = None
            stream.drain_done(waiter)
        stream.ws.resume_writing()

    def is_closing(self) -> bool:
        return self._closing or self._stream.closed

    def close(self) -> None:
        """End the stream once what is queued is sent."""
        if self._closing:
            return
        self._closing = True
        stream = self._stream
        if not stream.closed:
            stream.send_data(b"", True)
        asyncio.get_running_loop().call_soon(self.lost)

    def abort(self) -> None:
        """Reset the stream now."""
        self._closing = True
        self._stream.cancel()
        self.lost()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._stream.write_backlog()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # the connection's write_buffer_size applies per stream

    def is_reading(self) -> bool:
        return not self._stream.reading_paused

    def pause_reading(self) -> None:
        self._stream.reading_paused = True

    def resume_reading(self) -> None:
        stream = self._stream
        stream.reading_paused = False
        stream.release_held()

    def lost(self) -> None:
        """The stream is over for the WebSocket: its ``connection_lost``."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        stream = self._stream
        stream.app_done = True
        stream.ws.connection_lost(None)
        if stream.closed:
            stream.retire()
