"""The rws-http command as a user runs it: a subprocess, real signals, real workers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

APP = textwrap.dedent(
    """
    import os

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            import asyncio
            await asyncio.sleep(1.0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})

    def make():
        return app
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Command:
    """``rws-http serve`` in a subprocess, with its output collected."""

    def __init__(self, process: asyncio.subprocess.Process, address: str) -> None:
        self.process = process
        self.address = address

    @classmethod
    async def start(cls, app_dir: Path, *args: str, entry: list[str] | None = None) -> Command:
        port = free_port()
        address = f"127.0.0.1:{port}"
        command = entry or [sys.executable, "-m", "rws.http"]
        process = await asyncio.create_subprocess_exec(
            *command,
            "serve",
            "app:app",
            "--app-dir",
            str(app_dir),
            "--bind",
            address,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self = cls(process, address)
        await self.wait_for_line(b"serving on")
        return self

    async def wait_for_line(self, needle: bytes, timeout: float = 30) -> bytes:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"process ended before printing {needle!r}")
                if needle in line:
                    return line

    async def get(self, path: str = "/") -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(f"http://{self.address}{path}")

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        async with asyncio.timeout(30):
            return await self.process.wait()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


async def test_serve_and_sigterm_exits_zero_after_in_flight_request(app_dir: Path) -> None:
    command = await Command.start(app_dir, "--access-log", "-")
    assert (await command.get()).status_code == 200
    slow = asyncio.ensure_future(command.get("/slow"))
    await command.wait_for_line(b"GET / HTTP/1.1")  # the access log line of the first one
    await asyncio.sleep(0.2)  # let /slow reach the app
    code = await command.stop()
    assert code == 0
    assert (await slow).status_code == 200


async def test_workers_share_the_port_and_a_dead_one_is_replaced(app_dir: Path) -> None:
    command = await Command.start(app_dir, "--workers", "2")
    await command.wait_for_line(b"serving on")  # the second worker
    pids = set()
    for _ in range(40):
        pids.add(int((await command.get()).text))
        if len(pids) == 2:
            break
    assert len(pids) >= 1
    victim = pids.pop()
    os.kill(victim, signal.SIGKILL)
    await command.wait_for_line(b"restarting")
    await command.wait_for_line(b"serving on")
    served = {int((await command.get()).text) for _ in range(20)}
    assert victim not in served
    assert await command.stop() == 0


async def test_factory_and_env_settings(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (app_dir / "app.py").write_text(APP.replace("def make():", "def build():"))
    port = free_port()
    env = {**os.environ, "RWS_HTTP_BIND": f"127.0.0.1:{port}", "RWS_HTTP_SERVER_HEADER": "false"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rws.http",
        "serve",
        "app:build",
        "--factory",
        "--app-dir",
        str(app_dir),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    command = Command(process, f"127.0.0.1:{port}")
    await command.wait_for_line(b"serving on")
    response = await command.get()
    assert response.status_code == 200
    assert "server" not in response.headers
    assert await command.stop(signal.SIGINT) == 0


async def test_errors_are_reported_clearly(app_dir: Path, helpers: Any) -> None:
    python = sys.executable
    code, _, err = await helpers.run(
        python, "-m", "rws.http", "serve", "nope:app", "--app-dir", str(app_dir)
    )
    assert code == 3
    assert b"cannot import module 'nope'" in err
    code, _, err = await helpers.run(
        python, "-m", "rws.http", "serve", "app:missing", "--app-dir", str(app_dir)
    )
    assert code == 3
    assert b"has no attribute 'missing'" in err
    code, _, err = await helpers.run(
        python, "-m", "rws.http", "serve", "app:app", "--max-body-sise", "1"
    )
    assert code == 2
    assert b"--max-body-size" in err
    code, _, err = await helpers.run(
        python,
        "-m",
        "rws.http",
        "serve",
        "app:app",
        "--app-dir",
        str(app_dir),
        "--max-body-size",
        "lots",
    )
    assert code == 2
    assert b"max_body_size must be a whole number" in err
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        code, _out, err = await helpers.run(
            python,
            "-m",
            "rws.http",
            "serve",
            "app:app",
            "--app-dir",
            str(app_dir),
            "--bind",
            f"127.0.0.1:{port}",
        )
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}".encode() in err


async def test_sighup_reopens_the_access_log(app_dir: Path) -> None:
    log = app_dir / "access.log"
    command = await Command.start(app_dir, "--access-log", str(log))
    await command.get("/before")
    rotated = app_dir / "access.log.1"
    for _ in range(100):
        if log.exists() and b"/before" in log.read_bytes():
            break
        await asyncio.sleep(0.05)
    log.rename(rotated)
    command.process.send_signal(signal.SIGHUP)
    for _ in range(100):
        if log.exists():
            break
        await asyncio.sleep(0.05)
    await command.get("/after")
    assert await command.stop() == 0
    assert b"/before" in rotated.read_bytes()
    assert b"/after" in log.read_bytes()
    assert b"/after" not in rotated.read_bytes()


async def test_rws_umbrella_command_runs_serve(app_dir: Path) -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="rws.commands") if e.name == "serve"]
    assert entry.value == "rws.http.server.cli:serve_main"
    launcher = [
        "-c",
        "import sys; from rws.http.server.cli import serve_main; "
        "sys.exit(serve_main(sys.argv[1:]))",
    ]
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *launcher,
        "app:app",
        "--app-dir",
        str(app_dir),
        "--bind",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    command = Command(process, f"127.0.0.1:{port}")
    await command.wait_for_line(b"serving on")
    assert (await command.get()).status_code == 200
    assert await command.stop() == 0
