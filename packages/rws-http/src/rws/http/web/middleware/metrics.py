"""Prometheus metrics for an ASGI app, in the text exposition format 0.0.4, with no dependency.

:class:`MetricsMiddleware` records, for every HTTP request:

* ``http_requests_total{method,route,status}`` (counter),
* ``http_request_duration_seconds{method,route}`` (histogram: from the request's arrival to its
  last response byte handed to the server),
* ``http_requests_in_flight`` (gauge),

and serves every metric of its :class:`MetricsRegistry` at ``path`` (``GET``/``HEAD``; scrapes
are not themselves counted). WebSocket sessions pass through uncounted.

**Cardinality.** ``route`` is the matched route *template* (``/users/{id:int}``, mount prefixes
included; a 405 counts under the route that refused the method), or ``<unmatched>`` when no
route matched (a 404, or a response sent by a middleware before routing), never the raw path: a
scanner requesting a million random URLs adds one series, not a million. ``method`` is one of
the standard methods or ``_OTHER``, so made-up methods cannot add series either.
``group_paths_by_route=False`` uses the raw path instead — only for apps with a small, fixed
set of paths.

**Robustness.** The in-flight gauge is decremented in a ``finally``, so an exception or a
cancelled request cannot leave it stuck above zero. A request whose app raised before
responding is counted as ``500`` (what the server sends); one cancelled before responding (the
client went away) as ``499``, nginx's "client closed request". The counter and histogram are
updated just before the last response message is forwarded, so a scrape made after a client
got its response always includes it.

**Processes.** Metrics live in the process that recorded them. With ``--workers N`` each worker
exposes its own numbers and a scrape reaches whichever worker accepted it — as with
``prometheus_client`` outside its multiprocess mode. Scrape each worker on its own port, or
run one worker per container/pod and let Prometheus sum them.

Not thread-safe (one event loop needs no locks): update metrics from the loop's thread only.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from rws.http.web.routing import TEMPLATE_KEY
from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsMiddleware",
    "MetricsRegistry",
]

#: Latency buckets in seconds (prometheus_client's defaults): 5 ms to 10 s.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "<unmatched>"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (``+Inf``, ``-Inf``, ``NaN``, else ``repr``)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _labels_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class CounterValue:
    """One series of a :class:`Counter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up; inc({amount!r})")
        self.value += amount


class GaugeValue:
    """One series of a :class:`Gauge`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class HistogramValue:
    """One series of a :class:`Histogram`: per-bucket counts, made cumulative on exposition."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


V = TypeVar("V", CounterValue, GaugeValue, HistogramValue)


class _Metric(Generic[V]):
    kind = ""

    def __init__(self, name: str, help: str, labels: Iterable[str]) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name: {name!r} is not a valid Prometheus metric name")
        if not isinstance(help, str):
            raise ValueError(f"help: expected a string, got {help!r}")
        if isinstance(labels, str):
            raise ValueError(f"labels: expected a list of label names, got the string {labels!r}")
        self.name = name
        self.help = help
        self.label_names: tuple[str, ...] = tuple(labels)
        for label in self.label_names:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"labels: {label!r} is not a valid label name")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"labels: duplicate label names in {self.label_names}")
        self._series: dict[tuple[str, ...], V] = {}
        if not self.label_names:
            self._series[()] = self._new()

    def _new(self) -> V:
        raise NotImplementedError

    def labels(self, *values: str, **by_name: str) -> V:
        """The series for these label values (positional, or by name), created on first use."""
        if values and by_name:
            raise ValueError("labels: give the values by position or by name, not both")
        if by_name:
            if set(by_name) != set(self.label_names):
                raise ValueError(f"labels: {self.name} expects labels {list(self.label_names)}")
            values = tuple(by_name[name] for name in self.label_names)
        if len(values) != len(self.label_names):
            raise ValueError(f"labels: {self.name} expects labels {list(self.label_names)}")
        key = tuple(str(value) for value in values)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._new()
        return series

    def _only(self) -> V:
        if self.label_names:
            raise ValueError(f"{self.name} has labels {list(self.label_names)}: use .labels()")
        return self._series[()]

    def samples(self) -> Iterator[tuple[str, str, float]]:
        """``(name, label text, value)`` for every sample line."""
        raise NotImplementedError

    def expose(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        lines += [f"{name}{labels} {format_value(value)}" for name, labels, value in self.samples()]
        return "\n".join(lines) + "\n"


class Counter(_Metric[CounterValue]):
    """A value that only goes up (requests, errors, bytes)."""

    kind = "counter"

    def _new(self) -> CounterValue:
        return CounterValue()

    def samples(self) -> Iterator[tuple[str, str, float]]:
        for values, series in self._series.items():
            yield self.name, _labels_text(self.label_names, values), series.value

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)


class Gauge(_Metric[GaugeValue]):
    """A value that goes up and down (in-flight requests, queue length)."""

    kind = "gauge"

    def _new(self) -> GaugeValue:
        return GaugeValue()

    def samples(self) -> Iterator[tuple[str, str, float]]:
        for values, series in self._series.items():
            yield self.name, _labels_text(self.label_names, values), series.value

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only().dec(amount)

    def set(self, value: float) -> None:
        self._only().set(value)


class Histogram(_Metric[HistogramValue]):
    """Observations counted into ``buckets`` (upper bounds; ``+Inf`` is added)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not bounds or any(not math.isfinite(b) for b in bounds):
            raise ValueError(f"buckets: expected finite upper bounds, got {tuple(buckets)!r}")
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(
                f"buckets: expected strictly increasing bounds, got {tuple(buckets)!r}"
            )
        self.buckets: tuple[float, ...] = tuple(bounds)
        if "le" in labels:
            raise ValueError("labels: 'le' is reserved for histogram buckets")
        super().__init__(name, help, labels)

    def _new(self) -> HistogramValue:
        return HistogramValue(self.buckets)

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def samples(self) -> Iterator[tuple[str, str, float]]:
        bucket_names = (*self.label_names, "le")
        for values, series in self._series.items():
            cumulative = 0
            bounds = (*self.buckets, math.inf)
            for bound, count in zip(bounds, series.counts, strict=True):
                cumulative += count
                labels = _labels_text(bucket_names, (*values, format_value(bound)))
                yield f"{self.name}_bucket", labels, cumulative
            labels = _labels_text(self.label_names, values)
            yield f"{self.name}_sum", labels, series.sum
            yield f"{self.name}_count", labels, series.count


class MetricsRegistry:
    """The metrics one ``/metrics`` endpoint exposes.

    ``counter`` / ``gauge`` / ``histogram`` return the metric of that name, creating it on
    first use; asking again with the same type, labels (and buckets) returns the same object,
    so several middleware instances, or a middleware and your code, can share a registry.
    Asking with a different definition is a ``ValueError`` rather than two clashing series.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        found = self._register(Counter(name, help, labels))
        assert isinstance(found, Counter)
        return found

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        found = self._register(Gauge(name, help, labels))
        assert isinstance(found, Gauge)
        return found

    def histogram(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        found = self._register(Histogram(name, help, labels, buckets))
        assert isinstance(found, Histogram)
        return found

    def _register(self, metric: Counter | Gauge | Histogram) -> Counter | Gauge | Histogram:
        existing = self._metrics.get(metric.name)
        if existing is None:
            self._metrics[metric.name] = metric
            return metric
        same = type(existing) is type(metric) and existing.label_names == metric.label_names
        if isinstance(existing, Histogram) and isinstance(metric, Histogram):
            same = same and existing.buckets == metric.buckets
        if not same:
            raise ValueError(
                f"name: {metric.name!r} is already registered as a {existing.kind} with labels "
                f"{list(existing.label_names)}"
            )
        return existing

    def __iter__(self) -> Iterator[Counter | Gauge | Histogram]:
        return iter(list(self._metrics.values()))

    def expose(self) -> str:
        """Every metric in the text exposition format 0.0.4."""
        return "".join(metric.expose() for metric in self._metrics.values())


class MetricsMiddleware:
    """Record HTTP request metrics into ``registry`` and serve it at ``path`` (module doc).

    Without ``registry`` the middleware gets a fresh one of its own (no process-wide default
    registry, so building an app twice — in tests — never clashes).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str = "/metrics",
        registry: MetricsRegistry | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        group_paths_by_route: bool = True,
    ) -> None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path: expected a path starting with '/', got {path!r}")
        if registry is not None and not isinstance(registry, MetricsRegistry):
            raise ValueError(f"registry: expected a MetricsRegistry, got {registry!r}")
        self.app = app
        self.path = path
        self.registry = MetricsRegistry() if registry is None else registry
        self.group_paths_by_route = group_paths_by_route
        self.requests = self.registry.counter(
            "http_requests_total", "HTTP requests answered.", ("method", "route", "status")
        )
        self.duration = self.registry.histogram(
            "http_request_duration_seconds",
            "Time from a request's arrival to its last response byte.",
            ("method", "route"),
            buckets,
        )
        self.in_flight = self.registry.gauge(
            "http_requests_in_flight", "HTTP requests being handled now."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.path:
            await self._serve(scope, send)
            return
        start = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "_OTHER"
        status: int | None = None
        recorded = False

        def record(final_status: int) -> None:
            nonlocal recorded
            recorded = True
            route = scope.get(TEMPLATE_KEY)
            if route is None:
                route = UNMATCHED if self.group_paths_by_route else scope["path"]
            self.requests.labels(method, route, str(final_status)).inc()
            self.duration.labels(method, route).observe(time.perf_counter() - start)

        async def send_recording(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
            elif not recorded and (
                (kind == "http.response.body" and not message.get("more_body", False))
                or kind == "http.response.pathsend"
            ):
                record(500 if status is None else status)
            await send(message)

        self.in_flight.inc()
        unanswered = 500
        try:
            await self.app(scope, receive, send_recording)
        except asyncio.CancelledError:
            unanswered = 499
            raise
        finally:
            self.in_flight.dec()
            if not recorded:
                record(unanswered if status is None else status)

    async def _serve(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            body = b"Method Not Allowed"
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")]
            status = 405
        else:
            body = self.registry.expose().encode()
            headers = [(b"content-type", CONTENT_TYPE.encode())]
            status = 200
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
