"""Path parameter convertors: a regex for the URL text, a parse step and its inverse.

``{id:int}`` in a path pattern picks :data:`CONVERTORS` ``["int"]``; a bare ``{name}`` is
``str``. Each convertor's regex is anchored by the pattern around it, so it must not contain
capturing groups of its own.
"""

from __future__ import annotations

import math
import uuid
from typing import Any
from urllib.parse import quote

__all__ = ["CONVERTORS", "Convertor"]


class Convertor:
    """Base: ``regex`` matches the URL text, ``convert`` parses it, ``to_string`` undoes it."""

    regex = ""

    def convert(self, value: str) -> Any:
        return value

    def to_string(self, value: Any) -> str:
        return str(value)


class StringConvertor(Convertor):
    """One path segment (no ``/``), percent-quoted when building a URL."""

    regex = "[^/]+"

    def to_string(self, value: Any) -> str:
        text = str(value)
        if not text or "/" in text:
            raise ValueError(f"a str path parameter must be non-empty and slash-free: {text!r}")
        return quote(text, safe="")


class PathConvertor(Convertor):
    """The rest of the path, slashes included (kept unquoted when building a URL)."""

    regex = ".*"

    def to_string(self, value: Any) -> str:
        return quote(str(value), safe="/")


class IntConvertor(Convertor):
    """A non-negative decimal integer."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"an int path parameter must be a non-negative int: {value!r}")
        return str(value)


class FloatConvertor(Convertor):
    """A non-negative decimal number without exponent (``3``, ``2.5``)."""

    regex = r"[0-9]+(?:\.[0-9]+)?"

    def convert(self, value: str) -> float:
        return float(value)

    def to_string(self, value: Any) -> str:
        number = float(value)
        if number < 0 or not math.isfinite(number):
            raise ValueError(f"a float path parameter must be finite and >= 0: {value!r}")
        return f"{number:.20f}".rstrip("0").rstrip(".")


class UUIDConvertor(Convertor):
    """A UUID in its canonical 8-4-4-4-12 hex form."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: Any) -> str:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


CONVERTORS: dict[str, Convertor] = {
    "str": StringConvertor(),
    "path": PathConvertor(),
    "int": IntConvertor(),
    "float": FloatConvertor(),
    "uuid": UUIDConvertor(),
}
