"""Cookies: parse the request's ``Cookie`` header, build ``Set-Cookie`` values (RFC 6265bis).

``http.cookies.SimpleCookie`` is avoided on purpose: one malformed cookie from a sibling
site makes it drop *every* cookie in the header, and its quoting rules are RFC 2109's, not
what browsers send. Parsing here follows what browsers do: split on ``;``, first ``=``
separates name and value, surrounding quotes removed, bad pairs skipped one at a time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal

__all__ = ["SameSite", "build_set_cookie", "parse_cookie_header"]

SameSite = Literal["lax", "strict", "none"]

# RFC 6265 token: visible ASCII except separators.
_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# cookie-octet: visible ASCII except DQUOTE, comma, semicolon, backslash (and no space).
_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")
_ATTRIBUTE = re.compile(r"^[\x20-\x3a\x3c-\x7e]*$")  # no ';' and no control characters


def parse_cookie_header(header: str) -> dict[str, str]:
    """``"a=1; b=2"`` -> ``{"a": "1", "b": "2"}``; the first of duplicate names wins (it is
    the most specific path, as browsers order them)."""
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, value)
    return cookies


def build_set_cookie(
    key: str,
    value: str = "",
    *,
    max_age: int | None = None,
    expires: datetime | int | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: SameSite | None = "lax",
    partitioned: bool = False,
) -> str:
    """One ``Set-Cookie`` header value; invalid names, values or attributes raise ValueError.

    ``expires`` is a datetime (naive means UTC) or seconds from now. ``samesite="none"``
    requires ``secure=True`` (browsers drop the cookie otherwise), as does ``partitioned``
    (CHIPS) and the ``__Secure-``/``__Host-`` name prefixes.
    """
    if not _NAME.match(key):
        raise ValueError(f"cookie name {key!r} is not an RFC 6265 token")
    if not _VALUE.match(value):
        raise ValueError(
            f"cookie {key!r}: value holds a character browsers reject (space, quote, comma, "
            "semicolon, backslash or non-ASCII); encode it first (e.g. urllib.parse.quote)"
        )
    parts = [f"{key}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={int(max_age)}")
    if expires is not None:
        if isinstance(expires, int):
            when = datetime.now(UTC).timestamp() + expires
            expires = datetime.fromtimestamp(when, UTC)
        elif expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        parts.append(f"Expires={format_datetime(expires.astimezone(UTC), usegmt=True)}")
    for label, attribute in (("Domain", domain), ("Path", path)):
        if attribute is not None:
            if not _ATTRIBUTE.match(attribute):
                raise ValueError(f"cookie {key!r}: {label} {attribute!r} holds ';' or controls")
            parts.append(f"{label}={attribute}")
    if samesite is not None:
        if samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError(f"cookie {key!r}: samesite must be lax, strict or none")
        if samesite.lower() == "none" and not secure:
            raise ValueError(f"cookie {key!r}: samesite='none' needs secure=True")
        parts.append(f"SameSite={samesite.capitalize()}")
    if partitioned and not secure:
        raise ValueError(f"cookie {key!r}: partitioned needs secure=True")
    if key.startswith(("__Secure-", "__Host-")) and not secure:
        raise ValueError(f"cookie {key!r}: the __Secure-/__Host- prefix needs secure=True")
    if key.startswith("__Host-") and (domain is not None or path != "/"):
        raise ValueError(f"cookie {key!r}: a __Host- cookie needs path='/' and no domain")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)
