"""Lingering close: end a connection without destroying the answer just written to it.

When a server closes a socket whose receive buffer still holds bytes the client sent (the rest
of a request body it refused with 413, the tail of a malformed request), the kernel answers
with a TCP reset, and a reset can reach the client before it has read the response: curl then
reports "connection reset by peer" instead of the 413. Like nginx's ``lingering_close``, we
half-close (FIN after the response), then read and throw away what still arrives for a short,
bounded time before closing for good.
"""

from __future__ import annotations

import asyncio

from .state import ServerState

#: How long the client gets to take the answer and stop sending, at most.
LINGER_SECONDS = 2.0
#: How much more the client may send meanwhile before we stop being polite.
LINGER_BYTES = 4 * 1024 * 1024


class LingeringClose(asyncio.Protocol):
    """Takes over a transport whose response is written, to close it gently."""

    __slots__ = ("_discarded", "_state", "_timer", "transport")

    def __init__(self, state: ServerState, transport: asyncio.Transport) -> None:
        self._state = state
        self.transport = transport
        self._discarded = 0
        self._timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self.abort)
        state.connections.add(self)
        transport.set_protocol(self)
        if transport.can_write_eof():
            transport.write_eof()
        # else (TLS): the response said ``Connection: close``; the client closes once it has
        # read it, and its EOF ends the wait.
        transport.resume_reading()

    @classmethod
    def start(cls, state: ServerState, transport: asyncio.Transport) -> None:
        """Linger on ``transport`` unless it is closing already."""
        if not transport.is_closing():
            cls(state, transport)

    def data_received(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self.abort()

    def eof_received(self) -> bool:
        return False  # the client is done too: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._state.connections.discard(self)

    # -- Closable ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Nothing is in progress here; the linger timer bounds the wait."""

    def abort(self) -> None:
        self._timer.cancel()
        self._state.connections.discard(self)
        self.transport.close()
