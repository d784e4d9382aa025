"""ProxyHeadersMiddleware: a pure scope transform, so it is driven with constructed scopes.

Every case asserts the scope the wrapped app received. Spoofing attempts come from
untrusted peers and from clients that prepend their own entries in front of a trusted
proxy's; malformed values must leave the scope alone rather than raise.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from collections.abc import Iterable
from typing import Any

import pytest

from rws.http.server.proxy_headers import ProxyHeadersMiddleware

Scope = dict[str, Any]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    raise AssertionError("the middleware must not send")


def make_scope(
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    client: tuple[str, int] | None = ("127.0.0.1", 40000),
    scope_type: str = "http",
    scheme: str | None = None,
) -> Scope:
    scope: Scope = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": scheme or ("http" if scope_type == "http" else "ws"),
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"internal:8000"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    return scope


async def run(scope: Scope, trusted: Iterable[str] | None = None, **options: Any) -> Scope:
    """Call the middleware; return the scope the app saw (and check receive/send passed)."""
    seen: list[Scope] = []

    async def app(inner: Any, receive: Any, send: Any) -> None:
        assert receive is _receive
        assert send is _send
        seen.append(inner)

    middleware = (
        ProxyHeadersMiddleware(app, **options)
        if trusted is None
        else ProxyHeadersMiddleware(app, trusted, **options)
    )
    await middleware(scope, _receive, _send)
    assert len(seen) == 1
    return seen[0]


def host_headers(scope: Scope) -> list[bytes]:
    return [value for name, value in scope["headers"] if name == b"host"]


XFF = b"x-forwarded-for"
XFP = b"x-forwarded-proto"
XFH = b"x-forwarded-host"
XFPORT = b"x-forwarded-port"
FWD = b"forwarded"

# -- untrusted peers: nothing changes -------------------------------------------------------

SPOOF_HEADERS = [
    (XFF, b"1.2.3.4"),
    (XFP, b"https"),
    (XFH, b"evil.example"),
    (XFPORT, b"443"),
    (FWD, b'for=1.2.3.4;proto=https;host="evil.example"'),
]


@pytest.mark.parametrize(
    ("client", "trusted"),
    [
        pytest.param(("203.0.113.9", 5000), None, id="internet-peer-default-trust"),
        pytest.param(("127.0.0.2", 5000), None, id="other-loopback-not-in-default"),
        pytest.param(("::2", 5000), None, id="other-ipv6"),
        pytest.param(("::ffff:10.0.0.1", 5000), ["127.0.0.1"], id="v4-mapped-untrusted"),
        pytest.param(("10.1.0.1", 5000), ["10.0.0.0/16"], id="outside-network"),
        pytest.param(None, None, id="unix-peer-not-trusted-by-default"),
        pytest.param(None, ["127.0.0.1", "10.0.0.0/8"], id="unix-peer-needs-unix"),
        pytest.param(("localhost", 5000), None, id="non-ip-peer"),
        pytest.param(("127.0.0.1", 5000), [], id="empty-trust-list"),
    ],
)
async def test_untrusted_peer_passes_scope_unchanged(
    client: tuple[str, int] | None, trusted: list[str] | None
) -> None:
    scope = make_scope(SPOOF_HEADERS, client=client)
    before = copy.deepcopy(scope)
    seen = await run(scope, trusted)
    assert seen is scope
    assert seen == before


@pytest.mark.parametrize("scope_type", ["lifespan", "custom.type"])
async def test_non_http_scopes_pass_through(scope_type: str) -> None:
    scope: Scope = {"type": scope_type, "asgi": {"version": "3.0"}}
    before = copy.deepcopy(scope)
    assert await run(scope, ["*"]) == before


# -- X-Forwarded-For ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b"203.0.113.7", ("203.0.113.7", 0)),
        (b"203.0.113.7:5123", ("203.0.113.7", 5123)),
        (b" 203.0.113.7 ", ("203.0.113.7", 0)),
        (b"[2001:db8::7]:443", ("2001:db8::7", 443)),
        (b"[2001:DB8::7]", ("2001:db8::7", 0)),
        (b"2001:db8::7", ("2001:db8::7", 0)),
        (b"unknown", ("unknown", 0)),
        (b"_hidden", ("_hidden", 0)),
    ],
)
async def test_x_forwarded_for_single(value: bytes, client: tuple[str, int]) -> None:
    seen = await run(make_scope([(XFF, value)]))
    assert seen["client"] == client


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
async def test_default_trust_is_loopback(peer: str) -> None:
    seen = await run(make_scope([(XFF, b"198.51.100.1")], client=(peer, 1)))
    assert seen["client"] == ("198.51.100.1", 0)


async def test_chain_skips_trusted_proxies_right_to_left() -> None:
    headers = [(XFF, b"203.0.113.7, 10.0.0.2, 10.0.0.3")]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("203.0.113.7", 0)


async def test_client_prepended_entries_are_not_believed() -> None:
    """The client sent "X-Forwarded-For: 1.1.1.1"; the trusted proxy appended the truth."""
    headers = [(XFF, b"1.1.1.1, 10.0.0.1, 203.0.113.7")]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("203.0.113.7", 0)


async def test_client_claiming_to_be_a_trusted_proxy_does_not_help() -> None:
    headers = [(XFF, b"127.0.0.1"), (XFF, b"203.0.113.7")]
    seen = await run(make_scope(headers))
    assert seen["client"] == ("203.0.113.7", 0)


async def test_several_header_lines_form_one_list() -> None:
    headers = [(XFF, b"203.0.113.7"), (XFF, b"10.0.0.2"), (XFF, b"10.0.0.3")]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("203.0.113.7", 0)


async def test_all_trusted_uses_the_leftmost() -> None:
    headers = [(XFF, b"10.0.0.9, 10.0.0.2")]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("10.0.0.9", 0)


async def test_trust_everyone() -> None:
    seen = await run(make_scope([(XFF, b"198.51.100.1, 203.0.113.7")], client=None), ["*"])
    assert seen["client"] == ("198.51.100.1", 0)


async def test_unix_peers() -> None:
    seen = await run(make_scope([(XFF, b"203.0.113.7")], client=None), ["unix"])
    assert seen["client"] == ("203.0.113.7", 0)
    tcp = make_scope([(XFF, b"203.0.113.7")])
    assert (await run(tcp, ["unix"]))["client"] == ("127.0.0.1", 40000)


async def test_trusted_v4_network_covers_v4_mapped_peers_and_entries() -> None:
    headers = [(XFF, b"203.0.113.7, ::ffff:10.0.0.5")]
    seen = await run(make_scope(headers, client=("::ffff:10.0.0.1", 1)), ["10.0.0.0/8"])
    assert seen["client"] == ("203.0.113.7", 0)


async def test_unknown_hop_is_the_client_not_the_proxy() -> None:
    """``unknown`` stops the walk: the app must not see the trusted proxy's own address."""
    seen = await run(make_scope([(XFF, b"203.0.113.7, unknown")]))
    assert seen["client"] == ("unknown", 0)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b" ",
        b", ,",
        b"not-an-ip",
        b"203.0.113.7, garbage",
        b"203.0.113.7:99999",
        b"203.0.113.7:",
        b"203.0.113.7:-1",
        b"[2001:db8::1",
        b"[2001:db8::1]x",
        b"[2001:db8::1]:",
        b"[203.0.113.7]",
        b"fe80::1%eth0",
        b"[fe80::1%25eth0]:80",
        b"256.0.0.1",
        b"01.2.3.4",
        b"203.0.113.7 203.0.113.8",
        b"\xff\xfe",
        b"_",
        b"_bad!",
    ],
)
async def test_x_forwarded_for_malformed_leaves_client(value: bytes) -> None:
    seen = await run(make_scope([(XFF, value), (XFP, b"https")]))
    assert seen["client"] == ("127.0.0.1", 40000)


