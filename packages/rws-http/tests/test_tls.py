"""create_ssl_context: real handshakes on 127.0.0.1 and an error for every bad configuration.

Certificates come from trustme (an in-memory CA); encrypted keys are made with
``cryptography``. The peers are the stdlib ``ssl`` client and curl, which negotiate ALPN,
client certificates and protocol versions with the context under test. A missing tool skips
with the reason, or fails under ``RWS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import ssl
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from rws.http.server import tls
from rws.http.server.tls import DEFAULT_CIPHERS, TLSConfigError, create_ssl_context

try:
    import h2.config
    import h2.connection
    import h2.events
    import trustme
    from cryptography.hazmat.primitives import serialization
except ImportError as exc:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(f"test tool not installed: {exc.name}", allow_module_level=True)

PASSWORD = "correct horse battery staple"


def missing(reason: str) -> NoReturn:
    if os.environ.get("RWS_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass(frozen=True)
class Files:
    """PEM files on disk for one server certificate and the CA that signed it."""

    cert: str  # leaf + intermediate, no key
    key: str
    combined: str  # leaf + intermediate + key
    encrypted_pkcs8: str
    encrypted_traditional: str
    ca: str
    other_key: str  # a valid key that belongs to another certificate
    client_cert: str  # a client certificate (CN=alice) with its key, from the same CA
    client_ca: str  # a different CA, for client certificates
    alien_client: str  # a client certificate from a CA nobody trusts


def _encrypt(key_pem: bytes, form: serialization.PrivateFormat) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.BestAvailableEncryption(PASSWORD.encode())
    )


@pytest.fixture(
    scope="module", params=[trustme.KeyType.ECDSA, trustme.KeyType.RSA], ids=["ecdsa", "rsa"]
)
def files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Files:
    """One PKI per key type for the whole module (RSA key generation is slow); read-only."""
    key_type: trustme.KeyType = request.param
    tmp_path = tmp_path_factory.mktemp(f"pki-{key_type.name.lower()}")
    root = trustme.CA(key_type=key_type)
    intermediate = root.create_child_ca(key_type=key_type)
    leaf = intermediate.issue_cert("localhost", "127.0.0.1", key_type=key_type)
    other = root.issue_cert("other.example", key_type=key_type)
    client_root = trustme.CA()
    alice = client_root.issue_cert("alice@example.com", common_name="alice")
    mallory = trustme.CA().issue_cert("mallory@example.com", common_name="mallory")

    def write(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    key = leaf.private_key_pem.bytes()
    return Files(
        cert=write("cert.pem", chain),
        key=write("key.pem", key),
        combined=write("combined.pem", chain + key),
        encrypted_pkcs8=write("enc8.key", _encrypt(key, serialization.PrivateFormat.PKCS8)),
        encrypted_traditional=write(
            "enctrad.key", _encrypt(key, serialization.PrivateFormat.TraditionalOpenSSL)
        ),
        ca=write("ca.pem", root.cert_pem.bytes()),
        other_key=write("other.key", other.private_key_pem.bytes()),
        client_cert=write("alice.pem", alice.private_key_and_cert_chain_pem.bytes()),
        client_ca=write("client-ca.pem", client_root.cert_pem.bytes()),
        alien_client=write("mallory.pem", mallory.private_key_and_cert_chain_pem.bytes()),
    )


# -- a TLS server that reports what was negotiated ---------------------------------------


def negotiated(writer: asyncio.StreamWriter) -> dict[str, Any]:
    ssl_object = writer.get_extra_info("ssl_object")
    assert isinstance(ssl_object, ssl.SSLObject)
    peer = ssl_object.getpeercert() or {}
    subject: Any = peer.get("subject", ())  # typeshed types the dict's values as one union
    common_names = [value for rdn in subject for name, value in rdn if name == "commonName"]
    cipher = ssl_object.cipher()
    return {
        "alpn": ssl_object.selected_alpn_protocol(),
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
        "peer_cn": common_names[0] if common_names else None,
    }


class Server:
    """An asyncio TLS server answering HTTP/1.1 or HTTP/2 (per ALPN) with what it saw."""

    def __init__(self) -> None:
        self.handshakes: list[dict[str, Any]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = negotiated(writer)
        self.handshakes.append(info)
        body = json.dumps(info).encode()
        try:
            if info["alpn"] == "h2":
                await self._h2(reader, writer, body)
            else:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    conn.send_headers(
                        event.stream_id,
                        [
                            (":status", "200"),
                            ("content-type", "application/json"),
                            ("content-length", str(len(body))),
                        ],
                    )
                    conn.send_data(event.stream_id, body, end_stream=True)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    writer.write(conn.data_to_send())
                    return
            writer.write(conn.data_to_send())
            await writer.drain()


@contextlib.asynccontextmanager
async def serving(context: ssl.SSLContext) -> AsyncIterator[tuple[Server, int]]:
    server = Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server, listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


def client_context(
    files: Files,
    *,
    alpn: list[str] | None = None,
    cert: str | None = None,
    maximum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=files.ca)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if cert is not None:
        context.load_cert_chain(cert)
    if maximum is not None:
        context.maximum_version = maximum
    return context


async def request(port: int, context: ssl.SSLContext) -> dict[str, Any]:
    """Handshake, send one HTTP/1.1 request, return the server's JSON (or raise)."""
    async with asyncio.timeout(30):  # a safety net against a hang, not a sync point
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"no response: {raw!r}")
    result = json.loads(body)
    assert isinstance(result, dict)
    return result


