"""The rws-http command as a user runs it: a subprocess, real signals, real workers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rws.http.server.supervisor import changed_files, python_files, snapshot

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
        self = await cls.launch(app_dir, *args, entry=entry)
        await self.wait_for_line(b"serving on")
        return self

    @classmethod
    async def launch(
        cls, app_dir: Path, *args: str, entry: list[str] | None = None, session: bool = False
    ) -> Command:
        """Start the command without waiting; ``session``: in its own process group."""
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
            start_new_session=session,
        )
        return cls(process, address)

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


# -- --reload -------------------------------------------------------------------------------

VERSIONED_APP = textwrap.dedent(
    """
    import os

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"@VERSION@ %d" % os.getpid()})
    """
)

BROKEN_APP = "async def app(scope, receive, send:\n    pass\n"


def versioned_app(version: str) -> str:
    """An app answering ``<version> <pid>``; v1 and v2 have the same length on purpose."""
    return VERSIONED_APP.replace("@VERSION@", version)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def answer(command: Command) -> tuple[str, int]:
    """The version and the worker pid that answered a request."""
    response = await command.get()
    assert response.status_code == 200
    version, pid = response.text.split()
    return version, int(pid)


async def reloaded(command: Command) -> bytes:
    """Wait for the reloader to notice a change and for the new worker to listen."""
    line = await command.wait_for_line(b"reloading: ")
    await command.wait_for_line(b"serving on")
    return line


Reload = Callable[..., Awaitable[Command]]


@pytest.fixture
async def reload(tmp_path: Path) -> AsyncIterator[Reload]:
    """``await reload(*flags, session=False)``: ``serve app:app --reload`` on ``tmp_path``.

    The app answers ``v1 <pid>``. Commands still running after the test (a failed one) are
    stopped, so no server outlives the test.
    """
    (tmp_path / "app.py").write_text(versioned_app("v1"))
    commands: list[Command] = []

    async def start(*args: str, session: bool = False) -> Command:
        command = await Command.launch(tmp_path, "--reload", *args, session=session)
        commands.append(command)
        await command.wait_for_line(b"serving on")
        return command

    yield start
    for command in commands:
        if command.process.returncode is None:
            command.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await command.process.wait()
            except TimeoutError:
                command.process.kill()
                await command.process.wait()


async def test_reload_serves_the_changed_module(tmp_path: Path, reload: Reload) -> None:
    command = await reload()
    version, first = await answer(command)
    assert version == "v1"
    (tmp_path / "app.py").write_text(versioned_app("v2"))
    line = await reloaded(command)
    assert str((tmp_path / "app.py").resolve()).encode() in line
    version, second = await answer(command)
    assert version == "v2"
    assert second != first
    assert gone(first)  # the old worker was stopped and reaped before the new one started
    assert await command.stop() == 0
    assert gone(second)


async def test_reload_survives_a_module_that_does_not_import(
    tmp_path: Path, reload: Reload
) -> None:
    command = await reload()
    assert (await answer(command))[0] == "v1"
    (tmp_path / "app.py").write_text(BROKEN_APP)
    await command.wait_for_line(b"reloading: ")
    await command.wait_for_line(b"SyntaxError")  # the worker's traceback
    await command.wait_for_line(b"waiting for a file to change")
    assert command.process.returncode is None
    (tmp_path / "app.py").write_text(versioned_app("v2"))
    await reloaded(command)
    assert (await answer(command))[0] == "v2"
    # Stopped while waiting for a fix (no worker alive): still a clean exit.
    (tmp_path / "app.py").write_text(BROKEN_APP)
    await command.wait_for_line(b"waiting for a file to change")
    assert await command.stop() == 0


async def test_a_module_broken_from_the_start(tmp_path: Path) -> None:
    """Without --reload: exit code 3 with the app's traceback; with it: wait for the fix."""
    (tmp_path / "app.py").write_text(BROKEN_APP)
    command = await Command.launch(tmp_path)
    await command.wait_for_line(b"cannot load the application 'app:app'")
    await command.wait_for_line(b"SyntaxError")
    async with asyncio.timeout(30):
        assert await command.process.wait() == 3
    command = await Command.launch(tmp_path, "--reload")
    try:
        await command.wait_for_line(b"waiting for a file to change")
        (tmp_path / "app.py").write_text(versioned_app("v1"))
        await reloaded(command)
        assert (await answer(command))[0] == "v1"
        assert await command.stop() == 0
    finally:
        if command.process.returncode is None:
            command.process.kill()
            await command.process.wait()


