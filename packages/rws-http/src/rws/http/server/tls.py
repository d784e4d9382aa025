"""The server's TLS context: secure defaults, ALPN for HTTP/2, and errors a person can act on.

``ssl`` reports most configuration mistakes as ``SSLError('[SSL] PEM lib')`` (a wrong
password, a corrupt key and a certificate file without a certificate all look alike), and an
encrypted key without a password makes OpenSSL prompt on the terminal, which hangs a server
started by systemd or in a container. So the files are checked here first, each failure
becomes a :class:`TLSConfigError` that names the file and says what is wrong, and OpenSSL is
never left to ask for a password.

What the context enforces, and why:

* TLS 1.2 or newer: 1.0 and 1.1 are deprecated (RFC 8996) and HTTP/2 forbids them.
* For TLS 1.2, only forward-secret AEAD suites (:data:`DEFAULT_CIPHERS`); that is also what
  HTTP/2 requires (RFC 9113 section 9.2.2), so a client offering h2 is never refused for its
  cipher. TLS 1.3 suites are OpenSSL's, which are all fine.
* No TLS compression (CRIME), no renegotiation (a CPU-exhaustion vector), and the server's
  cipher order.
* ALPN ``h2`` then ``http/1.1``: the HTTP/2 upgrade path over TLS.
* Client certificates are verified only against ``ca_certs``, never the system store, which
  would let anyone with a certificate from a public CA in.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

__all__ = ["DEFAULT_ALPN", "DEFAULT_CIPHERS", "TLSConfigError", "create_ssl_context"]

ClientCert = Literal["none", "optional", "required"]

#: OpenSSL cipher string for TLS 1.2: ECDHE/DHE key exchange with AES-GCM or ChaCha20-Poly1305.
DEFAULT_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
DEFAULT_ALPN: Final = ("h2", "http/1.1")

_VERIFY_MODES: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_ENCRYPTED = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


class TLSConfigError(ValueError):
    """A TLS setting cannot work; ``path`` is the file at fault, when there is one."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class _NoPasswordError(Exception):
    """Raised from the password callback so OpenSSL never prompts on a terminal."""


