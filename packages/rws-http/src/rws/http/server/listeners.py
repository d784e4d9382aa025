"""Turn ``--bind`` strings into listening sockets.

Sockets are created here rather than by ``loop.create_server(host, port)`` so that worker
processes can inherit the very same sockets and so that port 0 (tests) reports its real port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
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
