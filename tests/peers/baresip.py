"""baresip, a real ICE user agent, headless inside a network namespace.

baresip drops loopback host candidates, so it runs in a namespace with a veth address (see
``tests/peers/netns.py``); siplink under test runs in the same namespace. Its config directory
is generated from ``tests/data/baresip/{config,accounts}.template``: sine tone source
(``ausine``, 48 kHz stereo), ``aubridge,nil`` player, modules stun/turn/ice/g711/cons, account
with ``medianat=ice`` and ``answermode=auto``, ``dns_server`` on an unused loopback port, and
``cons_listen`` on 127.0.0.1 inside the namespace for control.

API::

    b = Baresip(ns, "198.51.100.1", 25200, user="bob", interface="v0",
                stun="stun:198.51.100.1:3478")       # or turn="turn:IP:PORT" (alice/secret)
    b.start()                       # ready at "baresip is ready." (also stopped by Lab.close)
    b.uri                           # "sip:bob@198.51.100.1:25200" (the AOR)
    # registrar="203.0.113.1:5080": AOR sip:bob@203.0.113.1:5080, REGISTER every 60 s;
    # b.wait_registered()
    b.dial("sip:alice@198.51.100.1:25300");  b.hangup()
    b.command("/listcalls")         # raw console output (cons over UDP, from inside the ns)
    b.call_states()                 # ["ESTABLISHED"] from /listcalls, one per active call
    b.wait_established()            # waits for "Call established" in the log
    b.wait_ice_complete()           # "ice: audio: connectivity check is complete"
    b.wait_media_connected()        # -> (rtp raddr, rtcp raddr) of the ICE-selected pair
    b.wait_rtp_incoming()           # -> "ip:port" RTP arrives from
    b.selected_pairs()              # [(ltype, "ip:port", rtype, "ip:port")] comp 1, per dump
    b.valid_pairs()                 # every valid comp-1 pair: (selected, flags, ltype, ...)
    b.candidates()                  # [(type, ip, port, component)] in the SDP baresip sent
    b.sent_sip(), b.received_sip()  # SIP messages (with SDP) from the -s trace
    b.wait_rtp_stats()              # after hangup: RtpStats(tx_packets, rx_packets)
    b.mark()                        # readers/waits only look at the log after the mark
    b.wait_for(regex), b.log(), b.stop()

Ports: ``sip_port`` (UDP+TCP; baresip also binds TCP sip_port+1), cons on ``sip_port+5``, RTP
on ``sip_port+10 .. sip_port+49``; pick sip ports 100 apart for several baresips in one
namespace (a fresh namespace has every port free). ``record_dir`` loads ``sndfile.so``, which
writes the decoded (received) and encoded (sent) audio of each call as 8 kHz mono WAV files
there: ``recorded_wavs(dir)`` -> {"dec": Path, "enc": Path}; ``wav_tone_hz(path)`` estimates
the frequency of the tone in one (zero crossings), e.g. to check what siplink sent.
``extra_config`` / ``account_params`` are appended verbatim.

Log lines relied on (baresip 1.0.0 with ``-v -s``): "baresip is ready.", "Call established:",
"ice: audio: connectivity check is complete", "stream: mnat 'ice' connected: raddr A B",
"stream: incoming rtp for 'audio' established, receiving from A", and the stats at call end
"audio  Transmit: Receive:" / "packets: TX RX". SIP messages with SDP are traced in the log.
"""

from __future__ import annotations

import array
import re
import shutil
import socket
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from string import Template

from tests.peers.netns import NetNs
from tests.peers.process import PeerProcess, require_binary

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "baresip"
MODULES = Path("/usr/lib/baresip/modules")


@dataclass(frozen=True)
class RtpStats:
    tx_packets: int
    rx_packets: int


