"""Find the subcommands registered in the ``rws.commands`` entry-point group, and load one.

Discovery reads only installed metadata (no plugin code runs), so ``rws --version`` and
dispatching to one command stay fast and unaffected by other, possibly broken, plugins.
Loading imports one plugin and turns every way it can fail into a :class:`Broken` value,
because a plugin is third-party code: its failure must be reported, not crash ``rws``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias, cast

GROUP: Final = "rws.commands"
"""The entry-point group that plugins register their subcommands in."""

CommandMain: TypeAlias = Callable[[list[str]], object]
"""What a plugin's entry point loads: ``main(argv) -> int``.

Typed as returning ``object`` because it is third-party code: the caller checks the result
rather than trusting the contract.
"""


@dataclass(frozen=True, slots=True, order=True)
class Provider:
    """The distribution that registered an entry point: what messages tell users to fix."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


UNKNOWN_PROVIDER: Final = Provider("<unknown distribution>", "?")
"""Stands in for an entry point built by hand rather than read from installed metadata."""


@dataclass(frozen=True, slots=True)
class Command:
    """One registered subcommand, not yet imported."""

    name: str
    target: str
    """The entry point's value, ``module:attribute``, shown when names conflict."""
    provider: Provider
    entry_point: importlib.metadata.EntryPoint = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A subcommand name registered more than once; running either would be a guess."""

    name: str
    commands: tuple[Command, ...]

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(command.provider for command in self.commands)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every registered subcommand, split into usable names and conflicting ones."""

    commands: Mapping[str, Command]
    conflicts: Mapping[str, Conflict]

    def names(self) -> list[str]:
        """All registered names, sorted: what ``--help`` lists and typos are matched against."""
        return sorted({*self.commands, *self.conflicts})

    def providers(self) -> dict[Provider, list[str]]:
        """Each distribution that registers commands, with its command names, both sorted."""
        by_provider: dict[Provider, set[str]] = {}
        every = [*self.commands.values()]
        for conflict in self.conflicts.values():
            every.extend(conflict.commands)
        for command in every:
            by_provider.setdefault(command.provider, set()).add(command.name)
        return {provider: sorted(by_provider[provider]) for provider in sorted(by_provider)}


def provider_of(entry_point: importlib.metadata.EntryPoint) -> Provider:
    """The distribution behind an entry point, as users would type it into ``pip``."""
    dist = entry_point.dist
    if dist is None:
        return UNKNOWN_PROVIDER
    return Provider(dist.name, dist.version)


def discover(entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> Catalog:
    """Collect the ``rws.commands`` entry points without importing any plugin.

    ``entry_points`` defaults to the installed ones; tests and embedding tools pass their own.
    ``importlib.metadata`` already merges a distribution found twice on ``sys.path``, so two
    registrations of one name always come from two different distributions (or one
    distribution declaring a name twice): both are kept as a :class:`Conflict`.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    by_name: dict[str, list[Command]] = {}
    for entry_point in entry_points:
        if entry_point.group != GROUP:
            continue
        command = Command(
            name=entry_point.name,
            target=entry_point.value,
            provider=provider_of(entry_point),
            entry_point=entry_point,
        )
        by_name.setdefault(command.name, []).append(command)
    commands: dict[str, Command] = {}
    conflicts: dict[str, Conflict] = {}
    for name in sorted(by_name):
        found = by_name[name]
        if len(found) == 1:
            commands[name] = found[0]
        else:
            ordered = tuple(sorted(found, key=lambda c: (c.provider, c.target)))
            conflicts[name] = Conflict(name, ordered)
    return Catalog(commands=commands, conflicts=conflicts)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A command whose entry point imported and is callable."""

    command: Command
    function: CommandMain = field(repr=False)
    summary: str


@dataclass(frozen=True, slots=True)
class Broken:
    """A command whose entry point could not be loaded, and why."""

    command: Command
    error: str
    """``ExceptionType: first line of its message``: enough to act on, short enough to list."""

    @property
    def fix(self) -> str:
        """The usual cure: a half-installed or outdated distribution, so reinstall it."""
        return f"pip install --force-reinstall {self.command.provider.name}"


def describe_error(error: BaseException) -> str:
    """``Type: first line of message``, or just the type when the message is empty."""
    lines = str(error).strip().splitlines()
    kind = type(error).__name__
    return f"{kind}: {lines[0]}" if lines else kind


def load(command: Command) -> Loaded | Broken:
    """Import one command's entry point; report, rather than raise, any failure.

    ``SystemExit`` is caught as well: a module that calls ``sys.exit`` while importing (a
    missing optional dependency, say) must not end ``rws --help``.
    """
    try:
        target = command.entry_point.load()
    except (Exception, SystemExit) as error:
        return Broken(command, describe_error(error))
    if not callable(target):
        kind = (
            "a module"
            if inspect.ismodule(target)
            else f"an object of type {type(target).__name__!r}"
        )
        return Broken(command, f"TypeError: {command.target!r} is {kind}, not a callable")
    function = cast("CommandMain", target)
    return Loaded(command, function, summary_of(function))


def summary_of(function: object) -> str:
    """The first line of the callable's docstring, else of its module's, else ``""``.

    The module fallback lets a plugin whose ``main`` is undocumented (or generated) still
    describe itself, since its module docstring usually says what the command is for.
    """
    doc = inspect.getdoc(function)
    if not doc:
        module = sys.modules.get(getattr(function, "__module__", None) or "")
        doc = inspect.getdoc(module) if module is not None else None
    if not doc:
        return ""
    return doc.strip().splitlines()[0].strip()
