"""Kamailio as registrar and record-routing proxy with digest authentication.

Two siplink agents register (401 challenge, qop=auth), one calls the other through the proxy
(407 challenge on the INVITE), the call is answered, in-dialog requests from both sides follow
the Record-Route set through the proxy, BYE ends it, and unregistration removes the contact
(a new call then gets 404). Also: SHA-256 digest (RFC 8760) and registration refresh.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ice.trace import Trace
from siplink.core.transaction import Target
from siplink.sip.message import Request
from siplink.ua.registration import RegistrationState
from siplink.ua.useragent import Account, Call, CallState, SipError, UserAgent
from tests.peers.kamailio import Kamailio

pytestmark = pytest.mark.peer


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)




def agent(user: str, k: Kamailio, trace: Trace | None = None) -> tuple[UserAgent, Account]:
    ua = UserAgent(reactor, user=user, trace=trace)
    ua.listen()
    return ua, Account(user, k.address, password="secret", proxy=k.address)


@pytest_twisted.ensureDeferred
async def test_register_call_through_the_proxy_and_unregister(kamailio: Kamailio) -> None:
    a, acc_a = agent("alice", kamailio)
    b, acc_b = agent("bob", kamailio)
    try:
        reg_a, reg_b = a.register(acc_a), b.register(acc_b)
        assert await reg_a.register() == 3600
        assert await reg_b.register() == 3600
        assert reg_a.last_response is not None and reg_a.cseq == 2   # 401, then credentials
        kamailio.proc.wait_for("REGISTERED sip:bob@", timeout=5)   # logged after the reply

        seen_by: dict[str, list[Request]] = {"alice": [], "bob": []}
        a.on_request = seen_by["alice"].append
        incoming: list[Call] = []

        def bob_sees(req: Request) -> None:
            seen_by["bob"].append(req)
            # answer once the reliable 180 is PRACKed: answering at once would race the 200
            # against the 180 through Kamailio's workers, and a 180 that arrives after the 2xx
            # is (rightly, RFC 3262) never PRACKed
            if req.method == "PRACK" and incoming:
                incoming[0].answer()

        b.on_request = bob_sees
        b.on_incoming_call = lambda call: (incoming.append(call), call.ring())

        call = a.call(f"sip:bob@{kamailio.address}", account=acc_a)
        await call.answered
        assert call.state is CallState.CONFIRMED
        proxy_route = f"sip:{kamailio.address}"
        assert call.dialog is not None and len(call.dialog.route_set) == 1
        assert proxy_route in call.dialog.route_set[0]
        assert incoming and incoming[0].dialog is not None
        assert proxy_route in incoming[0].dialog.route_set[0]
        assert incoming[0].invite is not None
        assert incoming[0].invite.headers.get_lines("record-route")

        assert (await call.info(b"Signal=1\r\n")).status == 200          # alice -> bob
        assert (await incoming[0].info(b"Signal=2\r\n")).status == 200   # bob -> alice
        assert (await call.reinvite()).status == 200
        await call.hangup()
        await sleep(0.2)
        assert incoming[0].cause == "remote-bye"
        # the 180 was sent reliably (RFC 3262): its PRACK followed the early dialog's route
        assert [r.method for r in seen_by["bob"]] == ["PRACK", "INFO", "INVITE", "BYE"]
        assert [r.method for r in seen_by["alice"]] == ["INFO"]
        kamailio.proc.wait_for("LOOSE-ROUTED BYE sip:", timeout=5)
        log = kamailio.log()
        for method in ("PRACK", "ACK", "INFO", "INVITE", "BYE"):
            assert f"LOOSE-ROUTED {method} sip:" in log, method

        await b.shutdown()                          # unregisters bob's contact
        assert reg_b.state is RegistrationState.UNREGISTERED
        kamailio.proc.wait_for(r"REGISTERED sip:bob@\S+ expires=0", timeout=5)
        again = a.call(f"sip:bob@{kamailio.address}", account=acc_a)
        with pytest.raises(SipError) as e:
            await again.answered
        assert e.value.status == 404
        resp = await reg_a.unregister()
        assert resp.status == 200
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_sha256_digest_and_refresh_before_expiry() -> None:
    k = Kamailio(algorithm="SHA-256").start()
    trace = Trace()
    ua, acc = agent("carol", k, trace)
    try:
        reg = ua.register(acc, expires=2)
        assert await reg.register() == 2
        first_cseq = reg.cseq
        await sleep(1.6)                            # refreshed at 1 s (half of 2 s)
        assert reg.cseq > first_cseq and reg.state is RegistrationState.REGISTERED
        k.proc.wait_for(r"(?s)REGISTERED sip:carol@.*REGISTERED sip:carol@", timeout=5)
        challenges = [r.detail for r in trace if r.direction == "in" and " 401 " in r.detail[:20]]
        assert challenges and all("algorithm=SHA-256" in c for c in challenges)
        answers = [r.detail for r in trace if r.direction == "out" and "Authorization:" in r.detail]
        assert len(answers) >= 2
        assert all("algorithm=SHA-256" in a and "qop=auth" in a and "nc=" in a for a in answers)
        await ua.shutdown()
        assert reg.state is RegistrationState.UNREGISTERED
    finally:
        ua.close()
        k.stop()


@pytest_twisted.ensureDeferred
async def test_call_over_tcp_through_the_proxy_reuses_the_connection(kamailio: Kamailio) -> None:
    a = UserAgent(reactor, user="alice", transport="tcp")
    b = UserAgent(reactor, user="bob", transport="tcp")
    a.listen()
    b.listen()
    via_tcp = f"{kamailio.address};transport=tcp"
    acc_a = Account("alice", kamailio.address, password="secret", proxy=via_tcp)
    acc_b = Account("bob", kamailio.address, password="secret", proxy=via_tcp)
    try:
        await a.register(acc_a).register()
        await b.register(acc_b).register()
        b.on_incoming_call = lambda call: call.answer()
        call = a.call(f"sip:bob@{kamailio.address}", account=acc_a)
        await call.answered
        assert call.dialog is not None and "transport=tcp" in call.dialog.route_set[0]
        assert (await call.info(b"Signal=3\r\n")).status == 200
        await call.hangup()
        await sleep(0.1)
        # REGISTER x2, INVITE x2 (407), ACK, INFO, BYE: all on alice's one connection
        assert list(a.transport._connections) == [
            Target("tcp", "127.0.0.1", kamailio.port)]
        await a.shutdown()
        await b.shutdown()
    finally:
        a.close()
        b.close()
