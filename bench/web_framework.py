"""rws.http.web against Starlette and Litestar: one JSON API, the same server, one run.

Run by hand, never by the test suite (Linux; needs ``wrk`` and ``taskset``):

    python bench/web_framework.py                          # in process + rws-http, ~2.5 min
    python bench/web_framework.py --servers rws-http uvicorn --repetitions 5
    python bench/web_framework.py --profile                # plus a py-spy profile of rws

The three apps (``bench/web_apps.py``) serve the same small API, each written the way its
framework is meant to be used (typed parameters, decorated handlers), with 20 other routes
and one pure-ASGI middleware adding ``x-bench: 1``. Every app runs under the same server,
``rws-http serve`` (h11, asyncio), one worker; ``--servers`` adds ``uvicorn`` (h11, asyncio)
for a second table. The load is ``wrk -t1 -c64 -d8s --latency`` on
``GET /users/42?verbose=true``.

Method (BENCHMARKING.md; the helpers come from ``http_server.py``): server on core 0, wrk on
core 1; the frameworks interleaved A B C, B C A, ... with a fresh server every run; each run
waits for an idle machine, probes (200 with the exact JSON body and the ``x-bench`` header,
the client error for ``/users/abc``, a 404 for an unknown path), warms up, then measures and
reads wrk's socket errors and non-2xx count (any makes the run FAILED, not a number). CPU
used by other processes during the load is measured; a run above ``--noise`` is measured
again (``--retries``) and left out of the medians if still noisy. ``rws ÷ peer`` is the rws
rate divided by the peer's in the same repetition, median over repetitions (> 1: rws faster).

First, without any server, each app is called in process as an ASGI app, pinned to one core
and timed by the thread's CPU clock (best of 5 slices per round, rounds interleaved): the
framework alone, and the ratio least disturbed by a busy machine.

``--profile`` serves the rws app once, samples it with ``py-spy record --pid`` while wrk loads
it, and prints the framework functions (``rws/http/web``) by share of the samples.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from http_server import (
    BENCH_DIR,
    HOST,
    RESULTS_DIR,
    _log_tail,
    clean_env,
    cleanup_on_exit,
    cpu_model,
    cpu_times,
    end,
    free_port,
    machine_cores,
    passive_opens,
    peak_rss_kib,
    process_tree,
    spawn,
    tool,
    tree_cpu,
    wait_listening,
    wait_until_idle,
    wrk,
)
from web_apps import BAD_ID_PATH, BAD_ID_STATUS, BODY, MISSING_PATH, PATH

FRAMEWORKS = ("rws", "starlette", "litestar")
SERVER_CORE, LOAD_CORE = 0, 1


# -- servers ----------------------------------------------------------------------------------


def rws_server(app: str, port: int) -> list[str]:
    return [
        tool("rws-http"), "serve", f"web_apps:{app}", "--app-dir", str(BENCH_DIR),
        "--bind", f"{HOST}:{port}", "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip


def uvicorn_server(app: str, port: int) -> list[str]:
    return [
        tool("uvicorn"), f"web_apps:{app}", "--app-dir", str(BENCH_DIR), "--host", HOST,
        "--port", str(port), "--workers", "1", "--http", "h11", "--loop", "asyncio",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "rws-http": rws_server,
    "uvicorn": uvicorn_server,
}


# -- probe ------------------------------------------------------------------------------------


def probe(framework: str, port: int) -> tuple[str | None, dict[str, Any]]:
    """(None or the reason the contestant fails, what it answered to each probe)."""
    seen: dict[str, Any] = {}
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for name, path in (("ok", PATH), ("bad_id", BAD_ID_PATH), ("missing", MISSING_PATH)):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            seen[name] = {
                "status": response.status,
                "version": response.version,
                "x-bench": response.getheader("x-bench"),
                "content-type": response.getheader("content-type"),
                "body": body[:200].decode(errors="replace"),
            }
            if name == "ok":
                seen[name]["body_exact"] = body == BODY
    except Exception as exc:  # any failure to answer is the contestant's failure
        return f"probe failed: {type(exc).__name__}: {exc}", seen
    finally:
        conn.close()
    ok, bad, missing = seen["ok"], seen["bad_id"], seen["missing"]
    if ok["status"] != 200 or ok["version"] != 11:
        return f"probe: {PATH} answered {ok['status']} over HTTP/{ok['version'] / 10}", seen
    if not ok["body_exact"]:
        return f"probe: body {ok['body']!r} is not {BODY.decode()!r}", seen
    if ok["x-bench"] != "1" or not (ok["content-type"] or "").startswith("application/json"):
        return f"probe: x-bench {ok['x-bench']!r}, content-type {ok['content-type']!r}", seen
    if bad["status"] != BAD_ID_STATUS[framework]:
        return f"probe: {BAD_ID_PATH} answered {bad['status']}, not the client error", seen
    if missing["status"] != 404:
        return f"probe: {MISSING_PATH} answered {missing['status']}, not 404", seen
    return None, seen


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    connections: int
    noise: float
    retries: int
    idle_timeout: float
    server_core: int | None
    load_core: int | None


@dataclass
class Run:
    server: str
    framework: str
    repetition: int
    attempt: int
    ok: bool = False
    failure: str | None = None
    rps: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    noise: float = 0.0
    steal: float = 0.0
    quiet: bool = True
    server_cpu: float = 0.0
    #: Server CPU seconds per answered request, in µs: the work, whatever share of its core
    #: the server got (the rate depends on that share when the machine is busy).
    cpu_us: float | None = None
    accepts: int = 0
    peak_rss_kib: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def measure(server: str, framework: str, repetition: int, attempt: int, opts: Options) -> Run:
    run = Run(server, framework, repetition, attempt)
    wait_until_idle(opts.noise, opts.idle_timeout)
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="rws-web-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = spawn(
            SERVERS[server](f"{framework}_app", port),
            opts.server_core,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=BENCH_DIR,
            env=clean_env(),
        )
    try:
        problem = wait_listening(proc, port)
        if problem is None:
            problem, run.detail["probe"] = probe(framework, port)
        if problem is not None:
            run.failure = problem + _log_tail(log_path)
            return run
        if opts.warmup > 0:
            wrk(port, opts.warmup, opts.connections, opts.load_core, PATH)
        pids = process_tree(proc.pid)
        busy0, steal0 = cpu_times()
        cpu0, own0, accepts0 = tree_cpu(pids), time.process_time(), passive_opens()
        start = time.monotonic()
        load = wrk(port, opts.duration, opts.connections, opts.load_core, PATH)
        wall = time.monotonic() - start
        busy1, steal1 = cpu_times()
        server_cpu = tree_cpu(pids) - cpu0
        others = busy1 - busy0 - server_cpu - load.cpu_s - (time.process_time() - own0)
        run.noise, run.steal = max(0.0, others) / wall, (steal1 - steal0) / wall
        run.quiet = run.noise <= opts.noise
        run.server_cpu = server_cpu / wall
        run.cpu_us = server_cpu / load.requests * 1e6 if load.requests else None
        run.accepts = passive_opens() - accepts0
        run.peak_rss_kib = peak_rss_kib(pids)
        run.requests, run.p99_ms = load.requests, load.p99_ms
        run.detail["wrk"] = load.detail.get("output", "")
        failure = load.failure
        if failure is None and load.detail.get("bytes_read", 0) < load.requests * len(BODY):
            failure = "wrk read fewer bytes than requests x body size"
        if proc.poll() is not None:
            failure = (failure or "") + f"; server exited ({proc.returncode})"
        if failure is not None:
            run.failure = failure + _log_tail(log_path)
            return run
        run.ok, run.rps = True, load.rps
        return run
    finally:
        end(proc)
        log_path.unlink(missing_ok=True)


def bench(servers: list[str], repetitions: int, opts: Options, runs: list[Run]) -> None:
    for server in servers:
        for repetition in range(repetitions):
            shift = repetition % len(FRAMEWORKS)
            for framework in FRAMEWORKS[shift:] + FRAMEWORKS[:shift]:
                for attempt in range(1 + opts.retries):
                    run = measure(server, framework, repetition, attempt, opts)
                    runs.append(run)
                    print(progress(run, repetitions), file=sys.stderr, flush=True)
                    if not (run.ok and not run.quiet):
                        break  # quiet, or failed: a failure is not retried


def progress(run: Run, repetitions: int) -> str:
    where = f"  {run.server} {run.repetition + 1}/{repetitions} {run.framework}"
    if run.attempt:
        where += f" (attempt {run.attempt + 1})"
    if not run.ok:
        return f"{where}: FAILED: {run.failure}"
    return (
        f"{where}: {run.rps:,.0f} req/s, p99 {run.p99_ms or 0:.1f} ms, server CPU "
        f"{run.server_cpu:.0%} ({run.cpu_us or 0:.0f} µs/request), others {run.noise:.1%} "
        f"(steal {run.steal:.1%}){'' if run.quiet else ' NOISY'}, {run.accepts} accepts"
    )


# -- summary ----------------------------------------------------------------------------------


def summarize(servers: list[str], runs: list[Run]) -> dict[str, dict[str, Any]]:
    last = {(r.server, r.framework, r.repetition): r for r in runs}  # final attempt of each
    summary: dict[str, dict[str, Any]] = {}
    for server in servers:
        used: dict[str, dict[int, Run]] = {}
        rows: dict[str, Any] = {}
        for framework in FRAMEWORKS:
            mine = {k[2]: r for k, r in last.items() if k[:2] == (server, framework)}
            good = {rep: r for rep, r in mine.items() if r.ok}
            quiet = {rep: r for rep, r in good.items() if r.quiet}
            chosen = used[framework] = quiet or good
            row: dict[str, Any] = {
                "runs": len(mine),
                "used": len(chosen),
                "noisy_only": bool(chosen) and not quiet,
                "failures": sorted({r.failure or "" for r in mine.values() if not r.ok}),
            }
            if chosen:
                rates = [r.rps or 0.0 for r in chosen.values()]
                row["rps"] = statistics.median(rates)
                row["spread"] = (max(rates) - min(rates)) / row["rps"]
                row["p99_ms"] = statistics.median(r.p99_ms or 0.0 for r in chosen.values())
                row["server_cpu"] = statistics.median(r.server_cpu for r in chosen.values())
                row["cpu_us"] = statistics.median(r.cpu_us or 0.0 for r in chosen.values())
                row["rss_mib"] = statistics.median(r.peak_rss_kib for r in chosen.values()) / 1024
            rows[framework] = row
        for peer in FRAMEWORKS[1:]:
            pairs = [
                (used["rws"][rep], run) for rep, run in used[peer].items() if rep in used["rws"]
            ]
            if pairs:
                ratios = [(mine.rps or 0.0) / (theirs.rps or 1.0) for mine, theirs in pairs]
                rows[peer]["ratio"] = statistics.median(ratios)
                rows[peer]["ratio_range"] = (min(ratios), max(ratios))
                work = [(theirs.cpu_us or 0.0) / (mine.cpu_us or 1.0) for mine, theirs in pairs]
                rows[peer]["cpu_ratio"] = statistics.median(work)
                rows[peer]["cpu_ratio_range"] = (min(work), max(work))
        summary[server] = rows
    return summary


def report(summary: dict[str, dict[str, Any]], opts: Options) -> str:
    out: list[str] = []
    for server, rows in summary.items():
        out.append(
            f"### served by {server}: wrk -t1 -c{opts.connections} -d{opts.duration:g}s "
            f"GET {PATH}\n"
        )
        out.append(
            "| framework | req/s (median) | spread | p99 ms | server CPU | CPU µs/req "
            "| peak RSS MiB | runs | rws ÷ framework, req/s (range) "
            "| framework ÷ rws, CPU/req (range) |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for framework, row in rows.items():
            runs = f"{row['used']}/{row['runs']}"
            if "rps" not in row:
                why = "; ".join(row["failures"]) or "no run"
                out.append(f"| {framework} | FAILED | | | | | | {runs} | {why[:200]} | |")
                continue
            ratio = work = "—"
            if "ratio" in row:
                low, high = row["ratio_range"]
                ratio = f"{row['ratio']:.2f} ({low:.2f}-{high:.2f})"
                low, high = row["cpu_ratio_range"]
                work = f"{row['cpu_ratio']:.2f} ({low:.2f}-{high:.2f})"
            noisy = " (noisy)" if row["noisy_only"] else ""
            out.append(
                f"| {framework} | {row['rps']:,.0f}{noisy} | {row['spread']:.0%} "
                f"| {row['p99_ms']:.1f} | {row['server_cpu']:.0%} | {row['cpu_us']:.0f} "
                f"| {row['rss_mib']:.1f} | {runs} | {ratio} | {work} |"
            )
        out.append("")
    return "\n".join(out)


# -- in process: the frameworks without a server ----------------------------------------------


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def asgi_call(app: Any, path: str, sink: list[Any]) -> Callable[[], None]:
    """One request to ``app`` as the server would make it, with a fresh scope, driven by
    ``send(None)``: none of the three apps suspends on this request (checked: it raises
    if one does), so no event-loop time is counted."""
    route, _, query = path.partition("?")

    async def send(message: Any) -> None:
        sink.append(message)

    def call() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": route,
            "raw_path": route.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
            "server": (HOST, 8000), "client": (HOST, 50000), "state": {}, "extensions": {},
        }  # fmt: skip
        sink.clear()
        coroutine = app(scope, _receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        coroutine.close()
        raise RuntimeError("the app suspended: drive it with an event loop instead")

    return call


def cpu_rate(call: Callable[[], None], batch: float) -> float:
    """CPU seconds per call: the best of 5 slices of about ``batch`` seconds each. Timed by
    the thread's CPU clock, not the wall clock: on a shared machine the process is often
    descheduled mid-slice, which the wall clock would count as the framework's time."""
    number = 1
    while True:
        start = time.thread_time()
        for _ in range(number):
            call()
        if time.thread_time() - start > batch / 10:
            break
        number *= 2
    number *= 10
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        for _ in range(number):
            call()
        best = min(best, (time.thread_time() - start) / number)
    return best


