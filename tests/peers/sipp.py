"""Run SIPp (``sip-tester``) on loopback with free ports, and read its statistics file.

Every SIPp started here gets its own SIP port, media port (``-mp``; SIPp also binds mp+2) and
control port (``-cp``), all chosen by :func:`free_port`, so nothing binds 6000/8888 on 0.0.0.0.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.process import PeerProcess, free_port, require_binary

HOST = "127.0.0.1"


@dataclass
class SippResult:
    returncode: int
    stats: dict[str, str] = field(default_factory=dict)
    log: str = ""

    def count(self, name: str) -> int:
        """A cumulative counter, e.g. ``SuccessfulCall`` or ``FailedCall``."""
        return int(self.stats.get(f"{name}(C)", "0") or 0)


def _ports() -> list[str]:
    sip = free_port(HOST)
    media = free_port(HOST, span=4)   # -mp N binds N and N+2
    control = free_port(HOST)
    return ["-i", HOST, "-p", str(sip), "-mi", HOST, "-mp", str(media), "-cp", str(control)]


def read_stats(path: Path) -> dict[str, str]:
    """The last row of SIPp's ``-trace_stat`` CSV (``;``-separated) as a dict."""
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    head = rows[0]
    last = rows[-1]
    return {h: v for h, v in zip(head, last, strict=False) if h}


def run_uac(target: str, *, scenario: str | Path = "uac", calls: int = 10, rate: float = 10,
            limit: int = 10, timeout: float = 30, extra: Sequence[str] = (),
            transport: str = "u1") -> SippResult:
    """Run SIPp as a UAC toward ``target`` (``host:port``) and wait for it to finish."""
    sipp = require_binary("sipp")
    workdir = Path(tempfile.mkdtemp(prefix="sipp-uac-"))
    stf = workdir / "uac.csv"
    argv = [sipp, target]
    argv += ["-sn", str(scenario)] if scenario in ("uac", "uas") else ["-sf", str(Path(scenario).resolve())]
    argv += _ports()
    argv += ["-t", transport, "-m", str(calls), "-r", str(rate), "-l", str(limit), "-nostdin",
             "-trace_stat", "-stf", str(stf), "-fd", "1", "-timeout", f"{int(timeout)}s",
             "-timeout_error", "-trace_err", "-error_file", str(workdir / "err.log")]
    argv += list(extra)
    proc = subprocess.run(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, timeout=timeout + 30)
    err = workdir / "err.log"
    log = proc.stdout.decode(errors="replace")[-4000:]
    if err.exists():
        log += "\n--- errors ---\n" + err.read_text(errors="replace")[-4000:]
    return SippResult(proc.returncode, read_stats(stf), log)


class SippUas:
    """SIPp as a UAS (built-in ``uas`` or a custom scenario) in the background."""

    def __init__(self, scenario: str | Path = "uas", extra: Sequence[str] = ()) -> None:
        self.port = free_port(HOST)
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-uas-"))
        self.stf = self.workdir / "uas.csv"
        sipp = require_binary("sipp")
        argv = [sipp]
        argv += ["-sn", str(scenario)] if scenario in ("uac", "uas") else ["-sf", str(Path(scenario).resolve())]
        media = free_port(HOST, span=4)
        control = free_port(HOST)
        argv += ["-i", HOST, "-p", str(self.port), "-mi", HOST, "-mp", str(media),
                 "-cp", str(control), "-nostdin", "-trace_stat", "-stf", str(self.stf),
                 "-fd", "1", "-trace_msg", "-message_file", str(self.workdir / "msg.log")]
        argv += list(extra)
        self.proc = PeerProcess(argv, name="sipp-uas", cwd=self.workdir)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> SippUas:
        self.proc.start()
        # SIPp prints nothing reliable when ready: wait until the port is bound.
        deadline = time.monotonic() + 10
        import socket
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((HOST, self.port))
            except OSError:
                return self
            finally:
                s.close()
            if self.proc.proc is not None and self.proc.proc.poll() is not None:
                raise RuntimeError("sipp uas exited:\n" + self.proc.log())
            time.sleep(0.05)
        raise RuntimeError("sipp uas did not bind its port:\n" + self.proc.log())

    def messages(self) -> str:
        p = self.workdir / "msg.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stats(self) -> dict[str, str]:
        return read_stats(self.stf)

    def stop(self) -> int | None:
        return self.proc.stop()

    def __enter__(self) -> SippUas:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_MSG_RE = None


def message_times(log: str) -> list[tuple[float, str, str]]:
    """(seconds since midnight, "sent"/"received", first line) for every message in a
    ``-trace_msg`` log."""
    import re

    global _MSG_RE
    if _MSG_RE is None:
        _MSG_RE = re.compile(
            r"-{10,} \d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d\.\d+)\n\S+ message (sent|received)"
            r" [\[(]\d+\]? bytes\)? ?:\n\n([^\r\n]+)")
    out = []
    for h, m, s, direction, line in _MSG_RE.findall(log):
        out.append((int(h) * 3600 + int(m) * 60 + float(s), direction, line.strip()))
    return out
