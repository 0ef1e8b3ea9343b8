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

from siplink.sip.message import Request, Response, make_request, new_branch, new_call_id, new_tag

if TYPE_CHECKING:
    from siplink.ua.useragent import Account, UserAgent

log = Logger()

__all__ = ["Registration", "RegistrationFailed", "RegistrationState", "refresh_delay"]


class RegistrationState(Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


class RegistrationFailed(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


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
        self.call_id = new_call_id()
        self.from_tag = new_tag()
        self.cseq = 0
        self.state = RegistrationState.UNREGISTERED
        self.granted: int | None = None
        self.last_response: Response | None = None
        target = ua.resolve(account.proxy or account.registrar or f"sip:{account.domain}")
        if transport is not None:
            target = target._replace(transport=transport)
        self.target = target
        self.contact = ua.contact(target.transport, account.user)
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
                ("Via", self.ua.via(self.target.transport, new_branch())),
                ("Max-Forwards", "70"),
                ("From", f"{self.account.from_value};tag={self.from_tag}"),
                ("To", self.account.from_value),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} REGISTER"),
                ("Contact", f"{self.contact};expires={expires}"),
                ("Expires", str(expires)),
                ("User-Agent", "siplink"),
            ]
            hdrs += auth
            return make_request("REGISTER", self.registrar_uri, hdrs)
        return build

    async def _send(self, expires: int) -> Response:
        from siplink.ua.useragent import _ClientRequest

        creq = _ClientRequest(self._build(expires), self.cseq + 1, self.target, self.account)
        creq.preauth = True     # refreshes and retries reuse the registrar's last nonce
        resp: Response = await self.ua.send(creq)
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
            raise RegistrationFailed(resp.status, resp.reason)
        self.granted = self._granted(resp, expires)
        self.state = RegistrationState.REGISTERED
        self._refresh = self.ua.reactor.callLater(refresh_delay(self.granted), self._do_refresh)
        log.info("registered {aor} for {n}s", aor=self.account.aor, n=self.granted)
        return self.granted

    def _granted(self, resp: Response, asked: int) -> int:
        ours = self.contact.strip("<>")
        for c in resp.contact:
            if str(c.uri) == ours or (c.uri.host == self.ua.local(self.target.transport).host
                                      and c.uri.port == self.ua.local(self.target.transport).port):
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
