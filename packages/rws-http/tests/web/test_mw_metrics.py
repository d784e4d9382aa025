"""MetricsMiddleware, served by both servers, its exposition checked by prometheus_client's own
parser (a test-only dependency: the middleware itself does not use it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rws.http.web.middleware.metrics import (
    CONTENT_TYPE,
    MetricsMiddleware,
    MetricsRegistry,
)
from rws.http.web.routing import Mount, Route, Router
from rws.http.web.types import Receive, Scope, Send

parser = pytest.importorskip("prometheus_client.parser")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def text(send: Send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await text(send, b"ok")


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    """An app with no router, so no route template is ever set."""
    if scope["type"] == "lifespan":
        await Router()(scope, receive, send)
        return
    await text(send, b"bare")


async def boom(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("handler failed")


async def unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    await text(send, b"later", status=503)


def make_router(**extra: Any) -> Router:
    routes = [
        Route("/users/{id:int}", ok, methods=["GET"]),
        Mount("/api", routes=[Route("/items/{name}", ok)]),
        Route("/boom", boom),
        Route("/unavailable", unavailable),
        *extra.get("routes", []),
    ]
    return Router(routes)


async def scrape(client: httpx.AsyncClient, path: str = "/metrics") -> Samples:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    samples: Samples = {}
    for family in parser.text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def wait_for(
    client: httpx.AsyncClient, check: Callable[[Samples], bool], path: str = "/metrics"
) -> Samples:
    """Scrape until ``check`` holds (the app's ``finally`` runs just after the response)."""
    async with asyncio.timeout(5):
        while True:
            samples = await scrape(client, path)
            if check(samples):
                return samples
            await asyncio.sleep(0.01)


IN_FLIGHT = key("http_requests_in_flight")


async def test_requests_are_counted_by_route_template(served: Any) -> None:
    app = MetricsMiddleware(make_router())
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for path in ("/users/1", "/users/2", "/users/3", "/api/items/a", "/nope", "/x/y"):
            await client.get(path)
        assert (await client.post("/users/1")).status_code == 405
        assert (await client.get("/unavailable")).status_code == 503
        samples = await scrape(client)

    total = "http_requests_total"
    assert samples[key(total, method="GET", route="/users/{id:int}", status="200")] == 3
    assert samples[key(total, method="GET", route="/api/items/{name}", status="200")] == 1
    assert samples[key(total, method="GET", route="<unmatched>", status="404")] == 2
    assert samples[key(total, method="POST", route="/users/{id:int}", status="405")] == 1
    assert samples[key(total, method="GET", route="/unavailable", status="503")] == 1
    assert sum(v for (name, _), v in samples.items() if name == total) == 8  # scrapes not counted
    routes = {dict(labels).get("route") for _, labels in samples}
    assert not any(route and route.startswith(("/users/1", "/nope", "/x/")) for route in routes)

    labels = {"method": "GET", "route": "/users/{id:int}"}
    count = samples[key("http_request_duration_seconds_count", **labels)]
    assert count == 3
    assert samples[key("http_request_duration_seconds_sum", **labels)] > 0
    buckets = sorted(
        (float(dict(found)["le"]), value)
        for (name, found), value in samples.items()
        if name == "http_request_duration_seconds_bucket"
        and {k: v for k, v in found if k != "le"} == labels
    )
    assert [le for le, _ in buckets][-1] == float("inf")
    assert len(buckets) == 15  # 14 default bounds + Inf
    values = [value for _, value in buckets]
    assert values == sorted(values)  # cumulative
    assert values[-1] == count
    assert samples[IN_FLIGHT] == 0


async def test_in_flight_gauge_counts_a_request_in_progress(served: Any) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await release.wait()
        await text(send, b"done")

    app = MetricsMiddleware(make_router(routes=[Route("/slow", slow)]))
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        pending = asyncio.create_task(client.get("/slow"))
        await asyncio.wait_for(started.wait(), 5)
        samples = await scrape(client)
        assert samples[IN_FLIGHT] == 1
        release.set()
        assert (await pending).text == "done"
        samples = await wait_for(client, lambda s: s[IN_FLIGHT] == 0)
        assert samples[key("http_requests_total", method="GET", route="/slow", status="200")] == 1


async def test_an_exception_counts_as_500_and_does_not_leak_the_gauge(served: Any) -> None:
    app = MetricsMiddleware(make_router())
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for _ in range(2):
            assert (await client.get("/boom")).status_code == 500
        wanted = key("http_requests_total", method="GET", route="/boom", status="500")
        samples = await wait_for(client, lambda s: s.get(wanted) == 2 and s[IN_FLIGHT] == 0)
    assert samples[key("http_request_duration_seconds_count", method="GET", route="/boom")] == 2


async def test_made_up_methods_and_raw_paths(served: Any) -> None:
    app = MetricsMiddleware(make_router(), group_paths_by_route=False, path="/-/metrics")
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        await client.request("BREW", "/users/7")
        await client.get("/users/8")
        samples = await scrape(client, "/-/metrics")
    total = "http_requests_total"
    assert samples[key(total, method="_OTHER", route="/users/{id:int}", status="405")] == 1
    assert samples[key(total, method="GET", route="/users/{id:int}", status="200")] == 1
    app = MetricsMiddleware(Router([Route("/a/{x}", ok)]), group_paths_by_route=True)
    app_raw = MetricsMiddleware(bare, group_paths_by_route=False)
    async with (
        httpx.AsyncClient(base_url=await served(app)) as grouped,
        httpx.AsyncClient(base_url=await served(app_raw)) as raw,
    ):
        await grouped.get("/b")
        await raw.get("/b")
        assert (await scrape(grouped))[key(total, method="GET", route="<unmatched>", status="404")]
        assert (await scrape(raw))[key(total, method="GET", route="/b", status="200")] == 1


async def test_scrape_endpoint_methods(served: Any) -> None:
    app = MetricsMiddleware(make_router())
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        refused = await client.post("/metrics")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
        head = await client.head("/metrics")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0


async def test_shared_registry_with_custom_metrics_and_escaping(served: Any) -> None:
    registry = MetricsRegistry()
    jobs = registry.counter("jobs_done_total", 'Jobs \\ done\nper "queue".', ["queue"])
    odd = 'a"b\\c\nd'
    jobs.labels(queue=odd).inc(2)
    jobs.labels("plain").inc()
    depth = registry.gauge("queue_depth", "Waiting jobs.")
    depth.set(5)
    depth.dec(2)
    sizes = registry.histogram("payload_bytes", "Payload sizes.", buckets=(10, 100))
    for size in (5, 50, 500):
        sizes.observe(size)
    first = MetricsMiddleware(make_router(), registry=registry)
    second = MetricsMiddleware(make_router(), registry=registry)
    assert second.requests is first.requests
    async with (
        httpx.AsyncClient(base_url=await served(first)) as one,
        httpx.AsyncClient(base_url=await served(second)) as two,
    ):
        await one.get("/users/1")
        await two.get("/users/1")
        samples = await scrape(one)
        response = await two.get("/metrics")
    assert samples[key("jobs_done_total", queue=odd)] == 2
    assert samples[key("jobs_done_total", queue="plain")] == 1
    assert samples[key("queue_depth")] == 3
    assert samples[key("payload_bytes_bucket", le="10.0")] == 1
    assert samples[key("payload_bytes_bucket", le="100.0")] == 2
    assert samples[key("payload_bytes_bucket", le="+Inf")] == 3
    assert samples[key("payload_bytes_sum")] == 555
    assert (
        samples[key("http_requests_total", method="GET", route="/users/{id:int}", status="200")]
        == 2
    )
    assert '# HELP jobs_done_total Jobs \\\\ done\\nper "queue".' in response.text
    assert 'queue="a\\"b\\\\c\\nd"' in response.text
    families = {f.name: f for f in parser.text_string_to_metric_families(response.text)}
    assert families["jobs_done"].documentation == 'Jobs \\ done\nper "queue".'


def test_exposition_text() -> None:
    registry = MetricsRegistry()
    registry.counter("hits_total", "Hits.", ["path"]).labels(path="/").inc()
    registry.histogram("t_seconds", "T.", buckets=(0.5,)).observe(0.5)
    assert registry.expose() == (
        "# HELP hits_total Hits.\n"
        "# TYPE hits_total counter\n"
        'hits_total{path="/"} 1.0\n'
        "# HELP t_seconds T.\n"
        "# TYPE t_seconds histogram\n"
        't_seconds_bucket{le="0.5"} 1.0\n'
        't_seconds_bucket{le="+Inf"} 1.0\n'
        "t_seconds_sum 0.5\n"
        "t_seconds_count 1.0\n"
    )


def test_registry_refuses_conflicting_definitions() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("a_total", "A.", ["x"])
    assert registry.counter("a_total", "A again.", ["x"]) is counter
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("a_total", "A.", ["x"])
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("a_total", "A.", ["y"])
    registry.histogram("h", "H.", buckets=(1, 2))
    with pytest.raises(ValueError, match="already registered"):
        registry.histogram("h", "H.", buckets=(1, 3))
    MetricsMiddleware(ok, registry=registry)
    with pytest.raises(ValueError, match="already registered"):
        MetricsMiddleware(ok, registry=registry, buckets=(1, 2))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: r.counter("bad-name", "x"), "^name:"),
        (lambda r: r.counter("ok", "x", ["__reserved"]), "^labels:"),
        (lambda r: r.counter("ok", "x", "method"), "^labels:"),
        (lambda r: r.counter("ok", "x", ["a", "a"]), "^labels:"),
        (lambda r: r.histogram("ok", "x", ["le"]), "^labels:"),
        (lambda r: r.histogram("ok", "x", buckets=()), "^buckets:"),
        (lambda r: r.histogram("ok", "x", buckets=(2, 1)), "^buckets:"),
        (lambda r: r.counter("ok", "x").inc(-1), "only goes up"),
        (lambda r: r.counter("ok", "x", ["a"]).inc(), "use .labels"),
        (lambda r: r.counter("ok", "x", ["a"]).labels(b="1"), "^labels:"),
        (lambda r: MetricsMiddleware(ok, path="metrics"), "^path:"),
        (lambda r: MetricsMiddleware(ok, registry=object()), "^registry:"),  # type: ignore[arg-type]
    ],
)
def test_bad_definitions_are_refused(
    build: Callable[[MetricsRegistry], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(MetricsRegistry())


async def test_readme_example(served: Any) -> None:
    """The package README's example for the metrics / rate-limit / tracing middleware."""
    from rws.http.web.middleware.metrics import MetricsMiddleware, MetricsRegistry
    from rws.http.web.middleware.otel import OpenTelemetryMiddleware
    from rws.http.web.middleware.rate_limit import RateLimitMiddleware
    from rws.http.web.routing import Route, Router

    registry = MetricsRegistry()
    greetings = registry.counter("greetings_total", "Greetings sent.", ["lang"])

    async def hello(scope: Scope, receive: Receive, send: Send) -> None:
        greetings.labels(lang="en").inc()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello"})

    app: Any = Router([Route("/hello/{name}", hello)])
    app = RateLimitMiddleware(app, limit=2, window=60, exempt_paths=["/metrics"])
    app = MetricsMiddleware(app, registry=registry)
    app = OpenTelemetryMiddleware(app, excluded_paths=["/metrics"])

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        statuses = [(await client.get("/hello/ann")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        samples = await scrape(client)
    assert samples[key("greetings_total", lang="en")] == 2
    total = "http_requests_total"
    assert samples[key(total, method="GET", route="/hello/{name}", status="200")] == 2
    assert samples[key(total, method="GET", route="<unmatched>", status="429")] == 1