async def test_garbage_left_of_a_trusted_hop_is_not_believed() -> None:
    headers = [(XFF, b"garbage, 10.0.0.2")]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("10.0.0.2", 0)


async def test_garbage_from_the_trusted_proxy_ignores_the_other_headers_too() -> None:
    seen = await run(make_scope([(XFF, b"garbage"), (XFP, b"https"), (XFH, b"a.example")]))
    assert seen["scheme"] == "http"
    assert host_headers(seen) == [b"internal:8000"]


async def test_upper_case_header_names_are_tolerated() -> None:
    seen = await run(make_scope([(b"X-Forwarded-For", b"203.0.113.7")]))
    assert seen["client"] == ("203.0.113.7", 0)


# -- X-Forwarded-Proto ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope_type", "proto", "scheme"),
    [
        ("http", b"https", "https"),
        ("http", b"HTTPS", "https"),
        ("http", b"http", "http"),
        ("http", b"wss", "https"),
        ("http", b"ws", "http"),
        ("websocket", b"https", "wss"),
        ("websocket", b"http", "ws"),
        ("websocket", b"wss", "wss"),
        ("websocket", b"WS", "ws"),
    ],
)
async def test_x_forwarded_proto(scope_type: str, proto: bytes, scheme: str) -> None:
    start = "https" if scope_type == "http" and scheme == "http" else None
    if scope_type == "websocket" and scheme == "ws":
        start = "wss"
    seen = await run(make_scope([(XFP, proto)], scope_type=scope_type, scheme=start))
    assert seen["scheme"] == scheme


