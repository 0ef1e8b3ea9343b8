"""What one call's media did: :class:`MediaReport` (state, timing, selected pairs, statistics).

The report is written by :class:`~siplink.media.icesession.IceMediaSession` (lifecycle state,
cause, when the offer/answer started and when ICE connected) and reads the
:class:`~siplink.media.ice_transport.IceTransport` (role, pairs, checks, restarts) and the
:class:`~siplink.media.audio_channel.AudioChannel` (RTP/RTCP statistics) through their public
attributes; it never changes them.  :meth:`MediaReport.summary` is what ``Call.ice`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ice.address import Address

if TYPE_CHECKING:
    from siplink.media.audio_channel import AudioChannel
    from siplink.media.ice_transport import IceTransport

__all__ = ["MediaReport", "PairInfo", "fmt_address"]


def fmt_address(addr: Address) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


@dataclass(frozen=True, slots=True)
class PairInfo:
    """The selected pair of one component, as the call reports it."""

    component: int
    local_type: str
    local_address: Address
    remote_type: str
    remote_address: Address

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component,
                "local": {"type": self.local_type, "address": fmt_address(self.local_address)},
                "remote": {"type": self.remote_type,
                           "address": fmt_address(self.remote_address)}}

    def __str__(self) -> str:
        return (f"c{self.component} {self.local_type} {fmt_address(self.local_address)} -> "
                f"{self.remote_type} {fmt_address(self.remote_address)}")


class MediaReport:
    """The session's lifecycle and its summary (module docstring)."""

    def __init__(self, transport: IceTransport, channel: AudioChannel) -> None:
        self.transport = transport
        self.channel = channel
        self.state = "new"          # new, gathering, checking, connected, failed, closed
        self.cause: str | None = None
        self.started_at: float | None = None     # make_offer / make_answer first called
        self.connected_at: float | None = None   # ICE completed (first time)
        self.updated_offers = 0     # RFC 5245 §9.1.2.2 updated offers answered

    @property
    def ice_used(self) -> bool:
        """False once the peer's SDP had no ICE (no checks): the transport knows."""
        return self.transport.ice_used

    @property
    def time_to_connected(self) -> float | None:
        """Seconds from the first offer/answer built to ICE completed."""
        if self.connected_at is None or self.started_at is None:
            return None
        return self.connected_at - self.started_at

    def summary(self) -> dict[str, Any]:
        """What ICE and media did, JSON-ready."""
        t = self.transport
        ttc = self.time_to_connected
        out: dict[str, Any] = {
            "state": self.state,
            "ice_used": self.ice_used,
            "cause": self.cause,
            "role": None if t.controlling is None else (
                "controlling" if t.controlling else "controlled"),
            "selected_pairs": [p.as_dict() for _, p in sorted(t.selected_pairs.items())],
            "time_to_connected_ms": None if ttc is None else round(ttc * 1000, 1),
            "checks_sent": t.checks_sent,
            "restarts": t.restarts,
            "updated_offers": self.updated_offers,
        }
        stream = self.channel.stream
        if not self.ice_used and stream is not None:
            out["media_to"] = {"rtp": fmt_address(stream.remote) if stream.remote else None,
                               "rtcp": (fmt_address(stream.remote_rtcp)
                                        if stream.remote_rtcp else None)}
        if stream is not None:
            st = stream.stats()
            out["media"] = {
                "codec": stream.codec.name,
                "packets_sent": st.packets_sent, "packets_received": st.packets_received,
                "packets_lost": st.packets_lost, "remote_packets_lost": st.remote_packets_lost,
                "jitter_ms": round(st.jitter * 1000, 2),
                "rtt_ms": None if st.rtt is None else round(st.rtt * 1000, 2),
                "rtcp_sent": st.rtcp_sent, "rtcp_received": st.rtcp_received,
                "dtmf_sent": st.dtmf_sent, "dtmf_received": st.dtmf_received,
                "dropped_before_start": st.dropped_before_start + t.dropped_before_media,
                "kept_before_start": t.kept_before_media,
            }
        return out

    def summary_line(self) -> str:
        """One line on what ICE did: ``ICE: not used by the peer`` for a plain-RTP peer."""
        if not self.ice_used:
            return "ICE: not used by the peer"
        pairs = ", ".join(str(p) for _, p in sorted(self.transport.selected_pairs.items()))
        ttc = self.time_to_connected
        return (f"ICE: {self.state}" + (f" in {ttc * 1000:.0f} ms" if ttc is not None else "")
                + (f": {pairs}" if pairs else "") + (f" ({self.cause})" if self.cause else ""))
