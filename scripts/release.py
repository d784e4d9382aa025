"""Build, check and tag the rws packages whose version changed.

Every package under ``packages/`` is released on its own, by an annotated tag
``<name>-v<version>`` (DESIGN.md, "Versions and releases"). This script finds the packages whose
``[project] version`` is newer than their last tag, builds an sdist and a wheel for each, and
proves each one is publishable before anything is tagged:

* ``twine check --strict`` accepts both files;
* the wheel's METADATA names the same distribution and version as the pyproject;
* the wheel is a clean portion of the ``rws`` namespace: ``rws/<mod>/py.typed``, no
  ``rws/__init__.py``, nothing outside ``rws/<mod>/``;
* the version is the top entry of the package's CHANGELOG.md;
* the wheel installs into a fresh virtual environment, with its ``rws-*`` siblings taken from
  wheels built from this tree, and its module imports there; a package without third-party
  dependencies installs nothing but itself and its siblings.

``--dry-run`` (what CI runs) does all of that and creates no tag. Without it the script creates
the annotated tags locally; it never pushes and never uploads, it prints the commands to do so.

Exit status: 0 when every step passed (or nothing needed releasing), 1 when a step failed (the
message names the package and the step), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The meta-package ships only the ``rws`` umbrella command, as ``rws.cli``.
META_PACKAGE = "rws"

#: What a fresh ``venv`` with pip may hold before anything is installed into it.
BOOTSTRAP_DISTRIBUTIONS = frozenset({"pip", "setuptools", "wheel"})

#: ``## [1.2.3] - 2026-01-31`` headings of a Keep a Changelog file.
_CHANGELOG_HEADING = re.compile(r"^##\s+\[(?P<version>[^\]]+)\](?P<rest>.*)$", re.MULTILINE)
_CHANGELOG_DATE = re.compile(r"^\s+-\s+\d{4}-\d{2}-\d{2}\s*$")

#: How much of a failed command's output is repeated in the error message.
_OUTPUT_TAIL_LINES = 40


class ReleaseError(Exception):
    """A release step failed; carries the package and step so the message says where."""

    def __init__(self, package: str, step: str, message: str) -> None:
        super().__init__(f"[{package}] {step}: {message}")
        self.package = package
        self.step = step
        self.message = message


class CheckError(Exception):
    """A check found a defect; `step` turns it into a ReleaseError naming package and step."""


@dataclass(frozen=True)
class Package:
    """One distribution under packages/, as its pyproject.toml declares it."""

    name: str
    version: Version
    path: Path
    requires: tuple[Requirement, ...]
    optional_requires: tuple[Requirement, ...]

    @property
    def module(self) -> str:
        """The import name: ``rws-http`` -> ``rws.http``; the meta-package ships ``rws.cli``."""
        if self.name == META_PACKAGE:
            return "rws.cli"
        return "rws." + self.name.removeprefix("rws-").replace("-", "_")

    @property
    def tag(self) -> str:
        """The tag that releases this version (DESIGN.md: ``<package>-v<version>``)."""
        return f"{self.name}-v{self.version}"


@dataclass(frozen=True)
class Decision:
    """Whether a package is released in this run, and why (printed for the CI log)."""

    package: Package
    last_tag: Version | None
    tagged: bool
    release: bool
    reason: str


@dataclass(frozen=True)
class Artifacts:
    """The two files `python -m build` made for one package."""

    wheel: Path
    sdist: Path


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the options; the defaults release what changed, into ``<repo>/dist``."""
    parser = argparse.ArgumentParser(
        prog="release.py",
        description="Build, check and tag every rws package whose version is untagged.",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="build and check everything, create no tags (what CI runs)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="build and check every package, whether or not its version is tagged",
    )
    parser.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="NAME",
        help="only consider this package (repeatable)",
    )
    parser.add_argument(
        "--dist-dir",
        type=Path,
        default=None,
        help="where dist/<name>/ directories go (default: <repo>/dist)",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO_ROOT,
        help="repository root (default: the one holding this script)",
    )
    return parser.parse_args(argv)


