"""``python -m siplink demo --json`` as a subprocess: every field of the summary checked
against what the demo is known to do (alice plays 1000 Hz and sends "1234#", bob plays
440 Hz and sends "*90"), not against the demo's own verdict alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from siplink.calltest.demo import check_summary

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def test_demo_json_every_field() -> None:
    r = subprocess.run([sys.executable, "-m", "siplink", "demo", "--json", "--seconds", "2.5"],
                       capture_output=True, text=True, cwd=ROOT, timeout=50)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout          # one JSON object
    s = json.loads(lines[0])
    assert s["ok"] is True and s["errors"] == [] and s["error"] is None
    caller, callee = s["caller"], s["callee"]
    assert (caller["role"], callee["role"]) == ("controlling", "controlled")
    # selected pairs: host <-> host on loopback, and the two sides mirror each other
    for side in (caller, callee):
        pair = side["selected_pair"]
        assert pair["local"]["type"] == "host" and pair["remote"]["type"] == "host"
        assert _addr(pair["local"]["address"])[0] == "127.0.0.1"
        assert 0 < side["time_to_connected_ms"] < 2000
        assert side["checks_sent"] >= 1
    assert caller["selected_pair"]["local"]["address"] == \
        callee["selected_pair"]["remote"]["address"]
    assert caller["selected_pair"]["remote"]["address"] == \
        callee["selected_pair"]["local"]["address"]
    # RTP both ways: ~50 packets/s for ~2.5 s, what one sent the other received
    for me, peer in ((caller, callee), (callee, caller)):
        assert me["rtp"]["packets_sent"] > 80 and me["rtp"]["packets_received"] > 80
        assert me["rtp"]["codec"] == "PCMU"
        assert abs(me["rtp"]["packets_received"] - peer["rtp"]["packets_sent"]) <= 3
        assert me["rtp"]["packets_lost"] == 0
    # tones: each heard the other's
    assert caller["tone_sent_hz"] == 1000 and callee["tone_sent_hz"] == 440
    assert abs(caller["tone_detected_hz"] - 440) < 5
    assert abs(callee["tone_detected_hz"] - 1000) < 5
    # DTMF: exactly the digits the other sent
    assert (caller["dtmf_sent"], callee["dtmf_received"]) == ("1234#", "1234#")
    assert (callee["dtmf_sent"], caller["dtmf_received"]) == ("*90", "*90")
    # the SIP timeline is the call's ladder, in order
    msgs = [(e["from"], e["message"].split(" ")[0] if not e["message"].startswith("SIP")
             else e["message"]) for e in s["sip_timeline"]]
    flat = [f"{who}:{m}" for who, m in msgs]
    assert flat[0] == "alice:INVITE" and "alice:ACK" in flat and "alice:BYE" in flat
    assert any(f.startswith("bob:200") for f in flat)
    assert flat.index("alice:INVITE") < flat.index("alice:ACK") < flat.index("alice:BYE")
    times = [e["ms"] for e in s["sip_timeline"]]
    assert times == sorted(times)
    assert s["call_end"] == {"caller": "local-bye", "callee": "remote-bye"}
    assert 0 < s["invite_to_first_rtp_ms"] < 2000


def test_demo_text_output() -> None:
    r = subprocess.run([sys.executable, "-m", "siplink", "demo", "--seconds", "2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=50)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = r.stdout
    assert "SIP timeline" in out and "INVITE sip:bob@127.0.0.1:" in out
    assert out.count("selected pair      host 127.0.0.1:") == 2
    assert "heard 440.0 Hz" in out and "heard 1000.0 Hz" in out
    assert "received '1234#'" in out and "received '*90'" in out
    assert out.rstrip().endswith("demo OK")


def test_check_summary_flags_every_missing_or_wrong_field() -> None:
    good_side = {
        "selected_pair": {"local": {"type": "host", "address": "127.0.0.1:1"},
                          "remote": {"type": "host", "address": "127.0.0.1:2"}},
        "time_to_connected_ms": 20.0,
        "rtp": {"packets_sent": 10, "packets_received": 10},
    }
    caller = {**good_side, "tone_sent_hz": 1000.0, "tone_detected_hz": 440.2,
              "dtmf_sent": "12", "dtmf_received": "3"}
    callee = {**good_side, "tone_sent_hz": 440.0, "tone_detected_hz": 999.9,
              "dtmf_sent": "3", "dtmf_received": "12"}
    assert check_summary({"caller": caller, "callee": callee}) == []
    bad = [
        {**caller, "selected_pair": None},
        {**caller, "time_to_connected_ms": None},
        {**caller, "rtp": {"packets_sent": 10, "packets_received": 0}},
        {**caller, "tone_detected_hz": 430.0},
        {**caller, "tone_detected_hz": None},
        {**caller, "dtmf_received": "33"},
    ]
    for b in bad:
        errors = check_summary({"caller": b, "callee": callee})
        assert len(errors) == 1 and errors[0].startswith("caller:"), (b, errors)
    assert "callee: missing" in check_summary({"caller": caller, "callee": None})
    assert check_summary({"caller": caller, "callee": callee, "error": "boom"}) == ["boom"]


def test_run_demo_exit_code_when_a_check_fails() -> None:
    # run in a subprocess (the reactor runs once per process): make bob's DTMF go missing
    code = ("import sys; from siplink.media import icesession as m\n"
            "orig = m.IceMediaSession.send_dtmf\n"
            "m.IceMediaSession.send_dtmf = lambda self, d: orig(self, d) "
            "if self.transport.controlling else None\n"
            "from siplink.calltest.demo import run_demo\n"
            "sys.exit(run_demo(json=True, seconds=2))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=50)
    assert r.returncode == 1, (r.stdout, r.stderr)
    s = json.loads(r.stdout)
    assert s["ok"] is False
    assert s["errors"] == ["caller: DTMF received '', the peer sent '*90'"]
