"""Registration (RFC 3261 §10): REGISTER with digest, refresh before expiry, unregister.

One :class:`Registration` binds one account's contact at its registrar. It keeps one Call-ID
and increasing CSeq numbers across refreshes (§10.2.4), answers 401/407 with the account's
credentials (through the UA's client-request path), honours 423 Interval Too Brief by
retrying with Min-Expires, reads the granted expiry from our Contact's ``expires`` parameter
(or the Expires header), and re-registers at :func:`refresh_delay` before it lapses.

Behind a NAT (the account's ``keepalive_s``, ``contact_rewrite``, ``outbound``): the
registration's flow (the transport and address its REGISTER went to) gets a keep-alive every
``keepalive_s`` seconds, so the NAT keeps the mapping the registrar routes incoming requests
through (RFC 5626 §4.4.1: CRLFCRLF ping on TCP/TLS, answered by a CRLF pong; on UDP a CRLF
datagram, which registrars ignore, as pjsip sends); when the 200's top Via says the registrar
saw us at another address (``received``/``rport``, RFC 3581), the binding is moved to that
public Contact (the private one removed in the same REGISTER), for registrars without
outbound; with ``outbound`` the Contact carries ``+sip.instance`` (a UUID URN from the UA's
rng) and ``reg-id=1`` and the REGISTER ``Supported: outbound`` (RFC 5626 §4.2).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from siplink.core.account import Account
from siplink.core.client_request import ClientRequest
from siplink.core.errors import SipError
from siplink.core.user_agent import as_uri, contact_uri
from siplink.sip.message import Request, Response, make_request

if TYPE_CHECKING:
    from siplink.ua.useragent import UserAgent

log = Logger()

__all__ = ["Registration", "RegistrationState", "refresh_delay"]


def _uuid(rng: Any) -> str:
    """An RFC 4122 version-4 UUID from ``rng`` (the UA's injected random.Random)."""
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class RegistrationState(Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


FLOW_RETRY_BASE = 1.0      # s: first re-registration after a lost flow (RFC 5626 §4.5)
FLOW_RETRY_MAX = 30.0


def refresh_delay(expires: int) -> float:
    """When to refresh a binding granted for ``expires`` seconds: halfway for short ones,
    otherwise 30 s early (as most UAs do)."""
    if expires <= 60:
        return max(1.0, expires / 2)
    return float(expires - 30)


class Registration:
    def __init__(self, ua: UserAgent, account: Account, *, expires: int | None = None,
                 transport: str | None = None) -> None:
        self.ua = ua
        self.account = account
        self.expires = expires if expires is not None else account.expires
        self.call_id = ua.core.new_call_id()
        self.from_tag = ua.core.new_tag()
        self.cseq = 0
        self.state = RegistrationState.UNREGISTERED
        self.granted: int | None = None
        self.last_response: Response | None = None
        # where REGISTER goes: the outbound proxy, else the registrar, else the domain
        self.hop = as_uri(account.proxy or account.registrar or f"sip:{account.domain}")
        self.transport = (transport or account.transport or self.hop.params.get("transport")
                          or ("tls" if self.hop.scheme == "sips" else ua.default_transport))
        self.contact = ua.contact(self.transport, account.user)
        self.private_contact = self.contact      # before any contact rewrite
        self.instance = ("<urn:uuid:" + _uuid(ua.core.rng) + ">") if account.outbound else None
        self.flow: Any = None                    # the Target our REGISTER went to
        self.keepalives_sent = 0
        self.rewritten = False                   # the Contact is the public address now
        self._refresh: Any = None
        self._keepalive: Any = None
        self.flow_failures = 0                   # flows lost (RFC 5626 §4.5)
        self._recover_delay = FLOW_RETRY_BASE
        # STUN keep-alives (outbound over UDP): the outstanding Binding, what it said
        self._stun_tid: bytes | None = None
        self.mapped: tuple[str, int] | None = None   # our address as the registrar sees it
        self.stun_answers = 0
        ua.transport.flow_listeners.append(self._flow_lost)
        ua.transport.stun_listeners.append(self._stun_in)

    @property
    def registrar_uri(self) -> str:
        reg = self.account.registrar
        if reg:
            return reg if reg.lower().startswith(("sip:", "sips:")) else f"sip:{reg}"
        return f"sip:{self.account.domain}"

    def _build(self, expires: int, drop: str | None = None) -> Any:
        def build(cseq: int, auth: list[tuple[str, str]]) -> Request:
            self.cseq = cseq
            hdrs = [
                ("Via", self.ua.core.via(self.transport)),
                ("Max-Forwards", "70"),
                ("From", f"{self.account.from_value};tag={self.from_tag}"),
                ("To", self.account.from_value),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} REGISTER"),
                ("Contact", self._contact_value(expires)),
                ("Expires", str(expires)),
                ("User-Agent", self.ua.user_agent),
            ]
            if drop is not None:             # the private Contact leaves (contact rewrite)
                hdrs.append(("Contact", f"{drop};expires=0"))
            if self.instance is not None:
                hdrs.append(("Supported", "outbound, path"))
            hdrs += auth
            return make_request("REGISTER", self.registrar_uri, hdrs)
        return build

    def _contact_value(self, expires: int) -> str:
        value = f"{self.contact};expires={expires}"
        if self.instance is not None:
            value += f';+sip.instance="{self.instance}";reg-id=1'
        return value

    async def _send(self, expires: int, drop: str | None = None) -> Response:
        creq = ClientRequest(self._build(expires, drop), self.cseq + 1, self.hop,
                             account=self.account, transport=self.transport)
        creq.preauth = True     # refreshes and retries reuse the registrar's last nonce
        resp: Response = await self.ua.send_request(creq)
        self.last_response = resp
        self.flow = creq.target
        return resp

    def _public_contact(self, resp: Response) -> str | None:
        """The Contact at the address the registrar saw (our top Via's received/rport, RFC
        3581), when it differs from the one we registered; None otherwise."""
        if not resp.via:
            return None
        via = resp.via[0]
        received = via.params.get("received")
        rport = via.params.get("rport")
        if not received and not rport:
            return None
        host = (received or via.host).strip("[]")
        port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
        current = as_uri(self.contact.strip("<>"))
        if current.host.strip("[]") == host and (current.port or 5060) == port:
            return None
        return contact_uri(self.account.user, host, port, self.transport)

    async def register(self) -> int:
        """Register (or refresh); returns the granted expiry in seconds."""
        self._cancel_refresh()
        self.state = RegistrationState.REGISTERING
        expires = self.expires
        resp = await self._send(expires)
        if resp.status == 423 and resp.headers.get("Min-Expires", "").isdigit():  # type: ignore[union-attr]
            expires = int(resp.headers.get("Min-Expires") or expires)
            self.expires = expires
            resp = await self._send(expires)
        if not 200 <= resp.status < 300:
            self.state = RegistrationState.FAILED
            raise SipError(resp.status, resp.reason)
        self.granted = self._granted(resp, expires)
        public = self._public_contact(resp) if self.account.contact_rewrite else None
        if public is not None and (not self.rewritten or public != self.contact):
            # behind a NAT: bind the public address instead (and drop the private one)
            log.info("{aor}: registrar saw us at {public}: re-registering that Contact",
                     aor=self.account.aor, public=public)
            old, self.contact, self.rewritten = self.contact, public, True
            resp = await self._send(expires, drop=old)
            if not 200 <= resp.status < 300:
                self.state = RegistrationState.FAILED
                raise SipError(resp.status, resp.reason)
            self.granted = self._granted(resp, expires)
        self.state = RegistrationState.REGISTERED
        self._start_keepalive()
        self._refresh = self.ua.reactor.callLater(refresh_delay(self.granted), self._do_refresh)
        log.info("registered {aor} for {n}s", aor=self.account.aor, n=self.granted)
        return self.granted

    def _granted(self, resp: Response, asked: int) -> int:
        ours = self.contact.strip("<>")
        for c in resp.contact:
            local = self.ua.local(self.transport)
            if str(c.uri) == ours or (c.uri.host == local.host and c.uri.port == local.port):
                e = c.params.get("expires")
                if e and e.isdigit():
                    return int(e)
        if resp.expires is not None:
            return resp.expires
        return asked

    # ---------------------------------------------------------------- keep-alives
    def _start_keepalive(self) -> None:
        if self.account.keepalive_s > 0 and self._keepalive is None:
            self._keepalive = self.ua.reactor.callLater(self.account.keepalive_s,
                                                        self._send_keepalive)

    def _send_keepalive(self) -> None:
        self._keepalive = None
        if self.state is not RegistrationState.REGISTERED or self.flow is None:
            return
        if self.flow.transport == "udp" and self.instance is not None:
            if self._stun_tid is not None:
                # RFC 5626 §4.4.2: the last Binding went unanswered for a whole interval:
                # the flow failed; register again (a new binding at the NAT)
                self._stun_tid = None
                self._flow_lost(self.flow)
                return
            # RFC 5626 §4.4.1 / §8: a STUN Binding request on the flow (RFC 8489)
            from ice import stun

            tid = self.ua.core.rng.getrandbits(96).to_bytes(12, "big")
            self._stun_tid = tid
            self.ua.transport.send_keepalive(
                self.flow, stun.encode(stun.Message(stun.Method.BINDING, stun.Class.REQUEST,
                                                    tid)))
        else:
            # RFC 5626 §4.4.1 / §3.5.1: CRLFCRLF ping on a stream (the server's CRLF pong
            # is skipped by our parser), one CRLF datagram on UDP
            self.ua.transport.send_keepalive(self.flow, b"\r\n" if self.flow.transport
                                             == "udp" else b"\r\n\r\n")
        self.keepalives_sent += 1
        self._start_keepalive()

    def _stun_in(self, data: bytes, source: Any) -> None:
        """A STUN keep-alive answer: the flow works; a changed XOR-MAPPED-ADDRESS means the
        NAT gave us a new binding, so register again from it (RFC 5626 §4.4.1)."""
        if self._stun_tid is None or source != self.flow:
            return
        from ice import stun

        try:
            msg = stun.decode(data)
        except stun.StunDecodeError as e:
            log.info("bad STUN keep-alive answer from {s}: {e}", s=source, e=e.reason)
            return
        if msg.transaction_id != self._stun_tid or msg.cls is not stun.Class.SUCCESS:
            return
        self._stun_tid = None
        self.stun_answers += 1
        mapped = msg.address(stun.Attr.XOR_MAPPED_ADDRESS)
        if mapped is None:
            return
        previous, self.mapped = self.mapped, (mapped[0], mapped[1])
        if previous is not None and previous != self.mapped:
            log.info("{aor}: the NAT mapping moved from {a} to {b}: registering again",
                     aor=self.account.aor, a=previous, b=self.mapped)
            self._flow_lost(self.flow)

    def _flow_lost(self, target: Any) -> None:
        """RFC 5626 §4.5: the connection our binding lives on closed: register again (a new
        connection, a new flow) after a short wait, doubling on failure up to 30 s."""
        if target != self.flow or self.state is not RegistrationState.REGISTERED:
            return
        self.flow_failures += 1
        self._stop_keepalive()
        self._cancel_refresh()
        log.info("{aor}: flow to {t} lost: registering again in {d:g} s",
                 aor=self.account.aor, t=target, d=self._recover_delay)
        self._refresh = self.ua.reactor.callLater(self._recover_delay, self._recover)

    def _recover(self) -> None:
        self._refresh = None

        def ok(_: Any) -> None:
            self._recover_delay = FLOW_RETRY_BASE

        def again(f: Any) -> None:
            log.warn("re-registering {aor} failed: {e}", aor=self.account.aor,
                     e=f.getErrorMessage())
            self._recover_delay = min(FLOW_RETRY_MAX, self._recover_delay * 2)
            self.state = RegistrationState.REGISTERED      # still ours to recover
            self._refresh = self.ua.reactor.callLater(self._recover_delay, self._recover)

        defer.ensureDeferred(self.register()).addCallbacks(ok, again)

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        self._keepalive = None

    def _do_refresh(self) -> None:
        self._refresh = None
        d = defer.ensureDeferred(self.register())
        d.addErrback(lambda f: log.warn("refresh of {aor} failed: {e}", aor=self.account.aor,
                                        e=f.getErrorMessage()))

    def _cancel_refresh(self) -> None:
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()
        self._refresh = None

    async def unregister(self) -> Response:
        """Remove our binding (Expires: 0)."""
        self._cancel_refresh()
        self._stop_keepalive()
        self.state = RegistrationState.UNREGISTERED     # a flow closing now is no loss
        resp = await self._send(0)
        self.state = RegistrationState.UNREGISTERED
        self.granted = None
        return resp

    def close(self) -> None:
        self._cancel_refresh()
        self._stop_keepalive()
        if self._flow_lost in self.ua.transport.flow_listeners:
            self.ua.transport.flow_listeners.remove(self._flow_lost)
        if self._stun_in in self.ua.transport.stun_listeners:
            self.ua.transport.stun_listeners.remove(self._stun_in)
