"""Run Kamailio on loopback with a free port and the project's proxy configuration."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.peers.process import PeerProcess, free_port, require_binary

CONFIG = Path(__file__).resolve().parent.parent / "data" / "kamailio" / "proxy.cfg"
HOST = "127.0.0.1"


class Kamailio:
    """Kamailio in the foreground (``-DD -E``), logging to a file; stop by PID."""

    def __init__(self, config: Path = CONFIG, algorithm: str = "MD5", host: str = HOST) -> None:
        self.host = host
        self.port = free_port(host)
        self.rundir = Path(tempfile.mkdtemp(prefix="kamailio-"))
        cfg = self.rundir / "kamailio.cfg"
        text = config.read_text()
        if ":" in host:   # listen, alias: the IPv6 reference in brackets (RFC 5118 §3)
            text = text.replace("127.0.0.1", f"[{host}]").replace("dns_try_ipv6=no",
                                                                 "dns_try_ipv6=yes")
        cfg.write_text(text.replace("__PORT__", str(self.port))
                       .replace("__ALGORITHM__", algorithm))
        binary = require_binary("kamailio")
        self.proc = PeerProcess(
            [binary, "-f", str(cfg), "-DD", "-E", "-Y", str(self.rundir),
             "-P", str(self.rundir / "kamailio.pid"), "-w", str(self.rundir), "-m", "64", "-M", "8"],
            name="kamailio",
        )

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> Kamailio:
        self.proc.start()
        self.proc.wait_for(r"SO_RCVBUF is finally", timeout=15)
        import time
        time.sleep(0.3)   # the worker processes bind after the banner
        return self

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> int | None:
        return self.proc.stop()

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
