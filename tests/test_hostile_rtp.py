"""An RTP flood to an ICE call's media port before ICE completes is not played.

What it proves: an :class:`IceMediaSession` that answered an offer (its agent checking, no pair
selected yet) receives 2000 RTP packets -- from the very address the offer gave as the peer's
candidate, so only the ICE state can tell them apart -- plus non-RTP junk: none reaches a
media stream (there is none before ``IceCompleted``), every RTP packet is counted in
``dropped_before_media`` and every other datagram in ``dropped_other``, no media event is
produced, and ICE is still checking afterwards (the flood did not complete or break it).
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest_twisted
from twisted.internet import protocol, reactor, task

from ice import stun
from sdp import parse
from siplink.media.icesession import IceMediaSession


class Silent(protocol.DatagramProtocol):
    """The offer's candidate: bound (so no ICMP), never answers the checks."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.received.append(data)


def offer(port: int) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=ice-ufrag:peerufrag\r\na=ice-pwd:peerpassword0123456789zz\r\na=rtcp-mux\r\n"
            f"a=candidate:1 1 UDP 2130706431 127.0.0.1 {port} typ host\r\n"
            "a=sendrecv\r\n").encode()


def rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc) + b"\xff" * 160


@pytest_twisted.ensureDeferred
async def test_rtp_flood_before_ice_completes_is_not_played() -> None:
    silent = Silent()
    port = reactor.listenUDP(0, silent, interface="127.0.0.1")
    peer_port = port.getHost().port
    session = IceMediaSession(reactor, local_addresses=["127.0.0.1"], failed_timeout=30.0)
    try:
        answer = parse(await session.make_answer(offer(peer_port)))
        media_port = answer.media[0].port
        assert session.transport.agent is not None and session.state != "connected"
        sent_rtp = sent_other = 0
        for burst in range(20):
            for i in range(100):
                port.write(rtp(burst * 100 + i, 0x1234), ("127.0.0.1", media_port))
                sent_rtp += 1
            for junk in (b"\x05" + os.urandom(59), b"\x16\xfe\xfd" + os.urandom(40), b"\x00" * 3):
                port.write(junk, ("127.0.0.1", media_port))
                sent_other += 1
            await task.deferLater(reactor, 0.01, lambda: None)
        await task.deferLater(reactor, 0.2, lambda: None)
        assert session.stream is None and session.channel.media is None      # nothing to play into
        assert session.transport.dropped_before_media == sent_rtp
        assert session.transport.dropped_other == sent_other
        assert not session.channel.media_events
        assert session.transport.agent.selected_pair(0, 1) is None
        assert session.state != "connected"
        # the agent kept checking the (silent) peer through the flood
        assert any(stun.is_stun(d) for d in silent.received)
    finally:
        session.close()
        await port.stopListening()
