"""Offer/answer with ICE against baresip 1.0.0, a real ICE user agent we did not write.

baresip runs in a network namespace (it drops loopback candidates; see tests/peers/baresip.py);
the test plays the other UA with a UDP socket in the same namespace, siplink's message codec
and sdp.OfferAnswer. Checked: baresip's live ICE offer, answer and re-INVITE parse and are
answerable under RFC 3264/8839; baresip establishes calls on our ICE offer and our ICE answer.
(No ICE agent answers baresip's connectivity checks here: that is the ICE issue's job.)
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from ice.candidate import Candidate, CandidateType
from sdp import IceParams, OfferAnswer, SessionDescription, parse
from sdp.ice import default_destination_in_candidates
from siplink.sip.message import (
    Request,
    Response,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from tests.peers.baresip import Baresip
from tests.peers.netns import Lab, NetNs
from tests.test_sdp_offeranswer import check_answer

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(90)]
IP = "198.51.100.1"
OUR_SIP = 25400
OUR_RTP = 25410


@pytest.fixture
def ns() -> Iterator[NetNs]:
    with Lab() as lab:
        n = lab.namespace("sdp")
        lab.veth(n, "v0", n, "v1", f"{IP}/24")
        yield n


@pytest.fixture
def sip_socket(ns: NetNs) -> Iterator[socket.socket]:
    socks = []
    for port in (OUR_SIP, OUR_RTP, OUR_RTP + 1):      # media ports exist (checks get no ICMP)
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((IP, port))
        socks.append(s)
    yield socks[0]
    for s in socks:
        s.close()


def our_ice(ufrag: str = "sipl") -> IceParams:
    return IceParams(ufrag, "siplinkpassword01234567", (
        Candidate("1", 1, "udp", 2130706431, IP, OUR_RTP, CandidateType.HOST),
        Candidate("1", 2, "udp", 2130706430, IP, OUR_RTP + 1, CandidateType.HOST),
    ))


def recv(sock: socket.socket, timeout: float = 10.0) -> tuple[Request | Response, tuple]:
    sock.settimeout(timeout)
    data, addr = sock.recvfrom(65535)
    return parse_message(data), addr


def check_baresip_sdp(sd: SessionDescription) -> None:
    """What baresip sends: ICE credentials, host candidates on the veth, RFC 8839 defaults."""
    (m,) = sd.media
    assert m.kind == "audio" and m.ice_ufrag and m.ice_pwd
    assert any(c.type is CandidateType.HOST and c.address == IP for c in m.candidates)
    assert default_destination_in_candidates(m.connection.address, m.port, m.candidates, 1)
    if m.rtcp is not None and not m.rtcp_mux:
        assert default_destination_in_candidates(m.rtcp.address or m.connection.address,
                                                 m.rtcp.port, m.candidates, 2)


def test_baresip_ice_offer_gets_our_answer_and_call_is_established(ns, sip_socket):
    bob = Baresip(ns, IP, 25200, user="bob", interface="v0").start()
    bob.dial(f"sip:siplink@{IP}:{OUR_SIP}")
    invite, addr = recv(sip_socket)
    while invite.method != "INVITE":
        invite, addr = recv(sip_socket)
    offer = parse(invite.body)
    check_baresip_sdp(offer)
    oa = OfferAnswer(IP, session_id="1")
    answer = oa.create_answer(invite.body, our_ice())
    check_answer(offer, parse(answer.serialize()))
    n = oa.negotiated.audio
    assert n.ice is not None and n.ice.ufrag == offer.media[0].ice_ufrag
    assert not n.ice_mismatch and n.send_codec.name == "PCMU"
    ok = make_response(invite, 200, to_tag=new_tag(), body=answer.serialize().encode(),
                       content_type="application/sdp",
                       headers=[("Contact", f"<sip:siplink@{IP}:{OUR_SIP}>")])
    sip_socket.sendto(bytes(ok), addr)
    assert bob.wait_established() == f"sip:siplink@{IP}:{OUR_SIP}"
    # baresip took our candidates: it starts connectivity checks towards them
    bob.wait_for(rf"{re.escape(IP)}:{OUR_RTP}")
    bob.hangup()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg, addr = recv(sip_socket)
        if isinstance(msg, Request) and msg.method == "BYE":
            sip_socket.sendto(bytes(make_response(msg, 200)), addr)
            break
        if isinstance(msg, Request) and msg.method == "INVITE":
            sip_socket.sendto(bytes(ok), addr)
    else:
        raise AssertionError("no BYE from baresip")


def test_our_ice_offer_answered_by_baresip(ns, sip_socket):
    bob = Baresip(ns, IP, 25200, user="bob", interface="v0").start()
    oa = OfferAnswer(IP, session_id="2")
    offer = oa.create_offer(our_ice()).serialize().encode()
    call_id, tag, uri = new_call_id(IP), new_tag(), bob.uri

    def request(method: str, cseq: int, to: str, body: bytes = b"") -> bytes:
        headers = [("Via", f"SIP/2.0/UDP {IP}:{OUR_SIP};branch={new_branch()};rport"),
                   ("Max-Forwards", "70"), ("From", f"<sip:siplink@{IP}:{OUR_SIP}>;tag={tag}"),
                   ("To", to), ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
                   ("Contact", f"<sip:siplink@{IP}:{OUR_SIP}>")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        return bytes(make_request(method, uri, headers, body))

    sip_socket.sendto(request("INVITE", 1, f"<{uri}>", offer), (IP, 25200))
    final = None
    while final is None:
        msg, _ = recv(sip_socket)
        if isinstance(msg, Response) and msg.status >= 200:
            final = msg
    assert final.status == 200, final.summary()
    answer = parse(final.body)
    check_baresip_sdp(answer)
    check_answer(parse(offer), answer)
    n = oa.receive_answer(final.body).audio
    assert n.ice is not None and n.ice.ufrag == answer.media[0].ice_ufrag and not n.ice_mismatch
    assert n.send_codec.pt == 0 and n.direction == "sendrecv"
    to = final.headers.get("To")
    sip_socket.sendto(request("ACK", 1, to), (IP, 25200))
    assert bob.wait_established() == f"sip:siplink@{IP}:{OUR_SIP}"
    sip_socket.sendto(request("BYE", 2, to), (IP, 25200))
    while True:
        msg, _ = recv(sip_socket)
        if isinstance(msg, Response) and msg.cseq.method == "BYE":
            assert msg.status == 200
            break


def test_sdps_of_a_baresip_ice_call_parse_and_are_answerable(ns):
    alice = Baresip(ns, IP, 25200, user="alice", interface="v0").start()
    bob = Baresip(ns, IP, 25300, user="bob", interface="v0").start()
    bob.mark()
    alice.dial(bob.uri)
    alice.wait_established()
    alice.wait_ice_complete()
    bob.wait_ice_complete()
    time.sleep(1.0)                     # room for the re-INVITE that updates the defaults
    alice.hangup()
    bodies = [m[m.index("v=0"):] for m in alice.sent_sip() + bob.sent_sip() if "\nv=0" in m]
    assert len(bodies) >= 2, bodies   # at least the INVITE offer and the 200 OK answer
    for body in bodies:
        sd = parse(body.replace("\r\n", "\n").replace("\n", "\r\n"))
        check_baresip_sdp(sd)
        assert parse(sd.serialize()) == sd
        oa = OfferAnswer(IP)
        answer = oa.create_answer(sd, our_ice())
        check_answer(sd, parse(answer.serialize()))
        assert oa.negotiated.audio.ice is not None
