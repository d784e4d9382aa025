"""verify() throughput of rws-webhook against the peer libraries, measured in one run.

Run by hand, never by the test suite:

    python bench/webhook_verify.py                          # 7 rounds, 1 KiB and 64 KiB
    python bench/webhook_verify.py --rounds 9 --batch 0.3   # longer, steadier
    python bench/webhook_verify.py --profile                # plus a cProfile of each rws verify

Contestants, per body size (1 KiB and 64 KiB by default):

- Stripe: ``rws.webhook.Stripe.verify`` vs ``stripe.WebhookSignature.verify_header``
  (tolerance=300, so both check the timestamp).
- Standard Webhooks: ``rws.webhook.StandardWebhooks.verify`` vs ``standardwebhooks``
  ``Webhook.verify(json_parse=False)`` and ``svix`` ``Webhook.verify`` (which never parses).
- GitHub: ``rws.webhook.GitHub.verify`` vs a hand-written ``hmac`` check, the floor that
  any library doing real header parsing sits above.

Method (see BENCHMARKING.md): pinned to one core with ``os.sched_setaffinity`` when the OS
allows it; contestants interleaved A B C A B C ..., each measured batch preceded by a short
warm-up and rated by its fastest of SLICES slices; every contestant is probed once (accepts
the genuine request, rejects a tampered one) before it is timed; CPU used by other processes
(all cores, from /proc/stat) is measured per round and rounds where it exceeds ``--noise``
are left out (if enough remain). The rws/peer ratio is taken inside each round, then the
median over rounds. Only the ratios mean something; absolute figures move with the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import hmac
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

import standardwebhooks.webhooks
import stripe
import svix.webhooks

from rws.webhook import GitHub, StandardWebhooks, Stripe

STRIPE_SECRET = "whsec_bench_0123456789abcdef"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GITHUB_SECRET = "It's a Secret to Everybody"
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def make_body(size: int) -> bytes:
    """A JSON event of exactly ``size`` bytes (ASCII, so the str-based peers accept it)."""
    head = b'{"id":"evt_1","object":"event","type":"invoice.paid","pad":"'
    tail = b'"}'
    filler = size - len(head) - len(tail)
    if filler < 0:
        raise ValueError(f"body size {size} is too small")
    pad = (b"0123456789abcdef" * (filler // 16 + 1))[:filler]
    body = head + pad + tail
    json.loads(body)
    return body


# -- contestants -----------------------------------------------------------------------------


@dataclass
class Contestant:
    group: str  # scheme + size; ratios are taken inside a group
    name: str
    is_rws: bool
    #: Builds (verify, tampered_verify) for fresh headers; called once per round so the
    #: timestamped schemes stay inside their window however long the run is.
    prepare: Callable[[], tuple[Callable[[], object], Callable[[], object]]]
    rates: list[float] = field(default_factory=list)
    quiet: list[bool] = field(default_factory=list)


def stripe_contestants(body: bytes, label: str) -> list[Contestant]:
    rws = Stripe(STRIPE_SECRET)
    tampered = body[:-2] + b"x}"

    def headers() -> str:
        return rws.sign(body)["Stripe-Signature"]

    def prep_rws() -> tuple[Callable[[], object], Callable[[], object]]:
        h = {"Stripe-Signature": headers()}
        return (lambda: rws.verify(body, h)), (lambda: rws.verify(tampered, h))

    def prep_stripe() -> tuple[Callable[[], object], Callable[[], object]]:
        h = headers()
        check = stripe.WebhookSignature.verify_header
        return (
            lambda: check(body, h, STRIPE_SECRET, 300),
            lambda: check(tampered, h, STRIPE_SECRET, 300),
        )

    group = f"stripe {label}"
    return [
        Contestant(group, "rws Stripe.verify", True, prep_rws),
        Contestant(group, "stripe WebhookSignature.verify_header", False, prep_stripe),
    ]


def standard_contestants(body: bytes, label: str) -> list[Contestant]:
    rws = StandardWebhooks(STANDARD_SECRET)
    std = standardwebhooks.webhooks.Webhook(STANDARD_SECRET)
    sx = svix.webhooks.Webhook(STANDARD_SECRET)
    tampered = body[:-2] + b"x}"

    def headers() -> dict[str, str]:
        return rws.sign(body, message_id=MSG_ID)

    def prep_rws() -> tuple[Callable[[], object], Callable[[], object]]:
        h = headers()
        return (lambda: rws.verify(body, h)), (lambda: rws.verify(tampered, h))

    def prep_std() -> tuple[Callable[[], object], Callable[[], object]]:
        h = headers()
        return (
            lambda: std.verify(body, h, json_parse=False),
            lambda: std.verify(tampered, h, json_parse=False),
        )

    def prep_svix() -> tuple[Callable[[], object], Callable[[], object]]:
        h = {k.replace("webhook-", "svix-"): v for k, v in headers().items()}
        return (lambda: sx.verify(body, h)), (lambda: sx.verify(tampered, h))

    group = f"standard {label}"
    return [
        Contestant(group, "rws StandardWebhooks.verify", True, prep_rws),
        Contestant(group, "standardwebhooks Webhook.verify", False, prep_std),
        Contestant(group, "svix Webhook.verify", False, prep_svix),
    ]


def github_contestants(body: bytes, label: str) -> list[Contestant]:
    rws = GitHub(GITHUB_SECRET)
    key = GITHUB_SECRET.encode()
    tampered = body[:-2] + b"x}"
    headers = {**rws.sign(body), "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}

    def baseline(payload: bytes) -> None:
        # What a careful hand-written receiver does: one header, hexdigest, constant-time.
        received = headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(key, payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), received.encode()):
            raise ValueError("bad signature")

    def prep_rws() -> tuple[Callable[[], object], Callable[[], object]]:
        return (lambda: rws.verify(body, headers)), (lambda: rws.verify(tampered, headers))

    def prep_base() -> tuple[Callable[[], object], Callable[[], object]]:
        return (lambda: baseline(body)), (lambda: baseline(tampered))

    group = f"github {label}"
    return [
        Contestant(group, "rws GitHub.verify", True, prep_rws),
        Contestant(group, "hand-written hmac baseline", False, prep_base),
    ]


# -- measurement -----------------------------------------------------------------------------


def pin() -> int | None:
    """Pin this process to one core (the last one we may use); return it, or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        core = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
    except OSError:
        return None
    return core


