"""rws-http against uvicorn and hypercorn, HTTP/1.1 and HTTP/2, measured in one run.

Run by hand, never by the test suite (Linux; needs ``wrk``, ``h2load`` and ``taskset``):

    python bench/http_server.py                       # 3 repetitions, every scenario
    python bench/http_server.py --quick               # smoke run: 1 repetition, 3 s loads
    python bench/http_server.py --scenarios h1-hello h2c-hello --repetitions 5

Contestants, each serving the same raw ASGI apps from ``bench/apps.py`` with one worker
process, access logs off, log level ``warning``:

- ``rws-http``: h11 on the asyncio loop (HTTP/1.1, h2c prior knowledge, TLS + ALPN h2).
- ``uvicorn h11``: ``--http h11 --loop asyncio`` (HTTP/1.1 only).
- ``uvicorn httptools``: ``--http httptools --loop uvloop``; a reference only (C parser and
  C event loop), not a like-for-like peer.
- ``hypercorn``: asyncio worker, served in-process (``--workers 0``: ``--workers 1`` spawns
  the same worker under an idle parent), ``keep_alive_max_requests`` raised so that neither
  HTTP/1.1 nor HTTP/2 connections are closed after 1000 requests (h2load does not reconnect).

Scenarios: ``hello`` (12-byte body with Content-Length) and ``stream`` (64 KiB as 4 x 16 KiB
``more_body`` chunks), each over HTTP/1.1 (``wrk -t1 -c64 -d8s --latency``), h2c prior
knowledge and TLS with ALPN h2 (``h2load -n 50000 -c 16 -m 10``; certificates from trustme).

Method (the project's BENCHMARKING.md): server pinned to core 0, load generator to core 1;
contestants interleaved A B C A B C ..., the order rotating between repetitions, each one
started fresh for every repetition; before each run the script waits for the machine to be
nearly idle, probes the server once (status 200, exact body, protocol version), warms it up
(2 s), then measures. After each run it reads the load tool's error and non-2xx counts (a run
with any is *failed*, not a number) and checks the bytes received against the body size. CPU
used by other processes during the run is /proc/stat busy time minus the server's, the load
tool's and this script's own; a run above ``--noise`` is repeated (``--retries``) and a run
still noisy is left out of the medians. Peak RSS is the server's VmHWM. The rws-http/peer
ratio is taken inside each repetition, then the median over repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from apps import HELLO_BODY, STREAM_BODY

#: The only address this script ever binds servers to or sends load to.
HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")

BODIES = {"hello": HELLO_BODY, "stream": STREAM_BODY}
#: (name, protocol, app). Protocols: h1 (wrk), h2c (h2load, prior knowledge), h2 (h2load, TLS).
SCENARIOS: dict[str, tuple[str, str]] = {
    "h1-hello": ("h1", "hello"),
    "h1-stream": ("h1", "stream"),
    "h2c-hello": ("h2c", "hello"),
    "h2c-stream": ("h2c", "stream"),
    "h2-tls-hello": ("h2", "hello"),
    "h2-tls-stream": ("h2", "stream"),
}
PROTOCOL_LABEL = {
    "h1": "HTTP/1.1 keep-alive, wrk",
    "h2c": "HTTP/2 h2c prior knowledge, h2load",
    "h2": "HTTP/2 over TLS (ALPN h2), h2load",
}


# -- contestants -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """What a contestant's command needs to know for one run."""

    app: str
    port: int
    certfile: str | None
    keyfile: str | None
    hypercorn_config: str


@dataclass(frozen=True)
class Contestant:
    name: str
    is_rws: bool
    reference: bool
    protocols: frozenset[str]
    command: Callable[[Launch], list[str]]
    #: Why this contestant cannot run a protocol it claims (a module not written yet).
    unavailable: dict[str, str] = field(default_factory=dict)


