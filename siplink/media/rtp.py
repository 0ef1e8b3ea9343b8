"""RTP and RTCP packets and reception statistics (RFC 3550).

- :class:`RtpPacket`: the fixed header, CSRC list, header extension and padding (§5.1, §5.3.1).
- RTCP compound packets (§6): :class:`SenderReport`, :class:`ReceiverReport` with
  :class:`ReportBlock` s, :class:`SourceDescription` (SDES, CNAME), :class:`Bye`; anything else
  is kept as :class:`RtcpUnknown`. :func:`encode_rtcp` / :func:`decode_rtcp`.
- :class:`SourceStatistics`: per-source sequence tracking with probation (§A.1), cumulative
  and fractional loss (§A.3), interarrival jitter (§A.8), and LSR/DLSR for report blocks.
- :func:`is_rtcp` tells RTCP from RTP on a muxed port (RFC 5761 §4).

Bad input raises :class:`RtpError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "Bye",
    "HeaderExtension",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpUnknown",
    "RtpError",
    "RtpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "SourceStatistics",
    "decode_rtcp",
    "encode_rtcp",
    "is_rtcp",
    "ntp_from_unix",
    "ntp_middle32",
    "round_trip_time",
    "rtcp_interval",
    "unix_from_ntp",
]

RTP_VERSION = 2
RTP_SEQ_MOD = 1 << 16


class RtpError(ValueError):
    """An RTP or RTCP packet that cannot be decoded (or a value that cannot be encoded)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on an RTP/RTCP-muxed port is RTCP (RFC 5761 §4: PT 192-223)."""
    return len(data) >= 2 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


# ---------------------------------------------------------------------------- RTP


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """The RTP header extension (§5.3.1): a 16-bit profile value and 32-bit-aligned data."""

    profile: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: HeaderExtension | None = None
    padding: int = 0           # number of padding octets (including the count octet); 0 = none

    def encode(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise RtpError("payload type out of range")
        if len(self.csrc) > 15:
            raise RtpError("more than 15 CSRCs")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding out of range")
        b0 = (RTP_VERSION << 6) | (0x20 if self.padding else 0) | len(self.csrc)
        if self.extension is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | self.payload_type
        out = bytearray(struct.pack("!BBHII", b0, b1, self.sequence & 0xFFFF,
                                    self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF))
        for c in self.csrc:
            out += struct.pack("!I", c & 0xFFFFFFFF)
        if self.extension is not None:
            ext = self.extension
            if len(ext.data) % 4:
                raise RtpError("header extension data is not a multiple of 4 octets")
            out += struct.pack("!HH", ext.profile & 0xFFFF, len(ext.data) // 4) + ext.data
        out += self.payload
        if self.padding:
            out += bytes(self.padding - 1) + bytes([self.padding])
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> RtpPacket:
        n = len(data)
        if n < 12:
            raise RtpError("RTP packet shorter than 12 octets")
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6}")
        cc = b0 & 0x0F
        pos = 12 + 4 * cc
        if pos > n:
            raise RtpError("CSRC list beyond the end of the packet")
        csrc = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
        ext = None
        if b0 & 0x10:
            if pos + 4 > n:
                raise RtpError("header extension beyond the end of the packet")
            profile, length = struct.unpack_from("!HH", data, pos)
            end = pos + 4 + 4 * length
            if end > n:
                raise RtpError("header extension longer than the packet")
            ext = HeaderExtension(profile, bytes(data[pos + 4:end]))
            pos = end
        pad = 0
        end = n
        if b0 & 0x20:
            pad = data[-1]
            if pad == 0 or pos + pad > n:
                raise RtpError("bad padding length")
            end = n - pad
        return cls(payload_type=b1 & 0x7F, sequence=seq, timestamp=ts, ssrc=ssrc,
                   payload=bytes(data[pos:end]), marker=bool(b1 & 0x80), csrc=tuple(csrc),
                   extension=ext, padding=pad)


# ---------------------------------------------------------------------------- NTP time

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_from_unix(t: float) -> int:
    """64-bit NTP timestamp (§4) for a Unix time in seconds."""
    return int(round((t + NTP_UNIX_OFFSET) * (1 << 32))) & 0xFFFFFFFFFFFFFFFF


def unix_from_ntp(ntp: int) -> float:
    return ntp / (1 << 32) - NTP_UNIX_OFFSET


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field's unit (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


# ---------------------------------------------------------------------------- RTCP

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

SDES_END = 0
SDES_CNAME = 1


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (§6.4.1)."""

    ssrc: int
    fraction_lost: int          # 0..255: lost/expected since the last report, times 256
    packets_lost: int           # cumulative, signed 24-bit (duplicates can make it negative)
    highest_sequence: int       # extended highest sequence number received
    jitter: int                 # interarrival jitter, timestamp units
    lsr: int = 0                # middle 32 bits of the last SR's NTP timestamp
    dlsr: int = 0               # delay since that SR, 1/65536 s

    def encode(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost)) & 0xFFFFFF
        return struct.pack("!IIIIII", self.ssrc & 0xFFFFFFFF,
                           ((self.fraction_lost & 0xFF) << 24) | lost,
                           self.highest_sequence & 0xFFFFFFFF, self.jitter & 0xFFFFFFFF,
                           self.lsr & 0xFFFFFFFF, self.dlsr & 0xFFFFFFFF)

    @classmethod
    def decode(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fl, ext, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, fl >> 24, lost, ext, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def encode(self) -> bytes:
        body = struct.pack("!IQIII", self.ssrc & 0xFFFFFFFF, self.ntp_timestamp,
                           self.rtp_timestamp & 0xFFFFFFFF, self.packet_count & 0xFFFFFFFF,
                           self.octet_count & 0xFFFFFFFF)
        body += b"".join(r.encode() for r in self.reports)
        return _header(RTCP_SR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def encode(self) -> bytes:
        body = struct.pack("!I", self.ssrc & 0xFFFFFFFF) + b"".join(r.encode() for r in self.reports)
        return _header(RTCP_RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()     # (item type, value), e.g. (SDES_CNAME, b"x")

    @property
    def cname(self) -> str | None:
        for t, v in self.items:
            if t == SDES_CNAME:
                return v.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...] = ()

    def encode(self) -> bytes:
        body = bytearray()
        for ch in self.chunks:
            start = len(body)
            body += struct.pack("!I", ch.ssrc & 0xFFFFFFFF)
            for t, v in ch.items:
                if not 1 <= t <= 255 or len(v) > 255:
                    raise RtpError("bad SDES item")
                body += bytes([t, len(v)]) + v
            body += b"\x00"  # end of list, then pad the chunk to 32 bits with nulls
            body += bytes(-(len(body) - start) % 4)
        return _header(RTCP_SDES, len(self.chunks), bytes(body))


@dataclass(frozen=True, slots=True)
class Bye:
    sources: tuple[int, ...]
    reason: str = ""

    def encode(self) -> bytes:
        body = b"".join(struct.pack("!I", s & 0xFFFFFFFF) for s in self.sources)
        if self.reason:
            r = self.reason.encode()[:255]
            body += bytes([len(r)]) + r
            body += bytes(-len(body) % 4)
        return _header(RTCP_BYE, len(self.sources), body)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """An RTCP packet type this module does not interpret (APP, RTPFB, ...), kept verbatim."""

    packet_type: int
    count: int
    body: bytes = field(default=b"", repr=False)

    def encode(self) -> bytes:
        return _header(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


def _header(pt: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise RtpError("more than 31 items in one RTCP packet")
    if len(body) % 4:
        raise RtpError("RTCP body not a multiple of 4 octets")
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


def encode_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """A compound RTCP packet (§6.1): the packets concatenated, first one SR or RR."""
    return b"".join(p.encode() for p in packets)


def decode_rtcp(data: bytes) -> list[RtcpPacket]:
    """Decode a compound RTCP packet; checks the validity rules of §A.2."""
    out: list[RtcpPacket] = []
    pos = 0
    n = len(data)
    if n < 4:
        raise RtpError("RTCP packet shorter than 4 octets")
    while pos < n:
        if pos + 4 > n:
            raise RtpError("truncated RTCP header")
        b0, pt, length = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTCP version {b0 >> 6}")
        end = pos + 4 + 4 * length
        if end > n:
            raise RtpError("RTCP length beyond the end of the compound packet")
        count = b0 & 0x1F
        body_end = end
        if b0 & 0x20:  # padding: only the last packet of a compound may have it
            if end != n:
                raise RtpError("padding on an RTCP packet that is not the last")
            pad = data[end - 1]
            if pad == 0 or pad > end - pos - 4:
                raise RtpError("bad RTCP padding")
            body_end = end - pad
        body = bytes(data[pos + 4:body_end])
        out.append(_decode_one(pt, count, body))
        pos = end
    return out


def _decode_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    if pt == RTCP_SR:
        if len(body) < 24 + 24 * count:
            raise RtpError("SR shorter than its report count")
        ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", body)
        blocks = tuple(ReportBlock.decode(body, 24 + 24 * i) for i in range(count))
        return SenderReport(ssrc, ntp, rtp_ts, pc, oc, blocks)
    if pt == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtpError("RR shorter than its report count")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, tuple(ReportBlock.decode(body, 4 + 24 * i)
                                          for i in range(count)))
    if pt == RTCP_SDES:
        chunks: list[SdesChunk] = []
        pos = 0
        for _ in range(count):
            if pos + 4 > len(body):
                raise RtpError("SDES chunk beyond the end of the packet")
            (ssrc,) = struct.unpack_from("!I", body, pos)
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= len(body):
                    raise RtpError("SDES item list not terminated")
                t = body[pos]
                if t == SDES_END:
                    pos += 1
                    pos += -pos % 4
                    break
                if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                    raise RtpError("SDES item beyond the end of the packet")
                ln = body[pos + 1]
                items.append((t, body[pos + 2:pos + 2 + ln]))
                pos += 2 + ln
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return SourceDescription(tuple(chunks))
    if pt == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpError("BYE shorter than its source count")
        sources = struct.unpack_from(f"!{count}I", body) if count else ()
        reason = ""
        rest = body[4 * count:]
        if rest:
            ln = rest[0]
            if 1 + ln > len(rest):
                raise RtpError("BYE reason beyond the end of the packet")
            reason = rest[1:1 + ln].decode("utf-8", "replace")
        return Bye(tuple(sources), reason)
    return RtcpUnknown(pt, count, body)


# ---------------------------------------------------------------------------- statistics

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


class SourceStatistics:
    """Reception state for one remote SSRC: RFC 3550 §A.1 (sequence), §A.3 (loss), §A.8 (jitter).

    ``update(seq, timestamp, arrival)`` takes the arrival time in seconds and returns whether
    the packet is valid (False during probation, or for a large jump not yet confirmed).
    """

    def __init__(self, ssrc: int, clock_rate: int, *, probation: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = probation
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit: int | None = None
        self.jitter = 0.0
        self.last_sr_ntp: int | None = None     # middle 32 bits of the last SR we received
        self.last_sr_arrival: float | None = None
        self._started = False
        self._min_sequential = probation

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update_seq(self, seq: int) -> bool:
        """RFC 3550 §A.1 ``update_seq``."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
            if self.probation == 0:
                self._init_seq(seq)
                self.received += 1
                return True
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self._min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # two sequential packets after a big jump: the source restarted (§A.1)
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or a reordered packet, counted as received
        self.received += 1
        return True

    def update_jitter(self, timestamp: int, arrival: float) -> None:
        """RFC 3550 §A.8: J += (|D| - J) / 16, D from transit times in timestamp units."""
        arrival_ts = int(round(arrival * self.clock_rate)) & 0xFFFFFFFF
        transit = (arrival_ts - timestamp) & 0xFFFFFFFF
        if self.transit is not None:
            d = ((transit - self.transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            self.jitter += (abs(d) - self.jitter) / 16.0
        self.transit = transit

    def update(self, seq: int, timestamp: int, arrival: float) -> bool:
        valid = self.update_seq(seq)
        if valid:
            self.update_jitter(timestamp, arrival)
        return valid

    # -- §A.3

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.received == 0:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def sender_report_received(self, ntp_timestamp: int, arrival: float) -> None:
        self.last_sr_ntp = ntp_middle32(ntp_timestamp)
        self.last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """A report block for this source; advances the interval for ``fraction_lost``."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lsr = dlsr = 0
        if self.last_sr_ntp is not None and self.last_sr_arrival is not None:
            lsr = self.last_sr_ntp
            dlsr = max(0, int((now - self.last_sr_arrival) * 65536))
        return ReportBlock(self.ssrc, fraction, self.lost, self.extended_max & 0xFFFFFFFF,
                           int(self.jitter), lsr, dlsr)


def round_trip_time(block: ReportBlock, arrival: float) -> float | None:
    """RTT from a report block about us (§6.4.1): A - LSR - DLSR, seconds; None without an SR."""
    if block.lsr == 0:
        return None
    a = ntp_middle32(ntp_from_unix(arrival))
    rtt = (a - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt & 0x80000000:
        # negative: on a fast path the 1/65536 s rounding of LSR and DLSR can overshoot
        negative = (0x100000000 - rtt) / 65536.0
        return 0.0 if negative < 0.01 else None
    return rtt / 65536.0


# ---------------------------------------------------------------------------- RTCP timing

RTCP_MIN_TIME = 5.0
_COMPENSATION = 2.71828 - 1.5   # e - 3/2, for the "timer reconsideration" bias (§6.3.1)


def rtcp_interval(*, members: int, senders: int, rtcp_bw: float, we_sent: bool,
                  avg_rtcp_size: float, initial: bool, random_fraction: float,
                  min_time: float = RTCP_MIN_TIME) -> float:
    """Seconds until the next RTCP compound (RFC 3550 §6.3.1 and the code of §A.7).

    ``rtcp_bw`` is in octets per second (5% of the session bandwidth), ``avg_rtcp_size``
    in octets including UDP/IP headers, ``random_fraction`` a uniform draw in [0, 1) that
    the caller supplies (this module does not own a random source).
    """
    t_min = min_time / 2 if initial else min_time
    n = max(1, members)
    bw = rtcp_bw
    if senders <= members * 0.25:
        if we_sent:
            bw *= 0.25
            n = max(1, senders)
        else:
            bw *= 0.75
            n = max(1, members - senders)
    t = avg_rtcp_size * n / bw if bw > 0 else t_min
    t = max(t, t_min)
    t *= random_fraction + 0.5
    return t / _COMPENSATION
