"""Events the ICE agent reports through ``Agent.next_event()``: small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from ice.address import Address
from ice.candidate import Candidate


class Event:
    """Base class of every agent event."""


@dataclass(frozen=True, slots=True)
class CandidateGathered(Event):
    stream: int
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class GatheringComplete(Event):
    stream: int


@dataclass(frozen=True, slots=True)
class GatheringFailed(Event):
    """A STUN or TURN server gave no candidate (unreachable, 401 after credentials, 403 ...).
    Gathering still completes with the candidates it has."""

    stream: int
    component: int
    server: Address
    reason: str


@dataclass(frozen=True, slots=True)
class RelayError(Event):
    """A TURN allocation in use went wrong: a permission or channel refused (403 ...), or
    the allocation lost on refresh."""

    stream: int
    component: int
    server: Address
    reason: str


@dataclass(frozen=True, slots=True)
class CheckSent(Event):
    stream: int
    component: int
    local: Address
    remote: Address
    use_candidate: bool
    triggered: bool


@dataclass(frozen=True, slots=True)
class PairStateChanged(Event):
    stream: int
    component: int
    local: Address
    remote: Address
    state: str           # the PairState value: "Waiting", "Succeeded", ...


@dataclass(frozen=True, slots=True)
class RoleChanged(Event):
    controlling: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SelectedPairChanged(Event):
    stream: int
    component: int
    local: Candidate
    remote: Candidate
    local_base: Address


@dataclass(frozen=True, slots=True)
class IceCompleted(Event):
    stream: int


@dataclass(frozen=True, slots=True)
class IceFailed(Event):
    stream: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConsentExpired(Event):
    stream: int
    component: int


@dataclass(frozen=True, slots=True)
class ApplicationData(Event):
    """A datagram that is not STUN (RTP, RTCP, DTLS ...) on a component's socket."""

    stream: int
    component: int
    data: bytes
    remote: Address
