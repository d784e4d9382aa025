"""i18n: catalogs, Accept-Language negotiation, fallbacks, plurals, missing keys and
variables, and LocaleMiddleware end to end under both servers (also ``t`` in a template)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from rws.http.web import App, Request, WebSocket
from rws.http.web.i18n import (
    LocaleMiddleware,
    Translations,
    get_translator,
    parse_accept_language,
    plural_category,
    t,
)
from rws.http.web.responses import JSONResponse
from rws.http.web.templating import TemplateResponse, Templates

from .conftest import Served

DATA = Path(__file__).parent / "data"
LOCALES = DATA / "locales"
ALL = ["en", "fr", "fr-CA", "de", "pl", "ru", "es"]


@pytest.fixture
def translations() -> Translations:
    return Translations(LOCALES, locales=ALL, default_locale="en")


# -- negotiation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-CA;q=0.9, en;q=0.8", "fr-CA"),
        ("fr-BE;q=0.9, en;q=0.8", "fr"),  # truncation beats a lower-q exact match
        ("it, en;q=0.5", "en"),
        ("en;q=0.8, de", "de"),  # by q, not by position
        ("de;q=0.5, fr;q=0.5", "de"),  # equal q: header order
        ("FR-ca", "fr-CA"),  # case-insensitive, configured spelling returned
        ("de-DE-1996", "de"),
        ("*", "en"),
        ("it, *;q=0.1", "en"),
        ("fr;q=0, *", "en"),
        ("en;q=0, *", "fr"),  # default excluded: first configured locale not excluded
        ("fr-BE, fr;q=0, de;q=0.1", "de"),  # q=0 also excludes what truncation reaches
        ("fr-CA, fr;q=0", "fr-CA"),  # q=0 on "fr" does not undo an explicit "fr-CA"
        ("en;q=0, en-GB", None),
        ("zh-Hant-CN-x-private", None),
        ("x-klingon, de;q=0.2", "de"),  # never truncated down to a singleton
        ("en_US, de;q=0.1", "de"),  # malformed tag ignored
        ("fr;q=1.5, de;q=0.2", "de"),  # malformed q ignored
        ("fr;q=abc, de;q=0.2", "de"),
        ("fr;q=0.1234, de;q=0.2", "de"),  # at most three decimals
        ("pl-PL;q=0.9,ru;q=0.95", "ru"),
        ("  es-419 ; q=0.7 ", "es"),
        (";;;,,,=", None),
        ("", None),
    ],
)
def test_negotiation(translations: Translations, header: str, expected: str | None) -> None:
    assert translations.negotiate(header) == expected


def test_parse_accept_language_sorts_and_skips() -> None:
    parsed = parse_accept_language("da, en-GB;q=0.8, bad tag, en;q=0.7, *;q=0.1, x;q=2")
    assert parsed == [("da", 1.0), ("en-GB", 0.8), ("en", 0.7), ("*", 0.1)]


def test_huge_accept_language_is_cut(translations: Translations) -> None:
    header = ", ".join(["it"] * 5000) + ", de"
    assert translations.negotiate(header) is None  # "de" is past the reading limit


# -- lookup, fallbacks, plurals --------------------------------------------------------------


def test_nested_and_flat_keys(translations: Translations) -> None:
    en = translations.for_locale("en")
    assert en("auth.login.title") == "Log in"
    assert en("auth.logout") == "Log out"
    assert en("stats.visits", count=3) == "3 visits"


def test_fallback_chain(translations: Translations) -> None:
    assert translations.chain("fr-CA") == ("fr-CA", "fr", "en")
    fr_ca = translations.for_locale("fr-CA")
    assert fr_ca("auth.login.button") == "Se connecter"  # its own
    assert fr_ca("auth.login.title") == "Connexion"  # from fr
    assert fr_ca("auth.logout") == "Log out"  # from the default
    assert fr_ca("only_in_french") == "Seulement en français"


def test_explicit_fallbacks_come_first() -> None:
    translations = Translations(
        LOCALES, locales=ALL, default_locale="en", fallbacks={"fr-CA": ["es"], "pl": ["ru"]}
    )
    assert translations.chain("fr-CA") == ("fr-CA", "es", "fr", "en")
    assert translations.for_locale("fr-CA")("files", count=2) == "2 archivos"
    assert translations.chain("pl") == ("pl", "ru", "en")


def test_for_locale(translations: Translations) -> None:
    assert translations.for_locale("fr-BE").locale == "fr"
    assert translations.for_locale("FR") is translations.for_locale("fr")
    with pytest.raises(LookupError, match=r"no locale matches 'it'; configured: \['en'"):
        translations.for_locale("it")


@pytest.mark.parametrize(
    ("locale", "count", "expected"),
    [
        ("en", 1, "1 file"),
        ("en", 0, "0 files"),
        ("en", 2, "2 files"),
        ("en", 1.0, "1.0 files"),  # visible decimals are plural in English (CLDR)
        ("fr", 0, "0 fichier"),
        ("fr", 1.5, "1.5 fichier"),
        ("fr", 2, "2 fichiers"),
        ("fr", 1_000_000, "1000000 de fichiers"),
        ("de", 1, "1 Datei"),
        ("de", 5, "5 Dateien"),
        ("es", 1, "1 archivo"),
        ("es", 3, "3 archivos"),
        ("es", 2_000_000, "2000000 de archivos"),
        ("pl", 1, "1 plik"),
        ("pl", 2, "2 pliki"),
        ("pl", 5, "5 plików"),
        ("pl", 12, "12 plików"),
        ("pl", 22, "22 pliki"),
        ("pl", 101, "101 plików"),
        ("pl", Decimal("1.5"), "1.5 pliku"),
        ("ru", 1, "1 файл"),
        ("ru", 21, "21 файл"),
        ("ru", 11, "11 файлов"),
        ("ru", 3, "3 файла"),
        ("ru", 14, "14 файлов"),
        ("ru", 25, "25 файлов"),
        ("ru", 1.5, "1.5 файла"),
        ("fr-CA", 0, "0 fichier"),  # found in fr, chosen by fr's rules
    ],
)
def test_plurals(translations: Translations, locale: str, count: Any, expected: str) -> None:
    assert translations.for_locale(locale)("files", count=count) == expected


def test_plural_without_count_uses_other(translations: Translations) -> None:
    assert translations.for_locale("en")("files") == "{count} files"
    assert translations.for_locale("en")("files", count="many") == "many files"


@pytest.mark.parametrize(
    ("locale", "number", "category"),
    [
        ("ja", 1, "other"),
        ("cs", 3, "few"),
        ("cs", 1.5, "many"),
        ("uk-UA", 2, "few"),
        ("it", 1, "one"),  # unlisted languages use the English rule
        ("it", Decimal("1.00"), "other"),
        ("en", float("inf"), "other"),
    ],
)
def test_plural_category(locale: str, number: Any, category: str) -> None:
    assert plural_category(locale, number) == category


def test_plural_rules_can_be_added() -> None:
    translations = Translations(
        LOCALES, locales=["en", "de"], default_locale="en", plural_rules={"de": lambda n: "other"}
    )
    assert translations.for_locale("de")("files", count=1) == "1 Dateien"


def test_missing_key_returns_the_key_and_logs_once(
    translations: Translations, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rws.http.web.i18n")
    de = translations.for_locale("de")
    assert de("no.such.key") == "no.such.key"
    assert de("no.such.key") == "no.such.key"
    records = [r for r in caplog.records if "no.such.key" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG


def test_missing_variables_stay_visible(translations: Translations) -> None:
    en = translations.for_locale("en")
    assert en("greeting") == "Hello, {name}!"
    assert en("stats.visits") == "{count:d} visits"
    assert en("greeting", name="Ana", extra=1) == "Hello, Ana!"
    # Only the missing ones stay as placeholders, with their attribute and format spec.
    assert en("inbox", count=3) == "Welcome {user.name}, you have 3 messages ({ratio:.0%} read)"


def test_unformattable_value_gives_the_raw_message(
    translations: Translations, caplog: pytest.LogCaptureFixture
) -> None:
    assert translations.for_locale("en")("stats.visits", count="x") == "{count:d} visits"
    assert any("cannot format 'stats.visits'" in r.getMessage() for r in caplog.records)


def test_module_level_t_needs_an_active_translator(translations: Translations) -> None:
    with pytest.raises(LookupError, match="LocaleMiddleware"):
        t("greeting")
    with translations.for_locale("de").activate():
        assert t("greeting", name="Jo") == "Hallo, Jo!"
        assert get_translator() is translations.for_locale("de")
    assert get_translator() is None


# -- validation at load time -----------------------------------------------------------------


def catalog_dir(tmp_path: Path, **catalogs: Any) -> Path:
    for locale, data in catalogs.items():
        text = data if isinstance(data, str) else json.dumps(data)
        (tmp_path / f"{locale.replace('_', '-')}.json").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("catalogs", "options", "message"),
    [
        ({"en": {}}, {"locales": ["en", "fr"]}, r"locale 'fr' has no catalog .*fr\.json"),
        ({"en": {}}, {"default_locale": "de"}, "default_locale 'de' is not in locales"),
        ({"en": {}}, {"locales": []}, "non-empty list"),
        ({"en": {}}, {"locales": "en"}, "non-empty list"),
        ({"en": {}}, {"locales": ["en", "EN"]}, "listed twice"),
        ({"en": {}}, {"locales": ["en", "en_US"]}, "'en_US' is not a language tag"),
        ({"en": {}}, {"fallbacks": {"en": ["xx"]}}, "fallbacks: 'xx' is not in locales"),
        ({"en": {}}, {"fallbacks": {"en": "en"}}, r"fallbacks\['en'\] must be a list"),
        ({"en": "{not json"}, {}, r"en\.json: not valid JSON"),
        ({"en": "[1, 2]"}, {}, "must be a JSON object"),
        ({"en": {"a": 1}}, {}, "key 'a': value must be a string or object"),
        ({"en": {"a": {"b": ["x"]}}}, {}, r"key 'a\.b': value must be"),
        ({"en": {"a": "{0} items"}}, {}, r"positional placeholder \{0\}"),
        ({"en": {"a": "{} items"}}, {}, "positional placeholder"),
        ({"en": {"a": "{name items"}}, {}, "bad placeholder syntax"),
        ({"en": {"a": {"one": "x", "few": "y"}}}, {}, "plural object without an 'other'"),
        ({"en": {"a": {"b": "x"}, "a.b": "y"}}, {}, "key 'a.b' is defined twice"),
        ({"en": {"a": {"one": "{0}", "other": "x"}}}, {}, r"key 'a' \[one\]: positional"),
        ({"en": {"": "x"}}, {}, "empty key"),
    ],
)
def test_bad_catalogs_and_options(
    tmp_path: Path, catalogs: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    directory = catalog_dir(tmp_path, **catalogs)
    kwargs: dict[str, Any] = {"locales": ["en"], "default_locale": "en", **options}
    with pytest.raises(ValueError, match=message):
        Translations(directory, **kwargs)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Translations(tmp_path / "nope", locales=["en"], default_locale="en")


def test_unconfigured_catalogs_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = catalog_dir(tmp_path, en={"a": "A"}, it={"a": "{broken"})
    (tmp_path / "README.txt").write_text("not a catalog", encoding="utf-8")
    translations = Translations(directory, locales=["en"], default_locale="en")
    assert list(translations.catalogs) == ["en"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "it.json" in warnings[0].getMessage()


def test_middleware_options(translations: Translations) -> None:
    app = App()
    with pytest.raises(TypeError, match="must be a Translations"):
        LocaleMiddleware(app, {"en": {}})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cookie_name is empty"):
        LocaleMiddleware(app, translations, cookie_name="")
    with pytest.raises(ValueError, match="query_param is empty"):
        LocaleMiddleware(app, translations, query_param="")


# -- the middleware, served ------------------------------------------------------------------


def make_app(translations: Translations, **options: Any) -> App:
    templates = Templates(DATA / "templates")
    app = App()

    @app.get("/hello")
    async def hello(request: Request) -> dict[str, str]:
        return {
            "locale": request.state.locale,
            "text": request.state.t("greeting", name="Ana"),
            "module": t("auth.login.title"),
        }

    @app.get("/sync")
    def sync_handler() -> str:  # runs in a worker thread: the context goes with it
        return t("greeting", name="Bo")

    @app.get("/page")
    async def page(request: Request, name: str, count: int) -> TemplateResponse:
        return templates.response(request, "greet.html", {"name": name, "count": count})

    @app.get("/own-headers")
    async def own_headers() -> JSONResponse:
        return JSONResponse({}, headers={"content-language": "mul", "vary": "Origin"})

    app.add_middleware(LocaleMiddleware, translations=translations, **options)
    return app


@pytest.mark.parametrize(
    ("params", "cookies", "accept", "locale"),
    [
        ({}, {}, None, "en"),
        ({}, {}, "fr-CA;q=0.9, en;q=0.8", "fr-CA"),
        ({}, {}, "fr-BE, en;q=0.8", "fr"),
        ({}, {}, "it", "en"),
        ({}, {"locale": "de"}, "fr", "de"),  # cookie beats Accept-Language
        ({}, {"locale": "klingon"}, "fr", "fr"),  # an unknown cookie is skipped
        ({"lang": "pl"}, {"locale": "de"}, "fr", "pl"),  # query beats cookie
        ({"lang": "ru-RU"}, {}, None, "ru"),
        ({"lang": "xx"}, {"locale": "de"}, "fr", "de"),  # an unknown query value is skipped
    ],
)
async def test_middleware_picks_the_locale(
    served: Served,
    translations: Translations,
    params: dict[str, str],
    cookies: dict[str, str],
    accept: str | None,
    locale: str,
) -> None:
    base = await served(make_app(translations))
    headers = {"accept-language": accept} if accept else {}
    async with httpx.AsyncClient(base_url=base, cookies=cookies) as client:
        response = await client.get("/hello", params=params, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["locale"] == locale
    assert body["text"] == translations.for_locale(locale)("greeting", name="Ana")
    assert body["module"] == translations.for_locale(locale)("auth.login.title")
    assert response.headers["content-language"] == locale
    assert response.headers["vary"] == "Accept-Language, Cookie"


async def test_middleware_end_to_end(served: Served, translations: Translations) -> None:
    base = await served(make_app(translations))
    async with httpx.AsyncClient(base_url=base) as client:
        fr = await client.get("/hello", headers={"accept-language": "fr"})
        sync = await client.get("/sync", headers={"accept-language": "de"})
        page = await client.get(
            "/page", params={"name": "<Ana>", "count": "5"}, headers={"accept-language": "pl"}
        )
        own = await client.get("/own-headers", headers={"accept-language": "fr"})
    assert fr.json() == {"locale": "fr", "text": "Bonjour, Ana !", "module": "Connexion"}
    assert sync.text == "Hallo, Bo!"
    assert page.headers["content-language"] == "pl"
    # ``t`` in the template, its output autoescaped like any other value.
    assert "<h1>Cześć, &lt;Ana&gt;!</h1>" in page.text
    assert '<p id="files">5 plików</p>' in page.text
    assert own.headers["content-language"] == "mul"  # the app's own value is kept
    assert own.headers["vary"] == "Origin, Accept-Language, Cookie"


async def test_middleware_without_cookie_step(served: Served, translations: Translations) -> None:
    base = await served(make_app(translations, cookie_name=None, query_param="hl"))
    async with httpx.AsyncClient(base_url=base, cookies={"locale": "de"}) as client:
        ignored_cookie = await client.get("/hello", headers={"accept-language": "es"})
        query = await client.get("/hello", params={"hl": "ru", "lang": "de"})
    assert ignored_cookie.json()["locale"] == "es"
    assert ignored_cookie.headers["vary"] == "Accept-Language"
    assert query.json()["locale"] == "ru"


async def test_readme_example(served: Served, tmp_path: Path) -> None:
    # The README example (its imports are this module's), with tmp_path for its directory.
    root = tmp_path
    (root / "templates").mkdir()
    (root / "templates" / "hello.html").write_text(
        '<h1>{{ t("greeting", name=name) }}</h1>\n'
        '<p>{{ t("inbox", count=count) }}</p>\n'
        '<a href="{{ url_for("hello", name="Ana") }}">again</a>\n'
    )
    (root / "locales").mkdir()
    (root / "locales" / "en.json").write_text(
        '{"greeting": "Hello, {name}!",'
        ' "inbox": {"one": "{count} message", "other": "{count} messages"}}'
    )
    (root / "locales" / "fr.json").write_text(
        '{"greeting": "Bonjour, {name} !",'
        ' "inbox": {"one": "{count} message", "other": "{count} messages"}}'
    )

    templates = Templates(root / "templates", auto_reload=True)  # development: reload edits
    translations = Translations(root / "locales", locales=["en", "fr"], default_locale="en")

    app = App()
    app.add_middleware(LocaleMiddleware, translations=translations)

    @app.get("/hello/{name}")
    async def hello(request: Request, name: str, count: int = 0) -> TemplateResponse:
        return templates.response(request, "hello.html", {"name": name, "count": count})

    @app.get("/api/hello/{name}")
    async def api_hello(name: str) -> dict[str, str]:
        return {"message": t("greeting", name=name)}

    base = await served(app)
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get(
            "/hello/<Ana>",
            params={"count": 0},
            headers={"accept-language": "fr-CA, en;q=0.5"},
        )
        api = await client.get("/api/hello/Bo", params={"lang": "fr"})
    assert page.headers["content-language"] == "fr"
    assert "<h1>Bonjour, &lt;Ana&gt; !</h1>" in page.text
    assert "<p>0 message</p>" in page.text  # French: 0 is singular
    assert f'<a href="{base}/hello/Ana">again</a>' in page.text
    assert api.json() == {"message": "Bonjour, Bo !"}


async def test_websocket_gets_the_locale(served: Served, translations: Translations) -> None:
    client = pytest.importorskip("websockets.asyncio.client")
    app = App()

    @app.websocket("/ws")
    async def greet(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"{websocket.state.locale}|{t('greeting', name='W')}")
        await websocket.close()

    app.add_middleware(LocaleMiddleware, translations=translations)
    base = await served(app)
    url = base.replace("http://", "ws://") + "/ws?lang=es"
    async with client.connect(url, additional_headers={"accept-language": "de"}) as ws:
        assert await ws.recv() == "es|¡Hola, W!"
    async with client.connect(
        url.replace("?lang=es", ""), additional_headers={"accept-language": "de"}
    ) as ws:
        assert await ws.recv() == "de|Hallo, W!"
