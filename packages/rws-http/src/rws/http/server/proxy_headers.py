"""ASGI middleware that believes ``Forwarded`` / ``X-Forwarded-*`` from trusted proxies only.

Behind a reverse proxy the TCP peer is the proxy, so the app would see the proxy's address,
``http`` instead of ``https``, and the internal host name. The proxy reports the original
values in headers, but any client can send those headers too, so they are applied only when
the immediate peer (``scope["client"]``) is in ``trusted``; from anyone else the scope passes
through untouched.

Which header wins: if any ``Forwarded`` header (RFC 7239) is present, it alone is used and
the ``X-Forwarded-*`` headers are ignored, even when ``Forwarded`` turns out unusable; else
``X-Forwarded-For`` / ``-Proto`` / ``-Host`` / ``-Port``. Note the consequence: if your proxy
writes only ``X-Forwarded-*`` and passes a client's ``Forwarded`` header through unchanged
(nginx and HAProxy do, unless told to drop it), that client chooses what the app sees. Make
the proxy set or clear ``Forwarded``, or pass ``headers="x-forwarded"`` (or ``"forwarded"``)
to use one family only.

Finding the client in a chain ``client -> P1 -> P2 -> server``: each proxy appends the
address it saw, so the list is read right to left, skipping entries that are themselves
trusted proxies; the first untrusted entry is the client (what Uvicorn 0.30+ does for
``X-Forwarded-For``). If every entry is trusted, the leftmost is used. An entry that cannot
be parsed stops the walk, and nothing to its left is believed, since only a trusted proxy's
own entries are known to be honest. The ``proto``/``host`` of the same ``Forwarded``
element (or the ``X-Forwarded-Proto/Host/Port`` entry at the same position, when those
lists have as many entries as ``X-Forwarded-For``, else their last entry) go with it.

What changes, for ``http`` and ``websocket`` scopes only (``lifespan`` and anything else
passes through):

* ``scope["client"]``: ``(ip, port)``, port 0 when not given. An RFC 7239 ``unknown`` or
  obfuscated (``_hidden``) node becomes ``("unknown", 0)`` / ``("_hidden", 0)``: not an
  IP, so it never matches an IP allow-list, and never the proxy's own address, which
  would make the request look like it came from a trusted host.
* ``scope["scheme"]``: from ``proto=`` / ``X-Forwarded-Proto`` (http, https, ws, wss, any
  case), mapped to the scope type: ``https``/``wss`` give ``wss`` on a websocket and
  ``https`` on http.
* the ``host`` header: from ``host=`` / ``X-Forwarded-Host``, with its port replaced by
  ``X-Forwarded-Port`` (left out when it is the scheme's default), as Hypercorn's
  ``ProxyFixMiddleware`` and Werkzeug's ``ProxyFix`` do, so URLs the app builds point at
  the public host. ``scope["server"]`` keeps the real listening address.

Values that do not parse are ignored: never an exception, never a 500. The scope dict is
updated in place (``client``, ``scheme``) so the server's access log shows what the app saw;
``scope["headers"]`` is replaced by a new list, never edited.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["ProxyHeadersMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HeaderFamily = Literal["auto", "forwarded", "x-forwarded"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._\-]+")
_PORT = re.compile(r"[0-9]{1,5}")
#: RFC 3986 reg-name characters (unreserved, pct-encoded, sub-delims) without the comma
#: (it separates list entries): no "/", "@", "?", "#" or spaces, so a forwarded host cannot
#: smuggle a path or userinfo into URLs the app builds.
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+;=%]+")
#: Longest DNS name (253) plus brackets and ":65535" leaves room; past it is not a host.
_MAX_HOST = 270
_SCHEMES: Final = {
    "http": {"http": "http", "https": "https", "ws": "http", "wss": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_FORWARDING: Final = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
    }
)


class ProxyHeadersMiddleware:
    """Apply forwarding headers sent by trusted proxies; see the module docstring.

    ``trusted`` holds IP addresses (``"10.0.0.7"``, ``"::1"``), CIDR networks
    (``"10.0.0.0/8"``), ``"*"`` (every peer, including unix sockets: only when nothing but
    the proxy can reach the server) and ``"unix"`` (peers on a unix socket, whose ASGI client
    is ``None``). A single string is split on commas. Anything else raises ``ValueError``
    naming the entry, rather than silently trusting nothing.
    """

    def __init__(
        self,
        app: ASGIApp,
        trusted: Iterable[str] = ("127.0.0.1", "::1"),
        *,
        headers: HeaderFamily = "auto",
    ) -> None:
        if headers not in ("auto", "forwarded", "x-forwarded"):
            raise ValueError(
                f"headers={headers!r} is not one of 'auto', 'forwarded', 'x-forwarded'"
            )
        self.app = app
        self.headers: HeaderFamily = headers
        self._trust = _Trust(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in _SCHEMES and self._trust.peer(scope.get("client")):
            self._apply(scope)
        await self.app(scope, receive, send)

    def _apply(self, scope: Scope) -> None:
        headers = scope.get("headers", ())
        # Most requests carry no forwarding header at all: one pass over the names, which
        # ASGI servers give in lowercase, settles that; otherwise look at every name closely.
        for name, _ in headers:
            if name in _FORWARDING or (not name.islower() and bytes(name).lower() in _FORWARDING):
                break
        else:
            return
        forwarded: list[str] = []
        x_for: list[str] = []
        x_proto: list[str] = []
        x_host: list[str] = []
        x_port: list[str] = []
        lists = {
            b"forwarded": forwarded,
            b"x-forwarded-for": x_for,
            b"x-forwarded-proto": x_proto,
            b"x-forwarded-host": x_host,
            b"x-forwarded-port": x_port,
        }
        for name, value in headers:
            target = lists.get(bytes(name).lower())
            if target is not None:
                target.append(bytes(value).decode("latin-1"))

        if forwarded and self.headers != "x-forwarded":
            hop = self._from_forwarded(forwarded)
        elif self.headers != "forwarded":
            hop = self._from_x_forwarded(x_for, x_proto, x_host, x_port)
        else:
            return
        if hop is None:
            return
        if hop.client is not None:
            scope["client"] = hop.client
        scheme = _SCHEMES[scope["type"]].get(hop.proto.lower()) if hop.proto else None
        if scheme is not None:
            scope["scheme"] = scheme
        self._set_host(scope, hop)

    def _from_forwarded(self, lines: list[str]) -> _Hop | None:
        elements = [element for line in lines for element in _forwarded_elements(line)]
        nodes = [
            None if element is None else _node(element["for"]) if "for" in element else _NO_NODE
            for element in elements
        ]
        index = self._walk(nodes)
        if index is None:
            return None
        chosen = elements[index]
        assert chosen is not None
        node = nodes[index]
        return _Hop(
            client=None if node is None else node.client,
            proto=chosen.get("proto"),
            host=chosen.get("host"),
            port=None,
        )

    def _from_x_forwarded(
        self, x_for: list[str], x_proto: list[str], x_host: list[str], x_port: list[str]
    ) -> _Hop | None:
        entries = _list_items(x_for)
        index = self._walk([_node(entry) for entry in entries]) if entries else None
        if entries and index is None:
            return None  # the trusted proxy's own entry is garbage: believe none of it

        def pick(values: list[str]) -> str | None:
            items = _list_items(values)
            if not items:
                return None
            if index is not None and len(items) == len(entries):
                return items[index]
            return items[-1]

        node = _node(entries[index]) if index is not None else None
        return _Hop(
            client=node.client if node is not None else None,
            proto=pick(x_proto),
            host=pick(x_host),
            port=pick(x_port),
        )

    def _walk(self, nodes: list[_Node | None]) -> int | None:
        """Index of the client among ``nodes`` (left to right, as proxies appended them)."""
        chosen: int | None = None
        for index in range(len(nodes) - 1, -1, -1):
            node = nodes[index]
            if node is None:
                break  # unparseable: stop, and trust nothing further left
            chosen = index
            if node.ip is None or not self._trust.address(node.ip):
                break
        return chosen

    @staticmethod
    def _set_host(scope: Scope, hop: _Hop) -> None:
        host = hop.host if hop.host is not None and _valid_host(hop.host) else None
        port = int(hop.port) if hop.port is not None and _valid_port(hop.port) else None
        if host is None and port is None:
            return
        headers = list(scope.get("headers", ()))
        position = next(
            (i for i, (name, _) in enumerate(headers) if bytes(name).lower() == b"host"), None
        )
        if host is None:
            if position is None:
                return  # no Host to put the port on
            current = bytes(headers[position][1]).decode("latin-1")
            if not _valid_host(current):
                return
            host = current
        if port is not None:
            bare = _strip_port(host)
            default = _DEFAULT_PORTS.get(str(scope.get("scheme", "")))
            host = bare if port == default else f"{bare}:{port}"
        entry = (b"host", host.encode("latin-1"))
        if position is None:
            headers.append(entry)
        else:
            headers[position] = entry
            headers = [
                header
                for i, header in enumerate(headers)
                if i == position or bytes(header[0]).lower() != b"host"
            ]
        scope["headers"] = headers


# -- trust --------------------------------------------------------------------------------


class _Trust:
    """The ``trusted`` list, compiled once; lookups are cached per address string."""

    def __init__(self, trusted: Iterable[str]) -> None:
        entries = trusted.split(",") if isinstance(trusted, str) else list(trusted)
        self.everyone = False
        self.unix = False
        addresses: set[_IPAddress] = set()
        networks: list[_IPNetwork] = []
        for raw in entries:
            if not isinstance(raw, str):
                raise TypeError(f"trusted proxy entries are strings, got {raw!r}")
            entry = raw.strip()
            if entry == "*":
                self.everyone = True
            elif entry == "unix":
                self.unix = True
            elif "/" in entry:
                networks.append(_network(entry))
            else:
                try:
                    addresses.add(ipaddress.ip_address(entry))
                except ValueError:
                    raise ValueError(
                        f"trusted proxy entry {entry!r} is not an IP address, a CIDR network "
                        f"(10.0.0.0/8), '*' or 'unix'"
                    ) from None
        self._addresses = frozenset(addresses)
        self._networks = tuple(networks)
        self.address = functools.lru_cache(maxsize=4096)(self._address)
        self._host = functools.lru_cache(maxsize=4096)(self._peer_host)

    def peer(self, client: Any) -> bool:
        """Is the immediate peer (the ASGI ``client``) one of the trusted proxies?"""
        if self.everyone:
            return True
        if client is None:
            return self.unix
        try:
            host = client[0]
        except (TypeError, IndexError, KeyError):
            return False
        if not isinstance(host, str):
            return False
        return self._host(host)

    def _peer_host(self, host: str) -> bool:
        # Cached by the string, so a keep-alive client's requests skip parsing the address.
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return self.address(ip)

    def _address(self, ip: _IPAddress) -> bool:
        if self.everyone:
            return True
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)  # a dual-stack socket's view of an IPv4 peer
        return any(
            candidate in self._addresses or any(candidate in net for net in self._networks)
            for candidate in candidates
        )


def _network(entry: str) -> _IPNetwork:
    try:
        return ipaddress.ip_network(entry)
    except ValueError as exc:
        message = f"trusted proxy entry {entry!r} is not a CIDR network: {exc}"
    with contextlib.suppress(ValueError):  # host bits set: say which network was meant
        message += f"; did you mean {ipaddress.ip_network(entry, strict=False)}?"
    raise ValueError(message)


# -- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    """One hop's address: ``client`` is what ASGI gets, ``ip`` is set for real IPs."""

    client: tuple[str, int] | None
    ip: _IPAddress | None