async def refused(port: int, context: ssl.SSLContext) -> BaseException:
    """The connection must fail: at the handshake, or (TLS 1.3) at the first read."""
    with pytest.raises((ssl.SSLError, ConnectionError)) as info:
        await request(port, context)
    return info.value


# -- handshakes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["h2", "http/1.1"], "h2"),
        (["http/1.1", "h2"], "h2"),  # the server's preference wins
        (["http/1.1"], "http/1.1"),
        (["spdy/3", "http/1.1"], "http/1.1"),
        (None, None),
    ],
)
async def test_alpn(files: Files, offered: list[str] | None, chosen: str | None) -> None:
    async with serving(create_ssl_context(files.cert, files.key)) as (_, port):
        if chosen == "h2":
            # No HTTP/1.1 request can be sent on an h2 connection: check the handshake only.
            _, writer = await asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=client_context(files, alpn=offered),
                server_hostname="localhost",
            )
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.selected_alpn_protocol() == "h2"
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()
        else:
            seen = await request(port, client_context(files, alpn=offered))
            assert seen["alpn"] == chosen


async def test_alpn_can_be_narrowed_or_disabled(files: Files) -> None:
    offered = client_context(files, alpn=["h2", "http/1.1"])
    async with serving(create_ssl_context(files.cert, files.key, alpn=["http/1.1"])) as (_, port):
        assert (await request(port, offered))["alpn"] == "http/1.1"
    async with serving(create_ssl_context(files.cert, files.key, alpn=())) as (_, port):
        assert (await request(port, offered))["alpn"] is None


@pytest.mark.parametrize("source", ["combined", "pkcs8", "traditional"])
async def test_key_sources_serve(files: Files, source: str) -> None:
    context = {
        "combined": lambda: create_ssl_context(files.combined),
        "pkcs8": lambda: create_ssl_context(files.cert, files.encrypted_pkcs8, PASSWORD),
        "traditional": lambda: create_ssl_context(
            files.cert, files.encrypted_traditional, password=PASSWORD
        ),
    }[source]()
    async with serving(context) as (_, port):
        seen = await request(port, client_context(files, alpn=["http/1.1"]))
    assert seen["version"] == "TLSv1.3"


async def test_tls12_uses_forward_secret_aead(files: Files) -> None:
    async with serving(create_ssl_context(files.cert, files.key)) as (_, port):
        seen = await request(port, client_context(files, maximum=ssl.TLSVersion.TLSv1_2))
    assert seen["version"] == "TLSv1.2"
    assert seen["cipher"].startswith(("ECDHE-", "DHE-"))
    assert "GCM" in seen["cipher"] or "CHACHA20" in seen["cipher"]


