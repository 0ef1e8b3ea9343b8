"""The pcap writer, and our RFC 3550 statistics against Wireshark's RTP stream analysis.

tshark is the independent reference here: it decodes the pcap we write (checksums verified)
and its ``-z rtp,streams`` tap computes loss and jitter for the same arrivals our
MediaStream saw.
"""

from __future__ import annotations

import io
import random
import re
import struct
import subprocess

import pytest

from ice.trace import TraceRecord
from siplink.calltest.pcap import LINKTYPE_RAW, PcapWriter, udp_packet, write_trace
from siplink.media.rtp import RtpPacket, is_rtcp
from siplink.media.stream import MediaStream
from siplink.media.tone import ToneGenerator
from tests.peers.process import require_binary


def tshark(*args: str) -> str:
    exe = require_binary("tshark")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_pcap_header_and_record_layout():
    buf = io.BytesIO()
    w = PcapWriter(buf)
    w.write_udp(b"hello", ("127.0.0.1", 1000), ("127.0.0.2", 2000), 12.5)
    raw = buf.getvalue()
    magic, major, minor, _, _, snap, link = struct.unpack_from("<IHHiIII", raw)
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, LINKTYPE_RAW)
    sec, usec, incl, orig = struct.unpack_from("<IIII", raw, 24)
    assert (sec, usec, incl, orig) == (12, 500000, 20 + 8 + 5, 33)
    assert raw[40] == 0x45 and raw[-5:] == b"hello"
    with pytest.raises(ValueError):
        udp_packet(b"", ("127.0.0.1", 1), ("::1", 2))


def test_tshark_verifies_checksums_ipv4_and_ipv6(tmp_path):
    path = tmp_path / "t.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f)
        w.write_udp(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), ("127.0.0.1", 3478),
                    ("127.0.0.1", 5000), 1.0)
        w.write_udp(b"odd-length payload", ("::1", 5060), ("::1", 5062), 2.0)
    out = tshark("-r", str(path), "-o", "udp.check_checksum:TRUE", "-o",
                 "ip.check_checksum:TRUE", "-T", "fields", "-e", "udp.checksum.status",
                 "-e", "ipv6.src", "-e", "stun.type")
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == ["1", "1"]        # 1 = Good
    assert rows[1][1] == "::1" and rows[0][2] == "0x0001"


def test_write_trace_exports_raw_records(tmp_path):
    recs = [
        TraceRecord(1.0, "out", "INVITE", local=("127.0.0.1", 5060), remote=("127.0.0.1", 5070),
                    protocol="sip", raw=b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"),
        TraceRecord(1.1, "event", "state"),
        TraceRecord(1.2, "in", "200", local=("127.0.0.1", 5060), remote=("127.0.0.1", 5070),
                    protocol="sip", raw=b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]
    path = tmp_path / "sip.pcap"
    with open(path, "wb") as f:
        assert write_trace(recs, f) == 2
    out = tshark("-r", str(path), "-Y", "sip", "-T", "fields", "-e", "udp.srcport",
                 "-e", "udp.dstport", "-e", "sip.Method", "-e", "sip.Status-Code")
    assert out.split("\n")[:2] == ["5060\t5070\tOPTIONS\t", "5070\t5060\t\t200"]


def test_loss_and_jitter_agree_with_wireshark_rtp_analysis(tmp_path):
    rng = random.Random(11)
    a = MediaStream(source=ToneGenerator(440.0), remote=("127.0.0.1", 4002),
                    rng=random.Random(1), rtcp_interval=60.0)
    b = MediaStream(remote=("127.0.0.1", 4000), rng=random.Random(2))
    t0 = 1_700_000_000.0
    a.start(t0)
    b.start(t0)
    arrivals: list[tuple[float, bytes]] = []
    dropped = 0
    for i in range(250):
        now = t0 + i * 0.02
        a.handle_timer(now)
        for data, _ in a.datagrams_to_send(now):
            if is_rtcp(data):
                continue
            if i % 17 == 5 and 0 < i < 240:
                dropped += 1
                continue
            # delay varies by less than the packet interval: no reordering
            arrivals.append((now + rng.uniform(0.010, 0.028), data))
    arrivals.sort()
    jitters = []
    for t, data in arrivals:
        b.receive(data, t)
        jitters.append(b.stats().jitter * 1000)
    path = tmp_path / "rx.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for t, data in arrivals:
            w.write_udp(data, ("127.0.0.1", 4000), ("127.0.0.1", 4002), t)
    out = tshark("-r", str(path), "-d", "udp.port==4002,rtp", "-q", "-z", "rtp,streams")
    row = next(line for line in out.splitlines() if "0x" in line and "g711U" in line)
    m = re.search(r"g711U\s+(\d+)\s+(-?\d+)\s+\(.*?\)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)",
                  row)
    assert m, row
    pkts, lost = int(m.group(1)), int(m.group(2))
    max_jitter, mean_jitter = float(m.group(8)), float(m.group(7))
    st = b.stats()
    assert pkts == st.packets_received == len(arrivals)
    assert lost == st.packets_lost == dropped
    assert int(RtpPacket.decode(arrivals[0][1]).ssrc) == a.ssrc
    # Wireshark's jitter uses exact arrival times; ours timestamp units (125 us)
    assert max(jitters) == pytest.approx(max_jitter, abs=0.25)
    assert sum(jitters) / len(jitters) == pytest.approx(mean_jitter, abs=0.25)
    assert max_jitter > 1.0
