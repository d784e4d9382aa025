"""rws-http over HTTP/3 against hypercorn over HTTP/3, and rws-http over HTTP/2, in one run.

There is no native HTTP/3 load generator here (Debian's h2load is built without ngtcp2), so
the load comes from ``h3_load.py``, a Python client on aioquic that is likely slower than the
servers. Requests per second would then measure the client; what this script compares is the
**server's CPU time per request** (its process tree's utime + stime during the load, divided
by the requests answered), which does not depend on how fast the client asks. The HTTP/2 row
uses h2load with the same connections and streams, for the cost of rws-http's own HTTP/2
against its HTTP/3 on the same app.

Method as in ``http_server.py`` (whose helpers this reuses): the server is pinned to core 0,
the client to core 1, every contestant is started fresh for every repetition, contestants are
interleaved, each run is probed by its own load (every response must be 200 with the exact
body) and warmed up; medians over repetitions, and the ratio to each peer is taken within a
repetition, then its median.

    python bench/http3_server.py                     # 5 repetitions of 5,000 requests each
    python bench/http3_server.py --requests 20000 --repetitions 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from http_server import (
    BENCH_DIR,
    HOST,
    RESULTS_DIR,
    TLSFiles,
    clean_env,
    end,
    end_all,
    free_port,
    h2load,
    make_certs,
    process_tree,
    run_tool,
    spawn,
    tool,
    tree_cpu,
    versions,
    wait_listening,
)

SERVER_CORE, LOAD_CORE = 0, 1
HELLO_LENGTH = 12


@dataclass(frozen=True)
class Contestant:
    name: str
    protocol: str  # "h3" or "h2"
    command: Callable[[int, TLSFiles], list[str]]


def rws(port: int, tls: TLSFiles) -> list[str]:
    return [
        tool("rws-http"), "serve", "apps:hello", "--app-dir", str(BENCH_DIR),
        "--bind", f"{HOST}:{port}", "--quic-bind", f"{HOST}:{port}", "--workers", "1",
        "--certfile", tls.certfile, "--keyfile", tls.keyfile, "--log-level", "warning",
    ]  # fmt: skip


def hypercorn(port: int, tls: TLSFiles) -> list[str]:
    return [
        tool("hypercorn"), "--bind", f"{HOST}:{port}", "--quic-bind", f"{HOST}:{port}",
        "--workers", "0", "--worker-class", "asyncio", "--certfile", tls.certfile,
        "--keyfile", tls.keyfile, "--log-level", "warning", "apps:hello",
    ]  # fmt: skip


CONTESTANTS = [
    Contestant("rws-http h3", "h3", rws),
    Contestant("hypercorn h3", "h3", hypercorn),
    Contestant("rws-http h2", "h2", rws),
]


def h3_load(port: int, requests: int, connections: int, streams: int) -> tuple[int, str | None]:
    """Run h3_load.py on the load core: (requests answered, error)."""
    cmd = [sys.executable, str(BENCH_DIR / "h3_load.py"), HOST, str(port)]
    cmd += ["--requests", str(requests), "--connections", str(connections)]
    cmd += ["--streams", str(streams), "--body", str(HELLO_LENGTH)]
    text, _, status = run_tool(cmd, LOAD_CORE, 600)
    try:
        result = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0, f"h3_load.py exited with {status}: {text.strip()[-300:]}"
    return int(result["requests"]), result["error"]


def run_once(contestant: Contestant, tls: TLSFiles, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = spawn(
            contestant.command(port, tls),
            SERVER_CORE,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=BENCH_DIR,
            env=clean_env(),
        )
        try:
            problem = wait_listening(proc, port)
            if problem is not None:
                raise SystemExit(f"{contestant.name}: {problem}")
            time.sleep(0.5)  # the UDP endpoint opens after the TCP listener on some servers

            def load(requests: int) -> int:
                if contestant.protocol == "h3":
                    done, error = h3_load(port, requests, args.connections, args.streams)
                    if error is not None:
                        raise SystemExit(f"{contestant.name}: {error}")
                    return done
                url = f"https://{HOST}:{port}/"
                with tempfile.TemporaryDirectory() as folder:
                    result = h2load(
                        url, requests, args.connections, args.streams, LOAD_CORE,
                        Path(folder) / "h2load.log",
                    )  # fmt: skip
                if result.failure is not None:
                    raise SystemExit(f"{contestant.name}: {result.failure}")
                return result.requests

            load(max(200, args.requests // 10))  # probe and warm-up
            tree = process_tree(proc.pid)
            cpu_before = tree_cpu(tree)
            started = time.perf_counter()
            done = load(args.requests)
            wall = time.perf_counter() - started
            cpu = tree_cpu(tree) - cpu_before
        finally:
            end(proc)
    return {"requests": done, "cpu_us_per_request": cpu / done * 1e6, "rps": done / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=10)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {c.name: [] for c in CONTESTANTS}
    try:
        with tempfile.TemporaryDirectory() as folder:
            tls = make_certs(Path(folder))
            for repetition in range(args.repetitions):
                shift = repetition % len(CONTESTANTS)
                for contestant in CONTESTANTS[shift:] + CONTESTANTS[:shift]:
                    result = run_once(contestant, tls, args)
                    runs[contestant.name].append(result)
                    print(
                        f"  {repetition + 1}/{args.repetitions} {contestant.name}: "
                        f"{result['cpu_us_per_request']:.0f} µs server CPU per request, "
                        f"{result['rps']:,.0f} req/s"
                        + (" (client-bound)" if contestant.protocol == "h3" else ""),
                        flush=True,
                    )
    finally:
        end_all()
    base = runs["rws-http h3"]
    print(
        "\n| server | server CPU µs/request (median) | req/s (median; h3: client-bound) | "
        "its CPU per request ÷ rws-http h3's (range) |"
    )
    print("|---|---:|---:|---|")
    for name, results in runs.items():
        cost = statistics.median(r["cpu_us_per_request"] for r in results)
        rate = statistics.median(r["rps"] for r in results)
        if name == "rws-http h3":
            ratio = "—"
        else:
            # Efficiency ratio: the peer's cost over ours (> 1: rws-http h3 does less work).
            per = [
                r["cpu_us_per_request"] / b["cpu_us_per_request"]
                for r, b in zip(results, base, strict=True)
            ]
            ratio = f"{statistics.median(per):.2f} ({min(per):.2f}-{max(per):.2f})"
        print(f"| {name} | {cost:.0f} | {rate:,.0f} | {ratio} |")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"http3_server-{time.strftime('%Y-%m-%dT%H%M%S')}.json"
    out.write_text(json.dumps({"versions": versions(), "args": vars(args), "runs": runs}, indent=1))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
