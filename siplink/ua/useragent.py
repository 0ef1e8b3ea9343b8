"""The user-agent API: a :class:`UserAgent` with accounts, :class:`Call` objects, handlers.

This is the transaction user (RFC 3261 §8, §12-§15) on top of
:class:`~siplink.core.transaction.TransactionLayer` and :class:`~siplink.transport.driver.SipTransport`.
It is the layer a softphone backend talks to::

    ua = UserAgent(reactor, host="127.0.0.1", port=5070)
    ua.listen()
    call = ua.call("sip:bob@127.0.0.1:5080")
    yield call.answered             # fires with the call once a 2xx is ACKed
    yield call.hangup()

Incoming calls go to ``ua.on_incoming_call(call)``, which may ``ring()``, ``answer()``,
``reject(status)`` or ``redirect(contact)``. Session descriptions stay opaque: every call has
a :class:`MediaSession` (``make_offer``/``on_answer``/``make_answer``/``on_reoffer``/``close``)
so the SDP/ICE layer plugs in; :class:`StaticMedia` answers with a fixed SDP.

Client requests that get 401/407 are retried once per challenge with the account's
credentials (:class:`siplink.sip.digest.DigestClient`).
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ice.trace import Trace
from siplink.core.dialog import Dialog, DialogId
from siplink.core.prack import RSeqTracker, first_rseq, parse_rack, parse_rseq, requires, supports
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
    Event,
    PrackNotReceived,
    RequestReceived,
    ResponseReceived,
    ServerKey,
    Target,
    TransactionLayer,
    TransactionTimeout,
)
from siplink.sip.digest import DigestError, DigestServer, parse_challenge
from siplink.sip.message import (
    Request,
    Response,
    SipParseError,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
)
from siplink.sip.uri import SipUri
from siplink.transport.driver import SipTransport
from siplink.ua.account import Account

if TYPE_CHECKING:
    from siplink.ua.config import SipConfig
    from siplink.ua.registration import Registration

log = Logger()

__all__ = [
    "Account",
    "Call",
    "CallEvent",
    "CallFailed",
    "CallState",
    "MediaRejected",
    "MediaSession",
    "RequestFailed",
    "RequestTimeout",
    "StaticMedia",
    "UserAgent",
]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK"
SUPPORTED = frozenset({"100rel", "timer"})
KNOWN_NOT_ALLOWED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "PUBLISH", "MESSAGE"})
USER_AGENT = "siplink"


# ----------------------------------------------------------------------------- media hook


class MediaRejected(Exception):
    """Raised by a MediaSession that cannot accept an offer: the UA answers 488."""

    def __init__(self, reason: str = "Not Acceptable Here", status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class MediaSession(Protocol):
    async def make_offer(self) -> bytes: ...
    async def on_answer(self, sdp: bytes) -> None: ...
    async def make_answer(self, offer: bytes) -> bytes: ...
    async def on_reoffer(self, offer: bytes) -> bytes: ...
    def close(self) -> None: ...


class StaticMedia:
    """A fixed audio SDP (PCMU) at ``host:port``; records what the peer sent."""

    def __init__(self, host: str = "127.0.0.1", port: int = 40000) -> None:
        self.host = host
        self.port = port
        self.version = 0
        self.remote: list[bytes] = []
        self.closed = False

    def sdp(self) -> bytes:
        self.version += 1
        return (f"v=0\r\no=siplink 1 {self.version} IN IP4 {self.host}\r\ns=-\r\n"
                f"c=IN IP4 {self.host}\r\nt=0 0\r\nm=audio {self.port} RTP/AVP 0\r\n"
                "a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n").encode()

    async def make_offer(self) -> bytes:
        return self.sdp()

    async def on_answer(self, sdp: bytes) -> None:
        self.remote.append(sdp)

    async def make_answer(self, offer: bytes) -> bytes:
        if offer and b"m=" not in offer:
            raise MediaRejected("no media line")
        self.remote.append(offer)
        return self.sdp()

    async def on_reoffer(self, offer: bytes) -> bytes:
        return await self.make_answer(offer)

    def close(self) -> None:
        self.closed = True


# ----------------------------------------------------------------------------- calls


class CallState(Enum):
    CALLING = "calling"       # INVITE sent / received, nothing back yet
    RINGING = "ringing"       # 180
    EARLY = "early"           # early dialog with a session (183 with body)
    CONFIRMED = "confirmed"   # 2xx sent/received
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEvent:
    call: Call
    state: CallState
    cause: str | None = None
    status: int | None = None


class CallFailed(Exception):
    """The call ended before it was answered: ``status`` is the final response (or 408)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class RequestTimeout(Exception):
    """No final response came before timer B/F (or the transport failed)."""


