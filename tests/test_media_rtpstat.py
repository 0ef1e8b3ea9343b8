"""``siplink rtpstat``: RTP stream analysis of a pcap, checked against tshark's rtp,streams."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

from siplink.calltest.pcap import PcapWriter
from siplink.cli import main
from siplink.media.rtp import is_rtcp
from siplink.media.stream import MediaStream
from siplink.media.tone import ToneGenerator
from tests.peers.process import require_binary

ROOT = Path(__file__).resolve().parent.parent


def capture(path: Path) -> tuple[int, int]:
    """A 3 s call leg as received: 440 Hz PCMU, DTMF "5#", 1 packet in 15 lost, variable
    delay without reordering. Returns (packets written, packets lost)."""
    rng = random.Random(5)
    a = MediaStream(source=ToneGenerator(440.0), remote=("127.0.0.1", 4002),
                    rng=random.Random(6), rtcp_interval=1.0)
    t0 = 1_700_000_000.0
    a.start(t0)
    rows: list[tuple[float, bytes]] = []
    lost = 0
    for i in range(150):
        now = t0 + i * 0.02
        if i == 40:
            a.send_dtmf("5#")
        a.handle_timer(now)
        for data, _ in a.datagrams_to_send(now):
            if not is_rtcp(data) and i % 15 == 4:
                lost += 1
                continue
            rows.append((now + rng.uniform(0.005, 0.02), data))
    rows.sort()
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for t, data in rows:
            w.write_udp(data, ("127.0.0.1", 4000), ("127.0.0.1", 4002), t)
    return sum(1 for _, d in rows if not is_rtcp(d)), lost


def test_rtpstat_agrees_with_tshark(tmp_path, capsys):
    tshark = require_binary("tshark")
    path = tmp_path / "leg.pcap"
    packets, lost = capture(path)
    assert main(["rtpstat", str(path), "--json"]) == 0
    [s] = json.loads(capsys.readouterr().out)["streams"]
    assert s["packets"] == packets and s["lost"] == lost
    assert s["dtmf"] == "5#" and abs(s["tone_hz"] - 440.0) < 5.0
    assert sorted(s["payload_types"]) == [0, 101]
    out = subprocess.run([tshark, "-r", str(path), "-d", "udp.port==4002,rtp", "-q", "-z",
                          "rtp,streams"], capture_output=True, text=True, timeout=60).stdout
    [(kinds, pkts, tlost)] = re.findall(r"0x[0-9A-Fa-f]{8}\s+(.+?)\s+(\d+)\s+(-?\d+) \(", out)
    assert "g711U" in kinds and "rtpevent" in kinds
    assert int(pkts) == packets and int(tlost) == lost


def test_rtpstat_on_sipp_captures_and_errors(tmp_path, capsys):
    sipp = require_binary("sipp")
    share = Path(sipp).resolve().parent.parent / "share" / "sip-tester"
    assert main(["rtpstat", str(share / "dtmf_2833_star.pcap")]) == 0
    text = capsys.readouterr().out
    assert "0x0e05384e" in text and text.rstrip().endswith("*")
    # a file that is not a pcap: usage error 2; a pcap without RTP: 1
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    assert main(["rtpstat", str(bad)]) == 2
    empty = tmp_path / "empty.pcap"
    with open(empty, "wb") as f:
        PcapWriter(f).write_udp(b"hello", ("127.0.0.1", 1), ("127.0.0.1", 2), 0.0)
    assert main(["rtpstat", str(empty)]) == 1
    assert main(["rtpstat", str(tmp_path / "missing.pcap")]) == 2


def test_rtpstat_command_line(tmp_path):
    path = tmp_path / "leg.pcap"
    capture(path)
    r = subprocess.run([sys.executable, "-m", "siplink", "rtpstat", str(path), "--port", "4002"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "127.0.0.1:4000" in r.stdout and "5#" in r.stdout
    r = subprocess.run([sys.executable, "-m", "siplink", "rtpstat", str(path), "--port", "9"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1
