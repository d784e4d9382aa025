"""Typed handler parameters: path, query, header, cookie and JSON body (dataclass, TypedDict,
pydantic, msgspec), constraints, and the 422 error list; served by both servers."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import httpx
import pytest

from rws.http.web import App, Body, Cookie, Header, Query, Request
from rws.http.web.validation import Errors, convert, is_missing


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Address:
    city: str
    zip: str | None = None


@dataclasses.dataclass
class NewUser:
    name: str
    age: int
    tags: list[str] = dataclasses.field(default_factory=list)
    address: Address | None = None


class Patch(TypedDict):
    title: str
    done: NotRequired[bool]


def make_app() -> App:
    app = App()

    @app.get("/scalars/{id:int}/{key}")
    async def scalars(
        id: int,
        key: uuid.UUID,
        when: datetime.date,
        ratio: float = 1.0,
        amount: Decimal = Decimal("0"),
        color: Color = Color.RED,
        order: Literal["asc", "desc"] = "asc",
        flag: bool = False,
        tags: Annotated[list[int] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        q: Annotated[str | None, Query(alias="search", min_length=2, pattern="^[a-z]+$")] = None,
    ) -> dict[str, Any]:
        return {
            "id": id,
            "key": str(key),
            "when": when.isoformat(),
            "ratio": ratio,
            "amount": str(amount),
            "color": color.value,
            "order": order,
            "flag": flag,
            "tags": tags,
            "limit": limit,
            "q": q,
        }

    @app.get("/meta")
    async def meta(
        user_agent: Annotated[str, Header()],
        x_ids: Annotated[list[int], Header()] = [],  # noqa: B006 (never mutated)
        session: Annotated[str | None, Cookie()] = None,
    ) -> dict[str, Any]:
        return {"ua": user_agent, "ids": x_ids, "session": session}

    @app.post("/users", status_code=201)
    async def create(user: NewUser) -> NewUser:
        return user

    @app.patch("/todo/{id:int}")
    async def patch_todo(id: int, patch: Patch) -> dict[str, Any]:
        return {"id": id, **patch}

    @app.post("/embed")
    async def embed(
        item: Annotated[dict[str, int], Body()], note: Annotated[str, Body()] = ""
    ) -> dict[str, Any]:
        return {"item": item, "note": note}

    @app.post("/raw")
    async def raw(request: Request, payload: list[float]) -> dict[str, Any]:
        return {"sum": sum(payload), "method": request.method}

    return app


async def test_scalars_are_parsed_from_strings(served: Any) -> None:
    key = uuid.uuid4()
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        answer = await client.get(
            f"/scalars/7/{key}",
            params=[
                ("when", "2026-11-22"),
                ("ratio", "0.5"),
                ("amount", "10.25"),
                ("color", "blue"),
                ("order", "desc"),
                ("flag", "on"),
                ("tags", "1"),
                ("tags", "2"),
                ("limit", "100"),
                ("search", "abc"),
            ],
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "id": 7,
            "key": str(key),
            "when": "2026-11-22",
            "ratio": 0.5,
            "amount": "10.25",
            "color": "blue",
            "order": "desc",
            "flag": True,
            "tags": [1, 2],
            "limit": 100,
            "q": "abc",
        }
        defaults = await client.get(f"/scalars/1/{key}?when=2026-01-01")
        assert defaults.json()["limit"] == 10 and defaults.json()["tags"] is None


async def test_every_error_is_reported_at_once(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        answer = await client.get(
            "/scalars/7/not-a-uuid",
            params={
                "ratio": "nan",
                "color": "green",
                "order": "sideways",
                "flag": "maybe",
                "tags": "x",
                "limit": "0",
                "search": "A",
            },
        )
    assert answer.status_code == 422
    errors = {tuple(error["loc"]): error["type"] for error in answer.json()["detail"]}
    assert errors == {
        ("path", "key"): "uuid_parsing",
        ("query", "when"): "missing",
        ("query", "ratio"): "finite_number",
        ("query", "color"): "enum",
        ("query", "order"): "literal_error",
        ("query", "flag"): "bool_parsing",
        ("query", "tags", 0): "int_parsing",
        ("query", "limit"): "number_range",
        ("query", "search"): "string_too_short",
    }
    first = answer.json()["detail"][0]
    assert set(first) >= {"loc", "msg", "type"}


async def test_headers_and_cookies(served: Any) -> None:
    base = await served(make_app())
    async with httpx.AsyncClient(base_url=base, cookies={"session": "abc"}) as client:
        answer = await client.get(
            "/meta", headers=[("user-agent", "tester"), ("x-ids", "1"), ("x-ids", "2")]
        )
        assert answer.json() == {"ua": "tester", "ids": [1, 2], "session": "abc"}
        bad = await client.get("/meta", headers={"x-ids": "one"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["header", "x-ids", 0]


async def test_json_bodies_into_dataclasses_and_typeddicts(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        body = {"name": "Ana", "age": 30, "address": {"city": "Lyon"}}
        created = await client.post("/users", json=body)
        assert created.status_code == 201
        assert created.json() == {**body, "tags": [], "address": {"city": "Lyon", "zip": None}}
        wrong = await client.post(
            "/users", json={"name": "Ana", "age": "30", "address": {"zip": 1}, "extra": True}
        )
        assert wrong.status_code == 422
        locs = {tuple(error["loc"]): error["type"] for error in wrong.json()["detail"]}
        assert locs == {
            ("body", "age"): "int_type",  # JSON "30" is a string, not an int
            ("body", "address", "city"): "missing",
            ("body", "address", "zip"): "string_type",
            ("body", "extra"): "extra_forbidden",
        }
        patched = await client.patch("/todo/3", json={"title": "x"})
        assert patched.json() == {"id": 3, "title": "x"}
        missing = await client.post("/users")
        assert missing.json()["detail"] == [
            {"loc": ["body"], "msg": "field required", "type": "missing"}
        ]
        not_json = await client.post(
            "/users", content=b"{", headers={"content-type": "application/json"}
        )
        assert not_json.json()["detail"][0]["type"] == "json_invalid"
        text = await client.post("/users", content=b"{}", headers={"content-type": "text/plain"})
        assert text.json()["detail"][0]["type"] == "content_type"


async def test_several_body_params_are_embedded(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        answer = await client.post("/embed", json={"item": {"a": 1}, "note": "hi"})
        assert answer.json() == {"item": {"a": 1}, "note": "hi"}
        bad = await client.post("/embed", json={"item": {"a": "x"}})
        assert bad.json()["detail"][0]["loc"] == ["body", "item", "a"]
        raw = await client.post("/raw", json=[1, 2.5])
        assert raw.json() == {"sum": 3.5, "method": "POST"}


async def test_pydantic_models(served: Any) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Item(pydantic.BaseModel):
        name: str
        price: float = pydantic.Field(gt=0)

    app = App()

    async def create(item: Item) -> Item:
        return item

    create.__annotations__ = {"item": Item, "return": Item}
    app.add_route("/items", create, ["POST"])
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        good = await client.post("/items", json={"name": "pen", "price": 2})
        assert good.json() == {"name": "pen", "price": 2.0}
        bad = await client.post("/items", json={"name": "pen", "price": -1})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "price"]
        assert bad.json()["detail"][0]["type"] == "greater_than"


async def test_msgspec_structs(served: Any) -> None:
    msgspec = pytest.importorskip("msgspec")

    class Point(msgspec.Struct):
        x: int
        y: int

    app = App()

    async def move(point: Point) -> Point:
        return Point(point.x + 1, point.y + 1)

    move.__annotations__ = {"point": Point, "return": Point}
    app.add_route("/move", move, ["POST"])
    async with httpx.AsyncClient(base_url=await served(app)) as client:
        assert (await client.post("/move", json={"x": 1, "y": 2})).json() == {"x": 2, "y": 3}
        bad = await client.post("/move", json={"x": "a", "y": 2})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "x"]


@pytest.mark.parametrize(
    ("value", "hint", "from_string", "expected"),
    [
        ("12", int, True, 12),
        ("-3", int, True, -3),
        ("1e3", int, True, None),
        ("1" * 5000, int, True, None),  # no quadratic int() on huge digit strings
        (True, int, False, None),  # bool is not an int in JSON
        (2.0, int, False, 2),
        ("inf", float, True, None),
        ("yes", bool, True, True),
        (
            "2026-11-22T10:00:00Z",
            datetime.datetime,
            True,
            datetime.datetime(2026, 11, 22, 10, tzinfo=datetime.UTC),
        ),
        (["1", "2"], list[int], True, [1, 2]),
        ({"a": "1"}, dict[str, int], True, {"a": 1}),
        (None, int | None, False, None),
        ("x", int | str, True, "x"),
        ([1, "a"], tuple[int, str], False, (1, "a")),
        ([1], tuple[int, str], False, None),
    ],
)
def test_convert_table(value: Any, hint: Any, from_string: bool, expected: Any) -> None:
    errors = Errors()
    result = convert(value, hint, ("query", "x"), errors, from_string=from_string)
    if expected is None and value is not None:
        assert is_missing(result) and errors
    else:
        assert not errors, errors.items
        assert result == expected
