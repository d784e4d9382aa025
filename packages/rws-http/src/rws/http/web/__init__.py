"""rws.http.web: the rws web framework, plain ASGI (it never imports the server).

First slice: the router::

    from rws.http.web import Mount, Route, Router

    router = Router([Route("/users/{id:int}", user, methods=["GET"], name="user")])
    router.url_path_for("user", id=7)  # "/users/7"
"""

from __future__ import annotations

from .routing import Host, Mount, NoMatchFound, Route, Router

__all__ = ["Host", "Mount", "NoMatchFound", "Route", "Router"]
