"""Real sockets, a real peer: our MediaStream (Twisted driver) against SIPp's RTP echo.

SIPp (``-rtp_echo``) sends every RTP/RTCP datagram it receives on its media port back to the
sender. Our stream plays a 440 Hz tone and DTMF over a real UDP socket on loopback and must
hear both back: the tone's frequency, the digits, the packet counts, RTCP about itself.
Also a MediaDriver test on task.Clock (timer re-arming, events, stop).
"""

from __future__ import annotations

import random
import socket
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from siplink.media.driver import MediaDriver, RtpProtocol
from siplink.media.stream import ByeReceived, DtmfReceived, MediaStream
from siplink.media.tone import ToneGenerator
from tests.peers.process import PeerProcess, free_port, require_binary


def wait_for_echo(port: int, timeout: float = 10.0) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            s.sendto(b"\x80\x00probe", ("127.0.0.1", port))
            try:
                if s.recvfrom(100)[0] == b"\x80\x00probe":
                    return
            except TimeoutError:
                continue
    finally:
        s.close()
    raise AssertionError(f"SIPp's RTP echo on {port} did not answer")


@pytest.mark.peer
@pytest_twisted.inlineCallbacks
def test_tone_and_dtmf_round_trip_through_sipp_rtp_echo():
    sipp = require_binary("sipp")
    sip_port, media_port, ctl_port = free_port(), free_port(span=4), free_port()
    peer = PeerProcess([sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_port),
                        "-mi", "127.0.0.1", "-mp", str(media_port), "-cp", str(ctl_port),
                        "-rtp_echo", "-nostdin"], name="sipp-echo")
    peer.start()
    port = None
    try:
        wait_for_echo(media_port)
        stream = MediaStream(source=ToneGenerator(440.0), remote=("127.0.0.1", media_port),
                             rtcp_interval=0.5, rng=random.Random(9))
        proto = RtpProtocol(stream)
        port = reactor.listenUDP(0, proto, interface="127.0.0.1")
        yield task.deferLater(reactor, 0.4, lambda: None)
        stream.send_dtmf("12")
        yield task.deferLater(reactor, 1.4, lambda: None)
        proto.driver.stop("done")
        yield task.deferLater(reactor, 0.2, lambda: None)
    finally:
        if port is not None:
            yield port.stopListening()
        peer.stop()
    st = stream.stats()
    assert st.packets_sent >= 80                          # 1.8 s at 50 packets/s, give or take
    assert st.packets_received >= st.packets_sent - 3
    assert st.packets_lost == 0
    f = stream.detected_frequency()
    assert f is not None and abs(f - 440.0) < 5.0, f
    assert stream.digits_received == "12"
    assert [e.digit for e in proto.driver.events if isinstance(e, DtmfReceived)] == ["1", "2"]
    # our own RTCP came back: SR with a report about ourselves, RTT measured on the echo path
    assert st.rtcp_received >= 2 and st.rtt is not None and st.rtt < 0.1
    assert any(isinstance(e, ByeReceived) for e in proto.driver.events)


def test_driver_arms_one_timer_and_stops_cleanly():
    clock = task.Clock()
    sent: list[tuple[bytes, tuple[str, int]]] = []
    stream = MediaStream(source=ToneGenerator(300.0), remote=("127.0.0.1", 9),
                         rtcp_interval=1.0, rng=random.Random(4))
    drv = MediaDriver(stream, lambda d, a: sent.append((d, a)), clock)
    drv.start()
    assert len(clock.getDelayedCalls()) == 1
    clock.pump([0.01] * 100)          # one second
    assert 50 <= stream.stats().packets_sent <= 51
    assert len(clock.getDelayedCalls()) == 1
    for data, _ in sent[:60]:
        drv.datagram_received(data, ("127.0.0.1", 9))   # loop back our own packets
    assert stream.stats().packets_received >= 50
    drv.stop()
    assert clock.getDelayedCalls() == []
    n = len(sent)
    clock.advance(1.0)
    assert len(sent) == n
