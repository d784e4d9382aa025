"""The server: listeners, connections, lifespan, graceful shutdown.

``Server`` is what tests and embedding code use (start on port 0, read ``addresses``, stop);
:func:`serve` runs one until SIGTERM/SIGINT, which is what the command line does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError
from .cycle import ASGIApp
from .http11 import H11Protocol
from .lifespan import Lifespan
from .listeners import open_listener, parse_bind, socket_address
from .state import ServerState

if TYPE_CHECKING:
    from .http3 import QuicEndpoint
    from .proxy_tls import ProxyTLSListener

logger = logging.getLogger("rws.http.error")

#: After the grace period, how long exchanges still running get once told their client is
#: gone, before their tasks are cancelled.
_CANCEL_GRACE = 1.0


class Server:
    """An ASGI server bound to ``config.bind`` (or to ``sockets`` handed over by a parent).

    ``quic_sockets``: UDP sockets already bound, one per ``config.quic_bind`` address in that
    order, to serve HTTP/3 on instead of binding them (a worker's share of the
    ``SO_REUSEPORT`` groups its supervisor opened).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        sockets: Sequence[socket.socket] | None = None,
        quic_sockets: Sequence[socket.socket] | None = None,
    ) -> None:
        self.config = config or Config()
        if quic_sockets is not None and len(quic_sockets) != len(self.config.quic_bind):
            raise ValueError(
                f"quic_sockets has {len(quic_sockets)} socket(s) for "
                f"{len(self.config.quic_bind)} quic_bind address(es): one each, in order"
            )
        if self.config.proxy_headers:
            from .proxy_headers import ProxyHeadersMiddleware

            app = ProxyHeadersMiddleware(
                app, self.config.forwarded_allow_ips, headers=self.config.forwarded_headers
            )
        self.state = ServerState(app=app, config=self.config)
        self._given_sockets = list(sockets) if sockets is not None else None
        self._given_quic_sockets = list(quic_sockets) if quic_sockets is not None else None
        self._servers: list[asyncio.Server | ProxyTLSListener] = []
        self._sockets: list[socket.socket] = []
        self._quic: list[QuicEndpoint] = []
        self._lifespan = Lifespan(app, self.config.lifespan, self.state.lifespan_state)
        self._stopped = asyncio.Event()
        self._started = False

    @property
    def addresses(self) -> list[str]:
        """Where the server listens, e.g. ``["127.0.0.1:50123"]`` after binding port 0."""
        return [socket_address(sock) for sock in self._sockets]

    @property
    def quic_addresses(self) -> list[str]:
        """Where HTTP/3 listens (UDP), e.g. ``["127.0.0.1:50124"]``; empty when it is off."""
        return [endpoint.address for endpoint in self._quic]

    async def start(self) -> None:
        """Run lifespan startup, then start accepting connections."""
        config = self.config
        if config.access_log is not None:
            from .access_log import AccessLog

            self.state.access_log = AccessLog(
                config.access_log,
                config.access_log_format,
                max_bytes=config.access_log_max_bytes,
                backups=config.access_log_backups,
            )
        ssl_context = None
        if config.tls:
            from .tls import create_ssl_context

            assert config.certfile is not None
            ssl_context = create_ssl_context(
                config.certfile,
                config.keyfile,
                password=config.keyfile_password,
                ca_certs=config.ca_certs,
                client_cert=config.client_cert,
                ciphers=config.ciphers,
            )
        quic_configuration = None
        if config.quic_bind:
            quic_configuration = _quic_configuration(config)
        await self._lifespan.startup()
        if quic_configuration is not None:
            await self._open_quic(quic_configuration)
        if self._given_sockets is not None:
            self._sockets = self._given_sockets
        else:
            self._sockets = [open_listener(parse_bind(b), config.backlog) for b in config.bind]
        loop = asyncio.get_running_loop()
        state = self.state
        for sock in self._sockets:
            if ssl_context is not None and config.proxy_protocol:
                # The PROXY header comes before the TLS handshake: see proxy_tls.
                from .proxy_tls import ProxyTLSListener

                listener = ProxyTLSListener(state, sock, ssl_context)
                listener.start()
                self._servers.append(listener)
                continue
            server = await loop.create_server(
                lambda: H11Protocol(state),
                sock=sock,
                ssl=ssl_context,
                backlog=config.backlog,
                ssl_handshake_timeout=config.header_timeout if ssl_context else None,
            )
            self._servers.append(server)
        self._started = True
        scheme = "https" if ssl_context else "http"
        for address in self.addresses:
            logger.info("rws-http serving on %s://%s", scheme, address)
        for address in self.quic_addresses:
            logger.info("rws-http serving HTTP/3 on https://%s (UDP)", address)

    async def _open_quic(self, configuration: Any) -> None:
        """Bind the HTTP/3 endpoints and advertise them to TCP clients with ``Alt-Svc``."""
        from .http3 import QuicEndpoint

        given = self._given_quic_sockets
        for index, value in enumerate(self.config.quic_bind):
            address = parse_bind(value)
            endpoint = await QuicEndpoint.open(
                self.state,
                address.host,
                address.port,
                configuration,
                sock=given[index] if given is not None else None,
            )
            self._quic.append(endpoint)
        ports = dict.fromkeys(endpoint.port for endpoint in self._quic)
        alt_svc = ", ".join(f'h3=":{port}"; ma=86400' for port in ports)
        self.state.default_headers.append((b"alt-svc", alt_svc.encode()))

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, let exchanges finish within ``grace`` seconds, then close all."""
        if not self._started or self._stopped.is_set():
            if not self._stopped.is_set():
                for endpoint in self._quic:  # a start that failed after binding UDP
                    endpoint.close()
            self._stopped.set()
            return
        grace = self.config.graceful_timeout if grace is None else grace
        deadline = asyncio.get_running_loop().time() + grace
        state = self.state
        state.shutting_down = True
        for server in self._servers:
            server.close()
        for connection in list(state.connections):
            connection.shutdown()
        if state.tasks:
            _, pending = await asyncio.wait(set(state.tasks), timeout=grace)
            if pending:
                logger.warning(
                    "%d request(s) still running after %.1fs: closing them", len(pending), grace
                )
                for connection in list(state.connections):
                    connection.abort()
                _, pending = await asyncio.wait(pending, timeout=_CANCEL_GRACE)
                for task in pending:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.gather(*pending, return_exceptions=True)
        for endpoint in self._quic:
            # QUIC has no transport buffer that close() flushes: let the last responses
            # be acknowledged before the connections close.
            remaining = deadline - asyncio.get_running_loop().time()
            await endpoint.wait_flushed(max(remaining, _CANCEL_GRACE))
        for connection in list(state.connections):
            connection.abort()
        for endpoint in self._quic:
            endpoint.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        try:
            await self._lifespan.shutdown()
        finally:
            if state.access_log is not None:
                await state.access_log.aclose()
            self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def reopen_logs(self) -> None:
        if self.state.access_log is not None:
            self.state.access_log.reopen()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()


def _quic_configuration(config: Config) -> Any:
    """aioquic's server configuration, or a :class:`ConfigError` naming the missing extra."""
    try:
        from .http3 import quic_configuration
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in ("aioquic", "cryptography", "pylsqpack"):
            raise
        raise ConfigError(
            f"quic_bind needs the HTTP/3 extra ({exc.name} is not installed): "
            "pip install 'rws-http[h3]'"
        ) from None
    return quic_configuration(config)


async def serve(
    app: ASGIApp,
    config: Config | None = None,
    *,
    sockets: Sequence[socket.socket] | None = None,
    quic_sockets: Sequence[socket.socket] | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully."""
    server = Server(app, config, sockets=sockets, quic_sockets=quic_sockets)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
                installed.append(signum)
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, server.reopen_logs)
            installed.append(signal.SIGHUP)
    try:
        await stop.wait()
        logger.info("shutting down")
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await server.shutdown()


def run(app: ASGIApp, config: Config | None = None, **options: Any) -> None:
    """Blocking convenience: ``asyncio.run(serve(app, config))``."""
    asyncio.run(serve(app, config, **options))
