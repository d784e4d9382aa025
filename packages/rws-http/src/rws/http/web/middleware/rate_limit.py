"""Per-client request rate limits, kept in process memory or shared through Redis.

**Algorithms** (``limit`` requests per ``window`` seconds, per key):

* ``"sliding_window"`` — an exact sliding log: a request is allowed when fewer than ``limit``
  requests were allowed in the last ``window`` seconds. Exact (no 2x burst across a window
  edge, unlike the two-window approximation) at the cost of one timestamp per allowed request
  and key, so memory per key grows with ``limit``; for limits of many thousands per window
  prefer ``"token_bucket"``, which keeps two numbers per key.
* ``"fixed_window"`` — a counter that starts at a key's first request and resets ``window``
  seconds later. The cheapest; allows up to ``2 * limit`` around a window edge.
* ``"token_bucket"`` — a bucket of ``limit`` tokens refilled at ``limit / window`` per second:
  bursts of ``limit``, then a steady rate.

**Keys.** ``key="ip"`` uses ``scope["client"][0]``. Behind a reverse proxy that is the proxy's
address unless the server rewrites it from ``X-Forwarded-For`` / ``Forwarded`` (rws-http's and
uvicorn's proxy-headers handling, restricted to trusted proxies) — turn that on, or every
client shares one limit. A request with no client address (a Unix socket without proxy
headers) is limited under the shared key ``"<no-client>"``. ``key="header:X-Api-Key"`` uses
that header, falling back to the client address when it is missing (so omitting the header
is no way around the limit). A callable ``key(scope)`` returns the key, or ``None`` to leave
the request unlimited. Keys longer than 64 characters are stored as their SHA-256, so a client
cannot make the store hold huge keys.

**Responses.** A refused request gets ``429`` with ``{"detail": "Too Many Requests"}`` and
``Retry-After`` (whole seconds, rounded up). Every limited request, allowed or not, carries
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds until the full
quota is back), as in the IETF ``RateLimit`` header draft; when an inner rate limiter already
set them (a stricter per-route limit inside a global one) the inner values are kept.

**Backend failures.** ``on_backend_error="allow"`` (default: fail open) lets the request
through without rate-limit headers and logs a warning (at most one per 30 s, so a Redis outage
cannot flood the log); ``"deny"`` (fail closed) answers ``503`` — not ``429``, since the client
did nothing wrong. Fail open keeps the site up when Redis is down; fail closed keeps an
expensive endpoint (login, SMS) protected at the price of an outage.

Only ``http`` scopes are limited; ``websocket`` and ``lifespan`` pass through.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rws.http.web.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "Algorithm",
    "Decision",
    "MemoryRateLimitBackend",
    "RateLimitBackend",
    "RateLimitMiddleware",
    "RedisRateLimitBackend",
]

logger = logging.getLogger("rws.http.web.rate_limit")

Algorithm = Literal["sliding_window", "fixed_window", "token_bucket"]
ALGORITHMS: tuple[str, ...] = ("sliding_window", "fixed_window", "token_bucket")
KeyFunc = Callable[[Scope], "str | None"]

#: Keys longer than this are replaced by their SHA-256 (bounded memory per key).
MAX_KEY_LENGTH = 64
#: How many least-recently-used entries the memory backend scans for expired ones to evict.
EVICTION_SCAN = 32
#: At most one "backend failed" warning per this many seconds.
WARNING_INTERVAL = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The backend's answer for one request.

    ``remaining``: requests still allowed now; ``reset_after``: seconds until the full quota is
    back; ``retry_after``: seconds until the next request would be allowed (0 when allowed).
    """

    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


class RateLimitBackend(Protocol):
    """Where the counters live. ``hit`` counts one request for ``key`` and decides on it,
    atomically: two concurrent hits must never both take the last slot."""

    async def hit(
        self, key: str, limit: int, window: float, algorithm: str, now: float | None = None
    ) -> Decision: ...


# ---------------------------------------------------------------------------------------------
# In-process backend