def _tls11_client(files: Files) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(files.ca)
    with warnings.catch_warnings():  # asking for TLS 1.1 on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def test_tls11_is_refused(files: Files) -> None:
    # Control: a deliberately weak server shows this client really can speak TLS 1.1 here,
    # so the refusal below is the context's doing and not a limit of the local OpenSSL.
    weak = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        weak.minimum_version = ssl.TLSVersion.TLSv1_1
    weak.set_ciphers("DEFAULT:@SECLEVEL=0")
    weak.load_cert_chain(files.cert, files.key)
    async with serving(weak) as (_, port):
        try:
            seen = await request(port, _tls11_client(files))
        except ssl.SSLError as exc:
            missing(f"this OpenSSL cannot negotiate TLS 1.1 at all ({exc}); nothing to compare")
    assert seen["version"] == "TLSv1.1"

    context = create_ssl_context(files.cert, files.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    async with serving(context) as (server, port):
        await refused(port, _tls11_client(files))  # an alert or a reset, depending on timing
    assert server.handshakes == []


async def test_client_cert_required(files: Files) -> None:
    context = create_ssl_context(
        files.cert, files.key, ca_certs=files.client_ca, client_cert="required"
    )
    async with serving(context) as (server, port):
        seen = await request(port, client_context(files, cert=files.client_cert))
        assert seen["peer_cn"] == "alice"
        await refused(port, client_context(files))
        await refused(port, client_context(files, cert=files.alien_client))
    assert [h["peer_cn"] for h in server.handshakes] == ["alice"]


async def test_client_cert_optional(files: Files) -> None:
    context = create_ssl_context(
        files.cert, files.key, ca_certs=files.client_ca, client_cert="optional"
    )
    async with serving(context) as (server, port):
        assert (await request(port, client_context(files, cert=files.client_cert)))[
            "peer_cn"
        ] == "alice"
        assert (await request(port, client_context(files)))["peer_cn"] is None
        # Optional still verifies a certificate that is presented.
        await refused(port, client_context(files, cert=files.alien_client))
    assert [h["peer_cn"] for h in server.handshakes] == ["alice", None]


async def test_client_cert_none_ignores_client_certificates(files: Files) -> None:
    async with serving(create_ssl_context(files.cert, files.key)) as (_, port):
        seen = await request(port, client_context(files, cert=files.alien_client))
    assert seen["peer_cn"] is None


def test_context_settings(files: Files) -> None:
    context = create_ssl_context(files.cert, files.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert context.verify_mode == ssl.CERT_NONE
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    assert all(c["aead"] and c["kea"] in ("kx-ecdhe", "kx-dhe") for c in tls12), tls12
    assert context.cert_store_stats()["x509_ca"] == 0  # no system CAs for client auth
    custom = create_ssl_context(files.cert, files.key, ciphers="ECDHE+AESGCM")
    assert {c["name"] for c in custom.get_ciphers() if c["protocol"] == "TLSv1.2"} < {
        c["name"] for c in tls12
    }
    assert "CHACHA20" in DEFAULT_CIPHERS


# -- curl ---------------------------------------------------------------------------------


async def _curl(*args: str) -> tuple[int, str, str]:
    curl = shutil.which("curl")
    if curl is None:
        missing("curl is not installed (apt-get install curl)")
    assert curl is not None
    proc = await asyncio.create_subprocess_exec(
        curl, "-sS", "--max-time", "20", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("flag", "alpn", "version"), [("--http2", "h2", "2"), ("--http1.1", "http/1.1", "1.1")]
)
async def test_curl_negotiates(files: Files, flag: str, alpn: str, version: str) -> None:
    async with serving(create_ssl_context(files.cert, files.key)) as (_, port):
        code, out, err = await _curl(
            flag, "--cacert", files.ca, "-w", "\n%{http_version}", f"https://127.0.0.1:{port}/"
        )
    assert code == 0, err
    body, http_version = out.rsplit("\n", 1)
    assert http_version == version
    assert json.loads(body)["alpn"] == alpn


async def test_curl_client_certificate(files: Files) -> None:
    context = create_ssl_context(
        files.cert, files.key, ca_certs=files.client_ca, client_cert="required"
    )
    async with serving(context) as (server, port):
        url = f"https://127.0.0.1:{port}/"
        code, out, err = await _curl("--cacert", files.ca, "--cert", files.client_cert, url)
        assert code == 0, err
        assert json.loads(out)["peer_cn"] == "alice"
        code, out, _ = await _curl("--cacert", files.ca, url)
        assert code != 0
        assert out == ""
    assert len(server.handshakes) == 1


async def test_curl_tls11_refused(files: Files) -> None:
    async with serving(create_ssl_context(files.cert, files.key)) as (server, port):
        code, _, _ = await _curl(
            "--cacert", files.ca, "--tlsv1.1", "--tls-max", "1.1", f"https://127.0.0.1:{port}/"
        )
    assert code != 0
    assert server.handshakes == []


# -- configuration errors -----------------------------------------------------------------


def expect_error(message: str, path: str | None, **kwargs: Any) -> TLSConfigError:
    with pytest.raises(TLSConfigError, match=message) as info:
        create_ssl_context(**kwargs)
    error = info.value
    assert error.path == path
    assert isinstance(error, ValueError)
    # No raw ssl.SSLError traceback hangs off it.
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None
    return error


def test_missing_certfile(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.pem")
    expect_error(f"certfile '{path}' does not exist", path, certfile=path)


def test_certfile_is_a_directory(tmp_path: Path) -> None:
    expect_error("is a directory", str(tmp_path), certfile=str(tmp_path))


def test_missing_keyfile(files: Files, tmp_path: Path) -> None:
    path = str(tmp_path / "nope.key")
    expect_error(f"keyfile '{path}' does not exist", path, certfile=files.cert, keyfile=path)


def test_certfile_without_certificate(files: Files) -> None:
    expect_error("contains no PEM certificate", files.key, certfile=files.key)


def test_corrupt_certificate(files: Files, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    expect_error("certificate OpenSSL cannot parse", str(bad), certfile=str(bad), keyfile=files.key)


def test_certfile_without_key_and_no_keyfile(files: Files) -> None:
    expect_error(
        "has no private key; put the key in it or pass keyfile", files.cert, certfile=files.cert
    )


def test_keyfile_without_key(files: Files) -> None:
    expect_error("contains no PEM private key", files.ca, certfile=files.cert, keyfile=files.ca)


def test_corrupt_key(files: Files, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    expect_error("cannot be loaded: it is corrupt", str(bad), certfile=files.cert, keyfile=str(bad))


def test_key_mismatch(files: Files) -> None:
    expect_error(
        f"the private key in '{files.other_key}' does not belong to the certificate in "
        f"'{files.cert}'",
        files.other_key,
        certfile=files.cert,
        keyfile=files.other_key,
    )


@pytest.mark.parametrize("which", ["pkcs8", "traditional"])
def test_wrong_password(files: Files, which: str) -> None:
    key = files.encrypted_pkcs8 if which == "pkcs8" else files.encrypted_traditional
    expect_error("wrong password", key, certfile=files.cert, keyfile=key, password="nope")


@pytest.mark.parametrize("which", ["pkcs8", "traditional"])
def test_encrypted_key_without_password(files: Files, which: str) -> None:
    key = files.encrypted_pkcs8 if which == "pkcs8" else files.encrypted_traditional
    expect_error("is encrypted; give its password", key, certfile=files.cert, keyfile=key)


def test_openssl_never_prompts_for_a_password(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if the encryption markers were missed, OpenSSL's terminal prompt is not used."""
    monkeypatch.setattr(tls, "_ENCRYPTED", ())
    expect_error(
        "is encrypted; give its password",
        files.encrypted_pkcs8,
        certfile=files.cert,
        keyfile=files.encrypted_pkcs8,
    )


def test_password_for_a_plain_key(files: Files) -> None:
    expect_error(
        "is not encrypted; drop the password",
        files.key,
        certfile=files.cert,
        keyfile=files.key,
        password="x",
    )


def test_bad_ciphers(files: Files) -> None:
    expect_error(
        "ciphers='NOPE' selects no cipher",
        None,
        certfile=files.cert,
        keyfile=files.key,
        ciphers="NOPE",
    )


def test_client_cert_options(files: Files, tmp_path: Path) -> None:
    base = {"certfile": files.cert, "keyfile": files.key}
    expect_error("client_cert='always' is not one of", None, client_cert="always", **base)
    expect_error("needs ca_certs", None, client_cert="required", **base)
    expect_error("needs ca_certs", None, client_cert="optional", **base)
    expect_error("ca_certs is only used to verify client", files.ca, ca_certs=files.ca, **base)
    missing_ca = str(tmp_path / "missing-ca.pem")
    expect_error(
        f"ca_certs '{missing_ca}' does not exist",
        missing_ca,
        ca_certs=missing_ca,
        client_cert="required",
        **base,
    )
    expect_error(
        "ca_certs .* contains no PEM certificate",
        files.key,
        ca_certs=files.key,
        client_cert="required",
        **base,
    )


@pytest.mark.parametrize("alpn", ["h2", ["h2", ""], ["x" * 256], ["h\u00e9"]])
def test_bad_alpn(files: Files, alpn: Any) -> None:
    expect_error(
        "alpn must be a sequence|ALPN protocol",
        None,
        certfile=files.cert,
        keyfile=files.key,
        alpn=alpn,
    )
