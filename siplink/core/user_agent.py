"""The user-agent core (RFC 3261 §8, §12-§15; RFC 3262, 3264, 3311, 4028), sans-I/O.

:class:`UserAgentCore` is the transaction user on top of one
:class:`~siplink.core.transaction.TransactionLayer`. Like the layer and the ICE agent it is a plain
state machine: every input carries ``now`` (``handle_layer_event``, the API calls,
``handle_timer``), its deadlines come out of ``get_timer()``, and what happened comes out of
``next_event()`` as small frozen dataclasses. It never touches a socket, the clock or the
reactor, and it resolves no names: a request toward a host name waits until the driver answers
:class:`ResolveHost` with ``host_resolved(name, address, now)``. Tags, Call-IDs, branches and
the first RSeq come from the injected ``random.Random``.

One :class:`InviteSession` per INVITE dialog usage (either direction) holds the offer/answer
state, the early and confirmed dialogs, reliable provisionals, the session timer, glare
retries and the ACK of every 2xx. Session descriptions stay opaque bytes: when the session
needs an answer or an offer it asks through an event (:class:`ReofferReceived`,
:class:`OfferRequested`) and the driver replies with ``answer_reoffer``; answers it receives
come out as :class:`AnswerReceived`. Every outgoing request other than ACK and CANCEL is a
:class:`ClientRequest`: one request through its transactions, retried with credentials on
401/407 (also in a dialog) and on 422, ending in :class:`RequestCompleted`.
"""

from __future__ import annotations

import ipaddress
import random
from collections import deque
from collections.abc import Callable

from twisted.logger import Logger

from ice.address import format_address, format_host
from siplink.core.account import Account
from siplink.core.client_request import ClientRequest, Headers
from siplink.core.dialog import Dialog, DialogId
from siplink.core.errors import CallDirection, CallState, EndCause, SipError
from siplink.core.events import (
    AckReceived,
    AnswerReceived,
    CoreEvent,
    EarlyDialogResponse,
    IncomingCall,
    InDialogRequest,
    InfoReceived,
    OfferRequested,
    ReofferReceived,
    RequestCompleted,
    ResolveHost,
)
from siplink.core.invite_session import InviteSession
from siplink.core.prack import RSeqTracker, parse_rack, parse_rseq, requires, supports
from siplink.core.session_timer import (
    SessionTimer,
    TooSmall,
    expire_delay,
    refresh_delay,
    uac_result,
    uas_negotiate,
)
from siplink.core.transaction import (
    AckNotReceived,
    CancelReceived,
    ClientKey,
    PrackNotReceived,
    RequestReceived,
    ResponseReceived,
    ServerKey,
    Target,
    TransactionLayer,
    TransactionTimeout,
    TransportFailed,
)
from siplink.core.transaction import (
    Event as LayerEvent,
)
from siplink.sip.digest import DigestError, DigestServer, parse_challenge
from siplink.sip.message import (
    MAGIC_COOKIE,
    Request,
    Response,
    SipParseError,
    make_request,
    make_response,
)
from siplink.sip.uri import SipUri

log = Logger()
# a wildcard listen address: bound to every interface, an address nobody can send to
_UNSPECIFIED = frozenset({"0.0.0.0", "::", ""})

__all__ = [
    "ACCEPT",
    "ALLOW",
    "SUPPORTED",
    "USER_AGENT",
    "UserAgentCore",
    "as_uri",
]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK"
SUPPORTED = frozenset({"100rel", "timer"})
SUPPORTED_HEADER = ", ".join(sorted(SUPPORTED))
ACCEPT = "application/sdp"
ACCEPT_ENCODING = "identity"
ACCEPT_LANGUAGE = "en"
KNOWN_NOT_ALLOWED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "PUBLISH", "MESSAGE"})
USER_AGENT = "siplink"


# ----------------------------------------------------------------------------- the core