@dataclasses.dataclass(slots=True)
class _State:
    expires: float  # after this instant the entry is equivalent to no entry
    count: float = 0.0  # fixed window: requests; token bucket: tokens
    start: float = 0.0  # fixed window: window start; token bucket: last refill
    log: deque[float] = dataclasses.field(default_factory=deque)  # sliding window


class MemoryRateLimitBackend:
    """Counters in this process, on the monotonic clock (immune to wall-clock jumps).

    At most ``max_keys`` keys are kept. When a new key arrives at the bound, expired entries
    at the least-recently-used end are dropped first, then the least-recently-used live one.
    So a client spraying fresh keys (random API keys, IPv6 addresses) cannot grow memory
    without bound; the price is that, under such an attack, an evicted key's counter starts
    over. Memory is about ``max_keys`` entries, each up to ``limit`` floats for
    ``sliding_window``. Each worker process has its own counters: with ``--workers N`` a
    client gets ``N`` times the limit — use :class:`RedisRateLimitBackend` to share them.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys: expected a positive integer, got {max_keys!r}")
        self.max_keys = max_keys
        self._entries: OrderedDict[tuple[str, str], _State] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def hit(
        self, key: str, limit: int, window: float, algorithm: str, now: float | None = None
    ) -> Decision:
        # No await below: within one event loop the whole decision is atomic.
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: unknown {algorithm!r}; expected one of {ALGORITHMS}")
        now = time.monotonic() if now is None else now
        slot = (algorithm, key)
        state = self._entries.get(slot)
        if state is None or state.expires <= now:
            state = _State(expires=now + window, count=float(limit), start=now)
            if algorithm == "fixed_window":
                state.count = 0.0
            self._store(slot, state, now)
        else:
            self._entries.move_to_end(slot)
        if algorithm == "fixed_window":
            return _fixed_window(state, limit, window, now)
        if algorithm == "sliding_window":
            return _sliding_window(state, limit, window, now)
        return _token_bucket(state, limit, window, now)

    def _store(self, slot: tuple[str, str], state: _State, now: float) -> None:
        self._entries.pop(slot, None)
        if len(self._entries) >= self.max_keys:
            # Expired entries cost nothing to lose: look for some among the least recently
            # used (a bounded scan, so an insertion stays O(1)), else evict the LRU one.
            scan = itertools.islice(self._entries.items(), EVICTION_SCAN)
            expired = [stored for stored, entry in scan if entry.expires <= now]
            for stored in expired:
                del self._entries[stored]
            if not expired:
                self._entries.popitem(last=False)
        self._entries[slot] = state


def _fixed_window(state: _State, limit: int, window: float, now: float) -> Decision:
    if now >= state.start + window:
        state.start, state.count = now, 0.0
    reset = state.start + window - now
    state.expires = state.start + window
    if state.count >= limit:
        return Decision(False, 0, reset, reset)
    state.count += 1
    return Decision(True, limit - int(state.count), reset, 0.0)


def _sliding_window(state: _State, limit: int, window: float, now: float) -> Decision:
    log = state.log
    while log and log[0] <= now - window:
        log.popleft()
    if len(log) >= limit:
        return Decision(False, 0, log[-1] + window - now, log[0] + window - now)
    log.append(now)
    state.expires = now + window
    return Decision(True, limit - len(log), window, 0.0)


def _token_bucket(state: _State, limit: int, window: float, now: float) -> Decision:
    rate = limit / window
    tokens = min(float(limit), state.count + max(0.0, now - state.start) * rate)
    state.start = now
    allowed = tokens >= 1
    retry = 0.0
    if allowed:
        tokens -= 1
    else:
        retry = (1 - tokens) / rate
    state.count = tokens
    reset = (limit - tokens) / rate
    state.expires = now + reset
    return Decision(allowed, int(tokens), reset, retry)


# ---------------------------------------------------------------------------------------------
# Redis backend
#
# Each algorithm is one Lua script, so a decision is atomic across every process and host
# sharing the Redis. The clock is Redis's own (TIME, or a key's PTTL), so hosts whose clocks
# disagree still agree on windows. Times travel in microseconds as integers; numbers written
# back go through string.format because Redis formats Lua numbers with 14 significant digits,
# which would cut microsecond timestamps. Every key gets a TTL no longer than its window, so
# idle clients cost nothing.

_NOW = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"

_SLIDING_LUA = (
    _NOW
    + """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, limit - count - 1, window, 0}
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return {0, 0, newest + window - now, oldest + window - now}
"""
)

_FIXED_LUA = """
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if count >= limit and ttl > 0 then
  return {0, 0, ttl * 1000, ttl * 1000}
