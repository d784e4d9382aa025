"""A small CRUD API for the OpenAPI tests: schemathesis fuzzes it through its own document.

It uses every parameter source with constraints, a JSON body of a dataclass, an enum, a
Literal, a list query parameter, documented 404s and a 204, so the generated document is
checked against what the framework really answers.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Literal

from rws.http.web import App, Body, Cookie, Header, HTTPException, Query
from rws.http.web.openapi import add_openapi

MAX_ITEMS = 200  # fuzzing creates items by the hundred: keep the oldest out


class Kind(enum.Enum):
    TOOL = "tool"
    FOOD = "food"


@dataclasses.dataclass
class ItemIn:
    """What a client sends to create or replace an item."""

    name: str
    price: float
    kind: Kind = Kind.TOOL
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Item:
    id: int
    name: str
    price: float
    kind: Kind
    tags: list[str]


@dataclasses.dataclass
class Page:
    items: list[Item]
    total: int


NOT_FOUND = {404: {"description": "No such item"}}


def create_app() -> App:
    app = App()
    items: dict[int, Item] = {}
    counter = [0]

    def stored(item_id: int) -> Item:
        item = items.get(item_id)
        if item is None:
            raise HTTPException(404, f"item {item_id} not found")
        return item

    @app.get("/items", tags=["items"])
    async def list_items(
        limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 10,
        offset: Annotated[int, Query(ge=0)] = 0,
        tag: Annotated[list[str] | None, Query(max_length=5)] = None,
        sort: Literal["name", "price"] = "name",
        min_price: Annotated[float | None, Query(ge=0)] = None,
        x_request_id: Annotated[
            str | None, Header(max_length=64, pattern="^[A-Za-z0-9-]+$")
        ] = None,
    ) -> Page:
        """List items, filtered by tag and price."""
        found = [
            item
            for item in items.values()
            if (not tag or set(tag) & set(item.tags))
            and (min_price is None or item.price >= min_price)
        ]
        found.sort(key=lambda item: getattr(item, sort))
        return Page(found[offset : offset + limit], len(found))

    @app.post("/items", status_code=201, tags=["items"])
    async def create_item(
        item: ItemIn, x_token: Annotated[str, Header(min_length=3, max_length=32)]
    ) -> Item:
        """Create an item."""
        counter[0] += 1
        created = Item(counter[0], item.name, item.price, item.kind, list(item.tags))
        items[created.id] = created
        while len(items) > MAX_ITEMS:
            del items[next(iter(items))]
        return created

    @app.get("/items/{item_id:int}", tags=["items"], responses=NOT_FOUND)
    async def get_item(item_id: int) -> Item:
        return stored(item_id)

    @app.put("/items/{item_id:int}", tags=["items"], responses=NOT_FOUND)
    async def replace_item(item_id: int, item: ItemIn) -> Item:
        current = stored(item_id)
        current.name, current.price = item.name, item.price
        current.kind, current.tags = item.kind, list(item.tags)
        return current

    @app.patch("/items/{item_id:int}/price", tags=["items"], responses=NOT_FOUND)
    async def set_price(item_id: int, price: Annotated[float, Body(ge=0, lt=1_000_000)]) -> Item:
        current = stored(item_id)
        current.price = price
        return current

    @app.delete("/items/{item_id:int}", tags=["items"], responses=NOT_FOUND)
    async def delete_item(item_id: int) -> None:
        stored(item_id)
        del items[item_id]

    @app.get("/search")
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=20)],
        session: Annotated[str | None, Cookie()] = None,
    ) -> list[Item]:
        return [item for item in items.values() if q in item.name]

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    add_openapi(app, title="Items", version="1.0.0")
    return app
