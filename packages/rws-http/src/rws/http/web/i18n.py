"""Translations from JSON catalogs, ``Accept-Language`` negotiation and a locale middleware.

Catalogs are JSON files named after their locale (``en.json``, ``fr-CA.json``), one object
per file. Keys nest (``{"auth": {"login": {"title": "Log in"}}}`` is ``"auth.login.title"``;
a flat ``"auth.login.title"`` key works too). A value is a string, or a plural object
``{"one": "{count} file", "other": "{count} files"}`` (an object whose keys are all CLDR
categories, ``zero one two few many other``, with ``other`` present). JSON only: gettext
``.po``/``.mo`` catalogs key by source text and carry their own plural formulas, a different
model; use ``gettext`` directly for them.

Everything is checked when :class:`Translations` is built: a configured locale without a
catalog, malformed JSON, a non-string value, a broken ``{placeholder}`` or a positional
``{0}`` is a ``ValueError`` naming the file and key. Catalog files for locales not in
``locales`` are ignored with a warning (deploys can ship a half-done language).

Messages are ``str.format_map`` templates. A variable the caller did not pass stays visible
as ``{name}`` (logged at debug) rather than failing the page; a key missing from the whole
fallback chain renders as the key itself (logged once at debug). Catalogs are trusted code:
format fields may read attributes of the values passed in.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .cookies import parse_cookie_header
from .datastructures import MutableHeaders
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "PLURAL_CATEGORIES",
    "LocaleMiddleware",
    "PluralRule",
    "Translations",
    "Translator",
    "get_translator",
    "parse_accept_language",
    "plural_category",
    "t",
]

logger = logging.getLogger("rws.http.web.i18n")

PLURAL_CATEGORIES = frozenset({"zero", "one", "two", "few", "many", "other"})
Number = int | float | Decimal
PluralRule = Callable[[Number], str]

#: ``Accept-Language`` beyond this many characters / entries is not read (a client cannot
#: make negotiation expensive); real browsers send well under 200 characters.
MAX_ACCEPT_LANGUAGE_LENGTH = 4096
MAX_ACCEPT_LANGUAGE_ENTRIES = 64
#: How many distinct missing keys are remembered to log each once (then no more logging).
MAX_REMEMBERED_MISSING = 1024

_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")
_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")


# -- plural rules (CLDR cardinal rules, integer and decimal operands) ----------------------


def _operands(number: Number) -> tuple[int, int]:
    """CLDR ``i`` (integer digits) and ``v`` (count of visible fraction digits)."""
    if isinstance(number, int):
        return abs(number), 0
    decimal = number if isinstance(number, Decimal) else Decimal(repr(float(number)))
    if not decimal.is_finite():
        return 0, 1  # "other" in every built-in rule
    whole, _, fraction = format(decimal, "f").lstrip("-").partition(".")
    return int(whole), len(fraction)


def _one_if_one(number: Number) -> str:  # en, de, es, it, nl, sv, pt-PT ...
    i, v = _operands(number)
    return "one" if i == 1 and v == 0 else "other"


def _french(number: Number) -> str:  # fr, pt (Brazil)
    i, v = _operands(number)
    if i in (0, 1):
        return "one"
    if v == 0 and i != 0 and i % 1_000_000 == 0:
        return "many"
    return "other"


def _spanish(number: Number) -> str:
    i, v = _operands(number)
    if i == 1 and v == 0:
        return "one"
    if v == 0 and i != 0 and i % 1_000_000 == 0:
        return "many"
    return "other"


def _polish(number: Number) -> str:
    i, v = _operands(number)
    if v != 0:
        return "other"
    if i == 1:
        return "one"
    if i % 10 in (2, 3, 4) and i % 100 not in (12, 13, 14):
        return "few"
    return "many"


def _east_slavic(number: Number) -> str:  # ru, uk, be
    i, v = _operands(number)
    if v != 0:
        return "other"
    if i % 10 == 1 and i % 100 != 11:
        return "one"
    if i % 10 in (2, 3, 4) and i % 100 not in (12, 13, 14):
        return "few"
    return "many"


def _czech(number: Number) -> str:  # cs, sk
    i, v = _operands(number)
    if v != 0:
        return "many"
    if i == 1:
        return "one"
    if i in (2, 3, 4):
        return "few"
    return "other"


def _no_plural(number: Number) -> str:  # ja, zh, ko, vi, th, id
    return "other"


_PLURAL_RULES: dict[str, PluralRule] = {
    **dict.fromkeys(("ja", "zh", "ko", "vi", "th", "id", "ms"), _no_plural),
    **dict.fromkeys(("fr", "pt"), _french),
    "es": _spanish,
    "pl": _polish,
    **dict.fromkeys(("ru", "uk", "be"), _east_slavic),
    **dict.fromkeys(("cs", "sk"), _czech),
}


def plural_category(locale: str, number: Number) -> str:
    """The CLDR plural category of ``number`` in ``locale`` (language subtag decides).

    Built in: en-like (one/other, the default for unlisted languages), fr, pt (Brazil's
    rule, also used for pt-PT), es, pl, ru/uk/be, cs/sk, and no-plural languages (ja, zh,
    ko, vi, th, id, ms). Pass ``plural_rules`` to :class:`Translations` for others.
    """
    language = locale.split("-", 1)[0].lower()
    return _PLURAL_RULES.get(language, _one_if_one)(number)


# -- Accept-Language -------------------------------------------------------------------------


def parse_accept_language(header: str) -> list[tuple[str, float]]:
    """``(range, q)`` pairs, highest q first (header order among equals).

    Malformed ranges and q-values are skipped, not fatal; ``q=0`` entries are kept (they
    exclude). Only the first :data:`MAX_ACCEPT_LANGUAGE_LENGTH` characters are read.
    """
    entries: list[tuple[str, float]] = []
    for part in header[:MAX_ACCEPT_LANGUAGE_LENGTH].split(",")[:MAX_ACCEPT_LANGUAGE_ENTRIES]:
        tag, *params = (piece.strip() for piece in part.split(";"))
        if tag != "*" and not _TAG.match(tag):
            continue
        q = 1.0
        valid = True
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                if not _QVALUE.match(value):
                    valid = False
                    break
                q = float(value)
        if valid:
            entries.append((tag, q))
    return sorted(entries, key=lambda entry: -entry[1])


def _truncations(tag: str) -> Iterator[str]:
    """RFC 4647 §3.4 lookup: ``zh-Hant-CN-x-a`` -> ``zh-Hant-CN``, ``zh-Hant``, ``zh``."""
    subtags = tag.split("-")
    while subtags:
        yield "-".join(subtags)
        subtags.pop()
        if subtags and len(subtags[-1]) == 1:  # never end on a singleton (x-, u- ...)
            subtags.pop()


# -- catalogs --------------------------------------------------------------------------------

Entry = str | dict[str, str]


def _is_plural(value: Mapping[str, Any]) -> bool:
    return (
        bool(value)
        and "other" in value
        and set(value) <= PLURAL_CATEGORIES
        and all(isinstance(item, str) for item in value.values())
    )


def _check_message(message: str, where: str) -> None:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(message)]
    except ValueError as error:
        raise ValueError(f"{where}: bad placeholder syntax: {error}") from None
    for field in fields:
        if field is None:
            continue
        head = re.split(r"[.\[]", field, maxsplit=1)[0]
        if not head or head.isdigit():
            raise ValueError(f"{where}: positional placeholder {{{field}}}; name it")


def _flatten(data: Mapping[str, Any], file: Path, prefix: str = "") -> dict[str, Entry]:
    flat: dict[str, Entry] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        where = f"{file}: key {path!r}"
        if not key:
            raise ValueError(f"{where}: empty key")
        found: dict[str, Entry]
        if isinstance(value, str):
            _check_message(value, where)
            found = {path: value}
        elif isinstance(value, dict) and _is_plural(value):
            for category, message in value.items():
                _check_message(message, f"{where} [{category}]")
            found = {path: dict(value)}
        elif isinstance(value, dict):
            if set(value) & PLURAL_CATEGORIES and "other" not in value:
                raise ValueError(f"{where}: plural object without an 'other' form")
            found = _flatten(value, file, f"{path}.")
        else:
            raise ValueError(f"{where}: value must be a string or object, not {value!r}")
        for name, entry in found.items():
            if name in flat:
                raise ValueError(f"{file}: key {name!r} is defined twice")
            flat[name] = entry
    return flat


def _load_catalog(file: Path) -> dict[str, Entry]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not valid JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{file}: not UTF-8: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: a catalog must be a JSON object")
    return _flatten(data, file)


class _Missing:
    """Stands in for a variable the caller did not pass: renders as ``{name}``."""

    __slots__ = ("_rws_field",)

    def __init__(self, field: str) -> None:
        self._rws_field = field

    def __format__(self, spec: str) -> str:
        return "{" + self._rws_field + (":" + spec if spec else "") + "}"

    def __str__(self) -> str:
        return "{" + self._rws_field + "}"

    __repr__ = __str__

    def __getattr__(self, attr: str) -> _Missing:
        return _Missing(f"{self._rws_field}.{attr}")

    def __getitem__(self, key: object) -> _Missing:
        return _Missing(f"{self._rws_field}[{key}]")


class _Variables(dict[str, Any]):
    def __missing__(self, key: str) -> _Missing:
        logger.debug("translation variable %r not given", key)
        return _Missing(key)


class Translator:
    """Translates into one locale, falling back along ``chain`` (the locale first)."""

    def __init__(self, translations: Translations, locale: str, chain: Sequence[str]) -> None:
        self.translations = translations
        self.locale = locale
        self.chain = tuple(chain)

    def __repr__(self) -> str:
        return f"Translator({self.locale!r}, chain={self.chain!r})"

    def lookup(self, key: str) -> tuple[str, Entry] | None:
        """``(locale that had it, entry)`` for ``key``, or None anywhere in the chain."""
        for locale in self.chain:
            entry = self.translations.catalogs[locale].get(key)
            if entry is not None:
                return locale, entry
        return None

    def __call__(self, key: str, /, **variables: Any) -> str:
        """The message for ``key`` formatted with ``variables``.

        For a plural entry ``count`` picks the form (by the rules of the locale whose catalog
        had the entry); without ``count`` the ``other`` form is used.
        """
        found = self.lookup(key)
        if found is None:
            self.translations._report_missing(self.locale, key)
            return key
        locale, entry = found
        if isinstance(entry, dict):
            count = variables.get("count")
            category = (
                self.translations.plural_category(locale, count)
                if isinstance(count, int | float | Decimal) and not isinstance(count, bool)
                else "other"
            )
            entry = entry.get(category, entry["other"])
        try:
            return entry.format_map(_Variables(variables))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as error:
            logger.warning("cannot format %r in %s: %s", key, locale, error)
            return entry

    @contextlib.contextmanager
    def activate(self) -> Iterator[Translator]:
        """Make this the translator :func:`t` uses (jobs, emails, tests)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)


