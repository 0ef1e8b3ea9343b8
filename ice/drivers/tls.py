"""TLS client connections that check the server's certificate: its chain against a trust
root, and that it names the server we meant (a host name or an IP address), for every TLS
client of the stack (TURN over TLS, SIP over TLS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["TlsConfigError", "VerifyingClientTLS", "load_trust_root"]


class TlsConfigError(ValueError):
    """A CA file (``turns:`` servers, ``sip.tls_ca``) cannot be read or holds no certificate."""


def load_trust_root(tls_ca: str = "") -> Any:
    """The trust root for TLS: the CA certificates of the PEM file ``tls_ca``, or the
    platform's when empty.  Raises :class:`TlsConfigError` with the file named."""
    from twisted.internet import ssl

    if not tls_ca:
        return ssl.platformTrust()
    try:
        text = Path(tls_ca).read_text()
    except OSError as e:
        raise TlsConfigError(f"cannot read TLS CA file {tls_ca}: {e.strerror}") from None
    marker = "-----END CERTIFICATE-----"
    pems = [p.strip() + "\n" + marker + "\n" for p in text.split(marker)[:-1]]
    try:
        certs = [ssl.Certificate.loadPEM(p.encode()) for p in pems]
    except Exception as e:  # noqa: BLE001 - OpenSSL's errors are not one class
        raise TlsConfigError(f"bad certificate in TLS CA file {tls_ca}: {e}") from None
    if not certs:
        raise TlsConfigError(f"no certificate in TLS CA file {tls_ca}")
    return ssl.trustRootFromCertificates(certs)


_X509_ERRORS = {   # the X509_V_ERR_* codes a misconfigured server usually gives
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate (not trusted)",
    19: "self-signed certificate in the chain (not trusted)",
    20: "unable to get local issuer certificate (issuer not trusted)",
    21: "unable to verify the first certificate",
}


@implementer(IOpenSSLClientConnectionCreator)
class VerifyingClientTLS:
    """``optionsForClientTLS`` plus our own check that the leaf certificate names ``host``
    (RFC 5922 §7 for SIP, RFC 8656 / RFC 6125 for TURN), remembering why it failed for the
    report. Twisted alone only logs service_identity's CertificateError (a certificate with
    no subjectAltName) and goes on, so a trusted certificate naming nobody passed for any
    host; here it fails."""

    def __init__(self, host: str, trust_root: Any = None) -> None:
        from twisted.internet import ssl

        self.host = host
        self.failure: str | None = None
        self._inner: Any = ssl.optionsForClientTLS(
            host, trustRoot=trust_root if trust_root is not None else ssl.platformTrust())

    def clientConnectionForTLS(self, tls_protocol: Any) -> Any:  # noqa: N802 - Twisted API
        from OpenSSL import SSL
        from service_identity import CertificateError, VerificationError
        from service_identity.pyopenssl import (
            DNS_ID,
            IPAddress_ID,
            extract_patterns,
            verify_service_identity,
        )
        from twisted.internet.abstract import isIPAddress, isIPv6Address

        conn = self._inner.clientConnectionForTLS(tls_protocol)
        is_ip = isIPAddress(self.host) or isIPv6Address(self.host)
        ident = IPAddress_ID(self.host) if is_ip else DNS_ID(self.host)

        def verify(conn: Any, cert: Any, err: int, depth: int, ok: int) -> bool:
            if not ok:
                reason = _X509_ERRORS.get(err, f"X509 error {err}")
                subject = cert.to_cryptography().subject.rfc4514_string() or "no subject"
                self.failure = (f"certificate verify failed at depth {depth} ({subject}): "
                                f"{reason}")
                return False
            if depth != 0:
                return True
            try:
                verify_service_identity(extract_patterns(cert), [ident], [])
            except (VerificationError, CertificateError):
                self.failure = (f"certificate name mismatch: the certificate does not name "
                                f"{'IP address' if is_ip else 'host'} {self.host!r}")
                tls_protocol.failVerification(Failure())
                return False
            return True

        conn.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verify)
        return conn
