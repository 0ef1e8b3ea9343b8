"""``siplink call`` (subprocess) to a real ICE agent: baresip in a network namespace.

baresip refuses loopback host candidates, so the test creates a namespace with a veth address
(198.51.100.1), runs baresip there (auto-answer, ICE, rtcp-mux, 440 Hz sine) and runs the
siplink command in the same namespace (``ip netns exec``) with a configuration that gathers on
that address. Proves: the CLI's ICE call completes on a host pair both sides agree on, RTP
flows both ways for the asked time without loss (--record holds baresip's 440 Hz), the exit code is 0 with every --expect-*,
and the call's pcap holds baresip's STUN checks and our SIP dialog.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.baresip import Baresip, wav_tone_hz
from tests.peers.netns import Lab, NetNs
from tests.peers.process import require_binary

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(120)]
IP = "198.51.100.1"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ns() -> Iterator[NetNs]:
    with Lab() as lab:
        n = lab.namespace("cli8")
        lab.veth(n, "v0", n, "v1", f"{IP}/24")
        yield n


def test_cli_ice_call_to_baresip(ns: NetNs, tmp_path: Path) -> None:
    cfg = tmp_path / "siplink.toml"
    cfg.write_text(f'[sip]\nlisten = "{IP}:0"\n[ice]\naddresses = ["{IP}"]\n')
    pcap = tmp_path / "b.pcap"
    wav = tmp_path / "heard.wav"
    with Baresip(ns, IP, 25200, user="bob", interface="v0", rtcp_mux=True) as b:
        argv = ns.exec_argv([sys.executable, "-m", "siplink", "-c", str(cfg), "call", b.uri,
                             "--duration", "3", "--expect-ice", "host", "--expect-media", "2",
                             "--max-loss", "2", "--dtmf", "123", "--json", "--pcap",
                             str(pcap), "--record", str(wav)])
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                             stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stdout + out.stderr + b.log()[-3000:]
        result = json.loads(out.stdout)
        assert result["ok"] and result["status"] == 200 and result["ended_by"] == "caller"
        ice = result["ice"]
        assert (ice["local_type"], ice["remote_type"]) == ("host", "host")
        b.wait_for(r"ice: audio: connectivity check is complete")
        b_raddr = b.wait_for(r"stream: mnat 'ice' connected: raddr (\S+)").group(1)
        local = ice["pair"].split()[2]
        assert b_raddr == local                    # both sides agree on the pair
        assert result["rtp"]["received"] >= 90 and result["rtp"]["loss_pct"] <= 2.0
        stats = b.wait_rtp_stats()                 # baresip's own count of our packets
        assert stats.rx_packets >= 90
    assert abs(wav_tone_hz(wav) - 440) < 10       # --record: we heard baresip's 440 Hz sine
    rows = subprocess.run([require_binary("tshark"), "-r", str(pcap), "-T", "fields",
                           "-e", "_ws.col.Protocol", "-e", "sip.Method", "-e", "stun.type"],
                          capture_output=True, text=True, timeout=60).stdout.splitlines()
    cols = [r.split("\t") for r in rows]
    assert [c[1] for c in cols if c[1]][:2] == ["INVITE", "ACK"]
    assert any(c[0] == "STUN" and c[2] == "0x0001" for c in cols)   # checks both ways
    assert any(c[0] == "STUN" and c[2] == "0x0101" for c in cols)
