"""``App``: routes, middleware, exception handlers, lifespan and state in one ASGI app.

The layers, outermost first, as Starlette users know them::

    ServerErrors  -> user middleware -> HandledErrors -> Router -> Endpoint -> handler

``ServerErrors`` turns any unhandled exception into a 500 (logged with its traceback on
``rws.http.web``, shown in the response only with ``debug=True``); ``HandledErrors`` runs
the handlers registered per exception type or status code (``HTTPException`` -> JSON
``{"detail": ...}``, ``ValidationError`` -> 422 with the error list). Both sit inside the
app, so third-party middleware around an ``App`` sees ordinary responses.

Routes may be added until the first request; the router and middleware stack are built
then, once.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import traceback
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any, TypeVar

from .datastructures import State
from .endpoints import INHERIT, Endpoint
from .exceptions import HTTPException, WebSocketException
from .requests import ClientDisconnect, Request
from .responses import JSONResponse, PlainTextResponse, Response
from .routing import BaseRoute, Host, Mount, Route, Router
from .tracking import TrackedSend
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["App", "ExceptionHandler"]

logger = logging.getLogger("rws.http.web")

F = TypeVar("F", bound=Callable[..., Any])
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response] | Response]
Lifespan = Callable[["App"], contextlib.AbstractAsyncContextManager[Mapping[str, Any] | None]]
Hook = Callable[[], Awaitable[None] | None]

DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024


def _is_handler_function(endpoint: Any) -> bool:
    """Functions and methods are handlers (parameters from the request), unless their
    parameters are exactly ``(scope, receive, send)``: that is a plain ASGI function. Any
    other callable (a class instance, a Starlette app …) is taken as an ASGI app."""
    target = endpoint.func if isinstance(endpoint, partial) else endpoint
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return False
    return list(inspect.signature(target).parameters) != ["scope", "receive", "send"]


async def http_exception_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse({"detail": error.detail}, error.status_code, error.headers or None)


class App:
    """An ASGI application.

    ``max_body_size`` (default 10 MiB; ``None`` for no limit) caps every request body unless
    the route sets its own. ``lifespan`` is an async context manager factory taking the app;
    a mapping it yields becomes the ASGI lifespan state, copied into each request's
    ``request.state``. ``on_startup``/``on_shutdown`` hooks run around it.
    """

    def __init__(
        self,
        routes: Iterable[BaseRoute] = (),
        *,
        middleware: Sequence[Any] = (),
        exception_handlers: Mapping[type[Exception] | int, ExceptionHandler] | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        lifespan: Lifespan | None = None,
        debug: bool = False,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self.routes: list[BaseRoute] = list(routes)
        self.user_middleware: list[Any] = list(middleware)
        self.exception_handlers: dict[type[Exception] | int, ExceptionHandler] = {
            HTTPException: http_exception_handler,
            **(exception_handlers or {}),
        }
        self.startup_hooks: list[Hook] = list(on_startup)
        self.shutdown_hooks: list[Hook] = list(on_shutdown)
        self.lifespan_context = lifespan
        self.debug = debug
        self.max_body_size = max_body_size
        self.state = State()
        self._router: Router | None = None
        self._stack: ASGIApp | None = None

    # -- building ----------------------------------------------------------------------------

    @property
    def router(self) -> Router:
        if self._router is None:
            self._router = Router(self.routes, raise_http_errors=True)
        return self._router

    def _changed(self) -> None:
        if self._stack is not None:
            raise RuntimeError("routes and middleware cannot change once the app has started")
        self._router = None

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] | None = None,
        *,
        name: str | None = None,
        status_code: int | None = None,
        max_body_size: int | None = INHERIT,
        middleware: Sequence[Any] = (),
        **openapi: Any,
    ) -> Route:
        """Serve ``endpoint`` at ``path``: a handler function (parameters filled from the
        request, see :mod:`rws.http.web.params`) or any ASGI app. ``middleware`` wraps this
        route only (``[Middleware(TimeoutMiddleware, seconds=2)]``)."""
        self._changed()
        handler: Endpoint | None = None
        asgi: ASGIApp
        if _is_handler_function(endpoint):
            pattern_params = Route(path, _placeholder).pattern.params
            handler = Endpoint(
                endpoint,
                pattern_params,
                status_code=status_code,
                max_body_size=max_body_size,
                openapi=openapi,
            )
            asgi = handler
        else:
            asgi = endpoint
        asgi = _wrap(asgi, middleware)
        route = Route(path, asgi, methods=methods, name=name or _default_name(endpoint))
        route.handler = handler  # type: ignore[attr-defined]
        self.routes.append(route)
        return route

    def add_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        name: str | None = None,
        middleware: Sequence[Any] = (),
    ) -> Route:
        self._changed()
        handler: Endpoint | None = None
        asgi: ASGIApp
        if _is_handler_function(endpoint):
            pattern_params = Route(path, _placeholder).pattern.params
            handler = Endpoint(endpoint, pattern_params, websocket=True)
            asgi = handler
        else:
            asgi = endpoint
        route = Route(
            path, _wrap(asgi, middleware), name=name or _default_name(endpoint), websocket=True
        )
        route.handler = handler  # type: ignore[attr-defined]
        self.routes.append(route)
        return route

    def route(
        self, path: str, methods: Iterable[str] | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_route`."""

        def register(func: F) -> F:
            self.add_route(path, func, methods, **options)
            return func

        return register

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route(path, ["GET"], **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route(path, ["POST"], **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route(path, ["PUT"], **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route(path, ["PATCH"], **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route(path, ["DELETE"], **options)

    def websocket(self, path: str, **options: Any) -> Callable[[F], F]:
        def register(func: F) -> F:
            self.add_websocket_route(path, func, **options)
            return func

        return register

    def mount(self, prefix: str, app: ASGIApp, *, name: str | None = None) -> None:
        """Serve everything under ``prefix`` with ``app`` (another App, a Router, StaticFiles,
        any ASGI app)."""
        self._changed()
        self.routes.append(Mount(prefix, app, name=name))

    def host(self, host: str, app: ASGIApp, *, name: str | None = None) -> None:
        self._changed()
        self.routes.append(Host(host, app, name=name))

    def add_middleware(self, cls: Callable[..., ASGIApp], *args: Any, **kwargs: Any) -> None:
        """Wrap the app in ``cls(app, *args, **kwargs)``; the last added is the outermost."""
        self._changed()
        from .middleware import Middleware

        self.user_middleware.append(Middleware(cls, *args, **kwargs))

    def add_exception_handler(self, key: type[Exception] | int, handler: ExceptionHandler) -> None:
        self.exception_handlers[key] = handler

    def exception_handler(self, key: type[Exception] | int) -> Callable[[F], F]:
        def register(func: F) -> F:
            self.add_exception_handler(key, func)
            return func

        return register

    def on_startup(self, func: F) -> F:
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: F) -> F:
        self.shutdown_hooks.append(func)
        return func

    def url_path_for(self, name: str, /, **params: Any) -> str:
        return self.router.url_path_for(name, **params)

    # -- serving -----------------------------------------------------------------------------

    def build_stack(self) -> ASGIApp:
        app: ASGIApp = self._handled_errors
        for entry in reversed(self.user_middleware):
            app = _build(entry, app)
        return self._server_errors_layer(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        # Where *this* app is mounted: url_for looks names up in this app, so the prefix it
        # puts in front must be this app's too (a sub-App under a Mount, or a root_path).
        scope["app_root_path"] = scope.get("root_path", "")
        if self._stack is None:
            self.router  # noqa: B018 (builds the route index before the first request)
            self._stack = self.build_stack()
        await self._stack(scope, receive, send)

    def _server_errors_layer(self, app: ASGIApp) -> ASGIApp:
        async def server_errors(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            tracked = TrackedSend(send)
            try:
                await app(scope, receive, tracked)
            except Exception as error:
                logger.exception(
                    "unhandled exception in %s %s", scope.get("method"), scope.get("path")
                )
                if tracked.started:
                    raise  # the server aborts the response: a truncated body is visible
                response = await self._server_error_response(scope, receive, error)
                await response(scope, receive, send)

        return server_errors

    async def _server_error_response(
        self, scope: Scope, receive: Receive, error: Exception
    ) -> Response:
        handler = self.exception_handlers.get(500) or self.exception_handlers.get(Exception)
        if handler is not None:
            result = handler(Request(scope, receive), error)
            return await result if inspect.isawaitable(result) else result
        if self.debug:
            text = "".join(traceback.format_exception(error))
            return PlainTextResponse(text, 500)
        return JSONResponse({"detail": "Internal Server Error"}, 500)

    def _find_handler(self, error: Exception) -> ExceptionHandler | None:
        if isinstance(error, HTTPException):
            handler = self.exception_handlers.get(error.status_code)
            if handler is not None:
                return handler
        for kind in type(error).__mro__:
            if kind is Exception:
                return None  # Exception/500 handlers belong to the server-error layer
            handler = self.exception_handlers.get(kind)
            if handler is not None:
                return handler
        return None

    async def _handled_errors(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind == "websocket":
            await self._websocket_errors(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self.router(scope, receive, tracked)
        except ClientDisconnect:
            return  # nobody is left to answer; not a server error
        except Exception as error:
            handler = self._find_handler(error)
            if handler is None:
                raise
            if tracked.started:
                raise RuntimeError(
                    f"{type(error).__name__} raised after the response started"
                ) from error
            result = handler(Request(scope, receive), error)
            response = await result if inspect.isawaitable(result) else result
            await response(scope, receive, send)

    async def _websocket_errors(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.router(scope, receive, send)
        except WebSocketException as error:
            await send({"type": "websocket.close", "code": error.code, "reason": error.reason})
        except HTTPException as error:
            await send({"type": "websocket.close", "code": 1008, "reason": str(error.detail)})

    # -- lifespan ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[Mapping[str, Any] | None]:
        for hook in self.startup_hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result
        try:
            if self.lifespan_context is None:
                yield None
            else:
                async with self.lifespan_context(self) as state:
                    yield state
        finally:
            for hook in self.shutdown_hooks:
                result = hook()
                if inspect.isawaitable(result):
                    await result

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self._running() as state:
                if state is not None:
                    if "state" not in scope:
                        raise RuntimeError(
                            "the lifespan yielded state but the server does not support "
                            "ASGI lifespan state"
                        )
                    scope["state"].update(state)
                await send({"type": "lifespan.startup.complete"})
                message = await receive()  # lifespan.shutdown
        except BaseException as error:
            text = "".join(traceback.format_exception(error))
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": text})
            else:
                await send({"type": "lifespan.shutdown.failed", "message": text})
            raise
        await send({"type": "lifespan.shutdown.complete"})


async def _placeholder(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("placeholder endpoint")  # pragma: no cover


def _default_name(endpoint: Any) -> str | None:
    name = getattr(endpoint, "__name__", None)
    return name if isinstance(name, str) and name != "<lambda>" else None


def _build(entry: Any, app: ASGIApp) -> ASGIApp:
    build = getattr(entry, "build", None)
    if build is not None:
        built: ASGIApp = build(app)
        return built
    cls, args, kwargs = entry
    wrapped: ASGIApp = cls(app, *args, **kwargs)
    return wrapped


def _wrap(app: ASGIApp, middleware: Sequence[Any]) -> ASGIApp:
    for entry in reversed(middleware):
        app = _build(entry, app)
    return app
