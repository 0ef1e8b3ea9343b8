"""Two siplink agents call each other through Kamailio (registrar + record-routing proxy with
digest auth), with relay-only ICE candidates allocated on coturn (both on loopback).

Proves: the SDP in both directions carries only ``typ relay`` candidates (with trickle ICE,
RFC 8840: the offer does, the answer is the placeholder ``c=0.0.0.0``/port 9 and the relayed
candidate reaches the caller in an INFO that Kamailio loose-routes); ICE selects a
relay <-> relay pair on both sides (addresses in coturn's relay port range); RTP flows both
ways through the relays (each side decodes the other's tone); coturn really relayed (its log
shows the allocations and the peer permissions); Kamailio routed the INVITE and the BYE.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ice.gathering import TurnServer
from sdp import parse
from siplink.media.icesession import IceMediaSession
from siplink.ua.useragent import Account, Call, UserAgent
from tests.peers.coturn import PASSWORD, USER, Coturn
from tests.peers.kamailio import Kamailio

pytestmark = [pytest.mark.peer, pytest.mark.timeout(90)]


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)




@pytest.fixture
def coturn() -> Any:
    with Coturn() as c:
        yield c


@pytest.mark.parametrize("trickle", ["off", "half"])
@pytest_twisted.ensureDeferred
async def test_relay_only_call_through_kamailio_and_coturn(kamailio: Kamailio,
                                                           coturn: Coturn, trickle: str) -> None:
    turn = TurnServer(coturn.addr[0], coturn.addr[1], USER, PASSWORD)

    def session(ua: UserAgent, tone: float) -> IceMediaSession:
        return IceMediaSession(reactor, tone=tone, turn_servers=[turn], policy="relay",
                               rtcp_interval=1.0, trickle=trickle)

    a = UserAgent(reactor, user="alice")
    b = UserAgent(reactor, user="bob")
    a.listen()
    b.listen()
    acc_a = Account("alice", kamailio.address, password="secret", proxy=kamailio.address)
    acc_b = Account("bob", kamailio.address, password="secret", proxy=kamailio.address)
    incoming: list[Call] = []
    b.media_factory = lambda: session(b, 440.0)
    b.on_incoming_call = lambda call: (incoming.append(call), call.answer())
    try:
        await a.register(acc_a).register()
        await b.register(acc_b).register()
        sa = session(a, 1000.0)
        call = a.call(f"sip:bob@{kamailio.address}", account=acc_a, media=sa)
        await call.answered
        await sa.wait_connected()
        sb = incoming[0].media
        assert isinstance(sb, IceMediaSession)
        await sb.wait_connected()
        await sleep(2.0)

        # the offer and the answer: relayed candidates only, default = a relayed address
        offer = parse(incoming[0].invite.body)    # type: ignore[union-attr]
        answer = parse(call.remote_sdp)
        for desc in (offer, answer) if trickle == "off" else (offer,):
            m = desc.media[0]
            assert m.candidates and {c.type.value for c in m.candidates} == {"relay"}
            assert m.port in range(coturn.relay_min, coturn.relay_max + 1)
        if trickle == "half":
            m = answer.media[0]
            # RFC 8840 §4.1.1: nothing gathered yet under a relay-only policy
            assert (m.candidates, m.port, m.connection.address if m.connection else None) \
                == ([], 9, "0.0.0.0"), call.remote_sdp
            assert not m.end_of_candidates
            assert sb.trickle_stats["candidates_sent"] >= 1, sb.trickle_stats
            assert sa.trickle_stats["candidates_received"] >= 1, sa.trickle_stats
            assert "LOOSE-ROUTED INFO sip:" in kamailio.log()

        relayed = range(coturn.relay_min, coturn.relay_max + 1)
        for me, peer, heard in ((sa, sb, 440.0), (sb, sa, 1000.0)):
            pair = me.selected_pairs[1]
            assert (pair.local_type, pair.remote_type) == ("relay", "relay"), pair
            assert pair.local_address[1] in relayed and pair.remote_address[1] in relayed
            assert pair.remote_address == peer.selected_pairs[1].local_address
            assert me.stream is not None
            st = me.stream.stats()
            assert st.packets_sent > 60 and st.packets_received > 60, st
            assert st.packets_lost == 0
            f = me.stream.detected_frequency()
            assert f is not None and abs(f - heard) < 5, f
        # coturn allocated for both and installed permissions toward the other's relay
        log = coturn.log()
        assert len(re.findall(r"ALLOCATE processed, success", log)) >= 2, log[-3000:]
        assert re.search(r"CREATE_PERMISSION processed, success|CHANNEL_BIND processed, success",
                         log), log[-3000:]
        await call.hangup()
        await sleep(0.3)
        assert incoming[0].cause == "remote-bye"
        klog = kamailio.log()
        assert re.search(rf"REQ INVITE sip:bob@\S+ from 127\.0\.0\.1:{a.port}\b", klog)
        assert "LOOSE-ROUTED ACK sip:" in klog and "LOOSE-ROUTED BYE sip:" in klog
        assert call.dialog is not None and kamailio.address in call.dialog.route_set[0]
    finally:
        a.close()
        b.close()
        await sleep(0.5)
