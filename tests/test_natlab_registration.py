"""A registration that stays reachable behind a NAT (RFC 5626 keep-alives, contact rewrite).

In the NAT lab (tests/peers/natlab.py) alice's site NAT forgets a UDP mapping after a few
seconds without traffic (the test sets the NAT namespace's ``nf_conntrack_udp_timeout``
short).  alice registers with the lab's Kamailio (nathelper-style: it records the source
address) from behind it, waits longer than that timeout, and bob calls her AOR through
Kamailio:

- with keep-alives (a CRLF to the registrar every 2 s, RFC 5626 §4.4.1 / §3.5.1), the NAT
  keeps the mapping the registrar routes through, and the INVITE reaches alice;
- without them (``keepalive_s = 0``), the same INVITE dies at the NAT: alice never sees it,
  which shows what the keep-alives do.

Twice: with the lab's nathelper-style Kamailio (keep-alives are CRLFs; contact rewrite), and
with a Kamailio that does RFC 5626 outbound (modules outbound, path, stun): alice's Contact
has ``+sip.instance``/``reg-id``, the 200 says ``Require: outbound``, her keep-alives are STUN
Binding requests its stun module answers with her NAT's public address, and the INVITE comes
over the flow she registered on.

Contact rewrite is checked too (nathelper case): the 200 to alice's REGISTER says (Via received/rport) that the
registrar saw her at her NAT's public address; she re-registers that Contact and removes the
private one in the same REGISTER.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from siplink.ua.useragent import Account, Call, UserAgent
from tests.peers.natlab import OUTBOUND_PROXY_CONFIG, PUBLIC_IP, SIP_PORT, NatLab

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(90)]
REGISTRAR = f"{PUBLIC_IP}:{SIP_PORT}"
NAT_UDP_TIMEOUT = 4            # seconds the NAT keeps an idle UDP mapping


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


@pytest.mark.parametrize("proxy, keepalive", [
    ("nathelper", 2.0), ("nathelper", 0.0), ("outbound", 2.0), ("outbound", 0.0)],
    ids=["nathelper-keepalive", "nathelper-no-keepalive", "outbound-stun-keepalive",
         "outbound-no-keepalive"])
@pytest_twisted.ensureDeferred
async def test_registration_behind_nat_stays_reachable_with_keepalives(
        proxy: str, keepalive: float) -> None:
    outbound = proxy == "outbound"
    with NatLab("eim", "eim") as lab:
        for key in ("net.netfilter.nf_conntrack_udp_timeout",
                    "net.netfilter.nf_conntrack_udp_timeout_stream"):
            lab.a.nat.sysctl(key, str(NAT_UDP_TIMEOUT))
        kamailio = lab.start_proxy(OUTBOUND_PROXY_CONFIG if outbound else None)
        alice = UserAgent(reactor, host=lab.a.host_ip, user="alice",
                          bind_context=lab.a.host.entered)
        bob = UserAgent(reactor, host=lab.b.host_ip, user="bob",
                        bind_context=lab.b.host.entered)
        alice.listen()
        bob.listen()
        incoming: list[Call] = []
        alice.on_incoming_call = lambda call: (incoming.append(call), call.answer())
        # outbound: RFC 5626 alone (no contact rewrite); the registrar keeps the flow
        acc_a = Account("alice", REGISTRAR, proxy=REGISTRAR, expires=300,
                        keepalive_s=keepalive, outbound=outbound, contact_rewrite=not outbound)
        acc_b = Account("bob", REGISTRAR, proxy=REGISTRAR, expires=300, keepalive_s=0)
        call = None
        try:
            reg = alice.register(acc_a)
            await reg.register()
            await bob.register(acc_b).register()
            if outbound:
                assert reg.last_response is not None
                assert "outbound" in (reg.last_response.headers.get("Require") or ""), \
                    reg.last_response
            else:
                # contact rewrite: the registrar saw alice at her NAT's WAN address
                assert reg.rewritten and lab.a.wan_ip in reg.contact, reg.contact
                assert lab.a.host_ip in reg.private_contact
            await sleep(NAT_UDP_TIMEOUT * 2.5)
            assert (reg.keepalives_sent > 0) == (keepalive > 0), reg.keepalives_sent
            if outbound and keepalive:
                # STUN keep-alives answered by Kamailio's stun module, through the NAT
                assert reg.stun_answers >= 3 and reg.flow_failures == 0, reg.stun_answers
                assert reg.mapped is not None and reg.mapped[0] == lab.a.wan_ip, reg.mapped
            call = bob.call(f"sip:alice@{REGISTRAR}", account=acc_b)
            for _ in range(30):                    # 3 s: the INVITE arrives in milliseconds
                if incoming:
                    break
                await sleep(0.1)
            if keepalive > 0:
                assert incoming, ("the INVITE did not reach alice through her NAT\n"
                                  + kamailio.log()[-3000:])
                await call.answered
                await call.hangup()
                assert "ROUTED INVITE to sip:alice@" in kamailio.log()
            else:
                assert not incoming, "the NAT still had a mapping: the test shows nothing"
        finally:
            if call is not None and not call.is_answered:
                call.hangup().addErrback(lambda f: None)
            alice.close()
            bob.close()
            await sleep(0.3)
