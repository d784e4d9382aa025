"""HTTP/2 on h2: the asyncio protocol for one connection and the sink for each of its streams.

h2 owns the protocol state; :class:`H2Protocol` feeds it bytes, turns its events into one
:class:`~rws.http.server.cycle.HTTPCycle` per request stream and writes what h2 produces, once
per read and once per loop iteration for what the applications send (never once per frame).
A connection arrives here from :class:`~rws.http.server.http11.H11Protocol`: TLS with ALPN
``h2``, the cleartext preface (prior knowledge), or ``Upgrade: h2c`` (:meth:`from_upgrade`).

Flow control, both ways:

* Request bodies: the receive window of a stream is opened again (WINDOW_UPDATE) only as the
  application *reads* the body, so a slow application slows its client down instead of
  making the server buffer. Each stream may have :data:`STREAM_WINDOW` bytes in flight, the
  connection :data:`CONNECTION_WINDOW`; that is also the most the server buffers for it.
* Response bodies: data the peer's windows do not allow yet waits in the stream, is sent as
  WINDOW_UPDATE frames arrive (round robin over the waiting streams, one frame each per turn,
  so concurrent responses share the connection fairly) and the application's ``send()``
  waits while more than ``write_buffer_size`` bytes of its stream are unsent.

Limits and defences (the numbers are :class:`~rws.http.server.config.Config` settings):

* ``h2_max_concurrent_streams`` is advertised; a stream beyond it, counting those whose
  application is still running after a reset, is refused with RST_STREAM(REFUSED_STREAM),
  which the client may retry (RFC 9113 5.1.2). h2's own check, which would end the whole
  connection, is disarmed for that.
* ``h2_max_header_list_size`` is advertised and enforced while decoding. A header block over
  it ends the connection with GOAWAY(ENHANCE_YOUR_CALM): HPACK state cannot be kept in step
  without decoding the whole block, and RFC 9113 10.5.1 allows closing instead. A request
  with more than ``max_header_count`` fields is answered 431 on its stream.
* Header blocks are watched frame by frame before h2 sees them, since h2 (4.x) buffers up to
  64 CONTINUATION frames of up to a frame each before it decodes or refuses a block. More
  than ``h2_max_continuation_frames`` of them, or more bytes than the header list may have, is
  a CONTINUATION flood: GOAWAY(ENHANCE_YOUR_CALM) and close. A block left unfinished for
  ``header_timeout`` seconds (GOAWAY(PROTOCOL_ERROR)), or a client that sends no preface and
  SETTINGS within it, is closed as well.
* Rapid reset (CVE-2023-44487): more than ``h2_max_resets`` streams reset by the client or
  refused within ``h2_reset_window`` seconds: GOAWAY(ENHANCE_YOUR_CALM) and close.
* ``keep_alive_timeout`` seconds without an open stream: GOAWAY(NO_ERROR) and close.
* While the client does not read what the server writes, the server stops reading, so a flood
  of PINGs or SETTINGS cannot grow the server's write buffer.
* Any protocol error by the client: GOAWAY with h2's error code (COMPRESSION_ERROR for a
  header block HPACK cannot decode), then close. A GOAWAY from the client closes at once:
  h2 sends nothing more after one, so streams still running see ``http.disconnect``.

WebSocket (RFC 8441): SETTINGS_ENABLE_CONNECT_PROTOCOL is 1, and a CONNECT with ``:protocol
websocket`` opens a :class:`_WSStream` served by
:class:`~rws.http.server.websocket.ConnectWSProtocol` (shared with HTTP/3), the HTTP/1.1
WebSocket code with an extended-CONNECT handshake, over a
:class:`~rws.http.server.ws_stream.StreamTransport` (write: DATA, close: END_STREAM, abort:
RST_STREAM, pause reading: withhold WINDOW_UPDATE). h2 accepts ``:protocol`` whatever our
setting says, so the setting is checked here; any other ``:protocol`` is answered 501.

Not supported: server push and
``Expect: 100-continue`` (the body is simply read; HTTP/2 clients rarely wait for a 100).
The ``:scheme`` pseudo-header is checked by h2 but the scope's ``scheme`` is the
connection's own, as for HTTP/1.1: a cleartext client cannot claim ``https``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import struct
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from .access import log_exchange
from .config import Config
from .connection import ConnectionInfo
from .cycle import Headers, HTTPCycle
from .state import ServerState
from .streams import (
    STATUS_BYTES,
    TOKEN,
    RequestHead,
    attach_websocket,
    open_exchange,
    read_request_head,
    refuse_extended_connect,
    response_block,
    start_app,
)
from .ws_stream import StreamTransport

if TYPE_CHECKING:
    from .websocket import WSProtocol

logger = logging.getLogger("rws.http.error")

#: Receive window of each stream: request body bytes a client may send ahead of the app.
STREAM_WINDOW = 1024 * 1024
#: Receive window of the connection, shared by all its streams.
CONNECTION_WINDOW = 4 * 1024 * 1024
_DEFAULT_WINDOW = 65535
#: What h2 sees as the stream limit: ours is enforced here, with REFUSED_STREAM.
_H2_STREAM_LIMIT = 2**31 - 1

_H2_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=True,
    normalize_inbound_headers=True,
    # Response headers are checked and normalised here, before h2 encodes them: an error
    # raised by h2 half-way through HPACK encoding would desynchronise the connection.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)

_HEADERS_FRAME = 0x1
_PUSH_PROMISE_FRAME = 0x5
_CONTINUATION_FRAME = 0x9
_BLOCK_FRAMES = frozenset({_HEADERS_FRAME, _PUSH_PROMISE_FRAME, _CONTINUATION_FRAME})
_END_HEADERS = 0x4
_PREFACE_SIZE = 24
_GOAWAY_HEAD = b"\x07\x00\x00\x00\x00\x00"  # type GOAWAY, no flags, stream 0
#: Bytes of padding a HEADERS/CONTINUATION frame may carry beyond its header block.
_MAX_PADDING = 256

_DataReceived = h2.events.DataReceived
_RequestReceived = h2.events.RequestReceived
_StreamEnded = h2.events.StreamEnded
_WindowUpdated = h2.events.WindowUpdated
_StreamReset = h2.events.StreamReset
_RemoteSettingsChanged = h2.events.RemoteSettingsChanged
_ConnectionTerminated = h2.events.ConnectionTerminated
_TrailersReceived = h2.events.TrailersReceived
_ProtocolError = h2.exceptions.ProtocolError

_H2C_SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
#: Request headers of an ``Upgrade: h2c`` request that belong to HTTP/1.1 only.
_UPGRADE_ONLY = frozenset(
    {
        b"connection",
        b"upgrade",
        b"http2-settings",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
    }
)

#: Response header names that are meaningless or forbidden in HTTP/2 (RFC 9113 8.2.2).
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)
#: Header name as given by the app -> lower-cased name, or b"" to drop it. Bounded.
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 4096
_VALUE_NEEDS_WORK = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z").search


class InvalidHeadersError(RuntimeError):
    """The application gave a header HTTP/2 cannot carry."""


def _check_name(name: Any) -> bytes:
    if type(name) is not bytes:  # ASGI says bytes; accept the other bytes-like types
        if not isinstance(name, bytes | bytearray):
            raise InvalidHeadersError(f"header name {name!r} is not bytes")
        name = bytes(name)
    lowered: bytes = name.lower()
    if not TOKEN.match(lowered):
        raise InvalidHeadersError(f"invalid header name {name!r}")
    result = b"" if lowered in _CONNECTION_SPECIFIC else lowered
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[name] = result
    return result


def _check_value(value: Any) -> bytes:
    if type(value) is not bytes:
        if not isinstance(value, bytes | bytearray):
            raise InvalidHeadersError(f"header value {value!r} is not bytes")
        value = bytes(value)
        if not _VALUE_NEEDS_WORK(value):
            return bytes(value)
    stripped: bytes = value.strip(b" \t")
    if b"\r" in stripped or b"\n" in stripped or b"\x00" in stripped:
        raise InvalidHeadersError(f"invalid header value {stripped!r}")
    return stripped


def _header_fields(
    headers: Iterable[tuple[bytes, bytes]], out: Headers, watch: frozenset[bytes] = frozenset()
) -> bool:
    """Append ``headers`` to ``out`` in HTTP/2 form; True when one is named in ``watch``.

    Names are lower-cased and connection-specific fields dropped (RFC 9113 8.2.2); values
    lose surrounding whitespace. A name that is not a token or a value with CR, LF or NUL
    raises :class:`InvalidHeadersError`.
    """
    names = _NAMES
    needs_work = _VALUE_NEEDS_WORK
    found = False
    for name, value in headers:
        lowered = names.get(name)
        if lowered is None:
            lowered = _check_name(name)
        if not lowered:
            continue
        if type(value) is not bytes or needs_work(value):
            value = _check_value(value)
        if lowered in watch:
            found = True
        out.append((lowered, value))
    return found


def _is_hpack_error(exc: h2.exceptions.ProtocolError) -> bool:
    """A header block HPACK could not decode (h2 wraps hpack's errors without a code)."""
    cause = exc.__cause__
    return (
        cause is not None
        and type(cause).__module__.partition(".")[0] == "hpack"
        and not isinstance(exc, h2.exceptions.DenialOfServiceError)
    )


def goaway_frame(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    """A GOAWAY frame, built here so h2 may keep sending on the streams still running."""
    payload = struct.pack(">LL", last_stream_id & 0x7FFFFFFF, error_code) + debug
    return len(payload).to_bytes(3, "big") + _GOAWAY_HEAD + payload


class _Stream:
    """One request stream: the :class:`~rws.http.server.cycle.ResponseSink` of its cycle."""

    __slots__ = (
        "app_done",
        "closed",
        "cycle",
        "end_pending",
        "id",
        "pending",
        "pending_size",
        "protocol",
        "request_ended",
        "request_trailers",
        "started_at",
        "trailers",
        "unacked",
        "waiter",
    )

    cycle: HTTPCycle

    def __init__(self, protocol: H2Protocol, stream_id: int, request_ended: bool) -> None:
        self.protocol = protocol
        self.id = stream_id
        self.request_ended = request_ended
        self.request_trailers: Headers | None = None
        #: The response is over for h2: END_STREAM sent, or the stream reset.
        self.closed = False
        #: The cycle is over (``done`` was called).
        self.app_done = False
        #: Response body waiting for the peer's flow-control window.
        self.pending: deque[memoryview] = deque()
        self.pending_size = 0
        self.end_pending = False
        self.trailers: Headers | None = None
        #: Request body bytes handed to the cycle that the app has not read yet.
        self.unacked = 0
        self.waiter: asyncio.Future[None] | None = None
        self.started_at = 0.0

    # -- ResponseSink --------------------------------------------------------------------------

    def send_informational(self, status: int, headers: Headers) -> None:
        protocol = self.protocol
        if self.closed or protocol._closing:
            return
        block: Headers = [(b":status", STATUS_BYTES[status])]
        _header_fields(headers, block)
        if self._h2_call(protocol.conn.send_headers, self.id, block):
            protocol.want_flush()

    def send_head(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        protocol = self.protocol
        if self.closed or protocol._closing:
            return
        try:
            block = protocol.response_headers(status, headers)
        except (InvalidHeadersError, TypeError, ValueError) as exc:  # not (bytes, bytes) pairs
            cycle = self.cycle
            if cycle.started and status != 500:
                # Report it to the app, so that the cycle can answer 500 instead.
                cycle.started = False
                raise RuntimeError(f"invalid HTTP response from the application: {exc}") from None
            self._reset(ErrorCodes.INTERNAL_ERROR)
            return
        try:
            protocol.conn.send_headers(self.id, block, end and not body)
        except _ProtocolError as exc:
            self._lost(exc)
            return
        if body:
            self._write(body, end)
        elif end:
            self._ended()
        protocol.want_flush()

    def send_data(self, data: bytes, end: bool) -> None:
        if self.closed or self.protocol._closing:
            return
        self._write(data, end)
        self.protocol.want_flush()

    def send_trailers(self, headers: Headers) -> None:
        if self.closed or self.protocol._closing:
            return
        block: Headers = []
        _header_fields(headers, block)
        if not block:
            self._write(b"", True)
        elif self.pending:
            self.trailers = block
        elif self._h2_call(self.protocol.conn.send_headers, self.id, block, True):
            self._ended()
        self.protocol.want_flush()

    async def drain(self) -> None:
        protocol = self.protocol
        if self.closed or protocol._closing:
            return
        if self.pending_size <= protocol.buffer_limit and not protocol._writing_paused:
            return
        waiter = self.waiter = protocol._loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    def body_consumed(self, size: int) -> None:
        self.unacked -= size
        protocol = self.protocol
        if not protocol._closing:
            protocol.conn.acknowledge_received_data(size, self.id)
            protocol.want_flush()

    def abort(self) -> None:
        self._reset(ErrorCodes.INTERNAL_ERROR)

    def done(self, cycle: HTTPCycle) -> None:
        self.app_done = True
        protocol = self.protocol
        if protocol.state.access_log is not None:
            log_exchange(protocol.state, cycle, self.started_at)
        if self.unacked > 0 and not protocol._closing:
            # Body the app never read: give its room back to the connection.
            protocol.conn.acknowledge_received_data(self.unacked, self.id)
            protocol.want_flush()
        self.unacked = 0
        if self.closed:
            protocol.retire(self)

    # -- sending -------------------------------------------------------------------------------

    def _h2_call(self, method: Any, *args: Any) -> bool:
        try:
            method(*args)
        except h2.exceptions.ProtocolError as exc:
            self._lost(exc)
            return False
        return True

    def _lost(self, exc: Exception) -> None:
        # h2 no longer lets this stream (or connection) send: as good as reset.
        logger.debug("HTTP/2 stream %d cannot send: %s", self.id, exc)
        self._forget()

    def _write(self, data: bytes, end: bool) -> None:
        protocol = self.protocol
        if not self.pending_size and not protocol._writing_paused:
            conn = protocol.conn
            size = len(data)
            try:
                fits = size <= conn.max_outbound_frame_size and (
                    not size or size <= conn.local_flow_control_window(self.id)
                )
                if fits:
                    conn.send_data(self.id, data, end)
            except _ProtocolError as exc:
                self._lost(exc)
                return
            if fits:
                if end:
                    self._ended()
                return
        if data:
            self.pending.append(memoryview(data))
            self.pending_size += len(data)
        if end:
            self.end_pending = True
        self.pump()

    def pump(self, frames: int = -1) -> bool:
        """Send what the windows allow (at most ``frames`` DATA frames); True if any went."""
        protocol = self.protocol
        conn = protocol.conn
        pending = self.pending
        sent = False
        budget = protocol.buffer_limit
        try:
            while pending and frames and not protocol._writing_paused:
                window = conn.local_flow_control_window(self.id)
                if window <= 0:
                    break
                limit = min(window, conn.max_outbound_frame_size)
                chunk = pending[0]
                if len(chunk) <= limit:
                    pending.popleft()
                else:
                    pending[0] = chunk[limit:]
                    chunk = chunk[:limit]
                self.pending_size -= len(chunk)
                last = self.end_pending and not pending and self.trailers is None
                conn.send_data(self.id, chunk, last)
                sent = True
                frames -= 1
                if last:
                    self._ended()
                    return sent
                budget -= len(chunk)
                if budget <= 0:
                    # Hand it to the transport now: past its high-water mark it calls
                    # pause_writing, which stops this loop (memory stays bounded).
                    protocol.flush()
                    budget = protocol.buffer_limit
            if pending:
                protocol.blocked[self.id] = self
                if self.waiter is not None and self.pending_size <= protocol.buffer_limit:
                    self.wake()
                return sent
            protocol.blocked.pop(self.id, None)
            if self.trailers is not None:
                trailers, self.trailers = self.trailers, None
                conn.send_headers(self.id, trailers, True)
                self._ended()
                return True
            if self.end_pending:
                conn.send_data(self.id, b"", True)
                self._ended()
                return True
        except _ProtocolError as exc:
            self._lost(exc)
            return sent
        if self.waiter is not None and not protocol._writing_paused:
            self.wake()
        return sent

    def _ended(self) -> None:
        """The whole response is with h2."""
        protocol = self.protocol
        if not self.request_ended and not self.closed:
            # A complete response ends the exchange: ask the client to stop sending the
            # request body it may still have (RFC 9113 8.1).
            self._h2_call(protocol.conn.reset_stream, self.id, ErrorCodes.NO_ERROR)
        self._forget()

    def _reset(self, code: ErrorCodes) -> None:
        if not self.closed and not self.protocol._closing:
            self._h2_call(self.protocol.conn.reset_stream, self.id, code)
            self.protocol.want_flush()
        self._forget()

    def _forget(self) -> None:
        """Nothing more is sent on this stream."""
        self.closed = True
        self.pending.clear()
        self.pending_size = 0
        self.trailers = None
        self.end_pending = False
        self.protocol.blocked.pop(self.id, None)
        self.wake()
        if self.app_done:
            self.protocol.retire(self)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _WSStream(_Stream):
    """A stream opened by an extended CONNECT (RFC 8441) that carries a WebSocket.

    The :class:`~rws.http.server.websocket.ConnectChannel` of its
    :class:`~rws.http.server.websocket.ConnectWSProtocol`, which sees it through a
    :class:`~rws.http.server.ws_stream.StreamTransport`.
    """

    __slots__ = ("held", "reading_paused", "transport", "ws")

    ws: WSProtocol
    transport: StreamTransport

    def __init__(self, protocol: H2Protocol, stream_id: int) -> None:
        super().__init__(protocol, stream_id, False)
        #: Received bytes not acknowledged yet because the WebSocket paused reading.
        self.held = 0
        self.reading_paused = False

    def send_response(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        protocol = self.protocol
        if self.closed or protocol._closing:
            return
        try:
            block = protocol.response_headers(status, headers)
        except (InvalidHeadersError, TypeError, ValueError) as exc:
            raise RuntimeError(f"invalid WebSocket response: {exc}") from None
        if not self._h2_call(protocol.conn.send_headers, self.id, block, end and not body):
            return
        if body:
            self._write(body, end)
        elif end:
            self._ended()
        protocol.want_flush()
        self.transport.hold_if_full()

    def send_body(self, data: bytes, end: bool) -> None:
        self.send_data(data, end)
        self.transport.hold_if_full()

    def received(self, size: int) -> None:
        """``size`` bytes went to the WebSocket: open the window unless it is not reading."""
        if self.reading_paused:
            self.held += size
        else:
            self.body_consumed(size)

    # -- WSStream, for the StreamTransport --------------------------------------------------

    def peer_transport(self) -> asyncio.BaseTransport | None:
        return self.protocol.transport

    def write_backlog(self) -> int:
        protocol = self.protocol
        if self.pending_size > protocol.buffer_limit or protocol._writing_paused:
            return self.pending_size or 1
        return 0

    def drain_waiter(self) -> asyncio.Future[None]:
        return self.protocol._loop.create_future()

    def drain_done(self, waiter: asyncio.Future[None]) -> None:
        pass  # the protocol wakes streams by their waiter; nothing else tracks it

    def cancel(self) -> None:
        self._reset(ErrorCodes.CANCEL)

    def release_held(self) -> None:
        if self.held:
            held, self.held = self.held, 0
            self.body_consumed(held)

    def retire(self) -> None:
        self.protocol.retire(self)

    def _ended(self) -> None:
        if not self.ws.accepted:
            super()._ended()  # a refusal: as for any response, RST_STREAM(NO_ERROR) if needed
            return
        # No RST_STREAM after a WebSocket: END_STREAM is its TCP FIN, and a RST its TCP reset,
        # which a client could take for an abnormal closure (RFC 8441 5.1).
        self._forget()


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection."""

    def __init__(self, state: ServerState, info: ConnectionInfo) -> None:
        self.state = state
        self.config: Config = state.config
        self.info = info
        self.conn = h2.connection.H2Connection(config=_H2_CONFIG)
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_event_loop()
        self.streams: dict[int, _Stream] = {}
        #: Streams with response data waiting for flow-control window, in arrival order.
        self.blocked: dict[int, _Stream] = {}
        config = self.config
        self.buffer_limit = config.write_buffer_size
        self._max_streams = config.h2_max_concurrent_streams
        self._h2_ready = False
        self._closing = False
        self._writing_paused = False
        self._flush_scheduled = False
        self._goaway_sent = False
        self._last_stream_id = 0
        self._eof = False
        self._preface_ok = False
        self._opened_at = 0.0
        self._idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._resets: deque[float] = deque(maxlen=config.h2_max_resets + 1)
        self._streams_opened = 0
        # The frame scanner (CONTINUATION flood): bytes to skip, a split frame header.
        self._skip = _PREFACE_SIZE
        self._partial = b""
        self._in_block = False
        self._block_frames = 0
        self._block_bytes = 0
        self._block_started = 0.0
        self._block_limit = config.h2_max_header_list_size + _MAX_PADDING * (
            config.h2_max_continuation_frames + 1
        )
        self._default_names = frozenset(name for name, _ in state.default_headers) | {b"date"}

    @classmethod
    def from_upgrade(
        cls,
        state: ServerState,
        info: ConnectionInfo,
        transport: asyncio.Transport,
        settings: bytes,
        *,
        method: str,
        target: bytes,
        headers: Headers,
        data: bytes = b"",
    ) -> H2Protocol:
        """Take over an HTTP/1.1 connection whose request asked for ``Upgrade: h2c``.

        ``settings`` is the request's ``HTTP2-Settings`` value (base64url SETTINGS payload);
        if it is invalid, :class:`ValueError` is raised before anything is written, and the
        caller serves the request over HTTP/1.1. Otherwise this writes the ``101 Switching
        Protocols`` answer, installs the protocol on ``transport``, serves the request
        (which must have had no body) as stream 1 and feeds it ``data``, the bytes that
        followed the request.
        """
        protocol = cls(state, info)
        try:
            protocol._setup(settings)
        except Exception as exc:
            raise ValueError(f"invalid HTTP2-Settings header: {exc}") from None
        transport.write(_H2C_SWITCH)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        fields = [(n, v) for n, v in headers if n.lower() not in _UPGRADE_ONLY]
        protocol._open_stream(1, RequestHead(method, target, fields, -1, None), ended=True)
        protocol.flush()
        if data:
            protocol.data_received(data)
        return protocol

    def _setup(self, upgrade_settings: bytes | None) -> None:
        config = self.config
        conn = self.conn
        values = {
            SettingCodes.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingCodes.MAX_FRAME_SIZE: config.h2_max_inbound_frame_size,
            # RFC 8441: extended CONNECT, for WebSocket over HTTP/2.
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        }
        # Advertised in the first SETTINGS frame and applied at once (not on the client's
        # ACK): until the ACK our limits are only looser than what the client was told.
        conn.local_settings = h2.settings.Settings(client=False, initial_values=values)
        if upgrade_settings is None:
            conn.initiate_connection()
        else:
            conn.initiate_upgrade_connection(upgrade_settings)
        conn.max_inbound_frame_size = config.h2_max_inbound_frame_size
        conn.decoder.max_header_list_size = config.h2_max_header_list_size
        conn.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        # h2 treats a stream over MAX_CONCURRENT_STREAMS as a connection error; RFC 9113
        # 5.1.2 wants a stream error, which _on_request gives (REFUSED_STREAM).
        values[SettingCodes.MAX_CONCURRENT_STREAMS] = _H2_STREAM_LIMIT
        conn.local_settings = h2.settings.Settings(client=False, initial_values=values)
        self._h2_ready = True

    @property
    def closing(self) -> bool:
        return self._closing

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.config.write_buffer_size)
        self.state.connections.add(self)
        if not self._h2_ready:
            self._setup(None)
        now = self._loop.time()
        self._opened_at = self._idle_since = now
        self._arm(now + min(self.config.header_timeout, self.config.keep_alive_timeout))
        self.flush()
        if self.state.shutting_down:
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self._closing or not self._scan(data):
            return
        if self._flush_scheduled:
            self.flush()
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            logger.debug("HTTP/2 protocol error from %s: %s", self._peer(), exc)
            if _is_hpack_error(exc):
                # h2 says PROTOCOL_ERROR; RFC 9113 4.3 wants COMPRESSION_ERROR.
                self.conn.clear_outbound_data_buffer()
                self._fail(ErrorCodes.COMPRESSION_ERROR)
                return
            if self.conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
                # h2 has queued a GOAWAY with the matching error code.
                self._goaway_sent = True
                self._close()
            else:  # an invalid preface: h2 raised before it could
                self._fail(exc.error_code)
            return
        except Exception as exc:  # a malformed frame h2 did not map to an error code
            logger.debug("malformed HTTP/2 data from %s: %r", self._peer(), exc)
            self._fail(ErrorCodes.PROTOCOL_ERROR)
            return
        for event in events:
            kind = type(event)
            if kind is _DataReceived:
                self._on_data(event)  # type: ignore[arg-type]
            elif kind is _RequestReceived:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is _StreamEnded:
                self._on_end(event.stream_id)  # type: ignore[attr-defined]
            elif kind is _WindowUpdated:
                self._on_window(event.stream_id)  # type: ignore[attr-defined]
            elif kind is _StreamReset:
                self._on_reset(event)  # type: ignore[arg-type]
            elif kind is _RemoteSettingsChanged:
                self._on_settings(event)  # type: ignore[arg-type]
            elif kind is _ConnectionTerminated:
                # The client is leaving; h2 accepts no more frames from us on any stream.
                self._close()
            elif kind is _TrailersReceived:
                self._on_trailers(event)  # type: ignore[arg-type]
            if self.closing:
                return
        if self._in_block:
            self._arm(self._block_started + self.config.header_timeout)
        self.flush()

    def eof_received(self) -> bool | None:
        self._eof = True
        for stream in list(self.streams.values()):
            if isinstance(stream, _WSStream):
                stream.transport.abort()  # no Close frame can arrive any more
            elif not stream.request_ended and not stream.app_done:
                stream.cycle.feed_disconnect()
        # Keep the write side open while responses are still being produced.
        return bool(self.streams) and not self._closing

    def connection_lost(self, exc: Exception | None) -> None:
        self._shut()
        self.state.connections.discard(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        # The client is not reading: stop reading too, so that what it sends (PINGs, SETTINGS,
        # requests) cannot make us queue ever more answers.
        if self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._closing:
            return
        if self.transport is not None:
            self.transport.resume_reading()
        self._pump_blocked()
        limit = self.buffer_limit
        for stream in self.streams.values():
            if stream.waiter is not None and stream.pending_size <= limit:
                stream.wake()
        self.flush()

    # -- h2 events ---------------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._goaway_sent and stream_id > self._last_stream_id:
            # Opened after our GOAWAY: not processed, the client may retry elsewhere.
            self._refuse(stream_id)
            return
        if len(self.streams) >= self._max_streams:
            logger.debug("refusing HTTP/2 stream %d from %s: too many", stream_id, self._peer())
            self._refuse(stream_id)
            self._count_reset()
            return
        head = read_request_head(event.headers, self.config)
        ended = event.stream_ended is not None
        if head.method == "CONNECT":
            protocol = next((v for n, v in event.headers if n == b":protocol"), None)
            if protocol is not None:
                self._extended_connect(stream_id, head, protocol, ended=ended)
                return
        self._open_stream(stream_id, head, ended=ended)

    def _extended_connect(
        self, stream_id: int, head: RequestHead, protocol: bytes, *, ended: bool
    ) -> None:
        """A CONNECT with ``:protocol`` (RFC 8441): a WebSocket, or refused."""
        if not self.conn.local_settings.enable_connect_protocol:
            # RFC 8441 3: only allowed after SETTINGS_ENABLE_CONNECT_PROTOCOL=1.
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
            return
        head = refuse_extended_connect(head, protocol, ended=ended)
        if head.reject is not None:
            self._open_stream(stream_id, head, ended=ended)
            return
        assert self.info is not None
        stream = _WSStream(self, stream_id)
        attach_websocket(self.state, self.info, stream, head, http_version="2")
        self.streams[stream_id] = stream
        self._streams_opened += 1
        cap = self.config.max_requests_per_connection
        if cap and self._streams_opened >= cap:
            self._goaway(ErrorCodes.NO_ERROR)
        stream.ws.connection_made(stream.transport)

    def _open_stream(self, stream_id: int, head: RequestHead, *, ended: bool) -> None:
        state = self.state
        assert self.info is not None
        stream = _Stream(self, stream_id, ended)
        cycle = open_exchange(state, self.info, stream, head, http_version="2", ended=ended)
        stream.cycle = cycle
        self.streams[stream_id] = stream
        self._streams_opened += 1
        cap = self.config.max_requests_per_connection
        if cap and self._streams_opened >= cap:
            self._goaway(ErrorCodes.NO_ERROR)
        if head.reject is not None:
            cycle.respond(*head.reject)
            return
        start_app(state, cycle, self._loop)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        data = event.data
        stream = self.streams.get(stream_id)
        if stream is None or stream.app_done or stream.closed:
            self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            return
        size = len(data)
        padding = event.flow_controlled_length - size
        if padding:
            self.conn.acknowledge_received_data(padding, stream_id)
        if not size:
            return  # an empty DATA frame (END_STREAM comes as its own event)
        if isinstance(stream, _WSStream):
            stream.ws.data_received(data)
            stream.received(size)
            return
        cycle = stream.cycle
        if not cycle.feed_body(data):
            if size:
                self.conn.acknowledge_received_data(size, stream_id)
            if cycle.started:
                stream._reset(ErrorCodes.CANCEL)
            else:
                cycle.respond(413, b"Request body too large")
            cycle.feed_disconnect()
            return
        stream.unacked += size

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        """Request trailers (h2 has checked them: no pseudo-headers, END_STREAM set)."""
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.app_done or isinstance(stream, _WSStream):
            return  # for a WebSocket, what counts is the END_STREAM they carry
        trailers: Headers = list(event.headers)
        if len(trailers) > self.config.max_header_count:
            stream._reset(ErrorCodes.PROTOCOL_ERROR)
            stream.cycle.feed_disconnect()
            return
        stream.request_trailers = trailers

    def _on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.request_ended:
            stream.request_ended = True
            if isinstance(stream, _WSStream):
                # The peer's FIN: end ours too (after its Close frame, we have already).
                stream.transport.close()
            elif not stream.app_done:
                stream.cycle.feed_end(stream.request_trailers)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            if isinstance(stream, _WSStream):
                stream.transport.lost()
            elif not stream.app_done:
                stream.cycle.feed_disconnect()
            stream._forget()
        if event.remote_reset:
            self._count_reset()

    def _on_window(self, stream_id: int) -> None:
        if stream_id:
            stream = self.blocked.get(stream_id)
            if stream is not None and not self._writing_paused:
                stream.pump()
        else:
            self._pump_blocked()

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._preface_ok = True
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._pump_blocked()

    def _pump_blocked(self) -> None:
        """Share the connection window: one frame per waiting stream per turn."""
        blocked = self.blocked
        conn = self.conn
        while blocked and not self._writing_paused and conn.outbound_flow_control_window > 0:
            progressed = False
            for stream in list(blocked.values()):
                if stream.pump(1):
                    progressed = True
            if not progressed:
                return

    # -- streams -------------------------------------------------------------------------------

    def response_headers(self, status: int, headers: Headers) -> Headers:
        """The HEADERS block of a response: ``:status``, server defaults, the app's fields."""
        return response_block(
            status,
            headers,
            self.state.default_headers,
            self._default_names,
            self.config,
            _header_fields,
        )

    def retire(self, stream: _Stream) -> None:
        """A stream is over for h2 and for its app: forget it."""
        if self.streams.pop(stream.id, None) is None or self._closing:
            return
        if not self.streams:
            if self._goaway_sent or self._eof:
                self._close()
                return
            self._idle_since = self._loop.time()
            self._arm(self._idle_since + self.config.keep_alive_timeout)

    def _refuse(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)

    def _count_reset(self) -> None:
        now = self._loop.time()
        resets = self._resets
        resets.append(now)
        if len(resets) == resets.maxlen and now - resets[0] <= self.config.h2_reset_window:
            logger.info(
                "closing HTTP/2 connection from %s: more than %d stream resets in %.0fs",
                self._peer(),
                self.config.h2_max_resets,
                self.config.h2_reset_window,
            )
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM)

    # -- header block scanner (CONTINUATION flood) ---------------------------------------------

    def _scan(self, data: bytes) -> bool:
        """Follow frame boundaries in the raw bytes; False when the connection was closed.

        h2 only hands out a header block once its last CONTINUATION frame arrived, so the
        number and size of those frames are checked here, before h2 buffers them.
        """
        position = self._skip
        if self._partial:
            data = self._partial + data
            self._partial = b""
        size = len(data)
        while position + 9 <= size:
            kind = data[position + 3]
            length = (data[position] << 16) | (data[position + 1] << 8) | data[position + 2]
            if kind in _BLOCK_FRAMES and not self._header_frame(kind, data[position + 4], length):
                return False
            position += 9 + length
        if position < size:
            self._partial = data[position:]
            self._skip = 0
        else:
            self._skip = position - size
        return True

    def _header_frame(self, kind: int, flags: int, length: int) -> bool:
        if self._in_block:
            if kind != _CONTINUATION_FRAME:
                return True  # h2 reports the protocol error
            self._block_frames += 1
            self._block_bytes += length
            if flags & _END_HEADERS:
                self._in_block = False
            if (
                self._block_frames > self.config.h2_max_continuation_frames
                or self._block_bytes > self._block_limit
            ):
                logger.info(
                    "closing HTTP/2 connection from %s: header block of %d CONTINUATION "
                    "frames, %d bytes so far",
                    self._peer(),
                    self._block_frames,
                    self._block_bytes,
                )
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM)
                return False
        elif kind != _CONTINUATION_FRAME and not flags & _END_HEADERS:
            self._in_block = True
            self._block_frames = 0
            self._block_bytes = length
            self._block_started = self._loop.time()
        return True

    # -- writing -----------------------------------------------------------------------------

    def want_flush(self) -> None:
        """Write what h2 has queued at the end of this loop iteration (one write for all)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what h2 has queued now."""
        self._flush_scheduled = False
        transport = self.transport
        if self._closing or transport is None or transport.is_closing():
            return
        data = self.conn.data_to_send()
        if data:
            transport.write(data)

    def _goaway(self, code: int) -> None:
        """Send GOAWAY; streams up to the last one received may still complete."""
        if self._goaway_sent or self._closing or self.transport is None:
            return
        self._goaway_sent = True
        self._last_stream_id = self.conn.highest_inbound_stream_id
        self.flush()
        self.transport.write(goaway_frame(self._last_stream_id, code))

    def _fail(self, code: int) -> None:
        self._goaway(code)
        self._close()

    # -- timers --------------------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        if when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._closing:
            return
        now = self._loop.time()
        config = self.config
        deadline = math.inf
        if not self._preface_ok:
            deadline = self._opened_at + config.header_timeout
            if now >= deadline:
                logger.debug("no HTTP/2 preface from %s in time", self._peer())
                self._close()
                return
        if self._in_block:
            at = self._block_started + config.header_timeout
            if now >= at:
                logger.debug("incomplete HTTP/2 header block from %s", self._peer())
                self._fail(ErrorCodes.PROTOCOL_ERROR)
                return
            deadline = min(deadline, at)
        if not self.streams:
            at = self._idle_since + config.keep_alive_timeout
            if now >= at:
                self._fail(ErrorCodes.NO_ERROR)
                return
            deadline = min(deadline, at)
        if deadline < math.inf:
            self._arm(deadline)

    # -- closing -------------------------------------------------------------------------------

    def _close(self) -> None:
        if self._closing:
            return
        self.flush()
        transport = self.transport
        self._shut()
        if transport is not None:
            transport.close()

    def _shut(self) -> None:
        """No more I/O: tell every running exchange its client is gone."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.blocked.clear()
        for stream in list(self.streams.values()):
            stream.closed = True
            stream.pending.clear()
            stream.pending_size = 0
            if isinstance(stream, _WSStream):
                stream.transport.lost()
            elif not stream.app_done:
                stream.cycle.feed_disconnect()
            stream.wake()

    def shutdown(self) -> None:
        """GOAWAY(NO_ERROR): no new streams; close once the running ones are done."""
        if self._closing:
            return
        for stream in list(self.streams.values()):
            if isinstance(stream, _WSStream):
                # Close frames (1001) ahead of the GOAWAY: some clients read nothing after it.
                stream.ws.shutdown()
        self._goaway(ErrorCodes.NO_ERROR)
        if not self.streams:
            self._close()

    def abort(self) -> None:
        """Close now; running exchanges see ``http.disconnect``."""
        transport = self.transport
        if not self._closing:
            self._goaway(ErrorCodes.NO_ERROR)
            self._close()
        if transport is not None and transport.get_write_buffer_size():
            # The client is not reading: do not wait for it.
            transport.abort()

    def _peer(self) -> str:
        client = self.info.client
        return f"{client[0]}:{client[1]}" if client else "unix socket"