def busy_seconds() -> float | None:
    """Busy time of all CPUs together from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return None


def probe(contestant: Contestant) -> None:
    """Check the work: the genuine request passes and the tampered one fails."""
    ok, bad = contestant.prepare()
    ok()
    try:
        bad()
    except Exception:  # each library raises its own error type
        return
    raise SystemExit(f"{contestant.name} accepted a tampered body: not a fair contestant")


def calibrate(run: Callable[[], object], seconds: float) -> int:
    """Iterations that take about ``seconds``."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 10:
            return max(1, int(n * seconds / elapsed))
        n *= 2


#: Each measured batch is split into this many slices; the batch's rate is its best slice.
SLICES = 5


def measure(run: Callable[[], object], n: int, warmup: int) -> float:
    """Ops/s of ``run``: the fastest of SLICES slices of ``n`` calls (as timeit advises, the
    fastest slice is the one least disturbed by the rest of the machine)."""
    for _ in range(warmup):
        run()
    gc.collect()
    best = 0.0
    for _ in range(SLICES):
        start = time.perf_counter()
        for _ in range(n):
            run()
        best = max(best, n / (time.perf_counter() - start))
    return best


def bench(
    contestants: list[Contestant], rounds: int, batch: float, noise: float
) -> list[float | None]:
    """Run the rounds; return, per round, the CPU others used, in cores (None off Linux)."""
    for c in contestants:
        probe(c)
    sizes = {id(c): calibrate(c.prepare()[0], batch / SLICES) for c in contestants}
    shares: list[float | None] = []
    for number in range(rounds):
        # Rotate the start so no contestant is always first (or last) in a round.
        shift = number % len(contestants)
        order = contestants[shift:] + contestants[:shift]
        busy_before = busy_seconds()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for c in order:
            n = sizes[id(c)]
            c.rates.append(measure(c.prepare()[0], n, max(1, n // 20)))
        busy_after = busy_seconds()
        wall = time.perf_counter() - wall_before
        ours = time.process_time() - cpu_before
        share = None
        if busy_before is not None and busy_after is not None:
            # Busy CPU time that was not ours: something else ran meanwhile.
            share = max(0.0, (busy_after - busy_before) - ours) / wall
        shares.append(share)
        quiet = share is None or share <= noise
        for c in contestants:
            c.quiet.append(quiet)
        note = "" if share is None else f", other processes used {share:.1%} of a core"
        print(f"  round {number + 1}/{rounds}{note}", file=sys.stderr)
    return shares


def usable(c: Contestant) -> list[int]:
    """Indices of the quiet rounds, unless fewer than three are quiet (then all of them)."""
    quiet = [i for i, ok in enumerate(c.quiet) if ok]
    return quiet if len(quiet) >= 3 else list(range(len(c.quiet)))


def iqr_percent(values: list[float]) -> float:
    """Interquartile range relative to the median, in percent (robust to one bad batch)."""
    if len(values) < 2:
        return 0.0
    low, _, high = statistics.quantiles(values, n=4)
    return (high - low) / statistics.median(values) * 100


def report(contestants: list[Contestant]) -> None:
    print(
        f"{'group':<16} {'contestant':<40} {'median ops/s':>12} {'IQR':>6} "
        f"{'rounds':>6} {'rws/peer':>8} {'ratio IQR':>9}"
    )
    print("-" * 103)
    groups: dict[str, list[Contestant]] = {}
    for c in contestants:
        groups.setdefault(c.group, []).append(c)
    for group, members in groups.items():
        rws = next(c for c in members if c.is_rws)
        rounds = usable(rws)
        for c in members:
            rates = [c.rates[i] for i in rounds]
            ratio = ratio_iqr = ""
            if not c.is_rws:
                # Ratio taken inside each round, then the median: a round in which the whole
                # machine ran slow moves both contestants and cancels out.
                ratios = [rws.rates[i] / c.rates[i] for i in rounds]
                ratio = f"{statistics.median(ratios):.2f}"
                ratio_iqr = f"{iqr_percent(ratios):.0f}%"
            print(
                f"{group:<16} {c.name:<40} {statistics.median(rates):>12,.0f} "
                f"{iqr_percent(rates):>5.0f}% {len(rates):>6} {ratio:>8} {ratio_iqr:>9}"
            )
        print()


def profile(contestants: list[Contestant], seconds: float) -> None:
    for c in contestants:
        if not c.is_rws:
            continue
        run = c.prepare()[0]
        n = calibrate(run, seconds)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            run()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print(f"== cProfile: {c.group}: {c.name} ({n} calls), by own time")
        print("\n".join(out.getvalue().splitlines()[4:24]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="repetitions (>= 5 recommended)")
    parser.add_argument("--batch", type=float, default=0.2, help="seconds per measured batch")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 65536])
    parser.add_argument("--noise", type=float, default=0.05, help="max CPU share of others")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    parser.add_argument("--profile", action="store_true", help="cProfile each rws contestant")
    args = parser.parse_args()

    core = None if args.no_pin else pin()
    contestants: list[Contestant] = []
    for size in args.sizes:
        body = make_body(size)
        label = f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"
        contestants += stripe_contestants(body, label)
        contestants += standard_contestants(body, label)
        contestants += github_contestants(body, label)

    libs = ", ".join(
        f"{name} {version(name)}" for name in ("rws-webhook", "stripe", "standardwebhooks", "svix")
    )
    print(f"Python {platform.python_version()} on {platform.machine()}; {libs}")
    where = f"pinned to core {core}" if core is not None else "not pinned"
    print(
        f"{where} | {args.rounds} rounds, interleaved | batch ~{args.batch}s"
        f" | noise limit {args.noise:.0%}"
    )
    shares = bench(contestants, args.rounds, args.batch, args.noise)
    noisy = sum(1 for share in shares if share is not None and share > args.noise)
    measured = [share for share in shares if share is not None]
    worst = f", worst {max(measured):.1%}" if measured else ""
    print(f"noisy rounds left out of the medians: {noisy} of {len(shares)}{worst}\n")
    report(contestants)
    if args.profile:
        profile(contestants, args.batch)


if __name__ == "__main__":
    main()
