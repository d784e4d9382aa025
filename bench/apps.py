"""The raw ASGI apps that ``bench/http_server.py`` serves under every server.

No framework, no routing: each server runs one of these as ``apps:hello`` or ``apps:stream``
(with ``bench/`` as the app directory), so the benchmark measures the server, not the app.
Both answer lifespan so that no server logs a complaint or takes a slower path without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The hello-world body: 12 bytes.
HELLO_BODY = b"Hello world!"
#: The streamed body: STREAM_CHUNKS chunks of STREAM_CHUNK bytes (64 KiB in all).
STREAM_CHUNK = bytes(range(256)) * 64  # 16 KiB
STREAM_CHUNKS = 4
STREAM_BODY = STREAM_CHUNK * STREAM_CHUNKS

assert len(HELLO_BODY) == 12
assert len(STREAM_BODY) == 64 * 1024


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """12 bytes in one body message, with Content-Length."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO_BODY})


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """64 KiB as 4 x 16 KiB ``more_body`` chunks, no Content-Length (chunked on HTTP/1.1)."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    for _ in range(STREAM_CHUNKS - 1):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": False})
