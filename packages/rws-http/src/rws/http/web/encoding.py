"""Turning handler return values into JSON: dataclasses, TypedDicts, pydantic and msgspec
models, datetimes, UUIDs, decimals, enums, sets and paths.

``json.dumps`` calls :func:`json_default` only for objects it does not know, so plain
dicts and lists pay nothing for this. Optional libraries are recognised by duck typing
(``model_dump`` for pydantic v2, ``__struct_fields__`` for msgspec), never imported here.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from pathlib import PurePath
from typing import Any

__all__ = ["dumps", "json_default"]


def json_default(value: Any) -> Any:
    """What ``json.dumps(default=...)`` calls for a value it cannot encode itself."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if dump is not None and callable(dump):  # pydantic v2
        return dump(mode="json")
    fields = getattr(type(value), "__struct_fields__", None)
    if fields is not None:  # msgspec.Struct
        return {name: getattr(value, name) for name in fields}
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | decimal.Decimal | PurePath):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# One encoder for every response: json.dumps with any non-default option builds a new
# JSONEncoder per call, which costs more than encoding a small object.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=json_default
)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (they are not JSON)."""
    return _ENCODER.encode(value).encode("utf-8")
