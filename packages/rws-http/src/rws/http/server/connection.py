"""What every protocol needs to know about its connection, and the ASGI scope built from it."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .config import Config


@dataclass(slots=True)
class ConnectionInfo:
    """Addresses and transport facts of one client connection.

    ``client`` may be replaced by a PROXY protocol header; ``scheme`` is ``http`` or ``https``
    (the WebSocket layer maps it to ``ws``/``wss``).
    """

    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    tls: bool
    alpn: str | None = None

    @classmethod
    def from_transport(cls, transport: asyncio.BaseTransport) -> ConnectionInfo:
        ssl_object = transport.get_extra_info("ssl_object")
        sock: socket.socket | None = transport.get_extra_info("socket")
        client: tuple[str, int] | None = None
        server: tuple[str, int | None] | None = None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            peer = transport.get_extra_info("peername")
            local = transport.get_extra_info("sockname")
            client = (str(peer[0]), int(peer[1])) if peer else None
            server = (str(local[0]), int(local[1])) if local else None
        elif sock is not None and sock.family == socket.AF_UNIX:
            local = transport.get_extra_info("sockname")
            server = (str(local), None) if local else None
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        return cls(
            client=client,
            server=server,
            scheme="https" if ssl_object is not None else "http",
            tls=ssl_object is not None,
            alpn=alpn,
        )


_ASGI = {"version": "3.0", "spec_version": "2.4"}


def split_target(target: bytes) -> tuple[bytes, bytes, bytes | None]:
    """``(raw_path, query_string, authority)``; absolute-form targets carry an authority."""
    authority = None
    if target[:1] != b"/" and b"://" in target[:10]:
        # absolute-form: http://host:port/path?query (RFC 9112 3.2.2); its host wins.
        _, _, rest = target.partition(b"://")
        authority, slash, rest = rest.partition(b"/")
        target = b"/" + rest if slash else b"/"
    raw_path, _, query = target.partition(b"?")
    return raw_path, query, authority


def http_scope(
    config: Config,
    info: ConnectionInfo,
    state: dict[str, Any],
    *,
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    http_version: str,
    scope_type: str = "http",
) -> dict[str, Any]:
    """The ASGI scope for one request; ``path`` includes ``root_path`` (ASGI 2.4)."""
    raw_path, query, authority = split_target(target)
    if authority is not None:
        headers = [(n, v) for n, v in headers if n != b"host"]
        headers.append((b"host", authority))
    root = config.root_path
    path = unquote(raw_path.decode("latin-1"))
    scope: dict[str, Any] = {
        "type": scope_type,
        "asgi": _ASGI,
        "http_version": http_version,
        "server": info.server,
        "client": info.client,
        "scheme": info.scheme if scope_type == "http" else ("wss" if info.tls else "ws"),
        "method": method,
        "root_path": root,
        "path": root + path if root else path,
        "raw_path": root.encode() + raw_path if root else raw_path,
        "query_string": query,
        "headers": headers,
        "state": state.copy(),
    }
    if scope_type == "websocket":
        del scope["method"]
        scope["subprotocols"] = websocket_subprotocols(headers)
    return scope


def http_extensions(config: Config) -> dict[str, Any]:
    """The ASGI extensions an HTTP request's scope advertises (a fresh dict: apps may edit it).

    ``rws.http.body_limit`` carries this server's default body limit; an app changes it for
    one request by sending ``{"type": "rws.http.body_limit", "max_body_size": N}`` before it
    reads the body or starts its response (0: no limit). ``rws.http.request_trailers``: the
    last ``http.request`` message of a request that had trailer fields carries them as
    ``"trailers"`` (a list of ``(name, value)`` byte pairs, names lowercased).
    ``http.response.early_hint``: ``{"type": "http.response.early_hint", "links": [...]}``
    before ``http.response.start`` sends a ``103 Early Hints`` at once (not to HTTP/1.0).
    """
    return {
        "http.response.trailers": {},
        "http.response.pathsend": {},
        "http.response.early_hint": {},
        "rws.http.body_limit": {"max_body_size": config.max_body_size},
        "rws.http.request_trailers": {},
    }


def websocket_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The subprotocols a client offers in ``Sec-WebSocket-Protocol``, in its order."""
    return [
        token
        for name, value in headers
        if name == b"sec-websocket-protocol"
        for token in (part.strip() for part in value.decode("latin-1").split(","))
        if token
    ]
