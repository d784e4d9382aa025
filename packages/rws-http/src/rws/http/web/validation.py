"""Checking and converting request data against Python type hints, collecting every error.

Handlers declare what they take with ordinary annotations (``int``, ``list[str]``,
``Literal["asc", "desc"]``, ``datetime``, a dataclass, a TypedDict, a pydantic or msgspec
model). :func:`convert` turns the raw value (a query string, a header, decoded JSON) into
that type or records an error ``{"loc", "msg", "type", "input"}``; one request gets all
its errors in one 422, not the first only.

Strings from the URL and headers are *parsed* (``"7"`` -> 7, ``"true"`` -> True); JSON
values are only *checked* (a JSON ``"7"`` is not an int), the rule pydantic calls strict
for JSON and lax for strings. pydantic and msgspec models are handed to their own
validators, with their errors translated into the same shape.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

__all__ = ["Errors", "Loc", "convert"]

Loc = tuple[str | int, ...]
_MISSING = object()
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE_TYPE = type(None)


class Errors:
    """Collects validation errors while one request is converted."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, loc: Loc, kind: str, msg: str, value: Any = _MISSING) -> Any:
        error: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": kind}
        if value is not _MISSING and _is_jsonable(value):
            error["input"] = value
        self.items.append(error)
        return _MISSING

    def __bool__(self) -> bool:
        return bool(self.items)


def _is_jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def is_missing(value: Any) -> bool:
    return value is _MISSING


def convert(value: Any, hint: Any, loc: Loc, errors: Errors, *, from_string: bool) -> Any:
    """``value`` converted to ``hint``; on failure an error is recorded and a sentinel
    returned (test with :func:`is_missing`)."""
    if hint is Any or hint is object:
        return value
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return convert(value, get_args(hint)[0], loc, errors, from_string=from_string)
    if origin is Union or origin is types.UnionType:
        return _convert_union(value, get_args(hint), loc, errors, from_string)
    if origin is Literal:
        return _convert_literal(value, get_args(hint), loc, errors, from_string)
    if origin in (list, set, frozenset, tuple, Sequence) or hint in (list, set, tuple):
        return _convert_sequence(value, hint, origin or hint, loc, errors, from_string)
    if origin in (dict, Mapping) or hint is dict:
        return _convert_mapping(value, hint, loc, errors, from_string)
    if hint is _NONE_TYPE or hint is None:
        if value is None:
            return None
        return errors.add(loc, "none_required", "must be null", value)
    if isinstance(hint, type):
        scalar = _SCALARS.get(hint)
        if scalar is not None:
            return scalar(value, loc, errors, from_string)
        if issubclass(hint, enum.Enum):
            return _convert_enum(value, hint, loc, errors, from_string)
        if dataclasses.is_dataclass(hint):
            return _convert_dataclass(value, hint, loc, errors)
        if is_typeddict(hint):
            return _convert_typeddict(value, hint, loc, errors)
        if hasattr(hint, "model_validate"):
            return _convert_pydantic(value, hint, loc, errors)
        if hasattr(hint, "__struct_fields__"):
            return _convert_msgspec(value, hint, loc, errors)
        if isinstance(value, hint):
            return value
        return errors.add(loc, "is_instance_of", f"must be {hint.__name__}", value)
    if isinstance(hint, typing.TypeVar | typing.NewType):
        return value
    raise TypeError(f"rws.http.web cannot validate values of type {hint!r}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _convert_union(
    value: Any, members: tuple[Any, ...], loc: Loc, errors: Errors, from_string: bool
) -> Any:
    if value is None and _NONE_TYPE in members:
        return None
    others = [member for member in members if member is not _NONE_TYPE]
    attempts: list[dict[str, Any]] = []
    for member in others:
        trial = Errors()
        result = convert(value, member, loc, trial, from_string=from_string)
        if not trial:
            return result
        attempts.extend(trial.items)
    if len(others) == 1:
        errors.items.extend(attempts)
        return _MISSING
    names = " or ".join(_type_name(member) for member in others)
    return errors.add(loc, "union", f"must be {names}", value)


