"""The default rtcp-mux offer also offers the RTCP component (RFC 5761 §5.1.3, RFC 8839),
between two siplink agents on loopback: a callee that multiplexes accepts rtcp-mux and the
caller drops component 2 (candidates and socket) before its checks; a callee that does not
answers without it and ICE runs on RTP and RTCP, with RTCP on component 2 both ways.
(baresip without rtcp-mux: tests/test_call_baresip.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

import tests.test_icesession as ti
from sdp import parse

pytestmark = pytest.mark.timeout(60)


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_mux_accepted_drops_component_2_before_checks() -> None:
    p = ti.Pair()
    try:
        sa, sb = await p.connect()
        assert p.call is not None and p.call.invite is not None
        offer = parse(p.call.invite.body).media[0]
        assert offer.rtcp_mux and offer.rtcp is not None
        assert {c.component for c in offer.candidates} == {1, 2}
        answer = parse(p.call.remote_sdp).media[0]
        assert answer.rtcp_mux and {c.component for c in answer.candidates} == {1}
        assert sa.transport.components == sb.transport.components == 1 and set(sa.selected_pairs) == {1}
        assert sa.transport.agent is not None and sa.transport.driver is not None
        assert {c.component for c in sa.transport.agent.local_candidates(0)} == {1}
        # the component-2 socket is closed: only component 1's is left
        assert [sa.transport.agent.component_of(a) for a in sa.transport.driver._ports] == [(0, 1)]
        # no check was ever sent from the RTCP candidate
        rtcp_port = offer.rtcp.port
        sent = [r for r in sa.trace.records if r.protocol == "stun" and r.direction == "out"
                and r.local is not None]
        assert sent and not [r for r in sent if r.local is not None and r.local[1] == rtcp_port]
        await sleep(1.5)
        assert sa.stream is not None and sa.stream.stats().rtcp_received >= 1
        assert sa.transport.media_in.get("rtcp/1", 0) >= 1 and "rtcp/2" not in sa.transport.media_in
    finally:
        p.close()


@pytest_twisted.ensureDeferred
async def test_callee_without_mux_gets_ice_on_rtp_and_rtcp() -> None:
    p = ti.Pair(bob_opts={"rtcp_mux": False})
    try:
        sa, sb = await p.connect()
        answer = parse(p.call.remote_sdp if p.call else b"").media[0]
        assert not answer.rtcp_mux and {c.component for c in answer.candidates} == {1, 2}
        for s in (sa, sb):
            assert s.transport.components == 2 and set(s.selected_pairs) == {1, 2}
        assert sa.selected_pairs[2].remote_address == sb.selected_pairs[2].local_address
        await sleep(2.2)
        for s in (sa, sb):
            assert s.stream is not None and s.stream.stats().rtcp_received >= 1
            assert s.transport.media_in.get("rtcp/2", 0) >= 1 and "rtcp/1" not in s.transport.media_in
            f = s.stream.detected_frequency()
            assert f is not None
    finally:
        p.close()
