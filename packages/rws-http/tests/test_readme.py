"""The README's Python example runs as written (it starts and queries a real server)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    # The example calls asyncio.run itself: run it outside any running loop.
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102
    assert asyncio.iscoroutinefunction(namespace["main"])
