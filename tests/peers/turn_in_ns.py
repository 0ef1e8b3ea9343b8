"""coturn (``turnserver``) inside a network namespace: STUN + TURN, long-term user alice/secret.

(``tests/peers/coturn.py`` is the loopback variant; this one binds a namespace address, where
every port is ours, so the ports are fixed defaults and ``allow-loopback-peers`` is not set.)

API::

    turn = CoturnInNs(ns, "203.0.113.1")        # ns: tests.peers.netns.NetNs
    turn.start()                                # ready at "UDP listener opened on: IP:PORT"
    turn.addr        -> ("203.0.113.1", 3478)
    turn.uri         -> "turn:203.0.113.1:3478" (stun_uri for "stun:...")
    turn.user, turn.password, turn.realm       -> "alice", "secret", "lab.test"
    turn.log()                                  # its stdout (verbose: allocations, permissions)
    turn.stop()                                 # by PID; also done when the namespace's Lab closes

``relay_ports`` relay ports start at ``relay_min`` (49152) on the same address; ``extra`` is
appended to the generated turnserver.conf verbatim (one option per line).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.peers.netns import NetNs
from tests.peers.process import PeerProcess, require_binary

USER = "alice"
PASSWORD = "secret"
REALM = "lab.test"
TURN_PORT = 3478


class CoturnInNs:
    def __init__(self, ns: NetNs, ip: str, port: int = TURN_PORT, *, relay_min: int = 49152,
                 relay_ports: int = 100, extra: str = "") -> None:
        self.binary = require_binary("turnserver")
        self.ns = ns
        self.ip = ip
        self.port = port
        self.user, self.password, self.realm = USER, PASSWORD, REALM
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-coturn-ns-"))
        self.config = self.dir / "turnserver.conf"
        self.config.write_text(
            f"listening-ip={ip}\n"
            f"relay-ip={ip}\n"
            f"listening-port={port}\n"
            f"alt-listening-port={port + 1}\n"
            f"min-port={relay_min}\n"
            f"max-port={relay_min + relay_ports - 1}\n"
            f"realm={REALM}\n"
            "lt-cred-mech\n"
            f"user={USER}:{PASSWORD}\n"
            "fingerprint\n"
            "no-tls\nno-dtls\nno-cli\nno-tcp-relay\nno-multicast-peers\n"
            "log-file=stdout\nsimple-log\nverbose\n"
            f"pidfile={self.dir / 'turnserver.pid'}\n"
            f"userdb={self.dir / 'turndb'}\n"
            + extra
        )
        ns.cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.process: PeerProcess = ns.peer(
            [self.binary, "-c", str(self.config)],
            ready=rf"UDP listener opened on: {ip}:{port}\b", name="turnserver",
        )

    @property
    def addr(self) -> tuple[str, int]:
        return (self.ip, self.port)

    @property
    def uri(self) -> str:
        return f"turn:{self.ip}:{self.port}"

    @property
    def stun_uri(self) -> str:
        return f"stun:{self.ip}:{self.port}"

    def start(self, timeout: float = 15.0) -> CoturnInNs:
        self.process.start(timeout=timeout)
        return self

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.process.log()

    def __enter__(self) -> CoturnInNs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
