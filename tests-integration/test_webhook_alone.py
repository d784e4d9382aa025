"""rws-webhook installs alone and its own tests pass with nothing else installed.

This is the promise of a stdlib-only package: ``pip install rws-webhook`` into an empty venv
pulls in no other distribution, and the package's test suite passes there (tests that need
the test-only third-party verifiers skip, naming what is missing).
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "packages" / "rws-webhook"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, env=env, cwd=ROOT
    )


@pytest.mark.slow
def test_installs_alone_and_its_tests_pass(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"

    done = run(python, "-m", "pip", "install", "--quiet", PACKAGE)
    assert done.returncode == 0, done.stderr
    listed = run(python, "-m", "pip", "list", "--format=json")
    installed = {item["name"].lower() for item in json.loads(listed.stdout)}
    assert installed - {"pip", "setuptools", "wheel"} == {"rws-webhook"}

    done = run(python, "-m", "pip", "install", "--quiet", "pytest>=8", "pytest-asyncio>=0.24")
    assert done.returncode == 0, done.stderr
    clean_env = {k: v for k, v in os.environ.items() if k != "RWS_REQUIRE_SERVICES"}
    done = run(
        python,
        "-m",
        "pytest",
        PACKAGE / "tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        env=clean_env,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary
    # The skipped tests are exactly those needing test-only tools, and they say so.
    for line in done.stdout.splitlines():
        if line.startswith("SKIPPED"):
            assert "not installed" in line, line
