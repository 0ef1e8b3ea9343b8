"""pjsua2 (pjsip/pjnath, the stack inside Asterisk) as a peer: launcher and a small LAN.

The agent (``tests/peers/pjsua2_agent.py``) is a standalone script run as a subprocess inside
a network namespace; pjnath does not offer loopback host candidates, so every party gets its
own namespace with a veth into a bridge namespace (the lab notes' layout)::

    with Lab() as lab:
        lan = Lan(lab)                          # bridge namespace "br", 198.51.100.0/24
        sl = lan.host("sl", "198.51.100.1")     # NetNs with eth0 198.51.100.1, IPv6 off
        pjn = lan.host("pj", "198.51.100.2")
        pj = Pjsua2(pjn, "198.51.100.2", role="answer", options=["--100rel", "require"])
        pj.start()                              # waits for "PJSUA2-READY"
        ... drive siplink in ``sl`` (siplink_argv / run_siplink) ...
        res = pj.result(timeout=20)             # waits for its exit, parses PJSUA2-RESULT
        res.call["tsx"]                         # ["uas INVITE 180", "uas INVITE 200", ...]
        pj.sip_messages()                       # [SipLogMessage] from the level-5 log

``Pjsua2.result()`` waits for the agent to end by itself (its ``--duration``, the peer's BYE
or its ``--timeout``); on timeout it sends SIGTERM (the agent hangs up and still prints its
summary) and then kills it by PID. The namespaces, and everything still running inside, go
when the ``Lab`` closes. ``siplink_argv`` builds ``python -m siplink ...`` for the worktree
(``PYTHONPATH`` set by ``siplink_env``), so tests drive siplink only through its CLI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers.netns import Lab, NetNs
from tests.peers.process import PeerProcess

AGENT = Path(__file__).resolve().parent / "pjsua2_agent.py"
ROOT = Path(__file__).resolve().parent.parent.parent
NET = "198.51.100"


def siplink_env() -> dict[str, str]:
    """Environment for a siplink subprocess: this tree first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def siplink_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "siplink", *args]


class Lan:
    """A bridge namespace and hosts attached to it, each host in its own namespace."""

    def __init__(self, lab: Lab, prefix: str = NET) -> None:
        self.lab = lab
        self.prefix = prefix
        self.br = lab.namespace("br")
        self.br.bridge("br0")
        self._n = 0

    def host(self, tag: str, ip: str, *, ipv6: bool = False) -> NetNs:
        self._n += 1
        ns = self.lab.namespace(tag)
        if not ipv6:
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        port = f"p{self._n}"
        self.lab.veth(ns, "eth0", self.br, port, f"{ip}/24")
        self.br.ip("link", "set", port, "master", "br0")
        return ns


@dataclass
class SipLogMessage:
    direction: str          # "RX" | "TX"
    summary: str            # pjsip's "Request msg BYE/cseq=3" / "Response msg 500/BYE/cseq=3"
    text: str               # the whole message

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    def header(self, name: str) -> str | None:
        m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", self.text, re.M | re.I)
        return m.group(1) if m else None


@dataclass
class Pjsua2Result:
    data: dict[str, Any]
    log_tail: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.calls = list(self.data.get("calls", []))

    @property
    def call(self) -> dict[str, Any]:
        assert self.calls, f"pjsua2 had no call: {self.data}\n{self.log_tail}"
        return self.calls[0]

    @property
    def ice(self) -> dict[str, Any]:
        return dict(self.data["ice"])


_MSG_RX = re.compile(
    r"\b(RX|TX) \d+ bytes ((?:Request|Response) msg \S+) [^\n]*?:\n(.*?)\n--end msg--", re.S)


def ice_from_log(text: str) -> dict[str, Any]:
    """What pjnath logged: negotiation results, the nominated pairs of the last valid list
    (per component, with candidate types), trickle INFOs."""
    success = len(re.findall(r"ICE negotiation success", text))
    failed = re.findall(r"ICE negotiation failed[^\n]*|ICE process complete, status=(?!Success)"
                        r"[^\n]*", text)
    types: dict[str, str] = {}
    for ip, port, typ in re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) (\d+) typ (\w+)",
                                    text, re.M):
        types.setdefault(f"{ip}:{port}", typ)
    local_types = set()
    for typ, addr in re.findall(r"Candidate \d+ added: comp_id=\d+, type=(\w+), "
                                r"foundation=\S+, addr=(\S+?),", text):
        typ = {"relayed": "relay"}.get(typ, typ)
        types[addr] = typ
        local_types.add(typ)
    selected: dict[str, dict[str, str]] = {}
    for comp, la, ra in re.findall(r"\[(\d)\] (\S+:\d+)-->(\S+:\d+) \(nominated, "
                                   r"state=Succeeded\)", text):
        selected[comp] = {"local": la, "remote": ra, "local_type": types.get(la, "?"),
                          "remote_type": types.get(ra, "?")}
    return {"success_count": success, "success": success > 0, "failed": failed[:3],
            "selected": selected, "local_types": sorted(local_types),
            "nomination": (re.findall(r"ICE nomination type set to (\w+)", text) or [""])[-1],
            "trickle_info": len(re.findall(r"TX \d+ bytes Request msg INFO", text)),
            "nominated_check_scheduled": "Scheduling nominated check" in text}


