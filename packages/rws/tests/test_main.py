"""``rws.cli.main.main`` in process (fast): dispatch, help, version and every error path.

Plugins here are real modules on disk registered through in-memory distributions; the slow
tests in ``test_venvs.py`` repeat the important paths with real installed wheels.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from rws.cli import render
from rws.cli.main import main

MakeEntryPoints = Callable[[str, str, Mapping[str, str]], list[importlib.metadata.EntryPoint]]
WriteModule = Callable[[str, str], None]
EntryPoints = list[importlib.metadata.EntryPoint]

GREET = '''\
"""Greeting commands."""

import json
import sys


def main(argv=None):
    """Print the arguments as JSON and exit 3.

    Second docstring line, not shown.
    """
    print(json.dumps({"argv": argv, "sys.argv": sys.argv}))
    return 3


def undocumented(argv=None):
    return 0
'''

BEHAVIOURS = '''\
"""Plugins that end in every way a plugin can."""

import argparse


def returns_none(argv):
    """Returns None."""


def exits(argv):
    """Raises SystemExit(int)."""
    raise SystemExit(int(argv[0]))


def exits_with_message(argv):
    """Raises SystemExit(str)."""
    raise SystemExit("fatal: no config")


def returns_string(argv):
    """Returns a str."""
    return "oops"


def interrupted(argv):
    """Raises KeyboardInterrupt."""
    raise KeyboardInterrupt


def crashes(argv):
    """Raises an ordinary exception."""
    raise ValueError("plugin bug")


def uses_argparse(argv):
    """Parses with argparse."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    print(args.name)
    return 0
