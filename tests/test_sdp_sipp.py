"""Offer/answer against a real independent peer: SIPp (3.6.1) as UAC and as UAS.

SIPp's built-in ``uac``/``uas`` scenarios carry their own SDP; the test plays the other side
with a bare UDP socket and siplink's message codec, and lets sdp.OfferAnswer do the SDP.
SIPp's exit code 0 means its call completed (INVITE/200/ACK/BYE/200) with our SDP in it.
"""

from __future__ import annotations

import socket
import time

import pytest

from sdp import OfferAnswer, parse
from siplink.sip.message import (
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from tests.peers.process import PeerProcess, free_port, require_binary

pytestmark = pytest.mark.peer


def sipp_argv(*args: str) -> tuple[list[str], int, int]:
    sipp = require_binary("sipp")
    sip_port = free_port()
    media_port = free_port(span=4)        # -mp N also binds N+2
    control_port = free_port()
    argv = [sipp, *args, "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1",
            "-mp", str(media_port), "-cp", str(control_port), "-m", "1", "-nostdin",
            "-timeout", "20", "-timeout_error"]
    return argv, sip_port, media_port


def recv(sock: socket.socket, timeout: float = 10.0):
    sock.settimeout(timeout)
    data, addr = sock.recvfrom(65535)
    return parse_message(data), addr


def test_sipp_uac_offer_gets_our_answer():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    argv, _, sipp_media = sipp_argv(f"127.0.0.1:{port}", "-sn", "uac", "-d", "200")
    peer = PeerProcess(argv, name="sipp-uac").start()
    try:
        invite, addr = recv(sock)
        assert invite.method == "INVITE"
        offer = parse(invite.body)
        assert offer.media[0].port == sipp_media and offer.media[0].codecs[0].name == "PCMU"
        oa = OfferAnswer("127.0.0.1", port=free_port(span=2), session_id="77")
        answer = oa.create_answer(invite.body).serialize().encode()
        n = oa.negotiated.audio
        assert n.remote_rtp == ("127.0.0.1", sipp_media) and n.send_codec.pt == 0
        assert n.ice is None and n.direction == "sendrecv"
        ok = make_response(invite, 200, to_tag=new_tag(), body=answer,
                           content_type="application/sdp",
                           headers=[("Contact", f"<sip:test@127.0.0.1:{port}>")])
        sock.sendto(bytes(ok), addr)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg, addr = recv(sock)
            if msg.method == "INVITE":             # a retransmission crossed our 200
                sock.sendto(bytes(ok), addr)
            elif msg.method == "BYE":
                sock.sendto(bytes(make_response(msg, 200)), addr)
                break
        assert peer.proc.wait(20) == 0, peer.log()[-3000:]
    finally:
        peer.stop()
        sock.close()


def test_our_offer_answered_by_sipp_uas():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    argv, sipp_port, sipp_media = sipp_argv("-sn", "uas")
    peer = PeerProcess(argv, name="sipp-uas").start()
    try:
        oa = OfferAnswer("127.0.0.1", port=free_port(span=2))
        offer = oa.create_offer().serialize().encode()
        call_id, tag = new_call_id("127.0.0.1"), new_tag()
        uri = f"sip:service@127.0.0.1:{sipp_port}"

        def request(method: str, cseq: int, to: str, body: bytes = b""):
            headers = [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch={new_branch()};rport"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:test@127.0.0.1:{port}>;tag={tag}"),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} {method}"),
                ("Contact", f"<sip:test@127.0.0.1:{port}>"),
            ]
            if body:
                headers.append(("Content-Type", "application/sdp"))
            return bytes(make_request(method, uri, headers, body))

        invite = request("INVITE", 1, f"<{uri}>", offer)
        final = None
        deadline = time.monotonic() + 15
        while final is None and time.monotonic() < deadline:
            sock.sendto(invite, ("127.0.0.1", sipp_port))    # until SIPp is up and answers
            try:
                while True:
                    msg, _ = recv(sock, 0.5)
                    if msg.status >= 200:
                        final = msg
                        break
            except TimeoutError:
                continue
        assert final is not None and final.status == 200, peer.log()[-3000:]
        negotiated = oa.receive_answer(final.body)
        a = negotiated.audio
        assert a.remote_rtp == ("127.0.0.1", sipp_media)
        assert a.send_codec.name == "PCMU" and a.send_codec.pt == 0
        assert a.ice is None and a.direction == "sendrecv"
        to = final.headers.get("To")
        sock.sendto(request("ACK", 1, to), ("127.0.0.1", sipp_port))
        sock.sendto(request("BYE", 2, to), ("127.0.0.1", sipp_port))
        while True:
            msg, _ = recv(sock)
            if getattr(msg, "status", 0) == 200 and msg.cseq.method == "BYE":
                break
        assert peer.proc.wait(20) == 0, peer.log()[-3000:]
    finally:
        peer.stop()
        sock.close()
