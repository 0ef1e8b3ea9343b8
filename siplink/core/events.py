"""What the user-agent core reports (``UserAgentCore.next_event()``): small frozen dataclasses.

The driver answers some of them: :class:`ReofferReceived` and :class:`OfferRequested` with
``answer_reoffer`` (or ``refuse_reoffer`` / ``send_reinvite``), :class:`ResolveHost` with
``host_resolved``, :class:`InfoReceived` with ``answer_info``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from siplink.core.errors import CallState, EndCause
from siplink.sip.message import Request, Response

if TYPE_CHECKING:
    from siplink.core.client_request import ClientRequest
    from siplink.core.errors import SipError
    from siplink.core.invite_session import InviteSession

__all__ = [
    "AckReceived",
    "AnswerReceived",
    "CallStateChanged",
    "CoreEvent",
    "EarlyDialogResponse",
    "InDialogRequest",
    "InfoReceived",
    "IncomingCall",
    "OfferRequested",
    "ReofferReceived",
    "RequestCompleted",
    "ResolveHost",
]



@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE passed every check; the application rings, answers or rejects it."""

    session: InviteSession


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    session: InviteSession
    state: CallState
    cause: EndCause | None = None
    status: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """The peer's answer to our offer (in a 2xx, a reliable 1xx, or the ACK of our 2xx)."""

    session: InviteSession
    sdp: bytes


@dataclass(frozen=True, slots=True)
class ReofferReceived:
    """An offer in a re-INVITE or UPDATE: reply with ``answer_reoffer(token, answer)`` or
    ``refuse_reoffer(token, status, ...)``."""

    session: InviteSession
    token: int
    sdp: bytes
    method: str


@dataclass(frozen=True, slots=True)
class OfferRequested:
    """The session needs our offer: for the 2xx to an INVITE or re-INVITE without SDP
    (``token`` then names that request), or for a re-INVITE we send (``token`` 0: glare
    retry or ``reinvite``). Reply with ``answer_reoffer`` / ``send_reinvite``."""

    session: InviteSession
    token: int
    method: str


@dataclass(frozen=True, slots=True)
class InDialogRequest:
    session: InviteSession
    request: Request


@dataclass(frozen=True, slots=True)
class InfoReceived:
    """An INFO of an Info-Package the session receives (RFC 6086 §4.2.2, in its Recv-Info);
    answer it with ``answer_info(token, status, reason, now)``."""

    session: InviteSession
    token: int
    package: str
    request: Request


@dataclass(frozen=True, slots=True)
class EarlyDialogResponse:
    """UAC: a provisional response (101-199) with a To tag: an early dialog exists and
    requests (INFO, UPDATE) can be sent in it (RFC 3261 §12.1)."""

    session: InviteSession
    response: Response


@dataclass(frozen=True, slots=True)
class AckReceived:
    """UAS: the ACK of the session's initial 2xx arrived: the peer has our answer (or
    offer) and the dialog is confirmed on both sides."""

    session: InviteSession


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """A :class:`ClientRequest` ended: its final response, or ``error`` (no response)."""

    request: ClientRequest
    response: Response | None
    error: SipError | None = None


@dataclass(frozen=True, slots=True)
class ResolveHost:
    """Requests wait on the servers of a URI whose host is the name ``name``: its ``port``
    and ``transport`` parameter (None: not in the URI) and ``secure`` (``sips:``), as RFC 3263
    locates them.  Answer with ``targets_resolved(event, targets, error, now)`` (the ordered
    targets; later ones are tried when an earlier one fails, §4.3) or, for an address
    lookup only, ``host_resolved(name, address, now)``."""

    name: str
    port: int | None = None
    transport: str | None = None
    secure: bool = False


CoreEvent = (IncomingCall | CallStateChanged | AnswerReceived | ReofferReceived
             | OfferRequested | InDialogRequest | InfoReceived | EarlyDialogResponse
             | AckReceived | RequestCompleted | ResolveHost)
