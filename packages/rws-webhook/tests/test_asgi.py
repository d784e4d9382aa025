"""WebhookMiddleware behind a real uvicorn server, driven by a real httpx client.

Each test starts uvicorn on 127.0.0.1 with an ephemeral port in the test's own event loop,
waits for its startup (lifespan included) to finish, and talks to it over the socket. The
app runs in the same loop, so it can record what it saw (scope, body) for exact assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, MutableMapping
from typing import Any
from urllib.parse import urlencode

import pytest

from rws.webhook import (
    AsyncSeenStore,
    GitHub,
    MemorySeenStore,
    StandardWebhooks,
    Stripe,
    Twilio,
    Verified,
    WebhookMiddleware,
    verify_webhook,
)

# Server and client are test tools, not dependencies: without them (a bare venv) skip this
# module, unless RWS_REQUIRE_SERVICES=1 (CI), where a missing tool is an error.
try:
    import httpx
    import uvicorn
    from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
except ImportError as exc:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(f"test tool not installed: {exc.name}", allow_module_level=True)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GITHUB_SECRET = "It's a Secret to Everybody"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40, "repository": {"id": 1}}).encode()


# -- the app under the middleware ---------------------------------------------------------------


class RecordingApp:
    """An ASGI app that records every HTTP call and answers with scripted outcomes.

    ``outcomes`` is consumed one per HTTP request: an int is the status to answer with,
    ``"raise"`` makes the app raise. When it runs out, requests get 200. The body it
    answers with describes what it received, so the client side can check it too.
    """

    def __init__(self, outcomes: list[int | str] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.calls: list[tuple[Scope, bytes]] = []
        self.lifespan: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.lifespan.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.lifespan.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        self.calls.append((scope, body))
        outcome = self.outcomes.pop(0) if self.outcomes else 200
        if outcome == "raise":
            raise RuntimeError("handler failed")
        verified = scope.get("rws.webhook")
        payload = json.dumps(
            {
                "path": scope["path"],
                "sha256": hashlib.sha256(body).hexdigest(),
                "scheme": verified.scheme if verified is not None else None,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": outcome,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


# -- a real server -------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn, plus an event set once startup (lifespan and listening socket) is done."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Leave pytest's own SIGINT handling alone.
        yield


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``app`` on 127.0.0.1:<ephemeral>; yield a client bound to it."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        http="h11",
        ws="none",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await serving  # re-raises why startup failed
        pytest.fail("uvicorn exited before it started")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as c:
            yield c
    finally:
        server.should_exit = True
        await serving


def github_headers(body: bytes, secret: str = GITHUB_SECRET) -> dict[str, str]:
    return {
        **GitHub(secret).sign(body),
        "X-GitHub-Delivery": DELIVERY,
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }


# -- acceptance ----------------------------------------------------------------------------------


async def test_valid_github_delivery_reaches_app_with_result_and_identical_body() -> None:
    app = RecordingApp()
    async with serve(WebhookMiddleware(app, GitHub(GITHUB_SECRET))) as client:
        response = await client.post("/hooks/github", content=PUSH, headers=github_headers(PUSH))
    assert response.status_code == 200
    assert response.json() == {
        "path": "/hooks/github",
        "sha256": hashlib.sha256(PUSH).hexdigest(),
        "scheme": "github",
    }
    [(scope, body)] = app.calls
    assert body == PUSH
    assert scope["rws.webhook"] == Verified(
        scheme="github", key_index=0, timestamp=None, message_id=DELIVERY, replay_key=None
    )
    assert scope["path"] == "/hooks/github"
    assert scope["method"] == "POST"


async def test_large_body_arriving_in_many_chunks_verifies_byte_exact() -> None:
    body = json.dumps({"blob": "".join(f"{i:06x}" for i in range(200_000))}).encode()
    assert len(body) > 1_000_000
    app = RecordingApp()
    async with serve(WebhookMiddleware(app, GitHub(GITHUB_SECRET))) as client:
        response = await client.post("/hooks/github", content=body, headers=github_headers(body))
    assert response.status_code == 200
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert app.calls[0][1] == body


async def test_chunked_body_without_length_verifies() -> None:
    body = b'{"chunked":"' + b"z" * 5000 + b'"}'

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 777):
            yield body[start : start + 777]

    app = RecordingApp()
    async with serve(WebhookMiddleware(app, GitHub(GITHUB_SECRET))) as client:
        response = await client.post(
            "/hooks/github", content=stream(), headers=github_headers(body)
        )
    assert response.status_code == 200
    [(scope, received)] = app.calls
    assert received == body
    assert (b"transfer-encoding", b"chunked") in scope["headers"]


async def test_verify_webhook_decorator_with_stripe() -> None:
    app = RecordingApp()
    secret = "whsec_asgi_decorator"
    wrapped = verify_webhook(Stripe(secret))(app)
    assert isinstance(wrapped, WebhookMiddleware)
    body = b'{"id":"evt_1","object":"event"}'
    headers = Stripe(secret).sign(body, timestamp=1_700_000_000)
    fresh = Stripe(secret).sign(body)
    async with serve(wrapped) as client:
        stale = await client.post("/stripe", content=body, headers=headers)
        ok = await client.post("/stripe", content=body, headers=fresh)
    assert stale.status_code == 401
    assert stale.json()["error"] == "timestamp_out_of_range"
    assert ok.status_code == 200
    [(scope, _)] = app.calls
    timestamp = int(fresh["Stripe-Signature"].split(",")[0].removeprefix("t="))
    assert scope["rws.webhook"] == Verified("stripe", 0, timestamp=timestamp)


# -- rejection -----------------------------------------------------------------------------------


async def test_bad_signature_is_401_json_and_app_not_called() -> None:
    app = RecordingApp()
    headers = github_headers(PUSH, secret="a different secret")
    async with serve(WebhookMiddleware(app, GitHub(GITHUB_SECRET))) as client:
        response = await client.post("/hooks/github", content=PUSH, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "invalid_signature",
        "detail": "signature does not match the body",
    }
    assert app.calls == []


async def test_missing_header_is_400_json() -> None:
    app = RecordingApp()
    async with serve(WebhookMiddleware(app, GitHub(GITHUB_SECRET))) as client:
        response = await client.post(
            "/hooks/github", content=PUSH, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json() == {
        "error": "missing_header",
        "detail": "missing header 'X-Hub-Signature-256'",
    }
    assert app.calls == []


async def test_body_over_limit_with_content_length_is_413() -> None:
    app = RecordingApp()
    body = b"x" * 4096
    middleware = WebhookMiddleware(app, GitHub(GITHUB_SECRET), max_body_size=1024)
    async with serve(middleware) as client:
        response = await client.post("/hooks/github", content=body, headers=github_headers(body))
        # The connection stays usable and a body of exactly the limit is accepted.
        exact = b"y" * 1024
        accepted = await client.post("/hooks/github", content=exact, headers=github_headers(exact))
    assert response.status_code == 413
    assert response.json() == {"error": "payload_too_large"}
    assert accepted.status_code == 200
    assert [body for _, body in app.calls] == [exact]


async def test_chunked_body_over_limit_is_413_and_app_not_called() -> None:
    app = RecordingApp()
    body = b"c" * 8192

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    middleware = WebhookMiddleware(app, GitHub(GITHUB_SECRET), max_body_size=3000)
    async with serve(middleware) as client:
        response = await client.post(
            "/hooks/github", content=stream(), headers=github_headers(body)
        )
    assert response.status_code == 413
    assert response.json() == {"error": "payload_too_large"}
    assert app.calls == []


async def test_paths_limits_verification() -> None:
    app = RecordingApp()
    middleware = WebhookMiddleware(app, GitHub(GITHUB_SECRET), paths={"/hooks/github"})
    async with serve(middleware) as client:
        health = await client.get("/health")
        other = await client.post("/api/items", content=b'{"a":1}')
        unsigned = await client.post("/hooks/github", content=PUSH)
        signed = await client.post("/hooks/github", content=PUSH, headers=github_headers(PUSH))
    assert health.status_code == 200
    assert health.json()["scheme"] is None
    assert other.status_code == 200
    assert unsigned.status_code == 400
    assert unsigned.json()["error"] == "missing_header"
    assert signed.status_code == 200
    assert [(scope["path"], scope.get("rws.webhook")) for scope, _ in app.calls] == [
        ("/health", None),
        ("/api/items", None),
        ("/hooks/github", Verified("github", 0, message_id=DELIVERY)),
    ]


# -- replay protection ---------------------------------------------------------------------------


async def test_replayed_delivery_is_409() -> None:
    app = RecordingApp()
    scheme = GitHub(GITHUB_SECRET, seen_store=MemorySeenStore())
    headers = github_headers(PUSH)
    async with serve(WebhookMiddleware(app, scheme)) as client:
        first = await client.post("/hooks/github", content=PUSH, headers=headers)
        second = await client.post("/hooks/github", content=PUSH, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json() == {
        "error": "replayed_message",
        "detail": "message was already received (replay)",
    }
    assert len(app.calls) == 1
    key = "github:sha256:" + hashlib.sha256(PUSH).hexdigest()
    assert app.calls[0][0]["rws.webhook"].replay_key == key


@pytest.mark.parametrize("failure", [500, 503, "raise"])
async def test_failed_handling_forgets_so_retry_is_accepted(failure: int | str) -> None:
    app = RecordingApp([failure, 200])
    store = MemorySeenStore()
    scheme = GitHub(GITHUB_SECRET, seen_store=store)
    headers = github_headers(PUSH)
    async with serve(WebhookMiddleware(app, scheme)) as client:
        first = await client.post("/hooks/github", content=PUSH, headers=headers)
        assert len(store) == 0  # forgotten: the failure did not consume the delivery
        retry = await client.post("/hooks/github", content=PUSH, headers=headers)
        again = await client.post("/hooks/github", content=PUSH, headers=headers)
    assert first.status_code == (500 if failure == "raise" else failure)
    assert retry.status_code == 200
    assert again.status_code == 409
    assert len(app.calls) == 2
    assert len(store) == 1


async def test_client_error_answer_is_not_forgotten() -> None:
    # A 4xx from the app is a decision, not a failure: the message stays consumed.
    app = RecordingApp([422])
    scheme = GitHub(GITHUB_SECRET, seen_store=MemorySeenStore())
    async with serve(WebhookMiddleware(app, scheme)) as client:
        first = await client.post("/hooks/github", content=PUSH, headers=github_headers(PUSH))
        second = await client.post("/hooks/github", content=PUSH, headers=github_headers(PUSH))
    assert (first.status_code, second.status_code) == (422, 409)


class RecordingAsyncStore:
    """A test double for the pluggable AsyncSeenStore interface (what a Redis or SQL store
    implements): a dict behind ``async remember/forget`` that logs each call."""

    def __init__(self) -> None:
        self.keys: dict[str, float] = {}
        self.log: list[tuple[str, ...]] = []

    async def remember(self, key: str, ttl: float) -> bool:
        self.log.append(("remember", key, str(ttl)))
        if key in self.keys:
            return False
        self.keys[key] = ttl
        return True

    async def forget(self, key: str) -> None:
        self.log.append(("forget", key))
        self.keys.pop(key, None)


async def test_async_seen_store_through_middleware() -> None:
    store = RecordingAsyncStore()
    assert isinstance(store, AsyncSeenStore)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    scheme = StandardWebhooks(secret, seen_store=store)
    app = RecordingApp([500, 200])
    body = b'{"type":"invoice.paid"}'
    headers = StandardWebhooks(secret).sign(body, message_id="msg_1")
    async with serve(WebhookMiddleware(app, scheme)) as client:
        statuses = [
            (await client.post("/hooks/standard", content=body, headers=headers)).status_code
            for _ in range(3)
        ]
    assert statuses == [500, 200, 409]
    key = "standard:id:msg_1"
    assert store.log == [
        ("remember", key, "600"),
        ("forget", key),
        ("remember", key, "600"),
        ("remember", key, "600"),
    ]
    assert app.calls[1][0]["rws.webhook"] == Verified(
        "standard",
        0,
        timestamp=int(headers["webhook-timestamp"]),
        message_id="msg_1",
        replay_key=key,
    )


# -- Twilio: the URL comes from the request ------------------------------------------------------

TWILIO_TOKEN = "twilio-auth-token-0123456789"
FORM = urlencode(
    [
        ("AccountSid", "AC1"),
        ("From", "+15551234567"),
        ("Body", "Zoë 🚀"),
        ("To", "+1"),
        ("To", "+2"),
    ]
).encode()
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_twilio_url_rebuilt_from_host_path_and_query() -> None:
    app = RecordingApp()
    async with serve(WebhookMiddleware(app, Twilio(TWILIO_TOKEN))) as client:
        url = f"{client.base_url}/twilio/sms?tenant=acme&n=2"
        headers = {**FORM_TYPE, **Twilio(TWILIO_TOKEN).sign(FORM, url=url)}
        ok = await client.post("/twilio/sms?tenant=acme&n=2", content=FORM, headers=headers)
        other_query = await client.post(
            "/twilio/sms?tenant=evil&n=2", content=FORM, headers=headers
        )
        other_path = await client.post(
            "/twilio/voice?tenant=acme&n=2", content=FORM, headers=headers
        )
    assert ok.status_code == 200
    assert other_query.status_code == 401
    assert other_path.status_code == 401
    assert other_query.json()["error"] == "invalid_signature"
    assert len(app.calls) == 1
    assert app.calls[0][0]["rws.webhook"] == Verified("twilio", 0)


async def test_twilio_uses_the_host_header_the_sender_addressed() -> None:
    # Twilio signs the host it called; the middleware must take it from the Host header,
    # not from the socket's address. Signed here by twilio's own RequestValidator.
    app = RecordingApp()
    url = "http://hooks.example.com/twilio/sms?tenant=acme"
    params = {
        "AccountSid": ["AC1"],
        "From": ["+15551234567"],
        "Body": ["Zoë 🚀"],
        "To": ["+1", "+2"],
    }

    class QueryDict(dict[str, list[str]]):
        def getlist(self, name: str) -> list[str]:
            return self[name]

    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, QueryDict(params))
    headers = {**FORM_TYPE, "X-Twilio-Signature": signature, "Host": "hooks.example.com"}
    async with serve(WebhookMiddleware(app, Twilio(TWILIO_TOKEN))) as client:
        ok = await client.post("/twilio/sms?tenant=acme", content=FORM, headers=headers)
        wrong_host = await client.post(
            "/twilio/sms?tenant=acme",
            content=FORM,
            headers={**headers, "Host": "attacker.example.net"},
        )
    assert ok.status_code == 200
    assert wrong_host.status_code == 401
    assert len(app.calls) == 1


async def test_twilio_public_url_override() -> None:
    # Behind a TLS-terminating proxy: Twilio called https://hooks.example.com, we see http.
    public = "https://hooks.example.com"
    signed_url = public + "/twilio/sms?tenant=acme"
    headers = {**FORM_TYPE, **Twilio(TWILIO_TOKEN).sign(FORM, url=signed_url)}
    app = RecordingApp()
    with_override = WebhookMiddleware(app, Twilio(TWILIO_TOKEN), public_url=public + "/")
    async with serve(with_override) as client:
        ok = await client.post("/twilio/sms?tenant=acme", content=FORM, headers=headers)
    assert ok.status_code == 200
    without = RecordingApp()
    async with serve(WebhookMiddleware(without, Twilio(TWILIO_TOKEN))) as client:
        refused = await client.post(
            "/twilio/sms?tenant=acme",
            content=FORM,
            headers={**headers, "Host": "hooks.example.com"},  # right host, wrong scheme
        )
    assert refused.status_code == 401
    assert without.calls == []


# -- other scope types -----------------------------------------------------------------------


async def test_lifespan_passes_through_the_middleware() -> None:
    app = RecordingApp()
    async with serve(WebhookMiddleware(app, GitHub(GITHUB_SECRET))) as client:
        # uvicorn ran lifespan startup through the middleware before accepting requests.
        assert app.lifespan == ["startup"]
        response = await client.post("/hooks/github", content=PUSH, headers=github_headers(PUSH))
        assert response.status_code == 200
    assert app.lifespan == ["startup", "shutdown"]


async def test_websocket_scope_passes_through_untouched() -> None:
    # The tox env has no websocket library for uvicorn, so this calls the middleware
    # directly: a websocket scope must reach the app with the very same callables.
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        raise AssertionError("the middleware must not read a websocket")

    async def send(message: Message) -> None:
        raise AssertionError("the middleware must not answer a websocket")

    scope: Scope = {"type": "websocket", "path": "/hooks/github", "headers": []}
    await WebhookMiddleware(app, GitHub(GITHUB_SECRET))(scope, receive, send)
    assert len(seen) == 1
    assert seen[0][0] is scope
    assert seen[0][1] is receive
    assert seen[0][2] is send
    assert "rws.webhook" not in scope
