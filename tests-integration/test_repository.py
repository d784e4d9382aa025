"""Repository invariants that no single package's tests can see.

Each package is built, versioned and released on its own, so the rules that hold them together
(DESIGN.md: layout, the PEP 420 ``rws`` namespace, sibling version ranges, the dependency DAG,
one tox env per package) are checked here, across the whole tree, per package.
"""

from __future__ import annotations

import ast
import configparser
import functools
import itertools
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"
META_PACKAGE = "rws"

# DESIGN.md, "Dependency rules": the siblings each package depends on (its core dependencies).
DESIGN_SIBLINGS: dict[str, frozenset[str]] = {
    "rws-webhook": frozenset(),
    "rws-auth": frozenset(),
    "rws-http": frozenset(),
    "rws-proxy": frozenset({"rws-http", "rws-auth"}),
    "rws-orm": frozenset(),
    "rws-jobs": frozenset({"rws-orm"}),
    "rws-storage": frozenset(),
    "rws-mailer": frozenset(),
    "rws": frozenset(
        {
            "rws-webhook",
            "rws-auth",
            "rws-http",
            "rws-proxy",
            "rws-orm",
            "rws-jobs",
            "rws-storage",
            "rws-mailer",
        }
    ),
}

# DESIGN.md, "Dependency rules": the third-party core dependencies (extras are not listed here).
DESIGN_THIRD_PARTY: dict[str, frozenset[str]] = {
    "rws-webhook": frozenset(),
    "rws-auth": frozenset({"cryptography"}),
    "rws-http": frozenset({"h11", "h2", "wsproto"}),
    "rws-proxy": frozenset(),
    "rws-orm": frozenset({"aiosqlite"}),
    "rws-jobs": frozenset(),
    "rws-storage": frozenset({"httpx"}),
    "rws-mailer": frozenset({"aiosmtplib"}),
    "rws": frozenset(),
}

# Distribution name -> top-level import name, for the static import check. A distribution not
# listed here is assumed to import as its name with '-' -> '_'; add it here when it does not.
IMPORT_NAMES: dict[str, str] = {
    "cryptography": "cryptography",
    "h11": "h11",
    "h2": "h2",
    "wsproto": "wsproto",
    "aiosqlite": "aiosqlite",
    "httpx": "httpx",
    "aiosmtplib": "aiosmtplib",
    "aioquic": "aioquic",
    "jinja2": "jinja2",
    "redis": "redis",
    "opentelemetry-api": "opentelemetry",
    "asyncpg": "asyncpg",
    "aiomysql": "aiomysql",
    "bcrypt": "bcrypt",
    "pynacl": "nacl",
    "pyjwt": "jwt",
}

SIBLING_PINS = frozenset({"==", "===", "~="})


def _package_names() -> list[str]:
    """Every package directory, so a new one is checked without editing this file."""
    return sorted(
        path.name
        for path in PACKAGES_DIR.iterdir()
        if path.is_dir() and not path.name.startswith((".", "_"))
    )


PACKAGE_NAMES = _package_names()
per_package = pytest.mark.parametrize("name", PACKAGE_NAMES)


def module_name(name: str) -> str:
    """``rws-http`` -> ``http``; the meta-package ships only ``rws.cli``."""
    if name == META_PACKAGE:
        return "cli"
    return name.removeprefix("rws-").replace("-", "_")


@functools.cache
def pyproject(name: str) -> dict[str, Any]:
    """A package's parsed pyproject.toml, failing the test with a clear message if absent."""
    path = PACKAGES_DIR / name / "pyproject.toml"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} does not exist")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def core_requirements(name: str) -> list[Requirement]:
    """``[project] dependencies``."""
    return [Requirement(line) for line in pyproject(name)["project"].get("dependencies", [])]


def optional_requirements(name: str) -> dict[str, list[Requirement]]:
    """``[project.optional-dependencies]``, by extra."""
    extras = pyproject(name)["project"].get("optional-dependencies", {})
    return {extra: [Requirement(line) for line in lines] for extra, lines in extras.items()}


def siblings_in(requirements: Sequence[Requirement], own: str) -> set[str]:
    """The other repository packages named by some requirements."""
    names = {canonicalize_name(requirement.name) for requirement in requirements}
    return {name for name in names if name in PACKAGE_NAMES and name != own}


def git_files() -> list[str]:
    """Tracked files plus new ones not ignored: what a commit of the tree would hold."""
    output = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return output.splitlines()


# --------------------------------------------------------------------------------------------
# Layout


def test_every_designed_package_exists() -> None:
    assert set(PACKAGE_NAMES) == set(DESIGN_SIBLINGS), (
        "packages/ must hold exactly the packages of DESIGN.md's dependency table"
    )