@pytest.mark.parametrize("proto", [b"ftp", b"javascript", b"", b"https x", b"http/1.1", b"\x00"])
async def test_x_forwarded_proto_invalid_is_ignored(proto: bytes) -> None:
    seen = await run(make_scope([(XFP, proto)]))
    assert seen["scheme"] == "http"


async def test_proto_list_aligned_with_for_list() -> None:
    """Each proxy appended what it saw; the client's hop said https."""
    headers = [(XFF, b"203.0.113.7, 10.0.0.2"), (XFP, b"https, http")]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["scheme"] == "https"
    assert seen["client"] == ("203.0.113.7", 0)


async def test_proto_list_aligned_in_the_middle() -> None:
    """The client prepended its own entries to both lists; the aligned entry still wins."""
    headers = [
        (XFF, b"1.1.1.1, 203.0.113.7, 10.0.0.2"),
        (XFP, b"http, https, http"),
        (XFH, b"evil.example, shop.example, internal.example"),
    ]
    seen = await run(make_scope(headers), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("203.0.113.7", 0)
    assert seen["scheme"] == "https"
    assert host_headers(seen) == [b"shop.example"]


async def test_proto_list_not_aligned_uses_the_last_entry() -> None:
    """The client's own prepended proto cannot win when the lists do not line up."""
    headers = [(XFF, b"203.0.113.7"), (XFP, b"https, http")]
    seen = await run(make_scope(headers))
    assert seen["scheme"] == "http"


async def test_proto_without_for() -> None:
    seen = await run(make_scope([(XFP, b"https")]))
    assert seen["scheme"] == "https"
    assert seen["client"] == ("127.0.0.1", 40000)


# -- X-Forwarded-Host / -Port ---------------------------------------------------------------


async def test_x_forwarded_host_replaces_host_in_place() -> None:
    scope = make_scope([(b"accept", b"*/*"), (b"host", b"duplicate")])
    scope["headers"].insert(0, (b"user-agent", b"t"))
    original = list(scope["headers"])
    scope["headers"].append((XFH, b"www.example.com"))
    original_list = scope["headers"]
    seen = await run(scope)
    assert seen["headers"][:3] == [
        (b"user-agent", b"t"),
        (b"host", b"www.example.com"),
        (b"accept", b"*/*"),
    ]
    assert host_headers(seen) == [b"www.example.com"]
    # The server's list is not edited: a new one is put in the scope.
    assert seen["headers"] is not original_list
    assert original_list == [*original, (XFH, b"www.example.com")]


async def test_x_forwarded_host_adds_host_when_missing() -> None:
    scope = make_scope([(XFH, b"www.example.com:8443")])
    scope["headers"] = [h for h in scope["headers"] if h[0] != b"host"]
    seen = await run(scope)
    assert host_headers(seen) == [b"www.example.com:8443"]


@pytest.mark.parametrize(
    "host",
    [
        b"www.example.com",
        b"www.example.com:8443",
        b"203.0.113.7",
        b"[2001:db8::1]",
        b"[2001:db8::1]:8443",
        b"xn--bcher-kva.example",
    ],
)
async def test_x_forwarded_host_valid(host: bytes) -> None:
    assert host_headers(await run(make_scope([(XFH, host)]))) == [host]


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example/path",
        b"user@evil.example",
        b"evil.example?x=1",
        b"evil.example#frag",
        b"evil example",
        b"evil.example:99999",
        b"evil.example:",
        b"evil.example:abc",
        b"[2001:db8::1",
        b"[not-ip]:80",
        b"[2001:db8::1]80",
        b"a" * 300,
        b"\xe9vil.example",
        b"evil\r\nx: y",
    ],
)
async def test_x_forwarded_host_invalid_is_ignored(host: bytes) -> None:
    assert host_headers(await run(make_scope([(XFH, host)]))) == [b"internal:8000"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(XFH, b"example.com"), (XFPORT, b"8443")], b"example.com:8443"),
        ([(XFH, b"example.com:8080"), (XFPORT, b"8443")], b"example.com:8443"),
        ([(XFH, b"example.com"), (XFPORT, b"443"), (XFP, b"https")], b"example.com"),
        ([(XFH, b"example.com"), (XFPORT, b"80")], b"example.com"),
        ([(XFH, b"example.com"), (XFPORT, b"443")], b"example.com:443"),
        ([(XFH, b"[2001:db8::1]:1"), (XFPORT, b"2")], b"[2001:db8::1]:2"),
        ([(XFPORT, b"9000")], b"internal:9000"),
        ([(XFH, b"example.com"), (XFPORT, b"99999")], b"example.com"),
        ([(XFPORT, b"x")], b"internal:8000"),
    ],
)
async def test_x_forwarded_port(headers: list[tuple[bytes, bytes]], expected: bytes) -> None:
    assert host_headers(await run(make_scope(headers))) == [expected]


