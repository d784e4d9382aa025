"""Behaviour of every scheme: published vectors, rotation, windows, replay, hostile input."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
from typing import Any

import pytest

from rws.webhook import (
    GitHub,
    HmacScheme,
    InvalidSignatureError,
    MalformedHeaderError,
    MalformedPayloadError,
    MemorySeenStore,
    MissingHeaderError,
    ReplayedMessageError,
    Shopify,
    Slack,
    StandardWebhooks,
    Stripe,
    TimestampOutOfRangeError,
    Twilio,
    Verified,
    WebhookConfigError,
    WebhookError,
)

NOW = 1_700_000_000

# -- published vectors -------------------------------------------------------------------

# GitHub's documentation: "Validating webhook deliveries", test values.
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# Slack's documentation: "Verifying requests from Slack", worked example.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook"
    b"-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F39770"
    b"0885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d"
    b"2c447fce8b6703c"
)
SLACK_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

# Standard Webhooks reference library tests (test_sign_function).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# Twilio's documentation: "Webhooks security", validation example.
TWILIO_TOKEN = "12345"
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_BODY = (
    b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234"
    b"&From=%2B12349013030&To=%2B18005551212"
)
TWILIO_SIG = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_github_published_example() -> None:
    result = GitHub(GITHUB_SECRET).verify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})
    assert result == Verified("github", 0)
    assert GitHub(GITHUB_SECRET).sign(GITHUB_BODY) == {"X-Hub-Signature-256": GITHUB_SIG}


def test_github_reports_delivery_id() -> None:
    headers = {"X-Hub-Signature-256": GITHUB_SIG, "X-GitHub-Delivery": "72d3162e-cc78"}
    assert GitHub(GITHUB_SECRET).verify(GITHUB_BODY, headers).message_id == "72d3162e-cc78"


def test_slack_published_example() -> None:
    headers = {"X-Slack-Signature": SLACK_SIG, "X-Slack-Request-Timestamp": SLACK_TS}
    result = Slack(SLACK_SECRET).verify(SLACK_BODY, headers, now=int(SLACK_TS) + 10)
    assert result == Verified("slack", 0, timestamp=int(SLACK_TS))
    assert Slack(SLACK_SECRET).sign(SLACK_BODY, timestamp=int(SLACK_TS)) == {
        "X-Slack-Request-Timestamp": SLACK_TS,
        "X-Slack-Signature": SLACK_SIG,
    }


def test_slack_example_is_stale_today() -> None:
    headers = {"X-Slack-Signature": SLACK_SIG, "X-Slack-Request-Timestamp": SLACK_TS}
    with pytest.raises(TimestampOutOfRangeError):
        Slack(SLACK_SECRET).verify(SLACK_BODY, headers)


def test_standard_webhooks_reference_vector() -> None:
    scheme = StandardWebhooks(SW_SECRET)
    headers = scheme.sign(SW_BODY, message_id=SW_ID, timestamp=SW_TS)
    assert headers == {
        "webhook-id": SW_ID,
        "webhook-timestamp": str(SW_TS),
        "webhook-signature": SW_SIG,
    }
    result = scheme.verify(SW_BODY, headers, now=SW_TS)
    assert result == Verified("standard", 0, timestamp=SW_TS, message_id=SW_ID)


def test_standard_webhooks_secret_without_prefix_and_as_bytes() -> None:
    headers = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TS), "webhook-signature": SW_SIG}
    bare = SW_SECRET.removeprefix("whsec_")
    StandardWebhooks(bare).verify(SW_BODY, headers, now=SW_TS)
    StandardWebhooks(base64.b64decode(bare)).verify(SW_BODY, headers, now=SW_TS)


def test_standard_webhooks_svix_header_names() -> None:
    headers = {"svix-id": SW_ID, "svix-timestamp": str(SW_TS), "svix-signature": SW_SIG}
    assert StandardWebhooks(SW_SECRET).verify(SW_BODY, headers, now=SW_TS).message_id == SW_ID


def test_standard_webhooks_reference_multi_signature_case() -> None:
    # From the reference tests: unknown versions and wrong signatures around a valid one.
    others = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    wrong_version = "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    value = " ".join([others, wrong_version, SW_SIG, others])
    headers = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TS), "webhook-signature": value}
    StandardWebhooks(SW_SECRET).verify(SW_BODY, headers, now=SW_TS)


def test_standard_webhooks_reference_invalid_signature() -> None:
    # The reference tests' near-miss signature (last character differs).
    headers = {
        "webhook-id": SW_ID,
        "webhook-timestamp": str(SW_TS),
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
    }
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(SW_SECRET).verify(SW_BODY, headers, now=SW_TS)


def test_twilio_published_example() -> None:
    scheme = Twilio(TWILIO_TOKEN)
    assert scheme.sign(TWILIO_BODY, url=TWILIO_URL) == {"X-Twilio-Signature": TWILIO_SIG}
    result = scheme.verify(TWILIO_BODY, {"X-Twilio-Signature": TWILIO_SIG}, url=TWILIO_URL)
    assert result == Verified("twilio", 0)


def test_twilio_accepts_explicit_default_port() -> None:
    url = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    Twilio(TWILIO_TOKEN).verify(TWILIO_BODY, {"X-Twilio-Signature": TWILIO_SIG}, url=url)


def test_twilio_needs_url() -> None:
    with pytest.raises(WebhookConfigError, match="url"):
        Twilio(TWILIO_TOKEN).verify(TWILIO_BODY, {"X-Twilio-Signature": TWILIO_SIG})


def test_twilio_param_tampering_rejected() -> None:
    tampered = TWILIO_BODY.replace(b"Digits=1234", b"Digits=9999")
    with pytest.raises(InvalidSignatureError):
        Twilio(TWILIO_TOKEN).verify(tampered, {"X-Twilio-Signature": TWILIO_SIG}, url=TWILIO_URL)


def test_twilio_json_body_bound_by_body_sha256() -> None:
    body = b'{"status": "delivered"}'
    url = "https://example.com/hook?bodySHA256=" + hashlib.sha256(body).hexdigest()
    scheme = Twilio(TWILIO_TOKEN)
    headers = scheme.sign(body, url=url)
    scheme.verify(body, headers, url=url)
    with pytest.raises(InvalidSignatureError, match="bodySHA256"):
        scheme.verify(b'{"status": "failed"}', headers, url=url)


def test_twilio_sha256_signature_settings() -> None:
    message = (TWILIO_URL + "CallSidCA1").encode()
    signature = base64.b64encode(hmac.new(b"shared", message, hashlib.sha256).digest()).decode()
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    }
    Twilio("shared").verify(b"CallSid=CA1", headers, url=TWILIO_URL)
    headers["X-Twilio-Webhooks-Signature-Settings"] = "algorithm=HMAC_MD5"
    with pytest.raises(MalformedHeaderError):
        Twilio("shared").verify(b"CallSid=CA1", headers, url=TWILIO_URL)


def test_shopify_round_trip_and_base64() -> None:
    body = b'{"id": 820982911946154508}'
    expected = base64.b64encode(hmac.new(b"hush", body, hashlib.sha256).digest()).decode()
    assert Shopify("hush").sign(body) == {"X-Shopify-Hmac-Sha256": expected}
    headers = {"X-Shopify-Hmac-Sha256": expected, "X-Shopify-Webhook-Id": "b54557e4"}
    assert Shopify("hush").verify(body, headers) == Verified("shopify", 0, message_id="b54557e4")


# -- Stripe --------------------------------------------------------------------------------


def stripe_header(secret: str, body: bytes, ts: int, extra: str = "") -> str:
    sig = hmac.new(secret.encode(), b"%d.%s" % (ts, body), hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}{extra}"


def test_stripe_verifies_hand_computed_header() -> None:
    header = stripe_header("whsec_test", b"{}", NOW, ",v0=6ffbb59b2300aae63f272406069a9788")
    result = Stripe("whsec_test").verify(b"{}", {"Stripe-Signature": header}, now=NOW + 299)
    assert result == Verified("stripe", 0, timestamp=NOW)


def test_stripe_default_tolerance_is_300_both_sides() -> None:
    header = {"Stripe-Signature": stripe_header("whsec_test", b"{}", NOW)}
    scheme = Stripe("whsec_test")
    scheme.verify(b"{}", header, now=NOW + 300)
    scheme.verify(b"{}", header, now=NOW - 300)
    with pytest.raises(TimestampOutOfRangeError, match="old"):
        scheme.verify(b"{}", header, now=NOW + 301)
    with pytest.raises(TimestampOutOfRangeError, match="future"):
        scheme.verify(b"{}", header, now=NOW - 301)


def test_stripe_several_v1_for_secret_rolling() -> None:
    old = stripe_header("whsec_old", b"{}", NOW)
    new_sig = stripe_header("whsec_new", b"{}", NOW).split("v1=")[1]
    header = {"Stripe-Signature": f"{old},v1={new_sig}"}
    assert Stripe("whsec_new").verify(b"{}", header, now=NOW).key_index == 0
    assert Stripe(["whsec_newer", "whsec_old"]).verify(b"{}", header, now=NOW).key_index == 1


def test_stripe_sign_emits_one_v1_per_secret() -> None:
    header = Stripe(["whsec_a", "whsec_b"]).sign(b"x", timestamp=NOW)["Stripe-Signature"]
    parts = header.split(",")
    assert parts[0] == f"t={NOW}" and len(parts) == 3
    Stripe("whsec_b").verify(b"x", {"Stripe-Signature": header}, now=NOW)


@pytest.mark.parametrize(
    "value",
    [
        "v1=abcd",  # no timestamp
        "t=1700000000",  # no signature
        "t=1700000000,t=1700000001,v1=00",  # two timestamps
        "t=17e8,v1=00",  # not digits
        "t= 1700000000,v1=00",  # whitespace inside
        "t=1700000000,v1=zz",  # not hex
        "t=1700000000,v1=abc",  # odd hex
        "t=1700000000,garbage",  # no '='
        "t=١٧٠٠٠٠٠٠٠٠,v1=00",  # non-ASCII digits int() would accept
    ],
)
def test_stripe_garbled_headers(value: str) -> None:
    with pytest.raises(MalformedHeaderError):
        Stripe("whsec_test").verify(b"{}", {"Stripe-Signature": value}, now=NOW)


def test_stripe_timestamp_checked_only_after_signature() -> None:
    # A forged, stale request is reported as a bad signature, not as stale: the timestamp of
    # an unauthenticated request means nothing.
    header = {"Stripe-Signature": f"t={NOW - 10_000},v1={'00' * 32}"}
    with pytest.raises(InvalidSignatureError):
        Stripe("whsec_test").verify(b"{}", header, now=NOW)


# -- rotation ----------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [GitHub, Shopify, Slack])
def test_rotation_accepts_previous_secret_and_reports_index(factory: type[GitHub]) -> None:
    old_headers = factory("old").sign(b"body", **({"timestamp": NOW} if factory is Slack else {}))
    result = factory(["new", "old"]).verify(b"body", old_headers, now=NOW)
    assert result.key_index == 1
    with pytest.raises(InvalidSignatureError):
        factory(["new"]).verify(b"body", old_headers, now=NOW)


def test_standard_webhooks_rotation_signs_with_every_secret() -> None:
    new, old = StandardWebhooks.generate_secret(), StandardWebhooks.generate_secret()
    headers = StandardWebhooks([new, old]).sign(b"{}", message_id="msg_1", timestamp=NOW)
    assert headers["webhook-signature"].count("v1,") == 2
    assert StandardWebhooks(old).verify(b"{}", headers, now=NOW).key_index == 0
    assert StandardWebhooks(["x" * 32, new]).verify(b"{}", headers, now=NOW).key_index == 1


def test_hmac_scheme_separator_rotation() -> None:
    sender = HmacScheme(["k2", "k1"], header="X-Sig", separator=",")
    headers = sender.sign(b"data")
    assert headers["X-Sig"].count(",") == 1
    assert HmacScheme("k1", header="X-Sig", separator=",").verify(b"data", headers).key_index == 0


def test_hmac_scheme_without_separator_signs_with_current_only() -> None:
    headers = HmacScheme(["k2", "k1"], header="X-Sig").sign(b"data")
    assert headers == {"X-Sig": hmac.new(b"k2", b"data", hashlib.sha256).hexdigest()}


# -- Ed25519 (v1a) -----------------------------------------------------------------------


def test_v1a_round_trip_and_key_binding(need: Any) -> None:
    need.module("cryptography")
    private, public = StandardWebhooks.generate_keypair()
    assert private.startswith("whsk_") and public.startswith("whpk_")
    headers = StandardWebhooks(private).sign(b"{}", message_id="msg_1", timestamp=NOW)
    assert headers["webhook-signature"].startswith("v1a,")
    assert StandardWebhooks(public).verify(b"{}", headers, now=NOW).message_id == "msg_1"
    # A v1a signature never satisfies an HMAC key and vice versa.
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(SW_SECRET).verify(b"{}", headers, now=NOW)
    hmac_headers = StandardWebhooks(SW_SECRET).sign(b"{}", message_id="msg_1", timestamp=NOW)
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(public).verify(b"{}", hmac_headers, now=NOW)


def test_v1a_public_key_cannot_sign(need: Any) -> None:
    need.module("cryptography")
    _, public = StandardWebhooks.generate_keypair()
    with pytest.raises(WebhookConfigError, match="whpk_"):
        StandardWebhooks(public).sign(b"{}", message_id="msg_1")


def test_v1a_tampered_body_rejected(need: Any) -> None:
    need.module("cryptography")
    private, public = StandardWebhooks.generate_keypair()
    headers = StandardWebhooks(private).sign(b"{}", message_id="msg_1", timestamp=NOW)
    with pytest.raises(InvalidSignatureError):
        StandardWebhooks(public).verify(b"{ }", headers, now=NOW)


def test_v1a_without_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one fault that cannot be produced for real in an env that has the extra installed.
    for name in [m for m in list(__import__("sys").modules) if m.startswith("cryptography")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    monkeypatch.setitem(__import__("sys").modules, "cryptography", None)
    with pytest.raises(WebhookConfigError, match=r"rws-webhook\[ed25519\]"):
        StandardWebhooks("whpk_" + base64.b64encode(bytes(32)).decode())


# -- replay ------------------------------------------------------------------------------


def test_replay_refused_within_window() -> None:
    store = MemorySeenStore()
    scheme = StandardWebhooks(SW_SECRET, seen_store=store)
    headers = scheme.sign(b"{}", message_id="msg_replay", timestamp=NOW)
    first = scheme.verify(b"{}", headers, now=NOW)
    assert first.replay_key == "standard:id:msg_replay"
    with pytest.raises(ReplayedMessageError):
        scheme.verify(b"{}", headers, now=NOW)


def test_replay_key_ignores_reencoded_signature() -> None:
    # Uppercase hex verifies too; it must not look like a new message to the store.
    scheme = GitHub(GITHUB_SECRET, seen_store=MemorySeenStore())
    scheme.verify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})
    upper = "sha256=" + GITHUB_SIG.removeprefix("sha256=").upper()
    with pytest.raises(ReplayedMessageError):
        scheme.verify(GITHUB_BODY, {"X-Hub-Signature-256": upper})


def test_replay_key_ignores_unsigned_delivery_id() -> None:
    scheme = GitHub(GITHUB_SECRET, seen_store=MemorySeenStore())
    scheme.verify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG, "X-GitHub-Delivery": "a"})
    with pytest.raises(ReplayedMessageError):
        scheme.verify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG, "X-GitHub-Delivery": "b"})


async def test_forget_lets_a_retry_through() -> None:
    scheme = GitHub(GITHUB_SECRET, seen_store=MemorySeenStore())
    verified = await scheme.averify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})
    await scheme.aforget(verified)
    await scheme.averify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})


def test_replay_ttl_follows_window() -> None:
    assert Stripe("s", tolerance=60).replay_ttl() == 120
    assert Slack("s", tolerance=10, future_tolerance=5).replay_ttl() == 15
    assert GitHub("s").replay_ttl() == 86_400
    assert GitHub("s", replay_ttl=7).replay_ttl() == 7


def test_memory_store_expiry_and_bound() -> None:
    store = MemorySeenStore(max_entries=2)
    assert store.remember("a", 60) and not store.remember("a", 60)
    assert store.remember("b", 60) and store.remember("c", 60)
    assert len(store) == 2  # "a", the oldest, was dropped
    assert store.remember("a", 60)
    assert store.remember("z", 0)  # expires at once
    assert store.remember("z", 60)


class AsyncStore:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def remember(self, key: str, ttl: float) -> bool:
        if key in self.keys:
            return False
        self.keys.add(key)
        return True

    async def forget(self, key: str) -> None:
        self.keys.discard(key)


async def test_async_store_needs_averify() -> None:
    scheme = GitHub(GITHUB_SECRET, seen_store=AsyncStore())
    with pytest.raises(WebhookConfigError, match="averify"):
        scheme.verify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})
    await scheme.averify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})
    with pytest.raises(ReplayedMessageError):
        await scheme.averify(GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG})


# -- hostile and malformed input ---------------------------------------------------------


def test_missing_headers() -> None:
    with pytest.raises(MissingHeaderError) as info:
        GitHub("s").verify(b"", {})
    assert info.value.header == "X-Hub-Signature-256" and info.value.status == 400
    with pytest.raises(MissingHeaderError):
        StandardWebhooks(SW_SECRET).verify(b"", {"webhook-id": "m", "webhook-signature": SW_SIG})


def test_header_lookup_is_case_insensitive_for_dicts_and_asgi_pairs() -> None:
    GitHub(GITHUB_SECRET).verify(GITHUB_BODY, {"x-hub-signature-256": GITHUB_SIG})
    GitHub(GITHUB_SECRET).verify(GITHUB_BODY, [(b"x-hub-signature-256", GITHUB_SIG.encode())])


def test_conflicting_duplicate_headers_refused() -> None:
    other = "sha256=" + "0" * 64
    with pytest.raises(MalformedHeaderError, match="more than once"):
        GitHub(GITHUB_SECRET).verify(
            GITHUB_BODY, {"X-Hub-Signature-256": GITHUB_SIG, "x-hub-signature-256": other}
        )


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": 12345},
        {"X-Hub-Signature-256": None},
        {"X-Hub-Signature-256": b"\xff\xfe"},
        {"X-Hub-Signature-256": "sha256=" + "é" * 64},
        {"X-Hub-Signature-256": "sha1=" + "0" * 40},
        {"X-Hub-Signature-256": "sha256=" + "0" * 10_000},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": "sha256=xyz"},
        {7: "x"},
        "not a mapping",
        None,
        [("only-one",)],
    ],
)
def test_garbage_headers_raise_only_webhook_errors(headers: object) -> None:
    with pytest.raises(WebhookError) as info:
        GitHub(GITHUB_SECRET).verify(GITHUB_BODY, headers)  # type: ignore[arg-type]
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook-signature", "v1,not base64!"),
        ("webhook-signature", "v1,YWJj=YWJj"),
        ("webhook-signature", "v1"),
        ("webhook-signature", " ".join(["v1,AAAA"] * 17)),
        ("webhook-timestamp", "hello"),
        ("webhook-timestamp", "-1"),
        ("webhook-timestamp", "1e9"),
        ("webhook-timestamp", "9" * 40),
        ("webhook-id", "msg.with.dots"),
        ("webhook-id", "m" * 257),
    ],
)
def test_standard_webhooks_malformed(name: str, value: str) -> None:
    # The reference Python library lets binascii.Error/ValueError escape for some of these.
    headers = {"webhook-id": SW_ID, "webhook-timestamp": str(SW_TS), "webhook-signature": SW_SIG}
    headers[name] = value
    with pytest.raises(MalformedHeaderError):
        StandardWebhooks(SW_SECRET).verify(SW_BODY, headers, now=SW_TS)


@pytest.mark.parametrize("body", ["text body", 123, None, ["b"]])
def test_body_must_be_bytes(body: object) -> None:
    with pytest.raises(MalformedPayloadError):
        GitHub("s").verify(body, {"X-Hub-Signature-256": GITHUB_SIG})  # type: ignore[arg-type]


def test_bytearray_and_memoryview_bodies_accepted() -> None:
    headers = {"X-Hub-Signature-256": GITHUB_SIG}
    GitHub(GITHUB_SECRET).verify(bytearray(GITHUB_BODY), headers)  # type: ignore[arg-type]
    GitHub(GITHUB_SECRET).verify(memoryview(GITHUB_BODY), headers)  # type: ignore[arg-type]


def test_twilio_non_form_body_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError):
        Twilio("t").verify(b"\xff\xfe", {"X-Twilio-Signature": TWILIO_SIG}, url=TWILIO_URL)
    with pytest.raises(MalformedPayloadError):
        Twilio("t").verify(b"a=1", {"X-Twilio-Signature": TWILIO_SIG}, url="ftp://x")


def test_random_garbage_never_escapes_as_another_exception() -> None:
    import random

    rng = random.Random(1234)
    alphabet = "abcdefv01=,. /+_-é\x00\n"
    schemes = [
        GitHub("s"),
        Stripe("s"),
        Shopify("s"),
        Slack("s"),
        StandardWebhooks(SW_SECRET),
        HmacScheme(
            "s",
            header="X-Sig",
            encoding="base64url",
            timestamp_header="X-Ts",
            signed_payload="{timestamp}.{body}",
        ),
    ]
    names = [
        "X-Hub-Signature-256",
        "Stripe-Signature",
        "X-Shopify-Hmac-Sha256",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Sig",
        "X-Ts",
    ]
    for _ in range(3000):
        headers = {
            name: "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
            for name in names
            if rng.random() < 0.8
        }
        body = rng.randbytes(rng.randrange(0, 64))
        for scheme in schemes:
            with contextlib.suppress(WebhookError):
                scheme.verify(body, headers, now=NOW)
        with contextlib.suppress(WebhookError):
            Twilio("t").verify(body, headers, url="https://h/p?" + headers.get("X-Sig", ""))


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: GitHub(""),
        lambda: GitHub([]),
        lambda: GitHub([b"ok", 3]),  # type: ignore[list-item]
        lambda: Stripe("s", tolerance=-1),
        lambda: HmacScheme("s", header=""),
        lambda: HmacScheme("s", header="X", algorithm="md5"),
        lambda: HmacScheme("s", header="X", encoding="base32"),  # type: ignore[arg-type]
        lambda: HmacScheme("s", header="X", signed_payload="{timestamp}"),
        lambda: HmacScheme("s", header="X", signed_payload="{timestamp}.{body}"),
        lambda: HmacScheme("s", header="X", signed_payload="{body}{nonce}"),
        lambda: StandardWebhooks("whsec_!!!"),
        lambda: StandardWebhooks("whsk_" + base64.b64encode(b"short").decode()),
        lambda: StandardWebhooks.generate_secret(8),
    ],
)
def test_bad_configuration_is_a_config_error(build: object) -> None:
    with pytest.raises(WebhookConfigError):
        build()  # type: ignore[operator]


def test_sign_refuses_options_the_scheme_does_not_use() -> None:
    with pytest.raises(WebhookConfigError, match="message_id"):
        GitHub("s").sign(b"x", message_id="m")
    with pytest.raises(WebhookConfigError, match="url"):
        Stripe("s").sign(b"x", url="https://x")
    with pytest.raises(WebhookConfigError, match="timestamp must be an int"):
        Stripe("s").sign(b"x", timestamp=1.5)  # type: ignore[arg-type]
    with pytest.raises(WebhookConfigError, match="message_id"):
        StandardWebhooks(SW_SECRET).sign(b"x")


def test_repr_hides_secrets() -> None:
    assert "Secret" not in repr(GitHub(GITHUB_SECRET))
    assert "whsec" not in repr(StandardWebhooks(SW_SECRET))


def test_errors_are_typed_with_reason_and_status() -> None:
    assert issubclass(WebhookConfigError, ValueError)
    assert InvalidSignatureError("x").reason == "invalid_signature"
    assert ReplayedMessageError("k").status == 409
