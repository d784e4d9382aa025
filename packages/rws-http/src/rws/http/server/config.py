"""Server settings: one frozen dataclass, filled from code, environment and TOML.

Precedence, highest first: explicit values (code or command-line flags), ``RWS_HTTP_*``
environment variables, a TOML file, then the defaults below. Every key is checked: an unknown
key, a wrong type or an impossible value raises :class:`ConfigError` naming the key and, for
a typo, the closest valid key. Nothing is accepted and silently ignored.

The defaults are at least as protective as Uvicorn's and Hypercorn's; the package README has
them in a table with the reason for each number.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "RWS_HTTP_"

AccessLogFormat = Literal["common", "combined", "json"]
ClientCert = Literal["none", "optional", "required"]
LifespanMode = Literal["auto", "on", "off"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
ForwardedHeaders = Literal["auto", "forwarded", "x-forwarded"]


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or impossible; the message names it."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the server can be told. Build with keywords or the ``from_*`` helpers."""

    # -- listening -------------------------------------------------------------------------
    #: ``HOST:PORT`` (``[::1]:8000`` for IPv6), ``unix:/path/to.sock`` or ``fd://3``.
    bind: tuple[str, ...] = ("127.0.0.1:8000",)
    #: Pending connections the kernel queues per listener.
    backlog: int = 2048
    #: Worker processes sharing the listeners; 1 serves in this process.
    workers: int = 1
    #: Expect a PROXY protocol (v1 or v2) header on every connection (behind an L4 balancer);
    #: with TLS it comes before the handshake, in cleartext, as balancers send it.
    proxy_protocol: bool = False

    # -- TLS ---------------------------------------------------------------------------------
    certfile: str | None = None
    keyfile: str | None = None
    keyfile_password: str | None = None
    ca_certs: str | None = None
    client_cert: ClientCert = "none"
    ciphers: str | None = None

    # -- the application ---------------------------------------------------------------------
    #: ``on`` fails startup if the app does not support lifespan; ``auto`` tolerates that.
    lifespan: LifespanMode = "auto"
    #: Mount point of the app behind a proxy (ASGI ``root_path``).
    root_path: str = ""
    #: Apply X-Forwarded-* / Forwarded from these peers only (IPs, CIDRs, ``*``, ``unix``).
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    proxy_headers: bool = True
    #: Which headers carry the client behind a trusted proxy. ``auto`` prefers ``Forwarded``
    #: but is spoofable behind proxies that pass a client's own ``Forwarded`` through.
    forwarded_headers: ForwardedHeaders = "x-forwarded"
    server_header: bool = True
    date_header: bool = True

    # -- logging -----------------------------------------------------------------------------
    log_level: LogLevel = "info"
    #: ``-`` for stdout, a path, or None for no access log.
    access_log: str | None = None
    access_log_format: AccessLogFormat = "combined"
    #: Rotate the access log past this size (0: never; use logrotate + SIGHUP instead).
    access_log_max_bytes: int = 0
    access_log_backups: int = 0

    # -- limits (see the README's table) -----------------------------------------------------
    #: Longest request line (method, target, version); longer answers 414.
    max_request_line: int = 8190
    #: Largest request head (request line plus headers); larger answers 431.
    max_header_bytes: int = 16384
    #: Most header fields in a request; more answers 431.
    max_header_count: int = 100
    #: Largest request body in bytes (0: no limit); larger answers 413.
    max_body_size: int = 16 * 1024 * 1024
    #: Seconds a client has to send a complete request head (slowloris defence).
    header_timeout: float = 10.0
    #: Seconds an idle keep-alive connection is kept open.
    keep_alive_timeout: float = 5.0
    #: Close a connection after this many requests (0: no cap).
    max_requests_per_connection: int = 0
    #: Seconds in-flight requests get to finish on shutdown before they are cut off.
    graceful_timeout: float = 30.0
    #: Response bytes buffered per connection before ``send()`` waits for the client.
    write_buffer_size: int = 65536
    #: Request body bytes buffered before the server stops reading from the client.
    read_buffer_size: int = 65536

    # HTTP/2
    h2_max_concurrent_streams: int = 100
    h2_max_header_list_size: int = 65536
    h2_max_inbound_frame_size: int = 16384
    #: Stream resets a client may cause per ``h2_reset_window`` seconds (rapid reset).
    h2_max_resets: int = 200
    h2_reset_window: float = 30.0
    #: Most CONTINUATION frames for one header block (CONTINUATION flood).
    h2_max_continuation_frames: int = 16

    # HTTP/3 (QUIC; needs the ``rws-http[h3]`` extra and certfile)
    #: UDP ``HOST:PORT`` addresses to serve HTTP/3 on (empty: HTTP/3 off). TCP responses then
    #: advertise it with ``Alt-Svc``. With ``workers`` > 1 each worker reads its own
    #: ``SO_REUSEPORT`` socket of each address (Linux only; see ``listeners.open_quic_sockets``).
    quic_bind: tuple[str, ...] = ()
    #: Seconds a QUIC connection may stay silent before it is closed.
    quic_max_idle_timeout: float = 30.0
    #: Open QUIC connections per ``quic_bind`` address and worker; more are refused
    #: (CONNECTION_REFUSED).
    quic_max_connections: int = 4096

    # WebSocket
    ws_max_message_size: int = 16 * 1024 * 1024
    #: Seconds between server pings (0: none); a peer silent for ws_ping_timeout is dropped.
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    #: Accept permessage-deflate (RFC 7692) when a client offers it; what arrives compressed is
    #: inflated only up to ws_max_message_size. Off: compression is never negotiated.
    ws_per_message_deflate: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "settings") -> Config:
        """Build from plain values (TOML tables, JSON, tests), checking every key."""
        return cls(**_coerce_all(data, source, from_text=False))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Config:
        return cls(**load_toml(path))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        return cls(**load_env(os.environ if environ is None else environ))

    @classmethod
    def load(
        cls,
        *,
        file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Config:
        """Defaults < TOML ``file`` < ``RWS_HTTP_*`` environment < ``overrides``."""
        values: dict[str, Any] = {}
        if file is not None:
            values.update(load_toml(file))
        values.update(load_env(os.environ if environ is None else environ))
        if overrides:
            values.update(_coerce_all(overrides, "arguments", from_text=False))
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **_coerce_all(changes, "arguments", from_text=False))

    @property
    def tls(self) -> bool:
        return self.certfile is not None


