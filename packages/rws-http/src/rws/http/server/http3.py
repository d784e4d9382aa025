"""HTTP/3 on aioquic: the QUIC endpoint, one protocol per connection, one sink per request.

aioquic owns QUIC and HTTP/3 state (``QuicConnection`` + ``H3Connection``); :class:`H3Protocol`
turns its events into one :class:`~rws.http.server.cycle.HTTPCycle` per request stream, the
same bridge HTTP/1.1 and HTTP/2 use, so the app sees the same ASGI scope and messages
(``http_version`` ``"3"``, ``scheme`` ``https``). This module is imported only when
``quic_bind`` is set; without the ``rws-http[h3]`` extra the server refuses to start with
an error that says to ``pip install 'rws-http[h3]'``.

Flow control and buffering, both ways:

* Response bodies: aioquic takes every byte it is given and sends it as QUIC flow and
  congestion control allow. The application's ``send()`` waits while more than
  ``write_buffer_size`` bytes of its stream have not been put on the wire yet; the wait ends
  when a later transmission (driven by the client's ACKs and flow-control updates) brings it
  under. aioquic has no public call for that number, so it is read from the stream's sender
  (:func:`_unsent`, a private attribute); were a future aioquic to rename it, ``send()``
  would stop waiting and responses would be buffered whole -- ``aioquic<2`` is pinned.
* Request bodies: aioquic grants flow-control credit as data arrives, not as the app reads
  it, so the server cannot slow a client down to the app's pace. What a stream may hold
  unread is bounded instead: past the request's ``max_body_size`` (at most 64 MiB) of unread
  body the request is answered 413 (or its stream reset once the response has started), and the
  client is asked to stop sending (STOP_SENDING).

Limits: a request with more than ``max_header_count`` fields, or whose fields take more than
``max_header_bytes`` (name + value + 32 per field, as HTTP/2 and QPACK count them) is
answered 431 before the app runs. aioquic decodes a HEADERS frame only once it is complete,
so its size is bounded by the QUIC stream window (1 MiB). ``quic_max_idle_timeout`` closes
silent connections; past ``quic_max_connections`` open connections on one endpoint a new
one is closed at its first packet with CONNECTION_REFUSED. 0-RTT is off: no session tickets
are issued, so nothing can be replayed.

Shutdown: :meth:`H3Protocol.shutdown` sends GOAWAY on the HTTP/3 control stream (aioquic has
no call for it; the frame is written on its control stream), refuses streams opened after it
with H3_REQUEST_REJECTED, and closes the connection with H3_NO_ERROR once the running
requests are done and the client has acknowledged their responses (closing earlier would
drop what aioquic has not sent yet; :meth:`QuicEndpoint.wait_flushed` bounds that wait by
``graceful_timeout``). :meth:`H3Protocol.abort` closes at once; running apps see
``http.disconnect``.

WebSocket (RFC 9220): aioquic's SETTINGS carry SETTINGS_ENABLE_CONNECT_PROTOCOL=1, and a
CONNECT with ``:protocol websocket`` opens a :class:`_WSStream` served by
:class:`~rws.http.server.websocket.ConnectWSProtocol`, the code WebSocket over HTTP/2 uses, over
a :class:`~rws.http.server.ws_stream.StreamTransport` (write: DATA, close: FIN, abort: reset
with H3_REQUEST_CANCELLED;
``send()`` waits as a response body's does). Any other ``:protocol`` is answered 501. As for
request bodies, aioquic cannot hold flow-control credit back from a client that sends faster
than the app reads: past :data:`MAX_UNREAD` bytes received while the WebSocket is not reading,
its stream is reset (the app sees code 1006).

Not supported: server push, WebTransport, ``Expect: 100-continue`` and connection migration
checks beyond aioquic's own.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:  # the [h3] extra; server.py turns its absence into a ConfigError naming the extra
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.asyncio.server import QuicServer
    from aioquic.buffer import encode_uint_var
    from aioquic.h3.connection import H3_ALPN, ErrorCode, FrameType, H3Connection, encode_frame
    from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import (
        ConnectionTerminated,
        ProtocolNegotiated,
        QuicEvent,
        StopSendingReceived,
        StreamReset,
    )
    from aioquic.quic.packet import QuicErrorCode
except ModuleNotFoundError as exc:
    exc.msg = f"{exc.msg} (HTTP/3 needs the extra: pip install 'rws-http[h3]')"
    raise

from .access import log_exchange
from .config import Config
from .connection import ConnectionInfo
from .cycle import Headers, HTTPCycle
from .http2 import InvalidHeadersError, _header_fields
from .state import ServerState
from .streams import (
    STATUS_BYTES,
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
    from .websocket import ConnectWSProtocol

logger = logging.getLogger("rws.http.error")

#: Per-stream and per-connection QUIC receive windows (aioquic doubles them as data is read).
STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 4 * 1024 * 1024
#: Most unread request body a stream may hold (its ``max_body_size`` when that is smaller).
MAX_UNREAD = 64 * 1024 * 1024

#: Server default headers that make no sense on an HTTP/3 response.
_NOT_FOR_H3 = frozenset({b"alt-svc"})


def _unsent(quic: QuicConnection, stream_id: int) -> int:
    """Bytes written to a stream that aioquic has not put in a packet yet (0 if unknown)."""
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0
    sender = stream.sender
    stop = getattr(sender, "_buffer_stop", None)
    sent = getattr(sender, "highest_offset", None)
    if not isinstance(stop, int) or not isinstance(sent, int):
        return 0
    return max(stop - sent, 0)


def _sent_all(quic: QuicConnection, stream_id: int) -> bool:
    """Has the client acknowledged everything sent on this stream (or its reset)?"""
    stream = quic._streams.get(stream_id)
    return stream is None or bool(getattr(stream.sender, "is_finished", True))


def quic_configuration(config: Config) -> QuicConfiguration:
    """The server's QUIC settings: ALPN h3, the TLS certificate, windows and idle timeout."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from .tls import TLSConfigError

    assert config.certfile is not None
    quic = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        idle_timeout=config.quic_max_idle_timeout,
        max_data=CONNECTION_WINDOW,
        max_stream_data=STREAM_WINDOW,
    )
    try:
        with open(config.certfile, "rb") as handle:
            cert_pem = handle.read()
        certificates = x509.load_pem_x509_certificates(cert_pem)
        key_pem = cert_pem
        if config.keyfile is not None:
            with open(config.keyfile, "rb") as handle:
                key_pem = handle.read()
        match = re.search(
            rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----",
            key_pem,
            re.S,
        )
        if match is None:
            raise ValueError("no private key found")
        password = config.keyfile_password.encode() if config.keyfile_password else None
        quic.private_key = load_pem_private_key(match.group(0), password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise TLSConfigError(
            f"cannot load the certificate and key for HTTP/3: {exc}", config.certfile
        ) from None
    quic.certificate = certificates[0]
    quic.certificate_chain = certificates[1:]
    return quic


class QuicEndpoint:
    """One UDP socket serving HTTP/3 (made by :meth:`open`)."""

    def __init__(self, transport: asyncio.DatagramTransport, server: QuicServer) -> None:
        self.transport = transport
        self.server = server
        #: Every connection of this endpoint, to stop their timers once it is closed.
        self.protocols: weakref.WeakSet[H3Protocol] = weakref.WeakSet()

    @classmethod
    async def open(
        cls,
        state: ServerState,
        host: str,
        port: int,
        configuration: QuicConfiguration,
        *,
        sock: socket.socket | None = None,
    ) -> QuicEndpoint:
        """Bind ``host:port`` (UDP; port 0 picks one, see :attr:`port`) and serve HTTP/3.

        ``sock``: a UDP socket already bound to that address, served instead of binding one
        (a worker's socket of a ``SO_REUSEPORT`` group, see ``listeners.open_quic_sockets``).
        """
        loop = asyncio.get_running_loop()
        endpoint: QuicEndpoint | None = None

        def create_protocol(quic: QuicConnection, **_: Any) -> H3Protocol:
            protocol = H3Protocol(quic, state=state)
            if endpoint is not None:
                protocols = endpoint.protocols
                open_now = sum(1 for p in protocols if not p.closing)
                if open_now >= state.config.quic_max_connections:
                    protocol.refuse = True
                protocols.add(protocol)
            return protocol

        def create_server() -> QuicServer:
            return QuicServer(configuration=configuration, create_protocol=create_protocol)

        if sock is not None:
            transport, server = await loop.create_datagram_endpoint(create_server, sock=sock)
        else:
            transport, server = await loop.create_datagram_endpoint(
                create_server, local_addr=(host, port)
            )
        endpoint = cls(transport, server)
        return endpoint

    @property
    def address(self) -> str:
        """``HOST:PORT`` (``[IPv6]:PORT``) actually bound."""
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.transport.get_extra_info("sockname")[1])

    async def wait_flushed(self, seconds: float) -> None:
        """Wait (at most ``seconds``) until every connection has closed by itself.

        After GOAWAY a connection closes once its last response has been acknowledged:
        closing earlier would drop what aioquic has not sent yet.
        """
        waiters = {
            asyncio.ensure_future(protocol.closed.wait())
            for protocol in list(self.protocols)
            if not protocol.closing
        }
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=seconds)
        for waiter in pending:
            waiter.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def close(self) -> None:
        """Close every connection (CONNECTION_CLOSE) and the socket."""
        for protocol in list(self.protocols):
            protocol.abort()
        self.server.close()
        for protocol in list(self.protocols):
            protocol.stop_timer()