class UserAgentCore:
    """The transaction user of one user agent (see the module docstring)."""

    def __init__(self, layer: TransactionLayer, *, rng: random.Random | None = None,
                 user: str = "siplink", user_agent: str = USER_AGENT,
                 local: Callable[[str], Target] | None = None,
                 default_transport: str = "udp", session_expires: int = 1800,
                 min_se: int = 90, no_answer_timeout: float = 180.0) -> None:
        self.layer = layer
        self.rng = rng or random.Random()
        self.user = user
        self.user_agent = user_agent
        self._local = local or (lambda transport: Target(transport, "127.0.0.1", 5060))
        self.default_transport = default_transport
        self.session_expires = session_expires   # offered on INVITE (0: no session timer)
        self.min_se = min_se
        # a call not answered in this many seconds is cancelled (UAC, like timer C) or
        # rejected 480 (UAS: the application never decided); 0 disables
        self.no_answer_timeout = no_answer_timeout
        self.authenticator: DigestServer | None = None
        self.sessions: dict[str, InviteSession] = {}          # Call-ID -> session
        self.dialogs: dict[DialogId, InviteSession] = {}
        self._requests: dict[ClientKey, ClientRequest] = {}
        # the ACK we sent for each 2xx to INVITE: a retransmitted 2xx gets it again
        self._acks: dict[str, dict[tuple[int, str], tuple[Request, Target]]] = {}
        # RFC 3263 lookups the driver runs: (name, port, transport, secure) -> waiters
        self._pending_resolve: dict[tuple[str, int | None, str | None, bool],
                                    list[Callable[[list[Target], str], None]]] = {}
        self.resolved: dict[str, str] = {}                    # host name -> address
        # (address, port) -> the host name it was resolved from, for TLS (RFC 5922 §7.1)
        self.server_names: dict[tuple[str, int], str] = {}
        self._reoffers: dict[int, tuple[InviteSession, Request, ServerKey]] = {}
        self._infos: dict[int, tuple[InviteSession, Request, ServerKey]] = {}
        self._tokens = 0
        self._events: deque[CoreEvent] = deque()
        self._timed: dict[int, InviteSession] = {}             # id -> session with timers
        self._now = 0.0
        self.stats = {"calls_in": 0, "calls_out": 0, "answered": 0, "ended": 0}

    # --------------------------------------------------------------- sans-I/O contract
    def next_event(self) -> CoreEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        mine = min((d for s in self._timed.values() if (d := s.next_deadline()) is not None),
                   default=None)
        theirs = self.layer.get_timer()
        if mine is None:
            return theirs
        return mine if theirs is None else min(mine, theirs)

    def handle_timer(self, now: float) -> None:
        self._now = now
        self.layer.handle_timer(now)
        for s in list(self._timed.values()):
            s.fire_timers(now)
            if s.next_deadline() is None:
                self._timed.pop(id(s), None)

    def state_sizes(self) -> dict[str, int]:
        return {"sessions": len(self.sessions), "dialogs": len(self.dialogs),
                "requests": len(self._requests), "acks": len(self._acks),
                "pending_resolve": len(self._pending_resolve), "reoffers": len(self._reoffers),
                "infos": len(self._infos),
                "timed_sessions": len(self._timed), "events": len(self._events)}

    def _emit(self, ev: CoreEvent) -> None:
        self._events.append(ev)

    def _arm(self, s: InviteSession, deadline: float) -> None:
        self._timed[id(s)] = s

    def _token(self) -> int:
        self._tokens += 1
        return self._tokens

    # --------------------------------------------------------------- identifiers
    def new_tag(self) -> str:
        return f"{self.rng.getrandbits(48):012x}"

    def new_branch(self) -> str:
        return f"{MAGIC_COOKIE}{self.rng.getrandbits(64):016x}"

    def new_call_id(self) -> str:
        return f"{self.rng.getrandbits(96):024x}"

    def local(self, transport: str) -> Target:
        return self._local(transport)

    def via(self, transport: str) -> str:
        loc = self.local(transport)
        return f"SIP/2.0/{transport.upper()} {format_address(loc.host, loc.port)};branch={self.new_branch()};rport"

    def contact(self, transport: str, user: str | None = None,
                reached: SipUri | None = None) -> str:
        """Our Contact URI on ``transport``. Listening on a wildcard (``0.0.0.0``, ``::``),
        the address a request ``reached`` us at (its numeric Request-URI host) stands in
        for the unspecified one, which no peer can send to."""
        loc = self.local(transport)
        host = loc.host
        if host in _UNSPECIFIED and reached is not None and _is_ip(reached.host.strip("[]")):
            host = reached.host.strip("[]")
        return contact_uri(user or self.user, host, loc.port, transport)

    def warning(self, code: int, text: str) -> str:
        """A Warning header value (§20.43): ``code host "text"``."""
        clean = text.replace("\\", "").replace('"', "'")[:200]
        host = self.local(self.default_transport).host
        agent = "siplink" if host in _UNSPECIFIED else format_host(host)   # a pseudonym
        return f'{code} {agent} "{clean}"'

    def capabilities(self, s: InviteSession | None = None) -> Headers:
        """§11.2: what an OPTIONS 200 (and our 2xx to INVITE) says we support; for a
        session, also its media's option tags and Info-Packages (:meth:`extensions`)."""
        return [("Allow", ALLOW), ("Accept", ACCEPT), ("Accept-Encoding", ACCEPT_ENCODING),
                ("Accept-Language", ACCEPT_LANGUAGE), *self.extensions(s)]

    @staticmethod
    def extensions(s: InviteSession | None) -> Headers:
        """Supported (ours plus the session's option tags, e.g. ``trickle-ice``) and, when
        the session receives Info-Packages, Recv-Info (RFC 6086 §5.2.2: in the INVITE and
        in the responses that create or confirm the dialog)."""
        if s is None or not (s.options or s.info_packages):
            return [("Supported", SUPPORTED_HEADER)]
        tags = ", ".join(sorted(SUPPORTED | set(s.options)))
        hdrs: Headers = [("Supported", tags)]
        if s.info_packages:
            hdrs.append(("Recv-Info", ", ".join(s.info_packages)))
        return hdrs

    # --------------------------------------------------------------- targets
    def target_of(self, uri: SipUri, transport: str | None = None,
                  then: Callable[[Target | None, str], None] | None = None,
                  rest: list[Target] | None = None) -> Target | None:
        """§8.1.2 / RFC 3263: where a request to ``uri`` goes. A numeric host gives it at
        once; a name is located by the driver (:class:`ResolveHost`: NAPTR, SRV, A/AAAA) and
        ``then(target, error)`` runs once it answers with the first target; the others, to
        try when it fails (§4.3), are appended to ``rest``. Returns the target when known
        now."""
        explicit = (transport or uri.params.get("transport") or "").lower() or None
        secure = uri.scheme == "sips"
        tp = explicit or ("tls" if secure else self.default_transport)
        name = (uri.params.get("maddr") or uri.host).strip("[]")
        # a numeric host, or a name host_resolved gave an address for: known now
        address = name if _is_ip(name) else self.resolved.get(name.lower())
        if address is not None:
            target = Target(tp, address, uri.port or _default_port(tp))
            if tp == "tls" and address != name:
                self.server_names[(address, target.port)] = name   # RFC 5922: the name
            if then is not None:
                then(target, "")
            return target
        if then is not None:
            def resolved(targets: list[Target], error: str) -> None:
                if not targets:
                    then(None, error or f"cannot resolve {name!r}")
                    return
                for t in targets:
                    if t.transport == "tls":
                        # RFC 5922 §4: the certificate names the URI's domain (also via SRV)
                        self.server_names[(t.host, t.port)] = name
                if rest is not None:
                    rest.extend(targets[1:])
                then(targets[0], "")
            key = (name.lower(), uri.port, explicit, secure)
            waiting = self._pending_resolve.setdefault(key, [])
            waiting.append(resolved)
            if len(waiting) == 1:
                self._emit(ResolveHost(name, uri.port, explicit, secure))
        return None

    def targets_resolved(self, ev: ResolveHost, targets: list[Target], error: str,
                         now: float) -> None:
        """The driver's RFC 3263 answer to ``ev``: the ordered targets (empty: ``error``)."""
        self._now = now
        key = (ev.name.lower(), ev.port, ev.transport, ev.secure)
        for fn in self._pending_resolve.pop(key, []):
            fn(list(targets), error)

    def host_resolved(self, name: str, address: str | None, now: float) -> None:
        """An address-only answer to :class:`ResolveHost` (None: the name does not
        resolve): the default port and transport of each waiting URI."""
        self._now = now
        lname = name.lower()
        if address is not None:
            self.resolved[lname] = address
        for key in [k for k in self._pending_resolve if k[0] == lname]:
            _n, port, explicit, secure = key
            tp = explicit or ("tls" if secure else self.default_transport)
            targets = ([Target(tp, address, port or _default_port(tp))]
                       if address is not None else [])
            for fn in self._pending_resolve.pop(key, []):
                fn(targets, "" if address is not None else f"cannot resolve {name!r}")

    # --------------------------------------------------------------- client requests
    def send(self, creq: ClientRequest, now: float | None = None) -> ClientRequest:
        """Send ``creq`` (once its target is known); ends in :class:`RequestCompleted`."""
        if now is not None:
            self._now = now
        auth: Headers = []
        if creq.preauth and creq.account is not None:
            auth = self._preemptive(creq)
        if creq.target is not None:
            self._attempt(creq, auth)
            return creq

        def go(target: Target | None, error: str) -> None:
            if target is None:
                self._fail_request(creq, SipError(None, error, EndCause.TRANSPORT))
                return
            creq.target = target
            self._attempt(creq, auth)
        creq.next_targets = []
        self.target_of(creq.hop, creq.transport, go, creq.next_targets)
        return creq

    def _failover(self, creq: ClientRequest, why: str) -> bool:
        """RFC 3263 §4.3: a timeout, a transport error or a 503 moves the request to the next
        target of its URI (a new transaction); False when none is left."""
        if not creq.next_targets or creq.done:
            return False
        old = creq.target
        creq.target = creq.next_targets.pop(0)
        creq.failovers.append((f"{old.transport} {old.host}:{old.port}" if old else "?", why))
        log.info("{why} from {old}: trying {new} (RFC 3263 §4.3)", why=why, old=old,
                 new=creq.target)
        creq.cseq += 1
        creq.udp_only = False
        self._attempt(creq, creq.last_auth)
        return True

    def _preemptive(self, creq: ClientRequest) -> Headers:
        account = creq.account
        digest = account.digest() if account is not None else None
        if account is None or digest is None or not account._realms:
            return []
        probe = creq.build(creq.cseq, [])
        out = []
        for realm, header in account._realms.items():
            value = digest.preemptive(realm, probe.method, str(probe.uri), body=probe.body)
            if value is not None:
                out.append((header, value))
        return out

    def _attempt(self, creq: ClientRequest, auth: Headers) -> None:
        assert creq.target is not None
        creq.last_auth = auth
        req = creq.build(creq.cseq, auth)
        creq.request = req
        # §18.1.1 moves a large UDP request to TCP, unless the URI asks for UDP or TCP failed
        may_switch = not creq.udp_only and "transport" not in creq.hop.params
        creq.key = self.layer.send_request(req, creq.target, self._now, may_switch=may_switch)
        self._requests[creq.key] = creq

    def _fail_request(self, creq: ClientRequest, error: SipError) -> None:
        if creq.done:
            return
        creq.done = True
        if creq.key is not None:
            self._requests.pop(creq.key, None)
        if creq.on_error is not None:
            creq.on_error(error)
        self._emit(RequestCompleted(creq, None, error))

    def _on_response(self, resp: Response, key: ClientKey | None) -> None:
        creq = self._requests.get(key) if key is not None else None
        if creq is None:
            if 200 <= resp.status < 300 and resp.cseq.method == "INVITE":
                self._stray_2xx(resp)       # a retransmission, or a 2xx from another fork
            return
        status = resp.status
        if status < 200:
            if creq.on_provisional is not None:
                creq.on_provisional(resp)
            return
        # the request is done: later 2xx to an INVITE (retransmissions, other forks) are
        # routed by Call-ID, so nothing per request outlives its final response
        assert creq.key is not None
        self._requests.pop(creq.key, None)
        if status in (401, 407) and self._authenticate(creq, resp):
            return
        if creq.on_retry is not None and creq.on_retry(resp):
            creq.cseq += 1
            self._attempt(creq, creq.last_auth)
            return
        if creq.uri is not None and status >= 300 and self._redirect(creq, resp):
            return
        if status == 503 and self._failover(creq, "503 Service Unavailable"):
            return
        creq.done = True
        if creq.on_final is not None:
            creq.on_final(resp)
        self._emit(RequestCompleted(creq, resp))

    def _redirect(self, creq: ClientRequest, resp: Response) -> bool:
        """RFC 3261 §8.1.3.4: after a 3xx, send the request again to its Contacts in q order
        (§20.10; equal q in the order given), each target once; after another failure,
        the next Contact left. False: nothing left to try, ``resp`` is the outcome."""
        if 300 <= resp.status < 400:
            found = []
            for n, contact in enumerate(resp.contact):
                try:
                    uri = contact.uri
                    q = float(contact.params.get("q") or "1")
                except (SipParseError, ValueError):
                    continue
                if uri.scheme not in ("sip", "sips"):
                    continue
                found.append((-q, n, str(uri)))
            creq.alternatives = [u for _, _, u in sorted(found)]
        while creq.alternatives:
            nxt = creq.alternatives.pop(0)
            if nxt in creq.tried:           # a loop: this target was tried already
                continue
            if len(creq.redirects) >= creq.max_redirects:
                log.info("redirect limit ({n}) reached; {status} is the outcome",
                         n=creq.max_redirects, status=resp.status)
                return False
            creq.redirects.append((resp.status, nxt))
            creq.tried.add(nxt)
            creq.uri = nxt
            if creq.account is None or not creq.account.proxy:
                creq.hop, creq.transport = as_uri(nxt), None
                creq.target = None        # resolved again for the new host
            creq.cseq += 1
            creq.auth_tries = 0
            self.send(creq)
            return True
        return False

    def _authenticate(self, creq: ClientRequest, resp: Response) -> bool:
        account = creq.account
        if account is None or creq.request is None:
            return False
        digest = account.digest()
        if digest is None or creq.auth_tries >= 2:
            return False
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        reply = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        auth: Headers = []
        req = creq.request
        realms: set[str] = set()
        for value in resp.headers.get_lines(name):
            # RFC 8760 §2.4: challenges come in preference order; answer the first usable
            # one of each realm
            try:
                ch = parse_challenge(value)
                if ch.realm in realms:
                    continue
                auth.append((reply, digest.authorize(ch, req.method, str(req.uri),
                                                     body=req.body)))
                realms.add(ch.realm)
                account._realms[ch.realm] = reply
            except DigestError as e:
                log.info("cannot answer challenge: {reason}", reason=e.reason)
        if not auth:
            return False
        creq.auth_tries += 1
        creq.cseq += 1
        self._attempt(creq, auth)
        return True

    def request(self, method: str, uri: str, now: float, *, account: Account | None = None,
                headers: Headers | None = None, body: bytes = b"",
                content_type: str | None = None, target: Target | None = None,
                call_id: str | None = None, from_tag: str | None = None,
                cseq: int = 1) -> ClientRequest:
        """An out-of-dialog request (OPTIONS, MESSAGE, REGISTER...); ends in
        :class:`RequestCompleted` with the final response, after digest challenges."""
        self._now = now
        call_id = call_id or self.new_call_id()
        from_tag = from_tag or self.new_tag()
        hop, transport = self.outbound_hop(uri, account)
        tp = target.transport if target is not None else (
            transport or hop.params.get("transport") or self.default_transport).lower()
        from_value = (account.from_value if account
                      else f"<sip:{self.user}@{format_host(self.local(tp).host)}>")

        def build(n: int, auth: Headers) -> Request:
            hdrs = [("Via", self.via(tp)), ("Max-Forwards", "70"),
                    ("From", f"{from_value};tag={from_tag}"), ("To", f"<{uri}>"),
                    ("Call-ID", call_id), ("CSeq", f"{n} {method}"),
                    ("User-Agent", self.user_agent)]
            hdrs += headers or []
            hdrs += auth
            if body:
                hdrs.append(("Content-Type", content_type or "application/sdp"))
            return make_request(method, creq.uri or uri, hdrs, body)

        creq = ClientRequest(build, cseq, hop, account=account, transport=transport,
                             target=target)
        if method != "REGISTER" and target is None:   # §8.1.3.4: follow 3xx
            creq.uri = uri
            creq.tried.add(uri)
        return self.send(creq)

    def outbound_hop(self, uri: str, account: Account | None) -> tuple[SipUri, str | None]:
        """Where an out-of-dialog request goes first: the account's proxy (over the
        account's transport when the proxy URI names none), else the Request-URI's host."""
        if account is not None and account.proxy:
            hop = as_uri(account.proxy)
            transport = account.transport if (account.transport
                                              and "transport" not in hop.params) else None
            return hop, transport
        return as_uri(uri), None

    # --------------------------------------------------------------- layer events
    def handle_layer_event(self, ev: LayerEvent, now: float) -> None:
        self._now = now
        if isinstance(ev, RequestReceived):
            self._on_request(ev.request, ev.source, ev.key)
        elif isinstance(ev, ResponseReceived):
            self._on_response(ev.response, ev.key)
        elif isinstance(ev, CancelReceived):
            self._on_cancel(ev)
        elif isinstance(ev, TransactionTimeout):
            creq = self._requests.get(ev.key)  # type: ignore[arg-type]
            if creq is not None:
                self._requests.pop(ev.key, None)  # type: ignore[arg-type]
                if self._failover(creq, f"no response (timer {ev.timer})"):
                    return
                self._fail_request(creq, SipError(
                    None, f"no response to {ev.request.method} (timer {ev.timer})",
                    EndCause.TIMEOUT))
        elif isinstance(ev, TransportFailed):
            creq = self._requests.pop(ev.key, None)
            if creq is None:
                pass
            elif creq.target is not None and creq.target.transport == "udp" \
                    and not creq.udp_only and (ev.target is None
                                               or ev.target.transport != "udp"):
                # the layer had moved it to TCP (§18.1.1) and TCP cannot be used here
                log.info("TCP to {host}:{port} failed ({reason}): sending the {method} over "
                         "UDP although it is larger than the RFC 3261 §18.1.1 limit",
                         host=creq.target.host, port=creq.target.port, reason=ev.reason,
                         method=ev.request.method)
                creq.udp_only = True
                self._attempt(creq, creq.last_auth)
            elif not self._failover(creq, f"transport error: {ev.reason}"):
                # §8.1.3.1: like a 503 from the transport
                self._fail_request(creq, SipError(
                    None, f"cannot send the {ev.request.method}: {ev.reason}",
                    EndCause.TRANSPORT))
        elif isinstance(ev, PrackNotReceived):
            s = self.sessions.get(ev.response.call_id)
            if s is not None and not s.final_sent:
                self.reject(s, 500, "Reliable Provisional Not Acknowledged", now)  # RFC 3262 §3
        elif isinstance(ev, AckNotReceived):
            s = self.sessions.get(ev.response.call_id)
            if s is not None and s.dialog is not None:
                self.hangup(s, now, EndCause.NO_ACK, status=408)

    # --------------------------------------------------------------- UAC: INVITE
    def new_session(self, direction: CallDirection, now: float,
                    account: Account | None = None) -> InviteSession:
        """An outgoing session before its INVITE (while the offer is being made): it can
        already be hung up, and its no-answer timer runs."""
        self._now = now
        s = InviteSession(self, direction, account)
        self.stats["calls_out"] += 1
        if self.no_answer_timeout > 0:
            s.set_timer("no-answer", now + self.no_answer_timeout)
        return s

    def end(self, s: InviteSession, cause: EndCause, now: float, *, status: int | None = None,
            reason: str = "") -> None:
        """End ``s`` at once without sending anything (a local failure)."""
        self._now = now
        s._end(cause, status, reason)

    def invite(self, uri: str, offer: bytes, now: float, *, account: Account | None = None,
               headers: Headers | None = None) -> InviteSession:
        """Place a call with ``offer``: :meth:`new_session` then :meth:`start_invite`."""
        s = self.new_session(CallDirection.OUTGOING, now, account)
        self.start_invite(s, uri, offer, now, headers=headers)
        return s

    def start_invite(self, s: InviteSession, uri: str, offer: bytes, now: float, *,
                     headers: Headers | None = None) -> None:
        """Send the INVITE of ``s`` with ``offer``; a session hung up meanwhile ends
        (cancelled) without sending anything."""
        self._now = now
        if s.state is CallState.ENDED:
            return
        if s.cancel_requested:
            s._end(EndCause.CANCELLED, None, "hung up before the INVITE went out")
            return
        s.extra_headers = list(headers or [])
        account = s.account
        hop, transport = self.outbound_hop(uri, account)
        tp = (transport or hop.params.get("transport")
              or ("tls" if hop.scheme == "sips" else self.default_transport)).lower()
        call_id = self.new_call_id()
        from_value = (account.from_value if account
                      else f"<sip:{self.user}@{format_host(self.local(tp).host)}>")
        contact = self.contact(tp, account.user if account else None)
        s.se_offer = self.session_expires
        self.sessions[call_id] = s

        def build(cseq: int, auth: Headers) -> Request:
            hdrs = [("Via", self.via(tp)), ("Max-Forwards", "70"),
                    ("From", f"{from_value};tag={s.local_tag}"), ("To", f"<{uri}>"),
                    ("Call-ID", call_id), ("CSeq", f"{cseq} INVITE"),
                    ("Contact", contact), ("Allow", ALLOW), *self.extensions(s),
                    ("User-Agent", self.user_agent)]
            if s.se_offer:
                hdrs.append(("Session-Expires", str(s.se_offer)))
            hdrs += s.extra_headers + auth
            if offer:
                hdrs.append(("Content-Type", "application/sdp"))
            req = make_request("INVITE", creq.uri or uri, hdrs, offer)
            s.invite = req
            return req

        def retry_422(resp: Response) -> bool:
            min_se = (resp.headers.get("Min-SE") or "").split(";")[0].strip()
            if resp.status != 422 or not min_se.isdigit() or int(min_se) <= s.se_offer:
                return False
            s.se_offer = int(min_se)                  # RFC 4028 §7.4: retry with Min-SE
            return True

        creq = ClientRequest(build, 1, hop, account=account, transport=transport)
        creq.uri = uri                # §8.1.3.4: a 3xx sends the INVITE to its Contacts
        creq.tried.add(uri)
        creq.on_provisional = lambda r: self._invite_provisional(s, r)
        creq.on_final = lambda r: self._invite_final(s, r)
        creq.on_error = lambda e: s._end(e.cause, e.status, e.reason)
        creq.on_retry = retry_422
        s.creq = creq
        s.invite = build(1, [])       # the call has its Call-ID and request at once
        self.send(creq)
        s.target = creq.target

    def _invite_provisional(self, s: InviteSession, resp: Response) -> None:
        s.provisional_seen = True
        s.target = s.creq.target if s.creq is not None else s.target
        if s.cancel_requested:
            self._send_cancel(s)
            return
        tag = resp.to.tag
        if tag and s.invite is not None and resp.status > 100:
            if tag not in s.early_dialogs:
                early = Dialog.from_uac(s.invite, resp, self.contact(s.transport))
                s.early_dialogs[tag] = early
                self.dialogs[early.id] = s      # the UAS may send requests in it (INFO)
            if requires(resp, "100rel"):
                try:
                    rseq = parse_rseq(resp.headers.get("RSeq"))
                except SipParseError:
                    return                               # §4: not a valid reliable 1xx
                tracker = s.rseq_seen.setdefault(tag, RSeqTracker())
                if not tracker.accept(rseq):
                    return                               # a retransmission: already PRACKed
                rack = f"{rseq} {s.invite.cseq.number} INVITE"
                self.in_dialog(s, "PRACK", self._now, dialog=s.early_dialogs[tag],
                               headers=[("RAck", rack)])
            self._emit(EarlyDialogResponse(s, resp))
        if resp.status == 180:
            s._set_state(CallState.RINGING, status=180)
        elif resp.status == 183 or (resp.status > 100 and resp.body):
            s._set_state(CallState.EARLY, status=resp.status)

    def _invite_final(self, s: InviteSession, resp: Response) -> None:
        status = resp.status
        if not 200 <= status < 300:
            cause = (EndCause.CANCELLED if status == 487 else
                     EndCause.TIMEOUT if status == 408 else EndCause.REJECTED)
            s._end(cause, status, resp.reason)
            return
        if s.dialog is not None:
            self._stray_2xx(resp)
            return
        assert s.invite is not None
        dialog = s.early_dialogs.pop(resp.to.tag or "", None)
        if dialog is None:
            dialog = Dialog.from_uac(s.invite, resp, self.contact(s.transport))
        dialog.confirm(resp)
        # §12.2.1.1: requests sent in the early dialog (PRACK, UPDATE) already used higher
        # CSeq numbers than the INVITE's; never go back below them
        dialog.local_seq = max(dialog.local_seq, s.invite.cseq.number)
        s.dialog = dialog
        for other in s.early_dialogs.values():    # §13.2.2.4: the other early dialogs end
            if self.dialogs.get(other.id) is s:
                del self.dialogs[other.id]
        s.early_dialogs.clear()
        self.dialogs[dialog.id] = s
        self.stats["answered"] += 1

        def acked(target: Target | None, error: str) -> None:
            if target is None:
                self._unreachable_2xx(s, dialog, resp, error)
                return
            self._send_ack(s, dialog, resp, target)
            if s.state is CallState.ENDED:
                return
            s.remote_sdp = resp.body or s.remote_sdp
            if s.invite is not None:
                s.invite.headers.compact()   # kept for the whole call: its caches are not
            s._set_state(CallState.CONFIRMED, status=status)
            self._arm_session_timer(s, _safe_uac_result(resp), as_uac=True)
            if resp.body:
                self._emit(AnswerReceived(s, resp.body))
            if s.cancel_requested:
                self.hangup(s, self._now)
        self._dialog_target(s, dialog, acked)

    def _unreachable_2xx(self, s: InviteSession, dialog: Dialog, resp: Response,
                         error: str) -> None:
        """The 2xx's Contact (or first Route) cannot be resolved: ACK and BYE toward where the
        INVITE went (the best guess there is), and end the call with a clear cause."""
        reason = f"answered, but the Contact host {dialog.next_hop().host!r} cannot be " \
                 f"resolved ({error})"
        log.warn("call {cid}: {reason}", cid=s.call_id, reason=reason)
        fallback = s.creq.target if s.creq is not None else s.target
        if fallback is not None and s.invite is not None:
            ack = dialog.create_request("ACK", via=self.via(fallback.transport),
                                        cseq=resp.cseq.number)
            self.layer.send_stateless(ack, fallback, self._now)
            bye = dialog.create_request("BYE", via=self.via(fallback.transport))
            self.layer.send_request(bye, fallback, self._now)
        s._end(EndCause.BAD_CONTACT, resp.status, reason)

    def _send_ack(self, s: InviteSession, dialog: Dialog, resp: Response,
                  target: Target) -> None:
        """ACK a 2xx to INVITE (§13.2.2.4), and keep the ACK for its retransmissions."""
        ack = dialog.create_request("ACK", via=self.via(target.transport),
                                    cseq=resp.cseq.number)
        self._acks.setdefault(resp.call_id, {})[(resp.cseq.number, resp.to.tag or "")] = \
            (ack, target)
        self.layer.send_stateless(ack, target, self._now)

    def _stray_2xx(self, resp: Response) -> None:
        """A 2xx to an INVITE whose request is done: re-send the ACK we sent for it, or ACK
        and BYE a new fork (§13.2.2.4)."""
        sent = self._acks.get(resp.call_id, {}).get((resp.cseq.number, resp.to.tag or ""))
        if sent is not None:
            self.layer.send_stateless(sent[0], sent[1], self._now)
            return
        s = self.sessions.get(resp.call_id)
        if (s is None or s.direction is not CallDirection.OUTGOING or s.invite is None
                or resp.cseq.number != s.invite.cseq.number):
            return
        fork = Dialog.from_uac(s.invite, resp, self.contact(s.transport))

        def ack_and_bye(target: Target | None, error: str) -> None:
            if target is None:
                log.info("cannot ACK a forked 2xx: {e}", e=error)
                return
            self._send_ack(s, fork, resp, target)
            bye = fork.create_request("BYE", via=self.via(target.transport))
            self.layer.send_request(bye, target, self._now)
        self._dialog_target(s, fork, ack_and_bye)

    def _dialog_target(self, s: InviteSession, dialog: Dialog,
                       then: Callable[[Target | None, str], None]) -> None:
        try:
            hop = dialog.next_hop()
        except SipParseError as e:
            then(None, f"bad remote target: {e.reason}")
            return
        self.target_of(hop, s.transport, then)

    def cancel(self, s: InviteSession, now: float) -> None:
        """Give up on our INVITE: CANCEL once a provisional came (§9.1)."""
        self._now = now
        s.cancel_requested = True
        if s.provisional_seen:
            self._send_cancel(s)

    def _send_cancel(self, s: InviteSession) -> None:
        """§9.1: CANCEL with the INVITE's Request-URI, Call-ID, From, To, CSeq number, Via."""
        creq = s.creq
        if creq is None or creq.request is None or creq.target is None or s.cancel_sent:
            return
        inv = creq.request
        s.cancel_sent = True
        hdrs = [("Via", str(inv.via[0])), ("Max-Forwards", "70")]
        hdrs += [("Route", str(r)) for r in inv.route]
        hdrs += [("From", str(inv.from_)), ("To", str(inv.to)), ("Call-ID", inv.call_id),
                 ("CSeq", f"{inv.cseq.number} CANCEL"), ("User-Agent", self.user_agent)]
        cancel = make_request("CANCEL", str(inv.uri), hdrs, b"")
        target = creq.target
        sent_over = inv.via[0].transport.lower()
        if sent_over != target.transport:     # the INVITE went over TCP (§18.1.1)
            target = Target(sent_over, target.host, target.port)
        self.layer.send_request(cancel, target, self._now, may_switch=False)

    # --------------------------------------------------------------- in-dialog requests
    def in_dialog(self, s: InviteSession, method: str, now: float, body: bytes = b"",
                  content_type: str | None = None, *, dialog: Dialog | None = None,
                  headers: Headers | None = None) -> ClientRequest:
        """A request in the session's dialog (or ``dialog``: an early one, for PRACK)."""
        self._now = now
        # UAC before the 2xx: the latest early dialog (INFO after a 18x, RFC 8840 §4.3)
        dlg = dialog or s.dialog or (list(s.early_dialogs.values())[-1]
                                     if s.early_dialogs else None)
        if dlg is None:
            raise SipError(481, "No dialog")
        tp = s.transport

        def build(cseq: int, auth: Headers) -> Request:
            dlg.local_seq = max(dlg.local_seq, cseq)
            return dlg.create_request(method, via=self.via(tp), body=body,
                                      content_type=content_type,
                                      headers=(headers or []) + auth, cseq=cseq)

        try:
            hop = dlg.next_hop()
        except SipParseError as e:
            raise SipError(None, f"bad remote target: {e.reason}", EndCause.BAD_CONTACT) from e
        dlg.local_seq += 1
        creq = ClientRequest(build, dlg.local_seq, hop, account=s.account, transport=tp)
        return self.send(creq)

    def send_reinvite(self, s: InviteSession, offer: bytes, now: float) -> ClientRequest | None:
        """A re-INVITE with ``offer`` (hold, resume, ICE restart...). None when one is already
        outstanding (the caller reports 491 itself). Its :class:`RequestCompleted` follows
        the final response; a 491 is retried once after the §14.1 interval, with a new offer
        asked through :class:`OfferRequested` (token 0)."""
        self._now = now
        if s.dialog is None or s.state is not CallState.CONFIRMED:
            return None
        if s.reinvite is not None:
            return None
        dialog = s.dialog
        tp = s.transport
        sent: list[Request] = []

        def build(cseq: int, auth: Headers) -> Request:
            dialog.local_seq = max(dialog.local_seq, cseq)
            req = dialog.create_request("INVITE", via=self.via(tp), body=offer,
                                        headers=[*self._st_headers(s), *auth], cseq=cseq)
            sent.append(req)
            return req

        dialog.local_seq += 1
        creq = ClientRequest(build, dialog.local_seq, dialog.next_hop(), account=s.account,
                             transport=tp)
        s.reinvite = creq

        def final(resp: Response) -> None:
            s.reinvite = None
            if 200 <= resp.status < 300:
                dialog.refresh_target(resp)

                def ack(target: Target | None, error: str) -> None:
                    if target is None:
                        log.info("cannot ACK the re-INVITE's 2xx: {e}", e=error)
                        return
                    self._send_ack(s, dialog, resp, target)
                    if resp.body:
                        s.remote_sdp = resp.body
                        self._emit(AnswerReceived(s, resp.body))
                    self._arm_session_timer(s, _safe_uac_result(resp) or s.session_timer,
                                            as_uac=True)
                self._dialog_target(s, dialog, ack)
            elif resp.status == 491 and s.reinvite_retry_at is None:
                # §14.1: we own the Call-ID (UAC): retry after 2.1-4 s, else after 0-2 s
                low, high = (2.1, 4.0) if s.direction is CallDirection.OUTGOING else (0.0, 2.0)
                s.reinvite_retry_at = self._now + self.rng.uniform(low, high)
                s.set_timer("glare-retry", s.reinvite_retry_at)
            elif resp.status in (408, 481):
                self.hangup(s, self._now, EndCause.REMOTE_BYE if resp.status == 481
                            else EndCause.TIMEOUT)

        def failed(err: SipError) -> None:
            s.reinvite = None
        creq.on_final = final
        creq.on_error = failed
        return self.send(creq)

    # --------------------------------------------------------------- UAS: INVITE
    def ring(self, s: InviteSession, now: float) -> None:
        """Send 180 Ringing (creates the early dialog on our side)."""
        self._now = now
        if s.direction is not CallDirection.INCOMING or s.final_sent or s.invite is None:
            return
        self._respond_invite(s, 180)
        s._set_state(CallState.RINGING)

    def answer(self, s: InviteSession, sdp: bytes, now: float) -> None:
        """2xx to the INVITE with ``sdp``: our answer, or for an INVITE without SDP our
        offer (the answer then comes in the ACK, RFC 3261 §13.3.1.1)."""
        self._now = now
        if s.direction is not CallDirection.INCOMING or s.final_sent or s.invite is None \
                or s.state is CallState.ENDED:
            return
        if not s.invite.body:
            s.offer_in_2xx = s.invite.cseq.number
        self._respond_invite(s, 200, body=sdp)
        if s.dialog is not None:
            s.dialog.confirm()
        self._arm_session_timer(s, s.session_timer, as_uac=False)
        self.stats["answered"] += 1
        s.invite.headers.compact()      # kept for the whole call: its caches are not
        s._set_state(CallState.CONFIRMED, status=200)

    def reject(self, s: InviteSession, status: int, reason: str | None, now: float, *,
               headers: Headers | None = None, cause: EndCause = EndCause.REJECTED) -> None:
        self._now = now
        if s.direction is not CallDirection.INCOMING or s.final_sent:
            return
        self._respond_invite(s, status, reason, headers)
        s._end(EndCause.REDIRECTED if 300 <= status < 400 else cause, status, reason or "")

    def hangup(self, s: InviteSession, now: float, cause: EndCause = EndCause.LOCAL_BYE, *,
               status: int | None = None, reason: str = "") -> None:
        """End the session whatever its state: BYE once answered, CANCEL while our INVITE is
        pending (the session ends with the 487 or timer B), 603 (or ``status``) while an
        incoming one is."""
        self._now = now
        if s.state is CallState.ENDED:
            return
        if s.dialog is not None and s.answered:
            self.in_dialog(s, "BYE", now)
            s._end(cause, status, reason)
        elif s.direction is CallDirection.INCOMING:
            warning = [("Warning", self.warning(399, reason))] if reason and status else None
            self.reject(s, status or 603, None if status else "Decline", now, headers=warning,
                        cause=cause if status else EndCause.REJECTED)
        else:
            s.reason = reason
            self.cancel(s, now)

    def _respond_invite(self, s: InviteSession, status: int, reason: str | None = None,
                        headers: Headers | None = None, body: bytes = b"") -> None:
        assert s.invite is not None and s.server_key is not None
        if status >= 200:
            s.final_sent = True
        hdrs = list(headers or [])
        if 100 < status < 300:
            # §12.1.1: the dialog-creating response carries the request's Record-Route
            hdrs += [("Record-Route", rr) for rr in s.invite.headers.get_lines("record-route")]
            hdrs.append(("Contact", self.contact(s.transport, reached=s.invite.uri)))
            if status < 200 and (s.options or s.info_packages):
                hdrs += self.extensions(s)     # the early dialog can carry INFO (RFC 8840)
        if 200 <= status < 300:
            hdrs += self.capabilities(s)
            if s.session_timer is not None:
                hdrs.append(("Session-Expires", s.session_timer.header()))
                if supports(s.invite, "timer"):
                    hdrs.append(("Require", "timer"))
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
        reliable = s.rel100 and 100 < status < 200
        if reliable:
            # RFC 3262 §3: the first RSeq is random in 1..2**31-1, leaving room to count up
            s.rseq = s.rseq + 1 if s.rseq else self.rng.randint(1, 2**30)
            hdrs += [("Require", "100rel"), ("RSeq", str(s.rseq))]
        if 100 < status < 300 and s.dialog is None:
            s.dialog = Dialog.from_uas(s.invite, s.local_tag,
                                       self.contact(s.transport, reached=s.invite.uri),
                                       confirmed=status >= 200,
                                       local_seq=self.rng.randint(1, 2**16))
            self.dialogs[s.dialog.id] = s
        resp = make_response(s.invite, status, reason, headers=hdrs, body=body,
                             to_tag=s.local_tag)
        try:
            if reliable:
                self.layer.send_1xx_reliably(s.server_key, resp, s.rseq, self._now)
            else:
                self.layer.send_response(s.server_key, resp, self._now)
        except (KeyError, ValueError) as e:
            log.info("cannot respond {status}: {e}", status=status, e=e)
            return
        if 200 <= status < 300:
            self.layer.send_2xx_reliably(resp, self._layer_target(s.server_key, s), self._now)

    def _layer_target(self, key: ServerKey, s: InviteSession) -> Target:
        target = self.layer.server_target(key)
        if target is not None:
            return target
        assert s.target is not None
        return s.target

    # --------------------------------------------------------------- server side
    def _reply(self, key: ServerKey, req: Request, status: int, reason: str | None = None,
               headers: Headers | None = None, body: bytes = b"",
               to_tag: str | None = None) -> None:
        # §8.2.6.2: every response but 100 carries a To tag (a fresh one out of a dialog)
        if to_tag is None and req.to.tag is None:
            to_tag = self.new_tag()
        resp = make_response(req, status, reason, headers=headers or [], body=body,
                             to_tag=to_tag)
        self.layer.send_response(key, resp, self._now)

    def _on_request(self, req: Request, source: Target, key: ServerKey | None) -> None:
        method = req.method
        if key is None:   # an ACK to a 2xx
            s = self._dialog_session(req)
            if s is not None and s.dialog is not None:
                s.dialog.receive_request(req)
                if (s.direction is CallDirection.INCOMING and not s.acked
                        and s.invite is not None and req.cseq.number == s.invite.cseq.number):
                    s.acked = True
                    self._emit(AckReceived(s))
                self._ack_received(s, req)
            return
        if self._refuse(req, key):
            return
        if (self.authenticator is not None and req.to.tag is None and method != "CANCEL"
                and not self._authorized(req, key)):
            return
        if req.to.tag is not None:
            self._on_in_dialog(req, key)
            return
        if method == "INVITE":
            self._on_invite(req, source, key)
        elif method == "OPTIONS":
            self._reply(key, req, 200, None, self.capabilities())
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self._reply(key, req, 481, "Call/Transaction Does Not Exist")
        elif method in KNOWN_NOT_ALLOWED:
            self._reply(key, req, 405, "Method Not Allowed", [("Allow", ALLOW)])
        else:
            self._reply(key, req, 501, "Not Implemented", [("Allow", ALLOW)])

    def _refuse(self, req: Request, key: ServerKey) -> bool:
        """§8.2.1-§8.2.3 checks before a request reaches its method: 416, 420, 415 (406),
        and 400 for an INVITE without Contact (§8.1.1.8)."""
        if req.uri.scheme not in ("sip", "sips"):
            self._reply(key, req, 416, "Unsupported URI Scheme")
            return True
        required = [r.strip() for r in req.headers.get_all("Require")
                    if r.strip() and r.strip().lower() not in SUPPORTED]
        if required and req.method not in ("CANCEL",):
            self._reply(key, req, 420, "Bad Extension", [("Unsupported", ", ".join(required))])
            return True
        encoding = [e.strip().lower() for e in req.headers.get_all("Content-Encoding")
                    if e.strip()]
        if req.body and any(e != "identity" for e in encoding):
            # §8.2.3: an encoding we do not understand
            self._reply(key, req, 415, "Unsupported Media Type",
                        [("Accept-Encoding", ACCEPT_ENCODING), ("Accept", ACCEPT)])
            return True
        if req.method == "INVITE" and not req.headers.get("Contact"):
            self._reply(key, req, 400, "Missing Contact header")
            return True
        if req.method in ("INVITE", "UPDATE") and req.body:
            ctype = (req.content_type or "").split(";")[0].strip().lower()
            if ctype != "application/sdp":
                self._reply(key, req, 415, "Unsupported Media Type", [("Accept", ACCEPT)])
                return True
            accept = [a.split(";")[0].strip().lower() for a in req.headers.get_all("Accept")]
            if accept and not any(a in ("application/sdp", "application/*", "*/*")
                                  for a in accept):
                self._reply(key, req, 406, "Not Acceptable", [("Accept", ACCEPT)])
                return True
        return False

    def _authorized(self, req: Request, key: ServerKey) -> bool:
        """Digest check of an incoming request: 401 with a fresh challenge (``stale=true``
        for an expired nonce, also for a replayed one), 403 for wrong credentials."""
        assert self.authenticator is not None
        decision = self.authenticator.authenticate(
            req.headers.get_lines("authorization"), req.method, str(req.uri), self._now,
            body=req.body)
        if decision.ok:
            return True
        self._reply(key, req, decision.status, None, list(decision.headers))
        return False

    def _dialog_session(self, req: Request) -> InviteSession | None:
        return self.dialogs.get((req.call_id, req.to.tag or "", req.from_.tag or ""))

    def _on_invite(self, req: Request, source: Target, key: ServerKey) -> None:
        if req.call_id in self.sessions:   # a second INVITE (new branch) for a call we have
            self._reply(key, req, 482, "Loop Detected")
            return
        s = InviteSession(self, CallDirection.INCOMING)
        s.invite = req
        s.server_key = key
        s.target = source
        s.remote_sdp = req.body
        s.rel100 = supports(req, "100rel")
        try:
            s.session_timer = uas_negotiate(req, self.min_se)
        except TooSmall as e:
            self._reply(key, req, 422, "Session Interval Too Small", [("Min-SE", str(e.min_se))])
            return
        except SipParseError as e:
            self._reply(key, req, 400, e.reason)
            return
        self.sessions[req.call_id] = s
        self.stats["calls_in"] += 1
        if self.no_answer_timeout > 0:
            s.set_timer("no-answer", self._now + self.no_answer_timeout)
        self._emit(IncomingCall(s))

    def _on_cancel(self, ev: CancelReceived) -> None:
        s = self.sessions.get(ev.cancel.call_id)
        if s is None or s.direction is not CallDirection.INCOMING or not ev.pending:
            return
        s.final_sent = False
        self._respond_invite(s, 487, "Request Terminated")
        s._end(EndCause.CANCELLED, 487)

    def _on_in_dialog(self, req: Request, key: ServerKey) -> None:
        s = self._dialog_session(req)
        method = req.method
        # the confirmed dialog, or (UAC) the early dialog of a provisional response
        dlg = None if s is None else s.dialog or s.early_dialogs.get(req.from_.tag or "")
        if s is None or dlg is None:
            self._reply(key, req, 481, "Call/Transaction Does Not Exist")
            return
        err = dlg.receive_request(req)
        if err is not None:
            self._reply(key, req, err, "CSeq Out of Order")
            return
        self._emit(InDialogRequest(s, req))
        if s.dialog is None and method not in ("INFO", "OPTIONS", "BYE"):
            # UAC early dialog: we take no offer (UPDATE, RFC 3311 §5.2) before the 2xx
            self._reply(key, req, 500, "Not In An Early Dialog", [("Retry-After", "1")])
            return
        if method == "INFO" and req.headers.get("Info-Package") is not None:
            self._on_info(s, req, key)
            return
        if method == "BYE":
            self._reply(key, req, 200)
            if s.direction is CallDirection.INCOMING and not s.final_sent:
                # §15.1.2: a BYE in an early dialog; the INVITE still gets its 487
                self._respond_invite(s, 487, "Request Terminated")
            s._end(EndCause.REMOTE_BYE)
        elif method == "PRACK":
            try:
                rseq, _cseq, rmethod = parse_rack(req.headers.get("RAck"))
            except SipParseError as e:
                self._reply(key, req, 400, e.reason)
            else:
                if rmethod == "INVITE" and self.layer.prack_received(req.call_id, rseq):
                    self._reply(key, req, 200)
                else:
                    self._reply(key, req, 481, "Call/Transaction Does Not Exist")
        elif method == "INVITE":
            if s.reinvite is not None or s.offer_in_2xx is not None:
                # §14.2: our own re-INVITE (or our offer in a 2xx) is pending
                self._reply(key, req, 491, "Request Pending")
            else:
                self._ask_reoffer(s, req, key)
        elif method == "UPDATE" and req.body:
            self._ask_reoffer(s, req, key)
        elif method == "UPDATE":
            self._reply(key, req, 200, None, self._session_refreshed(s, req))
        elif method in ("INFO", "OPTIONS"):
            self._reply(key, req, 200, None, self.capabilities() if method == "OPTIONS" else None)
        elif method in KNOWN_NOT_ALLOWED:
            self._reply(key, req, 405, "Method Not Allowed", [("Allow", ALLOW)])
        else:
            self._reply(key, req, 501, "Not Implemented", [("Allow", ALLOW)])

    def _on_info(self, s: InviteSession, req: Request, key: ServerKey) -> None:
        """RFC 6086 §4.2.2: an INFO of a package the session did not put in its Recv-Info
        gets 469 (with our Recv-Info); one it receives goes to the driver (InfoReceived)."""
        value = req.headers.get("Info-Package") or ""
        package = value.split(";", 1)[0].strip().lower()
        if package not in s.info_packages:
            self._reply(key, req, 469, "Bad Info Package",
                        [("Recv-Info", ", ".join(s.info_packages))])
            return
        token = self._token()
        self._infos[token] = (s, req, key)
        self._emit(InfoReceived(s, token, package, req))

    def answer_info(self, token: int, status: int, reason: str | None, now: float) -> None:
        """The response to an :class:`InfoReceived` (200, or 400/415 for a bad body)."""
        self._now = now
        entry = self._infos.pop(token, None)
        if entry is None:
            return
        _s, req, key = entry
        try:
            self._reply(key, req, status, reason)
        except (KeyError, ValueError) as e:      # the transaction is gone
            log.info("cannot answer the INFO: {e}", e=e)

    def _ask_reoffer(self, s: InviteSession, req: Request, key: ServerKey) -> None:
        token = self._token()
        self._reoffers[token] = (s, req, key)
        if req.body:
            self._emit(ReofferReceived(s, token, req.body, req.method))
        else:
            self._emit(OfferRequested(s, token, req.method))

    def answer_reoffer(self, token: int, sdp: bytes, now: float) -> None:
        """Our answer to a :class:`ReofferReceived` (or our offer for an
        :class:`OfferRequested`): the 2xx to that re-INVITE or UPDATE."""
        self._now = now
        entry = self._reoffers.pop(token, None)
        if entry is None:
            return
        s, req, key = entry
        if s.state is CallState.ENDED or s.dialog is None:
            return
        hdrs = [("Contact", self.contact(s.transport)), *self.capabilities(s),
                ("Content-Type", "application/sdp")]
        hdrs += self._session_refreshed(s, req)
        resp = make_response(req, 200, None, headers=hdrs, body=sdp)
        if not req.body and req.method == "INVITE":
            s.offer_in_2xx = req.cseq.number     # the answer comes in the ACK
        try:
            self.layer.send_response(key, resp, self._now)
        except (KeyError, ValueError) as e:      # the transaction is gone (it took too long)
            log.info("cannot answer the re-offer: {e}", e=e)
            s.offer_in_2xx = None
            return
        if req.method == "INVITE":
            self.layer.send_2xx_reliably(resp, self._layer_target(key, s), self._now)

    def refuse_reoffer(self, token: int, status: int, reason: str, now: float, *,
                       warn_code: int = 399) -> None:
        """The re-offer cannot be accepted: ``status`` (488 carries a Warning, §13.3.1.3;
        491 for glare)."""
        self._now = now
        entry = self._reoffers.pop(token, None)
        if entry is None:
            return
        _s, req, key = entry
        headers = [("Warning", self.warning(warn_code, reason))] if status == 488 else []
        try:
            self._reply(key, req, status, reason, headers)
        except (KeyError, ValueError) as e:
            log.info("cannot refuse the re-offer: {e}", e=e)

    def _ack_received(self, s: InviteSession, ack: Request) -> None:
        """The ACK of our 2xx: when that 2xx carried our offer, it carries the answer
        (RFC 3264 §5, RFC 3261 §13.3.1.1); without one the session cannot go on (BYE)."""
        if s.offer_in_2xx is None or ack.cseq.number != s.offer_in_2xx:
            return
        s.offer_in_2xx = None
        if not ack.body:
            log.info("call {cid}: the ACK carries no answer to our offer", cid=s.call_id)
            self.hangup(s, self._now, EndCause.MEDIA, reason="no answer in the ACK")
            return
        s.remote_sdp = ack.body
        self._emit(AnswerReceived(s, ack.body))

    # --------------------------------------------------------------- session timers
    def _st_headers(self, s: InviteSession) -> Headers:
        if s.session_timer is None:
            return []
        return [("Session-Expires", f"{s.session_timer.interval};refresher=uac"),
                ("Supported", "timer")]

    def _arm_session_timer(self, s: InviteSession, timer: SessionTimer | None, *,
                           as_uac: bool) -> None:
        """RFC 4028 §10: ``as_uac`` is our role in the transaction that set ``timer``."""
        s.set_timer("session-refresh", None)
        s.set_timer("session-expire", None)
        s.session_timer = timer
        if timer is None or s.state is CallState.ENDED:
            return
        if (timer.refresher == "uac") == as_uac:
            s.set_timer("session-refresh", self._now + refresh_delay(timer.interval))
        else:
            s.set_timer("session-expire", self._now + expire_delay(timer.interval))

    def _session_refreshed(self, s: InviteSession, req: Request) -> Headers:
        """A refresh (re-INVITE/UPDATE) arrived: re-arm, and the headers for our 2xx."""
        try:
            timer = uas_negotiate(req, self.min_se)
        except (TooSmall, SipParseError):
            timer = None
        if timer is None:
            if s.session_timer is None:
                return []
            timer = SessionTimer(s.session_timer.interval, "uac")
        self._arm_session_timer(s, timer, as_uac=False)
        return [("Session-Expires", timer.header()), ("Require", "timer")]

    def _refresh_session(self, s: InviteSession) -> None:
        timer = s.session_timer
        if timer is None or s.state is not CallState.CONFIRMED:
            return
        creq = self.in_dialog(s, "UPDATE", self._now, headers=[
            ("Session-Expires", f"{timer.interval};refresher=uac"), ("Supported", "timer")])

        def done(resp: Response) -> None:
            if 200 <= resp.status < 300:
                self._arm_session_timer(s, _safe_uac_result(resp) or timer, as_uac=True)
            elif s.state is CallState.CONFIRMED:
                self.hangup(s, self._now, EndCause.SESSION_EXPIRED)   # §10: refresh failed

        def failed(err: SipError) -> None:
            if s.state is CallState.CONFIRMED:
                s._end(EndCause.SESSION_EXPIRED, 408)
        creq.on_final = done
        creq.on_error = failed

    # --------------------------------------------------------------- timers, bookkeeping
    def _fire(self, s: InviteSession, name: str) -> None:
        if name == "no-answer":
            if s.state in (CallState.CONFIRMED, CallState.ENDED):
                return
            log.info("call {cid} not answered in {t}s", cid=s.call_id, t=self.no_answer_timeout)
            if s.direction is CallDirection.INCOMING:
                self.reject(s, 480, "Temporarily Unavailable", self._now,
                            cause=EndCause.TIMEOUT)
            else:
                self.cancel(s, self._now)   # CANCEL -> 487; with no provisional, timer B
        elif name == "session-refresh":
            self._refresh_session(s)
        elif name == "session-expire":
            if s.state is CallState.CONFIRMED:
                self.hangup(s, self._now, EndCause.SESSION_EXPIRED, status=408)
        elif name == "glare-retry":
            s.reinvite_retry_at = None
            if s.state is CallState.CONFIRMED:
                self._emit(OfferRequested(s, 0, "INVITE"))

    def _forget(self, s: InviteSession) -> None:
        self.stats["ended"] += 1
        self._timed.pop(id(s), None)
        if self.sessions.get(s.call_id) is s:
            del self.sessions[s.call_id]
            self._acks.pop(s.call_id, None)
        if s.dialog is not None and self.dialogs.get(s.dialog.id) is s:
            del self.dialogs[s.dialog.id]
        for d in s.early_dialogs.values():
            if self.dialogs.get(d.id) is s:
                del self.dialogs[d.id]
        for token in [t for t, (x, _r, _k) in self._reoffers.items() if x is s]:
            del self._reoffers[token]
        # pending INFOs stay: the driver answers each InfoReceived (even when handling it
        # ended the call: the INFO still gets its response)

    def close(self, now: float) -> None:
        self._now = now
        for s in list(self.sessions.values()):
            s._end(EndCause.SHUTDOWN)


def _safe_uac_result(resp: Response) -> SessionTimer | None:
    try:
        return uac_result(resp)
    except SipParseError:
        return None


def _default_port(transport: str) -> int:
    """RFC 3261 §19.1.2: 5061 for TLS, 5060 otherwise."""
    return 5061 if transport == "tls" else 5060


def contact_uri(user: str, host: str, port: int, transport: str) -> str:
    """A Contact value ``<sip:user@host:port;transport=...>`` (no parameter for UDP)."""
    tp = "" if transport == "udp" else f";transport={transport}"
    return f"<sip:{user}@{format_address(host, port)}{tp}>"


def as_uri(uri: str) -> SipUri:
    """``host:port``, ``sip:...`` or ``<sip:...>`` as a SIP URI."""
    uri = uri.strip().strip("<>")
    if not uri.lower().startswith(("sip:", "sips:")):
        uri = "sip:" + uri
    return SipUri.parse(uri)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