_FIELDS = {f.name: f for f in fields(Config)}
_HINTS = typing.get_type_hints(Config)


def _suggest(key: str) -> str:
    match = difflib.get_close_matches(key, list(_FIELDS), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {os.fspath(path)}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)} is not valid TOML: {exc}") from None
    # Accept either a bare file of settings or one with a [server] table (shared files).
    if set(data) == {"server"} and isinstance(data["server"], dict):
        data = data["server"]
    return _coerce_all(data, os.fspath(path), from_text=False)


def load_env(environ: Mapping[str, str]) -> dict[str, Any]:
    data = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX)
    }
    return _coerce_all(data, "environment", from_text=True, prefix=ENV_PREFIX)


def _coerce_all(
    data: Mapping[str, Any], source: str, *, from_text: bool, prefix: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            shown = prefix + key.upper() if prefix else key
            hint = _suggest(key)
            if prefix and hint:
                hint = f"; did you mean {prefix + hint.split(chr(39))[1].upper()!r}?"
            raise ConfigError(f"{source}: unknown setting {shown!r}{hint}")
        out[key] = _coerce(key, value, _HINTS[key], source, from_text)
    return out


def _coerce(key: str, value: Any, hint: Any, source: str, from_text: bool) -> Any:
    where = f"{source}: {key}"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (from_text and value == ""):
            return None
        return _coerce(key, value, options[0], source, from_text)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{where} must be one of {', '.join(map(repr, allowed))}, not {value!r}"
            )
        return value
    if origin is tuple:
        if from_text and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if hint is bool:
        if from_text and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is int:
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip().replace("_", ""))
            except ValueError:
                raise ConfigError(f"{where} must be a whole number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, not {value!r}")
        return value
    if hint is float:
        if from_text and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"{where} must be a number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return value
    return value


