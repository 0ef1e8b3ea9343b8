"""Start coturn (``turnserver``) on loopback: a free port, long-term user alice/secret."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.peers.process import PeerProcess, free_port, require_binary

USER = "alice"
PASSWORD = "secret"
REALM = "lab.test"
HOST = "127.0.0.1"


class Coturn:
    """``with Coturn() as turn: turn.addr`` -> ("127.0.0.1", port)."""

    def __init__(self, relay_ports: int = 20, *, ipv6: bool = False, extra: str = "") -> None:
        self.binary = require_binary("turnserver")
        self.port = free_port(HOST, span=2)          # coturn also opens the alt port (+1)
        self.ipv6 = ipv6
        self.relay_min = free_port(HOST, span=relay_ports)
        self.relay_max = self.relay_min + relay_ports - 1
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-coturn-"))
        self.config = self.dir / "turnserver.conf"
        self.config.write_text(
            f"listening-ip={HOST}\n"
            f"relay-ip={HOST}\n"
            f"listening-port={self.port}\n"
            f"alt-listening-port={self.port + 1}\n"
            f"min-port={self.relay_min}\n"
            f"max-port={self.relay_max}\n"
            f"realm={REALM}\n"
            "lt-cred-mech\n"
            f"user={USER}:{PASSWORD}\n"
            "fingerprint\n"
            "allow-loopback-peers\n"
            "no-tls\nno-dtls\nno-cli\nno-tcp-relay\n"
            "log-file=stdout\nsimple-log\nverbose\n"
            f"pidfile={self.dir / 'turnserver.pid'}\n"
            f"userdb={self.dir / 'turndb'}\n"
            + ("listening-ip=::1\nrelay-ip=::1\n" if ipv6 else "")
            + extra
        )
        self.process = PeerProcess([self.binary, "-c", str(self.config)],
                                   ready=rf"UDP listener opened on: {HOST}:{self.port}\b",
                                   name="turnserver")

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)

    def start(self) -> Coturn:
        self.process.start(timeout=15)
        return self

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.process.log()

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
