"""What HTTP/2 and HTTP/3 share: a request arrives as one field list per stream.

Both protocols deliver a request head as a list of fields, pseudo-header fields first
(``:method``, ``:path``, ``:authority``), already checked by the protocol library (h2,
aioquic); both answer with a ``:status`` field block. The same request must get the same
scope, limits and refusals over either, so the head is read, the exchange is started and
the response block is built here, once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from .config import Config
from .connection import ConnectionInfo, http_extensions, http_scope
from .cycle import Headers, HTTPCycle, ResponseSink
from .state import ServerState, date_header
from .ws_stream import StreamTransport, WSStream

STATUS_BYTES = {code: str(code).encode() for code in range(100, 1000)}
_METHODS = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
}
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+\Z")


class RequestHead(NamedTuple):
    """One request's head, read from its field list."""

    method: str
    target: bytes
    headers: Headers
    declared_length: int
    #: ``(status, body)`` when the server refuses the request before the app sees it.
    reject: tuple[int, bytes] | None


def read_request_head(
    fields: Iterable[tuple[bytes, bytes]], config: Config, *, count_bytes: bool = False
) -> RequestHead:
    """Split off the pseudo-headers, give ``Host`` from ``:authority``, apply the limits.

    ``count_bytes``: also refuse (431) fields taking more than ``max_header_bytes``, counted
    as HPACK and QPACK do (name + value + 32 per field); HTTP/2 has h2 enforce that already.
    """
    method = path = authority = b""
    headers: Headers = []
    size = 0
    for name, value in fields:
        if count_bytes:
            size += len(name) + len(value) + 32
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
        else:
            headers.append((name, value))
    length = -1
    has_host = False
    for name, value in headers:
        if name == b"host":
            has_host = True
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    if authority and not has_host:
        headers.insert(0, (b"host", authority))
    reject = None
    text = _METHODS.get(method)
    if text is None:
        text = method.decode("latin-1")
        if not TOKEN.match(method):
            reject = (400, b"Invalid method")
    if len(headers) > config.max_header_count:
        reject = (431, b"Too many header fields")
    elif count_bytes and size > config.max_header_bytes:
        reject = (431, b"Request header fields too large")
    # CONNECT has only :authority (authority-form, as in HTTP/1.1).
    return RequestHead(text, path or authority, headers, length, reject)


class StreamSink(ResponseSink, Protocol):
    """A per-stream sink that keeps when its request arrived, for the access log."""

    started_at: float


def open_exchange(
    state: ServerState,
    info: ConnectionInfo,
    sink: StreamSink,
    head: RequestHead,
    *,
    http_version: str,
    ended: bool,
) -> HTTPCycle:
    """The scope and the cycle of one request stream (the app is not started yet)."""
    config = state.config
    scope = http_scope(
        config,
        info,
        state.lifespan_state,
        method=head.method,
        target=head.target,
        headers=head.headers,
        http_version=http_version,
    )
    scope["extensions"] = http_extensions(config)
    if state.access_log is not None:
        sink.started_at = time.time()
    return HTTPCycle(
        scope,
        sink,
        more_body=not ended,
        max_body_size=config.max_body_size,
        declared_length=head.declared_length,
        held_heads=state.held_heads,
    )


def start_app(state: ServerState, cycle: HTTPCycle, loop: Any) -> None:
    """Run the app for ``cycle`` as a task the server waits for at shutdown."""
    task = loop.create_task(cycle.run(state.app))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


def response_block(
    status: int,
    headers: Headers,
    defaults: Headers,
    default_names: frozenset[bytes],
    config: Config,
    header_fields: Any,
) -> Headers:
    """The field block of a response: ``:status``, server defaults, then the app's fields.

    ``header_fields(headers, block, names)`` appends the app's fields, checked for this
    protocol, and tells whether the app named one of ``names`` itself (then that default is
    left out).
    """
    block: Headers = [(b":status", STATUS_BYTES[status])]
    named_default = header_fields(headers, block, default_names)
    extra = defaults
    if config.date_header:
        extra = [*extra, (b"date", date_header())]
    if extra:
        if named_default:
            provided = {name for name, _ in block}
            extra = [h for h in extra if h[0] not in provided]
        block[1:1] = extra
    return block


def refuse_extended_connect(
    head: RequestHead, protocol: bytes, *, ended: bool, scheme_and_path: bool = True
) -> RequestHead:
    """The head with its refusal, if an extended CONNECT (RFC 8441 4, RFC 9220) is not a
    WebSocket this server can open: another ``:protocol`` (501), no ``:scheme``/``:path``, or
    a stream the client already ended (400)."""
    if head.reject is not None:
        return head
    if protocol != b"websocket":
        return head._replace(reject=(501, b"Unsupported :protocol"))
    if not scheme_and_path:
        return head._replace(reject=(400, b"Extended CONNECT needs :scheme and :path"))
    if ended:
        return head._replace(reject=(400, b"A WebSocket stream cannot be ended"))
    return head


class ConnectStream(WSStream, Protocol):
    """A stream that carries a WebSocket: the channel and transport its WebSocket uses."""

    transport: StreamTransport

    def send_response(self, status: int, headers: Headers, body: bytes, end: bool) -> None: ...

    def send_body(self, data: bytes, end: bool) -> None: ...


def attach_websocket(
    state: ServerState,
    info: ConnectionInfo,
    stream: ConnectStream,
    head: RequestHead,
    *,
    http_version: str,
) -> None:
    """Give ``stream`` its WebSocket (the ASGI ``websocket`` scope) and transport.

    The caller registers the stream, then calls ``stream.ws.connection_made(stream.transport)``.
    """
    from .websocket import ConnectWSProtocol

    scope = http_scope(
        state.config,
        info,
        state.lifespan_state,
        method=head.method,
        target=head.target,
        headers=head.headers,
        http_version=http_version,
        scope_type="websocket",
    )
    stream.transport = StreamTransport(stream)
    stream.ws = ConnectWSProtocol(state, info, scope, stream)
