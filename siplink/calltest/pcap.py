"""Classic pcap for UDP datagrams (IPv4 and IPv6): a writer for SIP/STUN/RTP traces, a reader.

Frames are written with link type ``LINKTYPE_RAW`` (101: the packet starts at the IP
header), with correct IP header and UDP checksums, so Wireshark/tshark decode them as if
captured. :func:`write_trace` exports the ``raw`` bytes of :class:`ice.trace.TraceRecord` s.
:func:`read_pcap` returns the UDP datagrams of a capture (Ethernet, raw IP, Linux cooked,
BSD loopback link types; microsecond or nanosecond, either byte order); anything else in
the file is skipped, and a malformed file raises :class:`PcapError`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ice.address import Address
from ice.trace import TraceRecord

__all__ = [
    "LINKTYPE_RAW",
    "PcapError",
    "PcapWriter",
    "UdpDatagram",
    "read_pcap",
    "udp_packet",
    "write_trace",
]

LINKTYPE_RAW = 101
_MAGIC = 0xA1B2C3D4  # microsecond timestamps
_SNAPLEN = 65535


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_packet(payload: bytes, src: Address, dst: Address, *, ident: int = 0) -> bytes:
    """An IPv4 or IPv6 packet carrying ``payload`` in UDP from ``src`` to ``dst``."""
    s_ip = ipaddress.ip_address(src[0])
    d_ip = ipaddress.ip_address(dst[0])
    if s_ip.version != d_ip.version:
        raise ValueError("source and destination are of different IP versions")
    length = 8 + len(payload)
    if length > 0xFFFF:
        raise ValueError("UDP payload too large")
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    if s_ip.version == 4:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!BBH", 0, 17, length)
    else:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!IxxxB", length, 17)
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    if s_ip.version == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64,
                          17, 0, s_ip.packed, d_ip.packed)
        hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        return hdr + udp
    hdr = struct.pack("!IHBB16s16s", 0x60000000, length, 17, 64, s_ip.packed, d_ip.packed)
    return hdr + udp


class PcapWriter:
    """Writes a pcap global header, then one record per :meth:`write_udp` call."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ident = 0
        self.count = 0
        out.write(struct.pack("<IHHiIII", _MAGIC, 2, 4, 0, 0, _SNAPLEN, LINKTYPE_RAW))

    def write_udp(self, payload: bytes, src: Address, dst: Address, timestamp: float) -> None:
        self._ident = (self._ident + 1) & 0xFFFF
        pkt = udp_packet(payload, src, dst, ident=self._ident)
        sec = int(timestamp)
        usec = int(round((timestamp - sec) * 1_000_000))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self._out.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + pkt)
        self.count += 1


def write_trace(records: Iterable[TraceRecord], out: BinaryIO, *,
                default_local: Address = ("127.0.0.1", 5060),
                default_remote: Address = ("127.0.0.1", 5061)) -> int:
    """Export trace records that carry ``raw`` bytes as UDP packets; returns how many."""
    w = PcapWriter(out)
    for r in records:
        if not r.raw or r.direction == "event":
            continue
        local = r.local or default_local
        remote = r.remote or default_remote
        src, dst = (local, remote) if r.direction == "out" else (remote, local)
        w.write_udp(r.raw, src, dst, r.time)
    return w.count


# ---------------------------------------------------------------------------- reading


class PcapError(ValueError):
    """A file that is not a classic pcap capture, or a truncated one."""


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    time: float
    src: Address
    dst: Address
    payload: bytes


_LINK_OFFSETS = {1: 14, 101: 0, 228: 0, 229: 0, 113: 16, 0: 4, 108: 4}
_MAX_RECORD = 262144


def _ip_udp(frame: bytes) -> tuple[Address, Address, bytes] | None:
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4:
        if len(frame) < 20:
            return None
        ihl = (frame[0] & 0x0F) * 4
        if frame[9] != 17 or len(frame) < ihl + 8:
            return None
        if struct.unpack_from("!H", frame, 6)[0] & 0x3FFF:
            return None  # a fragment: not reassembled
        src_ip = str(ipaddress.IPv4Address(frame[12:16]))
        dst_ip = str(ipaddress.IPv4Address(frame[16:20]))
        udp = frame[ihl:]
    elif version == 6:
        if len(frame) < 48 or frame[6] != 17:
            return None
        src_ip = str(ipaddress.IPv6Address(frame[8:24]))
        dst_ip = str(ipaddress.IPv6Address(frame[24:40]))
        udp = frame[40:]
    else:
        return None
    sport, dport, length = struct.unpack_from("!HHH", udp)
    if length < 8 or length > len(udp):
        return None
    return (src_ip, sport), (dst_ip, dport), bytes(udp[8:length])


def read_pcap(data: bytes) -> list[UdpDatagram]:
    """The UDP datagrams in a classic pcap file's bytes, in file order."""
    if len(data) < 24:
        raise PcapError("file shorter than a pcap header")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise PcapError("not a classic pcap file (pcapng is not supported)")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype not in _LINK_OFFSETS:
        raise PcapError(f"unsupported link type {linktype}")
    skip = _LINK_OFFSETS[linktype]
    out: list[UdpDatagram] = []
    pos = 24
    while pos < len(data):
        if pos + 16 > len(data):
            raise PcapError("truncated record header")
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, pos)
        pos += 16
        if incl > _MAX_RECORD or pos + incl > len(data):
            raise PcapError("truncated or oversized record")
        frame = data[pos:pos + incl]
        pos += incl
        if linktype == 1:
            ethertype = struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
            off = 14
            if ethertype == 0x8100 and len(frame) >= 18:  # one VLAN tag
                ethertype = struct.unpack_from("!H", frame, 16)[0]
                off = 18
            if ethertype not in (0x0800, 0x86DD):
                continue
            frame = frame[off:]
        else:
            frame = frame[skip:]
        parsed = _ip_udp(frame)
        if parsed is None:
            continue
        src, dst, payload = parsed
        t = sec + frac / (1e9 if nano else 1e6)
        out.append(UdpDatagram(t, src, dst, payload))
    return out