'''


def listed(help_text: str) -> dict[str, str]:
    """The rows under ``commands:`` in ``rws --help``, keyed by command name."""
    block = help_text.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: " ".join(line.split()) for line in block.splitlines()}


@pytest.fixture
def greet(make_entry_points: MakeEntryPoints, write_module: WriteModule) -> EntryPoints:
    write_module("rws_test_greet", GREET)
    return make_entry_points(
        "rws-greet",
        "1.2.3",
        {"greet": "rws_test_greet:main", "bare": "rws_test_greet:undocumented"},
    )


@pytest.fixture
def behaviours(make_entry_points: MakeEntryPoints, write_module: WriteModule) -> EntryPoints:
    write_module("rws_test_behaviours", BEHAVIOURS)
    names = [
        "returns_none",
        "exits",
        "exits_with_message",
        "returns_string",
        "interrupted",
        "crashes",
        "uses_argparse",
    ]
    return make_entry_points(
        "rws-behaviours", "0.1", {n.replace("_", "-"): f"rws_test_behaviours:{n}" for n in names}
    )


@pytest.fixture
def broken(make_entry_points: MakeEntryPoints, write_module: WriteModule) -> EntryPoints:
    write_module("rws_test_broken", "import rws_test_missing_dependency\n")
    return make_entry_points("rws-broken", "0.9", {"boom": "rws_test_broken:main"})


@pytest.fixture
def conflicting(make_entry_points: MakeEntryPoints, write_module: WriteModule) -> EntryPoints:
    write_module("rws_test_dup_a", "def main(argv):\n    'A.'\n    return 0\n")
    write_module("rws_test_dup_b", "def main(argv):\n    'B.'\n    return 0\n")
    return make_entry_points("rws-dup-a", "1.0", {"greet": "rws_test_dup_a:main"}) + (
        make_entry_points("rws-dup-b", "2.0", {"greet": "rws_test_dup_b:main"})
    )


# --- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["-h"], []])
def test_help_lists_commands_sorted_with_summary_and_provider(
    greet: EntryPoints, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, entry_points=greet) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(render.USAGE + "\n")
    assert listed(out) == {
        "bare": "bare Greeting commands. rws-greet 1.2.3",
        "greet": "greet Print the arguments as JSON and exit 3. rws-greet 1.2.3",
    }
    assert list(listed(out)) == ["bare", "greet"]
    assert "problems:" not in out


def test_help_aligns_columns(greet: EntryPoints, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"], entry_points=greet)
    rows = capsys.readouterr().out.split("commands:\n")[1].split("\n\n")[0].splitlines()
    assert {row.index("rws-greet") for row in rows} == {len(rows[0]) - len("rws-greet 1.2.3")}
    assert rows[0].startswith("  bare   Greeting commands.")


def test_help_with_no_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"], entry_points=[]) == 0
    out = capsys.readouterr().out
    assert "(none: no installed distribution registers a 'rws.commands' entry point)" in out


def test_help_lists_broken_plugin_and_still_succeeds(
    greet: EntryPoints, broken: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--help"], entry_points=greet + broken) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = listed(out)
    assert list(rows) == ["bare", "boom", "greet"]
    assert rows["boom"] == (
        "boom [broken] ModuleNotFoundError: No module named 'rws_test_missing_dependency' "
        "rws-broken 0.9"
    )
    assert (
        "  boom: failed to load from rws-broken 0.9; "
        "try: pip install --force-reinstall rws-broken\n" in out
    )


def test_help_reports_conflict_naming_both_distributions(
    conflicting: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--help"], entry_points=conflicting) == 0
    out = capsys.readouterr().out
    assert listed(out) == {
        "greet": "greet [conflict] registered by more than one distribution "
        "rws-dup-a 1.0, rws-dup-b 2.0"
    }
    assert (
        "  greet: registered by rws-dup-a 1.0 (rws_test_dup_a:main) and "
        "rws-dup-b 2.0 (rws_test_dup_b:main); uninstall all but one of rws-dup-a, rws-dup-b\n"
    ) in out
    # Neither side of a conflict is imported: neither may be the one the user means.
    assert "rws_test_dup_a" not in sys.modules
    assert "rws_test_dup_b" not in sys.modules


# --- version ------------------------------------------------------------------------------


def test_version_lists_providers_without_importing_plugins(
    greet: EntryPoints, broken: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--version"], entry_points=greet + broken) == 0
    out = capsys.readouterr().out
    first, *rest = out.splitlines()
    # The rws distribution itself is not installed in this test env (the slow tests check
    # the installed version).
    assert first.startswith("rws (not installed) on Python ")
    assert rest == [
        "commands provided by:",
        "  rws-broken 0.9: boom",
        "  rws-greet 1.2.3: bare, greet",
    ]
    assert "rws_test_greet" not in sys.modules
    assert "rws_test_broken" not in sys.modules


def test_version_with_no_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-V"], entry_points=[]) == 0
    assert "no installed distribution registers a 'rws.commands'" in capsys.readouterr().out


# --- running a command --------------------------------------------------------------------


def test_command_gets_remaining_argv_and_its_exit_code_is_returned(
    greet: EntryPoints, broken: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    saved_argv = sys.argv
    assert main(["greet", "x", "--flag", "-h"], entry_points=greet + broken) == 3
    out = capsys.readouterr().out
    assert out.strip() == (
        '{"argv": ["x", "--flag", "-h"], "sys.argv": ["rws greet", "x", "--flag", "-h"]}'
    )
    assert sys.argv is saved_argv
    # Only the chosen command is imported: a broken neighbour does not matter.
    assert "rws_test_broken" not in sys.modules


@pytest.mark.parametrize(
    ("argv", "code", "stderr"),
    [
        (["returns-none"], 0, ""),
        (["exits", "0"], 0, ""),
        (["exits", "7"], 7, ""),
        (["exits-with-message"], 1, "fatal: no config\n"),
        (["interrupted"], 130, "rws interrupted: interrupted\n"),
        (
            ["returns-string"],
            1,
            "rws: command 'returns-string' from rws-behaviours 0.1 returned 'oops', "
            "not an int exit code; this is a bug in rws-behaviours\n",
        ),
    ],
)
def test_command_outcomes_become_exit_codes(
    behaviours: EntryPoints,
    argv: list[str],
    code: int,
    stderr: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(argv, entry_points=behaviours) == code
    assert capsys.readouterr().err == stderr


def test_plugin_exception_propagates_with_its_traceback(behaviours: EntryPoints) -> None:
    # A bug in a plugin is the plugin's to report; hiding its traceback would hide the bug.
    with pytest.raises(ValueError, match="plugin bug"):
        main(["crashes"], entry_points=behaviours)


def test_argparse_plugin_usage_names_the_subcommand(
    behaviours: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["uses-argparse", "--name", "Ada"], entry_points=behaviours) == 0
    assert capsys.readouterr().out == "Ada\n"
    assert main(["uses-argparse"], entry_points=behaviours) == 2
    assert capsys.readouterr().err.startswith("usage: rws uses-argparse [-h] --name NAME\n")
    assert main(["uses-argparse", "--help"], entry_points=behaviours) == 0


def test_running_broken_plugin_exits_1_and_suggests_reinstall(
    broken: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["boom", "arg"], entry_points=broken) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "rws: command 'boom' from rws-broken 0.9 failed to load (rws_test_broken:main): "
        "ModuleNotFoundError: No module named 'rws_test_missing_dependency'\n"
        "The distribution 'rws-broken' looks broken or incompatible; reinstall it with:\n"
        "    pip install --force-reinstall rws-broken\n"
    )


def test_running_conflicting_command_exits_1_naming_both(
    conflicting: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["greet"], entry_points=conflicting) == 1
    err = capsys.readouterr().err
    assert "rws-dup-a 1.0 (rws_test_dup_a:main) and rws-dup-b 2.0 (rws_test_dup_b:main)" in err
    assert "uninstall all but one of: rws-dup-a, rws-dup-b" in err
    assert "rws_test_dup_a" not in sys.modules


# --- usage errors -------------------------------------------------------------------------


def test_unknown_command_exits_2_with_closest_match_and_installed_list(
    greet: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gret", "x"], entry_points=greet) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "rws: unknown command 'gret'; did you mean 'greet'?\n"
        "installed commands: bare, greet\n"
        "Run 'rws --help' for what each command does.\n"
    )


def test_unknown_command_without_close_match(
    greet: EntryPoints, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"], entry_points=greet) == 2
    err = capsys.readouterr().err
    assert err.startswith("rws: unknown command 'migrate'\ninstalled commands: bare, greet\n")


def test_unknown_command_with_nothing_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook"], entry_points=[]) == 2
    assert "no commands are installed" in capsys.readouterr().err


def test_unknown_option_exits_2(greet: EntryPoints, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--verbose", "greet"], entry_points=greet) == 2
    err = capsys.readouterr().err
    assert err.startswith("rws: unknown option '--verbose'")
    assert render.USAGE in err


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("webhok", "webhook"),
        ("WEBHOOK", "webhook"),
        ("proxi", "proxy"),
        ("migrat", "migrate"),
        ("serve", None),
        ("x", None),
    ],
)
def test_closest(typed: str, expected: str | None) -> None:
    names = ["webhook", "proxy", "migrate", "worker"]
    assert render.closest(typed, names) == expected


def test_main_reads_sys_argv_by_default(
    greet: EntryPoints, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["rws", "greet", "a"])
    assert main(entry_points=greet) == 3
    assert '"argv": ["a"]' in capsys.readouterr().out


def test_python_dash_m_runs_the_command() -> None:
    # Nothing is installed here, so the listing is empty; the point is that -m dispatches.
    src = str(Path(__file__).resolve().parents[1] / "src")
    result = subprocess.run(
        [sys.executable, "-m", "rws.cli", "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src, "PYTHONNOUSERSITE": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(render.USAGE)
