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
                 loopback_peers: bool, extra: str = "") -> Path:
    """A turnserver.conf for STUN + TURN on ``ip:port``, long-term user alice/secret."""
    config = directory / "turnserver.conf"
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
        + "no-tls\nno-dtls\nno-cli\nno-tcp-relay\n"
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

    @property
    def uri(self) -> str:
        return f"turn:{self.ip}:{self.port}"

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

    def __init__(self, relay_ports: int = 20, *, ipv6: bool = False, extra: str = "") -> None:
        self.binary = require_binary("turnserver")
        self.ip = HOST
        self.port = free_port(HOST, span=2)          # coturn also opens the alt port (+1)
        self.ipv6 = ipv6
        self.relay_min = free_port(HOST, span=relay_ports)
        self.relay_max = self.relay_min + relay_ports - 1
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-coturn-"))
        self.config = write_config(
            self.dir, ip=HOST, port=self.port, relay_min=self.relay_min,
            relay_max=self.relay_max, loopback_peers=True,
            extra=("listening-ip=::1\nrelay-ip=::1\n" if ipv6 else "") + extra)
        self.process = PeerProcess([self.binary, "-c", str(self.config)],
                                   ready=rf"UDP listener opened on: {HOST}:{self.port}\b",
                                   name="turnserver")
