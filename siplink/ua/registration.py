"""Registration (RFC 3261 §10): REGISTER with digest, refresh before expiry, unregister.

One :class:`Registration` binds one account's contact at its registrar. It keeps one Call-ID
and increasing CSeq numbers across refreshes (§10.2.4), answers 401/407 with the account's
credentials (through the UA's client-request path), honours 423 Interval Too Brief by
retrying with Min-Expires, reads the granted expiry from our Contact's ``expires`` parameter
(or the Expires header), and re-registers at :func:`refresh_delay` before it lapses.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from siplink.core.account import Account
from siplink.core.client_request import ClientRequest
from siplink.core.errors import SipError
from siplink.core.user_agent import as_uri
from siplink.sip.message import Request, Response, make_request

if TYPE_CHECKING:
    from siplink.ua.useragent import UserAgent

log = Logger()

__all__ = ["Registration", "RegistrationState", "refresh_delay"]


class RegistrationState(Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


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
        self._refresh: Any = None

    @property
    def registrar_uri(self) -> str:
        reg = self.account.registrar
        if reg:
            return reg if reg.lower().startswith(("sip:", "sips:")) else f"sip:{reg}"
        return f"sip:{self.account.domain}"

    def _build(self, expires: int) -> Any:
        def build(cseq: int, auth: list[tuple[str, str]]) -> Request:
            self.cseq = cseq
            hdrs = [
                ("Via", self.ua.core.via(self.transport)),
                ("Max-Forwards", "70"),
                ("From", f"{self.account.from_value};tag={self.from_tag}"),
                ("To", self.account.from_value),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} REGISTER"),
                ("Contact", f"{self.contact};expires={expires}"),
                ("Expires", str(expires)),
                ("User-Agent", self.ua.user_agent),
            ]
            hdrs += auth
            return make_request("REGISTER", self.registrar_uri, hdrs)
        return build

    async def _send(self, expires: int) -> Response:
        creq = ClientRequest(self._build(expires), self.cseq + 1, self.hop,
                             account=self.account, transport=self.transport)
        creq.preauth = True     # refreshes and retries reuse the registrar's last nonce
        resp: Response = await self.ua.send_request(creq)
        self.last_response = resp
        return resp

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
        self.state = RegistrationState.REGISTERED
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
        resp = await self._send(0)
        self.state = RegistrationState.UNREGISTERED
        self.granted = None
        return resp

    def close(self) -> None:
        self._cancel_refresh()
