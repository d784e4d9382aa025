"""Turn ``--bind`` strings into listening sockets.

Sockets are created here rather than by ``loop.create_server(host, port)`` so that worker
processes can inherit the very same sockets and so that port 0 (tests) reports its real port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from .config import ConfigError


@dataclass(frozen=True, slots=True)
class BindAddress:
    family: socket.AddressFamily
    host: str
    port: int
    path: str | None = None
    fd: int | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        if self.fd is not None:
            return f"fd://{self.fd}"
        host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
        return f"{host}:{self.port}"


def parse_bind(value: str) -> BindAddress:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``unix:/path`` or ``fd://N``."""
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if not path:
            raise ConfigError(f"bind {value!r}: the unix socket needs a path")
        return BindAddress(socket.AF_UNIX, "", 0, path=path)
    if value.startswith("fd://"):
        try:
            return BindAddress(socket.AF_INET, "", 0, fd=int(value[len("fd://") :]))
        except ValueError:
            raise ConfigError(f"bind {value!r}: fd:// needs a file descriptor number") from None
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        family = socket.AF_INET6
    else:
        host, sep, port_text = value.rpartition(":")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"bind {value!r} is not HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N")
    if not host:
        host = "0.0.0.0"  # noqa: S104 - ":8000" means every interface, as elsewhere
    return BindAddress(family, host, int(port_text))


def open_listener(address: BindAddress, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking socket; errors name the address."""
    try:
        if address.fd is not None:
            sock = socket.socket(fileno=address.fd)
        elif address.path is not None:
            _remove_stale_unix_socket(address.path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address.path)
            os.chmod(address.path, 0o660)
        else:
            # IPPROTO_TCP explicitly: accepted sockets inherit it, and asyncio only turns
            # Nagle off (TCP_NODELAY) on sockets that say they are TCP. Without it, the last
            # write of a streamed response waits ~40 ms for the client's delayed ACK.
            sock = socket.socket(address.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if address.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
    return sock


def open_quic_sockets(values: Sequence[str], workers: int) -> list[list[socket.socket]]:
    """For ``workers`` processes, one UDP socket per ``quic_bind`` address each: slot ``i``'s
    list is what worker ``i`` serves HTTP/3 on (in the order of ``values``).

    QUIC is connection-oriented over connectionless UDP: a connection's state lives in the one
    process that accepted it, so every datagram of that connection must reach that process.
    One UDP socket read by several workers would hand them out at random. Instead, each
    address gets ``workers`` sockets bound to the same port with ``SO_REUSEPORT``; Linux
    hashes a datagram's source and destination address and port to one socket of that group,
    so one client address keeps reaching one worker. (Port 0 binds the first socket to a
    free port and the others to that port.)

    All of them are opened here, in the supervisor, and socket ``i`` goes to worker ``i`` only;
    the supervisor keeps its copies open and never reads them. This keeps the group exactly
    ``workers`` sockets, each with one live reader, and keeps it stable: a worker that dies
    does not take its socket out of the group (which would re-hash every client onto other
    sockets and break the connections the surviving workers hold); the datagrams that arrive
    for its slot meanwhile wait in the socket's buffer for the worker restarted on that same
    socket. Binding each worker's socket in the worker instead would have neither property,
    and a socket kept by the supervisor only to reserve the port would take a share of the
    traffic that nobody reads.

    Limit: a client whose address changes mid-connection (migration, NAT rebinding) may hash
    to another worker, which does not know the connection ID and drops the datagrams (aioquic
    sends no stateless reset); the client's connection then times out and it reconnects. A
    worker restart likewise loses the connections it held.
    """
    slots: list[list[socket.socket]] = [[] for _ in range(workers)]
    try:
        for value in values:
            address = parse_bind(value)
            port = address.port
            for slot in slots:
                sock = _open_reuseport_udp(address, port)
                slot.append(sock)
                port = sock.getsockname()[1]
    except BaseException:
        for slot in slots:
            for sock in slot:
                sock.close()
        raise
    return slots


def _open_reuseport_udp(address: BindAddress, port: int) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.host, port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {address} (UDP, quic_bind): {exc.strerror}"
        ) from None
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def socket_address(sock: socket.socket) -> str:
    """How to reach a listening socket, for logs and tests (``127.0.0.1:53211``)."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    return f"{name[0]}:{name[1]}"