def tool(name: str) -> str:
    """A console script of the Python environment running this script, else from PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install it into this environment")
    return found


def rws_command(launch: Launch) -> list[str]:
    cmd = [tool("rws-http"), "serve", f"apps:{launch.app}", "--app-dir", str(BENCH_DIR)]
    cmd += ["--bind", f"{HOST}:{launch.port}", "--workers", "1", "--log-level", "warning"]
    if launch.certfile and launch.keyfile:
        cmd += ["--certfile", launch.certfile, "--keyfile", launch.keyfile]
    return cmd


def uvicorn_command(http: str, loop: str) -> Callable[[Launch], list[str]]:
    def command(launch: Launch) -> list[str]:
        return [
            tool("uvicorn"), f"apps:{launch.app}", "--app-dir", str(BENCH_DIR),
            "--host", HOST, "--port", str(launch.port), "--workers", "1",
            "--http", http, "--loop", loop, "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip

    return command


def hypercorn_command(launch: Launch) -> list[str]:
    cmd = [tool("hypercorn"), "--config", launch.hypercorn_config]
    cmd += ["--bind", f"{HOST}:{launch.port}", "--workers", "0", "--worker-class", "asyncio"]
    cmd += ["--log-level", "warning"]
    if launch.certfile and launch.keyfile:
        cmd += ["--certfile", launch.certfile, "--keyfile", launch.keyfile]
    return [*cmd, f"apps:{launch.app}"]


#: hypercorn closes a connection (HTTP/1.1 and HTTP/2) after 1000 requests by default.
HYPERCORN_TOML = "keep_alive_max_requests = 1_000_000_000\nbacklog = 2048\n"


def contestants() -> list[Contestant]:
    missing: dict[str, str] = {}
    for module, protocols in (("http2", ("h2c", "h2")), ("tls", ("h2",))):
        if importlib.util.find_spec(f"rws.http.server.{module}") is None:
            for protocol in protocols:
                missing.setdefault(protocol, f"rws.http.server.{module} does not exist yet")
    every = frozenset({"h1", "h2c", "h2"})
    h1 = frozenset({"h1"})
    return [
        Contestant("rws-http", True, False, every, rws_command, missing),
        Contestant("uvicorn h11", False, False, h1, uvicorn_command("h11", "asyncio")),
        Contestant("uvicorn httptools", False, True, h1, uvicorn_command("httptools", "uvloop")),
        Contestant("hypercorn", False, False, every, hypercorn_command),
    ]


# -- processes: every one this script starts is registered and ended on the way out ----------

_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def spawn(cmd: list[str], core: int | None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (pinned to ``core``) in a session of its own, so that a Ctrl-C at the
    terminal reaches only this script, which then ends it by its process group."""
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    _STARTED[proc.pid] = proc
    return proc


def end(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group we created, then SIGKILL it if it lingers."""
    try:
        if proc.returncode is None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        else:
            # The leader is gone; make sure nothing it started lives on.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _STARTED.pop(proc.pid, None)


def end_all() -> None:
    for proc in list(_STARTED.values()):
        with contextlib.suppress(Exception):
            end(proc, timeout=5.0)


def _on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- /proc readings ---------------------------------------------------------------------------


def cpu_times() -> tuple[float, float]:
    """(busy, steal) seconds of all CPUs together. Busy is user+nice+system+irq+softirq+steal:
    steal is time the hypervisor gave our virtual CPUs to other guests, as real a disturbance
    as a process of our own machine, and invisible in any /proc/<pid>/stat."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - values[4]  # minus idle and iowait
    return busy / CLK_TCK, values[7] / CLK_TCK


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (a server may fork workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, ()))
    return tree


