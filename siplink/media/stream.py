"""A sans-I/O RTP media stream: G.711 audio, RFC 4733 DTMF and RTCP reports (RFC 3550).

:class:`MediaStream` sends one RTP packet every ``ptime`` from a PCM source (a tone or a WAV
file), interleaving telephone-events when digits are queued with :meth:`MediaStream.send_dtmf`;
it consumes received RTP/RTCP (muxed on one port, RFC 5761), keeps RFC 3550 reception
statistics per source, records the received audio (with silence for gaps), collects DTMF
digits, and sends RTCP SR/RR + SDES compounds (and BYE on :meth:`MediaStream.stop`).

Like every core here it never reads the clock or touches a socket::

    stream.start(now)
    stream.receive(data, now)            # a datagram that arrived
    for data, addr in stream.datagrams_to_send(now): ...
    stream.get_timer() / stream.handle_timer(now)
    while (ev := stream.next_event()) is not None: ...

Media starts only when :meth:`MediaStream.start` is called (after ICE has selected a pair);
:meth:`MediaStream.set_sending` pauses it (hold, consent lost) without losing timing.
"""

from __future__ import annotations

import io
import os
import random
import wave
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from twisted.logger import Logger

from ice.address import Address
from ice.trace import Trace, TraceRecord
from siplink.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from siplink.media.g711 import CODECS, PCMU, G711Codec
from siplink.media.rtp import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
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
    round_trip_time,
    rtcp_interval,
)
from siplink.media.tone import detect_frequency

__all__ = [
    "ByeReceived",
    "DtmfReceived",
    "MediaError",
    "MediaEvent",
    "MediaStats",
    "MediaStream",
    "PcmSource",
    "RemoteReport",
    "SilenceSource",
    "WavSource",
    "wav_bytes",
]

log = Logger()


class MediaError(ValueError):
    """A media source or setting that cannot be used (wrong WAV format, bad ptime...)."""


# ---------------------------------------------------------------------------- sources


class PcmSource(Protocol):
    """Anything that gives the next ``samples`` samples of 16-bit LE mono PCM."""

    def read(self, samples: int) -> bytes: ...


class SilenceSource:
    def read(self, samples: int) -> bytes:
        return bytes(2 * samples)


class WavSource:
    """PCM from a WAV file (16-bit mono, at the codec's rate), read fully at construction.

    Stereo files play their left channel. At the end it loops (``loop=True``) or plays
    silence.
    """

    def __init__(self, pcm: bytes, *, loop: bool = True) -> None:
        self.pcm = pcm
        self.loop = loop
        self._pos = 0

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | io.BytesIO, *, sample_rate: int = 8000,
                  loop: bool = True, max_seconds: float = 3600.0) -> WavSource:
        try:
            with wave.open(path if isinstance(path, io.BytesIO) else str(path), "rb") as w:
                if w.getsampwidth() != 2:
                    raise MediaError("WAV file is not 16-bit PCM")
                if w.getframerate() != sample_rate:
                    raise MediaError(f"WAV file is {w.getframerate()} Hz, need {sample_rate} Hz")
                channels = w.getnchannels()
                frames = min(w.getnframes(), int(max_seconds * sample_rate))
                data = w.readframes(frames)
        except (wave.Error, EOFError) as e:
            raise MediaError(f"cannot read WAV file: {e}") from None
        if channels == 2:
            data = b"".join(data[i:i + 2] for i in range(0, len(data), 4))
        elif channels != 1:
            raise MediaError(f"WAV file has {channels} channels")
        return cls(data, loop=loop)

    def read(self, samples: int) -> bytes:
        want = 2 * samples
        out = bytearray()
        while len(out) < want:
            if self._pos >= len(self.pcm):
                if not self.loop or not self.pcm:
                    out += bytes(want - len(out))
                    break
                self._pos = 0
            chunk = self.pcm[self._pos:self._pos + want - len(out)]
            self._pos += len(chunk)
            out += chunk
        return bytes(out)


def wav_bytes(pcm: bytes, sample_rate: int = 8000) -> bytes:
    """A complete WAV file (16-bit mono) holding ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


# ---------------------------------------------------------------------------- events, stats


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str
    duration: float          # seconds
    ssrc: int


@dataclass(frozen=True, slots=True)
class RemoteReport:
    """The peer's reception report about our stream (from its RR or SR)."""

    reporter: int            # the peer's SSRC
    block: ReportBlock
    rtt: float | None        # seconds, when the block refers to one of our SRs


