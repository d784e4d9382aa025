"""The README's Python example runs as written (it starts and queries a real server)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_every_example() -> None:
    """Three server examples, seven framework ones: a lost fence would skip one silently."""
    assert len(BLOCKS) == 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each example asserts what it shows and calls asyncio.run itself (or uses the sync
    # TestClient): run it outside any running loop, in a scratch directory.
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    # dont_inherit: this file's `from __future__ import annotations` must not leak in.
    exec(compile(block, str(README), "exec", dont_inherit=True), namespace)  # noqa: S102
    if "main" in namespace:
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
