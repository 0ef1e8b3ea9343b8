"""The trace every protocol core keeps: ``(time, direction, summary, detail)`` records.

It lives in the lowest layer so that ``ice``, ``sdp`` and ``siplink`` cores all emit the same
record type; ladder diagrams, pcap export, ``-v`` output and call-test reports are views of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ice.address import Address

Direction = Literal["in", "out", "event"]


@dataclass(frozen=True, slots=True)
class TraceRecord:
    time: float                 # the ``now`` the core was given when this happened
    direction: Direction        # "in" received, "out" sent, "event" a state change
    summary: str                # one line a person can read, e.g. "Binding request 1.2.3.4:5 -> ..."
    detail: str = ""            # longer text (a whole SIP message, decoded attributes)
    local: Address | None = None   # local transport address, when a packet
    remote: Address | None = None  # remote transport address, when a packet
    protocol: str = ""          # "sip", "stun", "turn", "rtp", "ice"
    raw: bytes = b""            # the datagram/segment itself, for pcap export


@dataclass
class Trace:
    """An append-only list of records, bounded so a long call cannot grow it forever."""

    limit: int = 100_000
    records: list[TraceRecord] = field(default_factory=list)
    dropped: int = 0

    def add(self, record: TraceRecord) -> None:
        if len(self.records) >= self.limit:
            self.dropped += 1
            return
        self.records.append(record)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)