async def test_x_forwarded_port_without_any_host_adds_nothing() -> None:
    scope = make_scope([(XFPORT, b"9000")])
    scope["headers"] = [h for h in scope["headers"] if h[0] != b"host"]
    seen = await run(scope)
    assert host_headers(seen) == []


async def test_websocket_scope_gets_everything() -> None:
    headers = [(XFF, b"203.0.113.7:1234"), (XFP, b"https"), (XFH, b"chat.example")]
    seen = await run(make_scope(headers, scope_type="websocket"))
    assert seen["client"] == ("203.0.113.7", 1234)
    assert seen["scheme"] == "wss"
    assert host_headers(seen) == [b"chat.example"]
    assert seen["server"] == ("127.0.0.1", 8000)


# -- Forwarded (RFC 7239) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "client", "scheme", "host"),
    [
        # The RFC's own examples (sections 4 and 7.4).
        (b'for="_gazonk"', ("_gazonk", 0), "http", b"internal:8000"),
        (b'For="[2001:db8:cafe::17]:4711"', ("2001:db8:cafe::17", 4711), "http", None),
        (b"for=192.0.2.60;proto=http;by=203.0.113.43", ("192.0.2.60", 0), "http", None),
        (b"for=192.0.2.43, for=198.51.100.17", ("198.51.100.17", 0), "http", None),
        (b"for=unknown", ("unknown", 0), "http", None),
        # Everything at once, case-insensitive names, OWS around commas.
        (
            b'for=192.0.2.1;PROTO=HTTPS;Host="example.com:8443"',
            ("192.0.2.1", 0),
            "https",
            b"example.com:8443",
        ),
        (b"for=192.0.2.1 ,  for=192.0.2.2", ("192.0.2.2", 0), "http", None),
        (b'for="192.0.2.1:_port"', ("192.0.2.1", 0), "http", None),
        (b'for="192.0.2.1:8080"', ("192.0.2.1", 8080), "http", None),
        (b'for="2001:db8::1"', ("2001:db8::1", 0), "http", None),
        (b'for="\\1\\9\\2.0.2.1"', ("192.0.2.1", 0), "http", None),
        (b"host=example.com;proto=https", ("127.0.0.1", 40000), "https", b"example.com"),
        (b"for=192.0.2.1;;proto=https;", ("192.0.2.1", 0), "https", None),
    ],
)
async def test_forwarded(
    value: bytes, client: tuple[str, int], scheme: str, host: bytes | None
) -> None:
    seen = await run(make_scope([(FWD, value)]))
    assert seen["client"] == client
    assert seen["scheme"] == scheme
    assert host_headers(seen) == [host or b"internal:8000"]