@per_package
def test_package_layout(name: str) -> None:
    package = PACKAGES_DIR / name
    expected = [
        package / "pyproject.toml",
        package / "README.md",
        package / "CHANGELOG.md",
        package / "src" / "rws" / module_name(name) / "py.typed",
    ]
    missing = [str(path.relative_to(ROOT)) for path in expected if not path.is_file()]
    if not (package / "tests").is_dir():
        missing.append(str((package / "tests").relative_to(ROOT)) + "/")
    assert not missing, f"{name} is missing: {', '.join(missing)}"


@per_package
def test_distribution_name_matches_directory(name: str) -> None:
    declared = pyproject(name)["project"]["name"]
    assert canonicalize_name(declared) == name, (
        f"packages/{name} declares name {declared!r}; tags, dist/ and tox envs use the directory"
    )


def test_no_namespace_init_anywhere() -> None:
    offending = [path for path in git_files() if re.search(r"(^|/)src/rws/__init__\.pyi?$", path)]
    offending += [
        str(path.relative_to(ROOT))
        for pattern in ("packages/*/src/rws/__init__.py", "packages/*/src/rws/__init__.pyi")
        for path in ROOT.glob(pattern)
    ]
    assert not offending, (
        "rws is a PEP 420 namespace; no distribution may ship its __init__: "
        f"{sorted(set(offending))}"
    )


# --------------------------------------------------------------------------------------------
# Packaging configuration


def _keys_named(table: Mapping[str, Any], key: str, path: str = "") -> Iterator[str]:
    """Dotted paths of every ``key`` in a nested TOML table."""
    for name, value in table.items():
        here = f"{path}.{name}" if path else name
        if name == key:
            yield here
        if isinstance(value, Mapping):
            yield from _keys_named(value, key, here)


@per_package
def test_hatch_wheel_ships_only_its_namespace_portion(name: str) -> None:
    hatch = pyproject(name).get("tool", {}).get("hatch", {})
    wheel = hatch.get("build", {}).get("targets", {}).get("wheel", {})
    assert wheel.get("only-include") == [f"src/rws/{module_name(name)}"]
    assert wheel.get("sources") == ["src"]
    packages_keys = list(_keys_named(hatch, "packages", "tool.hatch"))
    assert not packages_keys, (
        f"{name} uses {packages_keys}: `packages =` ships a top-level package (STYLE.md)"
    )


@per_package
def test_sibling_requirements_are_compatible_ranges(name: str) -> None:
    requirements = core_requirements(name) + [
        requirement for extra in optional_requirements(name).values() for requirement in extra
    ]
    problems = []
    for requirement in requirements:
        sibling = canonicalize_name(requirement.name)
        if sibling not in PACKAGE_NAMES or sibling == name:
            continue
        operators = {specifier.operator for specifier in requirement.specifier}
        sibling_version = Version(pyproject(sibling)["project"]["version"])
        if requirement.url:
            problems.append(f"{requirement}: a URL, not a version range")
        if ">=" not in operators or "<" not in operators:
            problems.append(f"{requirement}: needs a '>=' lower and a '<' upper bound")
        if pins := operators & SIBLING_PINS:
            problems.append(f"{requirement}: uses {sorted(pins)}; siblings take ranges")
        if not requirement.specifier.contains(sibling_version, prereleases=True):
            problems.append(f"{requirement}: excludes {sibling}'s current {sibling_version}")
    assert not problems, "\n".join(problems)


_CHANGELOG_HEADING = re.compile(r"^##\s+\[(?P<version>[^\]]+)\](?P<rest>.*)$", re.MULTILINE)


@per_package
def test_version_is_top_changelog_entry(name: str) -> None:
    version = Version(pyproject(name)["project"]["version"])
    text = (PACKAGES_DIR / name / "CHANGELOG.md").read_text(encoding="utf-8")
    entries = [
        match
        for match in _CHANGELOG_HEADING.finditer(text)
        if match["version"].strip().lower() != "unreleased"
    ]
    assert entries, f"{name}: CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' entry"
    top = entries[0]
    try:
        top_version: Version | None = Version(top["version"])
    except InvalidVersion:
        top_version = None
    assert top_version == version, (
        f"{name}: version {version}, but CHANGELOG.md's top entry is [{top['version']}]"
    )
    assert re.fullmatch(r"\s+-\s+\d{4}-\d{2}-\d{2}\s*", top["rest"]), (
        f"{name}: CHANGELOG.md entry [{top['version']}] needs ' - YYYY-MM-DD'"
    )


# --------------------------------------------------------------------------------------------
# The dependency DAG


