"""The user-agent API: a :class:`UserAgent` with accounts, :class:`Call` objects, handlers.

:class:`UserAgent` is the Twisted driver of one sans-I/O
:class:`~siplink.core.user_agent.UserAgentCore` (the transaction user, RFC 3261 §8, §12-§15) and its
:class:`~siplink.core.transaction.TransactionLayer`, over one
:class:`~siplink.transport.driver.SipTransport`. It turns the core's events into Deferreds and
media calls, and resolves host names without blocking the reactor. It is the layer a
softphone backend talks to::

    ua = UserAgent(reactor, host="127.0.0.1", port=5070)
    ua.listen()
    call = ua.call("sip:bob@127.0.0.1:5080")
    yield call.answered             # fires with the call once a 2xx is ACKed
    yield call.hangup()

Incoming calls go to ``ua.on_incoming_call(call)``, which may ``ring()``, ``answer()``,
``reject(status)`` or ``redirect(contact)``. Session descriptions stay opaque: every call has
a :class:`MediaSession` (``make_offer``/``on_answer``/``make_answer``/``on_reoffer``/``close``,
``attach``/``ice_info``) so the SDP/ICE layer plugs in; :class:`StaticMedia` answers with a
fixed SDP. Re-INVITEs are the call's: :meth:`Call.hold`, :meth:`Call.resume`,
:meth:`Call.restart_ice` and :meth:`Call.reinvite` ask the media for the re-offer.

Client requests that get 401/407 are retried once per challenge with the account's
credentials (:class:`siplink.sip.digest.DigestClient`). Every failure is a
:class:`~siplink.core.errors.SipError` with an :class:`~siplink.core.errors.EndCause`.
"""

from __future__ import annotations