async def test_forwarded_chain_with_trusted_hops() -> None:
    value = b'for=192.0.2.43;proto=https;host="shop.example", for=10.0.0.2;proto=http'
    seen = await run(make_scope([(FWD, value)]), ["127.0.0.1", "10.0.0.0/8"])
    assert seen["client"] == ("192.0.2.43", 0)
    assert seen["scheme"] == "https"
    assert host_headers(seen) == [b"shop.example"]


async def test_forwarded_client_prepended_element_is_not_believed() -> None:
    value = b'for=1.1.1.1;proto=https;host="evil.example", for=203.0.113.7;proto=http'
    seen = await run(make_scope([(FWD, value)]))
    assert seen["client"] == ("203.0.113.7", 0)
    assert seen["scheme"] == "http"
    assert host_headers(seen) == [b"internal:8000"]


async def test_forwarded_several_lines() -> None:
    headers = [(FWD, b"for=1.1.1.1"), (FWD, b"for=203.0.113.7;proto=https")]
    seen = await run(make_scope(headers))
    assert (seen["client"], seen["scheme"]) == (("203.0.113.7", 0), "https")


async def test_forwarded_wins_over_x_forwarded() -> None:
    headers = [(XFF, b"198.51.100.1"), (XFP, b"https"), (FWD, b"for=203.0.113.7")]
    seen = await run(make_scope(headers))
    assert seen["client"] == ("203.0.113.7", 0)
    assert seen["scheme"] == "http"


async def test_header_family_can_be_chosen() -> None:
    headers = [(XFF, b"198.51.100.1"), (XFP, b"https"), (FWD, b"for=203.0.113.7")]
    x_only = await run(make_scope(headers), headers="x-forwarded")
    assert (x_only["client"], x_only["scheme"]) == (("198.51.100.1", 0), "https")
    fwd_only = await run(make_scope(headers[:2]), headers="forwarded")
    assert (fwd_only["client"], fwd_only["scheme"]) == (("127.0.0.1", 40000), "http")


@pytest.mark.parametrize(
    "value",
    [
        b"for=203.0.113.7;for=198.51.100.1",  # a parameter twice
        b'for="203.0.113.7',  # unterminated quote
        b'for="203.0.113.7, for=198.51.100.1',  # the quote swallows the rest
        b"for=203.0.113.7:80",  # a colon needs quoting
        b"for=[2001:db8::1]",  # brackets need quoting
        b"for",
        b"=203.0.113.7",
        b"for=",
        b"f or=203.0.113.7",
        b"for=203.0.113.7 proto=https",
        b'for="not an address"',
        b'for="203.0.113.7:99999"',
        b'for="[2001:db8::1]:"',
        b"for=1.1.1.1, for=garbage!",
        b"",
        b",",
        b'for=""',
    ],
)
async def test_forwarded_malformed_changes_nothing(value: bytes) -> None:
    scope = make_scope([(FWD, value), (XFF, b"198.51.100.1")])
    before = copy.deepcopy(scope)
    assert await run(scope) == before


