"""One INVITE dialog usage (RFC 3261 §12-§15), UAC or UAS: the state the core keeps for it.

:class:`InviteSession` holds the call's state (:class:`~siplink.core.errors.CallState`), its early and confirmed
dialogs, the INVITE and its transaction, offer/answer bookkeeping (late offer, an offer in our
2xx awaiting the ACK's answer), reliable provisionals (RFC 3262), the session timer (RFC
4028), glare retries (§14.1) and its own deadlines. The transitions are made by
:class:`~siplink.core.user_agent.UserAgentCore`, which owns every session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siplink.core.account import Account
from siplink.core.dialog import Dialog
from siplink.core.errors import CallDirection, CallState, EndCause
from siplink.core.events import CallStateChanged
from siplink.core.prack import RSeqTracker
from siplink.core.session_timer import SessionTimer
from siplink.core.transaction import ServerKey, Target
from siplink.sip.message import Request

if TYPE_CHECKING:
    from siplink.core.client_request import ClientRequest, Headers
    from siplink.core.user_agent import UserAgentCore

__all__ = ["InviteSession"]



class InviteSession:
    """One INVITE dialog usage, UAC or UAS, and everything RFC 3261/3262/3264/3311/4028 keep
    for it. Created by :meth:`UserAgentCore.invite` or for an incoming INVITE."""

    # one per call, kept for the whole call: slots make it about half the size of a dict
    __slots__ = ("_timers", "account", "acked", "answered", "cancel_requested", "cancel_sent",
                 "cause", "context", "core", "creq", "dialog", "direction", "early_dialogs",
                 "extra_headers", "final_sent", "info_packages", "invite", "local_tag",
                 "offer_in_2xx", "options", "provisional_seen", "reason", "reinvite",
                 "reinvite_retry_at", "rel100", "remote_sdp", "rseq", "rseq_seen", "se_offer",
                 "server_key", "session_timer", "state", "status", "target", "__weakref__")

    def __init__(self, core: UserAgentCore, direction: CallDirection,
                 account: Account | None = None) -> None:
        self.core = core
        self.direction = direction
        self.account = account
        self.state = CallState.CALLING
        self.cause: EndCause | None = None
        self.status: int | None = None
        self.reason = ""
        self.dialog: Dialog | None = None
        self.early_dialogs: dict[str, Dialog] = {}
        self.invite: Request | None = None        # the (latest) initial INVITE
        self.server_key: ServerKey | None = None  # UAS: the INVITE transaction
        self.target: Target | None = None         # where the INVITE went / came from
        self.remote_sdp = b""                     # the peer's last session description
        self.local_tag = core.new_tag()
        self.final_sent = False                   # UAS: the INVITE has its final response
        self.answered = False                     # a 2xx was sent or received
        self.cancel_requested = False
        self.cancel_sent = False
        self.provisional_seen = False
        self.creq: ClientRequest | None = None    # UAC: the INVITE
        self.rel100 = False                       # UAS: the INVITE supports 100rel
        self.rseq = 0                             # UAS: last RSeq sent
        self.rseq_seen: dict[str, RSeqTracker] = {}   # UAC: per early dialog
        self.session_timer: SessionTimer | None = None
        self.se_offer = 0                         # UAC: Session-Expires we ask for
        self.offer_in_2xx: int | None = None      # CSeq of our 2xx that carries an offer
        self.reinvite: ClientRequest | None = None    # our outstanding re-INVITE
        self.reinvite_retry_at: float | None = None   # §14.1 glare retry
        self.extra_headers: Headers = []
        # extensions of this session's media (set by the driver before the INVITE or the
        # answer): Info-Packages it receives (RFC 6086 Recv-Info) and option tags it adds to
        # Supported (e.g. "trickle-ice", RFC 8840 §4.1)
        self.info_packages: tuple[str, ...] = ()
        self.options: tuple[str, ...] = ()
        self.acked = False                        # UAS: the ACK of the initial 2xx came
        self.context: Any = None                  # the driver's Call
        self._timers: dict[str, float] = {}       # name -> deadline

    def __repr__(self) -> str:
        return f"<InviteSession {self.direction} {self.state.value} {self.call_id}>"

    @property
    def call_id(self) -> str:
        return self.invite.call_id if self.invite is not None else ""

    @property
    def transport(self) -> str:
        return self.target.transport if self.target is not None else self.core.default_transport

    # --------------------------------------------------------------- timers
    def set_timer(self, name: str, deadline: float | None) -> None:
        if deadline is None:
            self._timers.pop(name, None)
        else:
            self._timers[name] = deadline
            self.core._arm(self, deadline)

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def fire_timers(self, now: float) -> None:
        for name, deadline in sorted(self._timers.items(), key=lambda kv: kv[1]):
            if deadline <= now and self._timers.get(name) == deadline:
                del self._timers[name]
                self.core._fire(self, name)

    # --------------------------------------------------------------- state
    def _set_state(self, state: CallState, cause: EndCause | None = None,
                   status: int | None = None, reason: str = "") -> None:
        if self.state is CallState.ENDED or (state is self.state and cause is None):
            return
        self.state = state
        if status is not None:
            self.status = status
        if state is CallState.CONFIRMED:
            self.answered = True
            self.set_timer("no-answer", None)
        self.core._emit(CallStateChanged(self, state, cause, status, reason))

    def _end(self, cause: EndCause, status: int | None = None, reason: str = "") -> None:
        if self.state is CallState.ENDED:
            return
        self.cause = cause
        self.reason = reason or self.reason
        self._timers.clear()
        self.core._forget(self)
        self._set_state(CallState.ENDED, cause, status, reason)
