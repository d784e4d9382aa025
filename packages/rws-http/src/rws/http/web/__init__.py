"""rws.http.web: the rws web framework, plain ASGI (it never imports the server).

    from rws.http.web import App

    app = App()

    @app.get("/users/{id:int}")
    async def user(id: int, verbose: bool = False) -> dict[str, object]:
        return {"id": id, "verbose": verbose}

Any ASGI server runs it (``rws-http serve module:app``, uvicorn, hypercorn). Optional parts
live in their own modules and are imported only when used: ``middleware.*``, ``openapi``,
``templating`` (Jinja2), ``i18n``, ``testclient`` (httpx).
"""

from __future__ import annotations

from .app import App
from .datastructures import URL, Address, Headers, MutableHeaders, QueryParams, State
from .exceptions import HTTPException, ValidationError, WebSocketException
from .fileresponse import FileResponse
from .forms import FormData, UploadFile
from .params import Body, Cookie, Form, Header, Path, Query
from .requests import ClientDisconnect, HTTPConnection, Request
from .responses import (
    BackgroundTask,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from .routing import Host, Mount, NoMatchFound, Route, Router
from .sse import EventSourceResponse, ServerSentEvent
from .staticfiles import StaticFiles
from .websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = [
    "URL",
    "Address",
    "App",
    "BackgroundTask",
    "Body",
    "ClientDisconnect",
    "Cookie",
    "EventSourceResponse",
    "FileResponse",
    "Form",
    "FormData",
    "HTMLResponse",
    "HTTPConnection",
    "HTTPException",
    "Header",
    "Headers",
    "Host",
    "JSONResponse",
    "Mount",
    "MutableHeaders",
    "NoMatchFound",
    "Path",
    "PlainTextResponse",
    "Query",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "Route",
    "Router",
    "ServerSentEvent",
    "State",
    "StaticFiles",
    "StreamingResponse",
    "UploadFile",
    "ValidationError",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketException",
    "WebSocketState",
]
