"""``siplink test SCENARIO.toml`` driven as a user would (subprocess).

What each test proves:
- the shipped passing scenario (ICE calls to local answerers: DTMF both ways, hold/resume,
  BYE from either side) exits 0; its JUnit XML parses with 3 tests and 0 failures; its pcap
  decodes in tshark as SIP (the INVITE dialog) and STUN (ICE checks with USE-CANDIDATE, their
  success responses); its HTML ladder has the participants and the messages;
- the shipped must-fail scenario exits 1, and the JUnit XML and the table name each failure;
- a scenario against SIPp's UAS at a rate and concurrency: every call counted by SIPp too;
- an ICE call through Kamailio (the answerer registers with digest, the caller answers the
  proxy's 407): ICE host pair, media without loss, DTMF both ways;
- a bad scenario file exits 2 naming key and line; a progress bar is drawn on a terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.peers.kamailio import Kamailio
from tests.peers.process import require_binary
from tests.peers.sipp import SippUas

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "conf" / "scenarios"


def siplink(*args: str, timeout: float = 90, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siplink", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


def tshark(pcap: Path, display: str, fields: list[str]) -> list[list[str]]:
    argv = [require_binary("tshark"), "-r", str(pcap), "-Y", display, "-T", "fields",
            "-E", "separator=|"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split("|") for line in out.stdout.splitlines() if line]


def _proxy_key() -> str:
    """The account's outbound-proxy key (``proxy``; ``outbound_proxy`` in older configs)."""
    import dataclasses

    from siplink.ua import config

    names = {f.name for f in dataclasses.fields(config.Account)}
    return "proxy" if "proxy" in names else "outbound_proxy"


