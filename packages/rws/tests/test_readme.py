"""The README's plugin example works as the README says (fast, in process).

The example's module and ``pyproject.toml`` are read out of README.md, registered as an
installed distribution would be, and run through ``rws``; the output must match the README's
console transcript, so the README cannot drift from the code.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from rws.cli.main import main

MakeEntryPoints = Callable[[str, str, Mapping[str, str]], list[importlib.metadata.EntryPoint]]
WriteModule = Callable[[str, str], None]

README = Path(__file__).resolve().parents[1] / "README.md"


def example_blocks() -> dict[str, list[str]]:
    """The fenced blocks after the README's ``### Example`` heading, by language."""
    example = README.read_text(encoding="utf-8").split("### Example", 1)[1]
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", example, flags=re.DOTALL):
        blocks.setdefault(language, []).append(body)
    return blocks


def transcript(console: str) -> dict[str, list[str]]:
    """``$ command`` lines of a console block mapped to the output lines that follow."""
    outputs: dict[str, list[str]] = {}
    current: list[str] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            current = outputs.setdefault(line[2:], [])
        else:
            current.append(line)
    return outputs


def test_readme_plugin_example(
    make_entry_points: MakeEntryPoints,
    write_module: WriteModule,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = example_blocks()
    (module_source,) = blocks["python"]
    (pyproject_text,) = blocks["toml"]
    (console,) = blocks["console"]
    pyproject = tomllib.loads(pyproject_text)
    commands = pyproject["project"]["entry-points"]["rws.commands"]
    assert commands == {"hello": "rws_hello:main"}
    write_module("rws_hello", module_source)
    eps = make_entry_points(pyproject["project"]["name"], pyproject["project"]["version"], commands)
    expected = transcript(console)

    assert main(["hello", "Ada"], entry_points=eps) == 0
    assert capsys.readouterr().out.splitlines() == expected["rws hello Ada"]

    assert main(["--help"], entry_points=eps) == 0
    help_lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    shown = [" ".join(line.split()) for line in expected["rws --help"] if line.strip() != "..."]
    for line in shown:
        assert line in help_lines
