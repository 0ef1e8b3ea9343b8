"""Registration against a registrar built here on the stack's own server transactions and
:class:`siplink.sip.digest.DigestServer`: 401 (SHA-256 preferred over MD5), 423 Min-Expires,
granted expiry, refresh with the same Call-ID and a higher CSeq, unregister on shutdown."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor, task

from siplink.core.errors import SipError
from siplink.core.transaction import RequestReceived, TransactionLayer
from siplink.sip.digest import DigestServer
from siplink.sip.message import Request, make_response
from siplink.transport.driver import SipTransport
from siplink.ua.registration import RegistrationState, refresh_delay
from siplink.ua.useragent import Account, UserAgent


class Registrar:
    def __init__(self, min_expires: int = 2) -> None:
        self.layer = TransactionLayer()
        self.transport = SipTransport(self.layer, reactor, self.on_event)
        self.port = self.transport.listen_udp("127.0.0.1", 0).port
        self.auth = DigestServer("lab.test", lambda user, realm: "secret" if user == "dave" else None,
                                 algorithms=("SHA-256", "MD5"))
        self.min_expires = min_expires
        self.seen: list[Request] = []
        self.bindings: dict[str, int] = {}

    def on_event(self, ev: object) -> None:
        if not isinstance(ev, RequestReceived) or ev.key is None:
            return
        req = ev.request
        self.seen.append(req)
        now = reactor.seconds()
        creds = req.headers.get_lines("Authorization")
        hdrs: list[tuple[str, str]] = []
        if not creds:
            status = 401
            hdrs = [("WWW-Authenticate", c) for c in self.auth.challenges(now)]
        elif not self.auth.authenticate(creds, req.method, str(req.uri), now).ok:
            status = 403
        else:
            expires = req.expires if req.expires is not None else 3600
            if 0 < expires < self.min_expires:
                status = 423
                hdrs = [("Min-Expires", str(self.min_expires))]
            else:
                status = 200
                contact = req.contact[0]
                if expires == 0:
                    self.bindings.pop(str(contact.uri), None)
                else:
                    self.bindings[str(contact.uri)] = expires
                    hdrs = [("Contact", f"<{contact.uri}>;expires={expires}")]
        self.layer.send_response(ev.key, make_response(req, status, to_tag="reg", headers=hdrs),
                                 now)

    def close(self) -> None:
        self.transport.close()


def test_refresh_delay() -> None:
    assert refresh_delay(2) == 1.0
    assert refresh_delay(60) == 30.0
    assert refresh_delay(3600) == 3570.0
    assert refresh_delay(1) == 1.0


@pytest_twisted.ensureDeferred
async def test_register_refresh_and_unregister_on_shutdown() -> None:
    reg_srv = Registrar()
    ua = UserAgent(reactor, user="dave")
    ua.listen()
    try:
        acc = Account("dave", "lab.test", password="secret", proxy=f"127.0.0.1:{reg_srv.port}")
        reg = ua.register(acc, expires=1)
        assert await reg.register() == 2                        # 401, then 423, then 200
        assert [r.cseq.number for r in reg_srv.seen] == [1, 2, 3]
        assert len({r.call_id for r in reg_srv.seen}) == 1
        auth = reg_srv.seen[1].headers.get_lines("Authorization")
        assert len(auth) == 1 and "algorithm=SHA-256" in auth[0]  # the preferred one only
        assert list(reg_srv.bindings.values()) == [2]
        await task.deferLater(reactor, 1.3, lambda: None)        # refresh at 1 s
        assert len(reg_srv.seen) >= 4 and reg_srv.seen[3].cseq.number == 4
        assert reg_srv.seen[3].call_id == reg_srv.seen[0].call_id
        assert reg.state is RegistrationState.REGISTERED
        await ua.shutdown()
        assert reg.state is RegistrationState.UNREGISTERED
        last = reg_srv.seen[-1]
        assert last.expires == 0 and reg_srv.bindings == {}
    finally:
        ua.close()
        reg_srv.close()


@pytest_twisted.ensureDeferred
async def test_wrong_password_fails_with_the_final_status() -> None:
    reg_srv = Registrar()
    ua = UserAgent(reactor, user="dave")
    ua.listen()
    try:
        acc = Account("dave", "lab.test", password="wrong", proxy=f"127.0.0.1:{reg_srv.port}")
        reg = ua.register(acc, expires=60)
        failure: Any = None
        try:
            await reg.register()
        except SipError as e:
            failure = e
        assert failure is not None and failure.status == 403
        assert reg.state is RegistrationState.FAILED
    finally:
        ua.close()
        reg_srv.close()
