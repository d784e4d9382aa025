"""``rws-http serve MODULE:ATTR``: the command line of the server.

Every setting of :class:`~rws.http.server.config.Config` is also a flag (``max_body_size`` is
``--max-body-size``), so the command line, ``RWS_HTTP_*`` variables and the TOML file all
speak the same names. Precedence: flags > environment > ``--config`` file > defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import difflib
import logging
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .app_loader import AppLoadError, load_app
from .config import Config, ConfigError, load_env, load_toml
from .listeners import open_listener, open_quic_sockets, parse_bind

logger = logging.getLogger("rws.http.error")

#: Flags with a dedicated spelling or behaviour; every other Config field is generated.
_SPECIAL = {"bind"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rws-http", description="The rws ASGI server.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve an ASGI application",
        description="Serve an ASGI application (module:attribute).",
    )
    serve.add_argument("app", help="the application, as module:attribute (e.g. main:app)")
    serve.add_argument("--config", metavar="FILE", help="TOML file of settings")
    serve.add_argument(
        "--factory", action="store_true", help="the attribute is a factory: call it to get the app"
    )
    serve.add_argument("--app-dir", default=".", help="directory to import the app from")
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart when a .py file under --app-dir changes (development; one worker)",
    )
    serve.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="ADDRESS",
        help="HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; repeatable",
    )
    hints = typing.get_type_hints(Config)
    group = serve.add_argument_group("settings (also RWS_HTTP_<NAME> and the --config file)")
    for field in dataclasses.fields(Config):
        if field.name in _SPECIAL:
            continue
        kind = hints[field.name]
        if kind is bool:
            group.add_argument(
                _flag(field.name),
                dest=field.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=f"(default: {field.default})",
            )
        else:
            group.add_argument(
                _flag(field.name),
                dest=field.name,
                default=None,
                metavar=field.name.upper(),
                help=f"(default: {field.default})",
            )
    return parser


def _settings(args: argparse.Namespace) -> Config:
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_toml(args.config))
    values.update(load_env(os.environ))
    flags = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Config)
        if field.name not in _SPECIAL and getattr(args, field.name) is not None
    }
    # Flags arrive as text (like environment variables): coerce them the same way.
    text_flags = {k: v for k, v in flags.items() if isinstance(v, str)}
    values.update(load_env({f"RWS_HTTP_{k.upper()}": v for k, v in text_flags.items()}))
    values.update({k: v for k, v in flags.items() if isinstance(v, bool)})
    if args.bind:
        values["bind"] = tuple(args.bind)
    return Config(**values)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_worker(sockets: list[Any], options: dict[str, Any]) -> None:
    """Entry point of one worker process (also used in-process with one worker)."""
    config: Config = options["config"]
    _configure_logging(config.log_level)
    try:
        app = load_app(options["app"], factory=options["factory"], app_dir=options["app_dir"])
    except AppLoadError as exc:
        logger.error("%s", exc)
        sys.exit(3)
    except Exception:
        logger.exception("cannot load the application %r: its module raised", options["app"])
        sys.exit(3)
    from .server import serve

    asyncio.run(serve(app, config, sockets=sockets, quic_sockets=options.get("quic_sockets")))


def _serve(args: argparse.Namespace) -> int:
    config = _settings(args)
    if args.reload and config.workers > 1:
        raise ConfigError(
            f"--reload runs one worker: it cannot be combined with workers={config.workers} "
            "(from --workers, RWS_HTTP_WORKERS or --config)"
        )
    _configure_logging(config.log_level)
    options = {"app": args.app, "factory": args.factory, "app_dir": args.app_dir, "config": config}
    # Fail fast, in the parent, on an app that cannot even be imported.
    try:
        load_app(args.app, factory=args.factory, app_dir=args.app_dir)
    except AppLoadError as exc:
        print(f"rws-http: {exc}", file=sys.stderr)
        return 3
    except Exception:
        # The app's own code failed (a SyntaxError, an exception at import): its traceback
        # is what the user needs. With --reload, wait for the fix instead of exiting.
        logger.exception("cannot load the application %r: its module raised", args.app)
        if not args.reload:
            return 3
    sockets = [open_listener(parse_bind(b), config.backlog) for b in config.bind]
    if args.reload:
        from .supervisor import Reloader

        return Reloader(
            run_worker,
            sockets,
            options,
            root=Path(args.app_dir).resolve(),
            stop_timeout=config.graceful_timeout + 5,
        ).run()
    if config.workers > 1:
        from .supervisor import Supervisor

        # HTTP/3: one SO_REUSEPORT UDP socket per worker and address, opened here so that
        # port 0 is one port for all and a restarted worker gets its slot's socket back.
        quic_sockets = None
        if config.quic_bind:
            quic_sockets = open_quic_sockets(config.quic_bind, config.workers)
        return Supervisor(
            run_worker,
            sockets,
            options,
            config.workers,
            stop_timeout=config.graceful_timeout + 5,
            quic_sockets=quic_sockets,
        ).run()
    run_worker(sockets, options)
    return 0


def _unknown_message(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """Name the first unknown option and the closest real one (``--max-body-sise``)."""
    options: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for sub_action in sub._actions:
                    options.extend(sub_action.option_strings)
    first = unknown[0]
    match = difflib.get_close_matches(first.split("=")[0], options, n=1)
    hint = f"; did you mean {match[0]}?" if match else ""
    return f"unrecognized arguments: {' '.join(unknown)}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run rws-http: the ASGI server for HTTP/1.1 and HTTP/2 (``serve MODULE:ATTR``)."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(_unknown_message(parser, unknown))
    try:
        return _serve(args)
    except ConfigError as exc:
        parser.error(str(exc))
    except OSError as exc:
        print(f"rws-http: {exc.strerror or exc}", file=sys.stderr)
        return 1


def serve_main(argv: Sequence[str] | None = None) -> int:
    """Serve an ASGI application with rws-http (rws serve MODULE:ATTR [options])."""
    return main(["serve", *(sys.argv[1:] if argv is None else argv)])
