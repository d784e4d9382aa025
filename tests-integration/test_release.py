"""Tests of scripts/release.py: what it selects, what it refuses, and one real release dry run.

The fast tests use throwaway git repositories in tmp_path, so tag selection is checked against
tags that do not exist in the real repository. The slow ones build real wheels (hatchling comes
from PyPI through build isolation) and install them into fresh virtual environments.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "release.py"


def _load_release_script() -> ModuleType:
    """Import scripts/release.py by path: scripts/ is not a package."""
    spec = importlib.util.spec_from_file_location("rws_release_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while being built
    spec.loader.exec_module(module)
    return module


release = _load_release_script()


# --------------------------------------------------------------------------------------------
# Throwaway repositories


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """Git identity and config of our own: tags must not depend on the user's ~/.gitconfig."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Release Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "release-test@example.invalid")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def write_package(repo: Path, name: str, version: str, deps: tuple[str, ...] = ()) -> Path:
    """A small but complete, buildable package in the repository's layout."""
    module = "cli" if name == "rws" else name.removeprefix("rws-")
    package = repo / "packages" / name
    source = package / "src" / "rws" / module
    source.mkdir(parents=True)
    (source / "__init__.py").write_text(f'"""rws.{module} (test package)."""\n')
    (source / "py.typed").write_text("")
    (package / "tests").mkdir()
    (package / "README.md").write_text(f"# {name}\n\nA package made by test_release.py.\n")
    (package / "CHANGELOG.md").write_text(
        f"# Changelog\n\n## [Unreleased]\n\n## [{version}] - 2026-01-01\n\n### Added\n- It.\n"
    )
    dependencies = ", ".join(f'"{dep}"' for dep in deps)
    (package / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling>=1.21"]
            build-backend = "hatchling.build"

            [project]
            name = "{name}"
            version = "{version}"
            description = "A package made by test_release.py."
            readme = "README.md"
            requires-python = ">=3.11"
            license = "MIT"
            dependencies = [{dependencies}]

            [tool.hatch.build.targets.wheel]
            only-include = ["src/rws/{module}"]
            sources = ["src"]
            """
        )
    )
    return package


def make_repo(tmp_path: Path, packages: dict[str, str], tags: tuple[str, ...] = ()) -> Path:
    """A git repository holding packages (name -> version), committed, with the given tags."""
    repo = tmp_path / "repo"
    for name, version in packages.items():
        write_package(repo, name, version)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    for tag in tags:
        git(repo, "tag", "-a", tag, "-m", tag)
    return repo


# --------------------------------------------------------------------------------------------
# Tag selection


def test_tags_of_longer_names_do_not_belong_to_a_prefix(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        {"rws": "0.1.0"},
        tags=(
            "rws-v0.1.0",
            "rws-http-v0.2.0",
            "rws-http-v0.10.0",
            "rws-vault-v0.9.0",  # matches the glob rws-v*, but is not a version of rws
            "rws-vnext",
        ),
    )
    assert release.tagged_versions(repo, "rws") == [Version("0.1.0")]
    assert release.tagged_versions(repo, "rws-http") == [Version("0.2.0"), Version("0.10.0")]
    assert release.tagged_versions(repo, "rws-orm") == []


def test_plan_releases_untagged_newer_versions_only(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        {"rws": "0.1.5", "rws-http": "0.2.0", "rws-orm": "0.0.1"},
        tags=("rws-v0.1.0", "rws-http-v0.2.0", "rws-http-v0.1.0"),
    )
    packages = release.discover_packages(repo)
    decisions = {d.package.name: d for d in release.plan(repo, packages, [], force=False)}
    # rws 0.1.5 is newer than rws-v0.1.0; rws-http-v0.2.0 must not count as a tag of rws.
    assert decisions["rws"].release
    assert decisions["rws"].last_tag == Version("0.1.0")
    assert not decisions["rws-http"].release
    assert decisions["rws-http"].tagged
    assert decisions["rws-orm"].release
    assert decisions["rws-orm"].last_tag is None


def test_all_forces_tagged_packages_without_tagging_them_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"rws-http": "0.2.0"}, tags=("rws-http-v0.2.0",))
    packages = release.discover_packages(repo)
    (decision,) = release.plan(repo, packages, [], force=True)
    assert decision.release
    assert decision.tagged


def test_version_lower_than_latest_tag_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(
        tmp_path, {"rws": "0.3.0", "rws-http": "0.1.0"}, tags=("rws-http-v0.2.0", "rws-v0.1.0")
    )
    packages = release.discover_packages(repo)
    with pytest.raises(release.ReleaseError, match=r"rws-http-v0\.2\.0") as caught:
        release.plan(repo, packages, [], force=False)
    assert caught.value.package == "rws-http"

    code = release.main(["--dry-run", "--repo", str(repo), "--dist-dir", str(tmp_path / "d")])
    assert code == 1
    error = capsys.readouterr().err
    assert "[rws-http] compare with tags" in error
    assert "0.1.0 is lower than the latest tag rws-http-v0.2.0" in error
    assert not (tmp_path / "d").exists()  # refused before building anything


def test_nothing_to_release_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, {"rws-orm": "0.0.1"}, tags=("rws-orm-v0.0.1",))
    code = release.main(["--dry-run", "--repo", str(repo), "--dist-dir", str(tmp_path / "d")])
    assert code == 0
    assert "Nothing to release" in capsys.readouterr().out


def test_package_option_limits_and_rejects_unknown_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path, {"rws-orm": "0.0.1", "rws-http": "0.1.0"})
    assert release.main(["--dry-run", "--repo", str(repo), "--package", "rws-nope"]) == 2
    assert "unknown package rws-nope" in capsys.readouterr().err

    packages = release.discover_packages(repo)
    decisions = release.plan(repo, packages, ["rws-orm"], force=False)
    assert [d.package.name for d in decisions] == ["rws-orm"]


def test_tagging_refuses_uncommitted_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path, {"rws-orm": "0.0.2"})
    (repo / "packages" / "rws-orm" / "README.md").write_text("# changed after the commit\n")
    code = release.main(["--repo", str(repo), "--dist-dir", str(tmp_path / "d")])
    assert code == 1
    assert "uncommitted changes under packages/rws-orm" in capsys.readouterr().err
    assert git(repo, "tag", "--list") == ""


def test_directory_and_distribution_name_must_match(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"rws-orm": "0.0.1"})
    pyproject = repo / "packages" / "rws-orm" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('name = "rws-orm"', 'name = "rws-db"'))
    with pytest.raises(release.ReleaseError, match="must equal the directory name"):
        release.discover_packages(repo)


# --------------------------------------------------------------------------------------------
# Ordering and the checks on built artifacts


def test_siblings_are_built_before_their_dependents(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_package(repo, "rws", "0.1.0", ("rws-jobs>=0.1,<0.2", "rws-http>=0.1,<0.2"))
    write_package(repo, "rws-jobs", "0.1.0", ("rws-orm>=0.1,<0.2",))
    write_package(repo, "rws-orm", "0.1.0", ("aiosqlite>=0.19",))
    write_package(repo, "rws-http", "0.1.0")
    packages = release.discover_packages(repo)
    order = release.topological_order(packages, packages)
    assert order.index("rws-orm") < order.index("rws-jobs") < order.index("rws")
    assert order.index("rws-http") < order.index("rws")
    assert release.sibling_closure(packages["rws"], packages) == {
        "rws-jobs",
        "rws-orm",
        "rws-http",
    }


def test_dependency_cycle_is_reported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_package(repo, "rws-a", "0.1.0", ("rws-b>=0.1,<0.2",))
    write_package(repo, "rws-b", "0.1.0", ("rws-a>=0.1,<0.2",))
    packages = release.discover_packages(repo)
    with pytest.raises(release.ReleaseError, match="cycle among rws-a, rws-b"):
        release.topological_order(packages, packages)


def test_wheel_layout_problems() -> None:
    good = ["rws/http/__init__.py", "rws/http/py.typed", "rws_http-0.1.0.dist-info/METADATA"]
    assert release.wheel_layout_problems(good, "rws.http") == []
    with_init = [*good, "rws/__init__.py"]
    assert any("no __init__" in p for p in release.wheel_layout_problems(with_init, "rws.http"))
    untyped = [name for name in good if not name.endswith("py.typed")]
    assert release.wheel_layout_problems(untyped, "rws.http") == ["does not ship rws/http/py.typed"]
    shadowing = [*good, "http/__init__.py"]  # what `packages = ["src/rws/http"]` produces
    assert release.wheel_layout_problems(shadowing, "rws.http") == [
        "ships files outside rws/http/: http/__init__.py"
    ]


def test_changelog_top_entry_skips_unreleased() -> None:
    text = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-02-01\n\n## [0.1.0] - 2026-01-01\n"
    assert release.changelog_top_entry(text) == ("0.2.0", " - 2026-02-01")
    with pytest.raises(release.CheckError):
        release.changelog_top_entry("# Changelog\n\nNothing yet.\n")


def test_changelog_must_match_version(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_package(repo, "rws-orm", "0.2.0")
    packages = release.discover_packages(repo)
    release.check_changelog(packages["rws-orm"])
    (repo / "packages" / "rws-orm" / "CHANGELOG.md").write_text("## [0.1.0] - 2026-01-01\n")
    with pytest.raises(release.ReleaseError, match=r"\[rws-orm\] check CHANGELOG.md: top entry"):
        release.check_changelog(packages["rws-orm"])
    (repo / "packages" / "rws-orm" / "CHANGELOG.md").write_text("## [0.2.0]\n")
    with pytest.raises(release.ReleaseError, match="no ' - YYYY-MM-DD' release date"):
        release.check_changelog(packages["rws-orm"])


def test_installed_set_problems(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_package(repo, "rws-webhook", "0.1.0")
    write_package(repo, "rws-orm", "0.1.0", ("aiosqlite>=0.19",))
    write_package(repo, "rws-jobs", "0.1.0", ("rws-orm>=0.1,<0.2",))
    packages = release.discover_packages(repo)
    bootstrap = {"pip": Version("24.0"), "setuptools": Version("65.5.0")}
    webhook = packages["rws-webhook"]

    alone = {**bootstrap, "rws-webhook": Version("0.1.0")}
    assert release.installed_set_problems(webhook, packages, alone) == []
    dragged = {**alone, "cryptography": Version("43.0")}
    assert release.installed_set_problems(webhook, packages, dragged) == [
        "declares no third-party dependency but installed: cryptography"
    ]

    jobs = packages["rws-jobs"]
    full = {
        **bootstrap,
        "rws-jobs": Version("0.1.0"),
        "rws-orm": Version("0.1.0"),
        "aiosqlite": Version("0.20"),
    }
    assert release.installed_set_problems(jobs, packages, full) == []
    from_index = {**full, "rws-orm": Version("0.1.9")}
    assert release.installed_set_problems(jobs, packages, from_index) == [
        "rws-orm 0.1.9 installed, this tree has 0.1.0"
    ]
    surplus = {**full, "rws-webhook": Version("0.1.0")}
    assert release.installed_set_problems(jobs, packages, surplus) == [
        "undeclared siblings installed: rws-webhook"
    ]


# --------------------------------------------------------------------------------------------
# End to end


@pytest.mark.slow
def test_release_dry_run_of_rws_webhook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pyproject = tomllib.loads((ROOT / "packages" / "rws-webhook" / "pyproject.toml").read_text())
    version = Version(pyproject["project"]["version"])
    tag = f"rws-webhook-v{version}"
    already_tagged = bool(git(ROOT, "tag", "--list", tag).strip())
    dist = tmp_path / "dist"
    args = ["--dry-run", "--package", "rws-webhook", "--dist-dir", str(dist)]

    code = release.main([*args, "--all"] if already_tagged else args)

    out = capsys.readouterr().out
    assert code == 0, out
    assert (dist / "rws-webhook" / f"rws_webhook-{version}-py3-none-any.whl").is_file()
    assert (dist / "rws-webhook" / f"rws_webhook-{version}.tar.gz").is_file()
    for step in ("twine check --strict", "import rws.webhook", "check installed distributions"):
        assert re.search(rf"^\[rws-webhook\] {re.escape(step)} \.\.\. ok", out, re.MULTILINE)
    tag_line = f"  git tag -a {tag} -m 'Release rws-webhook {version}'"
    if already_tagged:
        assert tag_line not in out.splitlines()
    else:
        assert tag_line in out.splitlines()
        assert "Dry run: no tags created" in out
    assert git(ROOT, "tag", "--list", tag).strip() == (tag if already_tagged else "")


@pytest.mark.slow
def test_release_creates_annotated_tags_only_for_released_packages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path, {"rws-orm": "0.2.0", "rws-jobs": "0.1.0"}, ("rws-orm-v0.2.0",))
    pyproject = repo / "packages" / "rws-jobs" / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = []", 'dependencies = ["rws-orm>=0.2,<0.3"]')
    )
    git(repo, "commit", "-q", "-am", "rws-jobs depends on rws-orm")
    dist = tmp_path / "dist"

    code = release.main(["--repo", str(repo), "--dist-dir", str(dist)])

    out = capsys.readouterr().out
    assert code == 0, out
    assert git(repo, "cat-file", "-t", "rws-jobs-v0.1.0").strip() == "tag"  # annotated
    assert git(repo, "tag", "--list").split() == ["rws-jobs-v0.1.0", "rws-orm-v0.2.0"]
    # rws-orm was built only so that rws-jobs could install it from this tree.
    assert "[rws-orm] not released in this run" in out
    assert (dist / "rws-orm" / "rws_orm-0.2.0-py3-none-any.whl").is_file()
    upload = next(line for line in out.splitlines() if "twine upload" in line)
    assert "rws_jobs-0.1.0-py3-none-any.whl" in upload
    assert "rws_orm" not in upload