async def test_forwarded_garbage_on_the_client_side_is_harmless() -> None:
    headers = [(FWD, b'for="1.1.1.1;proto=https, =junk, for=203.0.113.7;proto=https')]
    seen = await run(make_scope(headers))
    # The unterminated quote spans to the end of the line: nothing is believed.
    assert seen["client"] == ("127.0.0.1", 40000)
    separate = [(FWD, b'for="1.1.1.1'), (FWD, b"=junk"), (FWD, b"for=203.0.113.7;proto=https")]
    seen = await run(make_scope(separate))
    # Separate header lines cannot leak quotes into each other: the proxy's element stands.
    assert (seen["client"], seen["scheme"]) == (("203.0.113.7", 0), "https")


async def test_forwarded_quoted_comma_and_invalid_host() -> None:
    seen = await run(make_scope([(FWD, b'for=203.0.113.7;host="a,b"')]))
    assert seen["client"] == ("203.0.113.7", 0)
    assert host_headers(seen) == [b"internal:8000"]


# -- configuration ------------------------------------------------------------------------


async def test_comma_separated_string() -> None:
    headers = [(XFF, b"203.0.113.7, 10.0.0.2")]
    seen = await run(make_scope(headers, client=("10.0.0.1", 1)), "10.0.0.0/8, 127.0.0.1")
    assert seen["client"] == ("203.0.113.7", 0)


@pytest.mark.parametrize(
    ("trusted", "message"),
    [
        (["localhost"], "'localhost' is not an IP address, a CIDR network"),
        (["10.0.0.1/8"], "did you mean 10.0.0.0/8"),
        (["10.0.0.0/33"], "'10.0.0.0/33' is not a CIDR network"),
        ([""], "'' is not an IP address"),
        (["999.1.1.1"], "'999.1.1.1'"),
        (["UNIX"], "'UNIX'"),
    ],
)
def test_bad_trusted_entries_are_errors(trusted: list[str], message: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match=message):
        ProxyHeadersMiddleware(app, trusted)


def test_bad_options_are_errors() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    with pytest.raises(TypeError, match="strings"):
        ProxyHeadersMiddleware(app, [ipaddress.ip_address("127.0.0.1")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="headers='x-forwarded-for'"):
        ProxyHeadersMiddleware(app, headers="x-forwarded-for")  # type: ignore[arg-type]


# -- never crash --------------------------------------------------------------------------

_ALPHABET = [*'0123456789abcdefABCDEF.:[]_,;="\\ \t%/@-', "\xff", "unknown", "for=", "::"]


async def test_random_header_values_never_raise() -> None:
    """Hostile or broken values of every forwarding header: no exception, sane results."""
    rng = random.Random(7239)
    for _ in range(3000):
        headers = [
            (name, "".join(rng.choices(_ALPHABET, k=rng.randint(0, 24))).encode("latin-1"))
            for name in (FWD, XFF, XFP, XFH, XFPORT)
            if rng.random() < 0.6
        ]
        scope_type = rng.choice(["http", "websocket"])
        seen = await run(make_scope(headers, scope_type=scope_type), ["*"])
        host, port = seen["client"]
        assert isinstance(port, int) and 0 <= port <= 65535
        if host not in ("127.0.0.1", "unknown") and not host.startswith("_"):
            ipaddress.ip_address(host)
        assert seen["scheme"] in (("http", "https") if scope_type == "http" else ("ws", "wss"))
        assert len(host_headers(seen)) == 1