@per_package
def test_dependencies_follow_design_dag(name: str) -> None:
    assert name in DESIGN_SIBLINGS, f"{name} is not in DESIGN.md's dependency table"
    core = core_requirements(name)
    siblings = siblings_in(core, name)
    third_party = {canonicalize_name(r.name) for r in core} - siblings - {name}
    assert siblings == DESIGN_SIBLINGS[name], f"{name}: sibling dependencies"
    assert third_party == DESIGN_THIRD_PARTY[name], f"{name}: third-party dependencies"
    for extra, requirements in optional_requirements(name).items():
        extra_siblings = siblings_in(requirements, name)
        assert extra_siblings <= DESIGN_SIBLINGS[name], (
            f"{name}[{extra}] pulls in {sorted(extra_siblings - DESIGN_SIBLINGS[name])}, "
            "which DESIGN.md's DAG does not allow"
        )


# --------------------------------------------------------------------------------------------
# Static import check: a library never imports what it does not declare


@dataclass(frozen=True)
class Declared:
    """What a package may import: its own module, core dependencies, optional extras."""

    own: str
    core: frozenset[str]
    optional: frozenset[str]


def import_key(module: str) -> str:
    """``rws.http.server`` -> ``rws.http``; ``h2.connection`` -> ``h2``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "rws" and len(parts) > 1 else parts[0]


def import_name_of(requirement: Requirement) -> str:
    """The import key a requirement provides (siblings: ``rws.<mod>``)."""
    name = canonicalize_name(requirement.name)
    if name in PACKAGE_NAMES:
        return f"rws.{module_name(name)}"
    return IMPORT_NAMES.get(name, name.replace("-", "_"))


def declared_imports(name: str) -> Declared:
    """The import keys a package's pyproject allows."""
    return Declared(
        own=f"rws.{module_name(name)}",
        core=frozenset(import_name_of(r) for r in core_requirements(name)),
        optional=frozenset(
            import_name_of(r) for extra in optional_requirements(name).values() for r in extra
        ),
    )


# Where an import statement sits decides what it may import.
TOP_LEVEL, GUARDED, TYPING_ONLY = "module top level", "function or ImportError guard", "typing"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try | ast.TryStar) -> bool:
    names: list[ast.expr] = []
    for handler in node.handlers:
        if isinstance(handler.type, ast.Tuple):
            names.extend(handler.type.elts)
        elif handler.type is not None:
            names.append(handler.type)
    return any(
        isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names
    )


def _imports(
    nodes: Sequence[ast.AST], where: str
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with where it sits: top level, guarded, or typing-only."""
    guarded = TYPING_ONLY if where == TYPING_ONLY else GUARDED
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, where
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _imports(node.body, guarded)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.body, TYPING_ONLY)
            yield from _imports(node.orelse, where)
        elif isinstance(node, ast.Try | ast.TryStar) and _catches_import_error(node):
            yield from _imports(node.body, guarded)
            yield from _imports([*node.handlers, *node.orelse, *node.finalbody], where)
        elif isinstance(node, ast.ExceptHandler | ast.match_case):
            yield from _imports(node.body, where)
        else:
            children = [
                child
                for child in ast.iter_child_nodes(node)
                if isinstance(child, ast.stmt | ast.ExceptHandler | ast.match_case)
            ]
            yield from _imports(children, where)


def _keys_of(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The import keys one absolute import statement brings in."""
    if isinstance(node, ast.Import):
        return [import_key(alias.name) for alias in node.names]
    if node.level or node.module is None:
        return []  # relative: inside the package itself
    if node.module == "rws":
        return [f"rws.{alias.name}" for alias in node.names]
    return [import_key(node.module)]


def import_violations(source: str, filename: str, declared: Declared) -> list[str]:
    """Imports the package's declared dependencies do not cover.

    Top level: stdlib, the package itself, declared siblings and core dependencies. Inside a
    function or a ``try/except ImportError``: also the modules of declared extras. Under
    ``if TYPE_CHECKING:``: third-party modules are ignored, but a sibling must be declared.
    """
    allowed = {
        TOP_LEVEL: declared.core,
        GUARDED: declared.core | declared.optional,
        TYPING_ONLY: declared.core | declared.optional,
    }
    violations = []
    for node, where in _imports(ast.parse(source, filename).body, TOP_LEVEL):
        for key in _keys_of(node):
            if key in sys.stdlib_module_names or key == declared.own or key in allowed[where]:
                continue
            if where == TYPING_ONLY and not key.startswith("rws"):
                continue
            violations.append(
                f"{filename}:{node.lineno}: imports {key} at {where}, "
                "which the pyproject does not declare there (see IMPORT_NAMES if it does)"
            )
    return violations


def source_files(name: str) -> list[Path]:
    """Every module the package's wheel ships."""
    return sorted((PACKAGES_DIR / name / "src").rglob("*.py"))


@per_package
def test_imports_are_declared(name: str) -> None:
    declared = declared_imports(name)
    files = source_files(name)
    assert files, f"{name} has no Python source under src/"
    violations = [
        violation
        for path in files
        for violation in import_violations(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), declared
        )
    ]
    assert not violations, "\n".join(violations)