@dataclass(frozen=True, slots=True)
class ByeReceived:
    sources: tuple[int, ...]
    reason: str


MediaEvent = DtmfReceived | RemoteReport | ByeReceived


@dataclass(frozen=True, slots=True)
class MediaStats:
    packets_sent: int = 0
    octets_sent: int = 0              # RTP payload octets (as an SR counts them)
    packets_received: int = 0
    octets_received: int = 0
    packets_lost: int = 0             # RFC 3550 cumulative loss over the sources we receive
    fraction_lost: float = 0.0        # in the last reporting interval, 0..1
    jitter: float = 0.0               # seconds (RFC 3550 §A.8)
    remote_packets_lost: int | None = None    # from the peer's reports about us
    remote_fraction_lost: float | None = None
    remote_jitter: float | None = None
    rtt: float | None = None
    dtmf_sent: int = 0
    dtmf_received: str = ""
    rtcp_sent: int = 0
    rtcp_received: int = 0
    invalid_received: int = 0         # datagrams that were neither valid RTP nor RTCP
    unexpected_received: int = 0      # valid RTP with a payload type we did not negotiate,
                                      # from an unexpected address, or one source too many
    dropped_before_start: int = 0     # datagrams that arrived before start() (before ICE)
    first_sent_at: float | None = None      # ``now`` of our first RTP packet
    first_received_at: float | None = None  # ``now`` of the first RTP packet we accepted


# ---------------------------------------------------------------------------- the stream


