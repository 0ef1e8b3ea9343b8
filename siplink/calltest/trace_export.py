"""pcap export of a call's trace: the SIP and STUN datagrams, for Wireshark/tshark.

A view of the same :class:`ice.trace.TraceRecord` trace as the ladder and ``-v`` output.
Records that carry ``raw`` bytes and both addresses are written as UDP packets through
:mod:`siplink.calltest.pcap`: every SIP record names both ends (the transport sets them), and so do
the ICE agent's STUN records (checks and each retransmission, responses) and its TURN records
(Allocate, Refresh, CreatePermission, ChannelBind, Send/Data indications and ChannelData
carrying checks, between our socket and the server). RTP, and TURN messages carrying media
(traced as "rtp"), are left out unless ``protocols`` asks for them (``{"sip", "stun", "turn",
"rtp"}``). Every packet is written as UDP, also SIP that went over TCP/TLS (one message per
packet, so tshark still decodes it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from ice.address import Address
from ice.trace import TraceRecord
from siplink.calltest.pcap import PcapWriter

__all__ = ["DEFAULT_PROTOCOLS", "export_pcap", "write_pcap"]

DEFAULT_PROTOCOLS = frozenset({"sip", "stun", "turn"})


def write_pcap(records: Iterable[TraceRecord], out: object, *,
               sip_local: Address | None = None,
               protocols: Collection[str] = DEFAULT_PROTOCOLS) -> int:
    """Write the chosen records as a pcap to the binary file ``out``; returns the number of
    packets. Records without raw bytes (events, SDP notes) or of other protocols are skipped;
    so are packets whose two ends are of different IP versions (not representable), and
    records that name no local address unless ``sip_local`` stands in for it (records made
    by hand, or the media session's RTP)."""
    writer = PcapWriter(out)  # type: ignore[arg-type]
    for r in sorted(records, key=lambda r: r.time):
        if not r.raw or r.direction not in ("in", "out") or r.protocol not in protocols:
            continue
        local = r.local or sip_local
        if r.remote is None or local is None:
            continue
        src, dst = (local, r.remote) if r.direction == "out" else (r.remote, local)
        try:
            writer.write_udp(r.raw, src, dst, r.time)
        except ValueError:
            continue
    return writer.count


def export_pcap(records: Iterable[TraceRecord], path: str | Path, *,
                sip_local: Address | None = None,
                protocols: Collection[str] = DEFAULT_PROTOCOLS) -> int:
    """:func:`write_pcap` to a file at ``path``."""
    with open(path, "wb") as f:
        return write_pcap(records, f, sip_local=sip_local, protocols=protocols)
