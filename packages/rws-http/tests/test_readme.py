"""The README's Python example runs as written (it starts and queries a real server)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 3
    for block in blocks:
        # Each example calls asyncio.run itself: run it outside any running loop.
        namespace: dict[str, object] = {"__name__": "readme"}
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        assert asyncio.iscoroutinefunction(namespace["main"])


def test_server_api_is_reachable_from_the_package() -> None:
    """``rws.http.serve(app, config)`` as the issue and README promise, loaded lazily."""
    import rws.http
    import rws.http.server

    assert rws.http.serve is rws.http.server.serve
    assert rws.http.Server is rws.http.server.Server
    assert rws.http.Config is rws.http.server.Config
    assert sorted(rws.http.__all__) == sorted(rws.http.server.__all__)
    with pytest.raises(AttributeError, match="nothing_here"):
        _ = rws.http.nothing_here  # type: ignore[attr-defined]
