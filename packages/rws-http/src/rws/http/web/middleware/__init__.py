"""ASGI middleware for any ASGI app, and :class:`Middleware`, a deferred, type-checked wrapper.

Each middleware lives in its own module and is imported only where it is used (this module
imports none of them), so an app pays only for what it wraps itself in::

    from rws.http.web.middleware.cors import CORSMiddleware

Every middleware is a plain ASGI class, ``Cls(app, **options)``: it validates its options when
it is built (a ``ValueError`` naming the option) and passes scope types it does not handle
(always ``lifespan``) straight through, so it wraps Starlette, FastAPI or Django apps as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ParamSpec, Protocol

from rws.http.web.types import ASGIApp

__all__ = ["Middleware"]

P = ParamSpec("P")

# Deliberately looser than ``ASGIApp`` (Any for the scope and messages) so that middleware
# typed against Starlette's or asgiref's own aliases is accepted too.
_AnyASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class _MiddlewareFactory(Protocol[P]):
    def __call__(self, app: _AnyASGIApp, /, *args: P.args, **kwargs: P.kwargs) -> _AnyASGIApp: ...


class Middleware:
    """A middleware class and its options, to be applied later to an app.

    ``Middleware(CORSMiddleware, allow_origins=["https://example.com"])`` is checked by the
    type checker against ``CORSMiddleware.__init__`` (a ``ParamSpec``), so a misspelt option
    fails in the editor rather than at start-up. ``build(app)`` applies it; iterating gives
    ``(cls, args, kwargs)`` like Starlette's ``Middleware``, so code written for that one works.
    """

    def __init__(self, cls: _MiddlewareFactory[P], /, *args: P.args, **kwargs: P.kwargs) -> None:
        self.cls = cls
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs

    def build(self, app: ASGIApp) -> ASGIApp:
        """``cls(app, *args, **kwargs)``: the app wrapped in this middleware."""
        wrapped: ASGIApp = self.cls(app, *self.args, **self.kwargs)
        return wrapped

    def __iter__(self) -> Iterator[Any]:
        return iter((self.cls, self.args, self.kwargs))

    def __repr__(self) -> str:
        name = getattr(self.cls, "__qualname__", None) or repr(self.cls)
        parts = [name, *(repr(arg) for arg in self.args)]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"
