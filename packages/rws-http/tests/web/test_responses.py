"""Responses: text, HTML, JSON, redirect, streaming (with client-disconnect), Set-Cookie with
every attribute, background tasks, HEAD; served by both servers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from rws.http.web import (
    App,
    BackgroundTask,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from rws.http.web.cookies import build_set_cookie, parse_cookie_header


class Kind(enum.Enum):
    A = "a"


@dataclasses.dataclass
class Thing:
    id: uuid.UUID
    at: datetime.datetime
    price: Decimal
    kind: Kind
    tags: frozenset[str]


async def test_basic_responses(served: Any) -> None:
    app = App()
    thing = Thing(
        uuid.UUID(int=1),
        datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
        Decimal("1.50"),
        Kind.A,
        frozenset({"x"}),
    )

    @app.get("/html")
    async def html() -> Response:
        return HTMLResponse("<b>é</b>", headers={"x-extra": "1", "content-length": "999"})

    @app.get("/json")
    async def json_answer() -> Response:
        return JSONResponse({"thing": thing, "text": "é"}, status_code=202)

    @app.get("/text")
    async def text() -> Response:
        return PlainTextResponse("plain", media_type="text/csv")

    @app.get("/redirect")
    async def redirect() -> Response:
        return RedirectResponse("/target?q=a b", status_code=303)

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        page = await client.get("/html")
        assert page.text == "<b>é</b>"
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-length"] == str(len("<b>é</b>".encode()))  # never trusted
        assert page.headers["x-extra"] == "1"
        data = await client.get("/json")
        assert data.status_code == 202
        assert data.json() == {
            "thing": {
                "id": "00000000-0000-0000-0000-000000000001",
                "at": "2026-01-02T00:00:00+00:00",
                "price": "1.50",
                "kind": "a",
                "tags": ["x"],
            },
            "text": "é",
        }
        assert (await client.get("/text")).headers["content-type"] == "text/csv; charset=utf-8"
        moved = await client.get("/redirect")
        assert moved.status_code == 303
        assert moved.headers["location"] == "/target?q=a%20b"
        head = await client.head("/html")
        assert (
            head.content == b"" and head.headers["content-length"] == page.headers["content-length"]
        )


def test_response_argument_errors() -> None:
    with pytest.raises(ValueError, match="3-digit"):
        Response(b"", status_code=42)
    with pytest.raises(ValueError, match="redirect status"):
        RedirectResponse("/x", status_code=200)
    with pytest.raises(ValueError, match="CR or LF"):
        RedirectResponse("/x\r\nSet-Cookie: a=b")
    with pytest.raises(TypeError, match="JSONResponse"):
        Response({"a": 1})
    with pytest.raises(ValueError, match=r"not JSON|Out of range"):
        JSONResponse({"x": float("nan")})


async def test_cookies_with_every_attribute(served: Any) -> None:
    app = App()

    @app.get("/set")
    async def set_cookies() -> Response:
        response = PlainTextResponse("ok")
        response.set_cookie(
            "session",
            "abc123",
            max_age=3600,
            expires=datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC),
            path="/app",
            domain="example.test",
            secure=True,
            httponly=True,
            samesite="strict",
            partitioned=True,
        )
        response.set_cookie("plain", "1")
        response.delete_cookie("old", path="/")
        return response

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        answer = await client.get("/set")
    cookies = answer.headers.get_list("set-cookie")
    assert cookies == [
        "session=abc123; Max-Age=3600; Expires=Tue, 01 Jan 2030 12:00:00 GMT; "
        "Domain=example.test; Path=/app; SameSite=Strict; Secure; HttpOnly; Partitioned",
        "plain=1; Path=/; SameSite=Lax",
        "old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=Lax",
    ]


def test_cookie_rules() -> None:
    with pytest.raises(ValueError, match="token"):
        build_set_cookie("bad name", "x")
    with pytest.raises(ValueError, match="encode it"):
        build_set_cookie("a", "x;y")
    with pytest.raises(ValueError, match="secure"):
        build_set_cookie("a", "x", samesite="none")
    with pytest.raises(ValueError, match="__Host-"):
        build_set_cookie("__Host-id", "x", secure=True, path="/sub")
    with pytest.raises(ValueError, match="';' or controls"):
        build_set_cookie("a", "x", path="/;Domain=evil")
    assert parse_cookie_header('a=1; b="2"; broken; =x; c=3=4; a=dup') == {
        "a": "1",
        "b": "2",
        "c": "3=4",
    }


async def test_streaming_sync_and_async(served: Any) -> None:
    app = App()

    async def numbers() -> AsyncIterator[str]:
        for number in range(3):
            yield f"{number}\n"

    def blocking() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    @app.get("/async")
    async def async_stream() -> Response:
        return StreamingResponse(numbers(), media_type="text/plain")

    @app.get("/sync")
    async def sync_stream() -> Response:
        return StreamingResponse(blocking())

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        answer = await client.get("/async")
        assert answer.text == "0\n1\n2\n"
        assert "content-length" not in answer.headers
        assert (await client.get("/sync")).content == b"ab"


async def test_streaming_stops_when_the_client_leaves(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    produced: list[int] = []
    finished = asyncio.Event()
    background_ran: list[bool] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            for number in range(10_000):
                produced.append(number)
                yield b"tick\n"
                await asyncio.sleep(0.01)
        finally:
            finished.set()

    @app.get("/endless")
    async def endless_route() -> Response:
        return StreamingResponse(
            endless(), background=BackgroundTask(lambda: background_ran.append(True))
        )

    base = await served(app)
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/endless") as answer,
    ):
        async for _ in answer.aiter_lines():
            if len(produced) >= 3:
                break
    async with asyncio.timeout(10):
        await finished.wait()
    assert len(produced) < 10_000
    assert background_ran == []  # the response did not complete
    await asyncio.sleep(0.2)  # let the server finish the exchange: a client leaving is no error
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_background_task_runs_after_the_response(served: Any) -> None:
    app = App()
    done = asyncio.Event()
    log: list[str] = []

    async def after(word: str) -> None:
        log.append(word)
        done.set()

    @app.get("/bg")
    async def with_background() -> Response:
        return PlainTextResponse("sent", background=BackgroundTask(after, "later"))

    async with httpx.AsyncClient(base_url=await served(app)) as client:
        assert (await client.get("/bg")).text == "sent"
    async with asyncio.timeout(10):
        await done.wait()
    assert log == ["later"]