def tree_cpu(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def peak_rss_kib(pids: list[int]) -> int:
    """Sum of VmHWM over the processes (one process for every contestant here)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def passive_opens() -> int:
    """TCP connections accepted on this machine so far (/proc/net/snmp)."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("PassiveOpens")])


def wait_until_idle(limit: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until the machine's busy CPU over one second is at most
    ``limit`` cores; return the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        busy0, _ = cpu_times()
        own0 = time.process_time()
        time.sleep(1.0)
        busy1, _ = cpu_times()
        share = max(0.0, busy1 - busy0 - (time.process_time() - own0))
        if share <= limit or time.monotonic() >= deadline:
            return share


# -- TLS --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    certfile: str
    keyfile: str
    client_context: ssl.SSLContext


def make_certs(directory: Path) -> TLSFiles:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "localhost")
    certfile, keyfile = directory / "server.pem", directory / "server.key"
    cert.private_key_pem.write_to_path(str(keyfile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return TLSFiles(str(certfile), str(keyfile), context)


# -- probes -----------------------------------------------------------------------------------


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> str | None:
    """None once ``HOST:port`` accepts connections; an error text if the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before listening"
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return None
        time.sleep(0.05)
    return f"not listening after {timeout:.0f} s"


def probe(protocol: str, port: int, body: bytes, tls: TLSFiles | None) -> str | None:
    """One request: None when it is a 200 with exactly ``body`` over the right protocol."""
    try:
        if protocol == "h1":
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                got, status = response.read(), response.status
                proto = f"HTTP/{response.version // 10}.{response.version % 10}"
            finally:
                conn.close()
            want = "HTTP/1.1"
        else:
            import httpx

            if protocol == "h2c":
                client = httpx.Client(http1=False, http2=True, timeout=10)
                url = f"http://{HOST}:{port}/"
            else:
                assert tls is not None
                client = httpx.Client(http2=True, verify=tls.client_context, timeout=10)
                url = f"https://{HOST}:{port}/"
            with client:
                response = client.get(url)
                got, status, proto = response.content, response.status_code, response.http_version
            want = "HTTP/2"
    except Exception as exc:  # any failure to get an answer is the contestant's failure
        return f"probe failed: {type(exc).__name__}: {exc}"
    if status != 200:
        return f"probe: status {status}"
    if proto != want:
        return f"probe: answered over {proto}, not {want}"
    if got != body:
        return f"probe: body of {len(got)} bytes is not the expected {len(body)} bytes"
    return None


# -- load tools -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    rps: float = 0.0
    p99_ms: float | None = None
    requests: int = 0
    failure: str | None = None
    cpu_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def run_tool(cmd: list[str], core: int | None, timeout: float) -> tuple[str, float, int]:
    """Run a load tool to completion: (output, its CPU seconds, exit status). Its CPU time
    comes from wait4(), so it counts every thread of it up to its very end."""
    with tempfile.TemporaryFile() as out:
        proc = spawn(cmd, core, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        _STARTED.pop(proc.pid, None)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return text, usage.ru_utime + usage.ru_stime, proc.returncode


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def machine_cores(tools: tuple[str, ...], *, pin: bool) -> tuple[int | None, int | None]:
    """Check the machine can run the benchmark (Linux /proc, the load tools, taskset) and
    pick the server's core and the load generator's (None, None when not pinning)."""
    if not sys.platform.startswith("linux"):
        raise SystemExit("this benchmark reads /proc: Linux only")
    for name in tools + (("taskset",) if pin else ()):
        if shutil.which(name) is None:
            raise SystemExit(f"{name} not found on PATH")
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None, None
    return cores[0], cores[1]


def wrk(
    port: int, seconds: float, connections: int, core: int | None, path: str = "/"
) -> LoadResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    text, cpu, status = run_tool([*cmd, f"http://{HOST}:{port}{path}"], core, seconds * 5 + 30)
    result = LoadResult(cpu_s=cpu, detail={"output": text})
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if status != 0 or done is None or rate is None:
        result.failure = f"wrk exited with status {status}: {text.strip()[-300:]}"
        return result
    result.requests = int(done.group(1))
    result.rps = float(rate.group(1))
    # wrk prints what it read rounded to two decimals of its unit: keep the upper bound.
    result.detail["bytes_read"] = (float(done.group(4)) + 0.005) * _UNITS.get(done.group(5), 1)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m|h)\b", text)
    if p99:
        result.p99_ms = float(p99.group(1)) * _TIME[p99.group(2)]
    problems = []
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if errors and any(int(n) for n in errors.groups()):
        problems.append("socket errors: " + errors.group(0).split(": ", 1)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx and int(non2xx.group(1)):
        problems.append(f"{non2xx.group(1)} non-2xx/3xx responses")
    if result.requests == 0:
        problems.append("no request completed")
    if problems:
        result.failure = "; ".join(problems)
    return result


def h2load(
    url: str, requests: int, clients: int, streams: int, core: int | None, log: Path
) -> LoadResult:
    cmd = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams)]
    cmd += ["--log-file", str(log), url]
    text, cpu, status = run_tool(cmd, core, 600)
    result = LoadResult(cpu_s=cpu, detail={"output": _h2load_summary(text)})
    rate = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    data = re.search(r"traffic: .*?, ([\d.]+\w+) \((\d+)\) data", text)
    alpn = re.search(r"Application protocol: (\S+)", text)
    if status != 0 or rate is None or counts is None or codes is None:
        result.failure = f"h2load exited with status {status}: {text.strip()[-300:]}"
        return result
    total, _, _done, ok, failed, errored, timeout = (int(n) for n in counts.groups())
    result.requests = ok
    result.rps = float(rate.group(3))
    result.detail.update(
        {"alpn": alpn.group(1) if alpn else None, "data_bytes": int(data.group(2)) if data else 0}
    )
    problems = []
    if ok != total or failed or errored or timeout:
        problems.append(
            f"{total - ok} of {total} requests not successful "
            f"({failed} failed, {errored} errored, {timeout} timeout)"
        )
    if int(codes.group(1)) != total:
        problems.append(f"{total - int(codes.group(1))} non-2xx responses")
    if problems:
        result.failure = "; ".join(problems)
    durations = []
    with contextlib.suppress(OSError), log.open() as lines:
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                durations.append(int(parts[2]))
    if durations:
        durations.sort()
        result.p99_ms = durations[min(len(durations) - 1, int(len(durations) * 0.99))] / 1000
    return result


def _h2load_summary(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("progress:"))


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    contestant: str
    repetition: int
    attempt: int
    ok: bool = False
    failure: str | None = None
    rps: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    peak_rss_kib: int = 0
    #: CPU of everything but server, load tool and this script, in cores (0.05: 5 % of one).
    noise: float = 0.0
    #: The part of ``noise`` that is hypervisor steal time (other guests on the host).
    steal: float = 0.0
    quiet: bool = True
    idle_before: float = 0.0
    server_cpu: float = 0.0  # share of one core during the measured load
    tool_cpu: float = 0.0
    accepts: int = 0
    wall_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    duration: float
    warmup: float
    connections: int
    h2_requests: int
    h2_clients: int
    h2_streams: int
    noise: float
    retries: int
    idle_timeout: float
    server_core: int | None
    load_core: int | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This environment without settings that would change a server's behaviour."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RWS_HTTP_", "UVICORN_", "HYPERCORN_")) and key != "WEB_CONCURRENCY"
    }


def run_once(
    scenario: str,
    contestant: Contestant,
    repetition: int,
    attempt: int,
    opts: Options,
    tmp: Path,
    tls: TLSFiles | None,
) -> Run:
    protocol, app = SCENARIOS[scenario]
    body = BODIES[app]
    run = Run(scenario, contestant.name, repetition, attempt)
    if protocol in contestant.unavailable:
        run.failure = contestant.unavailable[protocol]
        return run
    run.idle_before = wait_until_idle(opts.noise, opts.idle_timeout)
    port = free_port()
    launch = Launch(
        app=app,
        port=port,
        certfile=tls.certfile if tls and protocol == "h2" else None,
        keyfile=tls.keyfile if tls and protocol == "h2" else None,
        hypercorn_config=str(tmp / "hypercorn.toml"),
    )
    slug = re.sub(r"\W+", "-", f"{scenario}-{contestant.name}-{repetition}-{attempt}")
    log_path = tmp / f"{slug}.log"
    with log_path.open("wb") as log:
        server = spawn(
            contestant.command(launch),
            opts.server_core,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=BENCH_DIR,
            env=clean_env(),
        )
    try:
        problem = wait_listening(server, port) or probe(protocol, port, body, tls)
        if problem is not None:
            run.failure = problem + _log_tail(log_path)
            return run
        url = f"{'https' if protocol == 'h2' else 'http'}://{HOST}:{port}/"
        h2log = tmp / f"{slug}.h2load.log"
        if opts.warmup > 0:
            if protocol == "h1":
                wrk(port, opts.warmup, opts.connections, opts.load_core)
            else:
                warm = ["h2load", "-D", f"{opts.warmup:g}", "-c", str(opts.h2_clients)]
                run_tool([*warm, "-m", str(opts.h2_streams), url], opts.load_core, 60)
        pids = process_tree(server.pid)
        busy0, steal0 = cpu_times()
        server0, own0, accepts0 = tree_cpu(pids), time.process_time(), passive_opens()
        start = time.monotonic()
        if protocol == "h1":
            load = wrk(port, opts.duration, opts.connections, opts.load_core)
        else:
            load = h2load(
                url, opts.h2_requests, opts.h2_clients, opts.h2_streams, opts.load_core, h2log
            )
        wall = time.monotonic() - start
        busy1, steal1 = cpu_times()
        server_cpu = tree_cpu(pids) - server0
        own = time.process_time() - own0
        run.accepts = passive_opens() - accepts0
        run.peak_rss_kib = peak_rss_kib(process_tree(server.pid))
        run.wall_s = wall
        run.server_cpu = server_cpu / wall
        run.tool_cpu = load.cpu_s / wall
        run.noise = max(0.0, busy1 - busy0 - server_cpu - load.cpu_s - own) / wall
        run.quiet = run.noise <= opts.noise
        run.steal = (steal1 - steal0) / wall
        run.detail = load.detail
        run.requests = load.requests
        run.p99_ms = load.p99_ms
        if load.failure is None:
            load.failure = _check_bytes(protocol, load, body)
        if server.poll() is not None:
            load.failure = (load.failure or "") + f"; server exited ({server.returncode})"
        if load.failure is not None:
            run.failure = load.failure + _log_tail(log_path)
            return run
        run.ok = True
        run.rps = load.rps
        return run
    finally:
        end(server)


def _check_bytes(protocol: str, load: LoadResult, body: bytes) -> str | None:
    """Did the clients receive the body of every response, not just a status line?"""
    if protocol == "h1":
        # wrk reports only a rounded byte total: check the per-response average against it.
        per_response = load.detail.get("bytes_read", 0) / max(1, load.requests)
        if per_response < len(body):
            return f"only {per_response:.0f} bytes read per response, body is {len(body)}"
        return None
    expected = len(body) * load.requests
    got = load.detail.get("data_bytes", 0)
    if got != expected:
        return f"h2load received {got} body bytes, expected {expected}"
    alpn = load.detail.get("alpn")
    if alpn != ("h2c" if protocol == "h2c" else "h2"):
        return f"h2load negotiated {alpn!r}"
    return None


def _log_tail(path: Path, lines: int = 6) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").strip().splitlines()
        if text:
            return " | server log: " + " / ".join(text[-lines:])
    return ""


# -- the whole benchmark ----------------------------------------------------------------------


def rotate(items: list[Contestant], shift: int) -> list[Contestant]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def bench(
    scenarios: list[str],
    field_: list[Contestant],
    repetitions: int,
    opts: Options,
    tmp: Path,
    tls: TLSFiles | None,
    runs: list[Run],
) -> None:
    for scenario in scenarios:
        protocol, _ = SCENARIOS[scenario]
        members = [c for c in field_ if protocol in c.protocols]
        for repetition in range(repetitions):
            for contestant in rotate(members, repetition):
                for attempt in range(1 + opts.retries):
                    run = run_once(scenario, contestant, repetition, attempt, opts, tmp, tls)
                    runs.append(run)
                    _progress(run, repetitions)
                    if run.ok and not run.quiet and attempt < opts.retries:
                        continue  # noisy: measure this one again
                    break


def _progress(run: Run, repetitions: int) -> None:
    where = f"{run.scenario} {run.repetition + 1}/{repetitions} {run.contestant}"
    if run.attempt:
        where += f" (attempt {run.attempt + 1})"
    if run.ok:
        noisy = "" if run.quiet else " NOISY"
        p99 = f", p99 {run.p99_ms:.1f} ms" if run.p99_ms is not None else ""
        print(
            f"  {where}: {run.rps:,.0f} req/s{p99}, server CPU {run.server_cpu:.0%}, "
            f"load tool {run.tool_cpu:.0%}, others {run.noise:.1%} (steal {run.steal:.1%}){noisy}, "
            f"RSS {run.peak_rss_kib / 1024:.1f} MiB, {run.accepts} accepts",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"  {where}: FAILED: {run.failure}", file=sys.stderr, flush=True)


def final_runs(runs: list[Run]) -> dict[tuple[str, str, int], Run]:
    """The last attempt of every (scenario, contestant, repetition)."""
    last: dict[tuple[str, str, int], Run] = {}
    for run in runs:
        last[(run.scenario, run.contestant, run.repetition)] = run
    return last


def summarize(
    scenarios: list[str], field_: list[Contestant], runs: list[Run]
) -> dict[str, dict[str, Any]]:
    last = final_runs(runs)
    summary: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        protocol, _ = SCENARIOS[scenario]
        members = [c for c in field_ if protocol in c.protocols]
        used: dict[str, dict[int, Run]] = {}
        rows: dict[str, Any] = {}
        for c in members:
            mine = {k[2]: r for k, r in last.items() if k[:2] == (scenario, c.name)}
            ok = {rep: r for rep, r in mine.items() if r.ok}
            quiet = {rep: r for rep, r in ok.items() if r.quiet}
            chosen = quiet or ok  # only noisy runs left: report them, flagged
            used[c.name] = chosen
            failures = sorted({r.failure for r in mine.values() if not r.ok and r.failure})
            row: dict[str, Any] = {
                "repetitions": len(mine),
                "ok": len(ok),
                "used": len(chosen),
                "noisy_only": bool(chosen) and not quiet,
                "failures": failures,
                "reference": c.reference,
            }
            if chosen:
                rates = [r.rps or 0.0 for r in chosen.values()]
                med = statistics.median(rates)
                p99s = [r.p99_ms for r in chosen.values() if r.p99_ms is not None]
                row.update(
                    rps=med,
                    spread=(max(rates) - min(rates)) / med if med else 0.0,
                    p99_ms=statistics.median(p99s) if p99s else None,
                    peak_rss_mib=statistics.median(r.peak_rss_kib for r in chosen.values()) / 1024,
                    server_cpu=statistics.median(r.server_cpu for r in chosen.values()),
                    tool_cpu=statistics.median(r.tool_cpu for r in chosen.values()),
                    accepts=statistics.median(r.accepts for r in chosen.values()),
                )
            rows[c.name] = row
        rws = next((c for c in members if c.is_rws), None)
        if rws is not None:
            for c in members:
                if c.is_rws:
                    continue
                pairs = [
                    (used[rws.name][rep].rps or 0.0) / (run.rps or 1.0)
                    for rep, run in used[c.name].items()
                    if rep in used[rws.name]
                ]
                if pairs:
                    rows[c.name]["ratio"] = statistics.median(pairs)
                    rows[c.name]["ratio_range"] = (min(pairs), max(pairs))
                    rows[c.name]["ratio_reps"] = len(pairs)
        summary[scenario] = rows
    return summary


def report(scenarios: list[str], summary: dict[str, dict[str, Any]], opts: Options) -> str:
    out: list[str] = []
    for scenario in scenarios:
        protocol, app = SCENARIOS[scenario]
        load = (
            f"wrk -t1 -c{opts.connections} -d{opts.duration:g}s"
            if protocol == "h1"
            else f"h2load -n {opts.h2_requests} -c {opts.h2_clients} -m {opts.h2_streams}"
        )
        body = "12-byte body" if app == "hello" else "64 KiB body in 4 chunks"
        out.append(f"### {scenario}: {PROTOCOL_LABEL[protocol]} ({load}), {body}\n")
        out.append(
            "| server | req/s (median) | spread | p99 ms | peak RSS MiB | server CPU "
            "| accepts | runs | rws-http ÷ peer (range) |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name, row in summary[scenario].items():
            label = name + (" (reference)" if row["reference"] else "")
            runs = f"{row['used']}/{row['repetitions']}"
            if "rps" not in row:
                why = "; ".join(row["failures"]) or "no run"
                out.append(f"| {label} | FAILED | | | | | | {runs} | {_short(why)} |")
                continue
            flag = " (noisy)" if row["noisy_only"] else ""
            p99 = f"{row['p99_ms']:.1f}" if row["p99_ms"] is not None else "—"
            ratio = "—"
            if "ratio" in row:
                low, high = row["ratio_range"]
                ratio = f"{row['ratio']:.2f} ({low:.2f}-{high:.2f})"
                if row["noisy_only"] or summary[scenario].get("rws-http", {}).get("noisy_only"):
                    ratio += " (noisy)"
            elif name != "rws-http":
                ratio = "— (no rws-http run)"
            failed = row["repetitions"] - row["ok"]
            if failed:
                runs += f", {failed} failed"
            out.append(
                f"| {label} | {row['rps']:,.0f}{flag} | {row['spread']:.0%} | {p99} "
                f"| {row['peak_rss_mib']:.1f} | {row['server_cpu']:.0%} "
                f"| {row['accepts']:.0f} | {runs} | {ratio} |"
            )
        # Failed runs of a contestant that also has good ones (else its row says it all).
        notes = [
            f"{name}: {_short(f)}"
            for name, row in summary[scenario].items()
            if "rps" in row
            for f in row["failures"]
        ]
        if notes:
            out.append("")
            out.extend(f"- failed: {note}" for note in notes)
        out.append("")
    return "\n".join(out)


def _short(text: str, limit: int = 240) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def versions() -> dict[str, str]:
    found = {}
    for name in ("rws-http", "uvicorn", "hypercorn", "h11", "h2", "httptools", "uvloop"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    for name, flag in (("wrk", "--version"), ("h2load", "--version")):
        try:
            text = subprocess.run(
                [name, flag], capture_output=True, text=True, timeout=10, check=False
            ).stdout
            found[name] = text.strip().splitlines()[0] if text.strip() else "?"
        except OSError:
            found[name] = "missing"
    return found


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


@contextlib.contextmanager
def cleanup_on_exit() -> Iterator[None]:
    """End every server and load tool this script started, whatever ends the script."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for signum in previous:
        signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        end_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3, help="runs per contestant (≥ 3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--h2-requests", type=int, default=50_000, help="h2load -n")
    parser.add_argument("--h2-clients", type=int, default=16, help="h2load -c")
    parser.add_argument("--h2-streams", type=int, default=10, help="h2load -m")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument(
        "--contestants", nargs="+", metavar="NAME", help="only these (rws-http is always kept)"
    )
    parser.add_argument(
        "--noise", type=float, default=0.05, help="max CPU of other processes, in cores"
    )
    parser.add_argument("--retries", type=int, default=2, help="re-measurements of a noisy run")
    parser.add_argument(
        "--idle-timeout", type=float, default=60.0, help="max seconds to wait for an idle machine"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, 3 s")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--output", type=Path, help="JSON file (default: bench/results/...)")
    args = parser.parse_args()
    if args.quick:
        args.repetitions, args.duration, args.warmup = 1, 3.0, 1.0
        args.h2_requests = min(args.h2_requests, 10_000)
        args.retries = min(args.retries, 1)
    server_core, load_core = machine_cores(("wrk", "h2load"), pin=not args.no_pin)
    opts = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        h2_requests=args.h2_requests,
        h2_clients=args.h2_clients,
        h2_streams=args.h2_streams,
        noise=args.noise,
        retries=args.retries,
        idle_timeout=args.idle_timeout,
        server_core=server_core,
        load_core=load_core,
    )
    field_ = contestants()
    if args.contestants:
        known = {c.name for c in field_}
        unknown = set(args.contestants) - known
        if unknown:
            raise SystemExit(f"unknown contestants {sorted(unknown)}; known: {sorted(known)}")
        field_ = [c for c in field_ if c.is_rws or c.name in args.contestants]

    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    output = args.output or RESULTS_DIR / f"http_server-{stamp}.json"
    info = versions()
    print(
        f"Python {platform.python_version()}, {cpu_model()}, {os.cpu_count()} CPUs; "
        + ", ".join(f"{k} {v}" for k, v in info.items())
    )
    pinned = (
        f"server on core {opts.server_core}, load on core {opts.load_core}"
        if opts.server_core is not None
        else "unpinned"
    )
    print(
        f"{pinned} | {args.repetitions} repetitions, interleaved, fresh server each | "
        f"warm-up {opts.warmup:g} s | noise limit {opts.noise:.0%} of a core, "
        f"{opts.retries} retries"
    )
    for c in field_:
        for protocol, why in c.unavailable.items():
            if any(SCENARIOS[s][0] == protocol for s in args.scenarios):
                print(f"note: {c.name} cannot run {protocol}: {why}")
    runs: list[Run] = []
    started = time.monotonic()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="rws-bench-") as tmp_name, cleanup_on_exit():
        tmp = Path(tmp_name)
        (tmp / "hypercorn.toml").write_text(HYPERCORN_TOML)
        needs_tls = any(SCENARIOS[s][0] == "h2" for s in args.scenarios)
        tls = make_certs(tmp) if needs_tls else None
        try:
            bench(args.scenarios, field_, args.repetitions, opts, tmp, tls, runs)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: servers stopped; reporting what was measured", file=sys.stderr)
    summary = summarize(args.scenarios, field_, runs)
    last = final_runs(runs)
    noisy = sum(1 for r in last.values() if r.ok and not r.quiet)
    worst = max((r.noise for r in runs if r.ok), default=0.0)
    print(
        f"\n{len(runs)} runs in {(time.monotonic() - started) / 60:.1f} min; "
        f"noisy runs left in the end: {noisy} (worst share of other processes {worst:.1%}); "
        f"re-measured: {sum(1 for r in runs if r.attempt)}\n"
    )
    print(report(args.scenarios, summary, opts))
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "interrupted": interrupted,
        "machine": {
            "python": platform.python_version(),
            "kernel": platform.release(),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
        },
        "versions": info,
        "options": {**asdict(opts), "repetitions": args.repetitions, "scenarios": args.scenarios},
        "summary": summary,
        "runs": [asdict(r) for r in runs],
    }
    output.write_text(json.dumps(document, indent=1, default=str) + "\n")
    print(f"results: {output}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