import contextlib
import inspect
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ice.trace import Trace
from siplink.core.account import Account
from siplink.core.client_request import ClientRequest
from siplink.core.dialog import Dialog
from siplink.core.errors import CallDirection, CallState, EndCause, SipError
from siplink.core.events import (
    AckReceived,
    AnswerReceived,
    CallStateChanged,
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
from siplink.core.prack import option_tags, requires

if TYPE_CHECKING:
    from siplink.dns.resolver import DnsResolver
from siplink.core.session_timer import SessionTimer
from siplink.core.transaction import Event, Target, TransactionLayer
from siplink.core.user_agent import USER_AGENT, UserAgentCore
from siplink.sip.digest import DigestServer
from siplink.sip.message import Request, Response
from siplink.transport.driver import SipTransport
from siplink.ua.outcome import Outcome

if TYPE_CHECKING:
    from siplink.ua.config import SipConfig
    from siplink.ua.registration import Registration

log = Logger()

__all__ = [
    "Account",
    "Call",
    "CallDirection",
    "CallEvent",
    "CallState",
    "EndCause",
    "MediaRejected",
    "MediaSession",
    "SipError",
    "StaticMedia",
    "UserAgent",
]


# ----------------------------------------------------------------------------- media hook


class MediaRejected(Exception):
    """Raised by a MediaSession that cannot accept an offer: the UA answers ``status`` (488 by
    default) with a Warning header (RFC 3261 §13.3.1.3, §20.43) carrying ``warn_code`` (304
    media type not available, 305 incompatible media format, 399 miscellaneous...) and the
    reason."""

    def __init__(self, reason: str = "Not Acceptable Here", status: int = 488,
                 warn_code: int = 399) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.warn_code = warn_code


class MediaSession(Protocol):
    """What a call needs of its media: SDP offers and answers, and a close. ``attach(call)``
    tells the session its call (to end it or re-INVITE); ``ice_info()`` reports what ICE did
    (None without ICE).

    The call owns hold and ICE restart: ``make_offer(hold=True)`` is the re-offer that puts
    the peer on hold (sendonly, RFC 3264 §8.4), ``make_offer(ice_restart=True)`` the one that
    restarts ICE (new credentials, RFC 8445 §9); ``on_reoffer(offer, hold=True)`` answers a
    peer's re-offer while we hold it. The call sends every re-INVITE itself; an answer goes to
    ``on_answer`` once."""

    async def make_offer(self, *, hold: bool = False, ice_restart: bool = False) -> bytes: ...
    async def on_answer(self, sdp: bytes) -> None: ...
    async def make_answer(self, offer: bytes) -> bytes: ...
    async def on_reoffer(self, offer: bytes, *, hold: bool = False) -> bytes: ...
    def close(self) -> None: ...
    def attach(self, call: Call) -> None: ...
    def ice_info(self) -> dict[str, Any] | None: ...


class StaticMedia:
    """A fixed audio SDP (PCMU) at ``host:port``; records what the peer sent."""

    def __init__(self, host: str = "127.0.0.1", port: int = 40000) -> None:
        self.host = host
        self.port = port
        self.version = 0
        self.remote: list[bytes] = []
        self.closed = False

    def sdp(self, hold: bool = False) -> bytes:
        self.version += 1
        direction = "sendonly" if hold else "sendrecv"
        family = "IP6" if ":" in self.host else "IP4"   # RFC 4566 §5.7 addrtype
        return (f"v=0\r\no=siplink 1 {self.version} IN {family} {self.host}\r\ns=-\r\n"
                f"c=IN {family} {self.host}\r\nt=0 0\r\nm=audio {self.port} RTP/AVP 0\r\n"
                f"a=rtpmap:0 PCMU/8000\r\na={direction}\r\n").encode()

    async def make_offer(self, *, hold: bool = False, ice_restart: bool = False) -> bytes:
        return self.sdp(hold)

    async def on_answer(self, sdp: bytes) -> None:
        self.remote.append(sdp)

    async def make_answer(self, offer: bytes) -> bytes:
        if offer and b"m=" not in offer:
            raise MediaRejected("no media line")
        self.remote.append(offer)
        if self.host in ("0.0.0.0", "::"):
            # listening on a wildcard: answer in the offer's address family (its loopback
            # address; StaticMedia opens no socket), never the unspecified address
            self.host = "::1" if b"IN IP6" in offer else "127.0.0.1"
        return self.sdp()

    async def on_reoffer(self, offer: bytes, *, hold: bool = False) -> bytes:
        if offer and b"m=" not in offer:
            raise MediaRejected("no media line")
        self.remote.append(offer)
        return self.sdp(hold)

    def close(self) -> None:
        self.closed = True

    def attach(self, call: Call) -> None:
        pass

    def ice_info(self) -> dict[str, Any] | None:
        return None



# ----------------------------------------------------------------------------- calls


@dataclass(frozen=True, slots=True)
class CallEvent:
    call: Call
    state: CallState
    cause: EndCause | None = None
    status: int | None = None


class Call:
    """One INVITE session, either direction: the application's handle on an
    :class:`~siplink.core.user_agent.InviteSession` and its :class:`MediaSession`.

    ``await call.answered`` fires with the call once a 2xx is sent or received (and fails with
    :class:`SipError` if the call ends first); ``await call.ended`` fires with the
    :class:`EndCause`. Each access gives a Deferred of its own, so an outcome nobody waits for
    is never reported as an unhandled error."""

    def __init__(self, ua: UserAgent, session: InviteSession, media: MediaSession) -> None:
        self.ua = ua
        self.session = session
        session.context = self
        self.media = media
        self._answered: Outcome[Call] = Outcome()
        self._ended: Outcome[EndCause] = Outcome()
        self._listeners: list[Callable[[CallEvent], None]] = []
        self._applying: defer.Deferred[None] | None = None   # the media applying an answer
        self.held = False           # we hold the peer (our offers and answers: sendonly)
        media.attach(self)   # the session learns its call (to end it, re-INVITE)
        # SIP extensions the media brings (trickle ICE: Recv-Info/Supported trickle-ice)
        session.info_packages = tuple(getattr(media, "info_packages", ()))
        session.options = tuple(getattr(media, "option_tags", ()))

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.state.value} {self.call_id}>"

    # --------------------------------------------------------------- what the session knows
    @property
    def direction(self) -> CallDirection:
        return self.session.direction

    @property
    def account(self) -> Account | None:
        return self.session.account

    @property
    def state(self) -> CallState:
        return self.session.state

    @property
    def cause(self) -> EndCause | None:
        return self.session.cause

    @property
    def end_reason(self) -> str:
        """The detail behind ``cause`` (a reason phrase, the media's explanation...)."""
        return self.session.reason

    @property
    def status(self) -> int | None:
        return self.session.status

    @property
    def redirects(self) -> list[tuple[int, str]]:
        """The 3xx responses followed (RFC 3261 §8.1.3.4): (status, the Contact tried next)."""
        creq = self.session.creq
        return list(creq.redirects) if creq is not None else []

    @property
    def invite(self) -> Request | None:
        return self.session.invite

    @property
    def dialog(self) -> Dialog | None:
        return self.session.dialog

    @property
    def remote_sdp(self) -> bytes:
        return self.session.remote_sdp

    @property
    def session_timer(self) -> SessionTimer | None:
        return self.session.session_timer

    @property
    def rel100(self) -> bool:
        return self.session.rel100

    @property
    def call_id(self) -> str:
        return self.session.call_id

    @property
    def answered(self) -> defer.Deferred[Call]:
        return self._answered.wait()

    @property
    def ended(self) -> defer.Deferred[EndCause]:
        return self._ended.wait()

    @property
    def is_answered(self) -> bool:
        """A 2xx was sent or received (the call may have ended since)."""
        return self.session.answered

    @property
    def ice(self) -> dict[str, Any] | None:
        """What ICE did for this call (selected pairs, time to connected, checks sent...),
        as the media session reports it (``ice_info()``), or None if it has no ICE."""
        return self.media.ice_info()

    # --------------------------------------------------------------- events
    def subscribe(self, listener: Callable[[CallEvent], None]) -> None:
        self._listeners.append(listener)

    def _on_state(self, ev: CallStateChanged) -> None:
        out = CallEvent(self, ev.state, ev.cause, ev.status)
        for cb in list(self._listeners):
            try:
                cb(out)
            except Exception:
                log.failure("call listener failed")
        if ev.state is CallState.CONFIRMED:
            self._answered.succeed(self)
        elif ev.state is CallState.ENDED:
            try:
                self.media.close()
            except Exception:
                log.failure("media close failed")
            if not self._answered.called:
                cause = ev.cause or EndCause.ERROR
                self._answered.fail(SipError(ev.status, ev.reason or str(cause), cause))
            self._ended.succeed(ev.cause or EndCause.ERROR)

    # --------------------------------------------------------------- UAS API
    def ring(self) -> None:
        """Send 180 Ringing (creates the early dialog on our side)."""
        self.ua._do(lambda now: self.ua.core.ring(self.session, now))

    def answer(self) -> None:
        """Answer with 200 OK and the media session's answer (or, for an INVITE without SDP,
        its offer: the answer comes in the ACK). ``await call.answered`` to wait for it: a
        media session that refuses the offer rejects the call (488) and fails ``answered``."""
        s = self.session
        if s.direction is CallDirection.INCOMING and not s.final_sent:
            d = defer.ensureDeferred(self.ua._answer(self))
            d.addErrback(lambda f: log.failure("answer failed", f))

    def reject(self, status: int = 486, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> None:
        self.ua._do(lambda now: self.ua.core.reject(self.session, status, reason, now,
                                                    headers=headers))

    def redirect(self, contact: str, status: int = 302) -> None:
        self.reject(status, None, [("Contact", f"<{contact}>")])

    # --------------------------------------------------------------- both sides
    def hangup(self, cause: EndCause = EndCause.LOCAL_BYE) -> defer.Deferred[EndCause]:
        """End the call in whatever state: BYE when answered, CANCEL while calling (UAC),
        603 while ringing (UAS). Fires with the end cause once the call has ended (a
        CANCELled call ends with the 487, or when the INVITE transaction gives up)."""
        self.ua._do(lambda now: self.ua.core.hangup(self.session, now, cause))
        return self.ended

    def end(self, cause: EndCause, status: int | None = None, reason: str = "") -> None:
        """End the call because of ``cause`` (media failure, for example): BYE if answered,
        else CANCEL (UAC) or the final response ``status`` (UAS, 480 by default) with a
        Warning carrying ``reason``."""
        s = self.session
        self.ua._do(lambda now: self.ua.core.hangup(
            s, now, cause, status=(status or 480) if not s.answered else None, reason=reason))

    def reinvite(self, *, ice_restart: bool = False) -> defer.Deferred[Response]:
        """Send a re-INVITE with a new offer from the media session (``ice_restart``: one
        that restarts ICE); fires with the final response (2xx: ACKed, answer applied). A
        non-2xx fails it with :class:`SipError`: on 491 (glare) the UA retries once by itself
        after the RFC 3261 §14.1 interval."""
        return defer.ensureDeferred(self.ua._reinvite(self, ice_restart=ice_restart))

    def hold(self) -> defer.Deferred[Response]:
        """Put the peer on hold: a re-INVITE whose offer is sendonly (RFC 3264 §8.4); our
        answers to the peer's re-offers stay sendonly until :meth:`resume`."""
        self.held = True
        return self.reinvite()

    def resume(self) -> defer.Deferred[Response]:
        """Take the peer off hold: a re-INVITE whose offer is sendrecv again."""
        self.held = False
        return self.reinvite()

    def restart_ice(self) -> defer.Deferred[Response]:
        """ICE restart by re-INVITE (RFC 8445 §9): new credentials, new checks; media stays
        on the old pair until a new one is selected."""
        return self.reinvite(ice_restart=True)

    def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                headers: list[tuple[str, str]] | None = None) -> defer.Deferred[Response]:
        """Any request in the call's dialog (INFO, UPDATE, OPTIONS, BYE...): its final
        response; fails with :class:`SipError` (no dialog, timeout...)."""
        return self.ua._request_in_dialog(self, method, body, content_type, headers)

    def info(self, body: bytes = b"", content_type: str = "application/dtmf-relay"
             ) -> defer.Deferred[Response]:
        return self.request("INFO", body, content_type)

    def update(self, body: bytes = b"", content_type: str = "application/sdp"
               ) -> defer.Deferred[Response]:
        return self.request("UPDATE", body, content_type)

    def options(self) -> defer.Deferred[Response]:
        return self.request("OPTIONS")


