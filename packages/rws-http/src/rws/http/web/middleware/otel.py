"""OpenTelemetry tracing: one SERVER span per HTTP request and per WebSocket session.

Needs only ``opentelemetry-api`` (``pip install 'rws-http[otel]'``); what happens to spans —
sampling, exporting — is the configured SDK's business. Without an SDK every span is a no-op.

* The caller's trace is continued: W3C ``traceparent`` / ``tracestate`` (and baggage) are
  extracted from the request headers with the globally configured propagator.
* The span is the *current* span while the app runs (a context variable), so spans a handler
  starts — ``tracer.start_as_current_span("db")``, instrumented HTTP clients — are its children.
* Names and attributes follow the stable HTTP semantic conventions: the span is named
  ``"{method} {route}"`` once the router has put the route template in the scope (never the
  raw path: span names must have low cardinality), else just ``"{method}"``. Methods outside
  the standard set are reported as ``_OTHER`` (named ``"HTTP"``), the original in
  ``http.request.method_original``. A WebSocket session is a ``GET`` (its upgrade request) with
  ``http.response.status_code`` 101 once accepted, 403 if closed before that.
* Status is ERROR for 5xx responses and for exceptions (recorded as an event with the
  traceback, then re-raised); 4xx leave a server span's status unset, as the conventions say.
* The span ends when the app returns, raises, or is cancelled (the client went away), so no
  span is left open; it spans the whole response, streamed bodies included, and any work the
  app does after its last response byte before returning (so its errors land on the span).

``url.query`` is recorded as received; if query strings carry secrets (tokens, signatures),
exclude those paths or redact in a span processor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rws.http.web.routing import TEMPLATE_KEY
from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["OpenTelemetryMiddleware"]

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _check_paths(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    if isinstance(paths, str):
        raise ValueError("excluded_paths: expected a list of paths, got a string")
    exact: set[str] = set()
    prefixes: list[str] = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"excluded_paths: {path!r} must be a path starting with '/'")
        if path.endswith("/") and path != "/":
            prefixes.append(path)
        else:
            exact.add(path)
    return frozenset(exact), tuple(prefixes)


def _split_host(value: str) -> tuple[str, int | None]:
    """``"[::1]:8000"`` -> ``("::1", 8000)``; ``"example.com"`` -> ``("example.com", None)``."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    return host, int(port) if port.isdigit() else None


def _type_name(exc: BaseException) -> str:
    """The exception's fully qualified class name, as ``error.type`` wants it."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def request_attributes(scope: Scope, headers: dict[str, list[str]]) -> dict[str, Any]:
    """The semantic-convention attributes known when the request arrives."""
    websocket = scope["type"] == "websocket"
    method = "GET" if websocket else str(scope.get("method", "GET"))
    scheme = str(scope.get("scheme") or ("ws" if websocket else "http"))
    attributes: dict[str, Any] = {
        "http.request.method": method if method in METHODS else "_OTHER",
        "url.path": scope.get("path", ""),
        "url.scheme": scheme,
    }
    if method not in METHODS:
        attributes["http.request.method_original"] = method
    query = scope.get("query_string", b"")
    if query:
        attributes["url.query"] = bytes(query).decode("latin-1")
    host_header = headers.get("host")
    server = scope.get("server")
    if host_header:
        host, port = _split_host(host_header[0].strip())
        attributes["server.address"] = host
        port = port if port is not None else DEFAULT_PORTS.get(scheme)
        if port is not None:
            attributes["server.port"] = port
    elif server:
        attributes["server.address"] = str(server[0])
        if server[1] is not None:
            attributes["server.port"] = int(server[1])
    client = scope.get("client")
    if client:
        attributes["client.address"] = str(client[0])
        attributes["client.port"] = int(client[1])
    user_agent = headers.get("user-agent")
    if user_agent:
        attributes["user_agent.original"] = user_agent[0]
    if scope.get("http_version"):
        attributes["network.protocol.version"] = str(scope["http_version"])
    return attributes


class OpenTelemetryMiddleware:
    """Trace every HTTP request and WebSocket session (see the module doc).

    ``tracer_provider``: defaults to the global one (``trace.set_tracer_provider``), looked up
    per span, so it may be set after the app is built. ``excluded_paths``: paths traced not at
    all (health checks, ``/metrics``); an entry ending in ``/`` excludes everything under it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: TracerProvider | None = None,
        excluded_paths: Iterable[str] = (),
    ) -> None:
        try:
            from opentelemetry import context, propagate, trace
        except ImportError as exc:
            raise ImportError(
                "OpenTelemetryMiddleware needs opentelemetry-api: pip install 'rws-http[otel]'"
            ) from exc
        self.excluded, self.excluded_prefixes = _check_paths(excluded_paths)
        if tracer_provider is not None and not hasattr(tracer_provider, "get_tracer"):
            raise ValueError(f"tracer_provider: expected a TracerProvider, got {tracer_provider!r}")
        self.app = app
        self.tracer = trace.get_tracer("rws.http.web", tracer_provider=tracer_provider)
        self._extract = propagate.extract
        self._attach = context.attach
        self._detach = context.detach
        self._in_context = trace.set_span_in_context
        self._server = trace.SpanKind.SERVER
        self._status = trace.Status
        self._error = trace.StatusCode.ERROR

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path in self.excluded or path.startswith(self.excluded_prefixes):
            await self.app(scope, receive, send)
            return
        headers: dict[str, list[str]] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(bytes(name).decode("latin-1").lower(), []).append(
                bytes(value).decode("latin-1")
            )
        parent = self._extract(headers)
        attributes = request_attributes(scope, headers)
        method = attributes["http.request.method"]
        label = "HTTP" if method == "_OTHER" else method
        span = self.tracer.start_span(
            label, context=parent, kind=self._server, attributes=attributes
        )
        token = self._attach(self._in_context(span, parent))
        status: int | None = None
        failed = False

        async def send_observed(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = int(message["status"])
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and status is None:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            failed = True
            span.record_exception(exc, escaped=True)
            span.set_status(self._status(self._error, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("error.type", _type_name(exc))
            if status is None and scope["type"] == "http":
                status = 500  # what the server answers for an app that raised
            raise
        finally:
            try:
                self._finish(span, scope, label, status, failed)
            finally:
                self._detach(token)

    def _finish(
        self, span: Span, scope: Scope, label: str, status: int | None, failed: bool
    ) -> None:
        route = scope.get(TEMPLATE_KEY)
        if route is not None:
            span.set_attribute("http.route", route)
            span.update_name(f"{label} {route}")
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500 and not failed:
                span.set_status(self._status(self._error))
                span.set_attribute("error.type", str(status))
        span.end()
