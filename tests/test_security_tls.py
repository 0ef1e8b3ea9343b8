"""SIP over TLS verifies the server's certificate by default (RFC 5922), on loopback.

What each test proves (one UA "bob" listens on TLS with a self-signed certificate; "alice"
sends OPTIONS to ``sip:bob@127.0.0.1:PORT;transport=tls`` with no TLS settings of her own):

* by default the certificate is refused: the handshake fails and bob never sees a request;
* with that certificate configured as alice's trust root (``transport.tls_trust_root``), the
  same request gets 200 -- so the refusal above was the verification, nothing else;
* a certificate alice trusts but issued for another name is refused too (the name is checked,
  not only the chain), also one with no subjectAltName at all (Twisted only logs
  service_identity's complaint about those and goes on; the transport refuses them).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, ssl, task

from siplink.sip.message import Request
from siplink.transport import driver as transport
from siplink.ua.useragent import UserAgent


@pytest.fixture
def lost(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Why each SIP stream connection ended (the TLS handshake's error, if that was it)."""
    reasons: list[str] = []
    original = transport._StreamProtocol.connectionLost

    def spy(self: Any, reason: Any = None) -> None:
        reasons.append(repr(getattr(reason, "value", reason)))
        original(self, reason)

    monkeypatch.setattr(transport._StreamProtocol, "connectionLost", spy)
    return reasons


def self_signed(name: str) -> ssl.PrivateCertificate:
    """A self-signed certificate whose subjectAltName is ``name`` (an IP or a DNS name)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        san = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    return ssl.PrivateCertificate.loadPEM(pem)


def no_san(name: str) -> ssl.PrivateCertificate:
    """A self-signed certificate naming ``name`` in its CN only (no subjectAltName)."""
    return ssl.KeyPair.generate(size=2048).selfSignedCert(1, CN=name)


def bob_on_tls(cert: ssl.PrivateCertificate) -> tuple[UserAgent, list[Request]]:
    bob = UserAgent(reactor, user="bob", transport="tls")
    bob.listen(("tls",), tls_context=cert.options())
    seen: list[Request] = []
    original = bob.core._on_request

    def spy(req: Request, source: Any, key: Any) -> None:
        seen.append(req)
        original(req, source, key)

    bob.core._on_request = spy  # type: ignore[method-assign]
    return bob, seen


def alice() -> UserAgent:
    ua = UserAgent(reactor, user="alice")
    ua.listen(("udp",))
    return ua


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_self_signed_server_certificate_is_refused_by_default(lost: list[str]) -> None:
    bob, seen = bob_on_tls(self_signed("127.0.0.1"))
    a = alice()
    try:
        d = a.request("OPTIONS", f"sip:bob@127.0.0.1:{bob.port};transport=tls")
        d.addErrback(lambda f: None)
        await sleep(1.5)
        assert not seen                                 # nothing got through the handshake
        assert not d.called                             # and no response came back
        assert not a.transport._connections and not bob.transport._connections
        assert any("certificate verify failed" in r for r in lost), lost
    finally:
        a.close()
        bob.close()


@pytest_twisted.ensureDeferred
async def test_self_signed_server_certificate_is_accepted_when_configured() -> None:
    cert = self_signed("127.0.0.1")
    bob, seen = bob_on_tls(cert)
    a = alice()
    a.transport.tls_trust_root = ssl.Certificate(cert.original)
    try:
        resp = await a.request("OPTIONS", f"sip:bob@127.0.0.1:{bob.port};transport=tls"
                               ).addTimeout(10, reactor)
        assert resp.status == 200
        assert [r.method for r in seen] == ["OPTIONS"]
    finally:
        a.close()
        bob.close()


@pytest.mark.parametrize("make", [self_signed, no_san], ids=["other-name", "no-san"])
@pytest_twisted.ensureDeferred
async def test_trusted_certificate_for_another_name_is_refused(lost: list[str],
                                                               make: Any) -> None:
    cert = make("sip.other.invalid")
    bob, seen = bob_on_tls(cert)
    a = alice()
    a.transport.tls_trust_root = ssl.Certificate(cert.original)
    try:
        d = a.request("OPTIONS", f"sip:bob@127.0.0.1:{bob.port};transport=tls")
        d.addErrback(lambda f: None)
        await sleep(1.5)
        assert not seen and not d.called
        assert any(e in r for r in lost for e in ("VerificationError", "Mismatch",
                                                  "CertificateError")), lost
    finally:
        a.close()
        bob.close()


@pytest_twisted.ensureDeferred
async def test_server_named_by_a_host_name_is_checked_against_the_name() -> None:
    """RFC 5922 §7.1: the certificate must match the host of the URI we were given, not the
    address it resolved to. bob's certificate names only ``sip.example.test``; alice calls
    ``sip:bob@sip.example.test`` (her resolver maps the name to 127.0.0.1, no DNS asked)."""
    cert = self_signed("sip.example.test")
    bob, seen = bob_on_tls(cert)
    a = alice()
    a.resolve_host = lambda name: {"sip.example.test": "127.0.0.1"}[name]
    a.transport.tls_trust_root = ssl.Certificate(cert.original)
    try:
        resp = await a.request("OPTIONS", f"sip:bob@sip.example.test:{bob.port};transport=tls"
                               ).addTimeout(10, reactor)
        assert resp.status == 200
        assert [r.method for r in seen] == ["OPTIONS"]
    finally:
        a.close()
        bob.close()


@pytest_twisted.ensureDeferred
async def test_certificate_for_the_address_is_refused_when_the_uri_names_a_host(
        lost: list[str]) -> None:
    """The converse: a certificate for 127.0.0.1 does not prove ``sip.example.test``."""
    cert = self_signed("127.0.0.1")
    bob, seen = bob_on_tls(cert)
    a = alice()
    a.resolve_host = lambda name: {"sip.example.test": "127.0.0.1"}[name]
    a.transport.tls_trust_root = ssl.Certificate(cert.original)
    try:
        d = a.request("OPTIONS", f"sip:bob@sip.example.test:{bob.port};transport=tls")
        d.addTimeout(10, reactor)
        with pytest.raises(Exception):  # noqa: B017 - the transport error or the timeout
            await d
        assert seen == []
        assert lost, "the TLS connection should have been refused"
    finally:
        a.close()
        bob.close()
