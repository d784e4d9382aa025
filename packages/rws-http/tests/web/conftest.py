"""Framework fixtures: every app under test is served for real by rws-http *and* by uvicorn.

The framework never imports the server, so its behaviour must not depend on which server
runs it. ``served`` is parametrised over both: a test that takes it runs twice, and talks to
a real socket with httpx (``httpx.AsyncClient(base_url=await served(app))``).
Lifespan is on under both servers, so startup/shutdown hooks run as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rws.http.server import Config, Server

Served = Callable[..., Awaitable[str]]


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any, **options: Any) -> AsyncIterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    options.setdefault("lifespan", "on")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", ws="wsproto", http="h11", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


@contextlib.asynccontextmanager
async def rws_server(app: Any, **options: Any) -> AsyncIterator[str]:
    options.setdefault("bind", ("127.0.0.1:0",))
    server = Server(app, Config(**options))
    await server.start()
    try:
        yield f"http://{server.addresses[0]}"
    finally:
        await server.shutdown(grace=2)


SERVERS = {"rws": rws_server, "uvicorn": uvicorn_server}


@pytest.fixture(params=sorted(SERVERS))
def server_name(request: pytest.FixtureRequest) -> str:
    """Which server this run of the test uses ("rws" or "uvicorn")."""
    name: str = request.param
    return name


@pytest.fixture
def server_context(server_name: str) -> Callable[..., contextlib.AbstractAsyncContextManager[str]]:
    """``async with server_context(app) as base_url:`` for tests that stop the server
    themselves (to see shutdown hooks run, say)."""
    return SERVERS[server_name]


@pytest.fixture
async def served(server_name: str) -> AsyncIterator[Served]:
    """``base_url = await served(app)`` serves ``app`` on 127.0.0.1 with the chosen server.

    Extra keyword arguments go to the server (rws ``Config`` or ``uvicorn.Config``), so keep
    them to tests that run under one server only.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(app: Any, **options: Any) -> str:
            return await stack.enter_async_context(SERVERS[server_name](app, **options))

        yield start
