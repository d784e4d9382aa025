"""Python type hints to JSON Schema (draft 2020-12, as OpenAPI 3.1 uses it).

The schemas describe what :mod:`rws.http.web.validation` accepts, so a client generated from
them sends what the handler takes: dataclasses and TypedDicts forbid unknown keys
(``additionalProperties: false``) because validation rejects them; ``Optional[X]`` is
``X`` or ``null`` in 3.1 form (``"type": ["integer", "null"]`` or an ``anyOf`` with
``{"type": "null"}``), never 3.0's ``nullable``.

Named types (dataclasses, TypedDicts, enums, pydantic models, msgspec Structs) become
``#/components/schemas/<Name>`` references. pydantic and msgspec models are described by
their own libraries, all at once when :meth:`SchemaGenerator.finish` runs, so that their
nested definitions are shared and their names never collide with each other: until then
their references are placeholders filled in place.

Limits: a pydantic model is described in validation mode (computed fields are not listed);
two different classes with the same ``__name__`` get module-qualified component names;
Python regex syntax in ``pattern`` is passed through (keep to the ECMA-262 subset).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import re
import types
import typing
import uuid
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

__all__ = ["REF_PREFIX", "SchemaGenerator"]

REF_PREFIX = "#/components/schemas/"
#: The strings ``decimal.Decimal`` takes that are finite numbers (validation refuses NaN).
#: (The exponent is capped: Decimal refuses exponents beyond about 10**18.)
DECIMAL_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,6})?$"
_NONE = type(None)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"type": "string"},
    # Accepted as a JSON number or a numeric string; answered as a string (exact).
    decimal.Decimal: {"type": ["number", "string"], "pattern": DECIMAL_PATTERN},
    uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    datetime.timedelta: {"type": "number", "description": "seconds"},
    PurePath: {"type": "string"},
}

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", _NONE: "null"}


def _is_upload(hint: Any) -> bool:
    return getattr(hint, "__qualname__", "") == "UploadFile" and str(
        getattr(hint, "__module__", "")
    ).endswith(".forms")


class SchemaGenerator:
    """Builds schemas for many hints, collecting the named ones in :attr:`components`.

    Call :meth:`schema` for each hint, then :meth:`finish` once before using the results.
    """

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}
        self._names: dict[Any, str] = {}
        self._pydantic: list[tuple[Any, dict[str, Any]]] = []
        self._msgspec: list[tuple[Any, dict[str, Any]]] = []

    # -- entry points --------------------------------------------------------------------

    def schema(self, hint: Any) -> dict[str, Any]:
        """The schema of ``hint``; named types are referenced, not inlined."""
        origin = get_origin(hint)
        if hint is Any or hint is object or hint is typing.Any:
            return {}
        if origin in (typing.Annotated, typing.Required, typing.NotRequired):
            return self.schema(get_args(hint)[0])
        if origin is Union or origin is types.UnionType:
            return self._union(get_args(hint))
        if origin is Literal:
            return _literal(get_args(hint))
        if hint is None or hint is _NONE:
            return {"type": "null"}
        if origin in (list, set, frozenset, Sequence) or hint in (list, set, frozenset):
            args = get_args(hint)
            result: dict[str, Any] = {"type": "array"}
            if args:
                result["items"] = self.schema(args[0])
            if (origin or hint) in (set, frozenset):
                result["uniqueItems"] = True
            return result
        if origin is tuple or hint is tuple:
            return self._tuple(get_args(hint))
        if origin in (dict, Mapping) or hint is dict:
            args = get_args(hint)
            result = {"type": "object"}
            if len(args) == 2 and args[1] is not Any:
                result["additionalProperties"] = self.schema(args[1])
            return result
        if _is_upload(hint):
            return {"type": "string", "contentMediaType": "application/octet-stream"}
        if isinstance(hint, type):
            return self._class(hint)
        if isinstance(hint, typing.TypeVar | typing.NewType):
            return {}
        raise TypeError(f"rws.http.web.openapi cannot describe the type {hint!r}")

    def finish(self) -> None:
        """Describe the collected pydantic and msgspec models and fill their references."""
        if self._pydantic:
            self._finish_pydantic()
        if self._msgspec:
            self._finish_msgspec()

    # -- kinds ---------------------------------------------------------------------------

    def _union(self, members: tuple[Any, ...]) -> dict[str, Any]:
        nullable = _NONE in members
        schemas = [self.schema(member) for member in members if member is not _NONE]
        if len(schemas) == 1 and not nullable:
            return schemas[0]
        if len(schemas) == 1 and set(schemas[0]) <= {"type", "format"}:
            kind = schemas[0].get("type")
            if isinstance(kind, str):
                return {**schemas[0], "type": [kind, "null"]}
            if isinstance(kind, list):
                return {**schemas[0], "type": [*kind, "null"]}
        if nullable:
            schemas.append({"type": "null"})
        return {"anyOf": schemas}

    def _tuple(self, args: tuple[Any, ...]) -> dict[str, Any]:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            result: dict[str, Any] = {"type": "array"}
            if args:
                result["items"] = self.schema(args[0])
            return result
        return {
            "type": "array",
            "prefixItems": [self.schema(arg) for arg in args],
            "items": False,
            "minItems": len(args),
            "maxItems": len(args),
        }

    def _class(self, hint: type[Any]) -> dict[str, Any]:
        for kind, schema in _SCALARS.items():
            if hint is kind:
                return dict(schema)
        if issubclass(hint, enum.Enum):
            return self._named(hint, self._enum)
        if dataclasses.is_dataclass(hint):
            return self._named(hint, self._dataclass)
        if is_typeddict(hint):
            return self._named(hint, self._typeddict)
        if hasattr(hint, "model_json_schema"):
            placeholder: dict[str, Any] = {}
            self._pydantic.append((hint, placeholder))
            return placeholder
        if hasattr(hint, "__struct_fields__"):
            placeholder = {}
            self._msgspec.append((hint, placeholder))
            return placeholder
        for kind, schema in _SCALARS.items():  # subclasses (IntEnum handled above)
            if isinstance(kind, type) and issubclass(hint, kind) and kind is not bool:
                return dict(schema)
        return {}  # an arbitrary class: validated by isinstance, nothing to say in JSON

    def _named(self, hint: type[Any], build: Any) -> dict[str, Any]:
        name = self._names.get(hint)
        if name is None:
            name = self._component_name(hint)
            self._names[hint] = name
            self.components[name] = {}  # reserved first: a recursive type refers to itself
            self.components[name] = build(hint)
        return {"$ref": REF_PREFIX + name}

    def _component_name(self, hint: type[Any]) -> str:
        name = _NAME_UNSAFE.sub("_", hint.__name__)
        if name in self.components:
            name = _NAME_UNSAFE.sub("_", f"{hint.__module__}.{hint.__qualname__}")
        base, number = name, 2
        while name in self.components:
            name, number = f"{base}_{number}", number + 1
        return name

    def _enum(self, hint: type[enum.Enum]) -> dict[str, Any]:
        result = _literal(tuple(member.value for member in hint))
        result["title"] = hint.__name__
        return result

    def _dataclass(self, hint: type[Any]) -> dict[str, Any]:
        hints = get_type_hints(hint, include_extras=True)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in dataclasses.fields(hint):
            if not field.init:
                continue
            properties[field.name] = self.schema(hints[field.name])
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                required.append(field.name)
        return _object(hint, properties, required)

    def _typeddict(self, hint: type[Any]) -> dict[str, Any]:
        hints = get_type_hints(hint, include_extras=True)
        required_keys = set(getattr(hint, "__required_keys__", hints))
        for name, value in list(hints.items()):
            # Under `from __future__ import annotations` Python 3.11 gets __required_keys__
            # wrong; the evaluated hints still carry the markers (validation reads them too).
            origin = get_origin(value)
            if origin is typing.NotRequired or origin is typing.Required:
                hints[name] = get_args(value)[0]
                (required_keys.discard if origin is typing.NotRequired else required_keys.add)(name)
        properties = {name: self.schema(value) for name, value in hints.items()}
        required = [name for name in hints if name in required_keys]
        return _object(hint, properties, required)

    # -- pydantic and msgspec ------------------------------------------------------------

    def _finish_pydantic(self) -> None:
        from pydantic.json_schema import models_json_schema

        models = list(dict.fromkeys(model for model, _ in self._pydantic))
        keyed, top = models_json_schema(
            [(model, "validation") for model in models],
            ref_template=REF_PREFIX + "{model}",
        )
        renames = self._hoist(top.get("$defs", {}))
        for model, placeholder in self._pydantic:
            placeholder.update(_rename_refs(keyed[(model, "validation")], renames))

    def _finish_msgspec(self) -> None:
        import msgspec

        models = list(dict.fromkeys(model for model, _ in self._msgspec))
        schemas, defs = msgspec.json.schema_components(models, ref_template=REF_PREFIX + "{name}")
        renames = self._hoist(defs)
        refs = dict(zip(models, schemas, strict=True))
        for model, placeholder in self._msgspec:
            placeholder.update(_rename_refs(refs[model], renames))

    def _hoist(self, defs: Mapping[str, Any]) -> dict[str, str]:
        """Add another library's definitions; a name already taken by a different schema is
        renamed (``Item_2``) and the references to it rewritten. Returns the renames."""
        renames: dict[str, str] = {}
        for name, schema in defs.items():
            existing = self.components.get(name)
            if existing is not None and existing != schema:
                number = 2
                while f"{name}_{number}" in self.components or f"{name}_{number}" in defs:
                    number += 1
                renames[name] = f"{name}_{number}"
        for name, schema in defs.items():
            self.components[renames.get(name, name)] = _rename_refs(schema, renames)
        return renames


def _rename_refs(value: Any, renames: Mapping[str, str]) -> Any:
    if not renames:
        return value
    if isinstance(value, dict):
        result = {key: _rename_refs(item, renames) for key, item in value.items()}
        ref = result.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            name = ref[len(REF_PREFIX) :]
            result["$ref"] = REF_PREFIX + renames.get(name, name)
        return result
    if isinstance(value, list):
        return [_rename_refs(item, renames) for item in value]
    return value


def _literal(values: tuple[Any, ...]) -> dict[str, Any]:
    result: dict[str, Any] = {"enum": list(values)}
    kinds = {_JSON_TYPES.get(type(value)) for value in values}
    if len(kinds) == 1 and None not in kinds:
        result["type"] = kinds.pop()
    return result


def _object(hint: type[Any], properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "title": hint.__name__,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        result["required"] = required
    doc = hint.__doc__
    if doc and not doc.startswith(f"{hint.__name__}("):  # not the dataclass-generated one
        result["description"] = " ".join(doc.split())
    return result
