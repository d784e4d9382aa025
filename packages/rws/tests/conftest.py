"""Shared fixtures for the ``rws`` command's tests.

The tox env for these tests deliberately does not install the ``rws`` distribution: the slow
tests build and install it into fresh venvs themselves. The fast, in-process tests import
``rws.cli`` straight from ``src/``, so that directory is put on ``sys.path`` here. Nothing
else in that env provides the ``rws`` namespace, so there is nothing for it to shadow.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

GROUP = "rws.commands"

MakeEntryPoints = Callable[[str, str, Mapping[str, str]], list[importlib.metadata.EntryPoint]]
WriteModule = Callable[[str, str], None]


class MemoryDistribution(importlib.metadata.Distribution):
    """An installed-looking distribution whose metadata lives in memory.

    Its entry points carry a real ``dist`` (name and version), exactly as installed ones do,
    without writing a ``.dist-info`` or touching ``sys.path``.
    """

    def __init__(self, name: str, version: str, commands: Mapping[str, str]) -> None:
        entry_points = "".join(f"{command} = {target}\n" for command, target in commands.items())
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": f"[{GROUP}]\n{entry_points}",
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        return Path("/nonexistent") / path  # no files: nothing of it is ever opened


@pytest.fixture
def make_entry_points() -> MakeEntryPoints:
    """``make_entry_points(dist, version, {name: "module:attr"})`` → that dist's entry points."""

    def make(
        name: str, version: str, commands: Mapping[str, str]
    ) -> list[importlib.metadata.EntryPoint]:
        return list(MemoryDistribution(name, version, commands).entry_points)

    return make


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteModule]:
    """``write_module(name, source)`` writes an importable top-level module for a plugin.

    Modules are real files so that import errors are real import errors; each is dropped
    from ``sys.modules`` afterwards because the next test may reuse the name.
    """
    root = tmp_path / "plugin-modules"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    written: list[str] = []

    def write(name: str, source: str) -> None:
        (root / f"{name}.py").write_text(source, encoding="utf-8")
        importlib.invalidate_caches()  # the directory listing may be cached from a moment ago
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)