def create_ssl_context(
    certfile: str,
    keyfile: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    client_cert: ClientCert = "none",
    ciphers: str | None = None,
    alpn: Sequence[str] = DEFAULT_ALPN,
) -> ssl.SSLContext:
    """Build the server-side :class:`ssl.SSLContext`; see the module docstring for policy.

    ``certfile`` is PEM: the certificate, then any intermediates, and the private key too
    when ``keyfile`` is not given. ``password`` decrypts an encrypted key. ``ca_certs`` is
    a PEM bundle of the CAs whose client certificates are accepted; it is needed, and only
    allowed, when ``client_cert`` is ``"optional"`` (verify a certificate if the client
    sends one) or ``"required"`` (refuse the handshake without one). ``ciphers`` replaces
    :data:`DEFAULT_CIPHERS` for TLS 1.2. ``alpn`` lists the protocols offered, preferred
    first; empty disables ALPN.

    Raises :class:`TLSConfigError` naming the file and the problem.
    """
    verify_mode = _VERIFY_MODES.get(client_cert)
    if verify_mode is None:
        raise TLSConfigError(
            f"client_cert={client_cert!r} is not one of 'none', 'optional', 'required'"
        )
    if ca_certs is not None and verify_mode == ssl.CERT_NONE:
        raise TLSConfigError(
            "ca_certs is only used to verify client certificates; set client_cert to "
            "'optional' or 'required', or drop ca_certs",
            ca_certs,
        )
    if ca_certs is None and verify_mode != ssl.CERT_NONE:
        raise TLSConfigError(
            f"client_cert={client_cert!r} needs ca_certs: the CA bundle that signs the "
            f"client certificates to accept"
        )
    protocols = _check_alpn(alpn)

    cert_pem = _read(certfile, "certfile")
    _check_certificates(certfile, cert_pem, "certfile")
    key_path = keyfile if keyfile is not None else certfile
    key_pem = _read(keyfile, "keyfile") if keyfile is not None else cert_pem
    if _PRIVATE_KEY.search(key_pem) is None:
        if keyfile is None:
            raise TLSConfigError(
                f"certfile {certfile!r} has no private key; put the key in it or pass keyfile",
                certfile,
            )
        raise TLSConfigError(f"keyfile {keyfile!r} contains no PEM private key", keyfile)
    encrypted = any(marker in key_pem for marker in _ENCRYPTED)
    if encrypted and password is None:
        raise TLSConfigError(
            f"the private key in {key_path!r} is encrypted; give its password", key_path
        )
    if password is not None and not encrypted:
        raise TLSConfigError(
            f"a password was given but the private key in {key_path!r} is not encrypted; "
            f"drop the password",
            key_path,
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        context.set_ciphers(ciphers if ciphers is not None else DEFAULT_CIPHERS)
    except ssl.SSLError:
        raise TLSConfigError(
            f"ciphers={ciphers!r} selects no cipher OpenSSL knows "
            f"(see `openssl ciphers -v '<string>'`)"
        ) from None

    _load_chain(context, certfile, keyfile, key_path, password)

    if ca_certs is not None:
        _check_certificates(ca_certs, _read(ca_certs, "ca_certs"), "ca_certs")
        try:
            context.load_verify_locations(cafile=ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(
                f"ca_certs {ca_certs!r} cannot be loaded: {exc}", ca_certs
            ) from None
    context.verify_mode = verify_mode
    if protocols:
        context.set_alpn_protocols(protocols)
    return context


def _check_alpn(alpn: Sequence[str]) -> list[str]:
    if isinstance(alpn, str):
        raise TLSConfigError(f"alpn must be a sequence of protocol names, not the string {alpn!r}")
    protocols = list(alpn)
    for name in protocols:
        if not isinstance(name, str) or not name or not name.isascii() or len(name) > 255:
            raise TLSConfigError(f"ALPN protocol {name!r} is not 1-255 ASCII characters")
    return protocols


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TLSConfigError(f"{what} {path!r} does not exist", path) from None
    except IsADirectoryError:
        raise TLSConfigError(f"{what} {path!r} is a directory, not a PEM file", path) from None
    except OSError as exc:
        raise TLSConfigError(f"{what} {path!r} cannot be read: {exc.strerror}", path) from None


def _check_certificates(path: str, pem: bytes, what: str) -> None:
    """The file holds at least one certificate, and OpenSSL can parse each of them."""
    blocks = _CERTIFICATE.findall(pem)
    if not blocks:
        raise TLSConfigError(
            f"{what} {path!r} contains no PEM certificate (-----BEGIN CERTIFICATE-----)", path
        )
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=b"\n".join(blocks).decode("ascii", "replace"))
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"{what} {path!r} has a certificate OpenSSL cannot parse: {exc.reason or exc}", path
        ) from None


def _load_chain(
    context: ssl.SSLContext,
    certfile: str,
    keyfile: str | None,
    key_path: str,
    password: str | None,
) -> None:
    def give_password() -> str:
        if password is None:
            raise _NoPasswordError
        return password

    try:
        context.load_cert_chain(certfile, keyfile, password=give_password)
    except _NoPasswordError:
        raise TLSConfigError(
            f"the private key in {key_path!r} is encrypted; give its password", key_path
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSConfigError(
                f"the private key in {key_path!r} does not belong to the certificate in "
                f"{certfile!r}",
                key_path,
            ) from None
        if password is not None:  # the certificate parsed above, so the key is the problem
            raise TLSConfigError(
                f"cannot decrypt the private key in {key_path!r}: wrong password "
                f"(or a corrupt key)",
                key_path,
            ) from None
        raise TLSConfigError(
            f"the private key in {key_path!r} cannot be loaded: it is corrupt or in a "
            f"format OpenSSL does not read ({exc.reason or exc})",
            key_path,
        ) from None
    except (OSError, ValueError) as exc:
        raise TLSConfigError(
            f"cannot load certfile {certfile!r} / keyfile {key_path!r}: {exc}", key_path
        ) from None
