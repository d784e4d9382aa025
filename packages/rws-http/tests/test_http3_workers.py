"""HTTP/3 with ``--workers``: the real command in a subprocess, aioquic's client, real signals.

Each worker serves its own ``SO_REUSEPORT`` UDP socket of one group opened by the supervisor;
Linux spreads client addresses over them. Only Linux balances such a group, so elsewhere the
setting is refused (tested in test_http3.py) and this module is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rws.http.server.config import reuse_port_balances

try:
    import httpx
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import QuicEvent
except ImportError as exc:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(f"test tool not installed: {exc.name}", allow_module_level=True)

if not reuse_port_balances():
    pytest.skip("SO_REUSEPORT does not balance UDP here (Linux only)", allow_module_level=True)

APP = textwrap.dedent(
    """
    import os

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
    """
)

_HTTP3_LINE = re.compile(rb"serving HTTP/3 on https://127\.0\.0\.1:(\d+) \(UDP\)")


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client(QuicConnectionProtocol):
    """aioquic's HTTP/3 client reduced to GET: ``(status, body)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.pending: dict[int, tuple[list[int], bytearray, asyncio.Future[None]]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            entry = self.pending.get(getattr(h3_event, "stream_id", -1))
            if entry is None:
                continue
            status, body, done = entry
            if isinstance(h3_event, HeadersReceived):
                status.append(int(dict(h3_event.headers)[b":status"]))
            elif isinstance(h3_event, DataReceived):
                body += h3_event.data
            if getattr(h3_event, "stream_ended", False) and not done.done():
                done.set_result(None)

    async def get(self, path: str = "/") -> tuple[int, bytes]:
        stream_id = self._quic.get_next_available_stream_id()
        status: list[int] = []
        body = bytearray()
        done = asyncio.get_running_loop().create_future()
        self.pending[stream_id] = (status, body, done)
        block = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        self.h3.send_headers(stream_id, block, end_stream=True)
        self.transmit()
        await asyncio.wait_for(done, 10)
        return status[0], bytes(body)


class Command:
    """``rws-http serve --workers 2 --quic-bind ...`` in its own session, output collected."""

    def __init__(self, process: asyncio.subprocess.Process, address: str, ca_pem: str) -> None:
        self.process = process
        self.address = address
        self.ca_pem = ca_pem
        self.quic_port = 0

    async def line(self, pattern: re.Pattern[bytes], timeout: float = 30) -> re.Match[bytes]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"process ended before printing {pattern.pattern!r}")
                match = pattern.search(line)
                if match is not None:
                    return match

    async def workers_ready(self, count: int) -> None:
        """Wait until ``count`` (more) workers serve HTTP/3, all on one port, the same as before."""
        ports = {int((await self.line(_HTTP3_LINE))[1]) for _ in range(count)}
        assert len(ports) == 1, ports
        assert self.quic_port in (0, *ports), (self.quic_port, ports)
        self.quic_port = ports.pop()

    @contextlib.asynccontextmanager
    async def h3(self) -> AsyncIterator[Client]:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        configuration.load_verify_locations(cafile=self.ca_pem)
        configuration.server_name = "localhost"
        configuration.idle_timeout = 10.0  # a handshake nobody answers fails, not hangs
        async with connect(
            "127.0.0.1", self.quic_port, configuration=configuration, create_protocol=Client
        ) as protocol:
            assert isinstance(protocol, Client)
            yield protocol

    async def pid_over_h3(self) -> int:
        """One request on a new connection (a new client port): the answering worker's pid."""
        async with self.h3() as client:
            status, body = await client.get()
        assert status == 200
        return int(body)

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def command(
    tmp_path: Path, certificates: tuple[str, str, ssl.SSLContext], quic_port: int
) -> AsyncIterator[Command]:
    (tmp_path / "app.py").write_text(APP)
    server_pem, ca_pem, _ = certificates
    address = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rws.http",
        "serve",
        "app:app",
        "--app-dir",
        str(tmp_path),
        "--bind",
        address,
        "--quic-bind",
        f"127.0.0.1:{quic_port}",
        "--certfile",
        server_pem,
        "--workers",
        "2",
        "--graceful-timeout",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        running = Command(process, address, ca_pem)
        await running.workers_ready(2)
        yield running
    finally:
        if process.returncode is None:  # the test failed: take the workers down too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def pids_until_both(running: Command, attempts: int = 60) -> set[int]:
    """Connect again and again (each time from a new UDP port) until two workers answered."""
    pids: set[int] = set()
    for _ in range(attempts):
        pids.add(await running.pid_over_h3())
        if len(pids) == 2:
            break
    return pids


@pytest.mark.parametrize("port", ["fixed", "0"])
async def test_workers_share_the_quic_port_and_a_dead_one_is_replaced(
    tmp_path: Path, certificates: tuple[str, str, ssl.SSLContext], port: str
) -> None:
    quic_port = free_port(socket.SOCK_DGRAM) if port == "fixed" else 0
    async with command(tmp_path, certificates, quic_port) as running:
        if quic_port:
            assert running.quic_port == quic_port
        # TCP responses advertise the one UDP port every worker serves.
        async with httpx.AsyncClient(verify=certificates[2]) as tcp:
            response = await tcp.get(f"https://{running.address}/")
        assert response.headers["alt-svc"] == f'h3=":{running.quic_port}"; ma=86400'

        # Many connections from different client ports are all answered, by both workers.
        pids = await pids_until_both(running)
        assert len(pids) == 2, pids

        # A connection held to each worker, to check the survivor's outlives the restart.
        async with contextlib.AsyncExitStack() as stack:
            held: dict[int, Client] = {}
            for _ in range(60):
                client = await stack.enter_async_context(running.h3())
                _, body = await client.get()
                held.setdefault(int(body), client)
                if len(held) == 2:
                    break
            assert set(held) == pids
            victim, survivor = sorted(pids)
            os.kill(victim, signal.SIGKILL)
            await running.line(re.compile(rb"worker %d exited .*restarting" % victim))
            await running.workers_ready(1)
            # The supervisor's group kept its size: the survivor still gets its client.
            status, body = await held[survivor].get()
            assert (status, int(body)) == (200, survivor)
            held[survivor].close()
            held[victim].close()

        # New connections are all answered; the replacement serves the dead worker's socket.
        after = await pids_until_both(running)
        assert len(after) == 2, after
        assert survivor in after
        assert victim not in after
        assert await running.stop() == 0
