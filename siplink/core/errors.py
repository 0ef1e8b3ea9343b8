"""The user-agent core's outcome types: one error type, call states, end causes, direction.

Every failed request, call or registration fails its Deferred with :class:`SipError`:
``status`` is the final response that decided it (``None`` when none came), ``reason`` its
phrase or our explanation, ``cause`` a :class:`EndCause`. Causes and directions are string
enums, so ``call.cause == "remote-bye"`` and f-strings keep working.
"""

from __future__ import annotations

from enum import Enum, StrEnum

__all__ = ["CallDirection", "CallState", "EndCause", "SipError"]


class CallState(Enum):
    CALLING = "calling"       # INVITE sent / received, nothing back yet
    RINGING = "ringing"       # 180
    EARLY = "early"           # early dialog with a session (183 with body)
    CONFIRMED = "confirmed"   # 2xx sent/received
    ENDED = "ended"


class CallDirection(StrEnum):
    INCOMING = "in"
    OUTGOING = "out"


class EndCause(StrEnum):
    """Why a call (or a request) ended."""

    LOCAL_BYE = "local-bye"            # we hung up a confirmed call
    REMOTE_BYE = "remote-bye"          # the peer hung up (also a BYE in an early dialog)
    CANCELLED = "cancelled"            # CANCEL before the answer (either side)
    REJECTED = "rejected"              # a final non-2xx response (sent or received)
    REDIRECTED = "redirected"          # we answered 3xx
    TIMEOUT = "timeout"                # no final response (timer B/F, or our setup limit)
    NO_ACK = "no-ack"                  # our 2xx was never ACKed (§13.3.1.4)
    SESSION_EXPIRED = "session-expired"  # RFC 4028 refresh missing or failed
    BAD_CONTACT = "bad-contact"        # the 2xx's Contact cannot be reached
    TRANSPORT = "transport-error"      # the transport could not deliver the request
    MEDIA = "media-rejected"           # the offer/answer could not be accepted
    SHUTDOWN = "shutdown"              # the user agent closed
    ERROR = "error"                    # a local failure (see the log)
    ICE_FAILED = "ice-failed"          # ICE checks failed (or the answer has a=ice-mismatch)
    ICE_REQUIRED = "ice-required"      # the peer does not do ICE and we require it
    ICE_CONSENT = "ice-consent-lost"   # RFC 7675 consent expired


class SipError(Exception):
    """A request, call or registration failed. ``status`` is None when no final response came."""

    def __init__(self, status: int | None, reason: str,
                 cause: EndCause = EndCause.REJECTED) -> None:
        super().__init__(f"{status} {reason}" if status is not None else reason)
        self.status = status
        self.reason = reason
        self.cause = cause

    @property
    def timed_out(self) -> bool:
        return self.cause == EndCause.TIMEOUT
