"""MediaStream: two streams back to back in virtual time (twisted.internet.task.Clock)."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import wave

import pytest
from twisted.internet import task

from ice.trace import Trace
from siplink.calltest.pcap import PcapWriter
from siplink.media.g711 import PCMA, PCMU
from siplink.media.rtp import RtpPacket, decode_rtcp, is_rtcp
from siplink.media.stream import (
    ByeReceived,
    DtmfReceived,
    MediaError,
    MediaStream,
    RemoteReport,
    WavSource,
    wav_bytes,
)
from siplink.media.tone import ToneGenerator, detect_frequency, sine
from tests.peers.process import require_binary

A_ADDR = ("127.0.0.1", 40000)
B_ADDR = ("127.0.0.1", 40002)


class Wire:
    """Drives two streams on a Clock like the Twisted driver would: one callLater per stream
    armed at get_timer(), datagrams delivered after ``delay`` unless ``drop`` says so."""

    def __init__(self, a: MediaStream, b: MediaStream, *, delay=lambda: 0.03, drop=None):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000.0)  # a plausible wall-clock epoch for NTP fields
        self.a, self.b = a, b
        self.delay = delay
        self.drop = drop or (lambda sender, data: False)
        self.sent: dict[int, list[tuple[float, bytes, tuple[str, int]]]] = {id(a): [], id(b): []}
        self.events: dict[int, list] = {id(a): [], id(b): []}
        self._calls: dict[int, object] = {}

    def peer(self, s):
        return self.b if s is self.a else self.a

    def addr(self, s):
        return A_ADDR if s is self.a else B_ADDR

    def start(self):
        now = self.clock.seconds()
        for s in (self.a, self.b):
            s.start(now)
            self.arm(s)

    def arm(self, s):
        old = self._calls.pop(id(s), None)
        if old is not None and old.active():
            old.cancel()
        t = s.get_timer()
        if t is not None:
            self._calls[id(s)] = self.clock.callLater(max(0.0, t - self.clock.seconds()),
                                                      self.fire, s)

    def fire(self, s):
        s.handle_timer(self.clock.seconds())
        self.flush(s)
        self.arm(s)

    def flush(self, s):
        now = self.clock.seconds()
        for data, addr in s.datagrams_to_send(now):
            self.sent[id(s)].append((now, data, addr))
            if self.drop(s, data):
                continue
            self.clock.callLater(self.delay(), self.deliver, self.peer(s), data, self.addr(s))

    def deliver(self, s, data, src):
        s.receive(data, self.clock.seconds(), addr=src)
        while (ev := s.next_event()) is not None:
            self.events[id(s)].append(ev)

    def run(self, seconds: float, step: float = 0.005):
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.clock.advance(step)

    def stop(self, s, reason="bye"):
        s.stop(self.clock.seconds(), reason)
        self.flush(s)
        self.arm(s)


def pair(**kw):
    rng = random.Random(7)
    a = MediaStream(source=ToneGenerator(440.0), remote=B_ADDR, rtcp_interval=1.0,
                    rng=random.Random(rng.random()), cname="a@test", **kw)
    b = MediaStream(source=ToneGenerator(1000.0), remote=A_ADDR, rtcp_interval=1.0,
                    rng=random.Random(rng.random()), cname="b@test", **kw)
    return a, b


def rtp_seqs(sent, pt=None):
    out = []
    for _, data, _ in sent:
        if not is_rtcp(data):
            p = RtpPacket.decode(data)
            if pt is None or p.payload_type == pt:
                out.append(p)
    return out


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=["PCMU", "PCMA"])
def test_three_seconds_of_tone_and_dtmf_back_to_back(codec):
    a, b = pair(codec=codec)
    w = Wire(a, b)
    w.start()
    w.run(1.0)
    a.send_dtmf("123#")
    w.run(2.0)
    sa, sb = a.stats(), b.stats()
    assert 149 <= sa.packets_sent <= 151 and 149 <= sb.packets_sent <= 151
    assert sb.packets_received >= sa.packets_sent - 2      # the last ones are in flight
    assert sa.packets_received >= sb.packets_sent - 2
    assert sa.packets_lost == 0 and sb.packets_lost == 0
    t0 = 1_700_000_000.0
    assert sa.first_sent_at == t0 and sb.first_received_at == pytest.approx(t0 + 0.03)
    assert b.digits_received == "123#" and sb.dtmf_received == "123#"
    assert [e.digit for e in w.events[id(b)] if isinstance(e, DtmfReceived)] == list("123#")
    assert sa.dtmf_sent == 4 and a.digits_received == ""
    fb, fa = b.detected_frequency(), a.detected_frequency()
    assert fb is not None and abs(fb - 440.0) < 5.0, fb
    assert fa is not None and abs(fa - 1000.0) < 5.0, fa
    # RTCP flowed both ways: reports about our own stream, RTT about twice the one-way delay
    assert sa.rtcp_sent >= 2 and sb.rtcp_received >= 2
    assert sa.remote_packets_lost == 0 and sa.remote_fraction_lost == 0.0
    assert sa.rtt is not None and sa.rtt == pytest.approx(0.06, abs=0.002)
    assert sa.octets_sent == sum(len(p.payload) for p in rtp_seqs(w.sent[id(a)]))
    # DTMF packets: 4 events x 7 packets, marker on the first of each, three ends per event
    dt = rtp_seqs(w.sent[id(a)], pt=101)
    assert len(dt) == 28 and sum(p.marker for p in dt) == 4
    assert len({p.timestamp for p in dt}) == 4
    # the recording is about as long as the call (DTMF gaps filled with silence)
    assert abs(len(b.recording) / 2 / 8000 - 3.0) < 0.1


def test_loss_is_counted_and_reported_by_rtcp():
    a, b = pair()
    dropped = []

    def drop(sender, data):
        if sender is a and not is_rtcp(data):
            p = RtpPacket.decode(data)
            if p.sequence % 10 == 3:
                dropped.append(p.sequence)
                return True
        return False

    w = Wire(a, b, drop=drop)
    w.start()
    w.run(3.0)
    w.stop(a)           # A stops sending; everything in flight arrives
    w.run(0.1)
    w.stop(b)           # B's final SR + BYE carries its view of our loss
    w.run(0.1)
    sa, sb = a.stats(), b.stats()
    assert len(dropped) >= 14
    seqs = [p.sequence for p in rtp_seqs(w.sent[id(a)])]
    last_rx = max(i for i, s in enumerate(seqs) if s not in dropped)
    seen_lost = [s for s in seqs[:last_rx] if s in dropped]  # later losses are not visible
    assert sb.packets_lost == len(seen_lost)
    assert sb.packets_received == len(seqs) - len(dropped)
    assert sa.remote_packets_lost == sb.packets_lost
    reports = [e for e in w.events[id(a)] if isinstance(e, RemoteReport)]
    # about 10% in every interval while media flowed (the final report's interval had none)
    assert len(reports) >= 3 and all(0 < r.block.fraction_lost <= 30 for r in reports[:-1])
    assert reports[-1].block.packets_lost == sb.packets_lost
    assert any(isinstance(e, ByeReceived) and e.reason == "bye" for e in w.events[id(a)])
    assert sa.packets_lost == 0


def test_jitter_measured_under_variable_delay():
    a, b = pair()
    rng = random.Random(3)
    w = Wire(a, b, delay=lambda: rng.uniform(0.02, 0.06))
    w.start()
    w.run(3.0)
    sa, sb = a.stats(), b.stats()
    # uniform delay over 40 ms: mean |D| is 40/3 ms, so J settles near 13 ms
    assert 0.005 < sb.jitter < 0.025 and 0.005 < sa.jitter < 0.025
    assert sa.remote_jitter is not None and sa.remote_jitter > 0.005
    # reordering is not loss
    assert sb.packets_lost == 0
    f = b.detected_frequency()
    assert f is not None and abs(f - 440.0) < 5.0


def test_hold_pauses_rtp_and_keeps_timing():
    a, b = pair()
    w = Wire(a, b)
    w.start()
    w.run(1.0)
    a.set_sending(False)
    n = a.stats().packets_sent
    w.run(1.0)
    assert a.stats().packets_sent == n
    a.set_sending(True)
    w.run(1.0)
    pkts = rtp_seqs(w.sent[id(a)])
    resumed = pkts[n]
    assert resumed.marker
    assert (resumed.timestamp - pkts[n - 1].timestamp) % 2**32 == pytest.approx(8000 * 1.02, abs=200)
    assert (resumed.sequence - pkts[n - 1].sequence) % 65536 == 1
    assert b.stats().packets_lost == 0


def test_wav_source_and_recording_round_trip(tmp_path):
    src = tmp_path / "in.wav"
    src.write_bytes(wav_bytes(sine(600.0, 1.0)))
    a = MediaStream(source=WavSource.from_file(src), remote=B_ADDR, rng=random.Random(1))
    b = MediaStream(remote=A_ADDR, rng=random.Random(2))
    w = Wire(a, b)
    w.start()
    w.run(2.0)
    out = tmp_path / "out.wav"
    b.write_wav(out)
    with wave.open(str(out), "rb") as r:
        assert (r.getnchannels(), r.getsampwidth(), r.getframerate()) == (1, 2, 8000)
        pcm = r.readframes(r.getnframes())
    f = detect_frequency(pcm)
    assert f is not None and abs(f - 600.0) < 5.0
    assert a.detected_frequency() is None  # B sent silence


def test_wav_source_errors_and_stereo(tmp_path):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(100))
    p = tmp_path / "x.wav"
    p.write_bytes(buf.getvalue())
    with pytest.raises(MediaError):
        WavSource.from_file(p)
    p.write_bytes(b"RIFF nonsense")
    with pytest.raises(MediaError):
        WavSource.from_file(p)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00\x02\x00" * 4)
    buf.seek(0)
    s = WavSource.from_file(buf, loop=False)
    assert s.read(3) == b"\x01\x00" * 3
    assert s.read(3) == b"\x01\x00" + bytes(4)


def test_garbage_and_unexpected_packets_are_counted_not_raised():
    _, b = pair()
    b.start(0.0)
    for data in (b"", b"\x00" * 5, b"\x80", b"\x80\xc9\x00\x09", b"\xff" * 40,
                 RtpPacket(96, 1, 1, 5, b"x").encode(),
                 RtpPacket(101, 1, 1, 5, b"\x01").encode()):
        b.receive(data, 0.5)
    st = b.stats()
    assert st.invalid_received >= 4 and st.unexpected_received == 1
    assert st.packets_received <= 1 and b.digits_received == ""
    with pytest.raises(MediaError):
        MediaStream(ptime=1.0)
    nodtmf = MediaStream(dtmf_payload_type=None)
    with pytest.raises(MediaError):
        nodtmf.send_dtmf("1")


def test_no_media_before_start_and_trace_recorded():
    trace = Trace()
    a = MediaStream(source=ToneGenerator(440.0), remote=B_ADDR, trace=trace, rng=random.Random(5))
    assert a.get_timer() is None
    a.handle_timer(10.0)
    assert a.datagrams_to_send(10.0) == []
    a.start(10.0)
    a.handle_timer(10.1)
    out = a.datagrams_to_send(10.1)
    assert len(out) == 6 and all(addr == B_ADDR for _, addr in out)
    assert [r.direction for r in trace if r.protocol == "rtp" and r.raw] == ["out"] * 6
    # a stalled reactor: at most MAX_CATCH_UP packets, then it skips ahead
    a.handle_timer(100.0)
    assert len(a.datagrams_to_send(100.0)) <= MediaStream.MAX_CATCH_UP + 1


def test_rtp_we_produce_decodes_in_tshark(tmp_path):
    tshark = require_binary("tshark")
    a, b = pair()
    w = Wire(a, b)
    w.start()
    w.run(0.5)
    a.send_dtmf("5")
    w.run(1.0)
    w.stop(a)
    sent = w.sent[id(a)]
    path = tmp_path / "a.pcap"
    with open(path, "wb") as f:
        pw = PcapWriter(f)
        for t, data, dst in sent:
            pw.write_udp(data, A_ADDR, dst, t)
    r = subprocess.run(
        [tshark, "-r", str(path), "-d", f"udp.port=={B_ADDR[1]},rtp", "-Y", "rtp",
         "-T", "fields", "-e", "rtp.p_type", "-e", "rtp.ssrc", "-e", "rtp.seq",
         "-e", "rtp.marker"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines() if line.strip()]
    ours = rtp_seqs(sent)
    assert len(rows) == len(ours) == a.stats().packets_sent
    for row, p in zip(rows, ours, strict=True):
        assert int(row[0]) == p.payload_type
        assert int(row[1], 16) == a.ssrc
        assert int(row[2]) == p.sequence
    assert {int(r_[0]) for r_ in rows} == {0, 101}
    # the RTCP compounds decode too (SR + SDES, BYE at the end)
    r = subprocess.run([tshark, "-r", str(path), "-d", f"udp.port=={B_ADDR[1]},rtp", "-Y",
                        "rtcp", "-T", "fields", "-e", "rtcp.pt"],
                       capture_output=True, text=True, timeout=60)
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    n_rtcp = sum(1 for _, d, _ in sent if is_rtcp(d))
    assert len(lines) == n_rtcp and "203" in lines[-1] and "200" in lines[-1]
    assert isinstance(decode_rtcp([d for _, d, _ in sent if is_rtcp(d)][-1])[-1].reason, str)
    assert shutil.which(tshark)


def test_rtp_before_start_is_not_played_and_strict_source():
    sender = MediaStream(source=ToneGenerator(440.0), remote=B_ADDR, rng=random.Random(8))
    sender.start(0.0)
    sender.handle_timer(1.0)
    flood = [d for d, _ in sender.datagrams_to_send(1.0)]
    assert len(flood) >= 50
    b = MediaStream(remote=A_ADDR, strict_source=True, rng=random.Random(9))
    for d in flood:                       # before ICE completes: nothing played or counted
        b.receive(d, 1.0, addr=A_ADDR)
    assert b.stats().dropped_before_start == len(flood)
    assert b.stats().packets_received == 0 and len(b.recording) == 0
    b.start(2.0)
    for d in flood[:10]:                  # from an address that is not the selected peer
        b.receive(d, 2.0, addr=("127.0.0.1", 9999))
    assert b.stats().unexpected_received == 10 and b.stats().packets_received == 0
    for d in flood[:10]:
        b.receive(d, 2.0, addr=A_ADDR)
    assert b.stats().packets_received == 10


def test_playout_follows_a_new_source_after_the_old_one_goes_quiet():
    one = MediaStream(source=ToneGenerator(440.0), remote=B_ADDR, rng=random.Random(10))
    two = MediaStream(source=ToneGenerator(1500.0), remote=B_ADDR, rng=random.Random(11))
    b = MediaStream(remote=A_ADDR, rng=random.Random(12))
    b.start(0.0)
    one.start(0.0)
    one.handle_timer(1.0)
    for d, _ in one.datagrams_to_send(1.0):
        b.receive(d, 1.0)
    two.start(1.0)
    two.handle_timer(1.1)
    for d, _ in two.datagrams_to_send(1.1):   # overlapping a live source: not played
        b.receive(d, 1.1)
    assert len(b.recording) == 2 * 160 * one.stats().packets_sent   # only the first source
    n = len(b.recording)
    for i in range(2, 21):                             # the second goes on until 3.0 s
        t = 1.0 + i * 0.1
        two.handle_timer(t)
        for d, _ in two.datagrams_to_send(t):
            b.receive(d, t)
    # played once the first had been quiet for over 0.5 s: the packets from 1.5 s on
    assert len(b.recording) - n == 2 * 8000 * 1.5
    tail = bytes(b.recording[n:])
    f = detect_frequency(tail)
    assert f is not None and abs(f - 1500.0) < 5.0
    assert b.stats().packets_received == one.stats().packets_sent + two.stats().packets_sent


def test_dtmf_event_without_end_is_reported_after_a_timeout_and_on_stop():
    from siplink.media.dtmf import event_series

    b = MediaStream(remote=A_ADDR, rng=random.Random(13))
    b.start(0.0)
    ticks = event_series("7")
    for i, t in enumerate(ticks[:3]):            # start of a key press, then silence
        b.receive(RtpPacket(101, i, 800, 99, t.event.encode(), marker=t.marker).encode(), 0.1 + i * 0.02)
    assert b.digits_received == ""
    deadline = b.get_timer()
    assert deadline is not None
    b.handle_timer(1.1)
    assert b.digits_received == ""           # not yet: 1 s after the last packet (0.14 s)
    b.handle_timer(1.15)
    assert b.digits_received == "7"
    ev = [e for e in iter(b.next_event, None) if isinstance(e, DtmfReceived)]
    assert [(e.digit, e.ssrc) for e in ev] == [("7", 99)]
    # a held key still open when the stream stops is reported then
    for i, t in enumerate(event_series("9")[:2]):
        b.receive(RtpPacket(101, 10 + i, 8000, 99, t.event.encode()).encode(), 2.0)
    b.stop(2.1)
    assert b.digits_received == "79"


def test_dtmf_packets_do_not_inflate_jitter():
    a, b = pair()
    w = Wire(a, b)
    w.start()
    w.run(0.5)
    a.send_dtmf("0123456789")
    w.run(3.0)
    assert b.digits_received == "0123456789"
    assert b.stats().jitter < 0.001       # constant delay: no jitter, DTMF or not


def test_plays_either_g711_law_from_the_peer():
    a = MediaStream(codec=PCMA, source=ToneGenerator(700.0), remote=B_ADDR, rng=random.Random(14))
    b = MediaStream(codec=PCMU, remote=A_ADDR, rng=random.Random(15))
    w = Wire(a, b)
    w.start()
    w.run(1.0)
    f = b.detected_frequency()
    assert f is not None and abs(f - 700.0) < 5.0
    assert b.stats().unexpected_received == 0
    b.receive(RtpPacket(18, 1, 1, 77, b"\x00" * 10).encode(), w.clock.seconds())  # G.729: no
    assert b.stats().unexpected_received == 1


def test_flood_keeps_memory_bounded():
    from siplink.media.dtmf import event_series

    b = MediaStream(remote=A_ADDR, rng=random.Random(16), max_record_seconds=1.0)
    b.start(0.0)
    end = event_series("1")[-1].event.encode()
    for i in range(5000):                    # 5000 distinct DTMF events, never drained
        b.receive(RtpPacket(101, i, i * 1000, 5, end).encode(), 0.001 * i)
    for i in range(200):                     # many sources, long audio
        b.receive(RtpPacket(0, i, i * 160, 1000 + i, b"\xff" * 160).encode(), 6.0)
    for i in range(1000):
        b.receive(RtpPacket(0, i, i * 160, 5, b"\x00" * 160).encode(), 6.0 + i * 0.02)
    assert len(b._events) <= 1024 and len(b.digits_received) <= 1024
    assert len(b._sources) <= MediaStream.MAX_SOURCES
    assert len(b.recording) <= 2 * 8000
