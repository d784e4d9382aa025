"""Where a handler parameter comes from, read once from its signature at route creation.

A parameter is filled from:

* the request itself, when annotated ``Request`` / ``WebSocket`` / ``HTTPConnection``;
* the path, when its name is a parameter of the route's pattern;
* ``Annotated[T, Query() | Header() | Cookie() | Body() | Form()]`` when marked;
* otherwise by its type: one-string types (``int``, ``str``, ``UUID``, enums,
  ``Literal``) come from the query string, ``UploadFile`` from the form, and structured
  types (dataclasses, TypedDicts, pydantic/msgspec models, ``dict``, ``list``) from the JSON
  body. As in FastAPI, a repeated query parameter needs the marker:
  ``tags: Annotated[list[str], Query()]`` (``?tags=a&tags=b``).

The analysis runs when the route is built, so a handler whose parameters cannot be served
fails at import time with its name, not on the first request. Per request only the prepared
extractors run, and every error is collected into one :class:`ValidationError` (422).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import operator
import re
import types
import typing
from collections.abc import Callable, Collection
from typing import Any, get_args, get_origin, get_type_hints

from .exceptions import ValidationError
from .requests import HTTPConnection, Request
from .validation import (
    Errors,
    convert,
    is_missing,
    is_scalar,
    is_scalar_sequence,
    scalar_converter,
)

__all__ = ["Body", "Cookie", "Form", "Header", "Param", "Path", "Query", "Signature"]

_EMPTY = inspect.Parameter.empty
_INVALID = object()  # the body is there but is not JSON


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    """Marks a parameter's source and constraints (``Annotated[int, Query(ge=1)]``).

    ``alias`` is the name on the wire (``Header`` defaults to the parameter name with ``_``
    as ``-``). Constraints follow JSON Schema: ``ge``/``gt``/``le``/``lt`` for numbers,
    ``min_length``/``max_length`` for strings and lists, ``pattern`` (searched, as JSON
    Schema does) for strings. ``description``/``examples``/``deprecated`` go to OpenAPI.
    """

    alias: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    description: str | None = None
    examples: tuple[Any, ...] = ()
    deprecated: bool = False
    include_in_schema: bool = True

    source: typing.ClassVar[str] = ""


class Query(Param):
    source = "query"


class Header(Param):
    source = "header"


class Cookie(Param):
    source = "cookie"


class Path(Param):
    source = "path"


class Body(Param):
    source = "body"


class Form(Param):
    source = "form"


@dataclasses.dataclass(slots=True)
class Field:
    """One analysed parameter: its source, wire name, type and default."""

    name: str
    source: str
    wire_name: str
    hint: Any
    default: Any
    marker: Param
    sequence: bool = False
    compiled_pattern: re.Pattern[str] | None = None
    #: The converter for a plain one-string type (``int``, ``str`` …), else None: the hot
    #: path then skips the generic dispatch in :func:`convert`.
    scalar: Callable[..., Any] | None = None
    constrained: bool = False

    @property
    def required(self) -> bool:
        return self.default is _EMPTY


def _split_annotated(hint: Any) -> tuple[Any, Param | None]:
    if get_origin(hint) is typing.Annotated:
        base, *extras = get_args(hint)
        for extra in extras:
            if isinstance(extra, Param):
                return base, extra
            if isinstance(extra, type) and issubclass(extra, Param):
                return base, extra()
        return base, None
    return hint, None


def _is_upload(hint: Any) -> bool:
    # Compared by name: importing .forms here would load the multipart parser for every app.
    if getattr(hint, "__qualname__", "") == "UploadFile" and hint.__module__.endswith(".forms"):
        return True
    origin = get_origin(hint)
    if origin in (list, typing.Union, types.UnionType):
        return any(_is_upload(arg) for arg in get_args(hint) if arg is not type(None))
    return False


def _is_list(hint: Any) -> bool:
    """``list[X]`` or ``list[X] | None``: a form field that may repeat."""
    if get_origin(hint) is list:
        return True
    if get_origin(hint) in (typing.Union, types.UnionType):
        return any(get_origin(arg) is list for arg in get_args(hint))
    return False


class Signature:
    """The prepared extractors for one handler; ``await signature.extract(request)``."""

    def __init__(self, func: Callable[..., Any], path_params: Collection[str]) -> None:
        self.func = func
        name = getattr(func, "__qualname__", repr(func))
        try:
            hints = get_type_hints(func, include_extras=True)
        except NameError as error:
            raise TypeError(f"handler {name}: cannot resolve an annotation: {error}") from None
        self.return_hint = hints.get("return", _EMPTY)
        self.connection_params: list[str] = []
        self.fields: list[Field] = []
        for parameter in inspect.signature(func).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"handler {name}: *args/**kwargs cannot be filled from requests")
            hint = hints.get(parameter.name, _EMPTY)
            if hint is _EMPTY:
                raise TypeError(f"handler {name}: parameter {parameter.name!r} needs a type hint")
            base, marker = _split_annotated(hint)
            if isinstance(base, type) and issubclass(base, HTTPConnection):
                self.connection_params.append(parameter.name)
                continue
            self.fields.append(self._field(name, parameter, base, marker, path_params))
        self.body_fields = [field for field in self.fields if field.source == "body"]
        self.form_fields = [field for field in self.fields if field.source == "form"]
        self.simple = not self.fields and not self.connection_params

    def _field(
        self,
        handler: str,
        parameter: inspect.Parameter,
        hint: Any,
        marker: Param | None,
        path_params: Collection[str],
    ) -> Field:
        name = parameter.name
        if marker is None:
            if name in path_params:
                marker = Path()
            elif is_scalar(hint):
                marker = Query()
            elif _is_upload(hint):
                marker = Form()
            else:
                marker = Body()
        source = marker.source
        if source == "path" and name not in path_params:
            raise TypeError(f"handler {handler}: {name!r} is not a parameter of the route path")
        if source in ("query", "header", "cookie", "path") and not (
            is_scalar(hint) or is_scalar_sequence(hint)
        ):
            raise TypeError(
                f"handler {handler}: {source} parameter {name!r} must be a scalar type or a "
                f"list of them, not {hint!r}"
            )
        wire = marker.alias or (name.replace("_", "-") if source == "header" else name)
        return Field(
            name=name,
            source=source,
            wire_name=wire,
            hint=hint,
            default=parameter.default,
            marker=marker,
            sequence=is_scalar_sequence(hint) and source in ("query", "header", "form"),
            compiled_pattern=re.compile(marker.pattern) if marker.pattern else None,
            scalar=scalar_converter(hint),
            constrained=any(
                getattr(marker, key) is not None
                for key in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")
            ),
        )

    async def extract(self, request: HTTPConnection) -> dict[str, Any]:
        """Keyword arguments for the handler, or ValidationError with every problem."""
        values: dict[str, Any] = dict.fromkeys(self.connection_params, request)
        errors = Errors()
        body: Any = None
        form: Any = None
        for field in self.fields:
            source = field.source
            if source == "body":
                if body is None:
                    body = await _json_body(request, errors)
                if body is _INVALID:
                    continue  # the body's own error is recorded; its fields cannot be checked
                if len(self.body_fields) > 1 or field.marker.alias:
                    raw = body.get(field.wire_name, _EMPTY) if isinstance(body, dict) else _EMPTY
                    value = self._convert(field, raw, errors, from_string=False)
                else:  # the one body parameter is the whole body: errors say ["body", ...]
                    value = self._convert(field, body, errors, from_string=False, loc=("body",))
            elif source == "form":
                if form is None:
                    assert isinstance(request, Request)
                    form = await request.form()
                if field.sequence or _is_list(field.hint):
                    raw = form.getlist(field.wire_name) or _EMPTY
                else:
                    raw = form.get(field.wire_name, _EMPTY)
                value = self._convert(field, raw, errors, from_string=True)
            else:
                raw = self._raw(request, field)
                value = self._convert(field, raw, errors, from_string=True)
            if not is_missing(value):
                values[field.name] = value
        if errors:
            raise ValidationError(errors.items)
        return values

    @staticmethod
    def _raw(request: HTTPConnection, field: Field) -> Any:
        source = field.source
        if source == "path":
            return request.path_params.get(field.wire_name, _EMPTY)
        if source == "query":
            if field.sequence:
                return request.query_params.getlist(field.wire_name) or _EMPTY
            return request.query_params.get(field.wire_name, _EMPTY)
        if source == "header":
            if field.sequence:
                return request.headers.getlist(field.wire_name) or _EMPTY
            return request.headers.get(field.wire_name, _EMPTY)
        return request.cookies.get(field.wire_name, _EMPTY)

    @staticmethod
    def _convert(
        field: Field,
        raw: Any,
        errors: Errors,
        *,
        from_string: bool,
        loc: tuple[str, ...] | None = None,
    ) -> Any:
        loc = loc or (field.source, field.wire_name)
        if raw is _EMPTY:
            if field.required:
                return errors.add(loc, "missing", "field required")
            return field.default
        scalar = field.scalar
        if scalar is not None:
            if type(raw) is field.hint:  # a path value the route's convertor already typed
                value = raw
            else:
                if field.source == "path" and not isinstance(raw, str):
                    raw = str(raw)
                value = scalar(raw, loc, errors, from_string)
        else:
            if field.source == "path" and not isinstance(raw, str):
                raw = str(raw)  # already converted by the route's convertor; re-check the hint
            value = convert(raw, field.hint, loc, errors, from_string=from_string)
        if not field.constrained or is_missing(value):
            return value
        return _check_constraints(field, value, loc, errors)


async def _json_body(request: HTTPConnection, errors: Errors) -> Any:
    assert isinstance(request, Request)
    body = await request.body()
    if not body:
        return _EMPTY
    content_type = request.headers.get("content-type", "")
    media = content_type.partition(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        errors.add(("body",), "content_type", f"expected JSON, got {media!r}")
        return _INVALID
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        errors.add(("body",), "json_invalid", f"invalid JSON: {error}")
        return _INVALID


def _check_constraints(field: Field, value: Any, loc: tuple[str, ...], errors: Errors) -> Any:
    marker = field.marker
    items = value if field.sequence else [value]
    for item in items:
        if isinstance(item, int | float) and not isinstance(item, bool):
            for bound, test, word in (
                (marker.ge, operator.ge, "greater than or equal to"),
                (marker.gt, operator.gt, "greater than"),
                (marker.le, operator.le, "less than or equal to"),
                (marker.lt, operator.lt, "less than"),
            ):
                if bound is not None and not test(item, bound):
                    return errors.add(loc, "number_range", f"must be {word} {bound}", item)
        if isinstance(item, str):
            if marker.min_length is not None and len(item) < marker.min_length:
                return errors.add(
                    loc, "string_too_short", f"must have at least {marker.min_length} characters"
                )
            if marker.max_length is not None and len(item) > marker.max_length:
                return errors.add(
                    loc, "string_too_long", f"must have at most {marker.max_length} characters"
                )
            if field.compiled_pattern is not None and not field.compiled_pattern.search(item):
                return errors.add(
                    loc, "string_pattern_mismatch", f"must match {marker.pattern!r}", item
                )
    if field.sequence:
        if marker.min_length is not None and len(value) < marker.min_length:
            return errors.add(loc, "too_short", f"must have at least {marker.min_length} items")
        if marker.max_length is not None and len(value) > marker.max_length:
            return errors.add(loc, "too_long", f"must have at most {marker.max_length} items")
    return value
