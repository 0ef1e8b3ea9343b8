"""Packets from another implementation: the RFC 2833/4733 DTMF and G.711 A-law captures
shipped with SIPp (/usr/share/sip-tester), read with our pcap reader and fed to our
receivers; tshark, an independent decoder, confirms what is in them."""

from __future__ import annotations

import random
import subprocess
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siplink.calltest.pcap import PcapError, read_pcap
from siplink.media.dtmf import DtmfReceiver, TelephoneEvent
from siplink.media.g711 import PCMA
from siplink.media.rtp import RtpPacket
from siplink.media.stream import MediaStream
from tests.peers.process import require_binary

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

NAMES = {**{str(d): str(d) for d in range(10)}, "star": "*", "pound": "#"}


def sipp_pcap(name: str) -> Path:
    sipp = require_binary("sipp")
    base = Path(sipp).resolve().parent.parent / "share" / "sip-tester"
    path = base / name
    if not path.exists():
        pytest.fail(f"SIPp's capture {path} is missing (reinstall sip-tester)")
    return path


@pytest.mark.parametrize("name", sorted(NAMES))
def test_sipp_rfc2833_captures_decode_to_their_digit(name):
    data = read_pcap(sipp_pcap(f"dtmf_2833_{name}.pcap").read_bytes())
    assert len(data) == 10
    pkts = [RtpPacket.decode(d.payload) for d in data]
    assert {p.payload_type for p in pkts} == {101}
    events = [TelephoneEvent.decode(p.payload) for p in pkts]
    assert events[-1].end and not events[0].end and pkts[0].marker
    rx = DtmfReceiver()
    digits = [dg for p in pkts for dg in rx.receive(p.timestamp, p.payload, p.ssrc)]
    assert [dg.digit for dg in digits] == [NAMES[name]]
    assert digits[0].duration == events[-1].duration == 2240


def test_sipp_dtmf_capture_through_media_stream_and_tshark():
    tshark = require_binary("tshark")
    path = sipp_pcap("dtmf_2833_pound.pcap")
    r = subprocess.run([tshark, "-r", str(path), "-d", "udp.port==10000,rtp", "-T", "fields",
                        "-e", "rtpevent.event_id"], capture_output=True, text=True, timeout=60)
    assert set(r.stdout.split()) == {"11"}      # tshark: event 11 = '#'
    m = MediaStream(rng=random.Random(1))
    m.start(0.0)
    for d in read_pcap(path.read_bytes()):
        m.receive(d.payload, d.time)
    assert m.digits_received == "#"
    st_ = m.stats()
    assert st_.packets_received == 10
    # SIPp resends the end packet with the same sequence number: RFC 3550 counts duplicates,
    # so the cumulative loss goes negative (§6.4.1)
    assert st_.packets_lost == -2


def test_sipp_g711a_capture_decodes_like_audioop():
    data = read_pcap(sipp_pcap("g711a.pcap").read_bytes())
    pkts = [RtpPacket.decode(d.payload) for d in data]
    assert len(pkts) == 236 and {p.payload_type for p in pkts} == {8}
    m = MediaStream(codec=PCMA, rng=random.Random(2))
    m.start(0.0)
    for d in data:
        m.receive(d.payload, d.time)
    st_ = m.stats()
    assert st_.packets_received == 236 and st_.packets_lost == 0
    expected = b"".join(audioop.alaw2lin(p.payload, 2) for p in pkts)
    assert bytes(m.recording) == expected
    assert st_.jitter < 0.005     # captured at a steady 30 ms pace


def test_read_pcap_rejects_bad_files():
    for bad in (b"", b"\x0a\x0d\x0d\x0a" + bytes(40), b"\xd4\xc3\xb2\xa1" + bytes(16) + b"\x99\x00\x00\x00"):
        with pytest.raises(PcapError):
            read_pcap(bad)
    good = sipp_pcap("g711a.pcap").read_bytes()
    with pytest.raises(PcapError):
        read_pcap(good[:-7])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_read_pcap_only_raises_pcap_error(tail):
    import struct

    datas = [tail]
    for link in (1, 101, 113, 0):
        header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link)
        record = struct.pack("<IIII", 0, 0, len(tail), len(tail)) + tail
        datas += [header + tail, header + record, header + record + record[:5]]
        # also as an IPv4/UDP frame with the fuzz as its body
        ip = b"\x45" + bytes(8) + b"\x11" + bytes(10) + tail
        eth = bytes(12) + b"\x08\x00" + ip if link == 1 else ip
        datas.append(header + struct.pack("<IIII", 0, 0, len(eth), len(eth)) + eth)
    for data in datas:
        try:
            read_pcap(data)
        except PcapError:
            pass
