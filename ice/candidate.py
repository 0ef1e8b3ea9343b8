"""ICE candidates (RFC 8445 §5.1): the data type, priorities and foundations.

This module holds candidates as data only. The SDP ``a=candidate`` grammar is parsed and
written in ``sdp/`` (on sdp-transform); the ICE agent builds and consumes these objects.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from ice.address import Address


class CandidateType(enum.Enum):
    HOST = "host"
    SERVER_REFLEXIVE = "srflx"
    PEER_REFLEXIVE = "prflx"
    RELAYED = "relay"


# RFC 8445 §5.1.2.2 recommended type preferences.
TYPE_PREFERENCE: dict[CandidateType, int] = {
    CandidateType.HOST: 126,
    CandidateType.PEER_REFLEXIVE: 110,
    CandidateType.SERVER_REFLEXIVE: 100,
    CandidateType.RELAYED: 0,
}

COMPONENT_RTP = 1
COMPONENT_RTCP = 2


def candidate_priority(type_preference: int, local_preference: int, component: int) -> int:
    """RFC 8445 §5.1.2.1: (2^24)*type pref + (2^8)*local pref + (256 - component id)."""
    if not 0 <= type_preference <= 126:
        raise ValueError(f"type preference {type_preference} out of range 0..126")
    if not 0 <= local_preference <= 65535:
        raise ValueError(f"local preference {local_preference} out of range 0..65535")
    if not 1 <= component <= 256:
        raise ValueError(f"component id {component} out of range 1..256")
    return (type_preference << 24) + (local_preference << 8) + (256 - component)


def compute_foundation(
    kind: CandidateType, base_address: str, transport: str = "udp", server: str | None = None
) -> str:
    """RFC 8445 §5.1.1.3: same type, base IP, server and transport -> same foundation.

    Returns a short token of ice-chars (at most 32 characters, RFC 8839 §5.1).
    """
    key = f"{kind.value}|{base_address}|{transport.lower()}|{server or ''}".encode()
    return hashlib.blake2s(key, digest_size=5).hexdigest()


def pair_priority(controlling_priority: int, controlled_priority: int) -> int:
    """RFC 8445 §6.1.2.3: 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0)."""
    g, d = controlling_priority, controlled_priority
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate, as exchanged in SDP ``a=candidate`` (RFC 8839 §5.1)."""

    foundation: str
    component: int
    transport: str            # "udp" or "tcp" (lower case)
    priority: int
    address: str              # IP address (or FQDN as received; the agent resolves it)
    port: int
    type: CandidateType
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None          # "active" | "passive" | "so" for TCP candidates
    generation: int | None = None
    extensions: tuple[tuple[str, str], ...] = field(default=())  # other name/value pairs, in order

    @property
    def transport_address(self) -> Address:
        return (self.address, self.port)

    def __str__(self) -> str:
        rel = f" raddr {self.related_address} rport {self.related_port}" if self.related_address else ""
        return (f"{self.type.value} {self.transport} {self.address}:{self.port}"
                f" c{self.component} prio {self.priority}{rel}")