@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGINT", "ctrl-c-to-the-process-group"],
)
async def test_reloader_stops_with_its_worker_on_a_signal(
    reload: Reload, signum: int, group: bool
) -> None:
    command = await reload(session=group)
    _, worker = await answer(command)
    if group:  # what a terminal's Ctrl+C does: the reloader and its worker both get SIGINT
        os.killpg(command.process.pid, signum)
        async with asyncio.timeout(30):
            code = await command.process.wait()
    else:
        code = await command.stop(signum)
    assert code == 0
    assert gone(worker)


async def test_reload_ignores_what_it_does_not_watch(tmp_path: Path, reload: Reload) -> None:
    for directory in ("__pycache__", ".hidden", "node_modules/pkg", "sub"):
        (tmp_path / directory).mkdir(parents=True)
    command = await reload()
    _, worker = await answer(command)
    # Neither files that are not *.py, nor *.py files in hidden, __pycache__ or node_modules
    # directories, nor hidden *.py files are watched.
    for name in (
        "notes.txt",
        "app.pyc",
        "app.py.orig",
        ".scratch.py",
        "__pycache__/cached.py",
        ".hidden/secret.py",
        "node_modules/pkg/index.py",
        "sub/.hidden.py",
    ):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("changed\n")
    # A watched file, in a subdirectory, written last. A poll that saw any of the files above
    # as a change would name it in this (or an earlier) line: they all sort before it.
    helper = (tmp_path / "sub" / "helper.py").resolve()
    helper.write_text("x = 1\n")
    line = await reloaded(command)
    assert line.rstrip().endswith(b"reloading: %s changed" % str(helper).encode())
    _, new_worker = await answer(command)
    assert new_worker != worker
    # Removing a watched file is a change too, and does not trouble the poll.
    helper.unlink()
    line = await reloaded(command)
    assert line.rstrip().endswith(b"reloading: %s changed" % str(helper).encode())
    assert (await answer(command))[0] == "v1"
    assert await command.stop() == 0


async def test_reload_with_several_workers_is_refused(
    app_dir: Path, helpers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = [sys.executable, "-m", "rws.http", "serve", "app:app", "--app-dir", str(app_dir)]
    code, _, err = await helpers.run(*base, "--reload", "--workers", "2")
    assert code == 2
    assert b"--reload runs one worker: it cannot be combined with workers=2" in err
    monkeypatch.setenv("RWS_HTTP_WORKERS", "3")
    code, _, err = await helpers.run(*base, "--reload")
    assert code == 2
    assert b"workers=3" in err


def test_watched_files_are_judged_below_the_app_dir_only(tmp_path: Path) -> None:
    root = tmp_path / ".projects" / "site"  # a hidden directory above --app-dir is fine
    for name in ("app.py", "pkg/mod.py", ".venv/lib/site.py", "__pycache__/app.py", "a.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    assert set(python_files(root)) == {root / "app.py", root / "pkg" / "mod.py"}


def test_a_directory_removed_during_the_poll_is_skipped(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.py").write_text("")
    files = python_files(tmp_path)
    first = next(files)
    other = "two" if first.parent.name == "one" else "one"
    shutil.rmtree(tmp_path / other)
    assert list(files) == []


def test_a_rewrite_within_one_mtime_tick_is_a_change(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    # What a coarse mtime clock does to two quick writes: same mtime, same size, same inode.
    # (A fixed mtime keeps the test independent of the clock.)
    tick = time.time_ns() + 3600 * 10**9
    app.write_text(versioned_app("v1"))
    os.utime(app, ns=(tick, tick))
    before = snapshot(tmp_path)
    app.write_text(versioned_app("v2"))
    os.utime(app, ns=(tick, tick))
    after = snapshot(tmp_path, before)
    assert after[app][:3] == before[app][:3]
    assert changed_files(before, after) == [app]
    assert changed_files(after, snapshot(tmp_path, after)) == []
    # Once the mtime is old enough to trust, dropping the content hash is not a change.
    trusted = after[app]._replace(racy=False, digest=None)
    assert changed_files(after, {app: trusted}) == []
    assert changed_files({app: trusted}, {app: trusted}) == []
    assert changed_files(after, {}) == [app]