def in_process(rounds: int, batch: float, pin: bool) -> tuple[str, dict[str, Any]]:
    """CPU µs per request of each framework alone, pinned to one core, interleaved by
    round; each round's figure is its best of 5 slices."""
    from web_apps import FACTORIES

    sink: list[Any] = []
    calls = {name: asgi_call(FACTORIES[name](), PATH, sink) for name in FRAMEWORKS}
    for name, call in calls.items():  # check the work before timing it
        call()
        start, body = sink[0], b"".join(m.get("body", b"") for m in sink[1:])
        if start["status"] != 200 or body != BODY or (b"x-bench", b"1") not in start["headers"]:
            raise SystemExit(f"in-process probe of {name} failed: {start!r} {body!r}")
    times: dict[str, list[float]] = {name: [] for name in FRAMEWORKS}
    ratios: dict[str, list[float]] = {peer: [] for peer in FRAMEWORKS[1:]}
    previous = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {SERVER_CORE} if SERVER_CORE in previous else {min(previous)})
    try:
        for round_ in range(rounds):
            shift = round_ % len(FRAMEWORKS)
            result = {n: cpu_rate(calls[n], batch) for n in FRAMEWORKS[shift:] + FRAMEWORKS[:shift]}
            for name, seconds in result.items():
                times[name].append(seconds * 1e6)
            for peer in ratios:
                ratios[peer].append(result[peer] / result["rws"])
    finally:
        os.sched_setaffinity(0, previous)
    lines = [
        f"### in process, no server: GET {PATH} as an ASGI call ({rounds} rounds)\n",
        "| framework | CPU µs/request (median) | IQR | framework ÷ rws, time (range) |",
        "|---|---:|---:|---|",
    ]
    data: dict[str, Any] = {}
    for name in FRAMEWORKS:
        q1, med, q3 = statistics.quantiles(times[name], n=4) if rounds > 1 else [times[name][0]] * 3
        ratio = "—"
        if name in ratios:
            r = ratios[name]
            ratio = f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"
        lines.append(f"| {name} | {med:.1f} | {(q3 - q1) / med:.0%} | {ratio} |")
        data[name] = {"us": times[name], "ratio": ratios.get(name)}
    return "\n".join(lines) + "\n", data


