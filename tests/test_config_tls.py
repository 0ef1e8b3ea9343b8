"""The [sip] TLS keys of the configuration take effect: UserAgent.from_config."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from siplink.ua.config import ConfigError, loads
from siplink.ua.useragent import UserAgent
from tests.test_security_tls import self_signed


def write_pem(tmp_path: Path, name: str) -> tuple[Path, Path]:
    cert = self_signed(name)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.dumpPEM().split(b"-----END CERTIFICATE-----")[0]
                          + b"-----END CERTIFICATE-----\n")
    key_file.write_bytes(cert.privateKey.dump(1))   # FILETYPE_PEM
    return cert_file, key_file


@pytest_twisted.ensureDeferred
async def test_tls_listener_and_trust_anchor_from_config(tmp_path: Path) -> None:
    cert, key = write_pem(tmp_path, "127.0.0.1")
    server = loads(f'[sip]\nlisten = "127.0.0.1:0"\ntransport = "tls"\n'
                   f'tls_cert = "{cert}"\ntls_key = "{key}"\n').sip
    bob = UserAgent.from_config(reactor, server, user="bob")
    bob.listen()
    # verification on (the default) with the self-signed certificate as trust anchor
    client = loads(f'[sip]\nlisten = "127.0.0.1:0"\ntls_ca = "{cert}"\n').sip
    alice = UserAgent.from_config(reactor, client, user="alice")
    alice.listen()
    try:
        resp = await alice.request("OPTIONS", f"sip:bob@127.0.0.1:{bob.port};transport=tls"
                                   ).addTimeout(10, reactor)
        assert resp.status == 200
    finally:
        alice.close()
        bob.close()


@pytest_twisted.ensureDeferred
async def test_without_the_trust_anchor_the_same_server_is_refused(tmp_path: Path) -> None:
    cert, key = write_pem(tmp_path, "127.0.0.1")
    server = loads(f'[sip]\nlisten = "127.0.0.1:0"\ntransport = "tls"\n'
                   f'tls_cert = "{cert}"\ntls_key = "{key}"\n').sip
    bob = UserAgent.from_config(reactor, server, user="bob")
    bob.listen()
    alice = UserAgent.from_config(reactor, loads('[sip]\nlisten = "127.0.0.1:0"\n').sip,
                                  user="alice")
    alice.listen()
    try:
        d = alice.request("OPTIONS", f"sip:bob@127.0.0.1:{bob.port};transport=tls")
        with pytest.raises(defer.TimeoutError):  # handshake refused: no response ever comes
            await d.addTimeout(2, reactor)
    finally:
        alice.close()
        bob.close()


def test_unreadable_tls_files_name_the_key(tmp_path: Path) -> None:
    sip = loads(f'[sip]\ntls_ca = "{tmp_path / "missing.pem"}"\n').sip
    with pytest.raises(ConfigError) as e:
        UserAgent.from_config(reactor, sip)
    assert e.value.key == "sip.tls_ca" and "cannot read" in str(e.value)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    sip = loads(f'[sip]\ntls_cert = "{bad}"\n').sip
    with pytest.raises(ConfigError) as e:
        UserAgent.from_config(reactor, sip)
    assert e.value.key == "sip.tls_cert"


def test_tls_listener_without_certificate_is_a_clear_error() -> None:
    ua = UserAgent.from_config(reactor, loads('[sip]\nlisten = "127.0.0.1:0"\n'
                                              'transport = "tls"\n').sip)
    with pytest.raises(ValueError, match="certificate"):
        ua.listen()
