"""WebSocket (RFC 6455) on wsproto, served to the app as the ASGI ``websocket`` scope.

:class:`~rws.http.server.http11.H11Protocol` parses the upgrade request, builds the scope and
hands the transport to :class:`WSProtocol`. wsproto owns the protocol state; this module moves
bytes, turns wsproto events into ASGI messages and back, and adds what wsproto leaves to servers:
the ASGI handshake (accept, close-before-accept as 403, the ``websocket.http.response`` denial
extension), message size limits, keep-alive pings, back-pressure and shutdown.
:class:`ConnectWSProtocol` is the same over an HTTP/2 (RFC 8441) or HTTP/3 (RFC 9220) stream
opened by an extended CONNECT: only the handshake differs.

The handshake. The request is already parsed by h11, so the server side is driven with
wsproto's :meth:`~wsproto.WSConnection.initiate_upgrade_connection`, the entry point wsproto
provides for exactly that case: it re-serialises the parsed request once into its own h11
connection, and from then on wsproto validates the handshake (``Sec-WebSocket-Key``, version
13, answering 426 otherwise, ``Host``, the ``Connection``/``Upgrade`` tokens), negotiates
permessage-deflate, writes the 101, and writes denial responses with h11's header validation.
The cost is one header round trip per connection; computing ``Sec-WebSocket-Accept`` by hand
and driving wsproto's lower-level ``Connection`` would duplicate all of that here.

Closing. Close codes follow RFC 6455 7.4.1: a server shutdown sends **1001 Going Away**, the
code the RFC defines for "a server going down". 1012 (Service Restart) exists only in the IANA
registry and promises the service is coming back, which a server told to stop cannot know (it
may be a scale-down or a decommission); clients treat 1001 as reconnectable all the same.
Frames the peer gets wrong *fail* the connection (RFC 6455 7.1.7) with wsproto's code, 1002 or
1007; a message over ``ws_max_message_size`` fails it with 1009; a peer that does not answer a
keep-alive ping within ``ws_ping_timeout`` gets 1011 and is dropped at once. After the other
failures the server sends its Close frame, half-closes and discards input until the peer closes
(or :data:`CLOSE_TIMEOUT`), so unread input cannot turn the close into a TCP reset that destroys
the Close frame in flight. The application always receives ``websocket.disconnect`` with the code
the connection ended with: the peer's (1005 when its Close frame had none), the one the server
or the app sent, or 1006 when the transport was lost without a Close frame.

ASGI 2.4: ``send()`` on a closed WebSocket raises :class:`ClientDisconnected`, an
:class:`OSError`; the server does not log it when it escapes the app. ``receive()`` after the
disconnect returns the disconnect again.

Compression: permessage-deflate (RFC 7692) is accepted when the client offers it, unless
``ws_per_message_deflate`` is off; :mod:`.ws_deflate` negotiates it and inflates what arrives
with a bound, so a compressed message is failed with 1009 as soon as it inflates past
``ws_max_message_size`` (a "zip bomb" never inflates further).

Limits: ``ws_max_message_size`` (reassembled size, UTF-8 bytes for text, after decompression);
received messages wait for the app in a queue bounded by ``read_buffer_size`` bytes and
:data:`MAX_QUEUED_MESSAGES` messages, beyond which the server stops reading from the client;
``send()`` waits while more than ``write_buffer_size`` bytes are unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections import deque
from http import HTTPStatus
from typing import Any, Protocol

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.extensions import Extension
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError, ProtocolError, RemoteProtocolError

from .access import log_request
from .connection import ConnectionInfo
from .cycle import Headers, Message
from .http11 import error_response
from .state import ServerState, date_header
from .ws_deflate import BoundedDeflate

__all__ = [
    "CLOSE_TIMEOUT",
    "MAX_QUEUED_MESSAGES",
    "ClientDisconnected",
    "ConnectChannel",
    "ConnectWSProtocol",
    "WSProtocol",
]

logger = logging.getLogger("rws.http.error")

#: Seconds the peer gets to answer our Close frame (or to close after a failure) before the
#: connection is dropped; the websockets library's default ``close_timeout`` too.
CLOSE_TIMEOUT = 10.0
#: Received messages waiting for the app before the server stops reading from the client
#: (``read_buffer_size`` bounds their bytes). A count as well as a size, because many tiny
#: messages cost far more memory than their payload.
MAX_QUEUED_MESSAGES = 64

_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
_DISCONNECT = "websocket.disconnect"


class ClientDisconnected(OSError):  # noqa: N818 - the name ASGI servers use for it
    """``send()`` on a WebSocket that is closed (ASGI spec 2.4 asks for an ``OSError``)."""


class _Phase(enum.Enum):
    HANDSHAKE = "handshake"  # the app has not answered websocket.connect yet
    DENYING = "denying"  # the app answers with an HTTP response (denial extension)
    OPEN = "open"
    CLOSING = "closing"  # our Close frame is out; waiting for the peer's
    CLOSED = "closed"  # closing handshake done, connection failed, or transport lost


def _sendable_close_code(code: int) -> bool:
    """Codes an endpoint may put in a Close frame (RFC 6455 7.4, IANA registry)."""
    return code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _with_reason(data: bytes, status: int) -> bytes:
    """h11 (inside wsproto) writes ``HTTP/1.1 403 \\r\\n``; put the reason phrase back."""
    bare = b"HTTP/1.1 %d \r\n" % status
    phrase = _PHRASES.get(status)
    if phrase is None or not data.startswith(bare):
        return data
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase) + data[len(bare) :]


class WSProtocol(asyncio.Protocol):
    """One WebSocket connection, from the upgrade request to the end of the closing handshake."""

    def __init__(
        self,
        state: ServerState,
        info: ConnectionInfo,
        request: h11.Request | None,
        scope: dict[str, Any],
        trailing: bytes,
    ) -> None:
        self.state = state
        self.config = state.config
        self.info = info
        #: The HTTP/1.1 upgrade request (None for a subclass with a handshake of its own).
        self.request = request
        self.scope = scope
        self._upgrade = WSConnection(ConnectionType.SERVER)
        #: The frame layer: wsproto's handshake object for HTTP/1.1, its post-handshake
        #: ``Connection`` where another protocol carried the handshake.
        self.conn: WSConnection | Connection = self._upgrade
        self._did_accept = False
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._phase = _Phase.HANDSHAKE
        self._can_respond = False  # wsproto has seen the request and can answer it
        #: Bytes received and not yet handed to wsproto (sent early, or held by back-pressure).
        self._pending = bytearray(trailing)
        self._processing = False
        # The message being reassembled from its frames (text or bytes), and its size.
        self._text: list[str] = []
        self._data: list[bytes] = []
        self._size = 0
        # What the app receives: (message, payload size) in order, then the disconnect.
        self._messages: deque[tuple[Message, int]] = deque([({"type": "websocket.connect"}, 0)])
        self._queued = 0
        self._disconnect: Message | None = None
        self._readable = asyncio.Event()
        self._readable.set()
        self._reading_paused = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = asyncio.Event()
        # Keep-alive and closing-handshake timers.
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # The denial response: status and headers until the first body message.
        self._response: tuple[int, Headers] | None = None
        self._response_started = False
        # For the access log, written when the connection ends: the handshake's answer
        # (101, or the refusal's status) and the message or denial body bytes sent.
        self._log_status = 0
        self._log_bytes = 0
        self._started_at = time.time() if state.access_log is not None else 0.0

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.config.write_buffer_size)
        # Take the transport over in a known state, whatever HTTP/1.1 left it in.
        transport.resume_reading()
        self.state.connections.add(self)
        problem = self._check_handshake()
        if problem is not None:
            status, detail, headers = problem
            logger.debug("rejecting WebSocket handshake from %s: %s", self._peer(), detail)
            self._http_error(status, detail, headers)
            return
        if self.state.shutting_down:
            self._http_error(503, "server shutting down")
            return
        self.scope.setdefault("extensions", {})["websocket.http.response"] = {}
        task = self._loop.create_task(self._run())
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase is _Phase.OPEN or phase is _Phase.CLOSING:
            self._pending += data
            self._process()
            self._update_reading()
        elif phase is _Phase.HANDSHAKE:
            # A client may not send frames before the 101; hold what it sends meanwhile.
            self._pending += data
            self._update_reading()
        # DENYING, CLOSED: the connection ends after an HTTP response or a failure; discard.

    def eof_received(self) -> bool | None:
        # The peer half-closed without a Close frame (or after one, when lingering): close.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        if self._started_at:
            log_request(self.state, self.scope, self._log_status, self._log_bytes, self._started_at)
            self._started_at = 0.0
        self._stop_timers()
        self._phase = _Phase.CLOSED
        self._pending.clear()
        self._set_disconnect(1006, "")
        self._writable.set()
        self._closed.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- Closable ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Server shutdown: close with 1001; refuse a handshake still waiting with 503."""
        if self._phase is _Phase.HANDSHAKE:
            self._set_disconnect(1001, "server shutting down")
            self._http_error(503, "server shutting down")
        elif self._phase is _Phase.OPEN:
            self._start_closing(1001, "server shutting down")
        # DENYING: the response in progress finishes; CLOSING/CLOSED: already ending.

    def abort(self) -> None:
        """Close now: ``receive()`` reports 1006 (unless a code is known), ``send()`` raises."""
        self._phase = _Phase.CLOSED
        self._set_disconnect(1006, "")
        self._stop_timers()
        self._drop()

    # -- the handshake -----------------------------------------------------------------------

    def _check_handshake(self) -> tuple[int, str, Headers] | None:
        """``(status, detail, headers)`` for a request that is no valid opening handshake."""
        request = self.request
        assert request is not None
        problem: tuple[int, str, Headers] | None = None
        try:
            # wsproto re-serialises the request as an HTTP/1.1 GET: check those below.
            self._upgrade.initiate_upgrade_connection(list(request.headers), request.target)
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            if isinstance(hint, RejectConnection):  # 400, or 426 naming version 13
                problem = hint.status_code, f"invalid WebSocket handshake: {exc}", hint.headers
            else:
                problem = 400, f"invalid WebSocket handshake: {exc}", []
        except h11.ProtocolError:
            # HTTP/1.0 without Host: wsproto's h11 cannot even re-serialise it.
            return 400, "a WebSocket handshake needs HTTP/1.1", []
        except (UnicodeError, ValueError):
            # Headers wsproto cannot decode (non-ASCII tokens, a Host that is bad IDNA).
            problem = 400, "invalid WebSocket handshake headers", []
        self._can_respond = True
        for _ in self._upgrade.events():
            pass  # the Request event: the scope already holds what it says
        # RFC 6455 4.1: a GET, HTTP/1.1 or later, and no body.
        if request.http_version != b"1.1":
            return 400, "a WebSocket handshake needs HTTP/1.1", []
        if request.method != b"GET":
            return 400, "a WebSocket handshake must be a GET request", []
        for name, value in request.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return 400, "a WebSocket handshake cannot have a body", []
        return problem

    def _default_headers(self, provided: set[bytes]) -> Headers:
        headers = [h for h in self.state.default_headers if h[0] not in provided]
        if self.config.date_header and b"date" not in provided:
            headers.append((b"date", date_header()))
        return headers

    def _response_head(self, status: int, headers: Headers) -> bytes:
        """Status line and headers of an HTTP answer to the handshake; the connection closes."""
        provided = {name.lower() for name, _ in headers}
        extra = self._default_headers(provided)
        if b"connection" not in provided:
            headers = [*headers, (b"connection", b"close")]
        event = RejectConnection(status_code=status, headers=extra + headers, has_body=True)
        return _with_reason(self._upgrade.send(event), status)

    def _http_error(self, status: int, detail: str, headers: Headers | None = None) -> None:
        """Answer the handshake with a complete server-generated response, then close."""
        body = detail.encode("ascii", "replace") + b"\n" if detail else b""
        self._log_status = status
        self._log_bytes = len(body)
        data = None
        if self._can_respond:
            head = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                *(headers or []),
            ]
            try:
                data = self._response_head(status, head)
                data += self._upgrade.send(RejectData(data=body, body_finished=True))
            except (ProtocolError, h11.ProtocolError):
                data = None
        if data is None:
            data = error_response(status, detail or "refused")
        self._write(data)
        self._end_http()

    def _end_http(self) -> None:
        self._phase = _Phase.CLOSED
        self._set_disconnect(1006, "")
        if self.transport is not None:
            self.transport.close()

    # -- the application -----------------------------------------------------------------------

    async def _run(self) -> None:
        """Run the app for this connection; no app error escapes to the server."""
        try:
            await self.state.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            # Raised by our own send() after the client left: not an error (ASGI 2.4).
            logger.debug("WebSocket %s: the app stopped on a closed connection", self._path())
        except asyncio.CancelledError:
            self.abort()
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            logger.error(
                "exception in ASGI application for WebSocket %s", self._path(), exc_info=exc
            )
            self._app_done(failed=True)
        else:
            self._app_done(failed=False)
        # The exchange lasts until the closing handshake ends (bounded by CLOSE_TIMEOUT), so
        # a graceful server shutdown lets every client see its Close frame answered.
        try:
            await self._closed.wait()
        except asyncio.CancelledError:
            self.abort()
            raise

    def _app_done(self, *, failed: bool) -> None:
        phase = self._phase
        if phase is _Phase.OPEN:
            # Returning is the end of the conversation; an exception is an internal error.
            self._start_closing(1011 if failed else 1000, "internal error" if failed else "")
        elif phase is _Phase.HANDSHAKE:
            if not failed:
                logger.error(
                    "ASGI callable returned without accepting or refusing WebSocket %s",
                    self._path(),
                )
            self._http_error(500, "Internal Server Error")
        elif phase is _Phase.DENYING:
            if not failed:
                logger.error(
                    "ASGI callable returned without finishing the denial response for %s",
                    self._path(),
                )
            if self._response_started:
                self.abort()
            else:
                self._http_error(500, "Internal Server Error")

    async def receive(self) -> Message:
        while True:
            if self._messages:
                message, size = self._messages.popleft()
                self._queued -= size
                if self._reading_paused and self._phase is _Phase.OPEN:
                    self._process()
                    self._update_reading()
                return message
            if self._disconnect is not None:
                return dict(self._disconnect)
            self._readable.clear()
            await self._readable.wait()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            await self._send_message(message)
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._close_from_app(message)
        elif kind == "websocket.http.response.start":
            self._deny_start(message)
        elif kind == "websocket.http.response.body":
            await self._deny_body(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for a WebSocket")

    def _accept(self, message: Message) -> None:
        if self._phase is not _Phase.HANDSHAKE:
            if self._phase is _Phase.CLOSED and self._response is None and not self._did_accept:
                raise ClientDisconnected("the client closed the connection")
            raise RuntimeError("websocket.accept after the handshake was answered")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise RuntimeError(f"websocket.accept subprotocol must be a str, not {subprotocol!r}")
        headers: Headers = list(message.get("headers") or ())
        provided = {name.lower() for name, _ in headers}
        if b"sec-websocket-protocol" in provided:
            raise RuntimeError("websocket.accept: give the subprotocol in 'subprotocol'")
        extensions: list[Extension] = []
        if self.config.ws_per_message_deflate:
            extensions.append(BoundedDeflate(self.config.ws_max_message_size))
        self._log_status = self._send_accept(subprotocol, extensions, headers)
        self._did_accept = True
        self._phase = _Phase.OPEN
        logger.debug("WebSocket %s accepted from %s", self._path(), self._peer())
        self._schedule_ping()
        self._process()
        self._update_reading()

    @property
    def accepted(self) -> bool:
        """Whether the app accepted the WebSocket (it may be closed since)."""
        return self._did_accept

    def _send_accept(
        self, subprotocol: str | None, extensions: list[Extension], headers: Headers
    ) -> int:
        """Answer the handshake with acceptance; the status written (for the access log)."""
        provided = {name.lower() for name, _ in headers}
        headers = self._default_headers(provided) + headers
        try:
            data = self._upgrade.send(
                AcceptConnection(
                    subprotocol=subprotocol, extensions=extensions, extra_headers=headers
                )
            )
        except (ProtocolError, h11.ProtocolError) as exc:
            raise RuntimeError(f"invalid websocket.accept: {exc}") from None
        self._write(data)
        return 101

    async def _send_message(self, message: Message) -> None:
        if self._phase is not _Phase.OPEN:
            if self._phase is _Phase.HANDSHAKE or self._phase is _Phase.DENYING:
                raise RuntimeError("websocket.send before websocket.accept")
            raise ClientDisconnected("the WebSocket is closed")
        text = message.get("text")
        data = message.get("bytes")
        event: Event
        if text is not None and data is None:
            if not isinstance(text, str):
                raise RuntimeError(f"websocket.send text must be a str, not {type(text)}")
            event = TextMessage(data=text)
        elif data is not None and text is None:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise RuntimeError(f"websocket.send bytes must be bytes, not {type(data)}")
            event = BytesMessage(data=data if type(data) is bytes else bytes(data))
        else:
            raise RuntimeError("websocket.send needs exactly one of 'bytes' and 'text'")
        frame = self.conn.send(event)
        self._log_bytes += len(frame)
        self._write(frame)
        if not self._writable.is_set():
            await self._writable.wait()

    def _close_from_app(self, message: Message) -> None:
        phase = self._phase
        if phase is _Phase.HANDSHAKE:
            # Refused before accepting: 403, and no WebSocket (ASGI spec).
            logger.debug("WebSocket %s refused by the app (403)", self._path())
            self._http_error(403, "")
        elif phase is _Phase.OPEN:
            code = message.get("code")
            code = 1000 if code is None else code
            reason = message.get("reason") or ""
            if type(code) is not int or not _sendable_close_code(code):
                raise RuntimeError(f"websocket.close: {code!r} is not a close code one may send")
            if not isinstance(reason, str):
                raise RuntimeError(f"websocket.close reason must be a str, not {type(reason)}")
            self._start_closing(code, reason)
        elif phase is _Phase.DENYING:
            raise RuntimeError("websocket.close during a denial response")
        # CLOSING, CLOSED: closed already; closing again is harmless.

    def _deny_start(self, message: Message) -> None:
        if self._phase is not _Phase.HANDSHAKE:
            if self._phase is _Phase.CLOSED and self._response is None and not self._did_accept:
                raise ClientDisconnected("the client closed the connection")
            raise RuntimeError("websocket.http.response.start after the handshake was answered")
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 999:
            raise RuntimeError(f"invalid HTTP status {status!r} for a denial response")
        self._response = (status, list(message.get("headers") or ()))
        self._phase = _Phase.DENYING
        self._log_status = status

    async def _deny_body(self, message: Message) -> None:
        if self._phase is not _Phase.DENYING:
            if self._phase is _Phase.CLOSED and self._response is not None:
                raise ClientDisconnected("the denial response is complete or the client left")
            raise RuntimeError("websocket.http.response.body before websocket.http.response.start")
        assert self._response is not None
        body = message.get("body", b"")
        body = body if type(body) is bytes else bytes(body)
        more = bool(message.get("more_body", False))
        self._send_denial(body, more)
        self._log_bytes += len(body)
        if not more:
            logger.debug("WebSocket %s denied with %d", self._path(), self._response[0])
            self._end_http()
        elif not self._writable.is_set():
            await self._writable.wait()

    def _send_denial(self, body: bytes, more: bool) -> None:
        """Write the denial response's head (first time) and this piece of its body."""
        assert self._response is not None
        try:
            if not self._response_started:
                status, headers = self._response
                names = {name.lower() for name, _ in headers}
                if not more and not names & {b"content-length", b"transfer-encoding"}:
                    headers = [*headers, (b"content-length", b"%d" % len(body))]
                head = self._response_head(status, headers)
                self._response_started = True
                self._write(head)
            data = self._upgrade.send(RejectData(data=body, body_finished=not more))
        except (ProtocolError, h11.ProtocolError) as exc:
            raise RuntimeError(f"invalid denial response: {exc}") from None
        self._write(data)

    # -- frames from the peer ----------------------------------------------------------------

    def _process(self) -> None:
        """Hand pending input to wsproto and act on its events, while the app keeps up."""
        if self._processing:
            return  # called from inside the loop below (a close started by an event)
        self._processing = True
        try:
            while self._frames_wanted():
                for event in self.conn.events():
                    self._handle(event)
                    if not self._frames_wanted():
                        return  # wsproto keeps the rest until the app has read some
                if not self._pending:
                    return
                pending = self._pending
                chunk = bytes(pending)
                pending.clear()
                try:
                    self.conn.receive_data(chunk)
                except LocalProtocolError:
                    pending.clear()  # input after the closing handshake completed
                    return
        finally:
            self._processing = False

    def _frames_wanted(self) -> bool:
        """Whether to parse more input: open with room in the queue, or closing."""
        phase = self._phase
        return (phase is _Phase.OPEN and not self._input_full()) or phase is _Phase.CLOSING

    def _handle(self, event: Event) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            self._on_data(event)
        elif isinstance(event, Ping):
            if self.conn.state is ConnectionState.OPEN:
                self._write(self.conn.send(event.response()))
        elif isinstance(event, Pong):
            self._on_pong(event.payload)
        elif isinstance(event, CloseConnection):
            self._on_close(event)

    def _on_data(self, event: TextMessage | BytesMessage) -> None:
        if self._phase is not _Phase.OPEN:
            return  # closing: what the peer still sends is discarded
        data = event.data
        if isinstance(data, str):
            size = len(data) if data.isascii() else len(data.encode("utf-8"))
        else:
            size = len(data)
        self._size += size
        limit = self.config.ws_max_message_size
        if self._size > limit:
            self._fail(1009, f"message larger than {limit} bytes")
            return
        if isinstance(data, str):
            self._text.append(data)
        else:
            self._data.append(data if type(data) is bytes else bytes(data))
        if not event.message_finished:
            return
        received: Message
        if isinstance(event, TextMessage):
            received = {"type": "websocket.receive", "text": "".join(self._text)}
        else:
            received = {"type": "websocket.receive", "bytes": b"".join(self._data)}
        self._messages.append((received, self._size))
        self._queued += self._size
        self._readable.set()
        self._reset_message()

    def _reset_message(self) -> None:
        self._text = []
        self._data = []
        self._size = 0

    def _on_close(self, event: CloseConnection) -> None:
        code = int(event.code)
        reason = event.reason or ""
        state = self.conn.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer starts the closing handshake: answer with its code, then close TCP
            # (the server closes first, RFC 6455 7.1.1).
            self._write(self.conn.send(event.response()))
            self._finish(code, reason)
        elif state is ConnectionState.CLOSED:
            self._finish(code, reason)  # the peer's answer to our Close frame
        else:
            # wsproto reports a frame it could not accept as a CloseConnection of its own,
            # leaving the state as it was: fail the connection with that code.
            if code == 1009:  # inflating a compressed message went past the limit
                reason = f"message larger than {self.config.ws_max_message_size} bytes"
            logger.debug("WebSocket %s from %s: %s", self._path(), self._peer(), reason)
            self._fail(code, reason)

    def _input_full(self) -> bool:
        return (
            len(self._messages) >= MAX_QUEUED_MESSAGES
            or self._queued >= self.config.read_buffer_size
        )

    def _update_reading(self) -> None:
        """Read from the client unless the app is behind (or, before accepting, the client)."""
        phase = self._phase
        if phase is _Phase.OPEN:
            if self._reading_paused:
                limit = self.config.read_buffer_size // 2
                pause = len(self._messages) > MAX_QUEUED_MESSAGES // 2 or self._queued > limit
            else:
                pause = self._input_full()
        elif phase is _Phase.HANDSHAKE:
            pause = len(self._pending) > self.config.read_buffer_size
        else:
            pause = False  # closing: the peer's Close frame, or its EOF, must get through
        transport = self.transport
        if transport is None or pause == self._reading_paused:
            return
        self._reading_paused = pause
        if pause:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- closing -------------------------------------------------------------------------------

    def _set_disconnect(self, code: int, reason: str) -> None:
        if self._disconnect is None:
            self._disconnect = {"type": _DISCONNECT, "code": code, "reason": reason}
            self._readable.set()

    def _start_closing(self, code: int, reason: str) -> None:
        """Start the closing handshake: send our Close frame, wait for the peer's."""
        if self._phase is not _Phase.OPEN:
            return
        self._write(self.conn.send(CloseConnection(code=code, reason=reason)))
        self._phase = _Phase.CLOSING
        self._set_disconnect(code, reason)
        self._stop_timers()
        self._reset_message()
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._on_close_timeout)
        self._process()  # the peer's Close may be waiting already
        self._update_reading()

    def _finish(self, code: int, reason: str) -> None:
        """The closing handshake is complete: close the TCP connection."""
        self._phase = _Phase.CLOSED
        self._set_disconnect(code, reason)
        self._stop_timers()
        self._pending.clear()
        if self.transport is not None:
            self.transport.close()

    def _fail(self, code: int, reason: str, *, linger: bool = True) -> None:
        """Fail the WebSocket connection (RFC 6455 7.1.7): Close frame, then no more reading."""
        if self._phase is _Phase.OPEN and self.conn.state is ConnectionState.OPEN:
            self._write(self.conn.send(CloseConnection(code=code, reason=reason)))
        self._phase = _Phase.CLOSED
        self._set_disconnect(code, reason)
        self._stop_timers()
        self._pending.clear()
        self._reset_message()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if linger and transport.can_write_eof():
            # Half-close and discard input until the peer closes: closing with unread input
            # would reset the connection and could destroy the Close frame in flight.
            transport.write_eof()
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._on_close_timeout)
            self._update_reading()
        else:
            self._drop()

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        logger.debug("WebSocket %s: %s did not finish closing", self._path(), self._peer())
        self.abort()

    def _drop(self) -> None:
        """Close the transport now; unsent bytes are thrown away rather than waited for."""
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    # -- keep-alive ----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.config.ws_ping_interval
        if interval > 0 and self._phase is _Phase.OPEN:
            self._ping_timer = self._loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping_timer = None
        if self._phase is not _Phase.OPEN:
            return
        if self._reading_paused:
            # The app is behind and we are not reading: the pong could not be heard.
            self._schedule_ping()
            return
        payload = os.urandom(4)
        self._ping_payload = payload
        self._write(self.conn.send(Ping(payload=payload)))
        timeout = self.config.ws_ping_timeout
        if timeout > 0:
            self._ping_timer = self._loop.call_later(timeout, self._on_ping_timeout)
        else:
            self._schedule_ping()

    def _on_pong(self, payload: bytes) -> None:
        if self._ping_payload is None or payload != self._ping_payload:
            return  # unsolicited (allowed, RFC 6455 5.5.3) or for an older ping
        self._ping_payload = None
        if self._ping_timer is not None and self.config.ws_ping_timeout > 0:
            self._ping_timer.cancel()
            self._ping_timer = None
            self._schedule_ping()

    def _on_ping_timeout(self) -> None:
        self._ping_timer = None
        self._ping_payload = None
        if self._phase is not _Phase.OPEN:
            return
        if self._reading_paused:
            self._schedule_ping()
            return
        logger.info(
            "WebSocket %s: %s did not answer a ping within %.1fs; dropping it",
            self._path(),
            self._peer(),
            self.config.ws_ping_timeout,
        )
        self._fail(1011, "keepalive ping timeout", linger=False)

    def _stop_timers(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._ping_payload = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    # -- helpers ---------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def _path(self) -> str:
        return str(self.scope.get("path", "?"))

    def _peer(self) -> str:
        client = self.info.client
        return f"{client[0]}:{client[1]}" if client else "unix socket"


class ConnectChannel(Protocol):
    """What an HTTP/2 or HTTP/3 stream offers the WebSocket it carries (RFC 8441, RFC 9220)."""

    def send_response(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        """Send the response HEADERS (``:status`` and server defaults added), then ``body``."""

    def send_body(self, data: bytes, end: bool) -> None:
        """Send more of the response (DATA frames)."""


class ConnectWSProtocol(WSProtocol):
    """A WebSocket over one HTTP/2 or HTTP/3 stream opened by an extended CONNECT.

    RFC 8441 defines it for HTTP/2 and RFC 9220 for HTTP/3, identically.

    The ASGI side, the frames, limits, keep-alive, back-pressure and closing are
    :class:`WSProtocol`'s; only the handshake differs. There is no key and no 101: accepting
    is ``:status 200`` (with ``sec-websocket-protocol`` and ``sec-websocket-extensions``),
    after which the stream's DATA carries the frames, parsed and written by wsproto's
    post-handshake :class:`~wsproto.connection.Connection`. Refusals and the denial response
    extension are ordinary responses on the stream. The transport handed to
    :meth:`connection_made` is the stream: closing it ends the stream (END_STREAM in HTTP/2,
    the QUIC stream's FIN in HTTP/3), aborting it resets the stream, and pausing its reading
    withholds flow-control credit where the protocol library allows it (HTTP/2).
    """

    def __init__(
        self,
        state: ServerState,
        info: ConnectionInfo,
        scope: dict[str, Any],
        channel: ConnectChannel,
    ) -> None:
        super().__init__(state, info, None, scope, b"")
        self.channel = channel

    def _check_handshake(self) -> tuple[int, str, Headers] | None:
        versions = [v for n, v in self.scope["headers"] if n == b"sec-websocket-version"]
        if versions != [b"13"]:
            return (
                400,
                "a WebSocket handshake needs sec-websocket-version 13",
                [(b"sec-websocket-version", b"13")],
            )
        return None

    def _http_error(self, status: int, detail: str, headers: Headers | None = None) -> None:
        body = detail.encode("ascii", "replace") + b"\n" if detail else b""
        self._log_status = status
        self._log_bytes = len(body)
        head = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            *(headers or []),
        ]
        with contextlib.suppress(RuntimeError):
            self.channel.send_response(status, head, body, True)
        self._end_http()

    def _send_accept(
        self, subprotocol: str | None, extensions: list[Extension], headers: Headers
    ) -> int:
        response: Headers = []
        if subprotocol is not None:
            if subprotocol not in self.scope["subprotocols"]:
                raise RuntimeError(
                    f"invalid websocket.accept: unexpected subprotocol {subprotocol}"
                )
            try:
                response.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
            except UnicodeError:
                raise RuntimeError(
                    f"invalid websocket.accept subprotocol {subprotocol!r}"
                ) from None
        if extensions:
            offers = [
                offer
                for name, value in self.scope["headers"]
                if name == b"sec-websocket-extensions"
                for offer in value.decode("latin-1").split(",")
            ]
            accepted = server_extensions_handshake(offers, extensions)
            if accepted:
                response.append((b"sec-websocket-extensions", accepted))
        self.channel.send_response(200, response + headers, b"", False)
        self.conn = Connection(ConnectionType.SERVER, extensions)
        return 200

    def _send_denial(self, body: bytes, more: bool) -> None:
        assert self._response is not None
        if self._response_started:
            self.channel.send_body(body, not more)
            return
        status, headers = self._response
        self.channel.send_response(status, headers, body, not more)
        self._response_started = True
