"""Shared test helpers for rws-webhook.

Third-party verifiers (stripe, standardwebhooks, svix, twilio), the ASGI server used to
exercise the middleware, and cryptography for Ed25519 are test-only dependencies: rws-webhook
itself is stdlib-only, and its tests must also pass in a venv holding nothing but the package
and pytest. There, tests that need a missing tool are skipped with the reason printed; with
RWS_REQUIRE_SERVICES=1 (set by CI) a missing tool is a failure, so CI never passes by skipping.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str) -> ModuleType:
    """Import ``module`` or skip (fail under RWS_REQUIRE_SERVICES=1) naming it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not installed ({exc}); install the package's test tools"
        if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def need() -> type[Need]:
    """The :class:`Need` helper as a fixture (test modules cannot import conftest)."""
    return Need


class Need:
    """``need.module("stripe")`` inside a test: the module, or a skip/fail naming it."""

    module = staticmethod(require)
