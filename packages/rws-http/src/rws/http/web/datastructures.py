"""Headers, query strings, URLs and app state: the request's parts as Python values.

ASGI hands headers over as a list of ``(bytes, bytes)`` pairs with lower-case names; the
classes here keep that list as the source of truth (no copy into a dict, no lost
duplicates) and answer lookups case-insensitively. Header values are latin-1, as the HTTP
grammar says; query strings are UTF-8 percent-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from .types import Scope

__all__ = ["URL", "Address", "Headers", "MutableHeaders", "QueryParams", "State"]


class Address(NamedTuple):
    host: str
    port: int


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive, duplicate-keeping view of ASGI headers.

    ``headers["accept"]`` is the first value; ``getlist("set-cookie")`` all of them.
    """

    __slots__ = ("_list",)

    def __init__(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        raw: Sequence[tuple[bytes, bytes]] | None = None,
        scope: Scope | None = None,
    ) -> None:
        if scope is not None:
            self._list: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))
        elif raw is not None:
            # Wrapped, not copied: MutableHeaders over a message's list edits that message.
            self._list = raw if isinstance(raw, list) else list(raw)
        else:
            pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
            self._list = [
                (key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in pairs
            ]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        return self._list

    def keys(self) -> list[str]:  # type: ignore[override]
        return [key.decode("latin-1") for key, _ in self._list]

    def values(self) -> list[str]:  # type: ignore[override]
        return [value.decode("latin-1") for _, value in self._list]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in self._list]

    def getlist(self, key: str) -> list[str]:
        wanted = key.lower().encode("latin-1")
        return [value.decode("latin-1") for name, value in self._list if name == wanted]

    def get(self, key: str, default: Any = None) -> Any:
        wanted = key.lower().encode("latin-1")
        for name, value in self._list:
            if name == wanted:
                return value.decode("latin-1")
        return default

    def __getitem__(self, key: str) -> str:
        wanted = key.lower().encode("latin-1")
        for name, value in self._list:
            if name == wanted:
                return value.decode("latin-1")
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        wanted = key.lower().encode("latin-1")
        return any(name == wanted for name, _ in self._list)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return sorted(self._list) == sorted(other._list)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"

    def mutablecopy(self) -> MutableHeaders:
        return MutableHeaders(raw=list(self._list))


def _check_value(key: str, value: str) -> None:
    # A CR or LF in a header would let the caller's input start a new header or a body.
    if "\r" in value or "\n" in value or "\r" in key or "\n" in key or ":" in key:
        raise ValueError(f"header {key!r}: name or value holds CR, LF or ':' in the name")


class MutableHeaders(Headers):
    """Headers that can be changed in place; they edit the list they wrap (ASGI messages)."""

    __slots__ = ()

    def __setitem__(self, key: str, value: str) -> None:
        """Replace every value of ``key`` with one value (the first occurrence keeps its place)."""
        _check_value(key, value)
        name = key.lower().encode("latin-1")
        encoded = value.encode("latin-1")
        found = False
        kept: list[tuple[bytes, bytes]] = []
        for item in self._list:
            if item[0] != name:
                kept.append(item)
            elif not found:
                kept.append((name, encoded))
                found = True
        if not found:
            kept.append((name, encoded))
        self._list[:] = kept

    def __delitem__(self, key: str) -> None:
        name = key.lower().encode("latin-1")
        self._list[:] = [item for item in self._list if item[0] != name]

    def append(self, key: str, value: str) -> None:
        """Add one more value (``Set-Cookie``, ``Vary`` …) without touching the others."""
        _check_value(key, value)
        self._list.append((key.lower().encode("latin-1"), value.encode("latin-1")))

    def setdefault(self, key: str, value: str) -> str:
        if key in self:
            return self[key]
        self.append(key, value)
        return value

    def update(self, other: Mapping[str, str]) -> None:
        for key, value in other.items():
            self[key] = value

    def add_vary_header(self, vary: str) -> None:
        existing = [part.strip() for part in self.get("vary", "").split(",") if part.strip()]
        if vary.lower() not in (part.lower() for part in existing):
            existing.append(vary)
        self["vary"] = ", ".join(existing)


