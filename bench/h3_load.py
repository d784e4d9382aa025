"""A small HTTP/3 load client on aioquic, for bench/http3_server.py.

h2load can drive HTTP/3 only when nghttp2 is built with ngtcp2, which Debian's is not, so this
client stands in: ``CONNECTIONS`` QUIC connections, each keeping ``STREAMS`` requests in
flight, until ``REQUESTS`` responses have arrived. Every response is checked (status 200 and
the exact body length); a failure ends the run with a non-zero exit code.

It prints one JSON line: requests done, seconds, and the first error if any. Being Python, it
may well be slower than the server it loads; bench/http3_server.py therefore compares the
servers' CPU time per request, which does not depend on how fast the client asks.

    python bench/h3_load.py HOST PORT --requests 20000 --connections 8 --streams 10 --body 12
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


class H3Client(QuicConnectionProtocol):
    """One QUIC connection; ``get()`` sends a request and waits for its whole response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self._waiters: dict[int, asyncio.Future[tuple[int, int]]] = {}
        self._status: dict[int, int] = {}
        self._received: dict[int, int] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            for name, value in event.headers:
                if name == b":status":
                    self._status[event.stream_id] = int(value)
            ended = event.stream_ended
        elif isinstance(event, DataReceived):
            self._received[event.stream_id] = self._received.get(event.stream_id, 0) + len(
                event.data
            )
            ended = event.stream_ended
        else:
            return
        if ended:
            waiter = self._waiters.pop(event.stream_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(
                    (
                        self._status.pop(event.stream_id, 0),
                        self._received.pop(event.stream_id, 0),
                    )
                )

    async def get(self, authority: str, path: str) -> tuple[int, int]:
        stream_id = self._quic.get_next_available_stream_id()
        waiter: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._waiters[stream_id] = waiter
        self.h3.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        self.transmit()
        return await waiter


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.verify_mode = ssl.CERT_NONE  # a throwaway certificate on 127.0.0.1
    authority = f"{args.host}:{args.port}"
    remaining = args.requests
    done = 0
    error: str | None = None

    async def worker(client: H3Client) -> None:
        nonlocal remaining, done, error
        while remaining > 0 and error is None:
            remaining -= 1
            status, size = await client.get(authority, args.path)
            if status != 200 or size != args.body:
                error = f"status {status}, {size} body bytes (expected 200, {args.body})"
                return
            done += 1

    async def connection() -> None:
        async with connect(
            args.host, args.port, configuration=configuration, create_protocol=H3Client
        ) as client:
            assert isinstance(client, H3Client)
            await asyncio.gather(*(worker(client) for _ in range(args.streams)))

    started = time.perf_counter()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(connection() for _ in range(args.connections))), args.timeout
        )
    except Exception as exc:  # a refused connection, a timeout: reported, not raised
        error = error or f"{type(exc).__name__}: {exc}"
    return {"requests": done, "seconds": time.perf_counter() - started, "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=10, help="requests in flight per connection")
    parser.add_argument("--body", type=int, default=12, help="expected body length")
    parser.add_argument("--path", default="/")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
