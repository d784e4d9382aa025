"""RateLimitMiddleware: every algorithm against the memory and the Redis backend, served for
real by both servers (the ``served`` fixture), with a real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from rws.http.web.middleware.rate_limit import (
    Decision,
    MemoryRateLimitBackend,
    RateLimitBackend,
    RateLimitMiddleware,
    RedisRateLimitBackend,
)
from rws.http.web.routing import Route, Router
from rws.http.web.types import Receive, Scope, Send

REDIS_URL = "redis://127.0.0.1:6379/0"
ALGORITHMS = ["sliding_window", "fixed_window", "token_bucket"]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def router() -> Router:
    return Router(
        [
            Route("/", hello, methods=["GET", "POST"]),
            Route("/health", hello),
            Route("/static/{rest:path}", hello),
        ]
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix in the real Redis (deleted afterwards), so tests never share keys.

    Synchronous (the blocking client) so that async fixtures can ask for it by name."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is required but unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    prefix = f"rws:test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[RateLimitBackend]:
    if request.param == "memory":
        yield MemoryRateLimitBackend()
        return
    prefix = request.getfixturevalue("redis_prefix")
    redis_backend = RedisRateLimitBackend(REDIS_URL, prefix=prefix)
    yield redis_backend
    await redis_backend.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_refused(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429
    assert response.json() == {"detail": "Too Many Requests"}
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) >= 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_exactly_limit_requests_are_allowed(
    served: Any, backend: RateLimitBackend, algorithm: str
) -> None:
    app = RateLimitMiddleware(
        router(),
        limit=3,
        window=30,
        algorithm=algorithm,
        backend=backend,  # type: ignore[arg-type]
    )
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for remaining in (2, 1, 0):
            response = await client.get("/")
            assert response.status_code == 200
            assert response.text == "ok"
            assert response.headers["ratelimit-limit"] == "3"
            assert response.headers["ratelimit-remaining"] == str(remaining)
            assert 1 <= int(response.headers["ratelimit-reset"]) <= 30
            assert "retry-after" not in response.headers
        refused = await client.get("/")
        assert_refused(refused, 3)
        assert int(refused.headers["retry-after"]) <= 30
        assert (await client.post("/")).status_code == 429  # one limit for every method


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_concurrent_requests_never_exceed_the_limit(
    served: Any, backend: RateLimitBackend, algorithm: str
) -> None:
    app = RateLimitMiddleware(
        router(),
        limit=4,
        window=30,
        algorithm=algorithm,
        backend=backend,  # type: ignore[arg-type]
    )
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        responses = await asyncio.gather(*(client.get("/") for _ in range(12)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 4 + [429] * 8
    remaining = sorted(r.headers["ratelimit-remaining"] for r in responses if r.status_code == 200)
    assert remaining == ["0", "1", "2", "3"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_limit_resets_after_window(
    served: Any, backend: RateLimitBackend, algorithm: str
) -> None:
    app = RateLimitMiddleware(
        router(),
        limit=2,
        window=1.0,
        algorithm=algorithm,
        backend=backend,  # type: ignore[arg-type]
    )
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        assert [(await client.get("/")).status_code for _ in range(3)] == [200, 200, 429]
        await asyncio.sleep(1.3)
        first = await client.get("/")
        assert first.status_code == 200
        assert first.headers["ratelimit-remaining"] == "1"
        assert (await client.get("/")).status_code == 200


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_two_app_instances_share_one_limit_through_redis(
    served: Any, redis_prefix: str, algorithm: str
) -> None:
    """Two apps with their own Redis clients stand for two processes or hosts."""
    import redis.asyncio as redis_asyncio

    clients = [redis_asyncio.from_url(REDIS_URL), redis_asyncio.from_url(REDIS_URL)]
    try:
        bases = [
            await served(
                RateLimitMiddleware(
                    router(),
                    limit=4,
                    window=30,
                    algorithm=algorithm,  # type: ignore[arg-type]
                    backend=RedisRateLimitBackend(client=redis_client, prefix=redis_prefix),
                )
            )
            for redis_client in clients
        ]
        async with httpx.AsyncClient() as client:
            statuses = [(await client.get(bases[i % 2] + "/")).status_code for i in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for redis_client in clients:
            await redis_client.aclose()


async def test_key_by_header_falls_back_to_client_address(served: Any) -> None:
    app = RateLimitMiddleware(router(), limit=1, window=30, key="header:X-Api-Key")
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        assert (await client.get("/", headers={"X-Api-Key": "a"})).status_code == 200
        assert (await client.get("/", headers={"x-api-key": "a"})).status_code == 429
        assert (await client.get("/", headers={"X-Api-Key": "b"})).status_code == 200
        assert (await client.get("/")).status_code == 200  # by IP now
        assert (await client.get("/")).status_code == 429


async def test_key_by_function_none_means_unlimited(served: Any) -> None:
    def tenant(scope: Scope) -> str | None:
        if scope["path"] == "/health":
            return None
        return scope["query_string"].decode() or "anonymous"

    app = RateLimitMiddleware(router(), limit=2, window=30, key=tenant)
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for _ in range(5):
            health = await client.get("/health")
            assert health.status_code == 200
            assert "ratelimit-limit" not in health.headers
        assert [(await client.get("/?t1")).status_code for _ in range(3)] == [200, 200, 429]
        assert (await client.get("/?t2")).status_code == 200


async def test_methods_and_exempt_paths(served: Any) -> None:
    app = RateLimitMiddleware(
        router(), limit=1, window=30, methods=["post"], exempt_paths=["/health", "/static/"]
    )
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for _ in range(3):
            response = await client.get("/")
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers
        assert (await client.post("/")).status_code == 200
        assert (await client.post("/")).status_code == 429
    app = RateLimitMiddleware(router(), limit=1, window=30, exempt_paths=["/health", "/static/"])
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for path in ("/health", "/health", "/static/a.css", "/static/b/c.js", "/static/a.css"):
            assert (await client.get(path)).status_code == 200
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/")).status_code == 429


async def test_memory_backend_key_count_is_bounded_lru_first() -> None:
    backend = MemoryRateLimitBackend(max_keys=3)
    for key in ("a", "b", "c"):
        assert (await backend.hit(key, 1, 60, "fixed_window", now=0.0)).allowed
    assert not (await backend.hit("a", 1, 60, "fixed_window", now=1.0)).allowed  # a is fresh
    assert (await backend.hit("d", 1, 60, "fixed_window", now=2.0)).allowed  # evicts b (LRU)
    assert len(backend) == 3
    assert not (await backend.hit("a", 1, 60, "fixed_window", now=3.0)).allowed  # a survived
    assert (await backend.hit("b", 1, 60, "fixed_window", now=4.0)).allowed  # b started over
    assert len(backend) == 3


async def test_memory_backend_evicts_expired_keys_before_live_ones() -> None:
    backend = MemoryRateLimitBackend(max_keys=3)
    await backend.hit("live", 1, 60, "fixed_window", now=0.0)  # the least recently used
    await backend.hit("short", 1, 1, "fixed_window", now=0.1)  # expired from 1.1 on
    await backend.hit("other", 1, 60, "fixed_window", now=0.2)
    await backend.hit("new", 1, 60, "fixed_window", now=5.0)
    assert len(backend) == 3
    # pure LRU would have evicted "live"; the expired "short" went instead
    assert not (await backend.hit("live", 1, 60, "fixed_window", now=6.0)).allowed
    with pytest.raises(ValueError, match=r"^algorithm:"):
        await backend.hit("live", 1, 60, "leaky_bucket")
    assert len(backend) == 3


async def test_key_spray_through_the_middleware_stays_bounded(served: Any) -> None:
    backend = MemoryRateLimitBackend(max_keys=5)
    app = RateLimitMiddleware(router(), limit=1, window=30, key="header:X-Api-Key", backend=backend)
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        for n in range(20):
            response = await client.get("/", headers={"X-Api-Key": f"key-{n}"})
            assert response.status_code == 200
            assert len(backend) <= 5
    assert len(backend) == 5


async def test_memory_algorithms_on_a_fake_clock() -> None:
    backend = MemoryRateLimitBackend()
    hit = backend.hit
    # token bucket: 2 tokens, refilled at 1 per second
    assert await hit("k", 2, 2, "token_bucket", now=0.0) == Decision(True, 1, 1.0, 0.0)
    assert await hit("k", 2, 2, "token_bucket", now=0.0) == Decision(True, 0, 2.0, 0.0)
    refused = await hit("k", 2, 2, "token_bucket", now=0.5)
    assert not refused.allowed and refused.retry_after == pytest.approx(0.5)
    assert (await hit("k", 2, 2, "token_bucket", now=1.0)).allowed
    # sliding window: exact, no burst across the window edge
    assert (await hit("s", 2, 10, "sliding_window", now=0.0)).allowed
    assert (await hit("s", 2, 10, "sliding_window", now=9.0)).allowed
    assert await hit("s", 2, 10, "sliding_window", now=9.5) == Decision(False, 0, 9.5, 0.5)
    assert (await hit("s", 2, 10, "sliding_window", now=10.5)).allowed  # the hit at 0 left
    assert not (await hit("s", 2, 10, "sliding_window", now=11.0)).allowed  # 9.0 still counts
    # fixed window: starts at the first hit
    assert (await hit("f", 1, 10, "fixed_window", now=3.0)).allowed
    refused = await hit("f", 1, 10, "fixed_window", now=7.0)
    assert refused == Decision(False, 0, 6.0, 6.0)
    assert (await hit("f", 1, 10, "fixed_window", now=13.0)).allowed


class RecordingBackend:
    """A real backend (memory) that also remembers the keys it was asked about."""

    def __init__(self) -> None:
        self.inner = MemoryRateLimitBackend()
        self.keys: list[str] = []

    async def hit(
        self, key: str, limit: int, window: float, algorithm: str, now: float | None = None
    ) -> Decision:
        self.keys.append(key)
        return await self.inner.hit(key, limit, window, algorithm, now)


async def test_long_keys_are_hashed_and_limiters_are_namespaced(served: Any) -> None:
    backend = RecordingBackend()
    inner = RateLimitMiddleware(
        router(), limit=1, window=30, key="header:X-Api-Key", backend=backend, namespace="login"
    )
    app = RateLimitMiddleware(inner, limit=10, window=30, key="header:X-Api-Key", backend=backend)
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        first = await client.get("/", headers={"X-Api-Key": "k" * 5000})
        assert first.status_code == 200
        assert first.headers.get_list("ratelimit-limit") == ["1"]  # the inner limiter's values
        assert (await client.get("/", headers={"X-Api-Key": "k" * 5000})).status_code == 429
    assert all(len(key) < 100 for key in backend.keys)
    assert {key.split(":")[0] for key in backend.keys} == {"default", "login"}


async def test_redis_down_fails_open_by_default(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("redis.asyncio")
    backend = RedisRateLimitBackend(f"redis://127.0.0.1:{closed_port()}/0")
    app = RateLimitMiddleware(router(), limit=1, window=30, backend=backend)
    with caplog.at_level(logging.WARNING, logger="rws.http.web.rate_limit"):
        async with httpx.AsyncClient(base_url=await served(app)) as client:
            for _ in range(3):
                response = await client.get("/")
                assert response.status_code == 200
                assert "ratelimit-limit" not in response.headers
    warnings = [r for r in caplog.records if r.name == "rws.http.web.rate_limit"]
    assert len(warnings) == 1  # throttled: one warning, not one per request
    assert "rate limit backend failed" in warnings[0].getMessage()
    await backend.aclose()


async def test_redis_down_fails_closed_when_asked(served: Any) -> None:
    pytest.importorskip("redis.asyncio")
    backend = RedisRateLimitBackend(f"redis://127.0.0.1:{closed_port()}/0")
    app = RateLimitMiddleware(
        router(), limit=1, window=30, backend=backend, on_backend_error="deny"
    )
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        response = await client.get("/")
    assert response.status_code == 503
    assert json.loads(response.content) == {"detail": "Rate limiter unavailable"}
    await backend.aclose()


async def test_redis_keys_expire(redis_prefix: str) -> None:
    import redis.asyncio as redis_asyncio

    backend = RedisRateLimitBackend(REDIS_URL, prefix=redis_prefix)
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        for algorithm in ALGORITHMS:
            await backend.hit("ttl", 5, 2.0, algorithm)
            ttl = await client.pttl(f"{redis_prefix}{algorithm}:ttl")
            assert 0 < ttl <= 2100, algorithm
    finally:
        await client.aclose()
        await backend.aclose()


def test_missing_redis_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"rws-http\[redis\]"):
        RedisRateLimitBackend()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"limit": 0, "window": 1}, "limit"),
        ({"limit": True, "window": 1}, "limit"),
        ({"limit": 1, "window": 0}, "window"),
        ({"limit": 1, "window": float("inf")}, "window"),
        ({"limit": 1, "window": 1, "algorithm": "leaky"}, "algorithm"),
        ({"limit": 1, "window": 1, "key": "cookie:x"}, "key"),
        ({"limit": 1, "window": 1, "key": "header:"}, "key"),
        ({"limit": 1, "window": 1, "methods": "GET"}, "methods"),
        ({"limit": 1, "window": 1, "exempt_paths": ["health"]}, "exempt_paths"),
        ({"limit": 1, "window": 1, "on_backend_error": "ignore"}, "on_backend_error"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name}:"):
        RateLimitMiddleware(hello, **options)


def test_bad_max_keys_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^max_keys:"):
        MemoryRateLimitBackend(max_keys=0)
