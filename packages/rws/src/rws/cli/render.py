"""The text ``rws`` prints: help, version and error messages.

Kept apart from dispatch and free of I/O so every message can be checked by a fast test, and
so that each failure message says what to do next, not just what went wrong.
"""

from __future__ import annotations

import difflib
import platform
from collections.abc import Iterable, Mapping

from rws.cli.discovery import GROUP, Broken, Catalog, Conflict, Loaded, Provider

PROG = "rws"
USAGE = f"usage: {PROG} [-h | --help] [-V | --version] COMMAND [ARGS...]"
DESCRIPTION = "Run a command provided by an installed rws package."

SUMMARY_WIDTH = 56
"""Summaries longer than this are not padded, so one long line cannot widen every row."""


def _table(rows: Iterable[tuple[str, str, str]]) -> list[str]:
    """Align ``(name, summary, provider)`` rows into three columns."""
    rows = list(rows)
    name_width = max(len(name) for name, _, _ in rows)
    summary_width = min(SUMMARY_WIDTH, max(len(summary) for _, summary, _ in rows))
    return [
        f"  {name:<{name_width}}  {summary:<{summary_width}}  {provider}".rstrip()
        for name, summary, provider in rows
    ]


def conflict_text(conflict: Conflict) -> str:
    """Every distribution registering the name, with what each points at."""
    return " and ".join(f"{c.provider} ({c.target})" for c in conflict.commands)


def render_help(catalog: Catalog, loaded: Mapping[str, Loaded | Broken]) -> str:
    """``rws --help``: every registered command, sorted, each with its summary and provider.

    ``loaded`` holds the load result of every non-conflicting command (conflicting ones are
    never imported, since neither may be the one the user means). Broken and conflicting
    commands stay in the list, flagged, so the listing always matches what is installed, and
    a "problems" section says how to fix each.
    """
    lines = [USAGE, "", DESCRIPTION, "", "commands:"]
    rows: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for name in catalog.names():
        conflict = catalog.conflicts.get(name)
        if conflict is not None:
            providers = ", ".join(str(p) for p in conflict.providers)
            rows.append((name, "[conflict] registered by more than one distribution", providers))
            problems.append(
                f"  {name}: registered by {conflict_text(conflict)}; "
                f"uninstall all but one of {', '.join(p.name for p in conflict.providers)}"
            )
            continue
        result = loaded[name]
        provider = str(result.command.provider)
        if isinstance(result, Broken):
            rows.append((name, f"[broken] {result.error}", provider))
            problems.append(f"  {name}: failed to load from {provider}; try: {result.fix}")
        else:
            rows.append((name, result.summary or "(no description)", provider))
    if rows:
        lines.extend(_table(rows))
    else:
        lines.append(f"  (none: no installed distribution registers a {GROUP!r} entry point)")
    if problems:
        lines.extend(["", "problems:", *problems])
    lines.extend(["", f"Run '{PROG} COMMAND --help' for the options of one command."])
    return "\n".join(lines) + "\n"


def render_version(own_version: str, providers: Mapping[Provider, list[str]]) -> str:
    """``rws --version``: this command's version, then each distribution providing commands.

    Bug reports need the plugin versions as much as this one's, and reading them needs only
    metadata, so no plugin is imported.
    """
    lines = [f"{PROG} {own_version} on Python {platform.python_version()}"]
    if providers:
        lines.append("commands provided by:")
        lines.extend(f"  {provider}: {', '.join(names)}" for provider, names in providers.items())
    else:
        lines.append(f"no installed distribution registers a {GROUP!r} entry point")
    return "\n".join(lines) + "\n"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (ignoring case), or ``None`` if none is close."""
    by_folded = {candidate.casefold(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.casefold(), list(by_folded), n=1)
    return by_folded[matches[0]] if matches else None


def render_unknown(name: str, catalog: Catalog) -> str:
    """Unknown command: the likely intended one, then everything that is installed."""
    names = catalog.names()
    lines = [f"{PROG}: unknown command {name!r}"]
    suggestion = closest(name, names)
    if suggestion is not None:
        lines[0] += f"; did you mean {suggestion!r}?"
    if names:
        lines.append(f"installed commands: {', '.join(names)}")
    else:
        lines.append(f"no commands are installed (no distribution registers {GROUP!r})")
    lines.append(f"Run '{PROG} --help' for what each command does.")
    return "\n".join(lines) + "\n"


def render_unknown_option(option: str) -> str:
    """An option before the command that ``rws`` itself does not take."""
    return (
        f"{PROG}: unknown option {option!r} (options after COMMAND go to that command)\n{USAGE}\n"
    )


def render_broken(broken: Broken) -> str:
    """Running a command that cannot be imported: who provides it and how to repair it."""
    command = broken.command
    return (
        f"{PROG}: command {command.name!r} from {command.provider} failed to load "
        f"({command.target}): {broken.error}\n"
        f"The distribution {command.provider.name!r} looks broken or incompatible; "
        f"reinstall it with:\n"
        f"    {broken.fix}\n"
    )


def render_conflict(conflict: Conflict) -> str:
    """Running a name two distributions claim: refuse, and say how to resolve it."""
    names = ", ".join(p.name for p in conflict.providers)
    return (
        f"{PROG}: command {conflict.name!r} is registered by more than one distribution: "
        f"{conflict_text(conflict)}\n"
        f"Refusing to guess which one to run; uninstall all but one of: {names}\n"
    )


def render_bad_result(name: str, provider: Provider, result: object) -> str:
    """A plugin that broke the contract by returning something other than an exit code."""
    return (
        f"{PROG}: command {name!r} from {provider} returned {result!r}, "
        f"not an int exit code; this is a bug in {provider.name}\n"
    )