#: A ``Forwarded`` element without ``for=``: the hop is unidentified, the client unchanged.
_NO_NODE: Final = _Node(client=None, ip=None)


@dataclass(frozen=True, slots=True)
class _Hop:
    """What the chosen hop says; ``None`` fields leave the scope as it is."""

    client: tuple[str, int] | None
    proto: str | None
    host: str | None
    port: str | None


def _list_items(values: list[str]) -> list[str]:
    """Comma-separated header lines -> items; empty items are dropped (RFC 9110 5.6.1)."""
    return [item.strip(" \t") for value in values for item in value.split(",") if item.strip()]


def _node(text: str) -> _Node | None:
    """Parse ``ip``, ``ip:port``, ``[ipv6]``, ``[ipv6]:port``, ``unknown`` or ``_obf``.

    RFC 7239 section 6 syntax, accepted for ``X-Forwarded-For`` entries as well. A bare
    IPv6 without brackets is accepted when the whole value is one (no port can be meant).
    Returns ``None`` for anything else.
    """
    if text.lower() == "unknown":
        return _Node(client=("unknown", 0), ip=None)
    if _OBFUSCATED.fullmatch(text):
        return _Node(client=(text, 0), ip=None)
    port_text = ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
        if rest and not port_text:
            return None
        try:
            ip: _IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, colon, port_text = text.partition(":")
        try:
            if colon and ":" in port_text:
                ip, port_text = ipaddress.IPv6Address(text), ""
            else:
                ip = ipaddress.IPv4Address(host)
        except ValueError:
            return None
        if colon and not port_text and ip.version == 4:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        return None
    port = 0
    if port_text:
        if _OBFUSCATED.fullmatch(port_text):
            port = 0
        elif _valid_port(port_text):
            port = int(port_text)
        else:
            return None
    return _Node(client=(str(ip), port), ip=ip)