class _Stream:
    """One request stream: the :class:`~rws.http.server.cycle.ResponseSink` of its cycle."""

    __slots__ = (
        "app_done",
        "closed",
        "cycle",
        "id",
        "protocol",
        "request_ended",
        "request_trailers",
        "started_at",
        "waiter",
    )

    cycle: HTTPCycle

    def __init__(self, protocol: H3Protocol, stream_id: int, request_ended: bool) -> None:
        self.protocol = protocol
        self.id = stream_id
        self.request_ended = request_ended
        self.request_trailers: Headers | None = None
        #: Nothing more can be sent: the response ended, or the stream was reset.
        self.closed = False
        self.app_done = False
        self.waiter: asyncio.Future[None] | None = None
        self.started_at = 0.0

    # -- ResponseSink --------------------------------------------------------------------------

    def send_informational(self, status: int, headers: Headers) -> None:
        if self.closed or self.protocol.closing:
            return
        block: Headers = [(b":status", STATUS_BYTES[status])]
        try:
            _header_fields(headers, block)
        except InvalidHeadersError:
            return
        self._h3(lambda h3: h3.send_headers(self.id, block, False))

    def send_head(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        protocol = self.protocol
        if self.closed or protocol.closing:
            return
        try:
            block = protocol.response_headers(status, headers)
        except (InvalidHeadersError, TypeError, ValueError) as exc:
            cycle = self.cycle
            if cycle.started and status != 500:
                cycle.started = False  # the cycle answers 500 instead
                raise RuntimeError(f"invalid HTTP response from the application: {exc}") from None
            self._reset(ErrorCode.H3_INTERNAL_ERROR)
            return

        def send(h3: H3Connection) -> None:
            h3.send_headers(self.id, block, end and not body)
            if body:
                h3.send_data(self.id, body, end)

        if self._h3(send) and end:
            self._ended()

    def send_data(self, data: bytes, end: bool) -> None:
        if self.closed or self.protocol.closing:
            return
        if self._h3(lambda h3: h3.send_data(self.id, data, end)) and end:
            self._ended()

    def send_trailers(self, headers: Headers) -> None:
        if self.closed or self.protocol.closing:
            return
        block: Headers = []
        _header_fields(headers, block)
        if block:
            sent = self._h3(lambda h3: h3.send_headers(self.id, block, True))
        else:
            sent = self._h3(lambda h3: h3.send_data(self.id, b"", True))
        if sent:
            self._ended()

    async def drain(self) -> None:
        protocol = self.protocol
        if self.closed or protocol.closing:
            return
        if _unsent(protocol._quic, self.id) <= protocol.buffer_limit:
            return
        waiter = self.waiter = protocol._loop.create_future()
        protocol.waiting[self.id] = self
        try:
            await waiter
        finally:
            self.waiter = None
            protocol.waiting.pop(self.id, None)

    def body_consumed(self, size: int) -> None:
        """Nothing to do: aioquic opens the QUIC receive windows by itself."""

    def abort(self) -> None:
        self._reset(ErrorCode.H3_INTERNAL_ERROR)

    def done(self, cycle: HTTPCycle) -> None:
        self.app_done = True
        protocol = self.protocol
        if protocol.state.access_log is not None:
            log_exchange(protocol.state, cycle, self.started_at)
        if self.closed:
            protocol.retire(self)

    # -- helpers -------------------------------------------------------------------------------

    def _h3(self, action: Callable[[H3Connection], None]) -> bool:
        protocol = self.protocol
        h3 = protocol.h3
        if h3 is None:
            return False
        try:
            action(h3)
        except Exception as exc:  # aioquic: stream reset or finished, frame not allowed
            logger.debug("HTTP/3 stream %d cannot send: %r", self.id, exc)
            self._forget()
            return False
        protocol.transmit_soon()
        return True

    def _ended(self) -> None:
        """The whole response is with aioquic."""
        if not self.request_ended:
            # The exchange is over: ask the client to stop sending its body (RFC 9114 4.1.1).
            self.protocol.stop_receiving(self.id, ErrorCode.H3_NO_ERROR)
        self._forget()

    def _reset(self, code: int) -> None:
        protocol = self.protocol
        if not self.closed and not protocol.closing:
            try:
                protocol._quic.reset_stream(self.id, code)
            except Exception as exc:  # already finished or discarded
                logger.debug("cannot reset HTTP/3 stream %d: %r", self.id, exc)
            if not self.request_ended:
                protocol.stop_receiving(self.id, code)
            protocol.transmit_soon()
        self._forget()

    def _forget(self) -> None:
        self.closed = True
        self.wake()
        if self.app_done:
            self.protocol.retire(self)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _WSStream(_Stream):
    """A stream opened by an extended CONNECT (RFC 9220) that carries a WebSocket.

    The :class:`~rws.http.server.websocket.ConnectChannel` of its
    :class:`~rws.http.server.websocket.ConnectWSProtocol`, which sees it through a
    :class:`~rws.http.server.ws_stream.StreamTransport`.
    """

    __slots__ = ("held", "reading_paused", "transport", "ws")

    ws: ConnectWSProtocol
    transport: StreamTransport

    def __init__(self, protocol: H3Protocol, stream_id: int) -> None:
        super().__init__(protocol, stream_id, False)
        #: Bytes received while the WebSocket is not reading (aioquic cannot hold them back).
        self.held = 0
        self.reading_paused = False

    def send_response(self, status: int, headers: Headers, body: bytes, end: bool) -> None:
        protocol = self.protocol
        if self.closed or protocol.closing:
            return
        try:
            block = protocol.response_headers(status, headers)
        except (InvalidHeadersError, TypeError, ValueError) as exc:
            raise RuntimeError(f"invalid WebSocket response: {exc}") from None

        def send(h3: H3Connection) -> None:
            h3.send_headers(self.id, block, end and not body)
            if body:
                h3.send_data(self.id, body, end)

        if self._h3(send) and end:
            self._ended()
        self.transport.hold_if_full()

    def send_body(self, data: bytes, end: bool) -> None:
        self.send_data(data, end)
        self.transport.hold_if_full()

    def received(self, size: int) -> bool:
        """Count ``size`` bytes for the WebSocket; False when too much waits unread."""
        if not self.reading_paused:
            return True
        self.held += size
        return self.held <= MAX_UNREAD

    # -- WSStream, for the StreamTransport --------------------------------------------------

    def peer_transport(self) -> asyncio.BaseTransport | None:
        return self.protocol._transport

    def write_backlog(self) -> int:
        """Unsent bytes past ``write_buffer_size`` (0 below it: those go out by themselves)."""
        protocol = self.protocol
        if self.closed or protocol.closing:
            return 0
        unsent = _unsent(protocol._quic, self.id)
        return unsent if unsent > protocol.buffer_limit else 0

    def drain_waiter(self) -> asyncio.Future[None]:
        protocol = self.protocol
        protocol.waiting[self.id] = self
        return protocol._loop.create_future()

    def drain_done(self, waiter: asyncio.Future[None]) -> None:
        self.protocol.waiting.pop(self.id, None)

    def cancel(self) -> None:
        self._reset(ErrorCode.H3_REQUEST_CANCELLED)

    def release_held(self) -> None:
        self.held = 0  # aioquic granted the credit already; only the unread count resets

    def retire(self) -> None:
        self.protocol.retire(self)

    def _ended(self) -> None:
        if not self.ws.accepted:
            super()._ended()  # a refusal: as for any response, STOP_SENDING if needed
            return
        # The FIN after a WebSocket is its TCP FIN: the client ends its side in turn.
        self._forget()


class H3Protocol(QuicConnectionProtocol):
    """One QUIC connection carrying HTTP/3."""

    def __init__(self, quic: QuicConnection, *, state: ServerState) -> None:
        super().__init__(quic)
        self.state = state
        self.config: Config = state.config
        self.h3: H3Connection | None = None
        self.info: ConnectionInfo | None = None
        self.streams: dict[int, _Stream] = {}
        #: Streams whose app waits in ``drain()`` for its response to go out.
        self.waiting: dict[int, _Stream] = {}
        self.buffer_limit = state.config.write_buffer_size
        #: Over ``quic_max_connections``: closed with CONNECTION_REFUSED at its first packet.
        self.refuse = False
        self._closing = False
        #: Set once the connection is over for HTTP/3 (closed, or terminated by aioquic).
        self.closed = asyncio.Event()
        #: Finished streams whose last bytes the client may not have acknowledged yet.
        self._unflushed: set[int] = set()
        self._goaway_sent = False
        #: Streams opened after this id are refused (GOAWAY).
        self._last_stream_id = -1
        self._default_names = frozenset(name for name, _ in state.default_headers) | {b"date"}
        self._defaults = [h for h in state.default_headers if h[0] not in _NOT_FOR_H3]

    @property
    def closing(self) -> bool:
        return self._closing

    # -- asyncio / aioquic callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.state.connections.add(self)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if self.info is None:
            assert self._transport is not None
            local = self._transport.get_extra_info("sockname")
            self.info = ConnectionInfo(
                client=(str(addr[0]), int(addr[1])),
                server=(str(local[0]), int(local[1])) if local else None,
                scheme="https",
                tls=True,
                alpn="h3",
            )
        if self.refuse and not self._closing:
            # Read the client's Initial (its keys are needed to answer), but send nothing
            # of a handshake: only CONNECTION_CLOSE goes out.
            logger.warning(
                "refusing a QUIC connection from %s: quic_max_connections (%d) reached",
                addr[0],
                self.config.quic_max_connections,
            )
            if isinstance(data, bytes):
                self._quic.receive_datagram(data, addr, now=self._loop.time())
            self._shut()
            self.close(error_code=QuicErrorCode.CONNECTION_REFUSED, reason_phrase="busy")
            return
        super().datagram_received(data, addr)

    def transmit(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            # The endpoint is closed: nothing can be sent, no timer is needed.
            self.stop_timer()
            return
        super().transmit()
        if self._goaway_sent and not self._closing:
            self._close_if_flushed()
        if self.waiting:
            limit = self.buffer_limit
            quic = self._quic
            for stream in list(self.waiting.values()):
                if stream.closed or _unsent(quic, stream.id) <= limit:
                    stream.wake()

    def transmit_soon(self) -> None:
        self._transmit_soon()

    def stop_timer(self) -> None:
        """The endpoint is closed: no timer (loss recovery, idle, draining) can do anything."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transmit_task is not None:
            self._transmit_task.cancel()
            self._transmit_task = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated):
            if event.alpn_protocol in H3_ALPN and self.h3 is None:
                self.h3 = H3Connection(self._quic)
                if self.state.shutting_down:
                    self.shutdown()
            return
        if isinstance(event, ConnectionTerminated):
            self._shut()
            return
        if isinstance(event, StreamReset | StopSendingReceived):
            stream = self.streams.get(event.stream_id)
            stop = isinstance(event, StopSendingReceived)
            if stream is not None and (stop or not stream.request_ended):
                # The client cancelled the request (or will not read the response).
                if isinstance(stream, _WSStream):
                    stream.transport.lost()  # no Close frame can come (or be read) any more
                elif not stream.app_done:
                    stream.cycle.feed_disconnect()
                if stop:
                    stream._forget()
                else:
                    stream._reset(ErrorCode.H3_REQUEST_CANCELLED)
        h3 = self.h3
        if h3 is None or self._closing:
            return
        for h3_event in h3.handle_event(event):
            self._h3_event(h3_event)
            if self.closing:
                return

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                if event.push_id is None:
                    self._on_request(event)
            else:
                self._on_trailers(stream, event)
        elif isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._on_data(stream, event)

    # -- requests ------------------------------------------------------------------------------

    def _on_request(self, event: HeadersReceived) -> None:
        stream_id = event.stream_id
        if self._goaway_sent and stream_id > self._last_stream_id:
            # Opened after our GOAWAY: not processed, the client may retry elsewhere.
            self._refuse(stream_id)
            return
        head = read_request_head(event.headers, self.config, count_bytes=True)
        ended = event.stream_ended
        if head.method == "CONNECT":
            pseudo = {name: value for name, value in event.headers if name[:1] == b":"}
            protocol = pseudo.get(b":protocol")
            if protocol is not None:
                self._extended_connect(stream_id, head, pseudo, ended=ended)
                return
        self._open_stream(stream_id, head, ended=ended)

    def _open_stream(self, stream_id: int, head: RequestHead, *, ended: bool) -> None:
        state = self.state
        assert self.info is not None
        stream = _Stream(self, stream_id, ended)
        cycle = open_exchange(state, self.info, stream, head, http_version="3", ended=ended)
        stream.cycle = cycle
        self.streams[stream_id] = stream
        if head.reject is not None:
            cycle.respond(*head.reject)
            return
        start_app(state, cycle, self._loop)

    def _extended_connect(
        self, stream_id: int, head: RequestHead, pseudo: dict[bytes, bytes], *, ended: bool
    ) -> None:
        """A CONNECT with ``:protocol`` (RFC 9220): a WebSocket, or refused.

        aioquic's SETTINGS always carry SETTINGS_ENABLE_CONNECT_PROTOCOL=1, and it accepts
        ``:protocol`` in any request; what RFC 8441 4 asks of the request is checked here.
        """
        head = refuse_extended_connect(
            head,
            pseudo[b":protocol"],
            ended=ended,
            scheme_and_path=bool(pseudo.get(b":scheme") and pseudo.get(b":path")),
        )
        if head.reject is not None:
            self._open_stream(stream_id, head, ended=ended)
            return
        assert self.info is not None
        stream = _WSStream(self, stream_id)
        attach_websocket(self.state, self.info, stream, head, http_version="3")
        self.streams[stream_id] = stream
        stream.ws.connection_made(stream.transport)

    def _on_ws_data(self, stream: _WSStream, event: DataReceived) -> None:
        data = event.data
        if data and not stream.app_done:
            if not stream.received(len(data)):
                # The app is behind and aioquic gives the client credit regardless: drop it.
                logger.info(
                    "WebSocket on HTTP/3 stream %d: more than %d bytes unread; resetting it",
                    stream.id,
                    MAX_UNREAD,
                )
                stream.transport.abort()
                return
            stream.ws.data_received(data)
        if event.stream_ended:
            self._on_ws_end(stream)

    def _on_ws_end(self, stream: _WSStream) -> None:
        # The peer's FIN: end ours too (after its Close frame, we have already).
        stream.request_ended = True
        stream.transport.close()

    def _on_data(self, stream: _Stream, event: DataReceived) -> None:
        if stream.request_ended:
            return
        if isinstance(stream, _WSStream):
            self._on_ws_data(stream, event)
            return
        data = event.data
        if data and not stream.app_done:
            cycle = stream.cycle
            unread_cap = cycle.max_body_size
            if not unread_cap or unread_cap > MAX_UNREAD:
                unread_cap = MAX_UNREAD
            if not cycle.feed_body(data) or cycle.buffered > unread_cap:
                if cycle.started:
                    stream._reset(ErrorCode.H3_REQUEST_CANCELLED)
                else:
                    cycle.respond(413, b"Request body too large")
                cycle.feed_disconnect()
                return
        if event.stream_ended:
            self._on_end(stream)

    def _on_trailers(self, stream: _Stream, event: HeadersReceived) -> None:
        if stream.request_ended:
            return
        if isinstance(stream, _WSStream):
            if event.stream_ended:  # for a WebSocket, what counts is the FIN they carry
                self._on_ws_end(stream)
            return
        if len(event.headers) > self.config.max_header_count:
            if not stream.app_done:
                stream.cycle.feed_disconnect()
            stream._reset(ErrorCode.H3_EXCESSIVE_LOAD)
            return
        stream.request_trailers = list(event.headers)
        if event.stream_ended:
            self._on_end(stream)

    def _on_end(self, stream: _Stream) -> None:
        stream.request_ended = True
        if not stream.app_done:
            stream.cycle.feed_end(stream.request_trailers)

    # -- streams -------------------------------------------------------------------------------

    def response_headers(self, status: int, headers: Headers) -> Headers:
        """The HEADERS block of a response: ``:status``, server defaults, the app's fields."""
        return response_block(
            status, headers, self._defaults, self._default_names, self.config, _header_fields
        )

    def retire(self, stream: _Stream) -> None:
        """A stream is over for aioquic and for its app: forget it."""
        if self.streams.pop(stream.id, None) is None or self._closing:
            return
        unflushed = self._unflushed
        unflushed.add(stream.id)
        if len(unflushed) > 64:
            quic = self._quic
            self._unflushed = {i for i in unflushed if not _sent_all(quic, i)}
        if self._goaway_sent:
            self._close_if_flushed()

    def _close_if_flushed(self) -> None:
        """After GOAWAY: close once no request runs and every response was acknowledged."""
        if self.streams:
            return
        quic = self._quic
        self._unflushed = {i for i in self._unflushed if not _sent_all(quic, i)}
        if not self._unflushed:
            self._close()

    def stop_receiving(self, stream_id: int, code: int) -> None:
        try:
            self._quic.stop_stream(stream_id, code)
        except Exception as exc:  # the receiving side is already over
            logger.debug("cannot stop HTTP/3 stream %d: %r", stream_id, exc)
        self.transmit_soon()

    def _refuse(self, stream_id: int) -> None:
        try:
            self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
        except Exception as exc:
            logger.debug("cannot refuse HTTP/3 stream %d: %r", stream_id, exc)
        self.stop_receiving(stream_id, ErrorCode.H3_REQUEST_REJECTED)

    # -- closing -------------------------------------------------------------------------------

    def _goaway(self) -> None:
        """GOAWAY: requests on streams up to the last one received still complete."""
        if self._goaway_sent:
            return
        self._goaway_sent = True
        self._last_stream_id = max(self.streams, default=-4)
        h3 = self.h3
        control = getattr(h3, "_local_control_stream_id", None)
        if h3 is None or not isinstance(control, int):
            return
        # The first stream id the client may *not* use any more (RFC 9114 5.2).
        frame = encode_frame(FrameType.GOAWAY, encode_uint_var(self._last_stream_id + 4))
        try:
            self._quic.send_stream_data(control, frame)
        except Exception as exc:
            logger.debug("cannot send HTTP/3 GOAWAY: %r", exc)
        self.transmit_soon()

    def _close(self, code: int = ErrorCode.H3_NO_ERROR) -> None:
        if self._closing:
            return
        self._shut()
        self.close(error_code=code)

    def _shut(self) -> None:
        """No more I/O: tell every running exchange its client is gone."""
        self._closing = True
        self.closed.set()
        self.state.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.closed = True
            if isinstance(stream, _WSStream):
                stream.transport.lost()
            elif not stream.app_done:
                stream.cycle.feed_disconnect()
            stream.wake()
        self.streams.clear()

    def shutdown(self) -> None:
        """GOAWAY; close once the running requests are done."""
        if self._closing:
            return
        for stream in list(self.streams.values()):
            if isinstance(stream, _WSStream):
                # Close frames (1001) ahead of the GOAWAY: some clients read nothing after it.
                stream.ws.shutdown()
        self._goaway()
        self._close_if_flushed()

    def abort(self) -> None:
        """Close now; running exchanges see ``http.disconnect``."""
        if not self._closing:
            self._goaway()
            self._close()