def sip_ladder(text: str) -> list[str]:
    """Every SIP message pjsip logged, as "TX INVITE 1 INVITE" / "RX 200 1 INVITE"
    (direction, method or status, CSeq)."""
    out = []
    for d, start, cseq in re.findall(
            r"\b(RX|TX) \d+ bytes (?:Request|Response) msg [^\n]*?:\n([^\n]*)\n.*?"
            r"^CSeq:\s*([^\r\n]*)", text, re.S | re.M):
        first = start.strip().split()
        what = first[1] if first and first[0].startswith("SIP/") else (first[0] if first else "?")
        out.append(f"{d} {what} {cseq.strip()}")
    return out


class Pjsua2:
    """One pjsua2 agent process inside ``ns`` (see module docstring)."""

    def __init__(self, ns: NetNs, ip: str, role: str = "answer", uri: str | None = None, *,
                 port: int = 5070, options: list[str] | tuple[str, ...] = (),
                 workdir: Path | None = None, name: str | None = None,
                 timeout: float = 30.0) -> None:
        self.ns, self.ip, self.port, self.role = ns, ip, port, role
        tag = name or f"pjsua2-{role}"
        self.dir = workdir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"{tag}-{ip}.pjsip.log"
        self.result_path = self.dir / f"{tag}-{ip}.json"
        for p in (self.log_path, self.result_path):
            p.unlink(missing_ok=True)
        argv = [sys.executable, str(AGENT), "--bind", ip, "--port", str(port),
                "--log", str(self.log_path), "--result", str(self.result_path),
                "--timeout", str(timeout), *options, role]
        if uri:
            argv.append(uri)
        self.argv = argv
        self.process: PeerProcess = ns.peer(argv, ready=r"PJSUA2-READY", name=tag,
                                            env=siplink_env())
        self._result: Pjsua2Result | None = None

    @property
    def uri(self) -> str:
        return f"sip:pj@{self.ip}:{self.port}"

    def start(self, timeout: float = 15.0) -> Pjsua2:
        self.process.start(timeout=timeout)
        return self

    def output(self) -> str:
        return self.process.log()

    def pjsip_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def result(self, timeout: float = 30.0) -> Pjsua2Result:
        """Wait for the agent to exit (SIGTERM after ``timeout``, which makes it hang up and
        report) and parse its summary."""
        if self._result is not None:
            return self._result
        proc = self.process.proc
        assert proc is not None, "agent not started"
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.stop(timeout=8.0)
        m = re.search(r"^PJSUA2-RESULT (.*)$", self.output(), re.M)
        if not m:
            raise AssertionError(
                f"{self.process.name} printed no result (exit {proc.returncode}):\n"
                + self.output()[-3000:] + "\n--- pjsip log tail ---\n" + self.pjsip_log()[-4000:])
        data = json.loads(m.group(1))
        log = self.pjsip_log()        # complete now that the agent has exited
        data["ice"], data["sip"] = ice_from_log(log), sip_ladder(log)
        self._result = Pjsua2Result(data, log[-6000:])
        return self._result

    def stop(self) -> None:
        self.process.stop(timeout=8.0)

    def sip_messages(self) -> list[SipLogMessage]:
        """SIP messages pjsip logged (level 5 logs every message in and out), oldest first."""
        return [SipLogMessage(d, s, t.replace("\r", ""))
                for d, s, t in _MSG_RX.findall(self.pjsip_log())]

    def ladder(self) -> str:
        """A one-line-per-message view of the SIP exchange, for failure messages."""
        return "\n".join(f"{m.direction} {m.first_line}   [{m.header('CSeq')}]"
                         for m in self.sip_messages())

    def log_lines(self, pattern: str) -> list[str]:
        return [ln.strip() for ln in self.pjsip_log().splitlines() if re.search(pattern, ln)]


def siplink_config(path: Path, ip: str, *, nomination: str = "regular",
                   stun: str | None = None, turn: str | None = None,
                   policy: str = "all", rtcp_mux: bool = True, trickle: str = "half") -> Path:
    """A siplink TOML configuration gathering on ``ip``."""
    lines = ["[sip]", f'listen = "{ip}:0"', "[ice]", f'addresses = ["{ip}"]',
             f'nomination = "{nomination}"', f'policy = "{policy}"',
             f"rtcp_mux = {'true' if rtcp_mux else 'false'}", f'trickle = "{trickle}"']
    if stun:
        lines.append(f'stun_servers = ["{stun}"]')
    if turn:
        lines += ["[[ice.turn_servers]]", f'uri = "turn:{turn}"', 'username = "alice"',
                  'password = "secret"']
    path.write_text("\n".join(lines) + "\n")
    return path


def run_siplink(ns: NetNs, args: list[str], timeout: float = 40.0) -> subprocess.CompletedProcess[str]:
    """``python -m siplink ARGS`` inside ``ns``, to completion."""
    return subprocess.run(ns.exec_argv(siplink_argv(*args)), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=siplink_env(), stdin=subprocess.DEVNULL)


def siplink_answerer(ns: NetNs, ip: str, port: int, config: Path, *extra: str) -> PeerProcess:
    """A started ``siplink answer`` inside ``ns`` (ready at its "listening on" line)."""
    p = ns.peer(siplink_argv("-v", "-c", str(config), "answer", "--listen", f"{ip}:{port}",
                             "--calls", "1", *extra),
                ready=r"listening on", name="siplink-answer", env=siplink_env())
    return p.start(timeout=20)


def wait_exit(p: PeerProcess, timeout: float) -> int | None:
    """Wait for ``p`` to end by itself; stop it by PID after ``timeout``."""
    assert p.proc is not None
    deadline = time.monotonic() + timeout
    while p.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return p.stop()
