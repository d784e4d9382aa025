"""The same small JSON API on rws.http.web, Starlette and Litestar, for ``web_framework.py``.

Each app is written the way its framework's documentation writes one, and all three answer
the same requests with the same bytes:

- ``GET /users/{id}?verbose=true`` -> ``{"id":42,"name":"user42","verbose":true}``; the id
  is typed ``int`` and ``verbose`` ``bool`` (default false), and a non-integer id is a client
  error (rws: 422, Litestar and Starlette: 400; see ``BAD_ID_STATUS``);
- 20 other routes (10 literal ``/static{i}/page``, 10 ``/items{i}/{item_id:int}``) declared
  *before* the users route, so the router has to pass over them, and a miss is a 404;
- one pure-ASGI middleware, :class:`BenchHeader`, the same class in all three, adding
  ``x-bench: 1`` to every response.

Served as ``web_apps:rws_app``, ``web_apps:starlette_app`` and ``web_apps:litestar_app``.
The frameworks are imported lazily (a module ``__getattr__``), so serving one app does not
import the other two frameworks into the server process.

Why ``/users/{id}`` with an ``int`` annotation rather than ``/users/{id:int}``: with an
``:int`` convertor in the path, rws and Starlette do not *match* ``/users/abc`` (a 404), nor
does Litestar (its router parses typed segments); the benchmark wants the id checked by the
framework's parameter handling, answering a client error. So in all three the path segment
is matched as a string and the handler's parameter is typed: rws ``id: int`` (422, its
validation error), Litestar ``{id:str}`` in the path (Litestar insists on a type there) with
``id: int`` on the handler (400, "Validation failed"), Starlette by hand with
``HTTPException(400)``, as it has no typed handler parameters. The other parameterised
routes do use the ``:int`` convertor.

Litestar runs app-level middleware around route handlers only, so its 404 for an unknown
path has no ``x-bench`` header (rws and Starlette run it around the router).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What every contestant must answer to ``GET PATH`` (compact JSON, key order as written).
PATH = "/users/42?verbose=true"
BODY = b'{"id":42,"name":"user42","verbose":true}'
#: A path no route matches, and one whose id is not an integer.
MISSING_PATH = "/nope/42"
BAD_ID_PATH = "/users/abc"
BAD_ID_STATUS = {"rws": 422, "starlette": 400, "litestar": 400}
#: Routes registered besides the users route.
OTHER_ROUTES = 20

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class BenchHeader:
    """Adds ``x-bench: 1`` to every HTTP response; passes other scopes through untouched.

    The parameter is named ``app`` because Litestar builds middleware as ``cls(app=...)``."""

    def __init__(self, app: ASGI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-bench", b"1")]
            await send(message)

        await self.app(scope, receive, send_with_header)


def user(user_id: int, verbose: bool) -> dict[str, Any]:
    return {"id": user_id, "name": f"user{user_id}", "verbose": verbose}


# -- rws.http.web ------------------------------------------------------------------------------


def make_rws() -> Any:
    from rws.http.web import App
    from rws.http.web.middleware import Middleware

    app = App(middleware=[Middleware(BenchHeader)])
    for i in range(OTHER_ROUTES // 2):

        @app.get(f"/static{i}/page", name=f"static{i}")
        async def static_page() -> dict[str, Any]:
            return {"page": "static"}

        @app.get(f"/items{i}/{{item_id:int}}", name=f"item{i}")
        async def item(item_id: int) -> dict[str, Any]:
            return {"item": item_id}

    @app.get("/users/{id}")
    async def get_user(id: int, verbose: bool = False) -> dict[str, Any]:
        return user(id, verbose)

    return app


# -- Starlette ---------------------------------------------------------------------------------


def make_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def static_page(request: Request) -> JSONResponse:
        return JSONResponse({"page": "static"})

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"item": request.path_params["item_id"]})

    async def get_user(request: Request) -> JSONResponse:
        try:
            user_id = int(request.path_params["id"])
        except ValueError:
            raise HTTPException(400, "id must be an integer") from None
        flag = request.query_params.get("verbose", "false").lower()
        if flag not in _TRUE and flag not in _FALSE:
            raise HTTPException(400, "verbose must be a boolean")
        return JSONResponse(user(user_id, flag in _TRUE))

    routes = []
    for i in range(OTHER_ROUTES // 2):
        routes.append(Route(f"/static{i}/page", static_page, name=f"static{i}"))
        routes.append(Route(f"/items{i}/{{item_id:int}}", item, name=f"item{i}"))
    routes.append(Route("/users/{id}", get_user))
    return Starlette(routes=routes, middleware=[Middleware(BenchHeader)])


# -- Litestar ----------------------------------------------------------------------------------


def make_litestar() -> Any:
    from litestar import Litestar, get

    handlers: list[Any] = []
    for i in range(OTHER_ROUTES // 2):

        @get(f"/static{i}/page", name=f"static{i}")
        async def static_page() -> dict[str, Any]:
            return {"page": "static"}

        @get(f"/items{i}/{{item_id:int}}", name=f"item{i}")
        async def item(item_id: int) -> dict[str, Any]:
            return {"item": item_id}

        handlers += [static_page, item]

    @get("/users/{id:str}")
    async def get_user(id: int, verbose: bool = False) -> dict[str, Any]:
        return user(id, verbose)

    handlers.append(get_user)
    return Litestar(route_handlers=handlers, middleware=[BenchHeader], openapi_config=None)


FACTORIES: dict[str, Callable[[], Any]] = {
    "rws": make_rws,
    "starlette": make_starlette,
    "litestar": make_litestar,
}
_BUILT: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``rws_app``, ``starlette_app``, ``litestar_app``: built on first access."""
    framework = name.removesuffix("_app")
    if name.endswith("_app") and framework in FACTORIES:
        if framework not in _BUILT:
            _BUILT[framework] = FACTORIES[framework]()
        return _BUILT[framework]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