def _valid_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and int(text) <= 0xFFFF


def _forwarded_elements(line: str) -> list[dict[str, str] | None]:
    """Split one ``Forwarded`` header line into elements of lower-cased ``name: value``.

    An element that breaks the grammar (RFC 7239 section 4: ``token=token`` or
    ``token="quoted"`` pairs joined by ``;``, each name at most once) is ``None``. Commas
    inside quoted strings do not split; an unterminated quote makes the rest of the line
    one malformed element.
    """
    elements: list[dict[str, str] | None] = []
    for piece, complete in _split_outside_quotes(line, ","):
        if not piece.strip(" \t"):
            if complete:
                continue  # empty list element, allowed by the list syntax
            elements.append(None)
            continue
        elements.append(_forwarded_element(piece) if complete else None)
    return elements


def _forwarded_element(text: str) -> dict[str, str] | None:
    pairs: dict[str, str] = {}
    for piece, _ in _split_outside_quotes(text, ";"):
        pair = piece.strip(" \t")
        if not pair:
            continue
        name, equals, raw = pair.partition("=")
        name = name.lower()
        if not equals or _TOKEN.fullmatch(name) is None or name in pairs:
            return None
        if raw.startswith('"'):
            quoted = _QUOTED_STRING.fullmatch(raw)
            if quoted is None:
                return None
            value = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
        elif _TOKEN.fullmatch(raw):
            value = raw
        else:
            return None
        pairs[name] = value
    return pairs


def _split_outside_quotes(text: str, separator: str) -> list[tuple[str, bool]]:
    """Split on ``separator`` outside double quotes; flag a trailing unterminated quote."""
    pieces: list[tuple[str, bool]] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            pieces.append((text[start:index], True))
            start = index + 1
    pieces.append((text[start:], not quoted))
    return pieces


def _valid_host(text: str) -> bool:
    """``reg-name`` / IPv4 / ``[IPv6]``, optionally ``:port``: safe to put in a URL."""
    if not text or len(text) > _MAX_HOST:
        return False
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket:
            return False
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            return False
        return rest == "" or (rest.startswith(":") and _valid_port(rest[1:]))
    name, colon, port = text.partition(":")
    if colon and not _valid_port(port):
        return False
    return _REG_NAME.fullmatch(name) is not None


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.index("]") + 1]
    return host.partition(":")[0]
