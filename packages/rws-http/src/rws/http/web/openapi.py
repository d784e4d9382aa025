"""OpenAPI 3.1 documents generated from an app's routes, and the routes that serve them.

Everything comes from what the router already knows: the path templates (``{id:int}`` gives
``{id}`` with ``"type": "integer", "minimum": 0``), each handler's parameters as
:mod:`rws.http.web.params` analysed them (source, wire name, type, default, constraints),
its return annotation, and the extra keyword options given to the route::

    @app.get("/items/{id:int}", tags=["items"], responses={404: {"description": "No such item"}})

Route options read here: ``summary``, ``description`` (else the docstring, cut at a form
feed ``\\f``), ``tags``, ``operation_id``, ``deprecated``, ``include_in_schema``,
``response_description``, ``responses`` (``{status: {"description": ..., "model": T}}``
plus any OpenAPI response fields; an error status without content is described as the
``{"detail": ...}`` body ``HTTPException`` answers) and ``openapi_extra`` (merged into the
operation as is). Any other option is an error naming the route, raised when the document
is built (at startup with :func:`add_openapi`), so a typo never silently vanishes.

Not described: WebSocket routes, routes whose endpoint is a plain ASGI app (they declare
nothing), mounted apps other than :class:`App`/:class:`Router`, and :class:`Host` entries
(OpenAPI paths carry no host). A route accepting every method is listed under GET, PUT,
POST, DELETE and PATCH; HEAD (implied by GET) is never listed.
"""

from __future__ import annotations

import difflib
import http
import inspect
import json
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from .app import App
from .convertors import (
    Convertor,
    FloatConvertor,
    IntConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from .encoding import dumps
from .endpoints import Endpoint
from .jsonschema_gen import REF_PREFIX, SchemaGenerator
from .openapi_docs import DocsPage
from .params import Field, Param
from .requests import Request
from .responses import Response
from .routing import Mount, Route, Router

__all__ = ["OpenAPI", "add_openapi", "openapi_document"]

ROUTE_OPTIONS = frozenset(
    {
        "summary",
        "description",
        "tags",
        "operation_id",
        "deprecated",
        "include_in_schema",
        "response_description",
        "responses",
        "openapi_extra",
    }
)
#: What a route without ``methods`` is listed under.
ANY_METHOD = ("get", "put", "post", "delete", "patch")
_NONE = type(None)
_EMPTY = inspect.Parameter.empty

_VALIDATION_ERROR = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
        "input": {},
    },
    "required": ["loc", "msg", "type"],
}
_HTTP_VALIDATION_ERROR = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {"detail": {"type": "array", "items": {"$ref": REF_PREFIX + "ValidationError"}}},
    "required": ["detail"],
}
_HTTP_ERROR = {
    "title": "HTTPError",
    "type": "object",
    "properties": {"detail": {}},
    "required": ["detail"],
}
_BUILT_IN = {
    "ValidationError": _VALIDATION_ERROR,
    "HTTPValidationError": _HTTP_VALIDATION_ERROR,
    "HTTPError": _HTTP_ERROR,
}