# ----------------------------------------------------------------------------- the UA


class UserAgent:
    """A SIP user agent on one reactor (see the module docstring)."""

    def __init__(self, reactor: Any, *, host: str = "127.0.0.1", port: int = 0,
                 transport: str = "udp", user: str = "siplink",
                 media_factory: Callable[[], MediaSession] | None = None,
                 trace: Trace | None = None, auto_trying: bool = True,
                 session_expires: int = 1800, min_se: int = 90,
                 no_answer_timeout: float = 180.0, user_agent: str = USER_AGENT,
                 rng: random.Random | None = None,
                 bind_context: Callable[[], contextlib.AbstractContextManager[Any]] | None
                 = None, dns_servers: Sequence[tuple[str, int]] | None = None,
                 dns_timeout: float = 5.0) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.default_transport = transport
        self.user = user
        self.media_factory = media_factory or (lambda: StaticMedia(host))
        rng = rng or random.Random()
        self.layer = TransactionLayer(trace=trace, auto_trying=auto_trying, rng=rng)
        self.transport = SipTransport(self.layer, reactor, self._on_layer_event)
        # entered around every SIP socket made, also TCP/TLS connections opened later
        # (e.g. a network namespace's ``entered``)
        self.transport.bind_context = bind_context
        self.core = UserAgentCore(self.layer, rng=rng, user=user, user_agent=user_agent,
                                  local=self.local, default_transport=transport,
                                  session_expires=session_expires, min_se=min_se,
                                  no_answer_timeout=no_answer_timeout)
        self.transport.clock = self.core        # one timer for the core and its layer
        self.transport.server_names = self.core.server_names   # TLS checks these names
        self.transport.on_idle = self._drain
        # RFC 3263 (NAPTR, SRV, A/AAAA) through these DNS servers (None: the system's), on
        # twisted.names: a slow server delays only the requests that wait on it
        self.dns_servers = list(dns_servers) if dns_servers else None
        self.resolve_timeout = dns_timeout
        self._dns: DnsResolver | None = None
        # an address-only lookup instead of RFC 3263 (host name -> address, or a Deferred
        # of it): tests and applications with their own name table set it
        self.resolve_host: Callable[[str], Any] | None = None
        self.accounts: list[Account] = []
        self.calls: dict[str, Call] = {}                     # Call-ID -> call
        self.registrations: list[Registration] = []
        self.on_incoming_call: Callable[[Call], Any] | None = None
        self.on_request: Callable[[Request], None] | None = None   # any in-dialog request seen
        self._tls_server_context: Any = None    # our certificate, for a TLS listener

    # --------------------------------------------------------------- core settings
    @property
    def authenticator(self) -> DigestServer | None:
        """Set it to require digest credentials (RFC 3261 §22.3) on every request that opens
        something (out of dialog; ACK and CANCEL cannot be challenged, §22.1)."""
        return self.core.authenticator

    @authenticator.setter
    def authenticator(self, value: DigestServer | None) -> None:
        self.core.authenticator = value

    @property
    def stats(self) -> dict[str, int]:
        return self.core.stats

    @property
    def no_answer_timeout(self) -> float:
        return self.core.no_answer_timeout

    @no_answer_timeout.setter
    def no_answer_timeout(self, value: float) -> None:
        self.core.no_answer_timeout = value

    @property
    def session_expires(self) -> int:
        return self.core.session_expires

    @session_expires.setter
    def session_expires(self, value: int) -> None:
        self.core.session_expires = value

    @property
    def user_agent(self) -> str:
        return self.core.user_agent

    # --------------------------------------------------------------- set-up
    @classmethod
    def from_config(cls, reactor: Any, sip: SipConfig, *, user: str = "siplink",
                    listen: str | None = None, **kwargs: Any) -> UserAgent:
        """A UA for the ``[sip]`` section: listen address, transport and TLS (trust anchors,
        verification, our certificate). ``listen`` (``HOST:PORT``) overrides ``sip.listen``.
        Raises :class:`siplink.ua.config.ConfigError` for unusable TLS files."""
        from twisted.internet import ssl

        from siplink.ua.config import ConfigError, dns_server, split_hostport

        host, port = split_hostport(listen or sip.listen, key="sip.listen")
        kwargs.setdefault("user_agent", sip.user_agent)
        kwargs.setdefault("dns_servers", [dns_server(x) for x in sip.dns_servers] or None)
        kwargs.setdefault("dns_timeout", sip.dns_timeout_s)
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
        self.core.close(self.now())
        self._drain()                     # the calls learn they ended (media closed)
        self.transport.close()

    def now(self) -> float:
        return float(self.reactor.seconds())

    def local(self, transport: str) -> Target:
        t = self.transport.local.get(transport) or self.transport.local.get("udp")
        if t is None:
            t = next(iter(self.transport.local.values()), Target(transport, self.host,
                                                                 self.port))
        return t

    def contact(self, transport: str, user: str | None = None) -> str:
        return self.core.contact(transport, user)

    def state_sizes(self) -> dict[str, int]:
        """Every table of this UA (its core, transaction layer and transport) that grows with
        calls and requests: all 0 once they are over and their timers have run."""
        sizes = {"calls": len(self.calls), "server_names": len(self.transport.server_names)}
        sizes.update({f"core.{k}": v for k, v in self.core.state_sizes().items()})
        sizes.update({f"layer.{k}": v for k, v in self.layer.state_sizes().items()})
        return sizes

    # --------------------------------------------------------------- driving the core
    def _do(self, action: Callable[[float], Any]) -> None:
        """Run one core API call now, then flush what it sent and the events it raised."""
        action(self.now())
        self.transport.pump()

    def _on_layer_event(self, ev: Event) -> None:
        self.core.handle_layer_event(ev, self.now())

    def _drain(self) -> bool:
        did = False
        while (ev := self.core.next_event()) is not None:
            did = True
            try:
                self._dispatch(ev)
            except Exception:
                log.failure("user agent failed on {ev}", ev=type(ev).__name__)
        return did

    def _dispatch(self, ev: CoreEvent) -> None:
        if isinstance(ev, RequestCompleted):
            d = ev.request.context
            if isinstance(d, defer.Deferred) and not d.called:
                if ev.error is not None:
                    d.errback(ev.error)
                else:
                    d.callback(ev.response)
        elif isinstance(ev, CallStateChanged):
            call = ev.session.context
            if isinstance(call, Call):
                if ev.state is CallState.ENDED and self.calls.get(call.call_id) is call:
                    del self.calls[call.call_id]
                call._on_state(ev)
        elif isinstance(ev, IncomingCall):
            self._incoming(ev.session)
        elif isinstance(ev, AnswerReceived):
            call = ev.session.context
            if isinstance(call, Call):
                d = defer.ensureDeferred(call.media.on_answer(ev.sdp))
                d.addErrback(lambda f: log.failure("media on_answer failed", f))
                call._applying = d
        elif isinstance(ev, ReofferReceived):
            defer.ensureDeferred(self._reoffer(ev)).addErrback(
                lambda f: log.failure("re-offer failed", f))
        elif isinstance(ev, OfferRequested):
            defer.ensureDeferred(self._offer_requested(ev)).addErrback(
                lambda f: log.failure("offer failed", f))
        elif isinstance(ev, InDialogRequest):
            if self.on_request is not None:
                self.on_request(ev.request)
        elif isinstance(ev, InfoReceived):
            self._info(ev)
        elif isinstance(ev, EarlyDialogResponse | AckReceived):
            self._signalling_ready(ev)
        elif isinstance(ev, ResolveHost):
            if self.resolve_host is not None:
                self._resolve(ev.name)
            else:
                defer.ensureDeferred(self._locate(ev)).addErrback(
                    lambda f: log.failure("locating {name} failed", f, name=ev.name))

    def _signalling_ready(self, ev: EarlyDialogResponse | AckReceived) -> None:
        """The dialog can carry the media's INFOs now (trickle ICE): tell it, with the
        peer's option tags (Supported/Require of the 18x, or of its INVITE)."""
        call = ev.session.context
        ready = getattr(call.media, "signalling_ready", None) if isinstance(call, Call) \
            else None
        if ready is None:
            return
        msg = ev.response if isinstance(ev, EarlyDialogResponse) else ev.session.invite
        tags = frozenset(option_tags(msg)) if msg is not None else frozenset()
        # an unreliable 18x: our INFO tells the peer the early dialog exists (RFC 8840 §4.3)
        force = isinstance(ev, EarlyDialogResponse) and not requires(ev.response, "100rel")
        ready(tags, force=force)

    def _info(self, ev: InfoReceived) -> None:
        """An INFO of a package in the call's Recv-Info: its media answers it."""
        call = ev.session.context
        handler = getattr(call.media, "on_info", None) if isinstance(call, Call) else None
        status, reason = 469, "Bad Info Package"
        if handler is not None:
            try:
                status, reason = handler(ev.package, ev.request.headers.get("Content-Type"),
                                         ev.request.body)
            except Exception:
                log.failure("media on_info failed")
                status, reason = 500, "Server Internal Error"
        self.core.answer_info(ev.token, status, reason, self.now())

    @property
    def dns(self) -> DnsResolver:
        """The RFC 3263 resolver (made on first use)."""
        if self._dns is None:
            from siplink.dns.resolver import DnsResolver
            self._dns = DnsResolver(self.reactor, self.dns_servers,
                                    timeout=self.resolve_timeout, rng=self.core.rng)
        return self._dns

    def _usable(self, address: str) -> bool:
        """Can our socket send to ``address`` (its family: an IPv4 or IPv6 listener, or
        dual-stack ``::``)?"""
        v6 = ":" in address
        if self.host == "::":
            return True
        return v6 == (":" in self.host)

    async def _locate(self, ev: ResolveHost) -> None:
        from siplink.dns.rfc3263 import LocateError

        try:
            found = await self.dns.locate(ev.name, ev.port, ev.transport, ev.secure)
            targets = [Target(t.transport, t.address, t.port) for t in found
                       if self._usable(t.address)]
            error = "" if targets else (f"{ev.name}: no address of this UA's family "
                                        f"(listening on {self.host})")
        except LocateError as e:
            targets, error = [], f"cannot resolve {ev.name!r}: {e}"
        if error:
            log.info("{e}", e=error)
        self._do(lambda now: self.core.targets_resolved(ev, targets, error, now))

    def _resolve(self, name: str) -> None:
        assert self.resolve_host is not None
        d = defer.maybeDeferred(self.resolve_host, name)
        d.addTimeout(self.resolve_timeout, self.reactor)

        def done(address: Any) -> None:
            self._do(lambda now: self.core.host_resolved(name, str(address), now))

        def failed(f: Failure) -> None:
            log.info("cannot resolve {name}: {e}", name=name, e=f.getErrorMessage())
            self._do(lambda now: self.core.host_resolved(name, None, now))
        d.addCallbacks(done, failed)

    def _track(self, creq: ClientRequest) -> defer.Deferred[Response]:
        d: defer.Deferred[Response] = defer.Deferred()
        creq.context = d
        self.transport.pump()
        return d

    def send_request(self, creq: ClientRequest) -> defer.Deferred[Response]:
        """Send a :class:`~siplink.core.user_agent.ClientRequest` built elsewhere (registration);
        fires with its final response."""
        self.core.send(creq, self.now())
        return self._track(creq)

    # --------------------------------------------------------------- requests
    def request(self, method: str, uri: str, *, account: Account | None = None,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                content_type: str | None = None, target: Target | None = None
                ) -> defer.Deferred[Response]:
        """An out-of-dialog request (OPTIONS, MESSAGE, REGISTER...); fires with the final
        response (any status), after answering digest challenges; fails with
        :class:`SipError` when none comes."""
        try:
            creq = self.core.request(method, uri, self.now(), account=account, headers=headers,
                                     body=body, content_type=content_type, target=target)
        except SipError as e:
            return defer.fail(e)
        return self._track(creq)

    def _request_in_dialog(self, call: Call, method: str, body: bytes, content_type: str | None,
                           headers: list[tuple[str, str]] | None) -> defer.Deferred[Response]:
        try:
            creq = self.core.in_dialog(call.session, method, self.now(), body, content_type,
                                       headers=headers)
        except SipError as e:
            return defer.fail(e)
        return self._track(creq)

    # --------------------------------------------------------------- UAC calls
    def call(self, uri: str, *, account: Account | None = None,
             media: MediaSession | None = None,
             headers: list[tuple[str, str]] | None = None) -> Call:
        """Place a call; returns at once. ``await call.answered`` / ``call.ended``."""
        session = self.core.new_session(CallDirection.OUTGOING, self.now(), account)
        call = Call(self, session, media or self.media_factory())
        d = defer.ensureDeferred(self._start_call(call, uri, headers or []))

        def failed(f: Failure) -> None:
            log.failure("call failed to start", f)
            self._do(lambda now: self.core.end(session, EndCause.ERROR, now,
                                               reason=f.getErrorMessage()))
        d.addErrback(failed)
        return call

    async def _start_call(self, call: Call, uri: str, extra: list[tuple[str, str]]) -> None:
        offer = await call.media.make_offer()
        now = self.now()
        self.core.start_invite(call.session, uri, offer, now, headers=extra)
        if call.session.state is not CallState.ENDED:
            self.calls[call.call_id] = call
        self.transport.pump()

    async def _reinvite(self, call: Call, *, ice_restart: bool = False) -> Response:
        s = call.session
        if s.dialog is None or s.state is not CallState.CONFIRMED:
            raise SipError(481, "No confirmed dialog")
        if s.reinvite is not None:
            raise SipError(491, "Request Pending")
        offer = await call.media.make_offer(hold=call.held, ice_restart=ice_restart)
        creq = self.core.send_reinvite(s, offer, self.now())
        if creq is None:
            raise SipError(491 if s.reinvite is not None else 481, "Request Pending"
                           if s.reinvite is not None else "No confirmed dialog")
        call._applying = None
        resp = await self._track(creq)
        if not 200 <= resp.status < 300:
            raise SipError(resp.status, resp.reason)
        if call._applying is not None:       # the media applies the answer first
            await call._applying
        return resp

    # --------------------------------------------------------------- UAS calls
    def _incoming(self, session: InviteSession) -> None:
        call = Call(self, session, self.media_factory())
        self.calls[call.call_id] = call
        handler = self.on_incoming_call
        if handler is None:
            self._do(lambda now: self.core.reject(session, 480, "Temporarily Unavailable", now))
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

    async def _answer(self, call: Call) -> None:
        s = call.session
        assert s.invite is not None
        late_offer = not s.invite.body
        try:
            # an INVITE without SDP: our 2xx carries the offer, the ACK the answer (§13.3.1.1)
            sdp = await (call.media.make_offer() if late_offer
                         else call.media.make_answer(s.invite.body))
        except MediaRejected as e:
            warning = ([("Warning", self.core.warning(e.warn_code, e.reason))]
                       if e.status == 488 else None)
            self.core.reject(s, e.status, e.reason, self.now(), headers=warning,
                             cause=EndCause.MEDIA)
            self.transport.pump()
            return
        self._do(lambda now: self.core.answer(s, sdp, now))

    async def _reoffer(self, ev: ReofferReceived) -> None:
        call = ev.session.context
        if not isinstance(call, Call):
            return
        try:
            answer = await call.media.on_reoffer(ev.sdp, hold=call.held)
        except MediaRejected as e:
            self.core.refuse_reoffer(ev.token, e.status, e.reason, self.now(),
                                     warn_code=e.warn_code)
            self.transport.pump()
            return
        self._do(lambda now: self.core.answer_reoffer(ev.token, answer, now))

    async def _offer_requested(self, ev: OfferRequested) -> None:
        call = ev.session.context
        if not isinstance(call, Call):
            return
        offer = await call.media.make_offer(hold=call.held)
        if ev.token == 0:            # the glare retry of our re-INVITE (§14.1)
            self._do(lambda now: self.core.send_reinvite(ev.session, offer, now))
        else:
            self._do(lambda now: self.core.answer_reoffer(ev.token, offer, now))


async def _as_coro(aw: Awaitable[Any]) -> Any:
    return await aw
