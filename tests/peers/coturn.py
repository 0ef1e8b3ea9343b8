"""Start coturn (``turnserver``) on loopback: a free port, long-term user alice/secret."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Self

from tests.peers.process import PeerProcess, free_port, require_binary

USER = "alice"
PASSWORD = "secret"
REALM = "lab.test"
HOST = "127.0.0.1"


def write_config(directory: Path, *, ip: str, port: int, relay_min: int, relay_max: int,
                 loopback_peers: bool, extra: str = "",
                 tls: tuple[int, Path, Path] | None = None) -> Path:
    """A turnserver.conf for STUN + TURN on ``ip:port`` (UDP and TCP), long-term user
    alice/secret; with ``tls`` = (port, cert.pem, key.pem) also TURN over TLS on that port."""
    config = directory / "turnserver.conf"
    tls_lines = ("no-tls\n" if tls is None else
                 f"tls-listening-port={tls[0]}\nalt-tls-listening-port={tls[0] + 1}\n"
                 f"cert={tls[1]}\npkey={tls[2]}\n")
    config.write_text(
        f"listening-ip={ip}\n"
        f"relay-ip={ip}\n"
        f"listening-port={port}\n"
        f"alt-listening-port={port + 1}\n"
        f"min-port={relay_min}\n"
        f"max-port={relay_max}\n"
        f"realm={REALM}\n"
        "lt-cred-mech\n"
        f"user={USER}:{PASSWORD}\n"
        "fingerprint\n"
        # Without it coturn refuses loopback peers with 403 Forbidden IP (lab notes).
        + ("allow-loopback-peers\n" if loopback_peers else "no-multicast-peers\n")
        + tls_lines + "no-dtls\nno-cli\nno-tcp-relay\n"
        "log-file=stdout\nsimple-log\nverbose\n"
        f"pidfile={directory / 'turnserver.pid'}\n"
        f"userdb={directory / 'turndb'}\n"
        + extra
    )
    return config


class TurnServer:
    """A running turnserver: its address, URIs, log; a context manager that stops it."""

    ip: str
    port: int
    dir: Path
    process: PeerProcess
    user, password, realm = USER, PASSWORD, REALM

    @property
    def addr(self) -> tuple[str, int]:
        return (self.ip, self.port)

    tls_port: int | None = None

    @property
    def uri(self) -> str:
        return f"turn:{self.ip}:{self.port}"

    @property
    def tcp_uri(self) -> str:
        """TURN over TCP, on the same port as UDP (RFC 7065)."""
        return f"turn:{self.ip}:{self.port}?transport=tcp"

    @property
    def tls_uri(self) -> str:
        assert self.tls_port is not None, "started without a TLS certificate"
        return f"turns:{self.ip}:{self.tls_port}"

    @property
    def stun_uri(self) -> str:
        return f"stun:{self.ip}:{self.port}"

    def start(self, timeout: float = 15.0) -> Self:
        self.process.start(timeout=timeout)
        return self

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.process.log()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Coturn(TurnServer):
    """``with Coturn() as turn: turn.addr`` -> ("127.0.0.1", port)."""

    def __init__(self, relay_ports: int = 20, *, ipv6: bool = False, extra: str = "",
                 tls_cert: tuple[Path, Path] | None = None) -> None:
        """``tls_cert`` (cert.pem, key.pem): also listen for TURN over TLS on ``tls_port``."""
        self.binary = require_binary("turnserver")
        self.ip = HOST
        self.port = free_port(HOST, span=2)          # coturn also opens the alt port (+1)
        self.tls_port = free_port(HOST, span=2) if tls_cert is not None else None
        self.ipv6 = ipv6
        self.relay_min = free_port(HOST, span=relay_ports)
        self.relay_max = self.relay_min + relay_ports - 1
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-coturn-"))
        self.config = write_config(
            self.dir, ip=HOST, port=self.port, relay_min=self.relay_min,
            relay_max=self.relay_max, loopback_peers=True,
            extra=("listening-ip=::1\nrelay-ip=::1\n" if ipv6 else "") + extra,
            tls=None if tls_cert is None or self.tls_port is None
            else (self.tls_port, *tls_cert))
        self.process = PeerProcess([self.binary, "-c", str(self.config)],
                                   ready=rf"UDP listener opened on: {HOST}:{self.port}\b",
                                   name="turnserver")

    def start(self, timeout: float = 15.0) -> Self:
        super().start(timeout)
        # coturn's TCP listeners accept TCP and TLS alike ("TLS/TCP"), opened before UDP
        self.process.wait_for(rf"TCP listener opened on ?: {HOST}:{self.port}\b", timeout=5)
        if self.tls_port is not None:
            self.process.wait_for(rf"TLS/TCP listener opened on ?: {HOST}:{self.tls_port}\b",
                                  timeout=5)
        return self
