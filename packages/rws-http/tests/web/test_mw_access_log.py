"""AccessLogMiddleware under both servers: one line per request with the route template,
request id, status and size; secrets never logged."""

from __future__ import annotations

import logging

import httpx
import pytest

from rws.http.web.middleware.access_log import AccessLogMiddleware
from rws.http.web.middleware.request_id import RequestIdMiddleware
from rws.http.web.routing import Mount, Route, Router
from rws.http.web.types import ASGIApp, Receive, Scope, Send

from .conftest import Served

ACCESS = "rws.http.web.access"


async def user(scope: Scope, receive: Receive, send: Send) -> None:
    body = b"user %d" % scope["path_params"]["id"]
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": body[:4], "more_body": True})
    await send({"type": "http.response.body", "body": body[4:]})


async def boom(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


def router() -> Router:
    return Router(
        [
            Mount("/api", Router([Route("/users/{id:int}", user)])),
            Route("/boom", boom),
        ]
    )


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == ACCESS]


async def test_one_line_per_request(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    app = AccessLogMiddleware(RequestIdMiddleware(router()))
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/api/users/7?full=1", headers={"X-Request-Id": "rid-1"})
        missing = await client.get("/nowhere")
    assert response.status_code == 201
    first, second = records(caplog)
    line = first.getMessage()
    assert '"GET /api/users/7?full=1 HTTP/1.1" 201 6 ' in line
    assert line.startswith("127.0.0.1:")
    assert "route=/api/users/{id:int}" in line
    assert "request_id=rid-1" in line
    assert first.levelno == logging.INFO
    access = first.access  # type: ignore[attr-defined]
    assert access["status"] == 201 and access["bytes"] == 6
    assert access["duration_ms"] >= 0
    assert access["route"] == "/api/users/{id:int}"
    assert '"GET /nowhere HTTP/1.1" 404 9 ' in second.getMessage()
    assert f"route=- request_id={missing.headers['x-request-id']}" in second.getMessage()
    assert missing.status_code == 404


async def test_request_id_set_inside_is_seen(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    app = RequestIdMiddleware(AccessLogMiddleware(router()))
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        response = await client.get("/api/users/1")
    [record] = records(caplog)
    assert f"request_id={response.headers['x-request-id']}" in record.getMessage()


async def test_custom_format_and_redacted_headers(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    app = AccessLogMiddleware(
        router(),
        format="%(method)s %(path)s %(status)s ua=%(user_agent)s headers=%(headers)s",
        headers=["Authorization", "Cookie", "X-Tenant", "Proxy-Authorization"],
    )
    secret_headers = {
        "Authorization": "Bearer s3cret-token",
        "Proxy-Authorization": "Basic s3cret-proxy",
        "Cookie": "session=s3cret-cookie",
        "X-Tenant": "acme",
        "User-Agent": "test-agent/1",
    }
    async with httpx.AsyncClient(base_url=await served(app), timeout=10) as client:
        await client.get("/api/users/3", headers=secret_headers)
    [record] = records(caplog)
    line = record.getMessage()
    assert line.startswith("GET /api/users/3 201 ua=test-agent/1 headers=")
    assert "'x-tenant': 'acme'" in line
    assert "'authorization': '[redacted]'" in line and "'cookie': '[redacted]'" in line
    assert "s3cret" not in line
    assert "s3cret" not in repr(record.access)  # type: ignore[attr-defined]


async def test_failing_app_is_logged_as_500(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    async with httpx.AsyncClient(
        base_url=await served(AccessLogMiddleware(router())), timeout=10
    ) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    [record] = records(caplog)
    assert '"GET /boom HTTP/1.1" 500 0 ' in record.getMessage()
    assert "route=/boom request_id=-" in record.getMessage()


async def test_control_characters_cannot_forge_lines(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    async with httpx.AsyncClient(
        base_url=await served(AccessLogMiddleware(router())), timeout=10
    ) as client:
        await client.get("/x%0A127.0.0.1%20fake", headers={"User-Agent": "a\tb"})
    [record] = records(caplog)
    assert "\n" not in record.getMessage()
    assert "/x\\n127.0.0.1 fake" in record.getMessage()


async def test_disabled_logger_costs_nothing_and_logs_nothing(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=ACCESS)
    async with httpx.AsyncClient(
        base_url=await served(AccessLogMiddleware(router())), timeout=10
    ) as client:
        assert (await client.get("/api/users/1")).status_code == 201
    assert records(caplog) == []


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"format": "%(nope)s"}, "format"),
        ({"format": "%(status)d %(path)d"}, "format"),
        ({"format": 3}, "format"),
        ({"headers": "authorization"}, "headers"),
    ],
)
def test_bad_options(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AccessLogMiddleware(user, **options)  # type: ignore[arg-type]


def app_type_check() -> ASGIApp:
    return AccessLogMiddleware(router())


@pytest.mark.parametrize(
    ("client", "expected"),
    [(("127.0.0.1", 5000), "127.0.0.1:5000"), (("::1", 5000), "[::1]:5000"), (None, "-")],
)
def test_client_field(client: object, expected: str) -> None:
    from rws.http.web.middleware.access_log import _client

    assert _client(client) == expected
