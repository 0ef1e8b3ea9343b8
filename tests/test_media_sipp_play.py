"""SIPp as an independent RTP sender: a call whose media is SIPp's own RFC 2833 captures.

SIPp calls a tiny SIP responder in the test, which answers with SDP pointing at our
RtpProtocol's port; SIPp then plays its shipped DTMF captures (``play_pcap_audio``) to that
port. Our MediaStream must collect exactly the digits played, in order.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from siplink.media.driver import RtpProtocol
from siplink.media.g711 import PCMA
from siplink.media.stream import MediaStream
from tests.peers.process import PeerProcess, free_port, require_binary
from tests.test_digest_sipp import parse_request

PLAYED = [("1", "1"), ("9", "9"), ("star", "*"), ("pound", "#")]

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="play RFC 2833 captures">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000

    ]]>
  </send>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
PLAYS
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"""

PLAY = """  <nop><action><exec play_pcap_audio="{path}"/></action></nop>
  <pause milliseconds="350"/>
"""


class Answerer(protocol.DatagramProtocol):
    """Answers INVITE with 200 + SDP for ``media_port``, BYE with 200; ignores ACK."""

    def __init__(self, media_port: int) -> None:
        self.media_port = media_port
        self.methods: list[str] = []

    def datagramReceived(self, data: bytes, addr) -> None:
        method, _, h = parse_request(data)
        self.methods.append(method)
        if method == "ACK":
            return
        body = b""
        extra = []
        if method == "INVITE":
            body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                    f"m=audio {self.media_port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
                    "a=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n").encode()
            extra = ["Contact: <sip:test@127.0.0.1>", "Content-Type: application/sdp"]
        to = h["to"][0] + ("" if "tag=" in h["to"][0] else ";tag=ans1")
        lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in h["via"]), f"From: {h['from'][0]}",
                 f"To: {to}", f"Call-ID: {h['call-id'][0]}", f"CSeq: {h['cseq'][0]}", *extra,
                 f"Content-Length: {len(body)}", "", ""]
        self.transport.write("\r\n".join(lines).encode() + body, addr)


@pytest.mark.peer
@pytest_twisted.inlineCallbacks
def test_sipp_plays_rfc2833_captures_to_our_media_stream():
    sipp = require_binary("sipp")
    share = Path(sipp).resolve().parent.parent / "share" / "sip-tester"
    plays = ""
    for name, _ in PLAYED:
        path = share / f"dtmf_2833_{name}.pcap"
        if not path.exists():
            pytest.fail(f"SIPp's capture {path} is missing")
        plays += PLAY.format(path=path)
    scen = Path(tempfile.mkdtemp(prefix="sipp-play-")) / "play.xml"
    scen.write_text(SCENARIO.replace("PLAYS\n", plays))

    stream = MediaStream(codec=PCMA, remote=None, rng=random.Random(3))  # receive only
    media = RtpProtocol(stream)
    media_port = reactor.listenUDP(0, media, interface="127.0.0.1")
    answerer = Answerer(media_port.getHost().port)
    sip_port = free_port()
    sip_listener = reactor.listenUDP(sip_port, answerer, interface="127.0.0.1")
    sport, mport, cport = free_port(), free_port(span=4), free_port()
    peer = PeerProcess([sipp, f"127.0.0.1:{sip_port}", "-sf", str(scen), "-s", "test",
                        "-i", "127.0.0.1", "-p", str(sport), "-mi", "127.0.0.1",
                        "-mp", str(mport), "-cp", str(cport), "-m", "1", "-nostdin",
                        "-timeout", "20", "-timeout_error"], name="sipp-play")
    try:
        peer.start()
        code = yield peer.wait_exit(20)
    finally:
        peer.stop()
        media.driver.stop()
        yield sip_listener.stopListening()
        yield media_port.stopListening()
    assert code == 0, peer.log()[-3000:]
    assert answerer.methods == ["INVITE", "ACK", "BYE"]
    assert stream.digits_received == "".join(d for _, d in PLAYED)
    st = stream.stats()
    assert st.packets_received == 10 * len(PLAYED)
    assert st.packets_sent == 0 and st.invalid_received == 0 and st.unexpected_received == 0
