"""``siplink call`` and ``siplink register`` driven as a user would (subprocess), against real
peers: SIPp's built-in UAS (no ICE) and Kamailio (registrar with digest).

What each test proves:
- a plain call (``--no-ice``) to SIPp is answered, held ``--duration``, ended by our BYE, and
  SIPp counts one successful call; ``--pcap`` holds the INVITE/200/ACK/BYE/200 as tshark sees
  them and ``--json`` reports the same;
- an ICE call to SIPp (which answers without ICE) fails with exit 1 and says why, and BYEs;
- exit codes 2 (bad URI/flag) and 3 (nobody answers);
- ``siplink register`` registers with digest at Kamailio (the 200 lists our contact), refuses
  with exit 1 on a wrong password, and ``--unregister`` removes the binding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.peers.kamailio import Kamailio
from tests.peers.process import free_port, require_binary
from tests.peers.sipp import SippUas

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]


def siplink(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siplink", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def tshark_fields(pcap: Path, fields: list[str], display: str = "") -> list[list[str]]:
    tshark = require_binary("tshark")
    argv = [tshark, "-r", str(pcap), "-T", "fields", "-E", "separator=|"]
    if display:
        argv += ["-Y", display]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.split("|") for line in out.stdout.splitlines() if line]


@pytest.fixture
def sipp_uas() -> SippUas:
    with SippUas() as uas:
        yield uas


def test_call_sipp_without_ice(sipp_uas: SippUas, tmp_path: Path) -> None:
    pcap = tmp_path / "call.pcap"
    out = siplink("call", f"sip:service@{sipp_uas.address}", "--no-ice", "--duration", "1",
                  "--pcap", str(pcap), "--json", "--expect-within", "2000")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and result["status"] == 200 and result["ended_by"] == "caller"
    assert 1.0 <= result["duration_s"] < 5
    # what SIPp saw: one call, completed
    deadline = time.monotonic() + 5       # SIPp writes its statistics once a second
    while sipp_uas.stats().get("SuccessfulCall(C)") != "1" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sipp_uas.stats().get("SuccessfulCall(C)") == "1", sipp_uas.stats()
    assert sipp_uas.stats().get("FailedCall(C)") == "0"
    msgs = sipp_uas.messages()
    assert "INVITE sip:service@" in msgs and "BYE sip:" in msgs
    assert result["call_id"] in msgs
    # the pcap decodes as SIP: our whole dialog, in order
    rows = tshark_fields(pcap, ["sip.Method", "sip.Status-Code", "sip.CSeq.method",
                                "sip.Call-ID"], "sip")
    seen = [(m or f"{s} {c}") for m, s, c, _ in rows]
    assert [x for x in seen if not x.startswith("100 ")] == [
        "INVITE", "180 INVITE", "200 INVITE", "ACK", "BYE", "200 BYE"], seen
    assert {r[3] for r in rows} == {result["call_id"]}


def test_ice_expectation_against_a_peer_without_ice_fails(sipp_uas: SippUas) -> None:
    # The peer answers without ICE: the call proceeds with plain RTP (RFC 8839 fallback), so an
    # expectation that ICE selected a host pair is not met, and the report says why.
    out = siplink("call", f"sip:service@{sipp_uas.address}", "--duration", "1",
                  "--expect-ice", "host", "-v")
    assert out.returncode == 1, out.stdout + out.stderr
    # -v (after the subcommand too): the live trace on stderr
    assert f"sip  -> {sipp_uas.address} INVITE sip:service@" in out.stderr
    assert f"sip  <- {sipp_uas.address} 200 OK (INVITE)" in out.stderr
    assert "ICE not used: the peer answered without ICE" in out.stdout
    assert "FAIL: ICE not used: the peer answered without ICE (media is plain RTP)" in out.stdout
    assert "hint: the peer does not do ICE" in out.stdout
    assert "pair \n" not in out.stdout          # no empty "selected pair" line
    # the text ladder shows the call: INVITE out, 200 in, our BYE
    lines = out.stdout.splitlines()
    invite = next(i for i, ln in enumerate(lines) if "INVITE sip:service@" in ln)
    assert "->|" in lines[invite] or ">|" in lines[invite]
    assert any("<-" in ln and "200 OK (INVITE)" in ln for ln in lines)
    assert any("BYE sip:" in ln and ln.rstrip().endswith(">|") for ln in lines)


def test_call_to_a_peer_without_ice_falls_back_to_plain_rtp(sipp_uas: SippUas) -> None:
    out = siplink("call", f"sip:service@{sipp_uas.address}", "--duration", "1", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and result["status"] == 200
    assert result["ice"]["used"] is False and result["ice"]["state"] == "not used"
    assert result["rtp"]["sent"] >= 40        # 1 s at 20 ms ptime, straight to SIPp's m= port
    assert result["failures"] == []


def test_usage_and_timeout_exit_codes(tmp_path: Path) -> None:
    assert siplink("call", "not a uri").returncode == 2
    assert siplink("call", "sip:a@127.0.0.1:5", "--no-ice", "--dtmf", "1").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[ice]\nta_ms = 1\n")
    out = siplink("-c", str(bad), "call", "sip:a@127.0.0.1:5")
    assert out.returncode == 2 and "ice.ta_ms" in out.stderr and ":2" in out.stderr
    # a port where nothing listens, and nothing answers: exit 3 within --timeout
    silent = free_port()
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", silent))            # bound and silent: no ICMP, no answer
    try:
        out = siplink("call", f"sip:nobody@127.0.0.1:{silent}", "--no-ice", "--timeout", "2")
    finally:
        s.close()
    assert out.returncode == 3, out.stdout + out.stderr
    assert "no final response" in out.stdout


def test_help_explains_flags() -> None:
    for cmd, flags in (("call", ["--duration", "--dtmf", "--expect-ice", "--no-ice",
                                 "--pcap", "--ladder"]),
                       ("register", ["--account", "--unregister", "--stay"]),
                       ("test", ["--rate", "--concurrency", "--junit", "--ladder", "--pcap",
                                 "--var"])):
        out = siplink(cmd, "--help")
        assert out.returncode == 0
        for f in flags:
            assert f in out.stdout, (cmd, f)
        assert "exit" in out.stdout.lower()


@pytest.fixture(scope="module")
def kamailio() -> Kamailio:
    with Kamailio() as k:
        yield k


def test_register_to_kamailio(kamailio: Kamailio) -> None:
    port = free_port()
    base = ["register", "--user", "carol", "--domain", "127.0.0.1", "--registrar",
            f"sip:{kamailio.address}", "--listen", f"127.0.0.1:{port}"]
    out = siplink("-v", *base, "--password", "secret", "--expires", "300")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "registered sip:carol@127.0.0.1" in out.stdout and "for 300 s" in out.stdout
    assert f"binding <sip:carol@127.0.0.1:{port}>;expires=300" in out.stdout
    # -v printed the exchange: the challenge, then the authorized REGISTER
    trace = out.stderr
    assert trace.index("<- 127.0.0.1") < trace.index("401 Unauthorized") < \
        trace.rindex("200 OK")
    # wrong password: refused, exit 1
    out = siplink(*base, "--password", "wrong")
    assert out.returncode == 1 and "401" in out.stderr
    # unregister the same contact: Kamailio answers 200 with no binding left for it
    out = siplink(*base, "--password", "secret", "--unregister")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "unregistered sip:carol@127.0.0.1" in out.stdout and ": 200 OK" in out.stdout
    # no registrar at all is a usage error
    assert siplink("register", "--user", "x").returncode == 2
