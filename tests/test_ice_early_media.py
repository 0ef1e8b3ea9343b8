"""RFC 8445 §12: media on a valid pair before our side has a selected pair.

§12.1: "An ICE agent MAY send data on any valid pair before selected pairs have been produced";
§12.2: agents "SHOULD by default be prepared to receive data on any of the candidates".  The
controlled side (bob) completes when alice's nominating check reaches it and starts its media;
alice (controlling) completes only when the answer to that check comes back.  Here the first two
answers are lost on alice's side (dropped before her agent sees them), so bob's RTP reaches alice
for about 1.5 s before she is connected.  It comes from the address of a pair whose check
succeeded: alice keeps it and plays it once her media starts.  One RTP packet from an address no
check has passed (a stranger's socket on loopback) is still dropped.

Loopback, real UDP sockets, two siplink UserAgents (see tests/test_icesession.py).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor, task

from ice import stun
from ice.agent import Agent
from siplink.media.icesession import IceMediaSession
from siplink.media.rtp import RtpPacket
from siplink.ua.useragent import Call, UserAgent

pytestmark = pytest.mark.timeout(60)


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_media_on_a_valid_pair_before_nomination_is_kept_and_unchecked_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lost: list[bytes] = []
    original = Agent.receive

    def receive(self: Agent, data: bytes, local: Any, remote: Any, now: float) -> None:
        # the controlling agent loses the first two answers to its nominating check
        if self.controlling and stun.is_stun(data) and data[:2] == b"\x01\x01":
            pending = self._pending.get(data[8:20])
            if pending is not None and pending.use_candidate and len(lost) < 2:
                lost.append(data[8:20])
                return
        original(self, data, local, remote, now)

    monkeypatch.setattr(Agent, "receive", receive)
    a = UserAgent(reactor, user="alice")
    b = UserAgent(reactor, user="bob")
    a.listen()
    b.listen()
    incoming: list[Call] = []
    b.media_factory = lambda: IceMediaSession(reactor, tone=440.0)
    b.on_incoming_call = lambda call: (incoming.append(call), call.answer())
    sa = IceMediaSession(reactor, tone=1000.0)
    stranger = reactor.listenUDP(0, protocol.DatagramProtocol(), interface="127.0.0.1")
    try:
        call = a.call(f"sip:bob@127.0.0.1:{b.port}", media=sa)
        await call.answered
        sb = incoming[0].media
        assert isinstance(sb, IceMediaSession)
        await sb.wait_connected()
        assert sa.state != "connected"          # alice is still waiting for her answer
        await sleep(0.2)                        # bob's media is flowing to alice
        assert sa.transport.agent is not None and sb.transport.agent is not None
        bob_pair = sb.transport.agent.selected_pair(0, 1)
        assert bob_pair is not None
        bob_addr = bob_pair.local_base
        assert sa.transport.agent.is_valid(0, 1, bob_addr)            # checked, not nominated yet
        assert sa.transport.agent.selected_pair(0, 1) is None
        host = sa.transport.agent.local_candidates(0)[0]
        stranger_addr = ("127.0.0.1", stranger.getHost().port)
        assert not sa.transport.agent.is_valid(0, 1, stranger_addr)
        rtp = RtpPacket(payload_type=0, sequence=1, timestamp=160, ssrc=0x5EED,
                        payload=b"\xff" * 160).encode()
        stranger.write(rtp, (host.address, host.port))
        await sa.wait_connected()
        assert len(lost) == 2
        kept = sa.transport.kept_before_media
        assert kept >= 20, kept                 # ~1.5 s of 20 ms packets before alice connected
        assert sa.transport.dropped_before_media == 1     # only the stranger's packet
        await sleep(0.3)
        assert sa.stream is not None
        st = sa.stream.stats()
        # the early packets were played: received counts them, from bob's SSRC only
        assert st.packets_received >= kept
        summary = sa.summary()
        assert summary["media"]["kept_before_start"] == kept
        await call.hangup()
        await sleep(0.2)
    finally:
        stranger.stopListening()
        a.close()
        b.close()
