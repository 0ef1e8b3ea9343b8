"""The codec against a real peer: SIPp's built-in UAS answers messages we build, and we parse
what it sends (100/180/200 with SDP, the 200 to BYE).  Plain UDP on loopback, no stack."""

from __future__ import annotations

import socket
import time

import pytest

from siplink.sip.message import (
    Request,
    Response,
    make_request,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from tests.peers.process import free_port
from tests.peers.sipp import HOST, SippUas

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def _receive(sock: socket.socket) -> Response:
    data, _ = sock.recvfrom(65535)
    msg = parse_message(data)
    assert isinstance(msg, Response), data[:200]
    return msg


@pytest.mark.peer
def test_call_with_sipp_uas() -> None:
    port = free_port(HOST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, SippUas() as uas:
        sock.bind((HOST, port))
        sock.settimeout(5)
        target = (HOST, uas.port)
        call_id, tag = new_call_id(HOST), new_tag()
        common = [("From", f"Alice <sip:alice@{HOST}:{port}>;tag={tag}"),
                  ("To", f"<sip:service@{HOST}:{uas.port}>"), ("Call-ID", call_id),
                  ("Max-Forwards", "70")]
        branch = new_branch()
        invite = make_request("INVITE", f"sip:service@{HOST}:{uas.port}", [
            ("Via", f"SIP/2.0/UDP {HOST}:{port};branch={branch};rport"), *common,
            ("CSeq", "1 INVITE"), ("Contact", f"<sip:alice@{HOST}:{port}>"),
            ("Content-Type", "application/sdp")], SDP)
        sock.sendto(invite.serialize(), target)
        statuses = []
        while True:
            resp = _receive(sock)
            assert resp.via[0].branch == branch and resp.call_id == call_id
            assert resp.cseq.number == 1 and resp.cseq.method == "INVITE"
            assert resp.from_.tag == tag
            statuses.append(resp.status)
            if resp.status >= 200:
                break
        assert statuses[-1] == 200 and 180 in statuses
        assert resp.to.tag is not None and resp.content_type == "application/sdp"
        assert resp.body.startswith(b"v=0") and len(resp.body) == int(resp.headers.get("l") or 0)
        assert resp.contact and resp.contact[0].uri.host == HOST
        # RFC 3261 §13.2.2.4: ACK the 2xx in the dialog (To tag from the response)
        remote = resp.contact[0].uri
        dialog = [h for h in common if h[0] != "To"] + [("To", resp.headers.get("to") or "")]
        ack = make_request("ACK", remote, [
            ("Via", f"SIP/2.0/UDP {HOST}:{port};branch={new_branch()}"), *dialog, ("CSeq", "1 ACK")])
        sock.sendto(ack.serialize(), target)
        bye_branch = new_branch()
        bye = make_request("BYE", remote, [
            ("Via", f"SIP/2.0/UDP {HOST}:{port};branch={bye_branch}"), *dialog, ("CSeq", "2 BYE")])
        sock.sendto(bye.serialize(), target)
        ok = _receive(sock)
        assert (ok.status, ok.cseq.method, ok.via[0].branch) == (200, "BYE", bye_branch)
        # SIPp logged our messages as it received them: it accepted every one
        log = uas.messages()
        for method in ("INVITE", "ACK", "BYE"):
            assert f"{method} sip:" in log
        # and counts a successful call (its statistics file is written once a second)
        deadline = time.monotonic() + 5
        while int(uas.stats().get("SuccessfulCall(C)", "0") or 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert int(uas.stats().get("SuccessfulCall(C)", "0") or 0) == 1, uas.stats()
    assert isinstance(invite, Request)
