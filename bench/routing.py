"""rws.http.web Router against starlette.routing.Router: time per lookup, 10 / 100 / 1000 routes.

    pip install -e packages/rws-http starlette
    python bench/routing.py                  # 7 rounds, ~20 s
    python bench/routing.py --rounds 9 --sizes 10 100 1000 5000
    python bench/routing.py --shared-prefix  # all param routes under /api/{id:int}/...

Both routers get the same routes (half literal ``/static{i}/page``, half ``/items{i}/{id:int}``,
interleaved) with a no-op ASGI endpoint, and are called as ASGI apps with a fresh minimal
scope per call; the coroutine is driven with ``send(None)`` (nothing suspends), so no event
loop time is counted. A miss makes both send a plain-text 404 to a no-op ``send``.
Starlette's ``redirect_slashes`` is turned off so a miss costs it one pass, not two.
Contestants are interleaved in every round; the figure is the median over rounds of each
round's best-of-5 batch, and ``rws/starlette`` is the median of per-round speed ratios
(> 1: rws faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import Route as StarletteRoute
from starlette.routing import Router as StarletteRouter

from rws.http.web import Route, Router


class Endpoint:
    """A no-op ASGI app; a callable object, so Starlette's Route treats it as ASGI too
    (it wraps plain async functions as request/response endpoints)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


endpoint = Endpoint()


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


SENT: list[int] = []


async def send(message: Any) -> None:
    if message["type"] == "http.response.start":
        SENT.append(message["status"])


def paths(count: int, shared: bool) -> list[str]:
    """``shared``: every parameterised route in one prefix group (rws's worst case)."""
    half = count // 2
    out: list[str] = []
    for i in range(half):
        out.append(f"/static{i}/page")
        out.append(f"/api/{{id:int}}/items{i}" if shared else f"/items{i}/{{id:int}}")
    return out


def make_call(app: Any, path: str) -> Callable[[], None]:
    def call() -> None:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
        coroutine = app(scope, receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        raise RuntimeError("the router suspended")

    return call


def rate(call: Callable[[], None], batch: float) -> float:
    """Seconds per call: the best of 5 slices of ``batch`` seconds."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            call()
        if time.perf_counter() - start > batch / 10:
            break
        number *= 2
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=float, default=0.1, help="seconds per timed slice")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--shared-prefix",
        action="store_true",
        help="routes /api/{id:int}/items{i}: one combined regex holds them all",
    )
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})

    print(f"{'routes':>6} {'lookup':<18} {'rws µs':>8} {'starlette µs':>13} {'rws/starlette':>14}")
    for size in args.sizes:
        patterns = paths(size, args.shared_prefix)
        rws = Router([Route(p, endpoint) for p in patterns])
        starlette = StarletteRouter(
            [StarletteRoute(p, endpoint) for p in patterns], redirect_slashes=False
        )
        half = size // 2
        lookups = {
            "last (int param)": (
                f"/api/7/items{half - 1}" if args.shared_prefix else f"/items{half - 1}/7",
                200,
            ),
            "last literal": (f"/static{half - 1}/page", 200),
            "miss": ("/nothing/here", 404),
        }
        for label, (path, status) in lookups.items():
            calls = {"rws": make_call(rws, path), "starlette": make_call(starlette, path)}
            for name, call in calls.items():  # check each contestant does the work
                SENT.clear()
                call()
                expected = [status] if status == 404 else []
                assert expected == SENT, (name, path, SENT)
            times: dict[str, list[float]] = {"rws": [], "starlette": []}
            ratios: list[float] = []
            for round_ in range(args.rounds):
                order = list(calls) if round_ % 2 == 0 else list(reversed(calls))
                result = {name: rate(calls[name], args.batch) for name in order}
                for name, seconds in result.items():
                    times[name].append(seconds)
                ratios.append(result["starlette"] / result["rws"])
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
            print(
                f"{size:>6} {label:<18} {statistics.median(times['rws']) * 1e6:>8.2f}"
                f" {statistics.median(times['starlette']) * 1e6:>13.2f}"
                f" {statistics.median(ratios):>9.2f}x"
                f" (IQR {quartiles[0]:.2f}-{quartiles[2]:.2f})"
            )


if __name__ == "__main__":
    main()
