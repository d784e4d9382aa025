"""Twilio: ``X-Twilio-Signature``, HMAC-SHA1 over the URL plus the sorted form parameters."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from ._codec import decode_base64, encode_base64
from ._headers import Headers
from ._keys import Secrets, any_equal, utf8_keys
from .errors import (
    InvalidSignatureError,
    MalformedHeaderError,
    MalformedPayloadError,
    WebhookConfigError,
)
from .replay import AsyncSeenStore, SeenStore
from .result import Verified
from .scheme import Scheme

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
_ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the default port.

    Twilio's signing is inconsistent about ports, so its own validator accepts both forms.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise MalformedPayloadError(f"invalid port in url {url!r}") from None
    if parts.username is not None:
        raise MalformedPayloadError("url must not contain credentials")
    # The host exactly as written (urlsplit's .hostname lowercases it, Twilio does not).
    host = parts.netloc
    if port is not None:
        host = host[: host.rindex(":")]
    without = urlunsplit(parts._replace(netloc=host))
    default = 443 if parts.scheme == "https" else 80
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port or default}"))
    return list(dict.fromkeys([url, without, with_port]))


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MalformedPayloadError("url must be the absolute http(s) URL Twilio requested")


def _signed_string(url: str, params: dict[str, list[str]]) -> bytes:
    text = url
    for name in sorted(params):
        # Twilio sorts and de-duplicates the values of a repeated parameter.
        for value in sorted(set(params[name])):
            text += name + value
    return text.encode()


class Twilio(Scheme):
    """Twilio webhooks, which sign the full URL the request was sent to.

    ``verify`` therefore needs ``url=``: scheme, host, path and query exactly as Twilio
    called it (behind a proxy, the public URL; the ASGI middleware builds it). Form bodies
    (``application/x-www-form-urlencoded``) are signed through their parameters; JSON
    bodies are bound by the ``bodySHA256`` query parameter, checked against the body.
    ``X-Twilio-Webhooks-Signature-Settings`` may select HMAC-SHA256 (SharedKey signing);
    HMAC-SHA1 with the Auth Token is the default.
    """

    name = "twilio"
    header_names = frozenset({SIGNATURE_HEADER.lower(), SETTINGS_HEADER.lower()})
    sign_options = frozenset({"url"})

    def __init__(
        self,
        secret: Secrets,
        *,
        seen_store: SeenStore | AsyncSeenStore | None = None,
        replay_ttl: float | None = None,
    ) -> None:
        super().__init__(seen_store=seen_store, replay_ttl=replay_ttl)
        self._keys = utf8_keys(secret, "auth token")

    def _algorithm(self, headers: Headers) -> str:
        settings = headers.get(SETTINGS_HEADER)
        if not settings:
            return "sha1"
        for part in settings.split(","):
            name, _, value = part.partition("=")
            if name.strip() == "algorithm" and value.strip():
                try:
                    return _ALGORITHMS[value.strip().upper()]
                except KeyError:
                    raise MalformedHeaderError(SETTINGS_HEADER, "unsupported algorithm") from None
        return "sha1"

    def _params(self, body: bytes, url: str) -> dict[str, list[str]]:
        query = parse_qs(urlsplit(url).query)
        if "bodySHA256" in query:
            expected = hashlib.sha256(body).hexdigest().encode()
            if not hmac.compare_digest(expected, query["bodySHA256"][0].lower().encode()):
                raise InvalidSignatureError("body does not match the bodySHA256 in the url")
            return {}
        try:
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
        except (UnicodeDecodeError, ValueError):
            raise MalformedPayloadError("body is not application/x-www-form-urlencoded") from None
        params: dict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            params[name].append(value)
        return params

    def _verify(
        self, body: bytes, headers: Headers, now: float | None, url: str | None
    ) -> tuple[Verified, bytes]:
        if url is None:
            raise WebhookConfigError("Twilio signs the URL: call verify(body, headers, url=...)")
        _check_url(url)
        signature = decode_base64(headers.require(SIGNATURE_HEADER), SIGNATURE_HEADER)
        digest = self._algorithm(headers)
        params = self._params(body, url)
        for variant in _url_variants(url):
            message = _signed_string(variant, params)
            for index, key in enumerate(self._keys):
                if any_equal(hmac.digest(key, message, digest), [signature]):
                    return Verified(self.name, index), message + b"\n" + body
        raise InvalidSignatureError("signature does not match the url and parameters")

    def _sign(
        self, body: bytes, timestamp: int | None, message_id: str | None, url: str | None
    ) -> dict[str, str]:
        if url is None:
            raise WebhookConfigError("Twilio signs the URL: call sign(body, url=...)")
        _check_url(url)
        params = self._params(body, url)
        mac = hmac.digest(self._keys[0], _signed_string(url, params), "sha1")
        return {SIGNATURE_HEADER: encode_base64(mac)}
