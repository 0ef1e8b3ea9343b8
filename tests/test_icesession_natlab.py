"""ICE calls between two siplink agents behind the NAT lab's kernel NATs (tests/peers/natlab.py).

Each agent runs in its site's host namespace (sockets bound there with ``NetNs.entered``),
registers with the lab's Kamailio on the public side (NAT-aware registrar/proxy) and gathers
host, server-reflexive and relayed candidates from the lab's coturn.  The call goes through
the proxy; what ICE selects depends on the NATs, and media must flow either way:

- two endpoint-independent NATs: hole punching, srflx <-> srflx on the two WAN addresses;
- site a firewalled except toward TURN: a's only way is its relay, so a relay pair is selected
  on a's side and b sees a's relayed address as the remote candidate.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ice.gathering import TurnServer
from siplink.media.icesession import IceMediaSession
from siplink.ua.useragent import Account, Call, UserAgent
from tests.peers.natlab import PUBLIC_IP, SIP_PORT, NatLab, Site

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(90)]
REGISTRAR = f"{PUBLIC_IP}:{SIP_PORT}"


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


def agent(lab: NatLab, site: Site, tone: float) -> tuple[UserAgent, Account]:
    assert lab.turn is not None
    # bind_context: TCP connections dialled later (INVITEs over 1300 bytes, RFC 3261 §18.1.1)
    # must be made inside the site's namespace too.
    ua = UserAgent(reactor, host=site.host_ip, user=site.name, bind_context=site.host.entered)
    ua.listen()
    turn = TurnServer(lab.turn.ip, lab.turn.port, lab.turn.user, lab.turn.password)
    ua.media_factory = lambda: IceMediaSession(
        reactor, local_addresses=(site.host_ip,), stun_servers=[lab.turn.addr],
        turn_servers=[turn], tone=tone, rtcp_interval=1.0, bind_context=site.host.entered)
    return ua, Account(site.name, REGISTRAR, proxy=REGISTRAR)


@pytest.mark.parametrize("a_nat, expect", [
    ("eim", "srflx"),
    ("udp-blocked-except-turn", "relay"),
], ids=["eim-eim", "firewalled-eim"])
@pytest_twisted.ensureDeferred
async def test_ice_call_between_two_nat_sites(a_nat: str, expect: str) -> None:
    with NatLab(a_nat, "eim") as lab:   # type: ignore[arg-type]
        proxy = lab.start_proxy()
        ua_a, acc_a = agent(lab, lab.a, 1000.0)
        ua_b, acc_b = agent(lab, lab.b, 440.0)
        incoming: list[Call] = []
        ua_b.on_incoming_call = lambda call: (incoming.append(call), call.answer())
        try:
            await ua_a.register(acc_a).register()
            await ua_b.register(acc_b).register()
            sa = ua_a.media_factory()
            assert isinstance(sa, IceMediaSession)
            call = ua_a.call(f"sip:b@{REGISTRAR}", account=acc_a, media=sa)
            sa.attach(call)
            await call.answered
            await sa.wait_connected()
            sb = incoming[0].media
            assert isinstance(sb, IceMediaSession)
            await sb.wait_connected()
            await sleep(1.5)
            assert "ROUTED INVITE to sip:b" in proxy.log()
            pa, pb = sa.selected_pairs[1], sb.selected_pairs[1]
            if expect == "srflx":
                # hole punching through both NATs: each side's public (WAN) address
                assert (pa.local_type, pa.local_address[0]) == ("srflx", lab.a.wan_ip), pa
                assert (pa.remote_type, pa.remote_address[0]) == ("srflx", lab.b.wan_ip), pa
                assert (pb.local_type, pb.remote_type) == ("srflx", "srflx"), pb
                assert pb.remote_address == pa.local_address and pa.remote_address == \
                    pb.local_address
            else:
                assert pa.local_type == "relay" and pa.local_address[0] == PUBLIC_IP, pa
                assert pb.remote_type == "relay" and pb.remote_address == pa.local_address, pb
            for me, heard in ((sa, 440.0), (sb, 1000.0)):
                assert me.stream is not None
                st = me.stream.stats()
                assert st.packets_sent > 50 and st.packets_received > 50, st
                f = me.stream.detected_frequency()
                assert f is not None and abs(f - heard) < 5, f
            await call.hangup()
            await sleep(0.3)
            assert incoming[0].cause == "remote-bye"
        finally:
            ua_a.close()
            ua_b.close()
            await sleep(0.3)