# -- profile ----------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:]+):\d+\)$")


def profile(opts: Options, seconds: float, stacks: Path | None) -> str:
    """Serve the rws app, load it with wrk, and sample it with ``py-spy record --pid`` (on the
    load core) meanwhile; the framework's functions by share of all samples (inclusive: on
    the stack; own: the innermost framework frame, i.e. time in the function itself or in
    non-framework code it called, such as the stdlib or the server's ``send``)."""
    py_spy = tool("py-spy")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rws-web-prof-") as tmp:
        raw = Path(tmp) / "stacks.txt"
        server = spawn(rws_server("rws_app", port), opts.server_core, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=BENCH_DIR,
                       env=clean_env())  # fmt: skip
        try:
            problem = wait_listening(server, port)
            if problem is None:
                problem, _ = probe("rws", port)
            if problem is not None:
                return f"profile: {problem}"
            wrk(port, opts.warmup, opts.connections, opts.load_core, PATH)
            cmd = [py_spy, "record", "--pid", str(server.pid), "--format", "raw"]
            cmd += ["--rate", "250", "--duration", f"{max(1, int(seconds) - 1)}"]
            sampler = spawn([*cmd, "-o", str(raw)], opts.load_core,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
            load = wrk(port, seconds, opts.connections, opts.load_core, PATH)
            sampler.wait(seconds + 30)
            end(sampler)
            if load.failure:
                return f"profile: load failed: {load.failure}"
        finally:
            end(server)
        if not raw.exists():
            return "profile: py-spy wrote no output (is ptrace allowed?)"
        text = raw.read_text()
    if stacks is not None:
        stacks.write_text(text)  # collapsed stacks: flamegraph.pl or speedscope draw them
    return summarize_stacks(text)


def _is_server(file: str) -> bool:
    return "http/server/" in file or file.startswith("h11/") or "/h11/" in file


def summarize_stacks(text: str, top: int = 25) -> str:
    """Shares of py-spy's collapsed stacks. ``own`` counts a sample for the innermost
    framework frame when nothing after it is the server's or the benchmark middleware's
    code: time in the function itself and the stdlib it calls (json, re, ...), not the
    response bytes travelling down through ``send`` into the server."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = in_app = in_send = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names: list[str] = []
        innermost = None  # (framework frame, index) of the last framework frame
        frames = [_FRAME.match(frame) for frame in stack.split(";")]
        for index, found in enumerate(frames):
            # py-spy shortens paths: ".../rws/http/web/app.py" is "http/web/app.py"
            if found and "http/web/" in found["file"]:
                where = found["file"].split("http/web/", 1)[1]
                names.append(f"web/{where}:{found['func']}")
                innermost = (names[-1], index)
        for name in set(names):
            inclusive[name] += count
        if innermost is None:
            continue
        in_app += count
        below = [f["file"] for f in frames[innermost[1] + 1 :] if f]
        if any(_is_server(file) or file.endswith("web_apps.py") for file in below):
            in_send += count
        else:
            own[innermost[0]] += count
    if not total:
        return "profile: no samples"
    lines = [
        f"{total} samples of the rws-http process under load; {in_app / total:.1%} inside the "
        f"rws app, of which {in_send / total:.1%} below it again (its send() into the bench "
        f"middleware and the server), {(in_app - in_send) / total:.1%} framework code and "
        "the stdlib it calls.",
        "",
        "| function (rws.http.web) | inclusive | own (+ stdlib callees) |",
        "|---|---:|---:|",
    ]
    for name, count in inclusive.most_common(top):
        lines.append(f"| {name} | {count / total:.1%} | {own[name] / total:.1%} |")
    lines += ["", "by own share:", ""]
    for name, count in own.most_common(12):
        lines.append(f"- {name}: {count / total:.1%}")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {}
    for name in ("rws-http", "starlette", "litestar", "msgspec", "uvicorn", "h11"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3, help="runs per framework (≥ 3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--servers", nargs="+", choices=list(SERVERS), default=["rws-http"], help="one table each"
    )
    parser.add_argument("--noise", type=float, default=0.05, help="max CPU of others, in cores")
    parser.add_argument("--retries", type=int, default=2, help="re-measurements of a noisy run")
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="max wait for idle, s")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the in-process part")
    parser.add_argument("--batch", type=float, default=0.1, help="in-process timed slice, s")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process part")
    parser.add_argument("--in-process-only", action="store_true", help="only the in-process part")
    parser.add_argument("--profile", action="store_true", help="also profile rws with py-spy")
    parser.add_argument("--profile-only", action="store_true", help="only the py-spy profile")
    parser.add_argument("--profile-seconds", type=float, default=8.0, help="load while sampling")
    parser.add_argument("--stacks", type=Path, help="also keep py-spy's collapsed stacks here")
    parser.add_argument("--output", type=Path, help="JSON file (default: bench/results/...)")
    args = parser.parse_args()
    counts = ("--repetitions", args.repetitions), ("--connections", args.connections)
    for name, value in (*counts, ("--rounds", args.rounds)):
        if value < 1:
            parser.error(f"{name} must be at least 1")
    if args.duration <= 0 or args.batch <= 0 or args.warmup < 0:
        parser.error("--duration and --batch must be positive, --warmup not negative")
    server_core, load_core = machine_cores(("wrk",), pin=not args.no_pin)
    pin = server_core is not None
    opts = Options(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        noise=args.noise,
        retries=args.retries,
        idle_timeout=args.idle_timeout,
        server_core=server_core,
        load_core=load_core,
    )
    info = versions()
    print(
        f"Python {platform.python_version()}, {cpu_model()}; "
        + ", ".join(f"{k} {v}" for k, v in info.items())
    )
    where = (
        f"server on core {opts.server_core}, wrk on core {opts.load_core}" if pin else "unpinned"
    )
    print(f"{where} | {args.repetitions} repetitions, interleaved, fresh server each\n")
    runs: list[Run] = []
    started = time.monotonic()
    interrupted = False
    profile_text = in_process_text = None
    in_process_data: dict[str, Any] = {}
    with cleanup_on_exit():
        try:
            if not (args.no_in_process or args.profile_only):
                in_process_text, in_process_data = in_process(args.rounds, args.batch, pin)
                print(in_process_text, file=sys.stderr, flush=True)
            if not (args.profile_only or args.in_process_only):
                bench(args.servers, args.repetitions, opts, runs)
            if args.profile or args.profile_only:
                profile_text = profile(opts, args.profile_seconds, args.stacks)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: servers stopped; reporting what was measured", file=sys.stderr)
    summary = summarize(args.servers, runs) if runs else {}
    print(f"\n{len(runs)} runs in {(time.monotonic() - started) / 60:.1f} min\n")
    if in_process_text:
        print(in_process_text)
    if summary:
        print(report(summary, opts))
    if profile_text:
        print(profile_text)
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    output = args.output or RESULTS_DIR / f"web_framework-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "interrupted": interrupted,
        "machine": {"python": platform.python_version(), "cpu": cpu_model()},
        "versions": info,
        "options": {**asdict(opts), "repetitions": args.repetitions, "servers": args.servers},
        "summary": summary,
        "in_process": in_process_data,
        "profile": profile_text,
        "runs": [asdict(r) for r in runs],
    }
    output.write_text(json.dumps(document, indent=1, default=str) + "\n")
    print(f"results: {output}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
