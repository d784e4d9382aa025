"""Form fields and uploads as handler parameters (``Form()`` and ``UploadFile``), with the
route's body limit applied to the upload; served by both servers, sent by httpx."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import httpx

from rws.http.web import App, Form, Request
from rws.http.web.forms import UploadFile


def make_app() -> App:
    app = App()

    @app.post("/photos", status_code=201, max_body_size=5 * 1024 * 1024)
    async def upload(
        title: Annotated[str, Form(min_length=1)],
        photo: UploadFile,
        tags: Annotated[list[str], Form()] = [],  # noqa: B006 (never mutated)
        rating: Annotated[int | None, Form(ge=1, le=5)] = None,
    ) -> dict[str, Any]:
        data = await photo.read()
        return {
            "title": title,
            "tags": tags,
            "rating": rating,
            "filename": photo.filename,
            "type": photo.content_type,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": photo.size,
        }

    @app.post("/login")
    async def login(request: Request, user: Annotated[str, Form()]) -> dict[str, Any]:
        form = await request.form()  # the same parsed form, not a second read
        return {"user": user, "fields": sorted(form.keys())}

    return app


async def test_upload_with_fields(served: Any) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: spills past the spool threshold
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        answer = await client.post(
            "/photos",
            data={"title": "Beach", "tags": ["sun", "sea"], "rating": "4"},
            files={"photo": ("beach.jpg", payload, "image/jpeg")},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json() == {
            "title": "Beach",
            "tags": ["sun", "sea"],
            "rating": 4,
            "filename": "beach.jpg",
            "type": "image/jpeg",
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
        }
        urlencoded = await client.post("/login", data={"user": "ana", "remember": "1"})
        assert urlencoded.json() == {"user": "ana", "fields": ["remember", "user"]}


async def test_form_validation_and_limits(served: Any) -> None:
    async with httpx.AsyncClient(base_url=await served(make_app())) as client:
        invalid = await client.post(
            "/photos", data={"title": "", "rating": "9", "photo": "not a file"}
        )
        assert invalid.status_code == 422
        errors = {tuple(error["loc"]): error["type"] for error in invalid.json()["detail"]}
        assert errors == {
            ("form", "title"): "string_too_short",
            ("form", "rating"): "number_range",
            ("form", "photo"): "is_instance_of",
        }
        too_big = await client.post(
            "/photos",
            data={"title": "x"},
            files={"photo": ("big.bin", b"x" * (6 * 1024 * 1024), "application/octet-stream")},
        )
        assert too_big.status_code == 413
