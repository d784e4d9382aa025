"""The rws ASGI server: HTTP/1.1 on h11 (HTTP/2 on h2, WebSocket on wsproto).

Programmatic use::

    from rws.http.server import Config, Server

    async with Server(app, Config(bind=("127.0.0.1:0",))) as server:
        print(server.addresses)           # ["127.0.0.1:50123"]

or ``await serve(app, config)`` to run until SIGTERM/SIGINT.
"""

from .config import Config, ConfigError
from .server import Server, run, serve

__all__ = ["Config", "ConfigError", "Server", "run", "serve"]
