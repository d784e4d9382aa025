"""The pieces together: rws-webhook's middleware served by rws-http, called by curl."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rws.http.server import Config, Server
from rws.webhook import GitHub, MemorySeenStore, WebhookMiddleware

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "webhook"


async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    message = await receive()
    verified = scope["rws.webhook"]
    body = json.dumps({"bytes": len(message["body"]), "id": verified.message_id}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def curl(*args: str) -> tuple[int, bytes]:
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed (.ci/run installs it)")
    process = await asyncio.create_subprocess_exec(
        path,
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    body, _, status = out.rpartition(b"\n")
    return int(status), body


async def test_github_delivery_through_rws_http() -> None:
    secret = (EXAMPLES / "github.secret").read_text()
    app = WebhookMiddleware(
        receiver, GitHub(secret, seen_store=MemorySeenStore()), paths={"/hooks/github"}
    )
    headers = [
        line
        for line in (EXAMPLES / "github-headers.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    header_args = [arg for line in headers for arg in ("-H", line)]
    async with Server(app, Config(bind=("127.0.0.1:0",), lifespan="off")) as server:
        url = f"http://{server.addresses[0]}/hooks/github"
        payload = str(EXAMPLES / "github-payload.txt")
        status, body = await curl(*header_args, "--data-binary", f"@{payload}", url)
        assert status == 200
        assert json.loads(body) == {"bytes": 13, "id": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
        status, body = await curl(*header_args, "--data-binary", f"@{payload}", url)
        assert status == 409
        assert json.loads(body)["error"] == "replayed_message"
        status, body = await curl(*header_args, "--data-binary", "tampered", url)
        assert status == 401
        assert json.loads(body)["error"] == "invalid_signature"
