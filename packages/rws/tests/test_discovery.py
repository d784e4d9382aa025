"""Discovery and loading of ``rws.commands`` entry points, in process (fast)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping

import pytest

from rws.cli.discovery import (
    GROUP,
    UNKNOWN_PROVIDER,
    Broken,
    Loaded,
    Provider,
    describe_error,
    discover,
    load,
    summary_of,
)

MakeEntryPoints = Callable[[str, str, Mapping[str, str]], list[importlib.metadata.EntryPoint]]
WriteModule = Callable[[str, str], None]

OK_MODULE = '''\
"""Module summary line.

More module text.
"""


def documented(argv):
    """Function summary line.

    Details that --help does not show.
    """
    return 0


def undocumented(argv):
    return 0
'''


def test_discover_sorts_names_and_records_providers(make_entry_points: MakeEntryPoints) -> None:
    eps = make_entry_points("rws-b", "2.0", {"zeta": "b:main"}) + make_entry_points(
        "rws-a", "1.0", {"alpha": "a:main", "mid": "a:mid"}
    )
    catalog = discover(eps)
    assert list(catalog.commands) == ["alpha", "mid", "zeta"]
    assert catalog.names() == ["alpha", "mid", "zeta"]
    assert catalog.conflicts == {}
    assert catalog.commands["alpha"].provider == Provider("rws-a", "1.0")
    assert catalog.commands["alpha"].target == "a:main"
    assert catalog.providers() == {
        Provider("rws-a", "1.0"): ["alpha", "mid"],
        Provider("rws-b", "2.0"): ["zeta"],
    }


def test_discover_ignores_other_groups(make_entry_points: MakeEntryPoints) -> None:
    other = importlib.metadata.EntryPoint("serve", "x:main", "console_scripts")
    catalog = discover([*make_entry_points("rws-a", "1.0", {"a": "a:main"}), other])
    assert catalog.names() == ["a"]


def test_same_name_from_two_distributions_is_a_conflict(
    make_entry_points: MakeEntryPoints,
) -> None:
    eps = make_entry_points("rws-z", "1.0", {"dup": "z:main", "solo": "z:solo"})
    eps += make_entry_points("rws-y", "3.1", {"dup": "y:main"})
    catalog = discover(eps)
    assert list(catalog.commands) == ["solo"]
    conflict = catalog.conflicts["dup"]
    assert conflict.providers == (Provider("rws-y", "3.1"), Provider("rws-z", "1.0"))
    assert [c.target for c in conflict.commands] == ["y:main", "z:main"]
    assert catalog.names() == ["dup", "solo"]
    # --version still reports both distributions, conflicting command included.
    assert catalog.providers() == {
        Provider("rws-y", "3.1"): ["dup"],
        Provider("rws-z", "1.0"): ["dup", "solo"],
    }


def test_entry_point_without_distribution_has_a_placeholder_provider() -> None:
    catalog = discover([importlib.metadata.EntryPoint("x", "x:main", GROUP)])
    assert catalog.commands["x"].provider == UNKNOWN_PROVIDER


def test_discover_defaults_to_the_installed_group(
    make_entry_points: MakeEntryPoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        asked.append(group)
        return make_entry_points("rws-a", "1.0", {"a": "a:main"})

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert discover().names() == ["a"]
    assert asked == [GROUP]


def test_load_returns_callable_and_function_summary(
    make_entry_points: MakeEntryPoints, write_module: WriteModule
) -> None:
    write_module("plug_ok", OK_MODULE)
    catalog = discover(make_entry_points("rws-ok", "1.0", {"ok": "plug_ok:documented"}))
    result = load(catalog.commands["ok"])
    assert isinstance(result, Loaded)
    assert result.summary == "Function summary line."
    assert result.function(["x"]) == 0


def test_summary_falls_back_to_module_docstring(
    make_entry_points: MakeEntryPoints, write_module: WriteModule
) -> None:
    write_module("plug_ok", OK_MODULE)
    catalog = discover(make_entry_points("rws-ok", "1.0", {"ok": "plug_ok:undocumented"}))
    result = load(catalog.commands["ok"])
    assert isinstance(result, Loaded)
    assert result.summary == "Module summary line."


def test_summary_of_undocumented_everything_is_empty(write_module: WriteModule) -> None:
    write_module("plug_bare", "def main(argv):\n    return 0\n")
    import plug_bare  # type: ignore[import-not-found]

    assert summary_of(plug_bare.main) == ""


def test_summary_of_callable_object_uses_its_class_docstring() -> None:
    class Command:
        """Callable object summary.

        Body.
        """

        def __call__(self, argv: list[str]) -> int:
            return 0

    assert summary_of(Command()) == "Callable object summary."


@pytest.mark.parametrize(
    ("name", "source", "target", "error"),
    [
        pytest.param(
            "plug_missing_dep",
            "import rws_no_such_dependency\n",
            "plug_missing_dep:main",
            "ModuleNotFoundError: No module named 'rws_no_such_dependency'",
            id="missing-dependency",
        ),
        pytest.param(
            "plug_import_error",
            "raise ImportError('cannot import name thing from elsewhere')\n",
            "plug_import_error:main",
            "ImportError: cannot import name thing from elsewhere",
            id="import-error",
        ),
        pytest.param(
            "plug_runtime_error",
            "raise RuntimeError('boom at import\\nsecond line')\n",
            "plug_runtime_error:main",
            "RuntimeError: boom at import",
            id="other-exception-first-line-only",
        ),
        pytest.param(
            "plug_exits",
            "import sys\nsys.exit('needs a config file')\n",
            "plug_exits:main",
            "SystemExit: needs a config file",
            id="sys-exit-at-import",
        ),
        pytest.param(
            "plug_no_attr",
            "def other(argv):\n    return 0\n",
            "plug_no_attr:main",
            "AttributeError: module 'plug_no_attr' has no attribute 'main'",
            id="missing-attribute",
        ),
        pytest.param(
            "plug_not_callable",
            "main = 42\n",
            "plug_not_callable:main",
            "TypeError: 'plug_not_callable:main' is an object of type 'int', not a callable",
            id="not-callable",
        ),
        pytest.param(
            "plug_module",
            "x = 1\n",
            "plug_module",
            "TypeError: 'plug_module' is a module, not a callable",
            id="module-not-callable",
        ),
    ],
)
def test_load_reports_broken_plugins(
    make_entry_points: MakeEntryPoints,
    write_module: WriteModule,
    name: str,
    source: str,
    target: str,
    error: str,
) -> None:
    write_module(name, source)
    catalog = discover(make_entry_points("rws-broken", "0.3", {"b": target}))
    result = load(catalog.commands["b"])
    assert isinstance(result, Broken)
    assert result.error.startswith(error)
    assert result.fix == "pip install --force-reinstall rws-broken"


def test_describe_error_without_message() -> None:
    assert describe_error(ImportError()) == "ImportError"
