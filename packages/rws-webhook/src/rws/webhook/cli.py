"""Verify or sign a webhook from files: ``rws-webhook verify|sign|schemes``.

Useful to check a captured delivery against a secret, to reproduce a provider's signature
while debugging, and to send signed test deliveries with curl. Secrets are read from a file
or an environment variable, never from the command line, where ``ps`` would show them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import WebhookConfigError, WebhookError
from .hmac_scheme import GitHub, HmacScheme, Shopify, Slack
from .scheme import Scheme
from .standard import StandardWebhooks
from .stripe import Stripe
from .twilio import Twilio

SCHEMES: dict[str, Callable[..., Scheme]] = {
    "github": GitHub,
    "stripe": Stripe,
    "shopify": Shopify,
    "slack": Slack,
    "standard": StandardWebhooks,
    "twilio": Twilio,
    "hmac": HmacScheme,
}

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def parse_headers(text: str) -> list[tuple[str, str]]:
    """``Name: value`` lines (as curl -D or a browser shows them) or a JSON object."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"headers file is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise UsageError("a JSON headers file must be an object of strings")
        return list(data.items())
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#") or line.startswith("HTTP/"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"headers line {number} is not 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _secrets(args: argparse.Namespace) -> list[str]:
    found: list[str] = []
    for path in args.secret_file or ():
        found.append(_read(path).decode().strip())
    for var in args.secret_env or ():
        value = os.environ.get(var)
        if not value:
            raise UsageError(f"environment variable {var} is not set")
        found.append(value)
    if not found:
        raise UsageError("give the secret with --secret-file FILE or --secret-env VAR")
    return found


def build_scheme(args: argparse.Namespace) -> Scheme:
    options: dict[str, Any] = {}
    if args.scheme in ("stripe", "slack", "standard") and args.tolerance is not None:
        options["tolerance"] = args.tolerance
    if args.scheme == "hmac":
        if not args.header:
            raise UsageError("--scheme hmac needs --header")
        options.update(
            header=args.header,
            algorithm=args.algorithm,
            encoding=args.encoding,
            prefix=args.prefix,
            signed_payload=args.signed_payload,
            timestamp_header=args.timestamp_header,
        )
        if args.tolerance is not None:
            options["tolerance"] = args.tolerance
    return SCHEMES[args.scheme](_secrets(args), **options)


def _verify(args: argparse.Namespace) -> int:
    scheme = build_scheme(args)
    body = _read(args.body)
    headers = parse_headers(_read(args.headers).decode("utf-8", "replace"))
    try:
        result = scheme.verify(body, headers, url=args.url, now=args.now)
    except WebhookError as exc:
        print(f"rejected: {exc.reason}: {exc.message}", file=sys.stderr)
        return EXIT_REJECTED
    details = [f"scheme={result.scheme}", f"key={result.key_index}"]
    if result.timestamp is not None:
        details.append(f"timestamp={result.timestamp}")
    if result.message_id is not None:
        details.append(f"id={result.message_id}")
    print("verified: " + " ".join(details))
    return EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    scheme = build_scheme(args)
    options: dict[str, Any] = {}
    if args.timestamp is not None:
        options["timestamp"] = args.timestamp
    if args.message_id is not None:
        options["message_id"] = args.message_id
    if args.url is not None:
        options["url"] = args.url
    headers = scheme.sign(_read(args.body), **options)
    for name, value in headers.items():
        print(f"{name}: {value}")
    return EXIT_OK


def _schemes(args: argparse.Namespace) -> int:
    for name, factory in SCHEMES.items():
        doc = (factory.__doc__ or "").strip().splitlines()[0].replace("``", "")
        print(f"{name:10} {doc}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rws-webhook", description="Verify or sign webhooks (GitHub, Stripe, ...)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--scheme", required=True, choices=sorted(SCHEMES))
        sub.add_argument(
            "--secret-file",
            action="append",
            metavar="FILE",
            help="file holding a secret; repeat for rotated secrets (first = current)",
        )
        sub.add_argument(
            "--secret-env",
            action="append",
            metavar="VAR",
            help="environment variable holding a secret; repeatable",
        )
        sub.add_argument("--body", required=True, metavar="FILE", help="raw body file, or -")
        sub.add_argument("--url", help="the URL the request was sent to (Twilio)")
        sub.add_argument("--tolerance", type=float, help="seconds of clock skew accepted")
        generic = sub.add_argument_group("--scheme hmac")
        generic.add_argument("--header", help="signature header name")
        generic.add_argument("--algorithm", default="sha256")
        generic.add_argument("--encoding", default="hex", choices=["hex", "base64", "base64url"])
        generic.add_argument("--prefix", default="")
        generic.add_argument("--signed-payload", default="{body}")
        generic.add_argument("--timestamp-header")

    verify = commands.add_parser("verify", help="verify a captured delivery (exit 0 or 1)")
    common(verify)
    verify.add_argument(
        "--headers", required=True, metavar="FILE", help="'Name: value' lines or a JSON object"
    )
    verify.add_argument("--now", type=float, help="check the timestamp as if now were this")
    verify.set_defaults(handler=_verify)

    sign = commands.add_parser("sign", help="print the headers that sign a body")
    common(sign)
    sign.add_argument("--timestamp", type=int)
    sign.add_argument("--message-id")
    sign.set_defaults(handler=_sign)

    schemes = commands.add_parser("schemes", help="list the supported schemes")
    schemes.set_defaults(handler=_schemes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Verify or sign webhooks (GitHub, Stripe, Shopify, Slack, Standard Webhooks, Twilio)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits with 2
    except WebhookConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code