class MediaStream:
    """One RTP session (one SSRC out) on an RTCP-muxed transport."""

    MAX_SOURCES = 8
    MAX_CATCH_UP = 50          # ticks produced in one handle_timer before skipping ahead
    MAX_GAP_FILL = 5.0         # seconds of silence inserted for a timestamp jump, at most
    DTMF_END_TIMEOUT = 1.0     # an event with no packet for this long is over (end lost)

    def __init__(
        self,
        *,
        codec: G711Codec = PCMU,
        ptime: float = 0.020,
        source: PcmSource | None = None,
        remote: Address | None = None,
        remote_rtcp: Address | None = None,
        ssrc: int | None = None,
        dtmf_payload_type: int | None = 101,
        cname: str | None = None,
        rtcp_interval: float = 5.0,        # Tmin of RFC 3550 §6.3 (tests use less)
        record: bool = True,
        max_record_seconds: float = 600.0,
        rng: random.Random | None = None,
        trace: Trace | None = None,
        probation: int = 1,
        strict_source: bool = False,
    ) -> None:
        if not 0.005 <= ptime <= 0.2:
            raise MediaError("ptime must be between 5 and 200 ms")
        self._rng = rng or random.Random()
        self.codec = codec
        # what we play: our codec, and the other G.711 law if the peer switches to it
        # (both are static payload types that an answer may list, RFC 3551)
        self._receive_codecs: dict[int, G711Codec] = {c.payload_type: c for c in CODECS}
        self.ptime = ptime
        self.samples_per_packet = int(round(codec.clock_rate * ptime))
        self.source: PcmSource = source if source is not None else SilenceSource()
        self.remote = remote
        self.remote_rtcp = remote_rtcp
        self.ssrc = ssrc if ssrc is not None else self._rng.getrandbits(32)
        self.dtmf_payload_type = dtmf_payload_type
        self.cname = cname or f"siplink-{self.ssrc:08x}"
        self.rtcp_interval = rtcp_interval
        self.trace = trace
        self._probation = probation
        self.strict_source = strict_source
        self._seq = self._rng.getrandbits(16)
        self._ts = self._rng.getrandbits(32)
        self._started_at: float | None = None
        self._ticks = 0
        self._next_rtp: float | None = None
        self._next_rtcp: float | None = None
        self._sending = True
        self._stopped = False
        self._marker = True
        self._sent_since_report = False
        self._out: list[tuple[bytes, Address]] = []
        self._events: deque[MediaEvent] = deque(maxlen=1024)  # oldest dropped if undrained
        self._dtmf_tx = DtmfSender(packet_samples=self.samples_per_packet,
                                   duration=int(0.1 * codec.clock_rate),
                                   gap=int(0.06 * codec.clock_rate))
        self._dtmf_rx = DtmfReceiver()
        self._dtmf_rx_last: float | None = None   # arrival of the last packet of an open event
        self._sources: dict[int, SourceStatistics] = {}
        self._playout_ssrc: int | None = None
        self._playout_last = 0.0
        self._rec_next_ts: int | None = None
        self._record = record
        self._record_limit = int(max_record_seconds * codec.clock_rate) * 2
        self.recording = bytearray()
        self._last_sr_sent: dict[int, float] = {}  # middle32(NTP) -> when, to compute RTT
        self._avg_rtcp_size = 100.0                 # octets, with UDP/IP headers
        # counters
        self._packets_sent = 0
        self._octets_sent = 0
        self._packets_received = 0
        self._octets_received = 0
        self._dtmf_sent = 0
        self._digits = ""
        self._rtcp_sent = 0
        self._rtcp_received = 0
        self._invalid = 0
        self._unexpected = 0
        self._before_start = 0
        self._first_sent: float | None = None
        self._first_received: float | None = None
        self._last_fraction = 0.0
        self._remote_block: ReportBlock | None = None
        self._rtt: float | None = None

    # -- control

    def start(self, now: float) -> None:
        """Begin sending: the first packet goes at ``now``, RTCP after half an interval."""
        if self._started_at is not None:
            return
        self._started_at = now
        self._next_rtp = now
        self._next_rtcp = now + self._rtcp_delay(initial=True)
        self._record_event(now, "event", f"media start ssrc={self.ssrc:08x} {self.codec.name}")

    def stop(self, now: float, reason: str = "") -> None:
        """Stop sending; queue a final RTCP report with BYE."""
        if self._stopped or self._started_at is None:
            self._stopped = True
            return
        self._emit_digits(self._dtmf_rx.flush(), now)
        self._send_rtcp(now, bye=reason or "stream stopped")
        self._stopped = True
        self._next_rtp = self._next_rtcp = None

    def set_sending(self, sending: bool) -> None:
        """Pause or resume RTP (hold, consent lost); timing and timestamps keep running."""
        if sending and not self._sending:
            self._marker = True
        self._sending = sending

    def set_remote(self, remote: Address, remote_rtcp: Address | None = None) -> None:
        self.remote = remote
        self.remote_rtcp = remote_rtcp

    def send_dtmf(self, digits: str) -> None:
        """Queue DTMF digits (0-9 * # A-D) as RFC 4733 events, 100 ms each, 60 ms apart."""
        if self.dtmf_payload_type is None:
            raise MediaError("telephone-event was not negotiated")
        self._dtmf_tx.send(digits)

    @property
    def dtmf_pending(self) -> bool:
        return self._dtmf_tx.busy

    # -- sans-I/O interface

    def _dtmf_deadline(self) -> float | None:
        if self._dtmf_rx_last is None or not self._dtmf_rx.event_open:
            return None
        return self._dtmf_rx_last + self.DTMF_END_TIMEOUT

    def get_timer(self) -> float | None:
        timers = [t for t in (self._next_rtp, self._next_rtcp, self._dtmf_deadline())
                  if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        if self._stopped or self._started_at is None:
            return
        deadline = self._dtmf_deadline()
        if deadline is not None and deadline <= now:
            # RFC 4733 §2.5.2.2: no end packet arrived; the event is over all the same
            self._emit_digits(self._dtmf_rx.flush(), now)
            self._dtmf_rx_last = None
        produced = 0
        while self._next_rtp is not None and self._next_rtp <= now:
            if produced >= self.MAX_CATCH_UP:
                # far behind (a stalled reactor): skip ahead rather than burst
                behind = int((now - self._next_rtp) / self.ptime) + 1
                self._ticks += behind
                self._ts = (self._ts + behind * self.samples_per_packet) & 0xFFFFFFFF
                self._next_rtp = self._started_at + self._ticks * self.ptime
                self._marker = True
                log.warn("media stream {ssrc:08x} fell {n} packets behind; skipped ahead",
                         ssrc=self.ssrc, n=behind)
                break
            self._tick(self._next_rtp)
            produced += 1
            self._ticks += 1
            self._next_rtp = self._started_at + self._ticks * self.ptime
        if self._next_rtcp is not None and self._next_rtcp <= now:
            self._send_rtcp(now)
            self._next_rtcp = now + self._rtcp_delay(initial=False)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> MediaEvent | None:
        return self._events.popleft() if self._events else None

    def receive(self, data: bytes, now: float, *, addr: Address | None = None) -> None:
        """A datagram from the media socket (RTP or RTCP; STUN is demuxed before this).

        Nothing is played or counted before :meth:`start` (media waits for ICE). With
        ``strict_source``, datagrams from any address but ``remote``/``remote_rtcp`` are
        dropped.
        """
        if self._started_at is None:
            self._before_start += 1
            return
        if (self.strict_source and addr is not None and self.remote is not None
                and addr != self.remote and addr != self.remote_rtcp):
            self._unexpected += 1
            return
        if is_rtcp(data):
            self._receive_rtcp(data, now, addr)
            return
        try:
            pkt = RtpPacket.decode(data)
        except RtpError:
            self._invalid += 1
            return
        codec = self._receive_codecs.get(pkt.payload_type)
        if codec is not None:
            self._receive_audio(pkt, now, codec)
        elif self.dtmf_payload_type is not None and pkt.payload_type == self.dtmf_payload_type:
            self._receive_dtmf(pkt, now)
        else:
            self._unexpected += 1
            return
        if self.trace is not None:
            self._record_packet(now, "in", f"RTP pt={pkt.payload_type} seq={pkt.sequence}",
                                data, addr)

    # -- sending

    def _tick(self, at: float) -> None:
        ts = self._ts
        self._ts = (self._ts + self.samples_per_packet) & 0xFFFFFFFF
        pcm = self.source.read(self.samples_per_packet)  # keep the source in time, even on DTMF
        if not self._sending or self.remote is None:
            return
        dt = self._dtmf_tx.tick(ts) if self.dtmf_payload_type is not None else None
        if dt is not None:
            tick, event_ts = dt
            pkt = RtpPacket(self.dtmf_payload_type or 0, self._seq, event_ts, self.ssrc,
                            tick.event.encode(), marker=tick.marker)
            if tick.marker:
                self._dtmf_sent += 1
        else:
            payload = self.codec.encode(pcm)
            pkt = RtpPacket(self.codec.payload_type, self._seq, ts, self.ssrc, payload,
                            marker=self._marker)
            self._marker = False
        self._seq = (self._seq + 1) & 0xFFFF
        raw = pkt.encode()
        self._packets_sent += 1
        self._octets_sent += len(pkt.payload)
        if self._first_sent is None:
            self._first_sent = at
        self._sent_since_report = True
        self._out.append((raw, self.remote))
        if self.trace is not None:
            self._record_packet(at, "out", f"RTP pt={pkt.payload_type} seq={pkt.sequence}",
                                raw, self.remote)

    def _rtcp_delay(self, *, initial: bool) -> float:
        """RFC 3550 §6.3: 5% of the session bandwidth (payload + RTP/UDP/IPv4 headers at one
        packet per ptime), ``rtcp_interval`` as the minimum, randomised and compensated."""
        packet = len(self.codec.encode(bytes(2 * self.samples_per_packet))) + 12 + 8 + 20
        session_bw = packet / self.ptime                      # octets per second
        senders = (1 if self._sent_since_report or self._packets_sent else 0) + sum(
            1 for s in self._sources.values() if s.received)
        return rtcp_interval(
            members=1 + len(self._sources), senders=senders, rtcp_bw=0.05 * session_bw,
            we_sent=self._packets_sent > 0, avg_rtcp_size=self._avg_rtcp_size,
            initial=initial, random_fraction=self._rng.random(), min_time=self.rtcp_interval)

    def _report_blocks(self, now: float) -> tuple[ReportBlock, ...]:
        blocks = [s.report_block(now) for s in self._sources.values() if s.received]
        if self._playout_ssrc is not None and self._playout_ssrc in self._sources:
            main = [b for b in blocks if b.ssrc == self._playout_ssrc]
            if main:
                self._last_fraction = main[0].fraction_lost / 256.0
        return tuple(blocks[:31])

    def _send_rtcp(self, now: float, bye: str | None = None) -> None:
        target = self.remote_rtcp or self.remote
        if target is None:
            return
        blocks = self._report_blocks(now)
        first: RtcpPacket
        if self._sent_since_report:
            ntp = ntp_from_unix(now)
            elapsed = int(round((now - (self._started_at or now)) * self.codec.clock_rate))
            rtp_ts = (self._ts - self._ticks * self.samples_per_packet + elapsed) & 0xFFFFFFFF
            first = SenderReport(self.ssrc, ntp, rtp_ts, self._packets_sent, self._octets_sent,
                                 blocks)
            self._last_sr_sent[(ntp >> 16) & 0xFFFFFFFF] = now
            while len(self._last_sr_sent) > 16:
                del self._last_sr_sent[next(iter(self._last_sr_sent))]
        else:
            first = ReceiverReport(self.ssrc, blocks)
        packets: list[RtcpPacket] = [
            first, SourceDescription((SdesChunk(self.ssrc, ((SDES_CNAME, self.cname.encode()),)),))
        ]
        if bye is not None:
            packets.append(Bye((self.ssrc,), bye))
        self._sent_since_report = False
        raw = encode_rtcp(packets)
        # §6.3.3: avg_rtcp_size = 1/16 * packet_size + 15/16 * avg_rtcp_size (with UDP/IP)
        self._avg_rtcp_size += (len(raw) + 28 - self._avg_rtcp_size) / 16
        self._rtcp_sent += 1
        self._out.append((raw, target))
        kind = "SR" if isinstance(first, SenderReport) else "RR"
        self._record_packet(now, "out", f"RTCP {kind}{' BYE' if bye else ''} "
                            f"blocks={len(blocks)}", raw, target)

    # -- receiving

    def _source(self, ssrc: int) -> SourceStatistics | None:
        s = self._sources.get(ssrc)
        if s is None:
            if len(self._sources) >= self.MAX_SOURCES:
                return None
            s = SourceStatistics(ssrc, self.codec.clock_rate, probation=self._probation)
            self._sources[ssrc] = s
        return s

    def _count_in(self, pkt: RtpPacket, now: float, *, jitter: bool = True) -> bool:
        src = self._source(pkt.ssrc)
        if src is None:
            self._unexpected += 1
            return False
        if src.update_seq(pkt.sequence) and jitter:
            src.update_jitter(pkt.timestamp, now)
        self._packets_received += 1
        self._octets_received += len(pkt.payload)
        if self._first_received is None:
            self._first_received = now
        return True

    def _receive_audio(self, pkt: RtpPacket, now: float, codec: G711Codec) -> None:
        if not self._count_in(pkt, now):
            return
        if self._playout_ssrc is None or (
                pkt.ssrc != self._playout_ssrc and now - self._playout_last > 0.5):
            # the first source, or a new one after the old went quiet (re-INVITE, restart)
            self._playout_ssrc = pkt.ssrc
            self._rec_next_ts = None
        if pkt.ssrc != self._playout_ssrc:
            return
        self._playout_last = now
        if not self._record:
            return
        pcm = codec.decode(pkt.payload)
        n = len(pkt.payload)
        if self._rec_next_ts is not None:
            delta = ((pkt.timestamp - self._rec_next_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            if delta < 0:
                return  # late or duplicate: already past it
            gap = min(delta, int(self.MAX_GAP_FILL * self.codec.clock_rate))
            if gap:
                self._append_recording(bytes(2 * gap))
        self._append_recording(pcm)
        self._rec_next_ts = (pkt.timestamp + n) & 0xFFFFFFFF

    def _append_recording(self, pcm: bytes) -> None:
        room = self._record_limit - len(self.recording)
        if room > 0:
            self.recording += pcm[:room]

    def _receive_dtmf(self, pkt: RtpPacket, now: float) -> None:
        # every packet of an event carries the event's start timestamp (RFC 4733 §2.5.1.2):
        # counted for loss, kept out of the jitter estimate, which they would inflate
        if not self._count_in(pkt, now, jitter=False):
            return
        try:
            digits: list[DtmfDigit] = self._dtmf_rx.receive(pkt.timestamp, pkt.payload, pkt.ssrc)
        except ValueError:
            self._invalid += 1
            return
        self._dtmf_rx_last = now if self._dtmf_rx.event_open else None
        self._emit_digits(digits, now)

    def _emit_digits(self, digits: list[DtmfDigit], now: float) -> None:
        for d in digits:
            self._digits += d.digit
            if len(self._digits) > 1024:
                self._digits = self._digits[-1024:]
            self._events.append(DtmfReceived(d.digit, d.duration / self.codec.clock_rate,
                                             d.ssrc))
            self._record_event(now, "event", f"DTMF {d.digit} received")

    def _receive_rtcp(self, data: bytes, now: float, addr: Address | None) -> None:
        try:
            packets = decode_rtcp(data)
        except RtpError:
            self._invalid += 1
            return
        self._rtcp_received += 1
        self._record_packet(now, "in", "RTCP " + " ".join(type(p).__name__ for p in packets),
                            data, addr)
        for p in packets:
            if isinstance(p, SenderReport | ReceiverReport):
                if isinstance(p, SenderReport):
                    src = self._sources.get(p.ssrc)
                    if src is not None:
                        src.sender_report_received(p.ntp_timestamp, now)
                for b in p.reports:
                    if b.ssrc != self.ssrc:
                        continue
                    rtt = round_trip_time(b, now) if b.lsr in self._last_sr_sent else None
                    if rtt is not None:
                        self._rtt = rtt
                    self._remote_block = b
                    self._events.append(RemoteReport(p.ssrc, b, rtt))
            elif isinstance(p, Bye):
                if self._playout_ssrc in p.sources:
                    self._playout_ssrc = None
                self._emit_digits(self._dtmf_rx.flush(), now)
                self._events.append(ByeReceived(p.sources, p.reason))
                self._record_event(now, "event", f"RTCP BYE {p.reason!r}")

    # -- results

    @property
    def digits_received(self) -> str:
        return self._digits

    def detected_frequency(self, *, seconds: float = 1.0) -> float | None:
        """Dominant frequency of the received audio (its middle ``seconds``), None if silent."""
        return detect_frequency(bytes(self.recording), self.codec.clock_rate,
                                max_seconds=seconds)

    def wav_bytes(self) -> bytes:
        return wav_bytes(bytes(self.recording), self.codec.clock_rate)

    def write_wav(self, path: str | os.PathLike[str]) -> None:
        """Write the received audio to a WAV file (the caller's I/O, not the core's)."""
        Path(path).write_bytes(self.wav_bytes())

    def stats(self) -> MediaStats:
        lost = sum(s.lost for s in self._sources.values())
        main = self._sources.get(self._playout_ssrc) if self._playout_ssrc is not None else None
        rate = float(self.codec.clock_rate)
        rb = self._remote_block
        return MediaStats(
            packets_sent=self._packets_sent,
            octets_sent=self._octets_sent,
            packets_received=self._packets_received,
            octets_received=self._octets_received,
            packets_lost=lost,
            fraction_lost=self._last_fraction,
            jitter=(main.jitter / rate) if main is not None else 0.0,
            remote_packets_lost=rb.packets_lost if rb else None,
            remote_fraction_lost=(rb.fraction_lost / 256.0) if rb else None,
            remote_jitter=(rb.jitter / rate) if rb else None,
            rtt=self._rtt,
            dtmf_sent=self._dtmf_sent,
            dtmf_received=self._digits,
            rtcp_sent=self._rtcp_sent,
            rtcp_received=self._rtcp_received,
            invalid_received=self._invalid,
            unexpected_received=self._unexpected,
            dropped_before_start=self._before_start,
            first_sent_at=self._first_sent,
            first_received_at=self._first_received,
        )

    # -- trace

    def _record_packet(self, now: float, direction: str, summary: str, raw: bytes,
                       remote: Address | None) -> None:
        if self.trace is None:
            return
        self.trace.add(TraceRecord(time=now, direction="out" if direction == "out" else "in",
                                   summary=summary, remote=remote, protocol="rtp", raw=raw))

    def _record_event(self, now: float, direction: str, summary: str) -> None:
        if self.trace is not None:
            self.trace.add(TraceRecord(time=now, direction="event", summary=summary,
                                       protocol="rtp"))