def junit(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    return suite, {c.get("name", ""): c for c in suite.findall("testcase")}


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.rows: list[dict[str, str]] = []
        self._in_th = False
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_summary = tag == "summary" or self._in_summary
        if tag == "th":
            self._in_th = True
        if tag == "tr" and any(k == "data-dir" for k, _ in attrs):
            self.rows.append({k: v or "" for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        self._in_th = False if tag == "th" else self._in_th
        self._in_summary = False if tag == "summary" else self._in_summary

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.headers.append(data)
        elif self._in_summary and self.rows:
            self.rows[-1]["label"] = self.rows[-1].get("label", "") + data


def test_passing_scenario_with_junit_pcap_and_ladder(tmp_path: Path) -> None:
    report, pcap, ladder = tmp_path / "r.xml", tmp_path / "c.pcap", tmp_path / "c.html"
    out = siplink("test", str(SCENARIOS / "ice-loopback.toml"), "--junit", str(report),
                  "--pcap", str(pcap), "--ladder", str(ladder))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 calls, 3 passed, 0 failed" in out.stdout
    suite, cases = junit(report)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "0")
    assert set(cases) == {"ice-host-dtmf-hold", "callee-hangs-up#1", "callee-hangs-up#2"}
    assert all(c.find("failure") is None for c in cases.values())
    first = cases["ice-host-dtmf-hold"].findtext("system-out") or ""
    assert "dtmf=*9" in first and "ended_by=caller" in first and "host 127.0.0.1" in first
    assert "steps=hold: 200; resume: 200\n" in first     # and bob went quiet while held
    call_id = first.split("call-id=")[1].split()[0]

    # pcap (the first call): tshark decodes its SIP dialog and its ICE checks
    sip = tshark(pcap, "sip", ["sip.Method", "sip.CSeq.method", "sip.Call-ID"])
    assert {r[2] for r in sip} == {call_id}
    methods = [r[0] for r in sip if r[0]]
    assert methods[:1] == ["INVITE"] and methods.count("INVITE") == 3   # + hold, resume
    assert "BYE" in methods and "ACK" in methods and "PRACK" in methods
    requests = tshark(pcap, "stun.type == 0x0001", ["stun.att.username"])  # Binding request
    assert requests and all(":" in r[0] for r in requests)    # ICE usernames ufrag:ufrag
    assert tshark(pcap, "stun.type == 0x0101", ["stun.att.ipv4"])   # Binding success
    nominating = tshark(pcap, "stun.att.type == 0x0025", ["frame.number"])  # USE-CANDIDATE
    assert nominating, "no nominating check in the pcap"

    # HTML ladder: siplink + bob's SIP address + bob's media address; arrows both ways
    cells = _Cells()
    cells.feed(ladder.read_text())
    assert cells.headers[0] == "ms" and cells.headers[1] == "siplink" and len(cells.headers) == 4
    protos = {(r["data-proto"], r["data-dir"]) for r in cells.rows}
    assert protos == {("sip", "out"), ("sip", "in"), ("stun", "out"), ("stun", "in")}
    labels = [r["label"] for r in cells.rows]
    assert any("INVITE sip:bob@" in x for x in labels)
    assert any("Binding req USE-CAND" in x for x in labels)


def test_must_fail_scenario_names_its_failures(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    out = siplink("test", str(SCENARIOS / "must-fail.toml"), "--junit", str(report))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "2 calls, 0 passed, 2 failed" in out.stdout
    suite, cases = junit(report)
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    busy = cases["expects-200-gets-486"].find("failure")
    assert busy is not None and busy.get("message") == "expected status 200, got 486 Busy Here"
    quiet = cases["expects-dtmf-and-caller-bye"].find("failure")
    assert quiet is not None
    assert quiet.get("message") == "DTMF received '', expected '5'"
    assert "expected the caller to end the call, ended by callee" in (quiet.text or "")
    assert "FAIL expects-200-gets-486: expected status 200, got 486 Busy Here" in out.stdout


def test_scenario_against_sipp_at_a_rate() -> None:
    sc = SCENARIOS / "sipp-uas.toml"          # 6 calls, 3 at a time
    with SippUas() as uas:
        started = time.monotonic()
        out = siplink("test", str(sc), "--var", f"TARGET={uas.address}", "--rate", "20")
        took = time.monotonic() - started
        assert out.returncode == 0, out.stdout + out.stderr
        assert "6 calls, 6 passed, 0 failed" in out.stdout
        deadline = time.monotonic() + 5
        while uas.stats().get("SuccessfulCall(C)") != "6" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert uas.stats().get("SuccessfulCall(C)") == "6", uas.stats()
    # 6 calls of 0.5 s, 3 at a time, 20/s: two waves, far less than 6 x 0.5 s one by one
    assert took < 2.9 + 2.5, took


def test_ice_call_through_kamailio(tmp_path: Path) -> None:
    with Kamailio() as k:
        cfg = tmp_path / "siplink.toml"
        cfg.write_text(f"""
[[accounts]]
name = "alice"
user = "alice"
domain = "127.0.0.1"
password = "secret"
registrar = "sip:{k.address}"
{_proxy_key()} = "sip:{k.address}"
""")
        sc = tmp_path / "kam.toml"
        sc.write_text("""
[scenario]
name = "via-kamailio"
[[answerers]]
name = "bob"
registrar = "sip:${KAM}"
domain = "127.0.0.1"
password = "secret"
dtmf = "42"
[[calls]]
name = "alice-to-bob"
to = "sip:bob@${KAM}"
account = "alice"
duration_s = 2.0
dtmf = "7#"
[calls.expect]
status = 200
ice = true
candidate = "host"
media_s = 1.5
max_loss_pct = 2.0
dtmf = "42"
peer_dtmf = "7#"
""")
        pcap = tmp_path / "k.pcap"
        out = siplink("-v", "-c", str(cfg), "test", str(sc), "--var", f"KAM={k.address}",
                      "--pcap", str(pcap), "--register")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "1 calls, 1 passed" in out.stdout
        # -v shows the registrations before the call: bob (the answerer) and, for
        # --register, alice; each challenged (401) then accepted
        trace = out.stderr
        before_call = trace[:trace.index(f"-> {k.address} INVITE sip:bob@")]
        assert before_call.count(f"<- {k.address} 401 Unauthorized (REGISTER)") == 2
        assert before_call.count(f"<- {k.address} 200 OK (REGISTER)") == 2
        # the INVITE went to Kamailio, was challenged (407) and retried with credentials
        rows = tshark(pcap, "sip", ["sip.Method", "sip.Status-Code", "udp.dstport",
                                    "sip.Proxy-Authorization"])
        kport = str(k.port)
        invites = [r for r in rows if r[0] == "INVITE"]
        assert len(invites) == 2 and all(r[2] == kport for r in invites)
        assert not invites[0][3] and invites[1][3]
        assert any(r[1] == "407" for r in rows)
        assert tshark(pcap, "stun", ["stun.type.class"]), "no STUN in the pcap"


def test_bad_scenario_exit_2_names_key_and_line(tmp_path: Path) -> None:
    sc = tmp_path / "bad.toml"
    sc.write_text('[[calls]]\nname = "x"\nto = "sip:a@127.0.0.1:5"\n[calls.expect]\n'
                  'candidate = "relayed"\n')
    out = siplink("test", str(sc))
    assert out.returncode == 2
    assert f"{sc}:5" in out.stderr and "calls.expect.candidate" in out.stderr
    assert siplink("test", str(sc), "--rate", "0").returncode == 2
    assert siplink("test", str(tmp_path / "missing.toml")).returncode == 2


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    sc = tmp_path / "p.toml"
    sc.write_text('[scenario]\nrate = 50.0\nconcurrency = 4\n[[answerers]]\nname = "b"\n'
                  'ice = false\n[[calls]]\nto = "b"\nice = false\nduration_s = 0.1\n'
                  'repeat = 4\n')
    master, slave = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "siplink", "test", str(sc)],
                              stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                              timeout=60)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    tty = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, proc.stdout
    assert "\r[" in tty and "] 4/4 failed 0" in tty
    # and none when stderr is not a terminal
    out = siplink("test", str(sc))
    assert out.returncode == 0 and "] 4/4" not in out.stderr


def test_relay_only_calls_through_coturn_check_the_candidate_type(tmp_path: Path) -> None:
    from tests.peers.coturn import Coturn

    sc = tmp_path / "relay.toml"
    sc.write_text('[scenario]\nname = "relay"\n[[answerers]]\nname = "bob"\n'
                  '[[calls]]\nname = "relayed"\nto = "bob"\nduration_s = 1.5\n'
                  '[calls.expect]\ncandidate = "${TYPE}"\nmedia_s = 1.0\nmax_loss_pct = 5\n')
    with Coturn() as turn:
        cfg = tmp_path / "siplink.toml"
        cfg.write_text(f'[ice]\npolicy = "relay"\n[[ice.turn_servers]]\n'
                       f'uri = "turn:127.0.0.1:{turn.port}"\nusername = "alice"\n'
                       'password = "secret"\n')
        ok = siplink("-c", str(cfg), "test", str(sc), "--var", "TYPE=relay")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "relay->relay" in ok.stdout
        report = tmp_path / "r.xml"
        bad = siplink("-c", str(cfg), "test", str(sc), "--var", "TYPE=host", "--junit",
                      str(report))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    _, cases = junit(report)
    failure = cases["relayed"].find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith("selected pair is relay -> relay (c1 relay 127.0.0.1:")
    assert message.endswith("expected a host candidate")


def test_nothing_answers_exit_3(tmp_path: Path) -> None:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))                 # bound and silent: no answer, no ICMP
    try:
        sc = tmp_path / "silent.toml"
        sc.write_text(f'[scenario]\ntimeout_s = 1.5\n[[calls]]\nname = "silent"\n'
                      f'to = "sip:x@127.0.0.1:{s.getsockname()[1]}"\nice = false\n')
        report = tmp_path / "r.xml"
        out = siplink("test", str(sc), "--junit", str(report))
    finally:
        s.close()
    assert out.returncode == 3, out.stdout + out.stderr
    suite, cases = junit(report)
    assert suite.get("errors") == "1"
    err = cases["silent"].find("error")
    assert err is not None and err.get("message") == "error: no final response in 1.5 s"
