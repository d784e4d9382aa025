"""PROXY protocol on a TLS listener: take the cleartext header off the socket, then run TLS.

An L4 balancer that passes TLS through (HAProxy ``send-proxy``/``send-proxy-v2`` in TCP
mode, AWS NLB) writes its PROXY header in cleartext before the client's TLS ClientHello. The
header has to come off the raw TCP stream before the handshake starts, and not one byte
more: everything after it belongs to TLS.

Why the header is read from the socket here, before asyncio makes a transport of it:

* A transport reads whatever the kernel has, up to 256 KiB at a time. A balancer may send the
  header and the start of the ClientHello in one segment, so a protocol that parsed the header
  would usually also hold part of the handshake, and ``loop.start_tls`` cannot be given bytes
  already read: they would be lost. Handing them to TLS anyway means driving
  ``asyncio.sslproto`` (private) or wrapping the transport, both tied to asyncio internals.
* So the listener here accepts connections itself and, on each new socket, looks at the
  queued bytes with ``MSG_PEEK`` and consumes with ``recv`` only those that
  :func:`~rws.http.server.proxy_protocol.header_length` says are header: up to the first LF
  for v1, the 16 fixed bytes and then exactly the length they announce for v2. The ClientHello
  stays in the kernel's buffer, and the socket goes to ``loop.connect_accepted_socket`` with
  the server's TLS context: the public API, and the same handshake ``create_server(ssl=...)``
  runs. HTTP/1.1, HTTP/2 (ALPN) and WebSocket then work as on any TLS listener, with the
  header's client in ``scope["client"]`` and the access log.
* Peeked bytes stay readable, so a level-triggered selector would wake again at once for
  them. Every wake-up here consumes at least one byte of header or ends the read, so a sender
  that trickles its header costs a wake-up per segment, never a busy loop.

Bounds, as on a cleartext PROXY listener: the header must be complete within
``header_timeout``, at most :data:`~rws.http.server.proxy_protocol.MAX_HEADER_BYTES` are
ever peeked or held (the parser refuses a v1 line past 107 bytes and a v2 header past its
cap), and a bad header is logged at INFO and closes the connection. The TLS handshake then
gets its own ``header_timeout``, as on every TLS listener, and the request head another.

Reading a socket before asyncio does needs ``loop.add_reader``: asyncio's selector loops
and uvloop have it, the Windows proactor loop does not.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import ssl
from typing import Any, Final

from .http11 import H11Protocol
from .proxy_protocol import (
    MAX_HEADER_BYTES,
    ProxyProtocolError,
    ProxyProtocolParser,
    ProxyResult,
    header_length,
)
from .state import ServerState

__all__ = ["ProxyTLSListener", "read_proxy_header"]

logger = logging.getLogger("rws.http.error")

#: accept() errors that mean "out of descriptors or memory": stop accepting for a while, as
#: asyncio's own servers do (its ACCEPT_RETRY_DELAY is 1 s), instead of failing on every
#: wake-up of a listener the kernel keeps reporting as ready.
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_RETRY_DELAY: Final = 1.0


class ProxyTLSListener:
    """Serves one listening socket: the PROXY header, then TLS, then HTTP.

    It takes the place of the ``asyncio.Server`` that ``create_server(ssl=...)`` would return:
    :meth:`close` stops accepting, closes the listening socket and drops the connections that
    have not finished their header and handshake yet (no request is in flight on them);
    :meth:`wait_closed` waits until those are gone. Connections past the handshake belong to
    their protocol and ``ServerState.connections``, as on any other listener.
    """

    def __init__(self, state: ServerState, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._state = state
        self._sock: socket.socket | None = sock
        self._context = context
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task[None]] = set()
        self._retry: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start accepting; raises ``RuntimeError`` on a loop without ``add_reader``."""
        try:
            self._listen()
        except NotImplementedError:
            raise RuntimeError(
                "proxy_protocol with TLS reads the PROXY header before the handshake, which "
                "needs an event loop with add_reader (asyncio's selector loop or uvloop)"
            ) from None

    def close(self) -> None:
        """Stop accepting and close the listening socket; drop connections before TLS."""
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._loop.remove_reader(sock.fileno())
        sock.close()
        for task in self._pending:
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the connections dropped by :meth:`close` are gone."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    # -- accepting --------------------------------------------------------------------------

    def _listen(self) -> None:
        self._retry = None
        if self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        # Several connections may be queued per wake-up; take up to a backlog's worth.
        for _ in range(self._state.config.backlog):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    logger.error(
                        "cannot accept connections: %s; trying again in %.0f s",
                        exc,
                        _ACCEPT_RETRY_DELAY,
                    )
                    self._loop.remove_reader(sock.fileno())
                    self._retry = self._loop.call_later(_ACCEPT_RETRY_DELAY, self._listen)
                else:
                    logger.error("cannot accept a connection: %s", exc)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._serve(conn, _peer(address)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        header = await self._read_header(conn, peer)
        if header is None:
            return
        config = self._state.config
        try:
            # From here asyncio owns the socket: it closes it if the handshake fails.
            await self._loop.connect_accepted_socket(
                functools.partial(H11Protocol, self._state, proxied=header),
                conn,
                ssl=self._context,
                ssl_handshake_timeout=config.header_timeout,
            )
        except OSError as exc:  # ssl.SSLError, a reset, the handshake timeout
            logger.debug("TLS handshake with %s failed: %s", peer, exc)
        except Exception:
            logger.exception("cannot start TLS with %s", peer)

    async def _read_header(self, conn: socket.socket, peer: str) -> ProxyResult | None:
        """The connection's PROXY header, or ``None`` after closing the connection."""
        timeout = self._state.config.header_timeout
        try:
            async with asyncio.timeout(timeout):
                header = await read_proxy_header(self._loop, conn)
        except ProxyProtocolError as exc:
            logger.info("bad PROXY protocol header from %s: %s", peer, exc)
        except TimeoutError:
            logger.debug("no complete PROXY protocol header from %s in %ss", peer, timeout)
        except OSError as exc:
            logger.debug("connection from %s lost before its PROXY header: %s", peer, exc)
        except BaseException:
            conn.close()
            raise
        else:
            if header is not None:
                return header
            logger.debug("connection from %s closed before its PROXY header", peer)
        conn.close()
        return None


async def read_proxy_header(
    loop: asyncio.AbstractEventLoop, sock: socket.socket
) -> ProxyResult | None:
    """Consume exactly the PROXY header at the start of ``sock``, a non-blocking stream socket.

    Returns the parsed header (its ``remainder`` is always empty: what follows is still on the
    socket), or ``None`` when the peer closed before the header was complete. Raises
    :class:`ProxyProtocolError` for a bad header and ``OSError`` for a broken connection.
    It does not bound the time it waits: the caller does.
    """
    parser = ProxyProtocolParser()
    seen = b""
    while True:
        try:
            queued = sock.recv(MAX_HEADER_BYTES - len(seen), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            await _readable(loop, sock)
            continue
        if not queued:
            return None
        # recv() after a peek of at least as many bytes returns them all (a stream socket
        # keeps what was peeked); a short read would only mean another turn of the loop.
        chunk = sock.recv(header_length(seen + queued) - len(seen))
        seen += chunk
        result = parser.feed(chunk)
        if result is not None:
            assert not result.remainder, "header_length() and the parser disagree"
            return result


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    fd = sock.fileno()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _peer(address: Any) -> str:
    """``host:port`` of an accepted connection, as the HTTP protocols log their peers."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "unix socket"