def _validate(config: Config) -> None:
    def positive(name: str, allow_zero: bool = False) -> None:
        value = getattr(config, name)
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")

    for name in (
        "backlog",
        "workers",
        "max_request_line",
        "max_header_bytes",
        "max_header_count",
        "write_buffer_size",
        "read_buffer_size",
        "h2_max_concurrent_streams",
        "h2_max_header_list_size",
        "h2_max_resets",
        "h2_max_continuation_frames",
        "header_timeout",
        "keep_alive_timeout",
        "h2_reset_window",
        "ws_max_message_size",
        "quic_max_idle_timeout",
        "quic_max_connections",
    ):
        positive(name)
    for name in (
        "max_body_size",
        "max_requests_per_connection",
        "graceful_timeout",
        "access_log_max_bytes",
        "access_log_backups",
        "ws_ping_interval",
        "ws_ping_timeout",
    ):
        positive(name, allow_zero=True)
    if not 16384 <= config.h2_max_inbound_frame_size <= 16777215:
        raise ConfigError("h2_max_inbound_frame_size must be between 16384 and 16777215")
    if config.max_request_line > config.max_header_bytes:
        raise ConfigError("max_request_line cannot exceed max_header_bytes")
    if not config.bind:
        raise ConfigError("bind needs at least one address")
    if config.keyfile is not None and config.certfile is None:
        raise ConfigError("keyfile is set but certfile is not")
    if config.client_cert != "none" and config.ca_certs is None:
        raise ConfigError("client_cert verification needs ca_certs")
    if config.ca_certs is not None and config.client_cert == "none":
        raise ConfigError("ca_certs is only used to verify clients: set client_cert too")
    if config.access_log_backups and not config.access_log_max_bytes:
        raise ConfigError("access_log_backups needs access_log_max_bytes (rotation by size)")
    if config.access_log_max_bytes and config.access_log in (None, "-"):
        raise ConfigError("access_log_max_bytes needs access_log to be a file path")
    if config.access_log_max_bytes and config.workers > 1:
        raise ConfigError(
            "access_log_max_bytes with several workers would rotate one file from every "
            "process: use logrotate and SIGHUP (rws-http reopens the log) instead"
        )
    if config.quic_bind:
        _validate_quic(config)
    if config.root_path and (
        not config.root_path.startswith("/") or config.root_path.endswith("/")
    ):
        raise ConfigError("root_path must start with '/' and not end with one, e.g. '/api'")


def reuse_port_balances() -> bool:
    """Whether UDP sockets bound to one address with ``SO_REUSEPORT`` share its datagrams.

    Linux (3.9+) hashes each datagram's source and destination addresses to one socket of the
    group, which is what lets several workers serve HTTP/3 on one port. BSDs and macOS accept
    the option but hand unicast datagrams to one socket only; Windows has no such option.
    """
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _validate_quic(config: Config) -> None:
    if config.certfile is None:
        raise ConfigError("quic_bind needs certfile (and keyfile): HTTP/3 is always TLS")
    if config.workers > 1 and not reuse_port_balances():
        raise ConfigError(
            f"quic_bind with workers > 1 needs SO_REUSEPORT load balancing of UDP sockets, "
            f"which this system ({sys.platform}) does not offer (Linux does): use one worker, "
            "or one rws-http process per quic_bind port"
        )
    for value in config.quic_bind:
        _, sep, port = value.rpartition(":")
        if (
            not sep
            or value.startswith(("unix:", "fd://"))
            or not port.isdigit()
            or not 0 <= int(port) <= 65535
        ):
            raise ConfigError(f"quic_bind {value!r} is not HOST:PORT or [IPv6]:PORT (UDP)")