class Baresip:
    def __init__(self, ns: NetNs, ip: str, sip_port: int = 25200, *, user: str = "baresip",
                 interface: str | None = None, stun: str | None = None, turn: str | None = None,
                 turn_user: str = "alice", turn_password: str = "secret",
                 answermode: str = "auto", audio_codecs: str = "PCMU", tone: int = 440,
                 rtcp_mux: bool = False, record_dir: str | Path | None = None,
                 registrar: str | None = None,
                 extra_config: str = "", account_params: str = "") -> None:
        self.binary = require_binary("baresip")
        if not (MODULES / "ice.so").exists():
            raise RuntimeError(f"baresip ICE module missing in {MODULES}: install package baresip")
        self.ns, self.ip, self.sip_port, self.user = ns, ip, sip_port, user
        self.registrar = registrar
        self.cons_port = sip_port + 5
        self.rtp_ports = (sip_port + 10, sip_port + 49)
        self.dir = Path(tempfile.mkdtemp(prefix=f"siplink-baresip-{user}-"))
        nat_params = ""
        if turn:
            nat_params = f';stunserver="{turn}";stunuser={turn_user};stunpass={turn_password}'
        elif stun:
            nat_params = f';stunserver="{stun}"'
        sndfile = ""
        if record_dir is not None:
            sndfile = f"module\t\t\tsndfile.so\nsnd_path\t\t{record_dir}"
        values = {
            "sip_ip": ip, "sip_port": sip_port, "tone": tone,
            "rtp_min": self.rtp_ports[0], "rtp_max": self.rtp_ports[1],
            "rtcp_mux": "yes" if rtcp_mux else "no", "dns_port": sip_port + 99,
            "net_interface_line": f"net_interface\t\t{interface}" if interface else "",
            "sndfile_lines": sndfile, "cons_port": self.cons_port, "extra": extra_config,
            "user": user, "answermode": answermode, "audio_codecs": audio_codecs,
            "nat_params": nat_params, "aor": self.uri, "regint": 60 if registrar else 0,
        }
        for name in ("config", "accounts"):
            text = Template((TEMPLATES / f"{name}.template").read_text())
            extra = account_params if name == "accounts" else extra_config
            (self.dir / name).write_text(text.substitute(values, extra=extra))
        ns.cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.process: PeerProcess = ns.peer(
            [self.binary, "-f", str(self.dir), "-v", "-s"],
            ready=r"baresip is ready\.", name=f"baresip-{user}",
        )
        self._cons: socket.socket | None = None
        self._mark = 0

    @property
    def uri(self) -> str:
        """The AOR: ``sip:user@registrar`` when registering, else ``sip:user@ip:port``."""
        return f"sip:{self.user}@{self.registrar or f'{self.ip}:{self.sip_port}'}"

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Wait for a 2xx to REGISTER in the SIP trace (baresip 1.0 logs nothing else)."""
        rx = re.compile(r"^SIP/2.0 2\d\d .*^CSeq: *\d+ REGISTER", re.M | re.S)
        deadline = time.monotonic() + timeout
        while not any(rx.search(m) for m in self.received_sip()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.process.name}: not registered in {timeout}s")
            time.sleep(0.05)

    def start(self, timeout: float = 15.0) -> Baresip:
        self.process.start(timeout=timeout)
        return self

    def stop(self) -> None:
        if self._cons is not None:
            self._cons.close()
            self._cons = None
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        """The whole log (every reader below looks only at the part after ``mark()``)."""
        return self.process.log()

    def mark(self) -> None:
        """Start a new section of the log: later waits and readers ignore what came before
        (``dial()`` marks; mark the callee before each call after the first)."""
        self._mark = len(self.log())

    def _recent(self) -> str:
        return self.log()[self._mark:]

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the log after the mark matches ``pattern``."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self._recent())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.process.name}: {pattern!r} not seen in {timeout}s:\n"
                                     + self._recent()[-4000:])
            time.sleep(0.05)

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- console -----------------------------------------------------------------------------
    def command(self, cmd: str, quiet: float = 0.3) -> str:
        """Send a console command (``/dial ...``); returns what baresip printed back.

        The console echoes typed characters with ``\\r``; those echo fragments are removed.
        Output is collected until ``quiet`` seconds pass without a datagram.
        """
        if self._cons is None:
            self._cons = self.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._cons.bind(("127.0.0.1", 0))
        s = self._cons
        s.settimeout(0.0)
        try:  # drop output left over from earlier commands
            while True:
                s.recv(65535)
        except (BlockingIOError, TimeoutError):
            pass
        s.settimeout(quiet)
        s.sendto(cmd.encode() + b"\n", ("127.0.0.1", self.cons_port))
        chunks = []
        try:
            while True:
                chunks.append(s.recv(65535).decode(errors="replace"))
        except TimeoutError:
            pass
        out = "".join(chunks)
        return re.sub(r"[^\n]*\r", "", out)

    def dial(self, uri: str) -> str:
        self.mark()
        return self.command(f"/dial {uri}")

    def hangup(self) -> str:
        return self.command("/hangup")

    def call_states(self) -> list[str]:
        out = self.command("/listcalls")
        return re.findall(r"^> ?\[line \d+\]\s+\S+\s+(\S+)", out, re.M) or re.findall(
            r"\[line \d+\]\s+\S+\s+(\S+)", out)

    # -- log readers ---------------------------------------------------------------------------
    def wait_established(self, timeout: float = 10.0) -> str:
        return self.wait_for(r"Call established: (\S+)", timeout).group(1)

    def wait_ice_complete(self, timeout: float = 10.0) -> str:
        return self.wait_for(r"ice: audio: connectivity check is complete.*", timeout)[0]

    def wait_media_connected(self, timeout: float = 10.0) -> tuple[str, str]:
        m = self.wait_for(r"stream: mnat 'ice' connected: raddr (\S+) (\S+)", timeout)
        return m.group(1), m.group(2)

    def wait_rtp_incoming(self, timeout: float = 10.0) -> str:
        return self.wait_for(
            r"incoming rtp for 'audio' established, receiving from (\S+)", timeout).group(1)

    def valid_pairs(self) -> list[tuple[bool, str, str, str, str, str]]:
        """Component-1 entries of the valid lists in baresip's ICE dumps, oldest first:
        (selected, flags, local type, local "ip:port", remote type, remote "ip:port").
        ``selected`` is the dump's ``*`` mark (the pair media uses); flags hold D(efault),
        V(alid), N(ominated)."""
        rx = (r"^\s*(\*?)\s*\{comp=1\}\s+Succeeded \{([A-Z ]*)\} (?:[\w.-]+:)?"
              r"(host|srflx|prflx|relay):(\S+) <---> (host|srflx|prflx|relay):(\S+)")
        return [(star == "*", flags.strip(), lt, la, rt, ra)
                for star, flags, lt, la, rt, ra in re.findall(rx, self._recent(), re.M)]

    def selected_pairs(self) -> list[tuple[str, str, str, str]]:
        """The ``*`` pairs of component 1, one per ICE dump, oldest first:
        (local type, local "ip:port", remote type, remote "ip:port")."""
        return [p[2:] for p in self.valid_pairs() if p[0]]

    def wait_rtp_stats(self, timeout: float = 10.0) -> RtpStats:
        """Packets sent/received in the last ended call (printed when its audio stops)."""
        self.wait_for(r"audio\s+Transmit:\s+Receive:\s*\npackets:\s+\d+\s+\d+", timeout)
        m = re.findall(r"audio\s+Transmit:\s+Receive:\s*\npackets:\s+(\d+)\s+(\d+)", self._recent())
        tx, rx = m[-1]
        return RtpStats(int(tx), int(rx))

    def sent_sip(self) -> list[str]:
        """SIP messages baresip sent (from its ``-s`` trace), oldest first."""
        return self._sip_trace(sent=True)

    def received_sip(self) -> list[str]:
        return self._sip_trace(sent=False)

    def _sip_trace(self, sent: bool) -> list[str]:
        me = f"{self.ip}:{self.sip_port}"
        parts = re.split(r"^(?:UDP|TCP|TLS) (\S+) -> (\S+)\r?$", self._recent(), flags=re.M)
        out = []
        for i in range(1, len(parts) - 2, 3):
            src, body = parts[i], parts[i + 2]
            if (src == me) == sent:
                out.append(body.split("\x1b[", 1)[0].strip())
        return out

    def candidates(self) -> list[tuple[str, str, int, int]]:
        """(type, ip, port, component) of the candidates in the SDP baresip sent."""
        rx = re.compile(r"^a=candidate:\S+ (\d) UDP \d+ (\S+) (\d+) typ (\w+)", re.M)
        found = {(typ, ip, int(port), int(comp))
                 for msg in self.sent_sip() for comp, ip, port, typ in rx.findall(msg)}
        return sorted(found)



def recorded_wavs(record_dir: str | Path) -> dict[str, Path]:
    """The newest ``sndfile`` dumps in ``record_dir``: {"dec": received audio, "enc": sent}."""
    out: dict[str, Path] = {}
    for kind in ("dec", "enc"):
        files = sorted(Path(record_dir).glob(f"dump-*-{kind}.wav"))
        if files:
            out[kind] = files[-1]
    return out


def wav_tone_hz(path: str | Path, skip_s: float = 0.2) -> float:
    """Frequency of a pure tone in a 16-bit mono WAV, from its zero crossings (after
    ``skip_s`` of start-up); 0.0 for silence."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "16-bit mono expected"
        rate = w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    samples = samples[int(skip_s * rate):]
    if len(samples) < rate // 10 or max(abs(x) for x in samples) < 300:
        return 0.0
    crossings = sum(1 for x, y in zip(samples, samples[1:], strict=False) if (x < 0) != (y < 0))
    return crossings / 2 / (len(samples) / rate)


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.1) -> None:
    """Poll ``predicate()`` until it is true."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(interval)