end
count = redis.call('INCR', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window_ms)
  ttl = window_ms
end
return {1, limit - count, ttl * 1000, 0}
"""

_BUCKET_LUA = (
    _NOW
    + """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rate = limit / window
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = limit
  ts = now
end
tokens = math.min(limit, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate)
end
local reset = math.ceil((limit - tokens) / rate)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'ts', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + 1)
return {allowed, math.floor(tokens), reset, retry}
"""
)

_SCRIPTS = {"sliding_window": _SLIDING_LUA, "fixed_window": _FIXED_LUA, "token_bucket": _BUCKET_LUA}


def _import_redis() -> Any:
    try:
        import redis.asyncio as redis_asyncio  # the optional extra, imported when used
    except ImportError as exc:
        raise ImportError(
            "RedisRateLimitBackend needs the 'redis' package: pip install 'rws-http[redis]'"
        ) from exc
    return redis_asyncio


class RedisRateLimitBackend:
    """Counters in Redis, shared by every process and host that uses the same ``prefix``.

    Give ``url`` (the client is created lazily, with ``timeout`` seconds for connecting and
    each command, and closed by :meth:`aclose`) or an existing ``redis.asyncio.Redis`` as
    ``client`` (yours to close). Keys are ``{prefix}{algorithm}:{key}``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: redis.asyncio.Redis | None = None,
        prefix: str = "rws:rl:",
        timeout: float = 1.0,
    ) -> None:
        redis_asyncio = _import_redis()
        if not isinstance(prefix, str):
            raise ValueError(f"prefix: expected a string, got {prefix!r}")
        if not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        self.prefix = prefix
        self._owned = client is None
        if client is None:
            client = redis_asyncio.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self.client: redis.asyncio.Redis = client
        self._scripts = {name: client.register_script(lua) for name, lua in _SCRIPTS.items()}

    async def hit(
        self, key: str, limit: int, window: float, algorithm: str, now: float | None = None
    ) -> Decision:
        """``now`` is ignored: Redis's clock is the one every host shares."""
        script = self._scripts.get(algorithm)
        if script is None:
            raise ValueError(f"algorithm: unknown {algorithm!r}; expected one of {ALGORITHMS}")
        window_us = max(1, round(window * 1_000_000))
        if algorithm == "fixed_window":
            args: list[Any] = [limit, max(1, math.ceil(window * 1000))]
        else:
            args = [limit, window_us, uuid.uuid4().hex]
        result = await script(keys=[f"{self.prefix}{algorithm}:{key}"], args=args)
        allowed, remaining, reset_us, retry_us = (int(value) for value in result)
        return Decision(
            bool(allowed), max(0, remaining), max(0, reset_us) / 1e6, max(0, retry_us) / 1e6
        )

    async def aclose(self) -> None:
        """Close the client if this backend created it."""
        if self._owned:
            await self.client.aclose()


# ---------------------------------------------------------------------------------------------
# The middleware


def _check_paths(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    if isinstance(paths, str):
        raise ValueError("exempt_paths: expected a list of paths, got a string")
    exact: set[str] = set()
    prefixes: list[str] = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"exempt_paths: {path!r} must be a path starting with '/'")
        if path.endswith("/") and path != "/":
            prefixes.append(path)
        else:
            exact.add(path)
    return frozenset(exact), tuple(prefixes)