class RequestFailed(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Call:
    """One INVITE session, either direction."""

    def __init__(self, ua: UserAgent, direction: str, media: MediaSession,
                 account: Account | None) -> None:
        self.ua = ua
        self.direction = direction
        self.media = media
        self.account = account
        self.state = CallState.CALLING
        self.cause: str | None = None
        self.status: int | None = None
        self.dialog: Dialog | None = None
        self.early_dialogs: dict[str, Dialog] = {}
        self.invite: Request | None = None          # the (latest) initial INVITE
        self.server_key: ServerKey | None = None    # UAS: the INVITE transaction
        self.client_key: ClientKey | None = None    # UAC: the INVITE transaction
        self.target: Target | None = None
        self.remote_sdp: bytes = b""
        self.answered: defer.Deferred[Call] = defer.Deferred()
        self.ended: defer.Deferred[str] = defer.Deferred()
        self.answered.addErrback(lambda f: f)  # the application may never look
        self._listeners: list[Callable[[CallEvent], None]] = []
        self._cancel_requested = False
        self._provisional_seen = False
        self._reinvite_pending = False
        self._final_sent = False
        self.local_tag = new_tag()
        self.rel100 = False                          # UAS: send reliable provisionals
        self._rseq = 0                               # UAS: last RSeq sent
        self._rseq_seen: dict[str, RSeqTracker] = {}  # UAC: per early dialog
        self.session_timer: SessionTimer | None = None   # RFC 4028, once negotiated
        self._se_offer = 0                           # UAC: Session-Expires we ask for
        self._st_call: Any = None                    # the armed refresh/expiry callLater
        self._no_answer: Any = None                  # callLater bounding the setup time
        self._ended_noerr = self.ended.addErrback(lambda f: None)
        attach = getattr(media, "attach", None)
        if callable(attach):        # the session learns its call (to end it, re-INVITE)
            attach(self)

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.state.value} {self.call_id}>"

    @property
    def ice(self) -> dict[str, Any] | None:
        """What ICE did for this call (selected pairs, time to connected, checks sent...),
        as the media session reports it (``ice_info()``), or None if it has no ICE."""
        info = getattr(self.media, "ice_info", None)
        result = info() if callable(info) else None
        return result if isinstance(result, dict) else None

    @property
    def call_id(self) -> str:
        return self.invite.call_id if self.invite is not None else ""

    # --------------------------------------------------------------- events
    def subscribe(self, listener: Callable[[CallEvent], None]) -> None:
        self._listeners.append(listener)

    def _set_state(self, state: CallState, cause: str | None = None,
                   status: int | None = None) -> None:
        if self.state is CallState.ENDED or (state is self.state and cause is None):
            return
        self.state = state
        if status is not None:
            self.status = status
        ev = CallEvent(self, state, cause, status)
        for cb in list(self._listeners):
            try:
                cb(ev)
            except Exception:
                log.failure("call listener failed")
        if state is CallState.CONFIRMED and self._no_answer is not None:
            if self._no_answer.active():
                self._no_answer.cancel()
            self._no_answer = None
        if state is CallState.CONFIRMED and not self.answered.called:
            self.answered.callback(self)

    def _end(self, cause: str, status: int | None = None, reason: str = "") -> None:
        if self.state is CallState.ENDED:
            return
        was_answered = self.answered.called
        self.cause = cause
        self._set_state(CallState.ENDED, cause, status)
        self.ua._forget(self)
        try:
            self.media.close()
        except Exception:
            log.failure("media close failed")
        if not was_answered:
            self.answered.errback(CallFailed(status or 487, reason or cause))
        if not self.ended.called:
            self.ended.callback(cause)

    # --------------------------------------------------------------- UAS API
    def ring(self) -> None:
        """Send 180 Ringing (creates the early dialog on our side)."""
        if self.direction != "in" or self._final_sent or self.invite is None:
            return
        self.ua._respond_invite(self, 180)
        self._set_state(CallState.RINGING)

    def answer(self) -> defer.Deferred[Call]:
        """Answer with 200 OK and the media session's answer; fires with the call."""
        if self.direction != "in" or self._final_sent:
            return self.answered
        d = defer.ensureDeferred(self.ua._answer(self))
        d.addErrback(lambda f: log.failure("answer failed", f))
        return self.answered

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        if self.direction != "in" or self._final_sent:
            return
        self.ua._respond_invite(self, status, reason)
        self._end("rejected", status, reason or "")

    def redirect(self, contact: str, status: int = 302) -> None:
        if self.direction != "in" or self._final_sent:
            return
        self.ua._respond_invite(self, status, None, [("Contact", f"<{contact}>")])
        self._end("redirected", status)

    # --------------------------------------------------------------- both sides
    def hangup(self) -> defer.Deferred[Any]:
        """BYE when confirmed, CANCEL while calling (UAC), 603 while ringing (UAS)."""
        if self.state is CallState.ENDED:
            return defer.succeed(None)
        if self.state is CallState.CONFIRMED and self.dialog is not None:
            d = self.ua._in_dialog(self, "BYE")
            self._end("local-bye")
            d.addErrback(lambda f: None)
            return d
        if self.direction == "in":
            self.reject(603, "Decline")
            return defer.succeed(None)
        return self.ua._cancel(self)

    def reinvite(self) -> defer.Deferred[Response]:
        """Send a re-INVITE with a new offer; 491 (glare) fails the Deferred with status 491."""
        return defer.ensureDeferred(self.ua._reinvite(self))

    def info(self, body: bytes = b"", content_type: str = "application/dtmf-relay"
             ) -> defer.Deferred[Response]:
        return self.ua._in_dialog(self, "INFO", body, content_type)

    def update(self, body: bytes = b"", content_type: str = "application/sdp"
               ) -> defer.Deferred[Response]:
        return self.ua._in_dialog(self, "UPDATE", body, content_type)

    def options(self) -> defer.Deferred[Response]:
        return self.ua._in_dialog(self, "OPTIONS")


# ----------------------------------------------------------------------------- client requests


class _ClientRequest:
    """A request the UA sends, followed through auth challenges to its final response."""

    def __init__(self, build: Callable[[int, list[tuple[str, str]]], Request], cseq: int,
                 target: Target, account: Account | None,
                 on_provisional: Callable[[Response], None] | None = None,
                 on_final: Callable[[Response], None] | None = None) -> None:
        self.build = build
        self.cseq = cseq
        self.target = target
        self.account = account
        self.on_provisional = on_provisional
        self.on_final = on_final
        self.preauth = False          # send credentials for known realms up front
        self.on_retry: Callable[[Response], bool] | None = None   # True: resend (e.g. 422)
        self.last_auth: list[tuple[str, str]] = []
        self.deferred: defer.Deferred[Response] = defer.Deferred()
        self.request: Request | None = None
        self.key: ClientKey | None = None
        self.auth_tries = 0


# ----------------------------------------------------------------------------- the UA


