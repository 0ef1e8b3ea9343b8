"""Interop: SIPp authenticates an INVITE with an SDP body against DigestServer.authenticate.

With qop=auth-int the response covers a hash of the body (RFC 2617 §3.2.2.3), so this checks
that SIPp and we hash the same octets. The responder challenges the first INVITE (401),
accepts the second, and answers BYE. SIPp puts ``sip:REMOTE_IP:PORT`` in the digest uri
unless told otherwise; the server insists it equals the Request-URI (RFC 7616 §3.4.6),
so the test passes ``-auth_uri``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from siplink.sip.digest import AuthDecision, DigestServer
from tests.peers.process import PeerProcess, free_port, require_binary

HDR = """      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      Call-ID: [call_id]
      Contact: sip:alice@[local_ip]:[local_port]
      Max-Forwards: 70"""

SDP = """      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000"""

SCENARIO = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="INVITE with digest">
  <send retrans="500"><![CDATA[
      INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
{HDR}
      To: <sip:bob@[remote_ip]:[remote_port]>
      CSeq: 1 INVITE
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}

  ]]></send>
  <recv response="401" auth="true"/>
  <send><![CDATA[
      ACK sip:bob@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:alice@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[
      INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
{HDR}
      To: <sip:bob@[remote_ip]:[remote_port]>
      CSeq: 2 INVITE
      [authentication]
      Content-Type: application/sdp
      Content-Length: [len]

{SDP}

  ]]></send>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:bob@[remote_ip]:[remote_port] SIP/2.0
{HDR}
      [last_To:]
      CSeq: 2 ACK
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[
      BYE sip:bob@[remote_ip]:[remote_port] SIP/2.0
{HDR}
      [last_To:]
      CSeq: 3 BYE
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def parse(data: bytes) -> tuple[str, str, dict[str, list[str]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, uri, _ = lines[0].split(" ", 2)
    h: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        h.setdefault(name.strip().lower(), []).append(value.strip())
    n = int(h.get("content-length", ["0"])[0])
    return method, uri, h, body[:n]


class Uas(protocol.DatagramProtocol):
    def __init__(self, server: DigestServer) -> None:
        self.server = server
        self.decisions: list[AuthDecision] = []
        self.bodies: list[bytes] = []
        self.errors: list[str] = []

    def datagramReceived(self, data: bytes, addr) -> None:
        try:
            self._handle(data, addr)
        except Exception as e:  # surfaced by the test's assertions, not lost in the reactor
            self.errors.append(repr(e))

    def _handle(self, data: bytes, addr) -> None:
        method, uri, h, body = parse(data)
        if method == "ACK":
            return
        extra: list[str] = []
        status = "200 OK"
        if method == "INVITE":
            d = self.server.authenticate(h.get("authorization", []), method, uri,
                                         reactor.seconds(), body=body)
            self.decisions.append(d)
            self.bodies.append(body)
            if not d.ok:
                status = f"{d.status} {'Unauthorized' if d.status == 401 else 'Forbidden'}"
                extra = [f"{k}: {v}" for k, v in d.headers]
        to = h["to"][0] + ("" if "tag=" in h["to"][0] else ";tag=uas1")
        lines = ["SIP/2.0 " + status, *(f"Via: {v}" for v in h["via"]), f"From: {h['from'][0]}",
                 f"To: {to}", f"Call-ID: {h['call-id'][0]}", f"CSeq: {h['cseq'][0]}",
                 "Contact: <sip:bob@127.0.0.1>", *extra, "Content-Length: 0", "", ""]
        self.transport.write("\r\n".join(lines).encode(), addr)


@pytest.mark.peer
@pytest.mark.parametrize("qop", ["auth-int", "auth"])
@pytest_twisted.inlineCallbacks
def test_sipp_invite_with_body_authenticates(qop):
    sipp = require_binary("sipp")
    scen = Path(tempfile.mkdtemp(prefix="sipp-invite-")) / "invite.xml"
    scen.write_text(SCENARIO)
    server = DigestServer("127.0.0.1", lambda u, r: {"alice": "wonderland"}.get(u),
                          algorithms=("MD5",), qop=(qop,))
    uas = Uas(server)
    port = free_port()
    listener = reactor.listenUDP(port, uas, interface="127.0.0.1")
    sport, mport, cport = free_port(), free_port(span=4), free_port()
    peer = PeerProcess([sipp, f"127.0.0.1:{port}", "-sf", str(scen), "-au", "alice",
                        "-ap", "wonderland", "-auth_uri", f"bob@127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(sport),
                        "-mi", "127.0.0.1", "-mp", str(mport), "-cp", str(cport),
                        "-m", "2", "-l", "1", "-nostdin", "-timeout", "15", "-timeout_error"],
                       name="sipp-invite")
    try:
        peer.start()
        code = yield peer.wait_exit(20)
    finally:
        peer.stop()
        yield listener.stopListening()
    assert not uas.errors
    assert code == 0, ([(d.status, d.reason) for d in uas.decisions], peer.log()[-3000:])
    assert [(d.ok, d.status) for d in uas.decisions] == [(False, 401), (True, 0)] * 2
    assert all(b"m=audio" in b for b in uas.bodies)
