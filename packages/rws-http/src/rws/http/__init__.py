"""rws-http: the rws ASGI server (HTTP/1.1, HTTP/2, WebSocket) and, later, its web framework.

The server's entry points are re-exported here, loaded on first use so that importing
``rws.http`` for the framework alone does not import the protocol stacks::

    import rws.http

    await rws.http.serve(app, rws.http.Config(bind=("127.0.0.1:8000",)))
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Config, ConfigError, Server, run, serve

__all__ = ["Config", "ConfigError", "Server", "run", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(import_module(".server", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
