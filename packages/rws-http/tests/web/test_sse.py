"""Server-Sent Events: framing, and EventSourceResponse against both servers with httpx and
``curl -N``, including a client that goes away mid-stream."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rws.http.web.routing import Route, Router
from rws.http.web.sse import EventSourceResponse, ServerSentEvent
from rws.http.web.types import Receive, Scope, Send

from .conftest import Served

# -- framing ------------------------------------------------------------------------------


def test_every_field_is_framed() -> None:
    event = ServerSentEvent("one", event="update", id="7", retry=2500, comment="note")
    assert event.encode() == b": note\nid: 7\nevent: update\nretry: 2500\ndata: one\n\n"


def test_multiline_data_becomes_several_data_lines() -> None:
    event = ServerSentEvent("a\nb\r\nc\rd")
    assert event.encode() == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    # Only CR, LF and CRLF end a line for the EventSource parser; str.splitlines() would
    # also split on these and change the data.
    kept = ServerSentEvent("form\x0cfeed\u2028separator")
    assert kept.encode() == "data: form\x0cfeed\u2028separator\n\n".encode()


def test_data_forms() -> None:
    assert ServerSentEvent("").encode() == b"data: \n\n"
    assert ServerSentEvent({"n": 1, "s": "é"}).encode() == 'data: {"n":1,"s":"é"}\n\n'.encode()
    assert ServerSentEvent(comment="a\nb").encode() == b": a\n: b\n\n"
    assert ServerSentEvent(retry=0).encode() == b"retry: 0\n\n"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event": "a\nb"}, "event"),
        ({"event": "a\rdata: injected"}, "event"),
        ({"id": "1\n"}, "id"),
        ({"id": "1\r"}, "id"),
        ({"id": "1\x00"}, "id"),
        ({"retry": -1}, "retry"),
        ({"retry": True}, "retry"),
        ({"retry": 1.5}, "retry"),
    ],
)
def test_field_injection_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerSentEvent("x", **fields)


def test_bad_response_options() -> None:
    async def nothing() -> AsyncIterator[str]:
        yield "x"

    with pytest.raises(ValueError, match="ping_interval"):
        EventSourceResponse(nothing(), ping_interval=0)
    with pytest.raises(TypeError, match="async iterable"):
        EventSourceResponse(["not", "async"])  # type: ignore[arg-type]


# -- over the wire ------------------------------------------------------------------------


def app_for(endpoint: Any) -> Router:
    return Router([Route("/events", endpoint)])


async def curl(*args: str) -> asyncio.subprocess.Process:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def test_stream_headers_and_body(served: Served) -> None:
    async def events() -> AsyncIterator[ServerSentEvent | dict[str, Any] | str]:
        yield "plain"
        yield {"data": {"x": 1}, "event": "json", "id": "2"}
        yield ServerSentEvent("two\nlines", retry=100)

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await EventSourceResponse(events())(scope, receive, send)

    base = await served(app_for(endpoint))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/events")
        head = await client.head("/events")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.content == (
        b"data: plain\n\n"
        b'id: 2\nevent: json\ndata: {"x":1}\n\n'
        b"retry: 100\ndata: two\ndata: lines\n\n"
    )
    assert head.status_code == 200
    assert head.content == b""


async def test_curl_no_buffer_sees_events_as_they_come(served: Served) -> None:
    """``curl -N`` gets the first event while the producer is still running; killing curl
    is a real client disconnect, and the producer's ``finally`` runs."""
    released = asyncio.Event()
    cleaned_up = asyncio.Event()

    async def events() -> AsyncIterator[str]:
        try:
            yield "first"
            await released.wait()  # never set: only the disconnect ends this producer
            yield "never"
        finally:
            cleaned_up.set()

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await EventSourceResponse(events(), ping_interval=None)(scope, receive, send)

    base = await served(app_for(endpoint))
    process = await curl("-N", f"{base}/events")
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            assert await process.stdout.readline() == b"data: first\n"
            assert await process.stdout.readline() == b"\n"
    finally:
        process.kill()
        await process.wait()
    async with asyncio.timeout(10):
        await cleaned_up.wait()
    assert not released.is_set()


async def test_httpx_disconnect_runs_the_producers_finally(served: Served) -> None:
    cleaned_up = asyncio.Event()
    sent: list[int] = []

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            number = 0
            while True:
                number += 1
                sent.append(number)
                yield ServerSentEvent(str(number), id=str(number))
                await asyncio.sleep(0.01)
        finally:
            cleaned_up.set()

    producers: list[AsyncIterator[ServerSentEvent]] = []  # held, so only a close ends them

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        producers.append(events())
        await EventSourceResponse(producers[-1])(scope, receive, send)

    base = await served(app_for(endpoint))
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/events") as response,
    ):
        lines = response.aiter_lines()
        assert await anext(lines) == "id: 1"
    async with asyncio.timeout(10):
        await cleaned_up.wait()
    count = len(sent)
    await asyncio.sleep(0.05)
    assert len(sent) == count  # nothing is produced for a client that left


async def test_ping_while_idle(served: Served) -> None:
    pinged = asyncio.Event()

    async def events() -> AsyncIterator[str]:
        await pinged.wait()  # the producer is idle until the client has seen a ping
        yield "after ping"

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await EventSourceResponse(events(), ping_interval=0.02)(scope, receive, send)

    base = await served(app_for(endpoint))
    seen: list[str] = []
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("GET", "/events") as response,
    ):
        async with asyncio.timeout(10):
            async for line in response.aiter_lines():
                seen.append(line)
                if line == ": ping":
                    pinged.set()
                if line == "data: after ping":
                    break
    assert seen.index(": ping") < seen.index("data: after ping")
    assert ServerSentEvent(comment="ping").encode() == b": ping\n\n"


async def test_last_event_id_reaches_the_producer(served: Served) -> None:
    received: list[str | None] = []

    async def events(last_event_id: str | None) -> AsyncIterator[ServerSentEvent]:
        received.append(last_event_id)
        start = int(last_event_id or 0) + 1
        for number in range(start, start + 2):
            yield ServerSentEvent(f"event {number}", id=str(number))

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await EventSourceResponse(events)(scope, receive, send)

    base = await served(app_for(endpoint))
    async with httpx.AsyncClient(base_url=base) as client:
        fresh = await client.get("/events")
        resumed = await client.get("/events", headers={"Last-Event-ID": "41"})
    assert received == [None, "41"]
    assert fresh.text == "id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\n"
    assert resumed.text == "id: 42\ndata: event 42\n\nid: 43\ndata: event 43\n\n"


async def test_curl_reads_a_finite_stream(served: Served) -> None:
    async def events() -> AsyncIterator[str]:
        for word in ("a", "b\nc"):
            yield word

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await EventSourceResponse(events(), headers={"Cache-Control": "no-store"})(
            scope, receive, send
        )

    base = await served(app_for(endpoint))
    process = await curl("-N", "-D", "-", f"{base}/events")
    out, err = await process.communicate()
    assert process.returncode == 0, err
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"cache-control: no-store" in head.lower()  # the caller's header wins
    assert body == b"data: a\n\ndata: b\ndata: c\n\n"
