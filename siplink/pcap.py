"""A classic-pcap writer for UDP datagrams (IPv4 and IPv6), for SIP/STUN/RTP traces.

Frames are written with link type ``LINKTYPE_RAW`` (101: the packet starts at the IP
header), with correct IP header and UDP checksums, so Wireshark/tshark decode them as if
captured. :func:`write_trace` exports the ``raw`` bytes of :class:`ice.trace.TraceRecord` s.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import BinaryIO

from ice.trace import TraceRecord

__all__ = ["LINKTYPE_RAW", "PcapWriter", "udp_packet", "write_trace"]

LINKTYPE_RAW = 101
_MAGIC = 0xA1B2C3D4  # microsecond timestamps
_SNAPLEN = 65535

Address = tuple[str, int]


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
