"""RTP/RTCP codec round trips and RFC 3550 statistics (A.1 sequence, A.3 loss, A.8 jitter)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siplink.media.rtp import (
    SDES_CNAME,
    Bye,
    HeaderExtension,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    RtpError,
    RtpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    SourceStatistics,
    decode_rtcp,
    encode_rtcp,
    is_rtcp,
    ntp_from_unix,
    ntp_middle32,
    round_trip_time,
    unix_from_ntp,
)


def test_rtp_minimal_header_bytes():
    p = RtpPacket(payload_type=0, sequence=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304,
                  payload=b"\xff" * 4, marker=True)
    raw = p.encode()
    assert raw[:12] == bytes.fromhex("80 80 1234 deadbeef 01020304".replace(" ", ""))
    assert RtpPacket.decode(raw) == p
    assert not is_rtcp(raw)


def test_rtp_csrc_extension_padding_round_trip():
    p = RtpPacket(payload_type=101, sequence=65535, timestamp=1, ssrc=7, payload=b"abc",
                  csrc=(1, 2, 3), extension=HeaderExtension(0xBEDE, b"\x10\xaa\x00\x00"),
                  padding=5)
    raw = p.encode()
    assert raw[0] == 0x80 | 0x20 | 0x10 | 3
    assert len(raw) == 12 + 12 + 4 + 4 + 3 + 5 and raw[-1] == 5
    assert RtpPacket.decode(raw) == p


@pytest.mark.parametrize("raw", [
    b"", b"\x80\x00" + b"\x00" * 9, b"\x40" + b"\x00" * 11,               # short, version 1
    b"\x8f" + b"\x00" * 11 + b"\x00" * 20,                                 # 15 CSRCs, too short
    b"\x90" + b"\x00" * 11 + b"\x00\x00\x00\x05",                          # extension too long
    b"\xa0" + b"\x00" * 11 + b"\x00",                                      # zero padding count
    b"\xa0" + b"\x00" * 11 + b"\x09",                                      # padding > packet
])
def test_bad_rtp_is_typed_error(raw):
    with pytest.raises(RtpError):
        RtpPacket.decode(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_decoders_only_raise_rtp_error(data):
    for f in (RtpPacket.decode, decode_rtcp):
        try:
            f(data)
        except RtpError:
            pass


@settings(max_examples=200, deadline=None)
@given(pt=st.integers(0, 127), seq=st.integers(0, 65535), ts=st.integers(0, 2**32 - 1),
       ssrc=st.integers(0, 2**32 - 1), payload=st.binary(max_size=200), marker=st.booleans(),
       csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15), pad=st.integers(0, 255))
def test_rtp_round_trip_property(pt, seq, ts, ssrc, payload, marker, csrc, pad):
    p = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrc), None, pad)
    assert RtpPacket.decode(p.encode()) == p


def test_rtcp_compound_round_trip():
    rb = ReportBlock(ssrc=0xAABBCCDD, fraction_lost=25, packets_lost=-3,
                     highest_sequence=70000, jitter=42, lsr=0x12345678, dlsr=65536)
    sr = SenderReport(1, ntp_from_unix(1_700_000_000.25), 160, 10, 1600, (rb,))
    rr = ReceiverReport(2, (rb, rb))
    sdes = SourceDescription((SdesChunk(1, ((SDES_CNAME, b"alice@host"),)),
                              SdesChunk(2, ((SDES_CNAME, b"b"), (6, b"siplink")))))
    bye = Bye((1, 2), "call ended")
    app = RtcpUnknown(204, 3, b"name" + b"\x00" * 4)
    raw = encode_rtcp([sr, rr, sdes, bye, app])
    assert is_rtcp(raw)
    assert len(raw) % 4 == 0
    assert decode_rtcp(raw) == [sr, rr, sdes, bye, app]
    assert decode_rtcp(raw)[2].chunks[0].cname == "alice@host"
    # Each packet's length field covers exactly its words
    assert struct.unpack_from("!H", raw, 2)[0] == (28 + 24) // 4 - 1


def test_rtcp_padding_only_on_last_packet():
    rr = ReceiverReport(2).encode()
    padded = bytes([rr[0] | 0x20]) + rr[1:3] + bytes([rr[3] + 1]) + rr[4:] + b"\x00\x00\x00\x04"
    assert decode_rtcp(padded) == [ReceiverReport(2)]
    with pytest.raises(RtpError):
        decode_rtcp(padded + rr)


@pytest.mark.parametrize("raw", [
    b"\x80\xc9", b"\x80\xc9\x00\x05\x00\x00\x00\x01", b"\x40\xc9\x00\x00",
    b"\x81\xc9\x00\x01\x00\x00\x00\x01",           # RR count 1 without a block
    b"\x81\xca\x00\x01\x00\x00\x00\x01",           # SDES chunk not terminated
    b"\x81\xcb\x00\x01\x00\x00\x00\x01\x00",       # trailing garbage
])
def test_bad_rtcp_is_typed_error(raw):
    with pytest.raises(RtpError):
        decode_rtcp(raw)


def test_ntp_conversions():
    t = 1_700_000_000.5
    ntp = ntp_from_unix(t)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800 and ntp & 0xFFFFFFFF == 0x80000000
    assert abs(unix_from_ntp(ntp) - t) < 1e-6
    assert ntp_middle32(ntp) == ((ntp >> 16) & 0xFFFFFFFF)


# ---------------------------------------------------------------------------- statistics


def feed(stats: SourceStatistics, seqs, *, ptime=0.02, ts_step=160):
    base = seqs[0]
    for i, s in enumerate(seqs):
        stats.update(s & 0xFFFF, ((s - base) * ts_step) & 0xFFFFFFFF, i * ptime)


def test_in_order_no_loss_after_probation():
    st_ = SourceStatistics(1, 8000)
    feed(st_, list(range(100, 200)))
    # the first packet is in probation (§A.1, MIN_SEQUENTIAL=2): base is the second
    assert st_.received == 99 and st_.expected == 99 and st_.lost == 0
    rb = st_.report_block(2.0)
    assert rb.fraction_lost == 0 and rb.packets_lost == 0 and rb.highest_sequence == 199
    assert rb.jitter == 0


def test_loss_counted_and_fraction_per_interval():
    st_ = SourceStatistics(1, 8000, probation=0)
    seqs = [s for s in range(0, 100) if s % 10 != 5]  # 10 lost of 100
    feed(st_, seqs)
    assert st_.expected == 100 and st_.received == 90 and st_.lost == 10
    rb = st_.report_block(1.0)
    assert rb.fraction_lost == (10 << 8) // 100 == 25
    feed(st_, list(range(100, 150)))   # next interval: no loss, fraction back to 0
    rb2 = st_.report_block(2.0)
    assert rb2.fraction_lost == 0 and rb2.packets_lost == 10


def test_reordering_is_not_loss_and_duplicates_make_loss_negative():
    st_ = SourceStatistics(1, 8000, probation=0)
    feed(st_, [0, 1, 3, 2, 4, 5])
    assert st_.lost == 0 and st_.max_seq == 5
    feed(st_, [6, 6, 6, 7])
    assert st_.lost == -2  # RFC 3550 §6.4.1: duplicates are counted as received
    assert st_.report_block(1.0).fraction_lost == 0


def test_sequence_wrap_extends_highest():
    st_ = SourceStatistics(1, 8000, probation=0)
    feed(st_, list(range(65530, 65546)))
    assert st_.cycles == 65536
    assert st_.extended_max == 65545 and st_.lost == 0


def test_large_jump_needs_two_sequential_packets():
    st_ = SourceStatistics(1, 8000, probation=0)
    feed(st_, [10, 11, 12])
    assert st_.update(30000, 0, 1.0) is False      # one wild packet: ignored
    assert st_.max_seq == 12
    assert st_.update(30001, 160, 1.02) is True    # the next in sequence: source restarted
    assert st_.base_seq == 30001 and st_.received == 1


def test_probation_resets_on_misordered_start():
    st_ = SourceStatistics(1, 8000)
    assert st_.update(5, 0, 0.0) is False
    assert st_.update(9, 0, 0.0) is False   # not sequential: probation restarts
    assert st_.update(10, 0, 0.0) is True
    assert st_.received == 1 and st_.base_seq == 10


def test_jitter_formula_a8():
    st_ = SourceStatistics(1, 8000, probation=0)
    # packets sent every 160 ticks; arrivals deviate: transit differences D = +80, -80, 0, ...
    arrivals = [0.0, 0.03, 0.04, 0.06]       # in seconds: 0, 240, 320, 480 ticks
    timestamps = [0, 160, 320, 480]
    expected = 0.0
    prev_transit = None
    for i, (a, ts) in enumerate(zip(arrivals, timestamps, strict=True)):
        st_.update(i, ts, a)
        transit = round(a * 8000) - ts
        if prev_transit is not None:
            expected += (abs(transit - prev_transit) - expected) / 16
        prev_transit = transit
    assert st_.jitter == pytest.approx(expected)
    # by hand: transits 0, 80, 0, 0 -> |D| = 80, 80, 0 -> J = 5, 9.6875, 9.08203125
    assert st_.jitter == pytest.approx(9.08203125)
    assert st_.report_block(1.0).jitter == int(expected)


def test_lsr_dlsr_and_rtt():
    st_ = SourceStatistics(1, 8000, probation=0)
    sr_ntp = ntp_from_unix(1000.0)
    st_.sender_report_received(sr_ntp, arrival=1000.1)
    rb = st_.report_block(now=1000.6)          # we hold the SR for 0.5 s before reporting
    assert rb.lsr == ntp_middle32(sr_ntp)
    assert rb.dlsr == int(0.5 * 65536)
    # the SR sender gets the RR back at 1000.8: RTT = 0.8 - 0.5 = 0.3
    assert round_trip_time(rb, 1000.8) == pytest.approx(0.3, abs=1e-3)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0), 5.0) is None


def test_rtcp_interval_rfc3550_a7():
    from siplink.media.rtp import rtcp_interval

    e_comp = 2.71828 - 1.5
    # two members, small reports: the minimum dominates (2.5 s initially, 5 s after)
    kw = dict(members=2, senders=2, rtcp_bw=500.0, we_sent=True, avg_rtcp_size=100.0)
    assert rtcp_interval(**kw, initial=True, random_fraction=0.5) == pytest.approx(2.5 / e_comp)
    assert rtcp_interval(**kw, initial=False, random_fraction=0.0) == pytest.approx(2.5 / e_comp)
    assert rtcp_interval(**kw, initial=False, random_fraction=0.999) == pytest.approx(
        5 * 1.499 / e_comp)
    # a large session: 1000 receivers share 75% of the RTCP bandwidth
    t = rtcp_interval(members=1000, senders=1, rtcp_bw=500.0, we_sent=False,
                      avg_rtcp_size=100.0, initial=False, random_fraction=0.5)
    assert t == pytest.approx(100.0 * 999 / (500.0 * 0.75) / e_comp)
    # ... while the one sender gets 25% to itself
    t = rtcp_interval(members=1000, senders=1, rtcp_bw=500.0, we_sent=True,
                      avg_rtcp_size=100.0, initial=False, random_fraction=0.5)
    assert t == pytest.approx(5.0 / e_comp)   # 100 * 1 / 125 = 0.8 s < Tmin


def test_rtt_rounding_below_zero_is_zero():
    sr_ntp = ntp_from_unix(1000.0)
    block = ReportBlock(1, 0, 0, 0, 0, ntp_middle32(sr_ntp), dlsr=int(0.0002 * 65536) + 3)
    assert round_trip_time(block, 1000.0002) == 0.0
    late = ReportBlock(1, 0, 0, 0, 0, ntp_middle32(sr_ntp), dlsr=65536)   # 1 s "in the future"
    assert round_trip_time(late, 1000.0) is None