def _client_key(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "<no-client>"


def _header_key(name: str) -> KeyFunc:
    wanted = name.lower().encode("latin-1")

    def key(scope: Scope) -> str:
        for header, value in scope.get("headers", ()):
            if header.lower() == wanted:
                return "h:" + bytes(value).decode("latin-1")
        return "ip:" + _client_key(scope)

    return key


def _ip_key(scope: Scope) -> str:
    return "ip:" + _client_key(scope)


def _key_func(key: str | KeyFunc) -> KeyFunc:
    if callable(key):
        return key
    if key == "ip":
        return _ip_key
    if isinstance(key, str) and key.startswith("header:") and key[7:].strip():
        return _header_key(key[7:].strip())
    raise ValueError(f"key: expected 'ip', 'header:<name>' or a callable, got {key!r}")


class RateLimitMiddleware:
    """Limit each client to ``limit`` requests per ``window`` seconds (see the module doc).

    ``methods``: only these methods are limited (default: all). ``exempt_paths``: paths never
    limited; an entry ending in ``/`` exempts everything under it. ``namespace`` separates
    this limiter's counters from other limiters sharing the same backend (a per-route limit
    inside a global one).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        window: float,
        algorithm: Algorithm = "sliding_window",
        key: str | KeyFunc = "ip",
        backend: RateLimitBackend | None = None,
        methods: Collection[str] | None = None,
        exempt_paths: Iterable[str] = (),
        on_backend_error: Literal["allow", "deny"] = "allow",
        namespace: str = "default",
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit: expected a positive integer, got {limit!r}")
        if isinstance(window, bool) or not isinstance(window, int | float):
            raise ValueError(f"window: expected a number of seconds, got {window!r}")
        if not 0 < window < math.inf:
            raise ValueError(f"window: expected a positive finite number, got {window!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
        if on_backend_error not in ("allow", "deny"):
            raise ValueError(
                f"on_backend_error: expected 'allow' or 'deny', got {on_backend_error!r}"
            )
        if methods is not None and (isinstance(methods, str) or not methods):
            raise ValueError(f"methods: expected a non-empty list of methods, got {methods!r}")
        if not isinstance(namespace, str):
            raise ValueError(f"namespace: expected a string, got {namespace!r}")
        self.app = app
        self.limit = limit
        self.window = float(window)
        self.algorithm: str = algorithm
        self.key = _key_func(key)
        # not ``backend or ...``: an empty memory backend has len() 0, so it is falsy
        self.backend: RateLimitBackend = MemoryRateLimitBackend() if backend is None else backend
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.exempt, self.exempt_prefixes = _check_paths(exempt_paths)
        self.on_backend_error = on_backend_error
        self.namespace = namespace
        self._warned_at = -math.inf
        self._suppressed = 0

    def _is_limited(self, scope: Scope) -> bool:
        if self.methods is not None and scope.get("method") not in self.methods:
            return False
        path: str = scope.get("path", "")
        return path not in self.exempt and not path.startswith(self.exempt_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_limited(scope):
            await self.app(scope, receive, send)
            return
        client_key = self.key(scope)
        if client_key is None:
            await self.app(scope, receive, send)
            return
        if len(client_key) > MAX_KEY_LENGTH:
            client_key = "sha256:" + hashlib.sha256(client_key.encode()).hexdigest()
        try:
            decision = await self.backend.hit(
                f"{self.namespace}:{client_key}", self.limit, self.window, self.algorithm
            )
        except Exception as exc:
            self._warn(exc)
            if self.on_backend_error == "deny":
                await _json(send, 503, b'{"detail": "Rate limiter unavailable"}', [])
            else:
                await self.app(scope, receive, send)
            return
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(decision.remaining).encode()),
            (b"ratelimit-reset", str(math.ceil(decision.reset_after)).encode()),
        ]
        if not decision.allowed:
            retry = max(1, math.ceil(decision.retry_after))
            headers.append((b"retry-after", str(retry).encode()))
            await _json(send, 429, json.dumps({"detail": "Too Many Requests"}).encode(), headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = list(message.get("headers", ()))
                if not any(name.lower() == b"ratelimit-limit" for name, _ in existing):
                    message["headers"] = existing + headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARNING_INTERVAL:
            self._suppressed += 1
            return
        action = "letting requests through" if self.on_backend_error == "allow" else "refusing"
        logger.warning(
            "rate limit backend failed (%s: %s); %s (%d similar failures not logged)",
            type(exc).__name__,
            exc,
            action,
            self._suppressed,
        )
        self._warned_at, self._suppressed = now, 0


async def _json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