class UserAgent:
    """A SIP user agent on one reactor (see the module docstring)."""

    def __init__(self, reactor: Any, *, host: str = "127.0.0.1", port: int = 0,
                 transport: str = "udp", user: str = "siplink",
                 media_factory: Callable[[], MediaSession] | None = None,
                 trace: Trace | None = None, auto_trying: bool = True,
                 session_expires: int = 1800, min_se: int = 90,
                 no_answer_timeout: float = 180.0) -> None:
        self.reactor = reactor
        self.session_expires = session_expires   # offered on INVITE (0: no session timer)
        self.min_se = min_se
        # a call not answered within this many seconds is cancelled (UAC, like timer C) or
        # rejected 480 (UAS: the application never decided); 0 disables
        self.no_answer_timeout = no_answer_timeout
        self.host = host
        self.port = port
        self.default_transport = transport
        self.user = user
        self.media_factory = media_factory or (lambda: StaticMedia(host))
        self.layer = TransactionLayer(trace=trace, auto_trying=auto_trying)
        self.transport = SipTransport(self.layer, reactor, self._on_event)
        self.accounts: list[Account] = []
        self.calls: dict[str, Call] = {}                     # Call-ID -> call
        self.dialogs: dict[DialogId, Call] = {}
        self._requests: dict[ClientKey, _ClientRequest] = {}
        self.registrations: list[Registration] = []
        self.on_incoming_call: Callable[[Call], Any] | None = None
        self.on_request: Callable[[Request], None] | None = None   # any in-dialog request seen
        # set it to require digest credentials (RFC 3261 §22.3) on every request that opens
        # something (out of dialog; ACK and CANCEL cannot be challenged, §22.1)
        self.authenticator: DigestServer | None = None
        self.stats = {"calls_in": 0, "calls_out": 0, "answered": 0, "ended": 0}
        self._tls_server_context: Any = None    # our certificate, for a TLS listener

    # --------------------------------------------------------------- set-up
    @classmethod
    def from_config(cls, reactor: Any, sip: SipConfig, *, user: str = "siplink",
                    listen: str | None = None, **kwargs: Any) -> UserAgent:
        """A UA for the ``[sip]`` section: listen address, transport and TLS (trust anchors,
        verification, our certificate). ``listen`` (``HOST:PORT``) overrides ``sip.listen``.
        Raises :class:`siplink.ua.config.ConfigError` for unusable TLS files."""
        from twisted.internet import ssl

        from siplink.ua.config import ConfigError, split_hostport

        host, port = split_hostport(listen or sip.listen, key="sip.listen")
        ua = cls(reactor, host=host, port=port, transport=sip.transport, user=user, **kwargs)

        def pem(key: str, path: str) -> bytes:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise ConfigError(f"cannot read {path}: {e.strerror}", key=key) from None

        try:
            if sip.tls_ca:
                ua.transport.tls_trust_root = ssl.Certificate.loadPEM(pem("sip.tls_ca",
                                                                          sip.tls_ca))
            if not sip.tls_verify:
                log.warn("TLS certificate verification is off (sip.tls_verify = false)")
                ua.transport.set_tls_client_context(ssl.CertificateOptions(verify=False))
            if sip.tls_cert:
                key = pem("sip.tls_key", sip.tls_key) if sip.tls_key else b""
                cert = ssl.PrivateCertificate.loadPEM(pem("sip.tls_cert", sip.tls_cert) + key)
                ua._tls_server_context = cert.options()
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - OpenSSL errors on malformed PEM
            raise ConfigError(f"unusable TLS certificate or key: {e}", key="sip.tls_cert")\
                from None
        return ua

    def listen(self, transports: tuple[str, ...] | None = None,
               tls_context: Any = None, tls_client_context: Any = None) -> None:
        tls_context = tls_context or self._tls_server_context
        for t in transports or (self.default_transport,):
            if t == "udp":
                self.transport.listen_udp(self.host, self.port)
            elif t == "tcp":
                self.transport.listen_tcp(self.host, self.port)
            elif t == "tls":
                if tls_context is None:
                    raise ValueError("a TLS listener needs our certificate and key "
                                     "(sip.tls_cert / sip.tls_key)")
                self.transport.listen_tls(self.host, self.port, tls_context, tls_client_context)
            else:
                raise ValueError(f"unknown transport {t!r}")
        if self.port == 0:
            self.port = self.transport.local[(transports or (self.default_transport,))[0]].port

    def add_account(self, account: Account) -> Account:
        self.accounts.append(account)
        return account

    def register(self, account: Account, *, expires: int | None = None) -> Registration:
        """Start registering ``account``; ``await reg.register()`` (the UA keeps it)."""
        from siplink.ua.registration import Registration
        reg = Registration(self, account, expires=expires)
        self.registrations.append(reg)
        return reg

    async def shutdown(self) -> None:
        """Hang up every call, unregister every binding, then close the sockets."""
        from siplink.ua.registration import RegistrationState
        for call in list(self.calls.values()):
            call.hangup()
        for reg in self.registrations:
            if reg.state is RegistrationState.REGISTERED:
                try:
                    await reg.unregister()
                except Exception as e:  # a timeout must not stop the shutdown
                    log.info("unregister failed: {e}", e=e)
            reg.close()
        self.close()

    def close(self) -> None:
        for reg in self.registrations:
            reg.close()
        for call in list(self.calls.values()):
            call._end("shutdown")
        self.transport.close()

    def now(self) -> float:
        return float(self.reactor.seconds())

    def local(self, transport: str) -> Target:
        t = self.transport.local.get(transport) or self.transport.local.get("udp")
        if t is None:
            t = next(iter(self.transport.local.values()))
        return t

    def via(self, transport: str, branch: str) -> str:
        loc = self.local(transport)
        return f"SIP/2.0/{transport.upper()} {loc.host}:{loc.port};branch={branch};rport"

    def contact(self, transport: str, user: str | None = None) -> str:
        loc = self.local(transport)
        tp = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{user or self.user}@{loc.host}:{loc.port}{tp}>"

    # --------------------------------------------------------------- targets
    def resolve(self, uri: str | SipUri) -> Target:
        """A URI (or ``host:port``) to a transport address: §8.1.2 without DNS SRV."""
        if isinstance(uri, str):
            if ":" in uri and not uri.lower().startswith(("sip:", "sips:")):
                uri = "sip:" + uri
            u = SipUri.parse(uri.strip("<>"))
        else:
            u = uri
        tp = (u.params.get("transport") or ("tls" if u.scheme == "sips" else
                                            self.default_transport)).lower()
        host = u.params.get("maddr") or u.host
        host = host.strip("[]")
        if not _is_ip(host):
            host = socket.gethostbyname(host)
        port = u.port or (5061 if tp == "tls" else 5060)
        return Target(tp, host, port)

    # --------------------------------------------------------------- events
    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, RequestReceived):
            self._on_request(ev.request, ev.source, ev.key)
        elif isinstance(ev, ResponseReceived):
            self._on_response(ev.response, ev.key)
        elif isinstance(ev, CancelReceived):
            self._on_cancel(ev)
        elif isinstance(ev, TransactionTimeout):
            self._on_timeout(ev)
        elif isinstance(ev, PrackNotReceived):
            call = self.calls.get(ev.response.call_id)
            if call is not None and not call._final_sent:
                call.reject(500, "Reliable Provisional Not Acknowledged")   # RFC 3262 §3
        elif isinstance(ev, AckNotReceived):
            call = self.calls.get(ev.response.call_id)
            if call is not None and call.dialog is not None:
                self._in_dialog(call, "BYE").addErrback(lambda f: None)
                call._end("no-ack", 408)

    def _pump(self) -> None:
        self.transport.pump()

    # --------------------------------------------------------------- client side
    def send(self, creq: _ClientRequest) -> defer.Deferred[Response]:
        auth: list[tuple[str, str]] = []
        if creq.preauth and creq.account is not None:
            auth = self._preemptive(creq)
        self._send_attempt(creq, auth)
        return creq.deferred

    def _preemptive(self, creq: _ClientRequest) -> list[tuple[str, str]]:
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

    def _send_attempt(self, creq: _ClientRequest, auth: list[tuple[str, str]]) -> None:
        creq.last_auth = auth
        req = creq.build(creq.cseq, auth)
        creq.request = req
        key = self.layer.send_request(req, creq.target, self.now())
        creq.key = key
        self._requests[key] = creq
        self._pump()

    def request(self, method: str, uri: str, *, account: Account | None = None,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                content_type: str | None = None, target: Target | None = None
                ) -> defer.Deferred[Response]:
        """An out-of-dialog request (OPTIONS, MESSAGE, REGISTER...); fires with the final
        response (any status), after answering digest challenges."""
        call_id = new_call_id()
        from_tag = new_tag()
        tp = target or self._outbound_target(uri, account)
        from_value = account.from_value if account else f"<sip:{self.user}@{self.local(tp.transport).host}>"

        def build(cseq: int, auth: list[tuple[str, str]]) -> Request:
            hdrs = [("Via", self.via(tp.transport, new_branch())), ("Max-Forwards", "70"),
                    ("From", f"{from_value};tag={from_tag}"), ("To", f"<{uri}>"),
                    ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
                    ("User-Agent", USER_AGENT)]
            hdrs += headers or []
            hdrs += auth
            if body:
                hdrs.append(("Content-Type", content_type or "application/sdp"))
            return make_request(method, uri, hdrs, body)

        return self.send(_ClientRequest(build, 1, tp, account))

    def _outbound_target(self, uri: str, account: Account | None) -> Target:
        if account is not None and account.proxy:
            return self.resolve(account.proxy)
        return self.resolve(uri)

    def _on_response(self, resp: Response, key: ClientKey | None) -> None:
        if key is None:
            self._stray_2xx(resp)
            return
        creq = self._requests.get(key)
        if creq is None:
            return
        status = resp.status
        if status < 200:
            if creq.on_provisional is not None:
                creq.on_provisional(resp)
            return
        if key[1] != "INVITE" or status >= 300:
            self._requests.pop(key, None)
        if status in (401, 407) and self._authenticate(creq, resp):
            if key[1] == "INVITE":
                self._requests.pop(key, None)
            return
        if creq.on_retry is not None and creq.on_retry(resp):
            self._requests.pop(key, None)
            creq.cseq += 1
            self._send_attempt(creq, creq.last_auth)
            return
        if creq.on_final is not None:
            creq.on_final(resp)
        if not creq.deferred.called:
            creq.deferred.callback(resp)

    def _authenticate(self, creq: _ClientRequest, resp: Response) -> bool:
        account = creq.account
        if account is None or creq.request is None:
            return False
        digest = account.digest()
        if digest is None or creq.auth_tries >= 2:
            return False
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        reply = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        auth: list[tuple[str, str]] = []
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
        self._send_attempt(creq, auth)
        return True

    def _on_timeout(self, ev: TransactionTimeout) -> None:
        creq = self._requests.pop(ev.key, None)  # type: ignore[arg-type]
        if creq is None:
            return
        if creq.on_final is not None:
            creq.on_final(make_response(ev.request, 408, "Request Timeout"))
        if not creq.deferred.called:
            creq.deferred.errback(RequestTimeout(f"no response to {ev.request.method} "
                                                 f"(timer {ev.timer})"))

    # --------------------------------------------------------------- UAC calls
    def call(self, uri: str, *, account: Account | None = None,
             media: MediaSession | None = None,
             headers: list[tuple[str, str]] | None = None) -> Call:
        """Place a call; returns at once. ``await call.answered`` / ``call.ended``."""
        call = Call(self, "out", media or self.media_factory(), account)
        self._guard_setup(call)
        self.stats["calls_out"] += 1
        d = defer.ensureDeferred(self._start_call(call, uri, headers or []))

        def failed(f: Failure) -> None:
            log.failure("call failed to start", f)
            call._end("error", 500, f.getErrorMessage())
        d.addErrback(failed)
        return call

    async def _start_call(self, call: Call, uri: str, extra: list[tuple[str, str]]) -> None:
        offer = await call.media.make_offer()
        account = call.account
        tp = self._outbound_target(uri, account)
        call.target = tp
        call_id = new_call_id()
        from_value = (account.from_value if account
                      else f"<sip:{self.user}@{self.local(tp.transport).host}>")
        contact = self.contact(tp.transport, account.user if account else None)
        self.calls[call_id] = call

        def build(cseq: int, auth: list[tuple[str, str]]) -> Request:
            hdrs = [("Via", self.via(tp.transport, new_branch())), ("Max-Forwards", "70"),
                    ("From", f"{from_value};tag={call.local_tag}"), ("To", f"<{uri}>"),
                    ("Call-ID", call_id), ("CSeq", f"{cseq} INVITE"),
                    ("Contact", contact), ("Allow", ALLOW),
                    ("Supported", ", ".join(sorted(SUPPORTED))), ("User-Agent", USER_AGENT)]
            if call._se_offer:
                hdrs.append(("Session-Expires", str(call._se_offer)))
            hdrs += extra + auth
            if offer:
                hdrs.append(("Content-Type", "application/sdp"))
            req = make_request("INVITE", uri, hdrs, offer)
            call.invite = req
            return req

        call._se_offer = self.session_expires

        def retry_422(resp: Response) -> bool:
            min_se = (resp.headers.get("Min-SE") or "").split(";")[0].strip()
            if resp.status != 422 or not min_se.isdigit() or int(min_se) <= call._se_offer:
                return False
            call._se_offer = int(min_se)                  # RFC 4028 §7.4: retry with Min-SE
            return True

        creq = _ClientRequest(build, 1, tp, account,
                              on_provisional=lambda r: self._invite_provisional(call, r),
                              on_final=lambda r: self._invite_final(call, r))
        creq.on_retry = retry_422
        call._creq = creq  # type: ignore[attr-defined]
        self.send(creq).addErrback(lambda f: None)   # the call's own state reports failures
        call.client_key = creq.key

    def _invite_provisional(self, call: Call, resp: Response) -> None:
        call._provisional_seen = True
        if call._cancel_requested:
            self._send_cancel(call)
            return
        tag = resp.to.tag
        if tag and call.invite is not None and resp.status > 100:
            if tag not in call.early_dialogs:
                call.early_dialogs[tag] = Dialog.from_uac(call.invite, resp, self.contact(
                    call.target.transport if call.target else "udp"))
            if requires(resp, "100rel"):
                try:
                    rseq = parse_rseq(resp.headers.get("RSeq"))
                except SipParseError:
                    return                               # §4: not a valid reliable 1xx
                tracker = call._rseq_seen.setdefault(tag, RSeqTracker())
                if not tracker.accept(rseq):
                    return                               # a retransmission: already PRACKed
                rack = f"{rseq} {call.invite.cseq.number} INVITE"
                self._in_dialog(call, "PRACK", dialog=call.early_dialogs[tag],
                                headers=[("RAck", rack)]).addErrback(lambda f: None)
        if resp.status == 180:
            call._set_state(CallState.RINGING, status=180)
        elif resp.status == 183 or (resp.status > 100 and resp.body):
            call._set_state(CallState.EARLY, status=resp.status)

    def _invite_final(self, call: Call, resp: Response) -> None:
        status = resp.status
        if 200 <= status < 300:
            if call.dialog is not None:
                if resp.to.tag == call.dialog.remote_tag:
                    self._send_ack(call, resp)          # retransmitted 2xx
                else:
                    self._ack_and_bye_fork(call, resp)
                return
            assert call.invite is not None
            tp = call.target.transport if call.target else "udp"
            dialog = call.early_dialogs.pop(resp.to.tag or "", None)
            if dialog is None:
                dialog = Dialog.from_uac(call.invite, resp, self.contact(tp))
            dialog.confirm(resp)
            dialog.local_seq = call.invite.cseq.number
            call.dialog = dialog
            self.dialogs[dialog.id] = call
            self._send_ack(call, resp)
            call.remote_sdp = resp.body
            self.stats["answered"] += 1
            call._set_state(CallState.CONFIRMED, status=status)
            self._arm_session_timer(call, _safe_uac_result(resp), as_uac=True)
            if resp.body:
                d = defer.ensureDeferred(call.media.on_answer(resp.body))
                d.addErrback(lambda f: log.failure("media on_answer failed", f))
            if call._cancel_requested:
                call.hangup()
            return
        cause = "cancelled" if status == 487 else ("timeout" if status == 408 else "rejected")
        call._end(cause, status, resp.reason)

    def _ack_request(self, call: Call, dialog: Dialog, resp: Response) -> Request:
        tp = call.target.transport if call.target else "udp"
        assert call.invite is not None
        return dialog.create_request("ACK", via=self.via(tp, new_branch()),
                                     cseq=call.invite.cseq.number)

    def _send_ack(self, call: Call, resp: Response) -> None:
        dialog = call.dialog
        if dialog is None:
            return
        ack = self._ack_request(call, dialog, resp)
        self.layer.send_stateless(ack, self._dialog_target(call, dialog), self.now())
        self._pump()

    def _ack_and_bye_fork(self, call: Call, resp: Response) -> None:
        """§13.2.2.4: a 2xx from a second fork: ACK it, then BYE that dialog."""
        assert call.invite is not None
        tp = call.target.transport if call.target else "udp"
        d = Dialog.from_uac(call.invite, resp, self.contact(tp))
        ack = d.create_request("ACK", via=self.via(tp, new_branch()), cseq=call.invite.cseq.number)
        target = self._dialog_target(call, d)
        self.layer.send_stateless(ack, target, self.now())
        bye = d.create_request("BYE", via=self.via(tp, new_branch()))
        self.layer.send_request(bye, target, self.now())
        self._pump()

    def _stray_2xx(self, resp: Response) -> None:
        call = self.calls.get(resp.call_id)
        if call is not None and call.dialog is not None and resp.to.tag == call.dialog.remote_tag:
            self._send_ack(call, resp)

    def _dialog_target(self, call: Call, dialog: Dialog) -> Target:
        target = self.resolve(dialog.next_hop())
        if call.target is not None and target.transport != call.target.transport:
            target = Target(call.target.transport, target.host, target.port)
        return target

    def _cancel(self, call: Call) -> defer.Deferred[Any]:
        call._cancel_requested = True
        if call._provisional_seen:
            self._send_cancel(call)
        return call.ended

    def _send_cancel(self, call: Call) -> None:
        """§9.1: CANCEL with the INVITE's Request-URI, Call-ID, From, To, CSeq number, Via."""
        creq: _ClientRequest | None = getattr(call, "_creq", None)
        if creq is None or creq.request is None or getattr(call, "_cancel_sent", False):
            return
        inv = creq.request
        call._cancel_sent = True  # type: ignore[attr-defined]
        hdrs = [("Via", str(inv.via[0])), ("Max-Forwards", "70")]
        hdrs += [("Route", str(r)) for r in inv.route]
        hdrs += [("From", str(inv.from_)), ("To", str(inv.to)), ("Call-ID", inv.call_id),
                 ("CSeq", f"{inv.cseq.number} CANCEL"), ("User-Agent", USER_AGENT)]
        cancel = make_request("CANCEL", str(inv.uri), hdrs, b"")
        assert call.target is not None
        self.layer.send_request(cancel, creq.target, self.now())
        self._pump()

    # --------------------------------------------------------------- in-dialog requests
    def _in_dialog(self, call: Call, method: str, body: bytes = b"",
                   content_type: str | None = None, *, dialog: Dialog | None = None,
                   headers: list[tuple[str, str]] | None = None) -> defer.Deferred[Response]:
        dialog = dialog or call.dialog
        if dialog is None:
            return defer.fail(RequestFailed(481, "No dialog"))
        tp = call.target.transport if call.target else "udp"
        target = self._dialog_target(call, dialog)
        if call.target is None:
            call.target = target

        def build(cseq: int, auth: list[tuple[str, str]]) -> Request:
            dialog.local_seq = cseq
            return dialog.create_request(method, via=self.via(tp, new_branch()), body=body,
                                         content_type=content_type,
                                         headers=(headers or []) + auth, cseq=cseq)

        dialog.local_seq += 1
        return self.send(_ClientRequest(build, dialog.local_seq, target, call.account))

    async def _reinvite(self, call: Call) -> Response:
        dialog = call.dialog
        if dialog is None or call.state is not CallState.CONFIRMED:
            raise RequestFailed(481, "No confirmed dialog")
        if call._reinvite_pending:
            raise RequestFailed(491, "Request Pending")
        call._reinvite_pending = True
        try:
            offer = await call.media.make_offer()
            tp = call.target.transport if call.target else "udp"
            target = self._dialog_target(call, dialog)
            sent: list[Request] = []

            def build(cseq: int, auth: list[tuple[str, str]]) -> Request:
                dialog.local_seq = cseq
                req = dialog.create_request("INVITE", via=self.via(tp, new_branch()), body=offer,
                                            headers=auth, cseq=cseq)
                sent.append(req)
                return req

            dialog.local_seq += 1
            resp = await self.send(_ClientRequest(build, dialog.local_seq, target, call.account))
            if 200 <= resp.status < 300:
                dialog.refresh_target(resp)
                ack = dialog.create_request("ACK", via=self.via(tp, new_branch()),
                                            cseq=sent[-1].cseq.number)
                self.layer.send_stateless(ack, target, self.now())
                self._pump()
                if resp.body:
                    await call.media.on_answer(resp.body)
                return resp
            raise RequestFailed(resp.status, resp.reason)
        finally:
            call._reinvite_pending = False

    # --------------------------------------------------------------- server side
    def _reply(self, key: ServerKey, req: Request, status: int, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None, body: bytes = b"",
               to_tag: str | None = None) -> None:
        resp = make_response(req, status, reason, headers=headers or [], body=body,
                             to_tag=to_tag)
        self.layer.send_response(key, resp, self.now())

    def _on_request(self, req: Request, source: Target, key: ServerKey | None) -> None:
        method = req.method
        if key is None:   # ACK to a 2xx
            call = self._dialog_call(req)
            if call is not None and call.dialog is not None:
                call.dialog.receive_request(req)
            return
        if self._refuse(req, key):
            self._pump()
            return
        if (self.authenticator is not None and req.to.tag is None and method != "CANCEL"
                and not self._authorized(req, key)):
            self._pump()
            return
        if req.to.tag is not None:
            self._on_in_dialog(req, source, key)
            return
        if method == "INVITE":
            self._on_invite(req, source, key)
        elif method == "OPTIONS":
            self._reply(key, req, 200, None, [("Allow", ALLOW), ("Accept", "application/sdp")],
                        to_tag=new_tag())
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self._reply(key, req, 481, "Call/Transaction Does Not Exist")
        elif method in KNOWN_NOT_ALLOWED:
            self._reply(key, req, 405, "Method Not Allowed", [("Allow", ALLOW)])
        else:
            self._reply(key, req, 501, "Not Implemented", [("Allow", ALLOW)])
        self._pump()

    def _refuse(self, req: Request, key: ServerKey) -> bool:
        """§8.2.1-§8.2.3 checks before a request reaches its method: 416, 420, 415 (406)."""
        if req.uri.scheme not in ("sip", "sips"):
            self._reply(key, req, 416, "Unsupported URI Scheme")
            return True
        required = [r.strip() for r in req.headers.get_all("Require")
                    if r.strip() and r.strip().lower() not in SUPPORTED]
        if required and req.method not in ("CANCEL",):
            self._reply(key, req, 420, "Bad Extension", [("Unsupported", ", ".join(required))])
            return True
        if req.method in ("INVITE", "UPDATE") and req.body:
            ctype = (req.content_type or "").split(";")[0].strip().lower()
            if ctype != "application/sdp":
                self._reply(key, req, 415, "Unsupported Media Type",
                            [("Accept", "application/sdp")])
                return True
            accept = [a.split(";")[0].strip().lower() for a in req.headers.get_all("Accept")]
            if accept and not any(a in ("application/sdp", "application/*", "*/*")
                                  for a in accept):
                self._reply(key, req, 406, "Not Acceptable", [("Accept", "application/sdp")])
                return True
        return False

    def _authorized(self, req: Request, key: ServerKey) -> bool:
        """Digest check of an incoming request: 401 with a fresh challenge (``stale=true``
        for an expired nonce, also for a replayed one), 403 for wrong credentials."""
        assert self.authenticator is not None
        decision = self.authenticator.authenticate(
            req.headers.get_lines("authorization"), req.method, str(req.uri), self.now(),
            body=req.body)
        if decision.ok:
            return True
        self._reply(key, req, decision.status, None, list(decision.headers))
        return False

    def _dialog_call(self, req: Request) -> Call | None:
        return self.dialogs.get((req.call_id, req.to.tag or "", req.from_.tag or ""))

    def _on_in_dialog(self, req: Request, source: Target, key: ServerKey) -> None:
        call = self._dialog_call(req)
        method = req.method
        if call is None or call.dialog is None:
            self._reply(key, req, 481, "Call/Transaction Does Not Exist")
            self._pump()
            return
        err = call.dialog.receive_request(req)
        if err is not None:
            self._reply(key, req, err, "CSeq Out of Order")
            self._pump()
            return
        if self.on_request is not None:
            self.on_request(req)
        if method == "BYE":
            self._reply(key, req, 200)
            call._end("remote-bye")
        elif method == "PRACK":
            try:
                rseq, cseq, rmethod = parse_rack(req.headers.get("RAck"))
            except SipParseError as e:
                self._reply(key, req, 400, e.reason)
            else:
                if rmethod == "INVITE" and self.layer.prack_received(req.call_id, rseq):
                    self._reply(key, req, 200)
                else:
                    self._reply(key, req, 481, "Call/Transaction Does Not Exist")
        elif method == "INVITE":
            if call._reinvite_pending:
                self._reply(key, req, 491, "Request Pending")
            else:
                defer.ensureDeferred(self._answer_reoffer(call, req, key)).addErrback(
                    lambda f: log.failure("re-INVITE failed", f))
        elif method == "UPDATE" and req.body:
            defer.ensureDeferred(self._answer_reoffer(call, req, key)).addErrback(
                lambda f: log.failure("UPDATE failed", f))
        elif method == "UPDATE":
            self._reply(key, req, 200, None, self._session_refreshed(call, req))
        elif method in ("INFO", "OPTIONS"):
            self._reply(key, req, 200, None, [("Allow", ALLOW)] if method == "OPTIONS" else None)
        elif method in KNOWN_NOT_ALLOWED:
            self._reply(key, req, 405, "Method Not Allowed", [("Allow", ALLOW)])
        else:
            self._reply(key, req, 501, "Not Implemented", [("Allow", ALLOW)])
        self._pump()

    async def _answer_reoffer(self, call: Call, req: Request, key: ServerKey) -> None:
        try:
            answer = await call.media.on_reoffer(req.body) if req.body else \
                await call.media.make_offer()
        except MediaRejected as e:
            self._reply(key, req, e.status, e.reason)
            self._pump()
            return
        assert call.dialog is not None
        tp = call.target.transport if call.target else "udp"
        hdrs = [("Contact", self.contact(tp)), ("Allow", ALLOW),
                ("Content-Type", "application/sdp")]
        hdrs += self._session_refreshed(call, req)
        resp = make_response(req, 200, None, headers=hdrs, body=answer)
        self.layer.send_response(key, resp, self.now())
        if req.method == "INVITE":
            self.layer.send_2xx_reliably(resp, self.layer_target(key, call), self.now())
        self._pump()

    def layer_target(self, key: ServerKey, call: Call) -> Target:
        t = self.layer._servers.get(key)
        if t is not None:
            return t.target
        assert call.target is not None
        return call.target

    def _on_invite(self, req: Request, source: Target, key: ServerKey) -> None:
        if req.call_id in self.calls:   # a second INVITE (new branch) for a call we have
            self._reply(key, req, 482, "Loop Detected")
            self._pump()
            return
        call = Call(self, "in", self.media_factory(), None)
        call.invite = req
        call.server_key = key
        call.target = source
        call.remote_sdp = req.body
        call.rel100 = supports(req, "100rel")
        try:
            call.session_timer = uas_negotiate(req, self.min_se)
        except TooSmall as e:
            self._reply(key, req, 422, "Session Interval Too Small", [("Min-SE", str(e.min_se))])
            self._pump()
            return
        except SipParseError as e:
            self._reply(key, req, 400, e.reason)
            self._pump()
            return
        self.calls[req.call_id] = call
        self.stats["calls_in"] += 1
        self._guard_setup(call)
        handler = self.on_incoming_call
        if handler is None:
            call.reject(480, "Temporarily Unavailable")
            # nobody holds this call: its failed ``answered`` must not be logged as an
            # unhandled error (two error events per INVITE in a flood)
            call.answered.addErrback(lambda f: None)
            self._pump()
            return
        try:
            result = handler(call)
            if inspect.isawaitable(result):
                def failed(f: Failure) -> None:
                    log.failure("incoming-call handler failed", f)
                    call.reject(500, "Server Internal Error")
                defer.ensureDeferred(_as_coro(result)).addErrback(failed)
        except Exception:
            log.failure("incoming-call handler failed")
            call.reject(500, "Server Internal Error")
        self._pump()

    def _respond_invite(self, call: Call, status: int, reason: str | None = None,
                        headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        assert call.invite is not None and call.server_key is not None
        if status >= 200:
            call._final_sent = True
        hdrs = list(headers or [])
        if 100 < status < 300:
            # §12.1.1: the dialog-creating response carries the request's Record-Route
            hdrs += [("Record-Route", rr) for rr in call.invite.headers.get_lines("record-route")]
            hdrs.append(("Contact", self.contact(call.target.transport if call.target else "udp")))
        if 200 <= status < 300:
            hdrs.append(("Allow", ALLOW))
            if call.session_timer is not None:
                hdrs.append(("Session-Expires", call.session_timer.header()))
                if supports(call.invite, "timer"):
                    hdrs.append(("Require", "timer"))
        if body:
            hdrs.append(("Content-Type", "application/sdp"))
        reliable = call.rel100 and 100 < status < 200
        if reliable:
            call._rseq = call._rseq + 1 if call._rseq else first_rseq()
            hdrs += [("Require", "100rel"), ("RSeq", str(call._rseq))]
        if 100 < status < 300 and call.dialog is None:
            tp = call.target.transport if call.target else "udp"
            call.dialog = Dialog.from_uas(call.invite, call.local_tag, self.contact(tp),
                                          confirmed=status >= 200)
            self.dialogs[call.dialog.id] = call
        resp = make_response(call.invite, status, reason, headers=hdrs, body=body,
                             to_tag=call.local_tag)
        try:
            if reliable:
                self.layer.send_1xx_reliably(call.server_key, resp, call._rseq, self.now())
            else:
                self.layer.send_response(call.server_key, resp, self.now())
        except (KeyError, ValueError) as e:
            log.info("cannot respond {status}: {e}", status=status, e=e)
            return
        if 200 <= status < 300:
            tgt = self.layer_target(call.server_key, call)
            self.layer.send_2xx_reliably(resp, tgt, self.now())
        self._pump()

    async def _answer(self, call: Call) -> None:
        assert call.invite is not None
        try:
            answer = await call.media.make_answer(call.invite.body)
        except MediaRejected as e:
            call.reject(e.status, e.reason)
            return
        if call._final_sent or call.state is CallState.ENDED:
            return
        self._respond_invite(call, 200, None, body=answer)
        if call.dialog is not None:
            call.dialog.confirm()
        self._arm_session_timer(call, call.session_timer, as_uac=False)
        self.stats["answered"] += 1
        call._set_state(CallState.CONFIRMED, status=200)

    def _on_cancel(self, ev: CancelReceived) -> None:
        call = self.calls.get(ev.cancel.call_id)
        if call is None or call.direction != "in" or not ev.pending:
            return
        call._final_sent = False
        self._respond_invite(call, 487, "Request Terminated")
        call._end("cancelled", 487)

    # --------------------------------------------------------------- session timers
    def _arm_session_timer(self, call: Call, timer: SessionTimer | None, *, as_uac: bool) -> None:
        """RFC 4028 §10: ``as_uac`` is our role in the transaction that set ``timer``."""
        if call._st_call is not None and call._st_call.active():
            call._st_call.cancel()
        call._st_call = None
        call.session_timer = timer
        if timer is None or call.state is CallState.ENDED:
            return
        i_refresh = (timer.refresher == "uac") == as_uac
        if i_refresh:
            call._st_call = self.reactor.callLater(refresh_delay(timer.interval),
                                                   self._refresh_session, call)
        else:
            call._st_call = self.reactor.callLater(expire_delay(timer.interval),
                                                   self._session_expired, call)

    def _session_refreshed(self, call: Call, req: Request) -> list[tuple[str, str]]:
        """A refresh (re-INVITE/UPDATE) arrived: re-arm, and the headers for our 2xx."""
        try:
            timer = uas_negotiate(req, self.min_se)
        except (TooSmall, SipParseError):
            timer = None
        if timer is None:
            if call.session_timer is None:
                return []
            timer = SessionTimer(call.session_timer.interval, "uac")
        self._arm_session_timer(call, timer, as_uac=False)
        return [("Session-Expires", timer.header()), ("Require", "timer")]

    def _refresh_session(self, call: Call) -> None:
        call._st_call = None
        timer = call.session_timer
        if timer is None or call.state is not CallState.CONFIRMED:
            return
        d = self._in_dialog(call, "UPDATE", headers=[
            ("Session-Expires", f"{timer.interval};refresher=uac"), ("Supported", "timer")])

        def done(resp: Response) -> None:
            if 200 <= resp.status < 300:
                self._arm_session_timer(call, _safe_uac_result(resp) or timer, as_uac=True)
            elif call.state is CallState.CONFIRMED:
                call.hangup()                              # §10: the refresh failed

        def failed(f: Failure) -> None:
            if call.state is CallState.CONFIRMED:
                call._end("session-expired", 408)

        d.addCallbacks(done, failed)

    def _session_expired(self, call: Call) -> None:
        call._st_call = None
        if call.state is CallState.CONFIRMED:
            self._in_dialog(call, "BYE").addErrback(lambda f: None)
            call._end("session-expired", 408)

    # --------------------------------------------------------------- bookkeeping
    def _guard_setup(self, call: Call) -> None:
        if self.no_answer_timeout > 0:
            call._no_answer = self.reactor.callLater(self.no_answer_timeout, self._no_answer,
                                                     call)

    def _no_answer(self, call: Call) -> None:
        call._no_answer = None
        if call.state in (CallState.CONFIRMED, CallState.ENDED):
            return
        log.info("call {cid} not answered in {t}s", cid=call.call_id, t=self.no_answer_timeout)
        if call.direction == "in":
            call.reject(480, "Temporarily Unavailable")
        else:
            call.hangup()        # CANCEL -> 487; without any provisional, timer B ends it

    def _forget(self, call: Call) -> None:
        self.stats["ended"] += 1
        if call._no_answer is not None and call._no_answer.active():
            call._no_answer.cancel()
        call._no_answer = None
        if call._st_call is not None and call._st_call.active():
            call._st_call.cancel()
        call._st_call = None
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        if call.dialog is not None and self.dialogs.get(call.dialog.id) is call:
            del self.dialogs[call.dialog.id]


def _safe_uac_result(resp: Response) -> SessionTimer | None:
    try:
        return uac_result(resp)
    except SipParseError:
        return None


async def _as_coro(aw: Awaitable[Any]) -> Any:
    return await aw


def _is_ip(host: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