def openapi_document(
    app: App | Router,
    *,
    title: str,
    version: str,
    description: str | None = None,
    servers: Sequence[str | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document describing ``app``'s HTTP routes (a new dict each call)."""
    if not isinstance(title, str) or not title:
        raise ValueError(f"title must be a non-empty string, got {title!r}")
    if not isinstance(version, str) or not version:
        raise ValueError(f"version must be a non-empty string, got {version!r}")
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {"openapi": "3.1.0", "info": info}
    if servers:
        document["servers"] = _servers(servers)
    builder = _Builder()
    document["paths"] = builder.paths(app.routes)
    if builder.generator.components:
        document["components"] = {"schemas": dict(sorted(builder.generator.components.items()))}
    return document


def _servers(servers: Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(servers, str):
        raise ValueError("servers must be a list of URLs or server objects, not one string")
    result: list[dict[str, Any]] = []
    for server in servers:
        entry = {"url": server} if isinstance(server, str) else dict(server)
        if not isinstance(entry.get("url"), str):
            raise ValueError(f"servers: each entry needs a 'url' string, got {server!r}")
        result.append(entry)
    return result


# -- walking the routes ------------------------------------------------------------------------


def _routes(
    entries: Iterable[Any], prefix: str, params: dict[str, Convertor]
) -> Iterator[tuple[str, dict[str, Convertor], Route]]:
    """Every HTTP route with its full template (``{name}`` form) and path convertors."""
    for entry in entries:
        if isinstance(entry, Route):
            if not entry.websocket:
                template = prefix + entry.pattern.template
                yield template, {**params, **entry.pattern.params}, entry
        elif isinstance(entry, Mount) and isinstance(entry.app, App | Router):
            yield from _routes(
                entry.app.routes,
                prefix + entry.pattern.template,
                {**params, **entry.pattern.params},
            )


def _handler(route: Route) -> Endpoint | None:
    handler = getattr(route, "handler", None)
    if isinstance(handler, Endpoint):
        return handler
    return route.endpoint if isinstance(route.endpoint, Endpoint) else None


def _methods(route: Route) -> list[str]:
    if route.methods is None:
        return list(ANY_METHOD)
    methods = {method.lower() for method in route.methods}
    if "get" in methods:
        methods.discard("head")
    order = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    return sorted(methods, key=lambda m: order.index(m) if m in order else len(order))


class _Builder:
    def __init__(self) -> None:
        self.generator = SchemaGenerator()
        self.generator.components.update({name: {} for name in _BUILT_IN})  # names reserved
        self.used_builtins: set[str] = set()
        self.operation_ids: set[str] = set()

    def paths(self, entries: Iterable[Any]) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for template, convertors, route in _routes(entries, "", {}):
            handler = _handler(route)
            if handler is None:
                continue
            options = handler.openapi
            _check_options(options, route)
            if not options.get("include_in_schema", True):
                continue
            item = paths.setdefault(template, {})
            methods = [method for method in _methods(route) if method not in item]
            for method in methods:  # a method already listed belongs to an earlier route
                item[method] = self.operation(handler, route, method, len(methods), convertors)
        self.generator.finish()
        for name in _BUILT_IN:
            if name in self.used_builtins:
                self.generator.components[name] = dict(_BUILT_IN[name])
            else:
                del self.generator.components[name]
        return {path: item for path, item in paths.items() if item}

    def operation(
        self,
        handler: Endpoint,
        route: Route,
        method: str,
        method_count: int,
        convertors: dict[str, Convertor],
    ) -> dict[str, Any]:
        options = handler.openapi
        func = handler.func
        name = getattr(func, "__name__", None) or route.name or "operation"
        operation: dict[str, Any] = {}
        tags = options.get("tags")
        if tags is not None:
            if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
                raise ValueError(f"route {route.path!r}: tags must be a list of strings")
            operation["tags"] = list(tags)
        operation["summary"] = options.get("summary") or _title(name)
        description = options.get("description")
        if description is None:
            doc = inspect.getdoc(func)
            description = doc.split("\f")[0].strip() if doc else None
        if description:
            operation["description"] = description
        operation["operationId"] = self.operation_id(options, name, method, method_count, route)
        parameters = self.parameters(handler, convertors)
        if parameters:
            operation["parameters"] = parameters
        body = self.request_body(handler)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = self.responses(handler, route, has_path_params=bool(convertors))
        if options.get("deprecated"):
            operation["deprecated"] = True
        extra = options.get("openapi_extra")
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise ValueError(f"route {route.path!r}: openapi_extra must be a mapping")
            operation.update(extra)
        return operation

    def operation_id(
        self, options: Mapping[str, Any], name: str, method: str, count: int, route: Route
    ) -> str:
        explicit = options.get("operation_id")
        base = explicit or name
        if count > 1:
            base = f"{base}_{method}"
        if explicit and base in self.operation_ids:
            raise ValueError(f"route {route.path!r}: operation_id {base!r} is already used")
        unique, number = base, 2
        while unique in self.operation_ids:
            unique, number = f"{base}_{number}", number + 1
        self.operation_ids.add(unique)
        return unique

    # -- parameters ----------------------------------------------------------------------------

    def parameters(
        self, handler: Endpoint, convertors: dict[str, Convertor]
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        path_fields: dict[str, Field] = {}
        for field in handler.signature.fields:
            if field.source == "path":
                path_fields[field.wire_name] = field
        for name, convertor in convertors.items():  # every template parameter must be listed
            schema = _convertor_schema(convertor)
            parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
            path_field = path_fields.get(name)
            if path_field is not None:
                schema = _merge_path(schema, self.value_schema(path_field), convertor)
                _describe(parameter, path_field.marker)
            parameter["schema"] = schema
            result.append(parameter)
        for field in handler.signature.fields:
            if field.source not in ("query", "header", "cookie"):
                continue
            if not field.marker.include_in_schema:
                continue
            parameter = {"name": field.wire_name, "in": field.source}
            if field.required:
                parameter["required"] = True
            parameter["schema"] = self.value_schema(field)
            if field.sequence:
                parameter["style"] = "form" if field.source == "query" else "simple"
                parameter["explode"] = field.source == "query"
            _describe(parameter, field.marker)
            result.append(parameter)
        return result

    def value_schema(self, field: Field, *, nullable: bool = False) -> dict[str, Any]:
        """The schema of one field; values read from strings cannot be null."""
        hint = field.hint if nullable else _without_none(field.hint)
        # Not copied: a pydantic/msgspec placeholder is filled in place by finish().
        schema = self.generator.schema(hint)
        sequence = field.sequence or (field.source == "form" and get_origin(hint) is list)
        if sequence and isinstance(schema.get("items"), dict):
            _constrain(schema["items"], field.marker)
            _constrain_items(schema, field.marker)
            if field.required and schema.get("minItems", 0) < 1:
                schema["minItems"] = 1  # no value at all reads as missing
        else:
            _constrain(schema, field.marker)
        if field.default is not _EMPTY and field.default is not None:
            default = _jsonable(field.default)
            if default is not _EMPTY:
                schema["default"] = default
        if field.marker.examples:
            schema["examples"] = list(field.marker.examples)
        return schema

    # -- request body --------------------------------------------------------------------------

    def request_body(self, handler: Endpoint) -> dict[str, Any] | None:
        signature = handler.signature
        content: dict[str, Any] = {}
        required = False
        body_fields = signature.body_fields
        shown = [field for field in body_fields if field.marker.include_in_schema]
        if len(body_fields) == 1 and not body_fields[0].marker.alias:
            field = body_fields[0]
            if shown:
                content["application/json"] = {"schema": self.value_schema(field, nullable=True)}
                required = field.required
        elif shown:
            schema, required = self.fields_object(shown, nullable=True)
            content["application/json"] = {"schema": schema}
        forms = [field for field in signature.form_fields if field.marker.include_in_schema]
        if forms:
            schema, form_required = self.fields_object(forms, nullable=False)
            required = required or form_required
            if any(_has_upload(field.hint) for field in forms):
                media_types = ["multipart/form-data"]
            else:
                media_types = ["application/x-www-form-urlencoded", "multipart/form-data"]
            for media_type in media_types:
                content[media_type] = {"schema": schema}
        if not content:
            return None
        body: dict[str, Any] = {"content": content}
        if required:
            body["required"] = True
        return body

    def fields_object(self, fields: list[Field], *, nullable: bool) -> tuple[dict[str, Any], bool]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in fields:
            schema = self.value_schema(field, nullable=nullable)
            if field.marker.description:
                schema["description"] = field.marker.description
            if field.marker.deprecated:
                schema["deprecated"] = True
            properties[field.wire_name] = schema
            if field.required:
                required.append(field.wire_name)
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema, bool(required)

    # -- responses -----------------------------------------------------------------------------

    def responses(
        self, handler: Endpoint, route: Route, *, has_path_params: bool
    ) -> dict[str, Any]:
        options = handler.openapi
        responses: dict[str, Any] = {}
        description = options.get("response_description") or "Successful Response"
        status = handler.status_code
        hint = handler.signature.return_hint
        if hint is _EMPTY:
            responses[str(status or 200)] = {"description": description}
        elif hint is None or hint is _NONE:
            responses[str(status or 204)] = {"description": description}
        else:
            members = _union_members(hint)
            if _NONE in members and status is None:
                responses["204"] = {"description": "No Content"}
            success: dict[str, Any] = {"description": description}
            content = self.response_content(_without_none(hint))
            if content:
                success["content"] = content
            responses[str(status or 200)] = success
        if has_path_params:
            # A value the path convertor refuses never reaches the handler: the router's 404.
            self.used_builtins.add("HTTPError")
            responses["404"] = {
                "description": "Not Found",
                "content": _json_content({"$ref": REF_PREFIX + "HTTPError"}),
            }
        if any(field.source == "form" for field in handler.signature.fields):
            # Form parsing refuses a body that is not a form before any field is checked.
            self.used_builtins.add("HTTPError")
            for code, text in (("400", "Malformed form body"), ("415", "Not a form body")):
                responses[code] = {
                    "description": text,
                    "content": _json_content({"$ref": REF_PREFIX + "HTTPError"}),
                }
        if handler.signature.fields:
            self.used_builtins.update(("ValidationError", "HTTPValidationError"))
            responses["422"] = {
                "description": "Validation Error",
                "content": _json_content({"$ref": REF_PREFIX + "HTTPValidationError"}),
            }
        extra = options.get("responses")
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise ValueError(f"route {route.path!r}: responses must be a mapping")
            for code, response in extra.items():
                key = str(code)
                responses[key] = self.extra_response(key, response, responses.get(key), route)
        return dict(sorted(responses.items(), key=lambda item: item[0]))

    def response_content(self, hint: Any) -> dict[str, Any]:
        if isinstance(hint, type) and issubclass(hint, Response):
            media_type = hint.media_type
            if media_type is None:
                return {}
            if media_type == "application/json":
                return _json_content({})
            return {media_type: {}}
        if hint is str:
            return {"text/plain": {"schema": {"type": "string"}}}
        if hint in (bytes, bytearray, memoryview):
            return {"application/octet-stream": {}}
        return _json_content(self.generator.schema(hint))

    def extra_response(
        self, key: str, response: Any, existing: dict[str, Any] | None, route: Route
    ) -> dict[str, Any]:
        if not (key == "default" or key in {"1XX", "2XX", "3XX", "4XX", "5XX"} or _status(key)):
            raise ValueError(f"route {route.path!r}: responses: {key!r} is not a status code")
        if not isinstance(response, Mapping):
            raise ValueError(f"route {route.path!r}: responses[{key}] must be a mapping")
        result = dict(existing or {})
        options = dict(response)
        model = options.pop("model", None)
        result.update(options)
        if model is not None:
            result["content"] = self.response_content(model)
        if "description" not in result:
            status = _status(key)
            result["description"] = http.HTTPStatus(status).phrase if status else "Response"
        if "content" not in result and (key[0] in "45" or key == "default"):
            self.used_builtins.add("HTTPError")
            result["content"] = _json_content({"$ref": REF_PREFIX + "HTTPError"})
        return result


# -- helpers -----------------------------------------------------------------------------------


def _check_options(options: Mapping[str, Any], route: Route) -> None:
    for key in options:
        if key not in ROUTE_OPTIONS:
            close = difflib.get_close_matches(key, ROUTE_OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"route {route.path!r}: unknown option {key!r}{hint}")


def _status(key: str) -> int:
    try:
        status = int(key)
        http.HTTPStatus(status)
    except ValueError:
        return 0
    return status


def _title(name: str) -> str:
    return " ".join(word.capitalize() for word in name.split("_") if word) or name


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _union_members(hint: Any) -> tuple[Any, ...]:
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return get_args(hint)
    return (hint,)


def _without_none(hint: Any) -> Any:
    members = _union_members(hint)
    if _NONE not in members:
        return hint
    others = tuple(member for member in members if member is not _NONE)
    if len(others) == 1:
        return others[0]
    return Union[others]  # noqa: UP007 (built from a tuple at run time)


def _has_upload(hint: Any) -> bool:
    if getattr(hint, "__qualname__", "") == "UploadFile":
        return True
    return any(_has_upload(arg) for arg in get_args(hint))


def _constrain(schema: dict[str, Any], marker: Param) -> dict[str, Any]:
    """Add the marker's value constraints; JSON Schema applies each to its own type only,
    as :func:`rws.http.web.params._check_constraints` does."""
    kind = schema.get("type")
    numeric = kind in ("integer", "number")
    for key, value in (
        ("minimum", marker.ge),
        ("exclusiveMinimum", marker.gt),
        ("maximum", marker.le),
        ("exclusiveMaximum", marker.lt),
        ("minLength", marker.min_length),
        ("maxLength", marker.max_length),
        ("pattern", marker.pattern),
    ):
        if value is not None and not (numeric and key in _STRING_KEYWORDS):
            schema[key] = value
    return schema


_STRING_KEYWORDS = frozenset({"minLength", "maxLength", "pattern"})


def _constrain_items(schema: dict[str, Any], marker: Param) -> None:
    if marker.min_length is not None:
        schema["minItems"] = marker.min_length
    if marker.max_length is not None:
        schema["maxItems"] = marker.max_length


def _describe(parameter: dict[str, Any], marker: Param) -> None:
    if marker.description:
        parameter["description"] = marker.description
    if marker.deprecated:
        parameter["deprecated"] = True


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(dumps(value))
    except (TypeError, ValueError):
        return _EMPTY


def _convertor_schema(convertor: Convertor) -> dict[str, Any]:
    if isinstance(convertor, IntConvertor):
        return {"type": "integer", "minimum": 0}
    if isinstance(convertor, FloatConvertor):
        # Described by its wire form: the regex takes no sign and no exponent, so a client
        # sending 1e-05 for a "number" would get a 404.
        return {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}
    if isinstance(convertor, UUIDConvertor):
        return {"type": "string", "format": "uuid"}
    if isinstance(convertor, PathConvertor):
        return {"type": "string"}
    if isinstance(convertor, StringConvertor):
        return {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
    return {"type": "string", "pattern": f"^(?:{convertor.regex})$"}


def _merge_path(
    convertor_schema: dict[str, Any], field_schema: dict[str, Any], convertor: Convertor
) -> dict[str, Any]:
    """The handler's declared type, narrowed by what the convertor lets through."""
    if convertor_schema.get("type") == "string" and field_schema.get("type") in (
        "integer",
        "number",
    ):
        return convertor_schema  # the wire form is all a client can be told
    if field_schema.get("type") == convertor_schema.get("type"):
        merged = {**convertor_schema, **field_schema}
        minimum = convertor_schema.get("minimum")
        if minimum is not None and "exclusiveMinimum" not in field_schema:
            merged["minimum"] = max(minimum, field_schema.get("minimum", minimum))
        return merged
    if not field_schema or field_schema == {"type": "string"}:
        return convertor_schema
    return {"allOf": [convertor_schema, field_schema]}


# -- serving -----------------------------------------------------------------------------------


class OpenAPI:
    """The document for one app, built once on first use and kept.

    When the app is served below a ``root_path`` (a proxy prefix, or a :class:`Mount`) and
    no ``servers`` were given, the served document names that prefix as its server, so the
    docs page and generated clients call the right URLs.
    """

    def __init__(
        self,
        app: App | Router,
        *,
        title: str = "API",
        version: str = "0.1.0",
        description: str | None = None,
        servers: Sequence[str | Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(title, str) or not title:
            raise ValueError(f"title must be a non-empty string, got {title!r}")
        if not isinstance(version, str) or not version:
            raise ValueError(f"version must be a non-empty string, got {version!r}")
        self.app = app
        self.title = title
        self.version = version
        self.description = description
        self.servers = _servers(servers) if servers else None
        self._document: dict[str, Any] | None = None
        self._rendered: dict[str, bytes] = {}

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = openapi_document(
                self.app,
                title=self.title,
                version=self.version,
                description=self.description,
                servers=self.servers,
            )
        return self._document

    def render(self, root_path: str = "") -> bytes:
        """The document as JSON, naming ``root_path`` as the server when none were given."""
        rendered = self._rendered.get(root_path)
        if rendered is None:
            document = self.document()
            if root_path and not self.servers:
                document = {**document, "servers": [{"url": root_path}]}
            rendered = json.dumps(document, ensure_ascii=False).encode("utf-8")
            if len(self._rendered) >= 16:  # root paths come from server config: few
                self._rendered.clear()
            self._rendered[root_path] = rendered
        return rendered

    def connect_sources(self) -> list[str]:
        """Origins the docs page may call besides its own (absolute server URLs)."""
        origins = []
        for server in self.servers or ():
            parts = urlsplit(str(server["url"]))
            if parts.scheme in ("http", "https") and parts.netloc:
                origins.append(f"{parts.scheme}://{parts.netloc}")
        return origins


def add_openapi(
    app: App,
    *,
    title: str = "API",
    version: str = "0.1.0",
    description: str | None = None,
    servers: Sequence[str | Mapping[str, Any]] | None = None,
    path: str = "/openapi.json",
    docs_path: str | None = "/docs",
) -> OpenAPI:
    """Serve ``app``'s OpenAPI document at ``path`` and a docs page at ``docs_path``.

    The document is built when the app starts (so a bad route option fails the startup,
    not the first request to ``path``) or on first use, then kept. The docs page is one
    self-contained HTML page (no CDN, a strict Content-Security-Policy) listing every
    operation with a form to try it.
    """
    for option, value in (("path", path), ("docs_path", docs_path)):
        if value is not None and (not isinstance(value, str) or not value.startswith("/")):
            raise ValueError(f"{option} must be a path starting with '/', got {value!r}")
    if path == docs_path:
        raise ValueError("path and docs_path must differ")
    schema = OpenAPI(app, title=title, version=version, description=description, servers=servers)

    async def openapi_json(request: Request) -> Response:
        body = schema.render(request.scope.get("root_path", ""))
        return Response(body, media_type="application/json")

    app.add_route(path, openapi_json, ["GET"], name="openapi", include_in_schema=False)
    if docs_path is not None:
        page = DocsPage(schema.title, schema.connect_sources())

        async def openapi_docs(request: Request) -> Response:
            return page.response(request.scope.get("root_path", "") + path)

        app.add_route(
            docs_path, openapi_docs, ["GET"], name="openapi_docs", include_in_schema=False
        )
    app.on_startup(schema.document)
    return schema
