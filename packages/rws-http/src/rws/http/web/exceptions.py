"""Exceptions a handler raises to answer with an HTTP error instead of crashing.

The app turns them into responses (see ``App.exception_handlers``): ``HTTPException`` into a
JSON body ``{"detail": ...}`` with its status and headers, ``ValidationError`` into 422 with
the machine-readable list of what was wrong. Any other exception is a 500 whose details stay
in the log, never in the response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

__all__ = ["HTTPException", "ValidationError", "WebSocketException"]


class HTTPException(Exception):  # noqa: N818 (the name every framework uses)
    """Answer with ``status_code``; ``detail`` defaults to the status phrase."""

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status_code <= 599:
            raise ValueError(f"HTTPException status_code must be 4xx or 5xx, got {status_code}")
        if detail is None:
            detail = HTTPStatus(status_code).phrase
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{status_code}: {detail}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class ValidationError(HTTPException):
    """Request data did not fit the handler's declared types: 422 with every error at once.

    Each error is ``{"loc": ["query", "limit"], "msg": "...", "type": "int_parsing"}``: where
    (the request part, then the field path), a human message, and a stable type code.
    """

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors = [dict(error) for error in errors]
        super().__init__(422, self.errors)


class WebSocketException(Exception):  # noqa: N818 (Starlette's name)
    """Close the WebSocket with ``code`` (and ``reason``), before or after accepting it."""

    def __init__(self, code: int = 1008, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}" if reason else str(code))