class Translations:
    """All catalogs of an app, loaded and checked once.

    ``locales`` are the locales served (each needs ``<locale>.json`` in ``directory``;
    matching of tags is case-insensitive, results use the spelling given here).
    ``default_locale`` ends every fallback chain. ``fallbacks`` adds explicit steps:
    ``{"pt-BR": ["pt-PT"]}`` gives ``pt-BR -> pt-PT -> pt -> default`` (explicit first,
    then truncation, then the default). ``plural_rules`` overrides or adds languages
    (``{"ar": my_rule}``, keyed by language subtag, returning a CLDR category).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        locales: Sequence[str],
        default_locale: str,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        plural_rules: Mapping[str, PluralRule] | None = None,
    ) -> None:
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(f"Translations: directory {str(root)!r} does not exist")
        if isinstance(locales, str) or not locales:
            raise ValueError("Translations: 'locales' must be a non-empty list of tags")
        self._canonical: dict[str, str] = {}
        for locale in locales:
            if not isinstance(locale, str) or not _TAG.match(locale):
                raise ValueError(f"Translations: locales: {locale!r} is not a language tag")
            if locale.lower() in self._canonical:
                raise ValueError(f"Translations: locales: {locale!r} is listed twice")
            self._canonical[locale.lower()] = locale
        self.locales: tuple[str, ...] = tuple(locales)
        if default_locale.lower() not in self._canonical:
            raise ValueError(
                f"Translations: default_locale {default_locale!r} is not in locales "
                f"{list(self.locales)}"
            )
        self.default_locale = self._canonical[default_locale.lower()]
        self.fallbacks: dict[str, tuple[str, ...]] = {}
        for source, targets in (fallbacks or {}).items():
            if isinstance(targets, str):
                raise ValueError(f"Translations: fallbacks[{source!r}] must be a list of tags")
            names = [source, *targets]
            for name in names:
                if name.lower() not in self._canonical:
                    raise ValueError(
                        f"Translations: fallbacks: {name!r} is not in locales {list(self.locales)}"
                    )
            self.fallbacks[self._canonical[source.lower()]] = tuple(
                self._canonical[name.lower()] for name in targets
            )
        self._plural_rules = {key.lower(): rule for key, rule in (plural_rules or {}).items()}
        self.catalogs: dict[str, dict[str, Entry]] = self._load(root)
        self._translators: dict[str, Translator] = {}
        self._missing_logged: set[tuple[str, str]] = set()

    def _load(self, root: Path) -> dict[str, dict[str, Entry]]:
        files = {file.stem.lower(): file for file in sorted(root.glob("*.json"))}
        catalogs: dict[str, dict[str, Entry]] = {}
        for locale in self.locales:
            file = files.pop(locale.lower(), None)
            if file is None:
                raise ValueError(
                    f"Translations: locale {locale!r} has no catalog {root / locale!s}.json"
                )
            catalogs[locale] = _load_catalog(file)
        for file in files.values():
            logger.warning("ignoring catalog %s: %r is not in locales", file, file.stem)
        return catalogs

    def plural_category(self, locale: str, number: Number) -> str:
        rule = self._plural_rules.get(locale.split("-", 1)[0].lower())
        return rule(number) if rule is not None else plural_category(locale, number)

    def match(self, tag: str) -> str | None:
        """The configured locale for ``tag`` by RFC 4647 lookup (``fr-BE`` -> ``fr``)."""
        if not _TAG.match(tag):
            return None
        for candidate in _truncations(tag.lower()):
            found = self._canonical.get(candidate)
            if found is not None:
                return found
        return None

    def negotiate(self, accept_language: str | None) -> str | None:
        """The best configured locale for an ``Accept-Language`` header, or None.

        RFC 4647 lookup: ranges by descending q; each is tried whole then truncated
        (``fr-CA`` then ``fr``) before a lower-q range. ``q=0`` excludes what it names and
        the locales under it (``en;q=0`` excludes ``en-GB``). ``*`` means the default
        locale (or, if that is excluded, the first configured locale that is not).
        """
        if not accept_language:
            return None
        entries = parse_accept_language(accept_language)
        excluded = [tag.lower() for tag, q in entries if q == 0]

        def allowed(locale: str) -> bool:
            lower = locale.lower()
            return not any(
                lower == tag or lower.startswith(tag + "-") or tag == "*" for tag in excluded
            ) or any(lower == tag.lower() for tag, q in entries if q > 0)

        for tag, q in entries:
            if q == 0:
                continue
            if tag == "*":
                for locale in (self.default_locale, *self.locales):
                    if allowed(locale):
                        return locale
                continue
            for candidate in _truncations(tag.lower()):
                found = self._canonical.get(candidate)
                if found is not None and allowed(found):
                    return found
        return None

    def chain(self, locale: str) -> tuple[str, ...]:
        """Where lookups go for ``locale``: itself, explicit fallbacks, parents, default."""
        steps = [locale, *self.fallbacks.get(locale, ())]
        steps += [
            self._canonical[parent]
            for parent in _truncations(locale.lower())
            if parent in self._canonical
        ]
        steps.append(self.default_locale)
        return tuple(dict.fromkeys(steps))

    def for_locale(self, locale: str) -> Translator:
        """The translator for ``locale`` (looked up as :meth:`match` does).

        A tag that matches no configured locale is a ``LookupError`` listing them.
        """
        found = self.match(locale)
        if found is None:
            raise LookupError(f"no locale matches {locale!r}; configured: {list(self.locales)}")
        translator = self._translators.get(found)
        if translator is None:
            translator = Translator(self, found, self.chain(found))
            self._translators[found] = translator
        return translator

    def _report_missing(self, locale: str, key: str) -> None:
        marker = (locale, key)
        if marker in self._missing_logged or len(self._missing_logged) >= MAX_REMEMBERED_MISSING:
            return
        self._missing_logged.add(marker)
        logger.debug("no translation for %r in %s (chain %s)", key, locale, self.chain(locale))


# -- the current translator ------------------------------------------------------------------

_current: contextvars.ContextVar[Translator | None] = contextvars.ContextVar(
    "rws_translator", default=None
)


def get_translator() -> Translator | None:
    """The translator of the current request (or ``activate()`` block), if any."""
    return _current.get()


def t(key: str, /, **variables: Any) -> str:
    """Translate with the current request's translator (set by :class:`LocaleMiddleware`)."""
    translator = _current.get()
    if translator is None:
        raise LookupError(
            "no translator is active: wrap the app in LocaleMiddleware, or use "
            "'with translations.for_locale(...).activate():'"
        )
    return translator(key, **variables)


