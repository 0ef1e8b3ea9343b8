"""siplink.calltest.trace_export: a trace's SIP and STUN packets as a pcap that tshark decodes, read
back with siplink.calltest.pcap too; RTP and events left out unless asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from siplink.calltest.pcap import read_pcap
from siplink.calltest.trace_export import export_pcap
from tests.peers.process import require_binary
from tests.test_ladder import BOB, ME, _call


def test_pcap_holds_sip_and_stun_with_the_right_addresses(tmp_path: Path) -> None:
    records = _call("c1", 1_700_000_000.0)
    path = tmp_path / "t.pcap"
    n = export_pcap(records, path, sip_local=ME)
    assert n == 4                                    # INVITE, 200, check, response
    packets = read_pcap(path.read_bytes())
    assert [(p.src, p.dst) for p in packets[:2]] == [(ME, BOB), (BOB, ME)]
    assert packets[0].payload == records[0].raw
    assert abs(packets[0].time - 1_700_000_000.0) < 1e-5
    out = subprocess.run([require_binary("tshark"), "-r", str(path), "-T", "fields",
                          "-e", "_ws.col.Protocol", "-e", "sip.Method", "-e", "stun.type"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [ln.split("\t") for ln in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["SIP", "SIP", "STUN", "STUN"]
    assert rows[0][1] == "INVITE" and rows[2][2] == "0x0001" and rows[3][2] == "0x0101"


def test_rtp_only_when_asked(tmp_path: Path) -> None:
    records = _call("c1", 10.0)
    assert export_pcap(records, tmp_path / "a.pcap", protocols={"rtp"}) == 1
    assert export_pcap([], tmp_path / "b.pcap") == 0
    assert read_pcap((tmp_path / "b.pcap").read_bytes()) == []
