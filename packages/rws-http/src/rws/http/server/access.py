"""One access-log record per finished exchange, the same for every HTTP version and WebSocket."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .cycle import HTTPCycle
from .state import ServerState


def log_exchange(state: ServerState, cycle: HTTPCycle, started_at: float) -> None:
    """Hand the record of a finished request to the access log, if there is one.

    ``started_at`` is the ``time.time()`` at which the request head was complete.
    """
    log_request(state, cycle.scope, cycle.status, cycle.response_bytes, started_at)


def log_request(
    state: ServerState,
    scope: Mapping[str, Any],
    status: int,
    response_bytes: int,
    started_at: float,
) -> None:
    """The access-log record of one HTTP request or WebSocket connection (logged at its end).

    A WebSocket is logged as nginx does: the upgrade ``GET`` with status 101 once accepted (or
    the status that refused it), its duration the life of the connection.
    """
    log = state.access_log
    if log is None:
        return
    from .access_log import AccessRecord

    client = scope.get("client")
    headers = dict(scope["headers"])
    target = scope["raw_path"]
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    log.log(
        AccessRecord(
            client_addr=client[0] if client else None,
            client_port=client[1] if client else None,
            method=scope.get("method", "GET"),
            target=target.decode("latin-1"),
            http_version=scope["http_version"],
            status=status,
            response_bytes=response_bytes,
            referer=_text(headers.get(b"referer")),
            user_agent=_text(headers.get(b"user-agent")),
            request_start=started_at,
            duration=time.time() - started_at,
            scheme=scope["scheme"],
            host=_text(headers.get(b"host")),
        )
    )


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
