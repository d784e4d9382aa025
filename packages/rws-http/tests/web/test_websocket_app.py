"""WebSocket routes in an App: typed parameters, text/bytes/JSON, close codes both ways,
refusal before accept, exceptions turned into closes; the `websockets` client against both
servers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rws.http.web import App, Query, WebSocket, WebSocketDisconnect, WebSocketException


def make_app(closed: list[tuple[int, str]]) -> App:
    app = App()

    @app.websocket("/echo/{room}")
    async def echo(websocket: WebSocket, room: str, times: Annotated[int, Query(ge=1)] = 1) -> None:
        await websocket.accept(subprotocol="chat" if "chat" in websocket.subprotocols else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000), message.get("reason", ""))
                if message.get("text") is not None:
                    await websocket.send_text(f"{room}:" + message["text"] * times)
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect as gone:
            closed.append((gone.code, gone.reason))

    @app.websocket("/json")
    async def json_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for data in websocket.iter_json():
            await websocket.send_json({"got": data})
            if data == "bye":
                await websocket.close(4000, "done")
                return

    @app.websocket("/deny")
    async def deny(websocket: WebSocket) -> None:
        raise WebSocketException(4403, "not you")

    @app.websocket("/misuse")
    async def misuse(websocket: WebSocket) -> None:
        with pytest.raises(RuntimeError, match=r"before websocket\.accept"):
            await websocket.send_text("too early")
        await websocket.accept()
        with pytest.raises(RuntimeError, match="already accepted"):
            await websocket.accept()
        await websocket.send_text("ok")
        await websocket.close()

    return app


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


async def test_text_bytes_params_and_close_codes(served: Any) -> None:
    closed: list[tuple[int, str]] = []
    base = await served(make_app(closed))
    async with websockets.connect(
        ws_url(base, "/echo/lobby?times=2"),
        subprotocols=["chat"],  # type: ignore[list-item]
    ) as client:
        assert client.subprotocol == "chat"
        await client.send("hi")
        assert await client.recv() == "lobby:hihi"
        await client.send(b"\x01\x02")
        assert await client.recv() == b"\x02\x01"
        await client.close(4001, "client bye")
    async with asyncio.timeout(10):
        while not closed:  # noqa: ASYNC110 (the server side records the close)
            await asyncio.sleep(0.01)
    assert closed == [(4001, "client bye")]


async def test_json_and_server_close(served: Any) -> None:
    base = await served(make_app([]))
    async with websockets.connect(ws_url(base, "/json")) as client:
        await client.send('{"a": [1, 2]}')
        assert await client.recv() == '{"got":{"a":[1,2]}}'
        await client.send('"bye"')
        assert await client.recv() == '{"got":"bye"}'
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "done")


async def test_refusals(served: Any) -> None:
    base = await served(make_app([]))
    for path in ("/deny", "/echo/x?times=0", "/nowhere"):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(ws_url(base, path)):
                pass
        assert refused.value.response.status_code == 403, path


async def test_state_errors_are_raised_at_the_call(served: Any) -> None:
    base = await served(make_app([]))
    async with websockets.connect(ws_url(base, "/misuse")) as client:
        assert await client.recv() == "ok"