# --------------------------------------------------------------------------------------------
# Progress and subprocesses


def say(message: str) -> None:
    """Print a progress line at once: a run takes minutes and CI logs should show where."""
    print(message, flush=True)


@contextmanager
def failing_as(package: str, name: str) -> Iterator[None]:
    """Turn any failure inside into a ReleaseError that names the package and the step."""
    try:
        yield
    except CheckError as exc:
        raise ReleaseError(package, name, str(exc)) from exc
    except (OSError, ValueError) as exc:  # unreadable files, unparsable output or versions
        raise ReleaseError(package, name, f"{type(exc).__name__}: {exc}") from exc
    except subprocess.CalledProcessError as exc:
        raise ReleaseError(package, name, describe_failure(exc.cmd, exc.output)) from exc


@contextmanager
def step(package: str, name: str) -> Iterator[None]:
    """Announce a long step and its duration, so a slow run shows where it is."""
    print(f"[{package}] {name} ... ", end="", flush=True)
    started = time.monotonic()
    try:
        with failing_as(package, name):
            yield
    except ReleaseError:
        say("FAILED")
        raise
    say(f"ok ({time.monotonic() - started:.1f}s)")


def describe_failure(cmd: object, output: object) -> str:
    """Name the command and show the end of its output: that is where the reason usually is."""
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    lines = str(output or "").rstrip().splitlines()[-_OUTPUT_TAIL_LINES:]
    command = shlex.join(map(str, cmd)) if isinstance(cmd, list | tuple) else str(cmd)
    return f"command failed: {command}\n" + "\n".join("    " + line for line in lines)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    parse_stdout: bool = False,
) -> str:
    """Run a command and return its output; raise CheckError with that output if it fails.

    Output is captured rather than streamed so that a successful step prints one line and a
    failed one prints exactly the output that explains it. stderr is merged into the returned
    text (in order, for diagnostics) unless the caller parses stdout, where warnings on stderr
    must not get in the way.
    """
    args = [str(part) for part in cmd]
    completed = subprocess.run(
        args,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if parse_stdout else subprocess.STDOUT,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise CheckError(describe_failure(args, completed.stdout + (completed.stderr or "")))
    return completed.stdout


# --------------------------------------------------------------------------------------------
# Discovering packages


def discover_packages(repo: Path) -> dict[str, Package]:
    """Read every package directory under packages/, so a new package needs no script change."""
    root = repo / "packages"
    if not root.is_dir():
        raise ReleaseError("repository", "discover packages", f"{root} is not a directory")
    packages: dict[str, Package] = {}
    for directory in sorted(root.iterdir()):
        if not directory.is_dir() or directory.name.startswith((".", "_")):
            continue
        package = read_package(directory)
        packages[package.name] = package
    if not packages:
        raise ReleaseError("repository", "discover packages", f"no packages under {root}")
    return packages


def read_package(directory: Path) -> Package:
    """Parse one pyproject.toml; its name must be its directory's, as tags and tox rely on it."""
    label = f"packages/{directory.name}"
    with failing_as(label, "read pyproject.toml"):
        pyproject = directory / "pyproject.toml"
        if not pyproject.is_file():
            raise CheckError(f"{pyproject} does not exist")
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise CheckError(f"{pyproject} is not valid TOML: {exc}") from exc
        name = canonicalize_name(str(project.get("name", "")))
        if name != directory.name:
            raise CheckError(
                f"[project] name is {project.get('name')!r}; it must equal the directory name "
                f"{directory.name!r} (tags, dist/ and tox envs are named after it)"
            )
        if "version" not in project:
            raise CheckError("[project] version is missing (a static version is required)")
        try:
            version = Version(str(project["version"]))
        except InvalidVersion as exc:
            raise CheckError(f"[project] version: {exc}") from exc
        optional = project.get("optional-dependencies", {})
        return Package(
            name=name,
            version=version,
            path=directory,
            requires=parse_requirements(project.get("dependencies", [])),
            optional_requires=parse_requirements(
                requirement for extra in optional.values() for requirement in extra
            ),
        )


def parse_requirements(lines: Iterable[str]) -> tuple[Requirement, ...]:
    """Parse PEP 508 strings, saying which one is malformed if any is."""
    requirements = []
    for line in lines:
        try:
            requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            raise CheckError(f"invalid requirement {line!r}: {exc}") from exc
    return tuple(requirements)


def sibling_deps(
    package: Package, packages: Mapping[str, Package], *, optional: bool = False
) -> set[str]:
    """Names of the other packages under packages/ that this one declares it needs."""
    requirements = package.requires + (package.optional_requires if optional else ())
    names = {canonicalize_name(requirement.name) for requirement in requirements}
    return {name for name in names if name in packages and name != package.name}


def sibling_closure(package: Package, packages: Mapping[str, Package]) -> set[str]:
    """Every sibling a plain ``pip install`` of the package pulls in, directly or not."""
    seen: set[str] = set()
    pending = sibling_deps(package, packages)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending |= sibling_deps(packages[name], packages)
    return seen


def has_third_party_deps(package: Package, packages: Mapping[str, Package]) -> bool:
    """Whether a plain install of the package needs anything from outside this repository."""
    return any(
        canonicalize_name(requirement.name) not in packages
        and (requirement.marker is None or requirement.marker.evaluate())
        for requirement in package.requires
    )


def topological_order(names: Iterable[str], packages: Mapping[str, Package]) -> list[str]:
    """Order packages so that each comes after its siblings: their wheels must exist first."""
    wanted = set(names)
    deps = {name: sibling_deps(packages[name], packages, optional=True) & wanted for name in wanted}
    order: list[str] = []
    while deps:
        ready = sorted(name for name, needs in deps.items() if not needs - set(order))
        if not ready:
            cycle = ", ".join(sorted(deps))
            raise ReleaseError("repository", "order packages", f"dependency cycle among {cycle}")
        for name in ready:
            order.append(name)
            del deps[name]
    return order


# --------------------------------------------------------------------------------------------
# Tags and what to release


def tagged_versions(repo: Path, name: str) -> list[Version]:
    """Versions that tags ``<name>-v<version>`` release, ignoring other packages' tags.

    The glob ``<name>-v*`` also matches longer names (``rws-v*`` matches ``rws-vault-v1.0``), so
    a tag belongs to the package only if what follows ``<name>-v`` parses as a version.
    """
    with failing_as(name, "find tags"):
        output = run(["git", "-C", repo, "tag", "--list", f"{name}-v*"], parse_stdout=True)
    prefix = f"{name}-v"
    versions = []
    for tag in output.split():
        try:
            versions.append(Version(tag.removeprefix(prefix)))
        except InvalidVersion:
            continue
    return sorted(versions)


def decide(package: Package, tagged: Sequence[Version], *, force: bool) -> Decision:
    """Release a version that is untagged and newer than the last tag; a lower one is a mistake."""
    last = max(tagged, default=None)
    is_tagged = package.version in tagged
    if last is not None and package.version < last:
        raise ReleaseError(
            package.name,
            "compare with tags",
            f"version {package.version} is lower than the latest tag "
            f"{package.name}-v{last}; versions only go up (bump it above {last})",
        )
    if last is None:
        reason = "never tagged"
    elif is_tagged:
        reason = f"{package.tag} exists"
    else:
        reason = f"newer than {package.name}-v{last}"
    if force and is_tagged:
        reason += "; built because of --all, not tagged again"
    return Decision(package, last, is_tagged, force or not is_tagged, reason)


def plan(
    repo: Path, packages: Mapping[str, Package], only: Sequence[str], *, force: bool
) -> list[Decision]:
    """Decide for every considered package, reporting every version mistake, not just one."""
    errors: list[ReleaseError] = []
    decisions: list[Decision] = []
    for name in only or sorted(packages):
        try:
            decisions.append(decide(packages[name], tagged_versions(repo, name), force=force))
        except ReleaseError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        details = "\n".join(f"  {error}" for error in errors)
        raise ReleaseError("repository", "compare with tags", f"{len(errors)} packages:\n{details}")
    return decisions


def print_plan(decisions: Sequence[Decision]) -> None:
    """Show every package's version, last tag and the decision, before the long part starts."""
    say("Packages:")
    for decision in decisions:
        last = "-" if decision.last_tag is None else str(decision.last_tag)
        verdict = "release" if decision.release else "up to date"
        say(
            f"  {decision.package.name:<14} {decision.package.version!s:<10} "
            f"last tag {last:<10} {verdict:<10} ({decision.reason})"
        )


def check_clean_tree(repo: Path, package: Package) -> None:
    """Refuse to tag a package whose files differ from HEAD: the tag would not match the wheel."""
    with step(package.name, "check working tree is clean"):
        relative = package.path.resolve().relative_to(repo.resolve())
        status = run(
            ["git", "-C", repo, "status", "--porcelain", "--", relative], parse_stdout=True
        ).strip()
        if status:
            raise CheckError(
                f"uncommitted changes under {relative}; commit them before tagging:\n{status}"
            )


# --------------------------------------------------------------------------------------------
# Building and checking artifacts


def check_tools() -> None:
    """Fail in a second, not after minutes of building, when build or twine is missing."""
    with failing_as("environment", "find build tools"):
        missing = [name for name in ("build", "twine") if importlib.util.find_spec(name) is None]
        if missing:
            raise CheckError(
                f"{', '.join(missing)} not installed for {sys.executable}; "
                "run `tox -e release` or `python -m pip install build twine`"
            )


def build(package: Package, out_dir: Path) -> Artifacts:
    """Build sdist and wheel with the pyproject's own backend, into a directory of their own."""
    with step(package.name, "build sdist and wheel"):
        if out_dir.exists():
            shutil.rmtree(out_dir)  # stale files would be uploaded or found by --find-links
        out_dir.mkdir(parents=True)
        run(
            [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out_dir, package.path]
        )
        return Artifacts(wheel=only_file(out_dir, "*.whl"), sdist=only_file(out_dir, "*.tar.gz"))


def only_file(directory: Path, pattern: str) -> Path:
    """The single file matching a pattern; two would mean the build is not what we think."""
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise CheckError(f"expected one {pattern} in {directory}, found {len(found)}")
    return found[0]


def twine_check(package: Package, artifacts: Artifacts) -> None:
    """PyPI rejects what twine rejects; find out before the upload, not during it."""
    with step(package.name, "twine check --strict"):
        run(
            [
                sys.executable,
                "-m",
                "twine",
                "check",
                "--strict",
                artifacts.sdist,
                artifacts.wheel,
            ]
        )


def check_wheel_metadata(package: Package, wheel: Path) -> None:
    """The wheel must say the name and version the pyproject says (a stale build would not)."""
    with step(package.name, "check wheel metadata"), zipfile.ZipFile(wheel) as archive:
        metadata_files = [
            name for name in archive.namelist() if name.endswith(".dist-info/METADATA")
        ]
        if len(metadata_files) != 1:
            raise CheckError(f"expected one .dist-info/METADATA in {wheel.name}")
        metadata = email.parser.HeaderParser().parsestr(
            archive.read(metadata_files[0]).decode("utf-8")
        )
        name, version = metadata.get("Name", ""), metadata.get("Version", "")
        if canonicalize_name(name) != package.name:
            raise CheckError(f"METADATA Name is {name!r}, pyproject says {package.name!r}")
        if Version(version) != package.version:
            raise CheckError(f"METADATA Version is {version!r}, pyproject says {package.version}")


def wheel_layout_problems(names: Iterable[str], module: str) -> list[str]:
    """What makes a wheel a bad portion of the ``rws`` namespace (DESIGN.md, Layout)."""
    listed = list(names)
    portion = module.replace(".", "/") + "/"
    namespace_inits = {"rws/__init__.py", "rws/__init__.pyi"}
    problems = [
        f"ships {name}: the rws namespace must have no __init__ (PEP 420)"
        for name in listed
        if name in namespace_inits
    ]
    if portion + "py.typed" not in listed:
        problems.append(f"does not ship {portion}py.typed")
    stray = [
        name
        for name in listed
        if not name.startswith(portion)
        and not name.split("/", 1)[0].endswith((".dist-info", ".data"))
        and name not in namespace_inits
    ]
    if stray:
        problems.append(f"ships files outside {portion}: {', '.join(sorted(stray)[:10])}")
    return problems


def check_wheel_layout(package: Package, wheel: Path) -> None:
    """A wheel with rws/__init__.py would hide every other rws-* package once installed."""
    with step(package.name, "check wheel contents"), zipfile.ZipFile(wheel) as archive:
        problems = wheel_layout_problems(archive.namelist(), package.module)
        if problems:
            raise CheckError(f"{wheel.name}: " + "; ".join(problems))


def changelog_top_entry(text: str) -> tuple[str, str]:
    """The first released ``## [version] rest`` heading; an ``[Unreleased]`` one is skipped."""
    for match in _CHANGELOG_HEADING.finditer(text):
        if match["version"].strip().lower() != "unreleased":
            return match["version"].strip(), match["rest"]
    raise CheckError("CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' entry")


def check_changelog(package: Package) -> None:
    """Releasing a version the changelog does not describe leaves users guessing what changed."""
    with step(package.name, "check CHANGELOG.md"):
        text = (package.path / "CHANGELOG.md").read_text(encoding="utf-8")
        version, rest = changelog_top_entry(text)
        try:
            same = Version(version) == package.version
        except InvalidVersion:
            same = False
        if not same:
            raise CheckError(
                f"top entry is [{version}], pyproject version is {package.version}; "
                f"add '## [{package.version}] - YYYY-MM-DD' above it"
            )
        if not _CHANGELOG_DATE.match(rest):
            raise CheckError(f"entry [{version}] has no ' - YYYY-MM-DD' release date")


# --------------------------------------------------------------------------------------------
# Installing into a fresh environment


def venv_python(env_dir: Path) -> Path:
    """The interpreter of a venv, wherever the platform puts it."""
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def clean_environment() -> dict[str, str]:
    """This process's environment minus what would leak the dev setup into the fresh venv."""
    leaking = {
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "VIRTUAL_ENV",
        "PIP_REQUIRE_VIRTUALENV",
    }
    return {key: value for key, value in os.environ.items() if key not in leaking}


def make_venv(package: Package, env_dir: Path) -> Path:
    """A venv with only pip in it, so the install proves what the wheel itself pulls in."""
    with step(package.name, "create fresh venv"):
        venv.EnvBuilder(with_pip=True, clear=True, symlinks=os.name != "nt").create(env_dir)
        return venv_python(env_dir)


def pip_install(package: Package, python: Path, wheel: Path, find_links: Sequence[Path]) -> None:
    """Install the wheel as a user would, siblings resolved from the wheels built in this run."""
    links = [arg for directory in find_links for arg in ("--find-links", str(directory))]
    with step(package.name, "pip install wheel into fresh venv"):
        run(
            [
                python,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
                *links,
                wheel,
            ],
            cwd=python.parent,
            env=clean_environment(),
        )


_IMPORT_PROBE = (
    "import importlib, json, sys; m = importlib.import_module(sys.argv[1]); "
    "print(json.dumps([m.__file__, getattr(sys.modules['rws'], '__file__', None)]))"
)


def check_import(package: Package, python: Path, env_dir: Path) -> None:
    """Import the module in isolated mode; it must come from the venv, as a namespace portion."""
    with step(package.name, f"import {package.module}"):
        output = run(
            [python, "-I", "-c", _IMPORT_PROBE, package.module],
            cwd=env_dir,
            env=clean_environment(),
            parse_stdout=True,
        )
        module_file, namespace_file = json.loads(output.strip().splitlines()[-1])
        if module_file is None or not Path(module_file).resolve().is_relative_to(env_dir.resolve()):
            raise CheckError(f"{package.module} was imported from {module_file}, not the venv")
        if namespace_file is not None:
            raise CheckError(f"'rws' is a regular package ({namespace_file}), not a namespace")


def installed_distributions(python: Path) -> dict[str, Version]:
    """What pip says the venv holds, by canonical name."""
    output = run(
        [python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        env=clean_environment(),
        parse_stdout=True,
    )
    return {
        canonicalize_name(entry["name"]): Version(entry["version"]) for entry in json.loads(output)
    }


def installed_set_problems(
    package: Package, packages: Mapping[str, Package], installed: Mapping[str, Version]
) -> list[str]:
    """Compare the venv with what the package declares.

    Exactly the package and its declared sibling closure must be installed, at the versions in
    this tree (a different one came from an index, not from this run's wheels). A package with
    no third-party dependencies must install nothing else at all: that is what "stdlib only"
    promises its users.
    """
    expected = {package.name} | sibling_closure(package, packages)
    problems = []
    siblings = {name: version for name, version in installed.items() if name in packages}
    if missing := expected - siblings.keys():
        problems.append(f"not installed: {', '.join(sorted(missing))}")
    if extra := siblings.keys() - expected:
        problems.append(f"undeclared siblings installed: {', '.join(sorted(extra))}")
    problems += [
        f"{name} {version} installed, this tree has {packages[name].version}"
        for name, version in sorted(siblings.items())
        if name in expected and version != packages[name].version
    ]
    if not any(has_third_party_deps(packages[name], packages) for name in expected):
        others = installed.keys() - expected - BOOTSTRAP_DISTRIBUTIONS
        if others:
            problems.append(
                f"declares no third-party dependency but installed: {', '.join(sorted(others))}"
            )
    return problems


def check_installed_set(package: Package, packages: Mapping[str, Package], python: Path) -> None:
    """An undeclared or surplus dependency shows up here, before users find it."""
    with step(package.name, "check installed distributions"):
        problems = installed_set_problems(package, packages, installed_distributions(python))
        if problems:
            raise CheckError("; ".join(problems))


def install_and_import(
    package: Package, packages: Mapping[str, Package], wheel: Path, find_links: Sequence[Path]
) -> None:
    """Run the install checks in a throwaway venv, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"release-{package.name}-") as tmp:
        env_dir = Path(tmp) / "venv"
        python = make_venv(package, env_dir)
        pip_install(package, python, wheel, find_links)
        check_import(package, python, env_dir)
        check_installed_set(package, packages, python)


# --------------------------------------------------------------------------------------------
# The pipeline


def release_package(
    package: Package, packages: Mapping[str, Package], dist_dir: Path, built: list[Path]
) -> Artifacts:
    """Every check one package must pass before it may be tagged, in order, cheapest first."""
    check_changelog(package)
    artifacts = build(package, dist_dir / package.name)
    built.append(artifacts.wheel.parent)
    twine_check(package, artifacts)
    check_wheel_metadata(package, artifacts.wheel)
    check_wheel_layout(package, artifacts.wheel)
    install_and_import(package, packages, artifacts.wheel, built)
    return artifacts


def build_sibling(package: Package, dist_dir: Path, built: list[Path]) -> None:
    """Build a sibling that is not being released, only so its dependents install from this tree."""
    say(f"[{package.name}] not released in this run; built only so dependents can install it")
    artifacts = build(package, dist_dir / package.name)
    built.append(artifacts.wheel.parent)


def tag_command(package: Package) -> list[str]:
    """The annotated tag that releases a package."""
    return ["git", "tag", "-a", package.tag, "-m", f"Release {package.name} {package.version}"]


def create_tag(repo: Path, package: Package) -> None:
    """Tag HEAD locally; pushing stays a human decision."""
    with step(package.name, f"create tag {package.tag}"):
        command = tag_command(package)
        run([command[0], "-C", str(repo), *command[1:]])


def relative_to_cwd(path: Path) -> str:
    """Shorter paths in the printed commands when the run happens from the repository."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def print_summary(
    repo: Path, tagging: Sequence[Package], artifacts: Sequence[Artifacts], *, dry_run: bool
) -> None:
    """Say what was made and the commands that finish the release."""
    say("")
    if not tagging:
        say("All checks passed. No new tags: every version checked is already tagged.")
        return
    if dry_run:
        say("All checks passed. Dry run: no tags created. Tags to create:")
    else:
        say("All checks passed. Created tags:")
    where = relative_to_cwd(repo)
    git = ["git"] if where == "." else ["git", "-C", where]
    for package in tagging:
        say("  " + shlex.join([*git, *tag_command(package)[1:]]))
    files = [relative_to_cwd(path) for item in artifacts for path in (item.wheel, item.sdist)]
    tags = [package.tag for package in tagging]
    say("Then push the tags and upload (this script does neither):")
    say("  " + shlex.join([*git, "push", "origin", *tags]))
    say("  " + shlex.join(["python", "-m", "twine", "upload", *files]))


def unknown_packages(packages: Mapping[str, Package], requested: Sequence[str]) -> list[str]:
    """--package names that match no directory under packages/."""
    return [name for name in requested if canonicalize_name(name) not in packages]


def build_and_check(
    chosen: Set[str], packages: Mapping[str, Package], dist_dir: Path
) -> dict[str, Artifacts]:
    """Release-check the chosen packages, siblings first; build unchosen siblings they need."""
    needed = set(chosen).union(*(sibling_closure(packages[name], packages) for name in chosen))
    built: list[Path] = []
    artifacts: dict[str, Artifacts] = {}
    for name in topological_order(needed, packages):
        if name in chosen:
            artifacts[name] = release_package(packages[name], packages, dist_dir, built)
        else:
            build_sibling(packages[name], dist_dir, built)
    return artifacts


def execute(args: argparse.Namespace) -> int:
    """Plan, build and check, then tag: each phase only once the previous one fully passed."""
    repo: Path = args.repo.resolve()
    dist_dir: Path = (args.dist_dir or repo / "dist").resolve()
    packages = discover_packages(repo)
    if unknown := unknown_packages(packages, args.package):
        print(
            f"release: error: unknown package {', '.join(unknown)} "
            f"(packages: {', '.join(sorted(packages))})",
            file=sys.stderr,
        )
        return 2
    only = [canonicalize_name(name) for name in args.package]
    decisions = plan(repo, packages, only, force=args.all)
    print_plan(decisions)
    chosen = {decision.package.name: decision for decision in decisions if decision.release}
    if not chosen:
        say("Nothing to release: every package's version is already tagged.")
        return 0
    to_tag = [packages[name] for name, decision in sorted(chosen.items()) if not decision.tagged]
    check_tools()
    if not args.dry_run:
        for package in to_tag:
            check_clean_tree(repo, package)
    artifacts = build_and_check(chosen.keys(), packages, dist_dir)
    if not args.dry_run:
        for package in to_tag:
            create_tag(repo, package)
    print_summary(repo, to_tag, [artifacts[p.name] for p in to_tag], dry_run=args.dry_run)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the release and turn a failed step into a one-paragraph error."""
    args = parse_args(argv)
    try:
        return execute(args)
    except ReleaseError as exc:
        print(f"release: FAILED {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
