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
appended to the generated turnserver.conf verbatim (one option per line).  TURN over TCP is on
``port`` too; ``tls_cert=(cert.pem, key.pem)`` adds TURN over TLS on ``tls_port`` (5349,
``turn.tls_uri`` -> "turns:IP:5349").
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.peers.coturn import PASSWORD, REALM, USER, TurnServer, write_config
from tests.peers.netns import NetNs
from tests.peers.process import require_binary

__all__ = ["PASSWORD", "REALM", "TURN_PORT", "TURN_TLS_PORT", "USER", "CoturnInNs"]

TURN_PORT = 3478
TURN_TLS_PORT = 5349


class CoturnInNs(TurnServer):
    def __init__(self, ns: NetNs, ip: str, port: int = TURN_PORT, *, relay_min: int = 49152,
                 relay_ports: int = 100, extra: str = "",
                 tls_cert: tuple[Path, Path] | None = None) -> None:
        self.binary = require_binary("turnserver")
        self.ns = ns
        self.ip = ip
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-coturn-ns-"))
        self.config = write_config(self.dir, ip=ip, port=port, relay_min=relay_min,
                                   relay_max=relay_min + relay_ports - 1, loopback_peers=False,
                                   extra=extra,
                                   tls=None if tls_cert is None else (TURN_TLS_PORT, *tls_cert))
        self.tls_port = None if tls_cert is None else TURN_TLS_PORT
        ns.cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.process = ns.peer(
            [self.binary, "-c", str(self.config)],
            ready=rf"UDP listener opened on: {ip}:{port}\b", name="turnserver",
        )
