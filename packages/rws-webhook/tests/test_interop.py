"""Cross-checks against the real third-party libraries, in both directions.

Every case makes a real call into the peer library: stripe, standardwebhooks, svix, twilio
and cryptography (for Standard Webhooks' asymmetric ``v1a``, which neither standardwebhooks
nor svix implement). "Their signature verifies with rws" and "rws's signature verifies with
them" are separate tests, because a symmetric bug (both sides of rws wrong in the same way)
would pass a round trip through rws alone.

The peers take ``str`` bodies and decode ``bytes`` as UTF-8, so the bodies shared with them
are valid UTF-8; arbitrary bytes are covered by rws's own unit tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from rws.webhook import (
    InvalidSignatureError,
    StandardWebhooks,
    Stripe,
    TimestampOutOfRangeError,
    Twilio,
    Verified,
)

# The peers are test tools, not dependencies: without them (a bare venv) skip this module,
# unless RWS_REQUIRE_SERVICES=1 (CI), where a missing peer is an error.
try:
    import standardwebhooks.webhooks
    import stripe
    import svix.webhooks
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
except ImportError as exc:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(f"interop peer not installed: {exc.name}", allow_module_level=True)

# -- shared bodies ----------------------------------------------------------------------------

#: Every code point below 256: control characters JSON-escaped, the rest as raw UTF-8.
_ALL_LATIN1 = json.dumps({"chars": "".join(chr(i) for i in range(256))}, ensure_ascii=False)
_MEGABYTE = json.dumps(
    {"id": "evt_big", "object": "event", "blob": "".join(f"{i:08x}" for i in range(131_072))}
)

BODIES: list[bytes] = [
    b"",
    b'{"id":"evt_1","object":"event","data":{"object":{"amount":2000}}}',
    '{"id":"evt_2","object":"event","name":"Zoë 🚀 日本語 Ελληνικά"}'.encode(),
    _ALL_LATIN1.encode(),
    b'{"raw":"line1\r\nline2\x00\ttab"}\n',
    b"  leading and trailing whitespace matters  ",
    _MEGABYTE.encode(),
]
BODY_IDS = ["empty", "json", "unicode", "latin1-range", "control-chars", "whitespace", "1MB"]

assert len(_MEGABYTE) > 1_000_000


def _json_bodies() -> list[bytes]:
    return [body for body in BODIES if body.startswith(b'{"id"')]


# -- Stripe -----------------------------------------------------------------------------------

STRIPE_SECRET = "whsec_test_1f5d0c1e2b3a4f5e6d7c8b9a"
STRIPE_OLD = "whsec_test_old_0a1b2c3d4e5f"
STRIPE_OTHER = "whsec_test_unrelated"


def _stripe_header(body: bytes, secret: str, timestamp: int) -> str:
    # stripe's public helper for tests; it takes the body as str.
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=timestamp
    )
    return header


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_stripe_rws_signature_verifies_with_stripe(body: bytes) -> None:
    headers = Stripe(STRIPE_SECRET).sign(body)
    assert list(headers) == ["Stripe-Signature"]
    assert (
        stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], STRIPE_SECRET)
        is True
    )


@pytest.mark.parametrize("body", _json_bodies())
def test_stripe_construct_event_accepts_rws_signature(body: bytes) -> None:
    headers = Stripe(STRIPE_SECRET).sign(body)
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], STRIPE_SECRET)
    assert event.id == json.loads(body)["id"]
    assert event["object"] == "event"


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_stripe_made_header_verifies_with_rws(body: bytes) -> None:
    timestamp = int(time.time())
    header = _stripe_header(body, STRIPE_SECRET, timestamp)
    result = Stripe(STRIPE_SECRET).verify(body, {"Stripe-Signature": header})
    assert result == Verified("stripe", 0, timestamp=timestamp)


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_stripe_header_is_byte_identical_to_stripes(body: bytes) -> None:
    # With one secret there is exactly one correct header: both must produce it.
    timestamp = 1_700_000_000
    ours = Stripe(STRIPE_SECRET).sign(body, timestamp=timestamp)["Stripe-Signature"]
    assert ours == _stripe_header(body, STRIPE_SECRET, timestamp)


def test_stripe_rotation_rws_signs_for_both_secrets() -> None:
    body = BODIES[1]
    header = Stripe([STRIPE_SECRET, STRIPE_OLD]).sign(body)["Stripe-Signature"]
    parts = header.split(",")
    assert [p.split("=", 1)[0] for p in parts] == ["t", "v1", "v1"]
    # A receiver on either side of the roll accepts it...
    assert stripe.WebhookSignature.verify_header(body, header, STRIPE_SECRET) is True
    assert stripe.WebhookSignature.verify_header(body, header, STRIPE_OLD) is True
    # ...and one holding neither secret does not.
    with pytest.raises(stripe.SignatureVerificationError, match="No signatures found matching"):
        stripe.WebhookSignature.verify_header(body, header, STRIPE_OTHER)


def test_stripe_rotation_multi_v1_header_from_stripe_verifies_with_rws() -> None:
    # During a roll Stripe sends one v1 per active secret; build that header from two
    # stripe-made headers with the same timestamp.
    body = BODIES[2]
    timestamp = int(time.time())
    new = _stripe_header(body, STRIPE_SECRET, timestamp)
    old = _stripe_header(body, STRIPE_OLD, timestamp)
    combined = new + "," + old.split(",", 1)[1]
    assert combined.count("v1=") == 2
    assert stripe.WebhookSignature.verify_header(body, combined, STRIPE_OLD) is True
    # A receiver that only knows the old secret, one that knows both, and one that knows
    # only the new one all accept; key_index says which secret matched.
    assert Stripe(STRIPE_OLD).verify(body, {"stripe-signature": combined}).key_index == 0
    assert Stripe([STRIPE_SECRET, STRIPE_OLD]).verify(body, {"Stripe-Signature": old}) == (
        Verified("stripe", 1, timestamp=timestamp)
    )
    assert Stripe([STRIPE_OTHER, STRIPE_SECRET]).verify(
        body, {"Stripe-Signature": combined}
    ) == Verified("stripe", 1, timestamp=timestamp)


def test_stripe_stale_timestamp_rejected_by_both() -> None:
    body = BODIES[1]
    stale = int(time.time()) - 600
    ours = Stripe(STRIPE_SECRET).sign(body, timestamp=stale)["Stripe-Signature"]
    theirs = _stripe_header(body, STRIPE_SECRET, stale)
    assert ours == theirs
    with pytest.raises(stripe.SignatureVerificationError, match="outside the tolerance zone"):
        stripe.WebhookSignature.verify_header(body, theirs, STRIPE_SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError, match="outside the tolerance zone"):
        stripe.Webhook.construct_event(body, theirs, STRIPE_SECRET)
    with pytest.raises(TimestampOutOfRangeError) as caught:
        Stripe(STRIPE_SECRET).verify(body, {"Stripe-Signature": theirs})
    assert caught.value.timestamp == stale
    assert caught.value.reason == "timestamp_out_of_range"


def test_stripe_timestamp_inside_window_accepted_by_both() -> None:
    body = BODIES[1]
    recent = int(time.time()) - 120
    header = Stripe(STRIPE_SECRET).sign(body, timestamp=recent)["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(body, header, STRIPE_SECRET, tolerance=300)
    assert Stripe(STRIPE_SECRET).verify(body, {"Stripe-Signature": header}).timestamp == recent


def test_stripe_future_timestamp_only_rws_rejects() -> None:
    # Documented difference: stripe's library checks only the past side of the window.
    body = BODIES[1]
    future = int(time.time()) + 3600
    header = _stripe_header(body, STRIPE_SECRET, future)
    assert stripe.WebhookSignature.verify_header(body, header, STRIPE_SECRET, tolerance=300)
    with pytest.raises(TimestampOutOfRangeError, match="in the future"):
        Stripe(STRIPE_SECRET).verify(body, {"Stripe-Signature": header})


def test_stripe_tampered_body_rejected_by_both() -> None:
    body = BODIES[1]
    header = Stripe(STRIPE_SECRET).sign(body)["Stripe-Signature"]
    tampered = body.replace(b"2000", b"2001")
    with pytest.raises(stripe.SignatureVerificationError, match="No signatures found matching"):
        stripe.WebhookSignature.verify_header(tampered, header, STRIPE_SECRET)
    with pytest.raises(InvalidSignatureError):
        Stripe(STRIPE_SECRET).verify(tampered, {"Stripe-Signature": header})


# -- Standard Webhooks and Svix ---------------------------------------------------------------

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's example secret
SW_OLD = "whsec_" + base64.b64encode(b"previous-secret-previous-secret!").decode()
SW_OTHER = "whsec_" + base64.b64encode(b"unrelated-secret-unrelated-secr!").decode()
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"

PeerWebhook = standardwebhooks.webhooks.Webhook | svix.webhooks.Webhook
PEERS: dict[str, type[standardwebhooks.webhooks.Webhook] | type[svix.webhooks.Webhook]] = {
    "standardwebhooks": standardwebhooks.webhooks.Webhook,
    "svix": svix.webhooks.Webhook,
}
PeerError = (
    standardwebhooks.webhooks.WebhookVerificationError,
    svix.webhooks.WebhookVerificationError,
)


def _peer(name: str, secret: str | bytes) -> PeerWebhook:
    return PEERS[name](secret)


def _peer_verify(peer: PeerWebhook, body: bytes, headers: dict[str, str]) -> None:
    if isinstance(peer, svix.webhooks.Webhook):
        peer.verify(body, headers)
    else:
        # json_parse=False: several bodies here are not JSON.
        assert peer.verify(body, headers, json_parse=False) is None


def _family(headers: dict[str, str], family: str) -> dict[str, str]:
    """The same three headers under ``webhook-*`` or ``svix-*`` names."""
    return {name.replace("webhook-", f"{family}-"): value for name, value in headers.items()}


def _peer_headers(peer: PeerWebhook, body: bytes, timestamp: int, family: str) -> dict[str, str]:
    # The peers take the timestamp as a datetime and the body as str.
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    signature = peer.sign(MSG_ID, when, body.decode("utf-8"))
    return {
        f"{family}-id": MSG_ID,
        f"{family}-timestamp": str(timestamp),
        f"{family}-signature": signature,
    }


@pytest.mark.parametrize("family", ["webhook", "svix"])
@pytest.mark.parametrize("peer_name", sorted(PEERS))
@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_standard_peer_signature_verifies_with_rws(
    body: bytes, peer_name: str, family: str
) -> None:
    timestamp = int(time.time())
    headers = _peer_headers(_peer(peer_name, SW_SECRET), body, timestamp, family)
    result = StandardWebhooks(SW_SECRET).verify(body, headers)
    assert result == Verified("standard", 0, timestamp=timestamp, message_id=MSG_ID)


# standardwebhooks reads only webhook-* names; svix reads svix-* and falls back to webhook-*.
@pytest.mark.parametrize(
    ("peer_name", "family"),
    [("standardwebhooks", "webhook"), ("svix", "webhook"), ("svix", "svix")],
)
@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_standard_rws_signature_verifies_with_peer(
    body: bytes, peer_name: str, family: str
) -> None:
    headers = StandardWebhooks(SW_SECRET).sign(body, message_id=MSG_ID)
    assert sorted(headers) == ["webhook-id", "webhook-signature", "webhook-timestamp"]
    _peer_verify(_peer(peer_name, SW_SECRET), body, _family(headers, family))


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_standard_signature_entry_is_identical_to_peers(body: bytes) -> None:
    timestamp = 1_700_000_000
    ours = StandardWebhooks(SW_SECRET).sign(body, message_id=MSG_ID, timestamp=timestamp)
    theirs = standardwebhooks.webhooks.Webhook(SW_SECRET).sign(
        MSG_ID, datetime.fromtimestamp(timestamp, tz=UTC), body.decode()
    )
    assert ours == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1700000000",
        "webhook-signature": theirs,
    }


def test_standard_peer_parses_json_after_verifying_rws_signature() -> None:
    body = BODIES[2]
    headers = StandardWebhooks(SW_SECRET).sign(body, message_id=MSG_ID)
    parsed = standardwebhooks.webhooks.Webhook(SW_SECRET).verify(body, headers)
    assert parsed == json.loads(body)


@pytest.mark.parametrize(
    "secret",
    [SW_SECRET, SW_SECRET.removeprefix("whsec_"), base64.b64decode(SW_SECRET[6:])],
    ids=["whsec-prefixed", "bare-base64", "raw-bytes"],
)
def test_standard_secret_forms_agree_with_peer(secret: str | bytes) -> None:
    body = BODIES[1]
    headers = StandardWebhooks(secret).sign(body, message_id=MSG_ID)
    _peer_verify(standardwebhooks.webhooks.Webhook(secret), body, headers)
    # The same key in its canonical form verifies too: all three forms are one key.
    _peer_verify(standardwebhooks.webhooks.Webhook(SW_SECRET), body, headers)
    theirs = _peer_headers(
        standardwebhooks.webhooks.Webhook(secret), body, int(time.time()), "webhook"
    )
    assert StandardWebhooks(SW_SECRET).verify(body, theirs).key_index == 0


@pytest.mark.parametrize("peer_name", sorted(PEERS))
def test_standard_rotation_rws_signs_two_v1_entries(peer_name: str) -> None:
    body = BODIES[1]
    headers = StandardWebhooks([SW_SECRET, SW_OLD]).sign(body, message_id=MSG_ID)
    entries = headers["webhook-signature"].split(" ")
    assert [entry.split(",", 1)[0] for entry in entries] == ["v1", "v1"]
    _peer_verify(_peer(peer_name, SW_OLD), body, headers)
    _peer_verify(_peer(peer_name, SW_SECRET), body, headers)
    with pytest.raises(PeerError, match="No matching signature found"):
        _peer_verify(_peer(peer_name, SW_OTHER), body, headers)


@pytest.mark.parametrize("peer_name", sorted(PEERS))
def test_standard_rotation_rws_accepts_peer_signing_with_old_secret(peer_name: str) -> None:
    body = BODIES[1]
    timestamp = int(time.time())
    headers = _peer_headers(_peer(peer_name, SW_OLD), body, timestamp, "webhook")
    result = StandardWebhooks([SW_SECRET, SW_OLD]).verify(body, headers)
    assert result == Verified("standard", 1, timestamp=timestamp, message_id=MSG_ID)
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks([SW_SECRET, SW_OTHER]).verify(body, headers)


@pytest.mark.parametrize("peer_name", sorted(PEERS))
@pytest.mark.parametrize("offset", [-600, 600], ids=["stale", "future"])
def test_standard_out_of_window_rejected_by_both(peer_name: str, offset: int) -> None:
    body = BODIES[1]
    timestamp = int(time.time()) + offset
    headers = StandardWebhooks(SW_SECRET).sign(body, message_id=MSG_ID, timestamp=timestamp)
    expected = "too old" if offset < 0 else "too new"
    with pytest.raises(PeerError, match=expected):
        _peer_verify(_peer(peer_name, SW_SECRET), body, headers)
    peer_headers = _peer_headers(_peer(peer_name, SW_SECRET), body, timestamp, "webhook")
    assert peer_headers == headers
    with pytest.raises(TimestampOutOfRangeError) as caught:
        StandardWebhooks(SW_SECRET).verify(body, peer_headers)
    assert caught.value.timestamp == timestamp


@pytest.mark.parametrize("peer_name", sorted(PEERS))
def test_standard_tampered_body_rejected_by_both(peer_name: str) -> None:
    body = BODIES[1]
    headers = StandardWebhooks(SW_SECRET).sign(body, message_id=MSG_ID)
    tampered = body + b" "
    with pytest.raises(PeerError, match="No matching signature found"):
        _peer_verify(_peer(peer_name, SW_SECRET), tampered, headers)
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(SW_SECRET).verify(tampered, headers)


# -- Standard Webhooks v1a (Ed25519) ------------------------------------------------------------
#
# standardwebhooks 1.1 and svix 2.9 implement only v1 (HMAC): their sources contain no "v1a"
# and no Ed25519, and their verify() skips entries of any other version. So v1a is checked
# against `cryptography`'s Ed25519 directly, with the key format of the spec:
#   whsk_ = base64(32-byte private seed), whpk_ = base64(32-byte raw public key),
#   signature entry "v1a,<base64(64-byte signature)>" over "{id}.{timestamp}.{body}".


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture
def ed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _signed_content(message_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{message_id}.{timestamp}.".encode() + body


@pytest.mark.parametrize("peer_name", sorted(PEERS))
def test_v1a_is_ignored_by_peers(peer_name: str, ed_key: Ed25519PrivateKey) -> None:
    # The peers' verify() passes over a v1a entry: only v1 can satisfy them.
    body = BODIES[1]
    whsk = "whsk_" + base64.b64encode(_raw_private(ed_key)).decode()
    headers = StandardWebhooks(whsk).sign(body, message_id=MSG_ID)
    assert headers["webhook-signature"].startswith("v1a,")
    with pytest.raises(PeerError, match="No matching signature found"):
        _peer_verify(_peer(peer_name, SW_SECRET), body, headers)
    # With a v1 entry beside it (rws holding [whsk_, whsec_]) the peer accepts the v1 one.
    mixed = StandardWebhooks([whsk, SW_SECRET]).sign(body, message_id=MSG_ID)
    versions = [e.split(",", 1)[0] for e in mixed["webhook-signature"].split(" ")]
    assert versions == ["v1a", "v1"]
    _peer_verify(_peer(peer_name, SW_SECRET), body, mixed)


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_v1a_rws_signature_verifies_with_cryptography(
    body: bytes, ed_key: Ed25519PrivateKey
) -> None:
    whsk = "whsk_" + base64.b64encode(_raw_private(ed_key)).decode()
    timestamp = int(time.time())
    headers = StandardWebhooks(whsk).sign(body, message_id=MSG_ID, timestamp=timestamp)
    version, encoded = headers["webhook-signature"].split(",")
    assert version == "v1a"
    signature = base64.b64decode(encoded, validate=True)
    assert len(signature) == 64
    content = _signed_content(MSG_ID, timestamp, body)
    ed_key.public_key().verify(signature, content)  # raises InvalidSignature if wrong
    # Ed25519 is deterministic: the same seed and message give the same signature.
    assert signature == ed_key.sign(content)
    with pytest.raises(InvalidSignature):
        ed_key.public_key().verify(signature, content + b"x")


@pytest.mark.parametrize("body", BODIES, ids=BODY_IDS)
def test_v1a_cryptography_signature_verifies_with_rws(
    body: bytes, ed_key: Ed25519PrivateKey
) -> None:
    whpk = "whpk_" + base64.b64encode(_raw_public(ed_key.public_key())).decode()
    timestamp = int(time.time())
    signature = ed_key.sign(_signed_content(MSG_ID, timestamp, body))
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1a," + base64.b64encode(signature).decode(),
    }
    result = StandardWebhooks(whpk).verify(body, headers)
    assert result == Verified("standard", 0, timestamp=timestamp, message_id=MSG_ID)
    # Svix header names carry v1a just the same.
    assert StandardWebhooks(whpk).verify(body, _family(headers, "svix")) == result
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(whpk).verify(body + b"x", headers)


def test_v1a_signature_is_not_accepted_as_v1_or_by_another_key(
    ed_key: Ed25519PrivateKey,
) -> None:
    body = BODIES[1]
    timestamp = int(time.time())
    signature = base64.b64encode(ed_key.sign(_signed_content(MSG_ID, timestamp, body))).decode()
    whpk = "whpk_" + base64.b64encode(_raw_public(ed_key.public_key())).decode()
    other = (
        "whpk_" + base64.b64encode(_raw_public(Ed25519PrivateKey.generate().public_key())).decode()
    )
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(timestamp)}
    # Relabelled as v1, an Ed25519 signature means nothing to an Ed25519 key.
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(whpk).verify(body, {**headers, "webhook-signature": "v1," + signature})
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(other).verify(body, {**headers, "webhook-signature": "v1a," + signature})
    # Rotation of public keys: [other, whpk] accepts with key_index 1.
    result = StandardWebhooks([other, whpk]).verify(
        body, {**headers, "webhook-signature": "v1a," + signature}
    )
    assert result.key_index == 1


def test_v1a_generated_keypair_matches_cryptography() -> None:
    whsk, whpk = StandardWebhooks.generate_keypair()
    assert whsk.startswith("whsk_")
    assert whpk.startswith("whpk_")
    seed = base64.b64decode(whsk.removeprefix("whsk_"), validate=True)
    public = base64.b64decode(whpk.removeprefix("whpk_"), validate=True)
    assert len(seed) == 32
    assert len(public) == 32
    private = Ed25519PrivateKey.from_private_bytes(seed)
    assert _raw_public(private.public_key()) == public
    # And the pair works across the libraries: rws signs with whsk_, cryptography verifies
    # with the whpk_ bytes; cryptography signs with the seed, rws verifies with whpk_.
    body = BODIES[2]
    timestamp = int(time.time())
    headers = StandardWebhooks(whsk).sign(body, message_id=MSG_ID, timestamp=timestamp)
    signature = base64.b64decode(headers["webhook-signature"].removeprefix("v1a,"))
    Ed25519PublicKey.from_public_bytes(public).verify(
        signature, _signed_content(MSG_ID, timestamp, body)
    )
    theirs = private.sign(_signed_content(MSG_ID, timestamp, body))
    assert theirs == signature
    assert StandardWebhooks(whpk).verify(body, headers).key_index == 0


def test_v1a_rfc8032_key_derivation() -> None:
    # RFC 8032 section 7.1, TEST 1: the whsk_ seed must map to the RFC's public key.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    whsk = "whsk_" + base64.b64encode(seed).decode()
    whpk = "whpk_" + base64.b64encode(public).decode()
    body = BODIES[1]
    timestamp = int(time.time())
    headers = StandardWebhooks(whsk).sign(body, message_id=MSG_ID, timestamp=timestamp)
    signature = base64.b64decode(headers["webhook-signature"].removeprefix("v1a,"))
    Ed25519PublicKey.from_public_bytes(public).verify(
        signature, _signed_content(MSG_ID, timestamp, body)
    )
    assert StandardWebhooks(whpk).verify(body, headers).key_index == 0


# -- Twilio -----------------------------------------------------------------------------------

TWILIO_TOKEN = "12345abcdef67890twilio"


class _MultiDict(dict[str, list[str]]):
    """Form parameters with repeated keys, the way Django's QueryDict hands them over.

    RequestValidator reads repeated values through ``getlist`` (Django) or ``getall``
    (werkzeug/aiohttp); a plain dict can hold only one value per key.
    """

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> _MultiDict:
        out = cls()
        for name, value in pairs:
            out.setdefault(name, []).append(value)
        return out

    def getlist(self, name: str) -> list[str]:
        return self[name]


FORMS: list[list[tuple[str, str]]] = [
    [("AccountSid", "AC123"), ("From", "+15551234567"), ("To", "+15557654321"), ("Body", "hi")],
    [("To", "+15550000002"), ("To", "+15550000001"), ("To", "+15550000002"), ("Sid", "SM1")],
    [("Body", "Zoë 🚀 日本語"), ("Caller", "Ελληνικά"), ("Ключ", "значение")],
    [],
    [("Body", "a+b=c&d %25 ;/?#[]"), ("Empty", ""), ("Spaces", "  two  ")],
    [("Body", "x" * 100_000), ("MediaUrl0", "https://api.twilio.com/media/ME1")],
]
FORM_IDS = ["simple", "repeated-keys", "unicode", "empty-body", "reserved-chars", "100KB"]

URLS = [
    "https://example.com/sms",
    "https://example.com/sms?source=twilio&n=1",
    "https://example.com:443/voice",
    "http://example.com/hook",
    "https://example.com:8443/hook?a=%2B1",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_twilio_rws_signature_validates_with_twilio(form: list[tuple[str, str]], url: str) -> None:
    body = urlencode(form).encode()
    headers = Twilio(TWILIO_TOKEN).sign(body, url=url)
    signature = headers["X-Twilio-Signature"]
    validator = RequestValidator(TWILIO_TOKEN)
    assert validator.validate(url, _MultiDict.of(form), signature) is True
    # Not a yes-man: another token, or another URL, fails.
    assert RequestValidator("another-token").validate(url, _MultiDict.of(form), signature) is False
    assert validator.validate(url + "x", _MultiDict.of(form), signature) is False
    # And the exact value: twilio's own computation over the URL as given.
    assert signature == validator.compute_signature(url, _MultiDict.of(form))


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_twilio_signature_verifies_with_rws(form: list[tuple[str, str]], url: str) -> None:
    body = urlencode(form).encode()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, _MultiDict.of(form))
    result = Twilio(TWILIO_TOKEN).verify(body, {"X-Twilio-Signature": signature}, url=url)
    assert result == Verified("twilio", 0)
    tampered = body + (b"&" if body else b"") + b"Extra=1"
    with pytest.raises(InvalidSignatureError):
        Twilio(TWILIO_TOKEN).verify(tampered, {"X-Twilio-Signature": signature}, url=url)


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://example.com:443/sms?x=1", "https://example.com/sms?x=1"),
        ("https://example.com/sms?x=1", "https://example.com:443/sms?x=1"),
        ("http://example.com:80/sms", "http://example.com/sms"),
        ("http://example.com/sms", "http://example.com:80/sms"),
    ],
)
def test_twilio_port_normalisation_agrees(signed_url: str, request_url: str) -> None:
    # Twilio signs sometimes with, sometimes without the default port; both validators try
    # both forms, in both directions.
    form = FORMS[0]
    body = urlencode(form).encode()
    validator = RequestValidator(TWILIO_TOKEN)
    theirs = validator.compute_signature(signed_url, _MultiDict.of(form))
    assert Twilio(TWILIO_TOKEN).verify(
        body, {"X-Twilio-Signature": theirs}, url=request_url
    ) == Verified("twilio", 0)
    ours = Twilio(TWILIO_TOKEN).sign(body, url=signed_url)["X-Twilio-Signature"]
    assert ours == theirs
    assert validator.validate(request_url, _MultiDict.of(form), ours) is True


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://Hooks.Example.com/sms", "https://Hooks.Example.com:443/sms"),
        ("https://Hooks.Example.com:443/sms", "https://Hooks.Example.com/sms"),
    ],
)
def test_twilio_port_normalisation_keeps_host_case(signed_url: str, request_url: str) -> None:
    form = FORMS[0]
    body = urlencode(form).encode()
    theirs = RequestValidator(TWILIO_TOKEN).compute_signature(signed_url, _MultiDict.of(form))
    assert RequestValidator(TWILIO_TOKEN).validate(request_url, _MultiDict.of(form), theirs)
    assert Twilio(TWILIO_TOKEN).verify(
        body, {"X-Twilio-Signature": theirs}, url=request_url
    ) == Verified("twilio", 0)


def test_twilio_non_default_port_is_not_dropped() -> None:
    form = FORMS[0]
    body = urlencode(form).encode()
    signed = Twilio(TWILIO_TOKEN).sign(body, url="https://example.com:8443/sms")
    signature = signed["X-Twilio-Signature"]
    # A signature over a non-default port holds only for that port, on both sides.
    assert RequestValidator(TWILIO_TOKEN).validate(
        "https://example.com:8443/sms", _MultiDict.of(form), signature
    )
    assert (
        RequestValidator(TWILIO_TOKEN).validate(
            "https://example.com:9443/sms", _MultiDict.of(form), signature
        )
        is False
    )
    with pytest.raises(InvalidSignatureError):
        Twilio(TWILIO_TOKEN).verify(
            body, {"X-Twilio-Signature": signature}, url="https://example.com:9443/sms"
        )


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_twilio_sha256_shared_key_signature_verifies_with_rws(form: list[tuple[str, str]]) -> None:
    url = "https://example.com/sms?x=1"
    body = urlencode(form).encode()
    validator = RequestValidator(TWILIO_TOKEN)
    signature = validator.compute_signature(url, _MultiDict.of(form), algorithm="HMAC_SHA256")
    settings = "key=webhooks_sharedkey_123,algorithm=HMAC_SHA256"
    headers = {"X-Twilio-Signature": signature, "X-Twilio-Webhooks-Signature-Settings": settings}
    assert validator.validate(url, _MultiDict.of(form), signature, algorithm="HMAC_SHA256")
    assert Twilio(TWILIO_TOKEN).verify(body, headers, url=url) == Verified("twilio", 0)
    # Without the settings header the SHA-1 default applies, and the SHA-256 MAC fails.
    with pytest.raises(InvalidSignatureError):
        Twilio(TWILIO_TOKEN).verify(body, {"X-Twilio-Signature": signature}, url=url)


@pytest.mark.parametrize(
    "body",
    [
        b'{"event":"call.completed","sid":"CA1"}',
        '{"note":"Zoë 🚀 日本語"}'.encode(),
        b"{}",
        _MEGABYTE.encode(),
    ],
    ids=["json", "unicode", "empty-object", "1MB"],
)
@pytest.mark.parametrize("base", ["https://example.com/events", "https://example.com:443/e?x=1"])
def test_twilio_json_body_sha256_flow(body: bytes, base: str) -> None:
    digest = hashlib.sha256(body).hexdigest()
    url = f"{base}{'&' if '?' in base else '?'}bodySHA256={digest}"
    validator = RequestValidator(TWILIO_TOKEN)
    # Twilio's side: the URL (with bodySHA256) is signed with no parameters, and validate()
    # gets the body as a string to check it against the hash.
    theirs = validator.compute_signature(url, {})
    assert validator.validate(url, body.decode(), theirs) is True
    assert Twilio(TWILIO_TOKEN).verify(body, {"X-Twilio-Signature": theirs}, url=url) == (
        Verified("twilio", 0)
    )
    ours = Twilio(TWILIO_TOKEN).sign(body, url=url)["X-Twilio-Signature"]
    assert ours == theirs
    assert validator.validate(url, body.decode(), ours) is True
    # A different body with the same URL and signature fails on both sides.
    other = body + b" "
    assert validator.validate(url, other.decode(), theirs) is False
    with pytest.raises(InvalidSignatureError, match="bodySHA256"):
        Twilio(TWILIO_TOKEN).verify(other, {"X-Twilio-Signature": theirs}, url=url)