# -- middleware ------------------------------------------------------------------------------


class LocaleMiddleware:
    """Chooses each request's locale: query parameter, then cookie, then
    ``Accept-Language``, then the default. Unknown values at a step fall to the next.

    The choice goes into ``scope["state"]`` (``request.state.locale`` and
    ``request.state.t``) and into a context variable for :func:`t`. HTTP responses get
    ``Content-Language`` (unless the app set one) and ``Vary: Accept-Language``, plus
    ``Cookie`` when the cookie can decide (``cookie_name=None`` turns that step off).
    The middleware never sets the cookie: the app does when the user picks a language.
    """

    def __init__(
        self,
        app: ASGIApp,
        translations: Translations,
        *,
        cookie_name: str | None = "locale",
        query_param: str | None = "lang",
    ) -> None:
        if not isinstance(translations, Translations):
            raise TypeError(
                f"LocaleMiddleware: translations must be a Translations, not "
                f"{type(translations).__name__}"
            )
        if cookie_name is not None and not cookie_name:
            raise ValueError("LocaleMiddleware: cookie_name is empty (use None to disable)")
        if query_param is not None and not query_param:
            raise ValueError("LocaleMiddleware: query_param is empty (use None to disable)")
        self.app = app
        self.translations = translations
        self.cookie_name = cookie_name
        self.query_param = query_param
        vary = ["Accept-Language"] + (["Cookie"] if cookie_name is not None else [])
        self._vary = vary

    def select_locale(self, scope: Scope) -> str:
        translations = self.translations
        if self.query_param is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            for name, value in parse_qsl(query, keep_blank_values=True):
                if name == self.query_param:
                    found = translations.match(value.strip())
                    if found is not None:
                        return found
        accept = ""
        for key, value in scope.get("headers", ()):
            if key == b"cookie" and self.cookie_name is not None:
                cookie = parse_cookie_header(value.decode("latin-1")).get(self.cookie_name)
                if cookie:
                    found = translations.match(cookie.strip())
                    if found is not None:
                        return found
            elif key == b"accept-language":
                accept += ("," if accept else "") + value.decode("latin-1")
        return translations.negotiate(accept) or translations.default_locale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        locale = self.select_locale(scope)
        translator = self.translations.for_locale(locale)
        state = scope.setdefault("state", {})
        state["locale"] = locale
        state["t"] = translator

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", ())))
                headers.setdefault("content-language", locale)
                if headers.get("vary", "").strip() != "*":  # "*" already covers everything
                    for name in self._vary:
                        headers.add_vary_header(name)
                message = {**message, "headers": headers.raw}
            await send(message)

        token = _current.set(translator)
        try:
            if scope["type"] == "http":
                await self.app(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send)
        finally:
            _current.reset(token)