_DECLARED_EXAMPLE = Declared(
    own="rws.proxy",
    core=frozenset({"rws.http", "h11"}),
    optional=frozenset({"aioquic"}),
)


@pytest.mark.parametrize(
    "snippet",
    [
        "import requests",
        "from rws import orm",
        "from rws.auth import tokens",
        "import aioquic",  # an extra, at top level
        "import rws",
        "try:\n    import redis\nexcept ImportError:\n    redis = None",
        "def f():\n    import yaml",
        "class C:\n    import requests",
        "if True:\n    from django.conf import settings",
        "try:\n    pass\nexcept ImportError:\n    import simplejson",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rws.orm import Model",
    ],
)
def test_import_checker_flags_undeclared(snippet: str) -> None:
    assert import_violations(snippet, "example.py", _DECLARED_EXAMPLE)


@pytest.mark.parametrize(
    "snippet",
    [
        "import json, asyncio.streams\nfrom collections import abc",
        "from __future__ import annotations",
        "import h11\nfrom rws.http import web\nfrom rws import http",
        "from rws.proxy import config\nfrom . import routing\nfrom .config import Config",
        "def serve():\n    import aioquic.quic",
        "try:\n    import aioquic\nexcept (ImportError, OSError):\n    aioquic = None",
        "import typing\nif typing.TYPE_CHECKING:\n    from starlette.types import Scope",
    ],
)
def test_import_checker_accepts_declared(snippet: str) -> None:
    assert import_violations(snippet, "example.py", _DECLARED_EXAMPLE) == []


# --------------------------------------------------------------------------------------------
# tox: one env per package


def expand_braces(text: str) -> list[str]:
    """tox's generative names: ``{py311,py313}-{http,orm}`` -> four names."""
    parts = re.split(r"(\{[^{}]*\})", text.strip())
    choices = [
        [option.strip() for option in part[1:-1].split(",")] if part.startswith("{") else [part]
        for part in parts
    ]
    return ["".join(combination) for combination in itertools.product(*choices)]


def split_env_list(text: str) -> list[str]:
    """Env names from an envlist or label value: commas and newlines outside braces."""
    items = re.split(r",(?![^{]*\})|\n", text)
    return [name for item in items if item.strip() for name in expand_braces(item)]


def factor_lines(value: str, env: str) -> list[str]:
    """The lines of a tox setting that apply to an env (``http: ...`` only to http envs)."""
    factors = set(env.split("-"))
    lines = []
    for line in value.splitlines():
        match = re.match(r"^\s*(?P<cond>[\w!,.-]+):\s+(?P<rest>.*)$", line)
        if match is None:
            lines.append(line)
            continue
        alternatives = match["cond"].split(",")
        if any(
            all(f[1:] not in factors if f.startswith("!") else f in factors for f in alt.split("-"))
            for alt in alternatives
        ):
            lines.append(match["rest"])
    return lines


@functools.cache
def tox_config() -> configparser.ConfigParser:
    """tox.ini, read without interpolation (tox's ``{...}`` substitutions stay as text)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini", encoding="utf-8")
    return parser


def tox_section_for(env: str) -> configparser.SectionProxy | None:
    """The ``[testenv:...]`` section whose generative name covers an env."""
    for section in tox_config().sections():
        if section.startswith("testenv:") and env in expand_braces(section[len("testenv:") :]):
            return tox_config()[section]
    return None


@per_package
def test_tox_has_an_env_for_the_package(name: str) -> None:
    env = f"py311-{module_name(name)}"
    config = tox_config()
    assert env in split_env_list(config["tox"]["envlist"]), f"{env} is not in tox's envlist"
    labels = {
        label.strip(): envs
        for label, _, envs in (line.partition("=") for line in config["tox"]["labels"].splitlines())
    }
    assert env in split_env_list(labels.get("ci", "")), (
        f"{env} is not in the `ci` label that .ci/run runs"
    )
    section = tox_section_for(env)
    assert section is not None, f"no [testenv:...] section defines {env}"
    text = "\n".join(
        factor_lines(section.get("deps", ""), env) + factor_lines(section.get("commands", ""), env)
    )
    assert re.search(rf"packages/{re.escape(name)}(?![\w-])", text), (
        f"{env} neither installs nor tests packages/{name}"
    )
