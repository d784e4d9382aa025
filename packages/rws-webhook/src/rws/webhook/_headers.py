"""Case-insensitive, strict access to request headers.

Receivers hand us whatever their framework has: a plain ``dict`` (case-sensitive), Starlette's
or werkzeug's case-insensitive headers, or raw ASGI ``(bytes, bytes)`` pairs. Rather than
trust each type's own ``get``, we normalise once into a lowercase map. Two different values
for the same header name (``Stripe-Signature`` twice, or ``x-sig`` and ``X-Sig`` in a dict)
make the header ambiguous; we refuse it instead of silently picking one, because an attacker
who can add a header could otherwise choose which copy is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import MalformedHeaderError, MissingHeaderError

#: Longest header value we look at. Real signature headers are well under 1 KiB even with a
#: handful of rotated signatures; anything larger is hostile and only costs parsing time.
MAX_HEADER_VALUE = 8192

HeadersInput = (
    Mapping[str, str]
    | Mapping[str, bytes]
    | Iterable[tuple[bytes, bytes]]
    | Iterable[tuple[str, str]]
)


def _text(value: object, name: str) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes | bytearray | memoryview):
        try:
            text = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise MalformedHeaderError(name, "value is not ASCII") from None
    else:
        raise MalformedHeaderError(name, f"value must be str or bytes, not {type(value).__name__}")
    if len(text) > MAX_HEADER_VALUE:
        raise MalformedHeaderError(name, f"value longer than {MAX_HEADER_VALUE} characters")
    return text


def _name(key: object) -> str:
    if isinstance(key, str):
        return key.lower()
    if isinstance(key, bytes | bytearray):
        return bytes(key).decode("latin-1").lower()
    raise MalformedHeaderError(
        repr(key), f"header name must be str or bytes, not {type(key).__name__}"
    )


class Headers:
    """A read-only, lowercase view of the headers a scheme reads."""

    __slots__ = ("_values",)

    def __init__(self, headers: object, wanted: frozenset[str] | None = None) -> None:
        """Normalise ``headers``; with ``wanted`` (lowercase names) keep only those.

        Validating only the headers a scheme reads keeps verification cheap when a framework
        hands over every request header, and garbage in an unrelated header cannot fail it.
        """
        if isinstance(headers, Headers):
            self._values: dict[str, str] = headers._values
            return
        pairs: Iterable[object]
        if isinstance(headers, Mapping):
            items = getattr(headers, "multi_items", None) or headers.items
            pairs = items()
        elif isinstance(headers, Iterable) and not isinstance(headers, str | bytes):
            pairs = headers
        else:
            raise MalformedHeaderError(
                "*", f"headers must be a mapping, not {type(headers).__name__}"
            )
        values: dict[str, str] = {}
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise MalformedHeaderError("*", "headers must be (name, value) pairs")
            key, raw = pair
            name = key.lower() if type(key) is str else _name(key)
            if wanted is not None and name not in wanted:
                continue
            value = raw if type(raw) is str and len(raw) <= MAX_HEADER_VALUE else _text(raw, name)
            previous = values.get(name)
            if previous is not None and previous != value:
                raise MalformedHeaderError(
                    name, "header given more than once with different values"
                )
            values[name] = value
        self._values = values

    def get(self, *names: str) -> str | None:
        """First present header among ``names`` (aliases such as webhook-id / svix-id)."""
        for name in names:
            value = self._values.get(name.lower())
            if value is not None:
                return value
        return None

    def require(self, *names: str) -> str:
        """Like :meth:`get`, but a missing header is a :class:`MissingHeaderError`."""
        value = self.get(*names)
        if value is None:
            raise MissingHeaderError(names[0])
        if not value.strip():
            raise MalformedHeaderError(names[0], "empty value")
        return value
