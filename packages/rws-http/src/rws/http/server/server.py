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

from .config import Config
from .cycle import ASGIApp
from .http11 import H11Protocol
from .lifespan import Lifespan
from .listeners import open_listener, parse_bind, socket_address
from .state import ServerState

if TYPE_CHECKING:
    from .proxy_tls import ProxyTLSListener

logger = logging.getLogger("rws.http.error")

#: After the grace period, how long exchanges still running get once told their client is
#: gone, before their tasks are cancelled.
_CANCEL_GRACE = 1.0


class Server:
    """An ASGI server bound to ``config.bind`` (or to ``sockets`` handed over by a parent)."""

    def __init__(
        self,
        app: ASGIApp,
        config: Config | None = None,
        *,
        sockets: Sequence[socket.socket] | None = None,
    ) -> None:
        self.config = config or Config()
        if self.config.proxy_headers:
            from .proxy_headers import ProxyHeadersMiddleware

            app = ProxyHeadersMiddleware(
                app, self.config.forwarded_allow_ips, headers=self.config.forwarded_headers
            )
        self.state = ServerState(app=app, config=self.config)
        self._given_sockets = list(sockets) if sockets is not None else None
        self._servers: list[asyncio.Server | ProxyTLSListener] = []
        self._sockets: list[socket.socket] = []
        self._lifespan = Lifespan(app, self.config.lifespan, self.state.lifespan_state)
        self._stopped = asyncio.Event()
        self._started = False

    @property
    def addresses(self) -> list[str]:
        """Where the server listens, e.g. ``["127.0.0.1:50123"]`` after binding port 0."""
        return [socket_address(sock) for sock in self._sockets]

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
        await self._lifespan.startup()
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

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, let exchanges finish within ``grace`` seconds, then close all."""
        if not self._started or self._stopped.is_set():
            self._stopped.set()
            return
        grace = self.config.graceful_timeout if grace is None else grace
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
        for connection in list(state.connections):
            connection.abort()
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


async def serve(
    app: ASGIApp,
    config: Config | None = None,
    *,
    sockets: Sequence[socket.socket] | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then shut down gracefully."""
    server = Server(app, config, sockets=sockets)
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
