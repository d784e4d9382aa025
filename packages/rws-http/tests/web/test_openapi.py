"""OpenAPI 3.1 generation: valid documents, exact shapes, served under both servers, fuzzed.

The generated documents are checked by ``openapi-spec-validator`` (3.1), every ``$ref`` is
resolved, and schemathesis drives a small CRUD app through its own document (real HTTP,
rws-http and uvicorn) expecting no server error and responses that match the schemas.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from rws.http.web import (
    App,
    Body,
    Cookie,
    Form,
    Header,
    HTMLResponse,
    Query,
    Request,
    Response,
    Route,
    Router,
    WebSocket,
)
from rws.http.web.forms import UploadFile
from rws.http.web.openapi import add_openapi, openapi_document
from rws.http.web.params import Path as PathParam

from . import openapi_example_app
from .conftest import Served

# -- an app using every supported type and source ----------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Address:
    street: str
    zip: str | None = None


@dataclasses.dataclass
class Person:
    """A person with an address."""

    name: str
    age: int
    address: Address
    color: Color = Color.RED
    friends: list[Person] = dataclasses.field(default_factory=list)


class Note(TypedDict):
    text: str
    stars: NotRequired[int]


def build_full_app() -> App:
    app = App()

    @app.get("/scalars/{item_id:int}/{ratio:float}/{key:uuid}/{name}")
    async def scalars(
        item_id: int,
        ratio: float,
        key: uuid.UUID,
        name: Annotated[str, PathParam(min_length=2)],
        text: str,
        count: Annotated[int, Query(ge=1, lt=10)] = 1,
        share: Annotated[float, Query(gt=0, le=1)] = 0.5,
        flag: bool = False,
        amount: decimal.Decimal | None = None,
        when: datetime.datetime | None = None,
        day: datetime.date | None = None,
        at: datetime.time | None = None,
        ident: uuid.UUID | None = None,
        order: Literal["asc", "desc"] = "asc",
        color: Color | None = None,
        level: Level = Level.LOW,
        either: int | str = 0,
        ids: Annotated[list[int] | None, Query(min_length=1, max_length=3, ge=0)] = None,
        labels: Annotated[set[str] | None, Query(alias="label")] = None,
        code: Annotated[str, Query(pattern=r"^[a-z]+$", examples=("abc",))] = "a",
        old: Annotated[str | None, Query(deprecated=True, description="gone soon")] = None,
        hidden: Annotated[str | None, Query(include_in_schema=False)] = None,
        user_agent: Annotated[str | None, Header()] = None,
        x_tags: Annotated[list[str] | None, Header()] = None,
        session: Annotated[str | None, Cookie()] = None,
    ) -> dict[str, Any]:
        return {}

    @app.post("/people", status_code=201, tags=["people"], summary="Add someone")
    async def add_person(person: Person) -> Person:
        """Store a person.

        Long description.\fInternal notes cut off."""
        return person

    @app.post("/bodies", deprecated=True, operation_id="many_bodies")
    async def bodies(
        note: Note,
        counts: dict[str, int],
        pair: tuple[int, str],
        people: list[Person],
        limit: Annotated[int | None, Body(ge=0)] = None,
    ) -> list[Note]:
        return []

    @app.put("/aliased")
    async def aliased(value: Annotated[int, Body(alias="v")]) -> None:
        return None

    @app.post("/scalar-body")
    async def scalar_body(value: Annotated[str, Body(max_length=5)]) -> str:
        return value

    @app.post("/upload")
    async def upload(
        file: UploadFile,
        more: list[UploadFile],
        title: Annotated[str, Form(min_length=1)],
        tags: Annotated[list[str] | None, Form()] = None,
    ) -> dict[str, int]:
        return {}

    @app.post("/login")
    async def login(user: Annotated[str, Form()], password: Annotated[str, Form()]) -> None:
        return None

    @app.get("/maybe", response_description="The thing, if any")
    async def maybe() -> Address | None:
        return None

    @app.get("/html")
    async def html() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>")

    @app.get("/raw")
    async def raw() -> Response:
        return Response(b"")

    @app.get("/bytes")
    async def blob() -> bytes:
        return b""

    @app.get("/untyped")
    async def untyped():  # type: ignore[no-untyped-def]
        return {}

    @app.route("/multi", ["GET", "POST"])
    async def multi(request: Request) -> dict[str, str]:
        return {}

    @app.get("/errors", responses={404: {"description": "Missing"}, "5XX": {"model": Address}})
    async def errors() -> None:
        return None

    @app.get("/secret", include_in_schema=False)
    async def secret() -> None:
        return None

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.close()

    async def raw_asgi(scope: Any, receive: Any, send: Any) -> None:
        await Response(b"")(scope, receive, send)

    app.add_route("/asgi", raw_asgi)

    inner = App()

    @inner.get("/things/{thing_id:int}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {}

    @inner.get("/everything/{rest:path}")
    async def everything(rest: str) -> None:
        return None

    async def list_items() -> list[int]:  # same name as another operation
        return []

    inner.add_route("/items", list_items, ["GET"])
    app.mount("/v1/{tenant}", inner)
    app.mount("/r", Router([Route("/items", list_items_endpoint(), methods=["GET"])]))

    @app.get("/items")
    async def list_items_top() -> list[int]:
        return []

    app.add_route("/dupe", list_items, ["GET"])
    return app


def list_items_endpoint() -> Any:
    from rws.http.web.endpoints import Endpoint

    async def list_items() -> list[str]:
        return []

    return Endpoint(list_items)


def full_document() -> dict[str, Any]:
    return openapi_document(build_full_app(), title="Full", version="2.0.0")


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    result: dict[str, Any] = document["paths"][path][method]
    return result


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    ref = schema["$ref"]
    assert ref.startswith(prefix)
    result: dict[str, Any] = document["components"]["schemas"][ref[len(prefix) :]]
    return result


# -- validity ----------------------------------------------------------------------------------


def test_full_document_is_valid_openapi_31() -> None:
    document = full_document()
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "Full", "version": "2.0.0"}
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_ref_resolves_and_no_defs_or_nullable_remain() -> None:
    document = full_document()
    refs = [item for key, item in walk(document) if key == "$ref"]
    assert len(refs) > 10
    for ref in refs:
        resolve(document, {"$ref": ref})
    keys = {key for key, _ in walk(document)}
    assert "$defs" not in keys
    assert "nullable" not in keys  # OpenAPI 3.0 only


def test_example_app_document_is_valid() -> None:
    app = openapi_example_app.create_app()
    document = openapi_document(app, title="Items", version="1.0.0")
    validate(document, cls=OpenAPIV31SpecValidator)
    assert set(document["paths"]) == {
        "/items",
        "/items/{item_id}",
        "/items/{item_id}/price",
        "/search",
        "/health",
    }


# -- exact shapes ------------------------------------------------------------------------------


def test_parameters_exact_shape() -> None:
    document = full_document()
    op = operation(document, "/scalars/{item_id}/{ratio}/{key}/{name}", "get")
    params = {(p["in"], p["name"]): p for p in op["parameters"]}
    assert params["path", "item_id"] == {
        "name": "item_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
    # The float convertor takes no sign or exponent: described by its wire form.
    assert params["path", "ratio"]["schema"] == {
        "type": "string",
        "pattern": "^[0-9]+(\\.[0-9]+)?$",
    }
    assert params["path", "key"]["schema"] == {"type": "string", "format": "uuid"}
    assert params["path", "name"]["schema"] == {
        "type": "string",
        "minLength": 2,
        "pattern": "^[^/]+$",
    }
    assert params["query", "text"] == {
        "name": "text",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
    }
    assert params["query", "count"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "exclusiveMaximum": 10,
        "default": 1,
    }
    assert params["query", "share"]["schema"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1,
        "default": 0.5,
    }
    assert params["query", "flag"]["schema"] == {"type": "boolean", "default": False}
    assert params["query", "amount"]["schema"] == {
        "type": ["number", "string"],
        "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,6})?$",
    }
    assert params["query", "when"]["schema"] == {"type": "string", "format": "date-time"}
    assert params["query", "day"]["schema"] == {"type": "string", "format": "date"}
    assert params["query", "at"]["schema"] == {"type": "string", "format": "time"}
    assert params["query", "order"]["schema"] == {
        "enum": ["asc", "desc"],
        "type": "string",
        "default": "asc",
    }
    assert params["query", "color"]["schema"] == {"$ref": "#/components/schemas/Color"}
    assert document["components"]["schemas"]["Color"] == {
        "enum": ["red", "blue"],
        "type": "string",
        "title": "Color",
    }
    assert params["query", "level"]["schema"] == {
        "$ref": "#/components/schemas/Level",
        "default": 1,
    }
    assert params["query", "either"]["schema"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "default": 0,
    }
    assert params["query", "ids"] == {
        "name": "ids",
        "in": "query",
        "schema": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 1,
            "maxItems": 3,
        },
        "style": "form",
        "explode": True,
    }
    assert params["query", "label"]["schema"] == {
        "type": "array",
        "items": {"type": "string"},
        "uniqueItems": True,
    }
    assert params["query", "code"]["schema"] == {
        "type": "string",
        "pattern": "^[a-z]+$",
        "default": "a",
        "examples": ["abc"],
    }
    assert params["query", "old"]["deprecated"] is True
    assert params["query", "old"]["description"] == "gone soon"
    assert ("query", "hidden") not in params
    assert params["header", "user-agent"]["schema"] == {"type": "string"}
    assert params["header", "x-tags"]["style"] == "simple"
    assert params["header", "x-tags"]["explode"] is False
    assert params["cookie", "session"] == {
        "name": "session",
        "in": "cookie",
        "schema": {"type": "string"},
    }
    assert "requestBody" not in op
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }
    # A path value the convertor refuses is the router's 404.
    assert op["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPError"
    }
    assert set(op["responses"]) == {"200", "404", "422"}


def test_json_body_of_one_dataclass_is_the_whole_body() -> None:
    document = full_document()
    op = operation(document, "/people", "post")
    assert op["summary"] == "Add someone"
    assert op["description"] == "Store a person.\n\nLong description."
    assert op["tags"] == ["people"]
    assert op["operationId"] == "add_person"
    assert op["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Person"}}},
    }
    assert op["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Person"
    }
    schemas = document["components"]["schemas"]
    assert schemas["Person"] == {
        "title": "Person",
        "type": "object",
        "description": "A person with an address.",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "address": {"$ref": "#/components/schemas/Address"},
            "color": {"$ref": "#/components/schemas/Color"},
            "friends": {"type": "array", "items": {"$ref": "#/components/schemas/Person"}},
        },
        "required": ["name", "age", "address"],
        "additionalProperties": False,
    }
    assert schemas["Address"]["properties"]["zip"] == {"type": ["string", "null"]}


def test_several_body_fields_make_an_object() -> None:
    document = full_document()
    op = operation(document, "/bodies", "post")
    assert op["operationId"] == "many_bodies"
    assert op["deprecated"] is True
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert op["requestBody"]["required"] is True
    assert schema["required"] == ["note", "counts", "pair", "people"]
    props = schema["properties"]
    assert props["note"] == {"$ref": "#/components/schemas/Note"}
    assert props["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "items": False,
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["limit"] == {"type": ["integer", "null"], "minimum": 0}
    assert document["components"]["schemas"]["Note"] == {
        "title": "Note",
        "type": "object",
        "properties": {"text": {"type": "string"}, "stars": {"type": "integer"}},
        "required": ["text"],
        "additionalProperties": False,
    }
    success = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert success == {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}


def test_aliased_and_scalar_bodies() -> None:
    document = full_document()
    aliased = operation(document, "/aliased", "put")
    assert aliased["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {"v": {"type": "integer"}},
        "required": ["v"],
    }
    assert set(aliased["responses"]) == {"204", "422"}
    assert "content" not in aliased["responses"]["204"]
    scalar = operation(document, "/scalar-body", "post")
    assert scalar["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "string",
        "maxLength": 5,
    }
    assert scalar["responses"]["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}


def test_forms_and_uploads() -> None:
    document = full_document()
    upload = operation(document, "/upload", "post")
    content = upload["requestBody"]["content"]
    assert list(content) == ["multipart/form-data"]
    binary = {"type": "string", "contentMediaType": "application/octet-stream"}
    assert content["multipart/form-data"]["schema"] == {
        "type": "object",
        "properties": {
            "file": binary,
            "more": {"type": "array", "items": binary, "minItems": 1},
            "title": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["file", "more", "title"],
    }
    assert set(upload["responses"]) == {"200", "400", "415", "422"}
    login = operation(document, "/login", "post")
    assert set(login["requestBody"]["content"]) == {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }


def test_responses_from_return_annotations() -> None:
    document = full_document()
    maybe = operation(document, "/maybe", "get")["responses"]
    assert maybe["200"]["description"] == "The thing, if any"
    assert maybe["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Address"
    }
    assert maybe["204"] == {"description": "No Content"}
    assert "422" not in maybe  # nothing to validate
    html = operation(document, "/html", "get")["responses"]["200"]
    assert html == {"description": "Successful Response", "content": {"text/html": {}}}
    assert operation(document, "/raw", "get")["responses"]["200"] == {
        "description": "Successful Response"
    }
    assert operation(document, "/bytes", "get")["responses"]["200"]["content"] == {
        "application/octet-stream": {}
    }
    assert operation(document, "/untyped", "get")["responses"] == {
        "200": {"description": "Successful Response"}
    }
    errors = operation(document, "/errors", "get")["responses"]
    assert errors["404"] == {
        "description": "Missing",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}},
    }
    assert errors["5XX"] == {
        "description": "Response",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Address"}}},
    }


def test_omitted_routes_and_methods() -> None:
    document = full_document()
    paths = document["paths"]
    assert "/ws" not in paths
    assert "/secret" not in paths
    assert "/asgi" not in paths
    assert all("head" not in item for item in paths.values())
    multi = paths["/multi"]
    assert set(multi) == {"get", "post"}
    assert multi["get"]["operationId"] == "multi_get"
    assert multi["post"]["operationId"] == "multi_post"
    assert "parameters" not in multi["get"]  # the Request parameter is not a parameter
    assert "422" not in multi["get"]["responses"]


def test_mounts_prefix_paths_and_operation_ids_are_unique() -> None:
    document = full_document()
    paths = document["paths"]
    thing = paths["/v1/{tenant}/things/{thing_id}"]["get"]
    assert [(p["name"], p["in"], p["schema"]) for p in thing["parameters"]] == [
        ("tenant", "path", {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}),
        ("thing_id", "path", {"type": "integer", "minimum": 0}),
    ]
    everything = paths["/v1/{tenant}/everything/{rest}"]["get"]
    assert [p["schema"] for p in everything["parameters"]] == [
        {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
        {"type": "string"},
    ]
    assert "/r/items" in paths
    ids = [
        op["operationId"]
        for item in paths.values()
        for op in item.values()  # every key is a method here
    ]
    assert len(ids) == len(set(ids))
    assert paths["/v1/{tenant}/items"]["get"]["operationId"] == "list_items"
    assert paths["/r/items"]["get"]["operationId"] == "list_items_2"
    assert paths["/dupe"]["get"]["operationId"] == "list_items_3"


def test_same_class_name_gets_distinct_components() -> None:
    def make() -> type:
        @dataclasses.dataclass
        class Thing:
            other: int

        return Thing

    first, second = make(), make()
    app = App()

    async def a(thing: Any) -> Any:
        return thing

    a.__annotations__ = {"thing": first, "return": second}  # local classes: no strings
    app.add_route("/a", a, ["POST"])

    document = openapi_document(app, title="T", version="1")
    validate(document, cls=OpenAPIV31SpecValidator)
    names = set(document["components"]["schemas"])
    assert "Thing" in names
    assert len([name for name in names if "Thing" in name]) == 2


def test_bad_options_are_named() -> None:
    app = App()

    @app.get("/x", sumary="typo")
    async def x() -> None:
        return None

    with pytest.raises(ValueError, match=r"unknown option 'sumary' \(did you mean 'summary'\?\)"):
        openapi_document(app, title="T", version="1")

    app = App()
    app.add_route("/a", x, ["GET"], operation_id="same")
    app.add_route("/b", x, ["GET"], operation_id="same")
    with pytest.raises(ValueError, match="operation_id 'same' is already used"):
        openapi_document(app, title="T", version="1")

    app = App()
    app.add_route("/a", x, ["GET"], responses={"nope": {}})
    with pytest.raises(ValueError, match="'nope' is not a status code"):
        openapi_document(app, title="T", version="1")

    with pytest.raises(ValueError, match="title"):
        openapi_document(App(), title="", version="1")
    with pytest.raises(ValueError, match="servers"):
        openapi_document(App(), title="T", version="1", servers="http://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="docs_path"):
        add_openapi(App(), docs_path="docs")
    with pytest.raises(ValueError, match="path"):
        add_openapi(App(), path="/same", docs_path="/same")


def test_servers_and_description() -> None:
    document = openapi_document(
        App(),
        title="T",
        version="1",
        description="About",
        servers=["https://api.example.com", {"url": "/v2", "description": "two"}],
    )
    assert document["info"]["description"] == "About"
    assert document["servers"] == [
        {"url": "https://api.example.com"},
        {"url": "/v2", "description": "two"},
    ]
    assert document["paths"] == {}
    assert "components" not in document


# -- pydantic and msgspec ----------------------------------------------------------------------


def test_pydantic_models_are_hoisted() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Tag(pydantic.BaseModel):
        label: str = pydantic.Field(min_length=1)

    class Article(pydantic.BaseModel):
        title: str
        tags: list[Tag] = pydantic.Field(default_factory=list)
        rating: int | None = None

    app = App()

    async def create(article: Any) -> Any:
        return article

    async def tags() -> Any:
        return []

    create.__annotations__ = {"article": Article, "return": Article}
    tags.__annotations__ = {"return": list[Tag]}
    app.add_route("/articles", create, ["POST"])
    app.add_route("/tags", tags, ["GET"])

    document = openapi_document(app, title="T", version="1")
    validate(document, cls=OpenAPIV31SpecValidator)
    schemas = document["components"]["schemas"]
    body = operation(document, "/articles", "post")["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/Article"}
    assert schemas["Article"]["properties"]["tags"]["items"] == {"$ref": "#/components/schemas/Tag"}
    assert schemas["Tag"]["properties"]["label"]["minLength"] == 1
    assert schemas["Article"]["properties"]["rating"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}],
        "default": None,
        "title": "Rating",
    }
    listed = operation(document, "/tags", "get")["responses"]["200"]["content"]
    assert listed["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Tag"},
    }
    assert "$defs" not in {key for key, _ in walk(document)}


def test_pydantic_name_clash_with_a_dataclass_is_renamed() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Inner(pydantic.BaseModel):
        a: int

    class Outer(pydantic.BaseModel):
        inner: Inner

    @dataclasses.dataclass
    class InnerDC:
        b: str

    InnerDC.__name__ = "Inner"
    app = App()

    async def one(value: Any) -> Any:
        raise NotImplementedError

    one.__annotations__ = {"value": InnerDC, "return": Outer}
    app.add_route("/one", one, ["POST"])

    document = openapi_document(app, title="T", version="1")
    validate(document, cls=OpenAPIV31SpecValidator)
    schemas = document["components"]["schemas"]
    assert schemas["Inner"]["properties"] == {"b": {"type": "string"}}
    assert schemas["Outer"]["properties"]["inner"] == {"$ref": "#/components/schemas/Inner_2"}
    assert schemas["Inner_2"]["properties"]["a"]["type"] == "integer"


def test_msgspec_structs() -> None:
    msgspec = pytest.importorskip("msgspec")

    # defstruct: real types, not strings a local class would leave unresolvable.
    point = msgspec.defstruct("Point", [("x", int), ("y", int, 0)])
    shape_type = msgspec.defstruct("Shape", [("points", list[point]), ("name", str | None, None)])

    app = App()

    async def create(shape: Any) -> Any:
        return shape

    create.__annotations__ = {"shape": shape_type, "return": shape_type}
    app.add_route("/shapes", create, ["POST"])

    document = openapi_document(app, title="T", version="1")
    validate(document, cls=OpenAPIV31SpecValidator)
    schemas = document["components"]["schemas"]
    op = operation(document, "/shapes", "post")
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Shape"
    }
    assert schemas["Shape"]["properties"]["points"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Point"},
    }
    assert schemas["Point"]["required"] == ["x"]


# -- served ------------------------------------------------------------------------------------


async def test_document_and_docs_are_served(served: Served) -> None:
    app = openapi_example_app.create_app()
    base = await served(app)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        document = response.json()
        assert document == openapi_document(app, title="Items", version="1.0.0")
        validate(document, cls=OpenAPIV31SpecValidator)
        assert "/openapi.json" not in document["paths"]
        assert "/docs" not in document["paths"]
        assert (await client.head("/openapi.json")).status_code == 200

        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert docs.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script type="application/json" id="spec-url">"/openapi.json"</script>' in docs.text
        assert "<title>Items</title>" in docs.text
        assert "cdn" not in docs.text.lower()
        policy = docs.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "connect-src 'self'" in policy
        script = re.search(r"<script>(.*?)</script>", docs.text, re.S)
        assert script is not None
        import base64
        import hashlib

        digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
        assert f"script-src 'sha256-{digest}'" in policy


async def test_mounted_app_names_its_prefix_as_server(served: Served) -> None:
    inner = App()

    @inner.get("/hello")
    async def hello(name: str = "you") -> dict[str, str]:
        return {"hello": name}

    add_openapi(inner, title="Inner <api>", version="3")
    outer = App()
    outer.mount("/api", inner)
    base = await served(outer)
    async with httpx.AsyncClient(base_url=base) as client:
        document = (await client.get("/api/openapi.json")).json()
        assert document["servers"] == [{"url": "/api"}]
        assert list(document["paths"]) == ["/hello"]
        assert (await client.get("/api/hello", params={"name": "x"})).json() == {"hello": "x"}
        docs = await client.get("/api/docs")
        assert '"/api/openapi.json"' in docs.text
        assert "<title>Inner &lt;api&gt;</title>" in docs.text


async def test_a_bad_route_option_fails_the_startup() -> None:
    app = App()

    @app.get("/x", tag=["typo"])
    async def x() -> None:
        return None

    add_openapi(app)
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(ValueError, match="unknown option 'tag'"):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"


# -- schemathesis ------------------------------------------------------------------------------


def schemathesis_command() -> str:
    found = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
    found = found or shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed")
    return found


async def run_schemathesis(base: str, cwd: Path, *options: str) -> str:
    process = await asyncio.create_subprocess_exec(
        schemathesis_command(),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--seed",
        "20261122",
        "--workers",
        "1",
        "--no-color",
        *options,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(300):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "No issues found" in text, text
    return text


async def test_schemathesis_finds_no_errors(served: Served, tmp_path: Path) -> None:
    """Positive and negative data, stateful links: no 5xx, documented statuses only,
    responses matching their schemas, invalid data refused, valid data accepted."""
    base = await served(openapi_example_app.create_app())
    text = await run_schemathesis(base, tmp_path, "--max-examples", "25")
    assert "Selected: 8/8" in text, text


async def test_schemathesis_valid_data_for_every_type_is_accepted(
    served: Served, tmp_path: Path
) -> None:
    """Every type and source the framework validates: whatever the document calls valid,
    the handler accepts (the schemas are never stricter or looser than validation)."""
    app = build_full_app()
    add_openapi(app, title="Full", version="2.0.0")
    base = await served(app)
    text = await run_schemathesis(base, tmp_path, "--max-examples", "15", "--mode", "positive")
    assert "Selected: 21/21" in text, text


def test_document_is_built_once() -> None:
    app = openapi_example_app.create_app()
    schema = add_openapi(App(), title="Once")
    assert schema.document() is schema.document()
    assert schema.render() is schema.render()
    assert json.loads(schema.render("/prefix"))["servers"] == [{"url": "/prefix"}]
    pinned = add_openapi(app, servers=["https://api.example.com"], path="/o.json", docs_path=None)
    assert json.loads(pinned.render("/prefix"))["servers"] == [{"url": "https://api.example.com"}]
    assert pinned.connect_sources() == ["https://api.example.com"]


async def test_docs_page_script_is_valid_javascript(served: Served, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot parse the docs page's script")
    base = await served(openapi_example_app.create_app())
    async with httpx.AsyncClient(base_url=base) as client:
        page = (await client.get("/docs")).text
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script is not None
    source = tmp_path / "docs.js"
    source.write_text(script.group(1))
    process = await asyncio.create_subprocess_exec(
        node, "--check", str(source), stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