def _convert_literal(
    value: Any, allowed: tuple[Any, ...], loc: Loc, errors: Errors, from_string: bool
) -> Any:
    for option in allowed:
        if value == option and type(value) is type(option):
            return option
        if from_string and isinstance(value, str) and value == str(option):
            return option
    listed = ", ".join(repr(option) for option in allowed)
    return errors.add(loc, "literal_error", f"must be one of {listed}", value)


def _convert_sequence(
    value: Any, hint: Any, container: Any, loc: Loc, errors: Errors, from_string: bool
) -> Any:
    if not isinstance(value, list | tuple):
        return errors.add(loc, "list_type", "must be a list", value)
    args = get_args(hint)
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            return errors.add(loc, "tuple_length", f"must have {len(args)} items", value)
        items = [
            convert(item, arg, (*loc, i), errors, from_string=from_string)
            for i, (item, arg) in enumerate(zip(value, args, strict=True))
        ]
    else:
        item_hint = args[0] if args else Any
        items = [
            convert(item, item_hint, (*loc, i), errors, from_string=from_string)
            for i, item in enumerate(value)
        ]
    if any(item is _MISSING for item in items):
        return _MISSING
    if container in (set, frozenset):
        return container(items)
    return tuple(items) if container is tuple else items


def _convert_mapping(value: Any, hint: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if not isinstance(value, dict):
        return errors.add(loc, "dict_type", "must be an object", value)
    args = get_args(hint)
    key_hint, value_hint = args if len(args) == 2 else (Any, Any)
    result = {}
    for key, item in value.items():
        converted_key = convert(key, key_hint, (*loc, key), errors, from_string=True)
        converted = convert(item, value_hint, (*loc, key), errors, from_string=from_string)
        result[converted_key] = converted
    return _MISSING if errors and any(v is _MISSING for v in result.values()) else result


def _convert_enum(
    value: Any, hint: type[enum.Enum], loc: Loc, errors: Errors, from_string: bool
) -> Any:
    for member in hint:
        if member.value == value and type(member.value) is type(value):
            return member
        if from_string and isinstance(value, str) and str(member.value) == value:
            return member
    listed = ", ".join(repr(member.value) for member in hint)
    return errors.add(loc, "enum", f"must be one of {listed}", value)


def _fields_from_mapping(
    value: Any, hints: dict[str, Any], required: set[str], loc: Loc, errors: Errors
) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        errors.add(loc, "dict_type", "must be an object", value)
        return None
    result: dict[str, Any] = {}
    before = len(errors.items)
    for name, field_hint in hints.items():
        if name not in value:
            if name in required:
                errors.add((*loc, name), "missing", "field required")
            continue
        result[name] = convert(value[name], field_hint, (*loc, name), errors, from_string=False)
    for extra in value.keys() - hints.keys():
        errors.add((*loc, extra), "extra_forbidden", "unexpected field", value[extra])
    return None if len(errors.items) > before else result


def _convert_dataclass(value: Any, hint: type[Any], loc: Loc, errors: Errors) -> Any:
    if isinstance(value, hint):
        return value
    hints = get_type_hints(hint, include_extras=True)
    fields = {field.name: field for field in dataclasses.fields(hint) if field.init}
    required = {
        name
        for name, field in fields.items()
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    }
    converted = _fields_from_mapping(
        value, {name: hints[name] for name in fields}, required, loc, errors
    )
    return _MISSING if converted is None else hint(**converted)


def _convert_typeddict(value: Any, hint: type[Any], loc: Loc, errors: Errors) -> Any:
    hints = get_type_hints(hint, include_extras=True)
    required = set(getattr(hint, "__required_keys__", hints))
    # Under `from __future__ import annotations` Python 3.11 cannot see NotRequired/Required
    # in the class body, so __required_keys__ is wrong; the evaluated hints still carry them.
    for name, field_hint in list(hints.items()):
        origin = get_origin(field_hint)
        if origin is typing.NotRequired or origin is typing.Required:
            hints[name] = get_args(field_hint)[0]
            (required.discard if origin is typing.NotRequired else required.add)(name)
    converted = _fields_from_mapping(value, hints, required, loc, errors)
    return _MISSING if converted is None else converted


def _convert_pydantic(value: Any, hint: Any, loc: Loc, errors: Errors) -> Any:
    try:
        return hint.model_validate(value)
    except ValueError as error:
        details = getattr(error, "errors", None)
        if details is None:
            return errors.add(loc, "value_error", str(error), value)
        for item in details():
            errors.add(
                (*loc, *item.get("loc", ())),
                item.get("type", "value_error"),
                item.get("msg", ""),
                item.get("input", _MISSING),
            )
        return _MISSING


def _convert_msgspec(value: Any, hint: Any, loc: Loc, errors: Errors) -> Any:
    import msgspec

    try:
        return msgspec.convert(value, hint)
    except msgspec.ValidationError as error:
        # msgspec reports one error as "message - at `$.field[0]`".
        message, _, where = str(error).partition(" - at `$")
        path: list[str | int] = []
        for part in where.rstrip("`").replace("]", "").replace("[", ".").split("."):
            if part:
                path.append(int(part) if part.isdigit() else part)
        return errors.add((*loc, *path), "msgspec", message)


# -- scalars ---------------------------------------------------------------------------------


def _str(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, str):
        return value
    return errors.add(loc, "string_type", "must be a string", value)


def _int(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if from_string and isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and len(text) <= 4300:
            return int(text)
        return errors.add(loc, "int_parsing", "must be an integer", value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return errors.add(loc, "int_type", "must be an integer", value)


def _float(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif from_string and isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return errors.add(loc, "float_parsing", "must be a number", value)
    else:
        return errors.add(loc, "float_type", "must be a number", value)
    if not math.isfinite(result):
        return errors.add(loc, "finite_number", "must be a finite number", value)
    return result


def _bool(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, bool):
        return value
    if from_string and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return errors.add(loc, "bool_parsing", "must be true or false", value)
    return errors.add(loc, "bool_type", "must be a boolean", value)


def _decimal(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        return errors.add(loc, "decimal_type", "must be a decimal number", value)
    try:
        result = decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        return errors.add(loc, "decimal_parsing", "must be a decimal number", value)
    if not result.is_finite():
        return errors.add(loc, "finite_number", "must be a finite number", value)
    return result


def _uuid(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    return errors.add(loc, "uuid_parsing", "must be a UUID", value)


def _parser(kind: type[Any], name: str, label: str) -> Any:
    def parse(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
        if type(value) is kind:
            return value
        if isinstance(value, str):
            try:
                text = value.replace("Z", "+00:00") if kind is not datetime.date else value
                return kind.fromisoformat(text)
            except ValueError:
                pass
        return errors.add(loc, f"{name}_parsing", f"must be an ISO 8601 {label}", value)

    return parse


def _bytes(value: Any, loc: Loc, errors: Errors, from_string: bool) -> Any:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return errors.add(loc, "bytes_type", "must be a string", value)


_SCALARS: dict[type[Any], Any] = {
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    bytes: _bytes,
    decimal.Decimal: _decimal,
    uuid.UUID: _uuid,
    datetime.datetime: _parser(datetime.datetime, "datetime", "date-time"),
    datetime.date: _parser(datetime.date, "date", "date"),
    datetime.time: _parser(datetime.time, "time", "time"),
}


def scalar_converter(hint: Any) -> Any:
    """The converter of a plain scalar type (``int``, ``str``, ``UUID`` …), else None."""
    return _SCALARS.get(hint) if isinstance(hint, type) else None


def is_scalar(hint: Any) -> bool:
    """True for types read from one string (query, header, cookie, path) rather than JSON."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return is_scalar(get_args(hint)[0])
    if origin is Union or origin is types.UnionType:
        return all(is_scalar(arg) for arg in get_args(hint) if arg is not _NONE_TYPE)
    if origin is Literal:
        return True
    return isinstance(hint, type) and (hint in _SCALARS or issubclass(hint, enum.Enum))


def is_scalar_sequence(hint: Any) -> bool:
    """``list[int]``, ``set[str]`` …: a repeated query parameter (``?tag=a&tag=b``)."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return is_scalar_sequence(get_args(hint)[0])
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in get_args(hint) if arg is not _NONE_TYPE]
        return len(members) == 1 and is_scalar_sequence(members[0])
    if origin in (list, set, frozenset, tuple, Sequence):
        args = get_args(hint)
        return bool(args) and is_scalar(args[0])
    return False
