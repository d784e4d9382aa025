"""``rws``: parse the few options of the umbrella command and dispatch to a plugin.

``rws`` takes options only before the command name; everything after the name belongs to the
plugin and is passed through untouched, which is why this is a small hand-written loop and not
an ``argparse`` parser (that would claim ``--help`` and friends from the plugin's arguments).

Exit codes: the plugin's own code when a command runs; 0 for ``--help``, ``--version`` and
no arguments at all (which shows the help, as the quickest way to see what is installed);
1 when the command cannot run (it fails to import, or two distributions claim its name);
2 for usage errors (unknown command or option); 130 when a command is interrupted.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rws.cli import render
from rws.cli.discovery import Broken, Catalog, Loaded, discover, load

DISTRIBUTION = "rws"
"""The distribution shipping this command, whose version ``--version`` reports first."""

HELP_OPTIONS = frozenset({"-h", "--help"})
VERSION_OPTIONS = frozenset({"-V", "--version"})

EXIT_OK = 0
EXIT_CANNOT_RUN = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def own_version() -> str:
    """This distribution's installed version; running from a source tree has none."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def main(
    argv: list[str] | None = None,
    *,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> int:
    """Run ``rws [OPTIONS] COMMAND [ARGS...]`` and return its exit code.

    ``argv`` defaults to ``sys.argv[1:]``; ``entry_points`` defaults to the installed
    ``rws.commands`` ones (tests and embedding tools pass their own). Output goes to
    ``sys.stdout`` / ``sys.stderr`` as they are at call time.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    out, err = sys.stdout, sys.stderr
    catalog = discover(entry_points)

    if not args or args[0] in HELP_OPTIONS:
        out.write(render.render_help(catalog, load_all(catalog)))
        return EXIT_OK
    if args[0] in VERSION_OPTIONS:
        out.write(render.render_version(own_version(), catalog.providers()))
        return EXIT_OK
    if args[0].startswith("-"):
        err.write(render.render_unknown_option(args[0]))
        return EXIT_USAGE

    name, rest = args[0], args[1:]
    conflict = catalog.conflicts.get(name)
    if conflict is not None:
        err.write(render.render_conflict(conflict))
        return EXIT_CANNOT_RUN
    command = catalog.commands.get(name)
    if command is None:
        err.write(render.render_unknown(name, catalog))
        return EXIT_USAGE
    result = load(command)
    if isinstance(result, Broken):
        err.write(render.render_broken(result))
        return EXIT_CANNOT_RUN
    return call(result, rest, err)


def load_all(catalog: Catalog) -> dict[str, Loaded | Broken]:
    """Load every non-conflicting command: ``--help`` needs each one's docstring."""
    return {name: load(command) for name, command in catalog.commands.items()}


@contextmanager
def _plugin_argv(name: str, args: list[str]) -> Iterator[None]:
    """Make ``sys.argv`` read ``["rws NAME", *ARGS]`` while a plugin runs, then restore it.

    argparse (and most CLI libraries) derive the program name in usage lines from
    ``sys.argv[0]``; without this a plugin's ``--help`` would claim to be plain ``rws``, and
    a plugin that reads ``sys.argv`` itself would see its own name as its first argument.
    """
    saved = sys.argv
    sys.argv = [f"{render.PROG} {name}", *args]
    try:
        yield
    finally:
        sys.argv = saved


def call(loaded: Loaded, args: list[str], err: TextIO) -> int:
    """Call a plugin's ``main`` with its own arguments and turn the outcome into an exit code.

    ``SystemExit`` is translated the way the interpreter would (``None`` is 0, an int is
    itself, anything else is printed and is 1) so that ``main()`` always returns instead of
    exiting, which is what callers such as tests rely on.
    """
    command = loaded.command
    try:
        with _plugin_argv(command.name, args):
            result = loaded.function(list(args))
    except SystemExit as exit_:
        return _exit_code(exit_.code, err)
    except KeyboardInterrupt:
        err.write(f"{render.PROG} {command.name}: interrupted\n")
        return EXIT_INTERRUPTED
    if result is None:
        return EXIT_OK
    if isinstance(result, int):
        return int(result)
    err.write(render.render_bad_result(command.name, command.provider, result))
    return EXIT_CANNOT_RUN


def _exit_code(code: object, err: TextIO) -> int:
    """The exit status the interpreter would use for ``SystemExit(code)``."""
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return int(code)
    err.write(f"{code}\n")
    return EXIT_CANNOT_RUN
