"""The router: plain ASGI routes, mounts and host matching, with a lookup that stays fast.

Every route type keeps one small contract: ``matches(scope) -> (Match, child scope)``,
``url_path_for(name, params)`` and ``handle(scope, receive, send)``. ``Match.PARTIAL`` means
"the path fits but the method does not", which is how the router knows to answer 405.

**Lookup.** Matching route by route costs one regex call per route, so a miss among 1000
routes costs 1000 calls. :class:`Router` instead indexes its plain :class:`Route` entries per
scope type (``http`` / ``websocket``):

* literal paths (no parameters) in a dict ``path -> [route positions]``;
* parameterised paths grouped by their *literal prefix* (the whole segments before the
  first parameter: ``/api/v1/users/{id}`` -> ``/api/v1/users``), each group compiled to
  **one combined regex**, an alternation ``(?P<r7>...)|(?P<r9>...)`` in declaration order.
  Python's ``re`` tries alternatives left to right, so a group's match is its *first
  declared* route whose path fits, and ``lastgroup`` names it. A lookup tries the groups
  keyed by each prefix of the path ending before a ``/`` (one dict probe per segment) and
  keeps the lowest position; so its cost grows with the path's depth and the size of the
  groups it hits, not with the number of routes. The worst case is many parameterised
  routes under one prefix (``/api/{id}/a``, ``/api/{id}/b``, ...): that group's regex tries
  its alternatives in order, in C (``bench/routing.py --shared-prefix``).

Combined regexes were chosen over a full segment trie because they keep every convertor's
exact regex semantics (``{path:path}`` spanning segments, text around a parameter inside one
segment) with no second matching engine to keep consistent; the prefix grouping gives the
trie's main win (unrelated routes are never tried) for the cost of a dict.

**Order is kept.** The winner is the lowest position among: the dict's first literal hit,
the combined regex's hit, and the non-indexed entries (:class:`Mount`, :class:`Host`, any
other object with ``matches``), which are tried in order but only while their position is
below the best indexed candidate. So a literal route declared *after* a parameterised route
that also fits never wins over it: first match in declaration order, as with a linear scan.
When the first fitting route refuses the method (a 405 candidate), the router falls back to
a linear scan of the later routes for a full match, exactly as a linear router would; that
path only runs for requests that are about to get 405 or hit overlapping routes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from .datastructures import scope_path_below_root
from .exceptions import HTTPException
from .patterns import Pattern, compile_pattern
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["TEMPLATE_KEY", "Host", "Match", "Mount", "NoMatchFound", "Route", "Router"]

#: Scope key holding the matched route's full template (mount prefixes included), e.g.
#: ``"/api/users/{id:int}"``: what metrics, tracing and logs group requests by, so that
#: ``/users/1`` and ``/users/2`` count as one route and raw paths never explode label sets.
TEMPLATE_KEY = "rws.route_template"
PREFIX_KEY = "rws.route_prefix"


class NoMatchFound(Exception):  # noqa: N818 (the name users of Starlette know)
    """``url_path_for`` found no route by that name taking exactly those parameters."""

    def __init__(self, name: str, params: Iterable[str], detail: str = "") -> None:
        self.name = name
        self.params = sorted(params)
        self.detail = detail
        message = f"no route named {name!r} taking parameters {self.params}"
        super().__init__(f"{message}: {detail}" if detail else message)


class Match(enum.Enum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


class BaseRoute(Protocol):
    """What the router needs from an entry."""

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]: ...

    def url_path_for(self, name: str, params: dict[str, Any]) -> str: ...

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None: ...


#: The path below ``root_path`` (ASGI 2.4: ``path`` is the full path), ``/`` at least.
route_path = scope_path_below_root


def _check_params(pattern: Pattern, name: str, params: dict[str, Any]) -> None:
    expected = set(pattern.params)
    if set(params) != expected:
        missing = sorted(expected - set(params))
        extra = sorted(set(params) - expected)
        raise NoMatchFound(name, params, f"missing {missing}, unexpected {extra}")


class Route:
    """``path`` (a pattern) served by the ASGI app ``endpoint``.

    ``methods=None`` accepts every method; otherwise only those listed, plus HEAD where GET
    is. ``websocket=True`` makes it a WebSocket route (no methods). ``name`` is for
    :meth:`Router.url_path_for`.
    """

    def __init__(
        self,
        path: str,
        endpoint: ASGIApp,
        *,
        methods: Iterable[str] | None = None,
        name: str | None = None,
        websocket: bool = False,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path {path!r} must start with '/'")
        if websocket and methods is not None:
            raise ValueError(f"route {path!r}: a WebSocket route takes no methods")
        self.path = path
        self.endpoint = endpoint
        self.name = name
        self.websocket = websocket
        self.scope_type = "websocket" if websocket else "http"
        self.pattern = compile_pattern(path)
        self.regex = re.compile(f"^{self.pattern.source}$")
        self.methods: frozenset[str] | None = None
        if methods is not None:
            upper = {method.upper() for method in methods}
            if "GET" in upper:
                upper.add("HEAD")
            self.methods = frozenset(upper)

    def __repr__(self) -> str:
        return f"Route({self.path!r}, name={self.name!r}, methods={self.methods_list()})"

    def methods_list(self) -> list[str] | None:
        return None if self.methods is None else sorted(self.methods)

    def method_allowed(self, scope: Scope) -> bool:
        return self.methods is None or self.websocket or scope.get("method") in self.methods

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        if scope["type"] != self.scope_type:
            return Match.NONE, {}
        found = self.regex.match(route_path(scope))
        if found is None:
            return Match.NONE, {}
        return self.match_result(scope, self.pattern.convert(found.groupdict()))

    def match_result(self, scope: Scope, params: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        path_params = {**scope.get("path_params", {}), **params}
        child = {"endpoint": self.endpoint, "path_params": path_params, "route": self}
        return (Match.FULL if self.method_allowed(scope) else Match.PARTIAL), child

    def url_path_for(self, name: str, params: dict[str, Any]) -> str:
        if name != self.name:
            raise NoMatchFound(name, params)
        _check_params(self.pattern, name, params)
        return self.pattern.build(params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.method_allowed(scope):
            await method_not_allowed(self.methods_list() or [], send)
            return
        await self.endpoint(scope, receive, send)


class Mount:
    """Everything under ``prefix`` goes to ``app`` (an ASGI app or a :class:`Router`).

    As Starlette does under ASGI 2.4, the child sees ``path`` unchanged (the full path) and
    ``root_path`` extended by the matched prefix; prefix parameters join ``path_params``.
    """

    def __init__(
        self,
        prefix: str,
        app: ASGIApp | None = None,
        *,
        routes: Sequence[BaseRoute] | None = None,
        name: str | None = None,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start and not end with '/'")
        if (app is None) == (routes is None):
            raise ValueError(f"mount {prefix!r}: give exactly one of app and routes")
        self.prefix = prefix
        self.name = name
        self.app: ASGIApp = app if app is not None else Router(routes or ())
        self.pattern = compile_pattern(prefix, what="mount")
        if "path" in self.pattern.params:
            raise ValueError(f"mount pattern {prefix!r}: 'path' is reserved in a mount")
        self.regex = re.compile(f"^(?P<_mounted>{self.pattern.source})(?:/.*)?$")

    def __repr__(self) -> str:
        return f"Mount({self.prefix!r}, name={self.name!r})"

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        found = self.regex.match(route_path(scope))
        if found is None:
            return Match.NONE, {}
        root = scope.get("root_path", "")
        params = {**scope.get("path_params", {}), **self.pattern.convert(found.groupdict())}
        child = {
            "path_params": params,
            "app_root_path": scope.get("app_root_path", root),
            "root_path": root + found.group("_mounted"),
            "endpoint": self.app,
        }
        return Match.FULL, child

    def url_path_for(self, name: str, params: dict[str, Any]) -> str:
        own = {key: value for key, value in params.items() if key in self.pattern.params}
        rest = {key: value for key, value in params.items() if key not in self.pattern.params}
        if self.name is not None and name == self.name and not rest:
            _check_params(self.pattern, name, own)
            return self.pattern.build(own) + "/"
        if self.name is not None and name == self.name and set(rest) == {"path"}:
            # A file under a mounted app: url_path_for("static", path="css/site.css").
            _check_params(self.pattern, name, own)
            return self.pattern.build(own) + "/" + str(rest["path"]).lstrip("/")
        _check_params(self.pattern, name, own)
        return self.pattern.build(own) + _inner_path(self.name, self.app, name, params, rest)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _inner_path(
    owner: str | None, app: Any, name: str, params: dict[str, Any], rest: dict[str, Any]
) -> str:
    """The path of ``name`` inside a mounted app: ``owner:inner`` names, or any name when the
    mount or host has no name of its own."""
    if owner is not None:
        head, _, tail = name.partition(":")
        if head != owner or not tail:
            raise NoMatchFound(name, params)
    else:
        tail = name
    finder = getattr(app, "url_path_for", None)
    if finder is None:
        raise NoMatchFound(name, params)
    path: str = finder(tail, **rest)
    return path


class Host:
    """Requests whose ``Host`` header (port ignored) fits ``host`` go to ``app``.

    ``host`` may have parameters (``{sub}.example.com``); they join ``path_params``.
    ``url_path_for`` through a host gives the path only (the host is the caller's to add).
    """

    def __init__(self, host: str, app: ASGIApp, *, name: str | None = None) -> None:
        self.host = host
        self.app = app
        self.name = name
        self.pattern = compile_pattern(host, what="host")
        self.regex = re.compile(f"^{self.pattern.source}$", re.IGNORECASE)

    def __repr__(self) -> str:
        return f"Host({self.host!r}, name={self.name!r})"

    def matches(self, scope: Scope) -> tuple[Match, dict[str, Any]]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        header = b""
        for key, value in scope.get("headers", ()):
            if key == b"host":
                header = value
                break
        host = header.decode("latin-1")
        # Drop the port: "[::1]:8000" -> "[::1]", "example.com:8000" -> "example.com".
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
        found = self.regex.match(host)
        if found is None:
            return Match.NONE, {}
        params = {**scope.get("path_params", {}), **self.pattern.convert(found.groupdict())}
        return Match.FULL, {"path_params": params, "endpoint": self.app}

    def url_path_for(self, name: str, params: dict[str, Any]) -> str:
        rest = {key: value for key, value in params.items() if key not in self.pattern.params}
        return _inner_path(self.name, self.app, name, params, rest)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def plain_response(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    head = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def method_not_allowed(allowed: Sequence[str], send: Send) -> None:
    header = (b"allow", ", ".join(allowed).encode("latin-1"))
    await plain_response(send, 405, b"Method Not Allowed", [header])


class _Bucket:
    """Parameterised routes sharing one literal prefix, as one combined regex."""

    def __init__(self) -> None:
        self.alternatives: list[str] = []
        self.groups: dict[str, tuple[int, Route]] = {}
        self.regex: re.Pattern[str] | None = None

    def add(self, position: int, route: Route) -> None:
        group = f"r{position}"
        self.groups[group] = (position, route)
        body = route.pattern.source_with_prefix(f"{group}_")
        self.alternatives.append(f"(?P<{group}>{body})")

    def compile(self) -> None:
        self.regex = re.compile(f"^(?:{'|'.join(self.alternatives)})$")


def literal_prefix(path: str) -> str:
    """The whole segments before the first one holding a parameter (``/a/b/{x}`` -> ``/a/b``)."""
    brace = path.find("{")
    return path[: path.rfind("/", 0, brace)] if brace != -1 else path


class _Index:
    """The per-scope-type index of plain routes (see the module docstring)."""

    def __init__(self, routes: Sequence[tuple[int, Route]]) -> None:
        self.literal: dict[str, list[int]] = {}
        self.buckets: dict[str, _Bucket] = {}
        for position, route in routes:
            if route.pattern.literal:
                self.literal.setdefault(route.path, []).append(position)
            else:
                self.buckets.setdefault(literal_prefix(route.path), _Bucket()).add(position, route)
        for bucket in self.buckets.values():
            bucket.compile()

    def first(self, path: str) -> tuple[int, Route | None, dict[str, Any]]:
        """Lowest position of an indexed route whose path fits, that route, its params."""
        best: tuple[int, Route | None, dict[str, Any]] = (1 << 62, None, {})
        hits = self.literal.get(path)
        if hits is not None:
            best = (hits[0], None, {})
        if not self.buckets:
            return best
        end = 0
        while end != -1:  # every prefix of the path ending before a "/", "" first
            bucket = self.buckets.get(path[:end])
            end = path.find("/", end + 1)
            if bucket is None:
                continue
            assert bucket.regex is not None
            found = bucket.regex.match(path)
            if found is None:
                continue
            group = found.lastgroup
            assert group is not None
            position, route = bucket.groups[group]
            if position < best[0]:
                best = (position, route, route.pattern.convert(found.groupdict(), f"{group}_"))
        return best


class Router:
    """An ASGI app dispatching to the first matching entry, in declaration order.

    Unmatched HTTP requests get 404, a path served only for other methods 405 with
    ``Allow``, an unmatched WebSocket is closed before it is accepted (403). Lifespan events
    are acknowledged. The matched route is ``scope["route"]``, parameters
    ``scope["path_params"]``.
    """

    def __init__(
        self, routes: Iterable[BaseRoute] = (), *, raise_http_errors: bool = False
    ) -> None:
        self.routes: tuple[BaseRoute, ...] = tuple(routes)
        # Inside an App, 404/405 are raised as HTTPException so the app's error handlers
        # (JSON bodies, custom 404 pages) answer them; a bare Router answers in plain text.
        self.raise_http_errors = raise_http_errors
        self._other: list[int] = []
        indexed: dict[str, list[tuple[int, Route]]] = {"http": [], "websocket": []}
        for position, route in enumerate(self.routes):
            if type(route) is Route:
                indexed[route.scope_type].append((position, route))
            else:
                self._other.append(position)
        self._indexes = {kind: _Index(entries) for kind, entries in indexed.items()}

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called ``name`` (``"mount:route"`` inside mounts)."""
        closest: NoMatchFound | None = None
        for route in self.routes:
            try:
                return route.url_path_for(name, params)
            except NoMatchFound as error:
                if error.detail and closest is None:
                    closest = error  # the name exists, the parameters do not fit
        raise closest or NoMatchFound(name, params)

    def lookup(self, scope: Scope) -> tuple[Match, BaseRoute | None, dict[str, Any]]:
        """The route for ``scope``: the first full match, else the first partial, else none."""
        index = self._indexes.get(scope["type"])
        bound = len(self.routes)
        candidate: Route | None = None
        params: dict[str, Any] = {}
        if index is not None:
            position, candidate, params = index.first(route_path(scope))
            if position < bound:
                bound = position
                if candidate is None:
                    candidate = self.routes[position]  # type: ignore[assignment]
        for position in self._other:
            if position >= bound:
                break
            entry = self.routes[position]
            match, child = entry.matches(scope)
            if match is Match.FULL:
                return Match.FULL, entry, child
            if match is Match.PARTIAL:
                return self._after_partial(scope, position, entry, child)
        if candidate is None:
            return Match.NONE, None, {}
        match, child = candidate.match_result(scope, params)
        if match is Match.FULL:
            return Match.FULL, candidate, child
        return self._after_partial(scope, bound, candidate, child)

    def allowed_methods(self, scope: Scope) -> list[str]:
        """Every method some route serves at this path (``GET /items`` and ``POST /items``
        may be two routes): the ``Allow`` of a 405. Only requests heading for 405 pay it."""
        methods: set[str] = set()
        for entry in self.routes:
            if isinstance(entry, Route) and entry.matches(scope)[0] is not Match.NONE:
                methods.update(entry.methods or ())
        return sorted(methods)

    def _after_partial(
        self, scope: Scope, position: int, entry: BaseRoute, child: dict[str, Any]
    ) -> tuple[Match, BaseRoute | None, dict[str, Any]]:
        """The first fitting route refuses the method: a later full match still wins, found
        by a linear scan as a linear router would (only requests heading for 405 pay it)."""
        for later in self.routes[position + 1 :]:
            match, later_child = later.matches(scope)
            if match is Match.FULL:
                return Match.FULL, later, later_child
        return Match.PARTIAL, entry, child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        match, route, child = self.lookup(scope)
        if match is Match.PARTIAL and isinstance(route, Route):
            # The path is known, so metrics and traces still group this 405 by its route.
            scope[TEMPLATE_KEY] = scope.get(PREFIX_KEY, "") + route.path
            allowed = self.allowed_methods(scope)
            if self.raise_http_errors:
                raise HTTPException(405, headers={"Allow": ", ".join(allowed)})
            await method_not_allowed(allowed, send)
            return
        if route is not None:
            scope.update(child)
            if isinstance(route, Route):
                scope["route"] = route
                scope[TEMPLATE_KEY] = scope.get(PREFIX_KEY, "") + route.path
            elif isinstance(route, Mount):
                scope[PREFIX_KEY] = scope.get(PREFIX_KEY, "") + route.prefix
            await route.handle(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
        elif scope["type"] == "http":
            if self.raise_http_errors:
                raise HTTPException(404)
            await plain_response(send, 404, b"Not Found")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
