"""HTTP/1.1 (and 1.0) on h11: the asyncio protocol that moves bytes for one connection.

h11 owns the protocol state; this class feeds it bytes, turns its events into
:class:`~rws.http.server.cycle.HTTPCycle` calls and writes what h11 produces. It also adds the
checks h11 leaves to servers (bare LF, obs-fold, Content-Length with Transfer-Encoding, request
line length, header count, body size), the timers (slowloris, keep-alive) and back-pressure in
both directions. A connection that turns out to speak HTTP/2 (ALPN or the h2c preface) or
WebSocket is handed to those protocols on the same transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11

from .access import log_exchange
from .config import Config
from .connection import ConnectionInfo, http_extensions, http_scope
from .cycle import Headers, HTTPCycle
from .linger import LingeringClose
from .state import ServerState, date_header

if TYPE_CHECKING:
    from .proxy_protocol import ProxyResult

logger = logging.getLogger("rws.http.error")

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Reason phrases, encoded once (h11 would otherwise send an empty one).
_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
}


#: Events are immutable: one end-of-message serves every response.
_END = h11.EndOfMessage()
#: Our side's h11 states once a response is completely written.
_ANSWERED = (h11.DONE, h11.MUST_CLOSE)


def _names_any_default(headers: Headers) -> bool:
    """Could the app have set ``server``, ``date`` or ``alt-svc`` itself? (Lengths 4, 6, 7.)"""
    for name, _ in headers:
        size = len(name)
        if 4 <= size <= 7 and name.lower() in (b"date", b"server", b"alt-svc"):
            return True
    return False


def _header_pairs(headers: Any) -> list[tuple[bytes, bytes]]:
    """h11's request headers as a list of ``(lowercase name, value)``.

    Iterating h11's ``Headers`` goes through ``Sequence.__iter__`` and a Python
    ``__getitem__`` per field; its ``_full_items`` list holds the same pairs (with the raw
    name in front), read here directly when present.
    """
    full = getattr(headers, "_full_items", None)
    if full is None:
        return list(headers)
    return [(name, value) for _, name, value in full]


def error_response(status: int, detail: str) -> bytes:
    """A complete ``Connection: close`` response, built without h11 (its state may be broken)."""
    reason = _REASONS.get(status, b"Error")
    body = detail.encode("ascii", "replace") + b"\n"
    head = b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n" % (status, reason)
    return head + b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)


class H11Protocol(asyncio.Protocol):
    """One HTTP/1.x connection.

    ``proxied`` is the PROXY header a TLS listener took off the socket before the handshake
    (see ``proxy_tls``): its client replaces the socket's, and the stream carries no header.
    """

    def __init__(
        self,
        state: ServerState,
        info: ConnectionInfo | None = None,
        *,
        proxied: ProxyResult | None = None,
    ) -> None:
        self.state = state
        self.config: Config = state.config
        self.info = info
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes
        )
        self.transport: asyncio.Transport | None = None
        self.cycle: HTTPCycle | None = None
        self._loop = asyncio.get_event_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._head: bytes = b""
        self._in_head = True
        self._first_data = True
        self._requests = 0
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closing = False
        self._started_at = 0.0
        self._proxy: Any = None
        self._proxied = proxied

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.info is None:
            self.info = ConnectionInfo.from_transport(transport)
            if self._proxied is not None and self._proxied.client is not None:
                self.info.client = self._proxied.client
        transport.set_write_buffer_limits(high=self.config.write_buffer_size)
        self.state.connections.add(self)
        if self.config.proxy_protocol and self._proxied is None:
            from .proxy_protocol import ProxyProtocolParser

            self._proxy = ProxyProtocolParser()
        elif self.info.alpn == "h2":
            self._switch_to_h2(b"")
            return
        self._arm(self.config.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._first_data:
            data = self._first_bytes(data)
            if not data:
                return
        if self._in_head and not self._scan_head(data):
            return
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._handle_events()
        if self.cycle is not None and not self.cycle.complete:
            self.cycle.feed_eof()
        # Keep the write side open while a response is still being produced.
        return self.cycle is not None and not self.cycle.complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._cancel_timer()
        self.state.connections.discard(self)
        if self.cycle is not None and not self.cycle.complete:
            self.cycle.feed_disconnect()
        self._release_drain()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._release_drain()

    # -- the first bytes: PROXY header, HTTP/2 preface ---------------------------------------

    def _first_bytes(self, data: bytes) -> bytes:
        if self._proxy is not None:
            from .proxy_protocol import ProxyProtocolError

            try:
                result = self._proxy.feed(data)
            except ProxyProtocolError as exc:
                logger.info("bad PROXY protocol header from %s: %s", self._peer(), exc)
                self._close()
                return b""
            if result is None:
                return b""
            self._proxy = None
            assert self.info is not None
            if result.client is not None:
                self.info.client = result.client
            data = result.remainder
            if self.info.alpn == "h2":
                self._switch_to_h2(data)
                return b""
            if not data:
                return b""
        self._first_data = False
        if data[:3] == b"PRI" and _H2_PREFACE.startswith(data[: len(_H2_PREFACE)]):
            self._switch_to_h2(data)
            return b""
        return data

    def _switch_to_h2(self, data: bytes) -> None:
        from .http2 import H2Protocol

        assert self.transport is not None and self.info is not None
        self._cancel_timer()
        self.state.connections.discard(self)
        protocol = H2Protocol(self.state, self.info)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if data:
            protocol.data_received(data)

    # -- request heads ------------------------------------------------------------------------

    def _scan_head(self, data: bytes) -> bool:
        """Checks h11 leaves to us, on the bytes of the request head only."""
        head = self._head
        buffer = head + data if head else data
        end = buffer.find(b"\r\n\r\n")
        config = self.config
        if end < 0:
            region = buffer
            if not head:
                # The first bytes of a head that is not complete yet: from now on the whole
                # head must arrive within header_timeout (slowloris), whatever the keep-alive
                # timer said. (A head that arrives whole needs no timer at all.)
                self._arm(config.header_timeout)
            if len(buffer) > config.max_header_bytes:
                line_end = buffer.find(b"\n")
                if line_end < 0 or line_end > config.max_request_line + 1:
                    self._reject(414, "request line too long")
                else:
                    self._reject(431, "request head too large")
                return False
        else:
            region = buffer if end + 4 == len(buffer) else buffer[: end + 4]
            if end + 4 > config.max_header_bytes:
                line_end = region.find(b"\n")
                if line_end > config.max_request_line + 1:
                    self._reject(414, "request line too long")
                else:
                    self._reject(431, "request head too large")
                return False
        line_end = region.find(b"\n")
        limit = config.max_request_line
        if (line_end < 0 and len(region) > limit) or line_end > limit + 1:
            self._reject(414, "request line too long")
            return False
        if region.count(b"\n") != region.count(b"\r\n"):
            self._reject(400, "bare LF in request head")
            return False
        if b"\n " in region or b"\n\t" in region:
            self._reject(400, "obsolete line folding in request head")
            return False
        if end >= 0:
            self._in_head = False
            self._head = b""
        else:
            self._head = buffer
        return True

    def _handle_events(self) -> None:
        conn = self.conn
        while not self._closing:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            kind = type(event)
            if kind is h11.Data:
                self._on_body(event.data)  # type: ignore[union-attr]
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h11.EndOfMessage:
                if self.cycle is not None:
                    trailers = event.headers  # type: ignore[union-attr]
                    if len(trailers) > self.config.max_header_count:
                        self._reject(431, "too many trailer fields")
                        return
                    self.cycle.feed_end(list(trailers) if trailers else None)
            elif event is h11.NEED_DATA:
                return
            elif event is h11.PAUSED:
                # h11 says PAUSED after every complete request while its response is pending.
                # Only bytes already waiting (a pipelined request) are worth pausing the
                # transport for; otherwise pausing would cost two syscalls per request.
                if conn.trailing_data[0]:
                    self._pause_reading()
                return
            else:  # ConnectionClosed
                if self.cycle is None or self.cycle.complete:
                    self._close()
                return

    def _on_request(self, event: h11.Request) -> None:
        self._disarm()
        self._requests += 1
        config = self.config
        if event.http_version not in (b"1.1", b"1.0"):
            self._reject(505, "only HTTP/1.0 and HTTP/1.1 are served here")
            return
        headers = _header_pairs(event.headers)
        if len(headers) > config.max_header_count:
            self._reject(431, "too many header fields")
            return
        length = -1
        chunked = False
        upgrade = None
        for name, value in headers:
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"upgrade":
                upgrade = value.lower()
        if chunked and length >= 0:
            self._reject(400, "both Content-Length and Transfer-Encoding")
            return
        assert self.info is not None
        if upgrade == b"h2c" and length <= 0 and not chunked and self._switch_to_h2c(event):
            return
        websocket = upgrade == b"websocket" and self._is_upgrade(headers)
        scope = http_scope(
            config,
            self.info,
            self.state.lifespan_state,
            method=event.method.decode("ascii"),
            target=event.target,
            headers=headers,
            http_version=event.http_version.decode("ascii"),
            scope_type="websocket" if websocket else "http",
        )
        if websocket:
            self._switch_to_websocket(event, scope)
            return
        scope["extensions"] = http_extensions(config)
        if self.state.access_log is not None:
            self._started_at = time.time()
        # A body announced too large is refused (413) when the app first reads it, before a
        # byte of it is read: the app may raise the limit for this route first.
        cycle = HTTPCycle(
            scope,
            self,
            more_body=True,
            expect_100=self.conn.they_are_waiting_for_100_continue,
            max_body_size=config.max_body_size,
            declared_length=length,
            held_heads=self.state.held_heads,
        )
        self.cycle = cycle
        task = self._loop.create_task(cycle.run(self.state.app))
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    @staticmethod
    def _is_upgrade(headers: Any) -> bool:
        return any(name == b"connection" and b"upgrade" in value.lower() for name, value in headers)

    def _switch_to_h2c(self, event: h11.Request) -> bool:
        """``Upgrade: h2c`` (RFC 7540 3.2) on a body-less cleartext request: go HTTP/2.

        Over TLS (where ALPN is the way), with a body, or without exactly one
        ``HTTP2-Settings`` named in ``Connection``, the upgrade is ignored and the request
        served over HTTP/1.1, as the RFC allows.
        """
        assert self.transport is not None and self.info is not None
        if self.info.tls or self.state.shutting_down:
            return False
        settings = [value for name, value in event.headers if name == b"http2-settings"]
        tokens = {
            token.strip()
            for name, value in event.headers
            if name == b"connection"
            for token in value.lower().split(b",")
        }
        if len(settings) != 1 or not {b"upgrade", b"http2-settings"} <= tokens:
            return False
        from .http2 import H2Protocol

        trailing, _ = self.conn.trailing_data
        try:
            H2Protocol.from_upgrade(
                self.state,
                self.info,
                self.transport,
                settings[0],
                method=event.method.decode("ascii"),
                target=event.target,
                headers=list(event.headers),
                data=bytes(trailing),
            )
        except ValueError as exc:
            logger.debug("ignoring h2c upgrade from %s: %s", self._peer(), exc)
            return False
        # The transport is HTTP/2's now: stop _handle_events and touch it no more.
        self._closing = True
        self._cancel_timer()
        self.state.connections.discard(self)
        return True

    def _switch_to_websocket(self, event: h11.Request, scope: dict[str, Any]) -> None:
        from .websocket import WSProtocol

        assert self.transport is not None and self.info is not None
        self.state.connections.discard(self)
        trailing, _ = self.conn.trailing_data
        protocol = WSProtocol(self.state, self.info, event, scope, bytes(trailing))
        # The transport is the WebSocket's now: stop _handle_events (h11 reports PAUSED next,
        # which would pause reading on it) and touch it no more.
        self._closing = True
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)

    def _on_body(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.complete:
            return
        if not cycle.feed_body(data):
            if cycle.started:
                self._close()
            else:
                cycle.respond(413, b"Request body too large")
            cycle.feed_disconnect()
            return
        if cycle.buffered > self.config.read_buffer_size:
            self._pause_reading()

    # -- ResponseSink ------------------------------------------------------------------------

    def send_informational(self, status: int, headers: Headers) -> None:
        if self._closing or self.transport is None or self.conn.their_http_version == b"1.0":
            return  # an HTTP/1.0 client must not be sent a 1xx (RFC 9110 15.2)
        self.transport.write(
            self.conn.send(
                h11.InformationalResponse(
                    status_code=status, headers=headers, reason=_PHRASES.get(status, b"")
                )
            )
        )

    def send_head(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        if self._closing or self.transport is None:
            return
        state = self.state
        config = self.config
        extra = state.default_headers
        if config.date_header:
            extra = [*extra, (b"date", date_header())]
        if extra:
            if _names_any_default(headers):
                provided = {name.lower() for name, _ in headers}
                extra = [h for h in extra if h[0] not in provided]
            headers = extra + headers
        cap = config.max_requests_per_connection
        if state.shutting_down or (cap and self._requests >= cap):
            headers = [*headers, (b"connection", b"close")]
        conn = self.conn
        try:
            reason = _PHRASES.get(status, b"")
            data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
            if body:
                data += conn.send(h11.Data(data=body))
            if end:
                data += conn.send(_END)
        except h11.LocalProtocolError as exc:
            if self.cycle is not None and self.cycle.started and status != 500:
                # The app's response is invalid; report it to the app (it becomes a 500).
                self.cycle.started = False
                raise RuntimeError(f"invalid HTTP response from the application: {exc}") from None
            self.transport.write(error_response(500, "Internal Server Error"))
            self._close()
            return
        self.transport.write(data)

    def send_data(self, data: bytes, end: bool) -> None:
        if self._closing or self.transport is None:
            return
        conn = self.conn
        try:
            out = conn.send(h11.Data(data=data)) if data else b""
            if end:
                out += conn.send(_END)
        except h11.LocalProtocolError as exc:
            self._close()
            raise RuntimeError(f"invalid response body: {exc}") from None
        self.transport.write(out)

    def send_trailers(self, headers: Headers) -> None:
        if self._closing or self.transport is None:
            return
        conn = self.conn
        try:
            out = conn.send(h11.EndOfMessage(headers=headers))
        except h11.LocalProtocolError:
            # Not chunked (HTTP/1.0 or a Content-Length was given): trailers cannot be sent.
            out = conn.send(_END)
        self.transport.write(out)

    async def drain(self) -> None:
        if not self._writing_paused or self._closing:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = self._loop.create_future()
        await waiter

    def body_consumed(self, size: int) -> None:
        cycle = self.cycle
        if (
            self._reading_paused
            and cycle is not None
            and cycle.buffered <= self.config.read_buffer_size // 2
        ):
            self._resume_reading()

    def abort(self) -> None:
        self._close()

    def done(self, cycle: HTTPCycle) -> None:
        if self.state.access_log is not None:
            log_exchange(self.state, cycle, self._started_at)
        if self._closing:
            return
        conn = self.conn
        cap = self.config.max_requests_per_connection
        if (
            conn.our_state is not h11.DONE
            or conn.their_state is not h11.DONE
            or self.state.shutting_down
            or (cap and self._requests >= cap)
        ):
            # A request body left unread, an error, Connection: close, HTTP/1.0: close.
            self._close(linger=conn.our_state in _ANSWERED and conn.their_state is h11.SEND_BODY)
            return
        conn.start_next_cycle()
        self.cycle = None
        self._in_head = True
        trailing, _ = conn.trailing_data
        if trailing:
            # Pipelined requests already received: check and start the next one now.
            if not self._scan_head(bytes(trailing)):
                return
            self._handle_events()
        else:
            self._arm(self.config.keep_alive_timeout)
        self._resume_reading()

    # -- helpers ------------------------------------------------------------------------------

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        status = exc.error_status_hint
        detail = str(exc)
        if "buffer" in detail.lower() or "too long" in detail.lower():
            status, detail = 431, "request head too large"
        self._reject(status, detail)

    def _reject(self, status: int, detail: str) -> None:
        """Answer a request the server refuses before the app sees it, then close."""
        logger.debug("rejecting request from %s: %d %s", self._peer(), status, detail)
        if self.transport is not None and not self._closing:
            cycle = self.cycle
            if cycle is None or not cycle.started:
                self.transport.write(error_response(status, detail))
                self._close(linger=True)
                return
        self._close()

    def _close(self, *, linger: bool = False) -> None:
        """Close the connection; ``linger``: a complete answer was written, let it arrive."""
        if self._closing:
            return
        self._closing = True
        self._cancel_timer()
        if self.cycle is not None and not self.cycle.complete:
            self.cycle.feed_disconnect()
        if self.transport is not None:
            if linger:
                self.state.connections.discard(self)
                LingeringClose.start(self.state, self.transport)
            else:
                self.transport.close()
        self._release_drain()

    # One timer per connection serves the header and keep-alive timeouts. Re-arming only
    # moves ``_deadline``; the handle is replaced only when the new deadline is earlier than
    # it, and a timer that fires before the deadline re-schedules itself for the rest. Two
    # timer handles created and cancelled per request otherwise cost ~3 % of a small request.

    def _arm(self, timeout: float) -> None:
        deadline = self._loop.time() + timeout
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        """No timeout runs now (a request is in progress); the handle stays for reuse."""
        self._deadline = 0.0

    def _cancel_timer(self) -> None:
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if not deadline:
            return
        if deadline > self._loop.time():
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._deadline = 0.0
        if self.cycle is None or self.cycle.complete:
            self._close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = False
            self.transport.resume_reading()

    def _release_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _peer(self) -> str:
        client = self.info.client if self.info is not None else None
        return f"{client[0]}:{client[1]}" if client else "unix socket"

    # -- shutdown -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.complete:
            self._close()
        # else: the response in progress gets Connection: close and the connection ends.