def parse_query(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``, without its per-pair decoding work when
    nothing needs decoding (no ``%``, no ``+``): the common case of ``?page=2&sort=name``."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


class QueryParams(Mapping[str, str]):
    """The query string as an immutable multi-dict: ``params["tag"]`` is the *last* value
    (as in Starlette and most frameworks), ``getlist("tag")`` every value in order."""

    __slots__ = ("_dict", "_list")

    def __init__(
        self,
        query: str | bytes | Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if isinstance(query, str):
            self._list = parse_query(query)
        elif isinstance(query, Mapping):
            self._list = [(str(key), str(value)) for key, value in query.items()]
        else:
            self._list = [(str(key), str(value)) for key, value in (query or ())]
        self._dict = dict(self._list)

    def getlist(self, key: str) -> list[str]:
        return [value for name, value in self._list if name == key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._dict.get(key, default)

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueryParams):
            return NotImplemented
        return sorted(self._list) == sorted(other._list)

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return urlencode(self._list)

    def __repr__(self) -> str:
        return f"QueryParams({str(self)!r})"


class URL:
    """An absolute URL with its parts as properties and ``replace`` for edits.

    Compares equal to its string form (``request.url == "http://x/a"``).
    """

    __slots__ = ("_parts", "_url")

    def __init__(self, url: str = "", *, scope: Scope | None = None) -> None:
        self._url = url_from_scope(scope) if scope is not None else url
        self._parts: SplitResult | None = None

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"URL({self._url!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, URL | str):
            return self._url == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._url)

    @property
    def parts(self) -> SplitResult:
        if self._parts is None:
            self._parts = urlsplit(self._url)
        return self._parts

    @property
    def scheme(self) -> str:
        return self.parts.scheme

    @property
    def netloc(self) -> str:
        return self.parts.netloc

    @property
    def hostname(self) -> str | None:
        return self.parts.hostname

    @property
    def port(self) -> int | None:
        return self.parts.port

    @property
    def path(self) -> str:
        return self.parts.path

    @property
    def query(self) -> str:
        return self.parts.query

    @property
    def fragment(self) -> str:
        return self.parts.fragment

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def replace(self, **changes: Any) -> URL:
        """A copy with some parts changed: ``scheme``, ``netloc``, ``path``, ``query``,
        ``fragment``, or ``hostname``/``port`` (which rebuild ``netloc``)."""
        if "hostname" in changes or "port" in changes:
            host = changes.pop("hostname", self.hostname) or ""
            port = changes.pop("port", self.port)
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            changes["netloc"] = host if port is None else f"{host}:{port}"
        return URL(self.parts._replace(**changes).geturl())

    def include_query_params(self, **params: Any) -> URL:
        query = dict(parse_qsl(self.query, keep_blank_values=True))
        query.update({key: str(value) for key, value in params.items()})
        return self.replace(query=urlencode(query))


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def url_from_scope(scope: Scope) -> str:
    """Rebuild the request URL: the ``Host`` header first, else the server address."""
    scheme = scope.get("scheme", "http")
    host = ""
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server")
        if server:
            name, port = server[0], server[1]
            default = port is None or DEFAULT_PORTS.get(scheme) == port
            host = name if default else f"{name}:{port}"
        else:
            host = "localhost"
    path = scope.get("root_path", "") + scope_path_below_root(scope)
    query = scope.get("query_string", b"")
    url = f"{scheme}://{host}{path}"
    return f"{url}?{query.decode('latin-1')}" if query else url


def scope_path_below_root(scope: Scope) -> str:
    """``path`` without ``root_path``: ASGI 2.4 says ``path`` already includes it, but older
    servers and mounts that predate that send it without; both are handled."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


class State:
    """Attribute bag for app and request state (``request.state.user = …``)."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", initial if initial is not None else {})

    def __setattr__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __getattr__(self, key: str) -> Any:
        try:
            return self._state[key]
        except KeyError:
            raise AttributeError(f"state has no attribute {key!r}") from None

    def __delattr__(self, key: str) -> None:
        del self._state[key]

    def __contains__(self, key: str) -> bool:
        return key in self._state

    def __repr__(self) -> str:
        return f"State({self._state!r})"
