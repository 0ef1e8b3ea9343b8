"""Trickle ICE over SIP (RFC 8838, RFC 8840), checked on the wire from the RFC text.

The test is the peer: raw SIP on a UDP socket of its own (tests/wire.py) and, for the ICE
checks, a UDP "media" socket whose address it trickles; siplink runs as a subprocess
(``siplink answer`` / ``siplink call`` with ``[ice] trickle``).  Each assertion is what RFC
8840 (and RFC 6086, the INFO framework it uses) asks of a trickle-ice UA, quoted in the
test's docstring.  Against an independent stack: tests/test_pjsua2_ice.py (pjnath, half and
full trickle, both directions).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sdp import parse as parse_sdp
from sdp.trickle import parse_fragment
from tests.peers.coturn import Coturn
from tests.wire import (
    HOST,
    Answerer,
    Caller,
    Leg,
    SipMessage,
    SipPeer,
    answerers,
    new_tag,
    uri_of,
)

pytestmark = pytest.mark.timeout(60)

UFRAG, PWD = "wire", "wirewirewirewirewirewire"
FRAG_TYPE = "application/trickle-ice-sdpfrag"
INFO_HEADERS = [("Info-Package", "trickle-ice"), ("Content-Disposition", "Info-Package")]


def trickle_offer(mid: str = "1", *, ufrag: str = UFRAG, pwd: str = PWD,
                  version: int = 1) -> bytes:
    """RFC 8840 §4.1.1 / §9.1: a full-trickle offer before any candidate: ``c=IN IP4
    0.0.0.0``, ``m=audio 9``, ``a=ice-options:trickle``, credentials, a mid, no candidate."""
    return (f"v=0\r\no=wire 4242 {version} IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 0.0.0.0\r\n"
            "t=0 0\r\na=ice-options:trickle\r\nm=audio 9 RTP/AVP 0\r\n"
            f"a=rtpmap:0 PCMU/8000\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
            f"a=mid:{mid}\r\na=rtcp-mux\r\na=sendrecv\r\n").encode()


def fragment(port: int, mid: str = "1", ufrag: str = UFRAG, end: bool = True,
             pwd: str = PWD) -> bytes:
    return (f"a=ice-options:trickle\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
            f"m=audio 9 RTP/AVP 0\r\na=mid:{mid}\r\n"
            f"a=candidate:1 1 UDP 2130706431 {HOST} {port} typ host\r\n"
            + ("a=end-of-candidates\r\n" if end else "")).encode()


def config(tmp: Path, *, trickle: str = "half", turn: Coturn | None = None) -> str:
    lines = ["[ice]", f'addresses = ["{HOST}"]', f'trickle = "{trickle}"']
    if turn is not None:
        lines += ["[[ice.turn_servers]]", f'uri = "{turn.uri}"', f'username = "{turn.user}"',
                  f'password = "{turn.password}"']
    path = tmp / "siplink.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def stun_username(sock: socket.socket, timeout: float = 5.0) -> str:
    """The USERNAME of the first STUN Binding request that reaches ``sock``."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data, _ = sock.recvfrom(2048)
        if len(data) < 20 or data[:2] != b"\x00\x01":
            continue
        pos = 20
        while pos + 4 <= len(data):
            typ, length = struct.unpack_from("!HH", data, pos)
            if typ == 0x0006:
                return data[pos + 4:pos + 4 + length].decode()
            pos += 4 + (length + 3) // 4 * 4
    raise AssertionError("no STUN Binding request reached the trickled candidate")


@pytest.fixture
def udp() -> Iterator[SipPeer]:
    with SipPeer("udp") as p:
        yield p


@pytest.fixture
def media_socket() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    yield s
    s.close()


@pytest.fixture
def answerer() -> Iterator[Callable[..., Answerer]]:
    """``siplink answer`` with ICE media (the trickle side under test)."""
    yield from answerers(media="ice")


def info(leg: Leg, body: bytes, *, headers: list[tuple[str, str]] | None = None,
         content_type: str = FRAG_TYPE) -> SipMessage:
    msg = leg.send("INFO", body=body, content_type=content_type,
                   headers=INFO_HEADERS if headers is None else headers, in_dialog=True)
    return leg.peer.response_to("INFO", msg.cseq[0], call_id=leg.call_id)


# ----------------------------------------------------------------------------- siplink answers


def test_full_trickle_offer_answered_and_trickled_candidates_checked(
        answerer: Callable[..., Answerer], udp: SipPeer, media_socket: socket.socket,
        tmp_path: Path) -> None:
    """RFC 8840 §4.1.2: an answerer that supports trickle answers an offer with
    ``a=ice-options:trickle`` even when it has no candidate (the ``c=0.0.0.0`` / port 9
    placeholder, §4.1.1), puts ``a=ice-options:trickle`` in its answer, and the UA
    indicates the package: ``Supported: trickle-ice`` (§4.2) and ``Recv-Info: trickle-ice``
    (RFC 6086 §5.2.2, in the 2xx).  RFC 5888 §9.1: the answer keeps the offer's mid.
    §4.4: candidates sent later in INFO (``Info-Package: trickle-ice``, an
    application/trickle-ice-sdpfrag body) are answered 200 and added: the answerer then
    checks them (a STUN Binding request whose USERNAME is ``<our ufrag>:<its ufrag>``,
    RFC 8445 §7.2.2)."""
    a = answerer(config=config(tmp_path))
    leg = Leg(udp, a.addr, a.uri())
    inv = leg.send("INVITE", body=trickle_offer(), headers=[
        ("Supported", "trickle-ice"), ("Recv-Info", "trickle-ice")])
    ok = udp.response_to("INVITE", inv.cseq[0], call_id=leg.call_id)
    assert ok.status == 200, ok.text()          # not 488 "no candidate pairs"
    assert "trickle-ice" in ok.tokens("supported"), ok.text()
    assert "trickle-ice" in ok.tokens("recv-info"), ok.text()
    answer = parse_sdp(ok.body)
    m = answer.media[0]
    assert "trickle" in answer.ice_options_for(m), ok.text()
    assert m.mid == "1", ok.text()
    assert m.candidates and m.ice_ufrag, ok.text()
    leg.send_ack(ok, inv)
    resp = info(leg, fragment(media_socket.getsockname()[1]))
    assert resp.status == 200, resp.text()
    user = stun_username(media_socket)
    assert user == f"{UFRAG}:{m.ice_ufrag}", user
    leg.send("BYE", in_dialog=True)
    assert udp.response_to("BYE", call_id=leg.call_id).status == 200


def test_ice_restart_with_trickle_takes_only_the_new_generation(
        answerer: Callable[..., Answerer], udp: SipPeer, tmp_path: Path) -> None:
    """RFC 8838 §14 / RFC 8840 §4.4: an ICE restart (re-INVITE with new credentials, RFC 8445
    §9) starts a new generation; a trickled candidate belongs to the generation whose
    ufrag the fragment carries.  After the restart, a candidate sent with the old ufrag is
    not used; one with the new ufrag is checked with the new credentials (USERNAME
    ``<new ufrag>:<its new ufrag>``)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        first, stale, fresh = socks
        a = answerer(config=config(tmp_path))
        leg = Leg(udp, a.addr, a.uri())
        inv = leg.send("INVITE", body=trickle_offer(), headers=[("Supported", "trickle-ice")])
        ok = udp.response_to("INVITE", inv.cseq[0], call_id=leg.call_id)
        assert ok.status == 200, ok.text()
        old = parse_sdp(ok.body).media[0].ice_ufrag
        leg.send_ack(ok, inv)
        assert info(leg, fragment(first.getsockname()[1])).status == 200
        assert stun_username(first) == f"{UFRAG}:{old}"
        new_ufrag, new_pwd = "wir2", "wire2wire2wire2wire2wire2"
        re_inv = leg.send("INVITE", body=trickle_offer(ufrag=new_ufrag, pwd=new_pwd,
                                                       version=2), in_dialog=True)
        ok2 = udp.response_to("INVITE", re_inv.cseq[0], call_id=leg.call_id)
        assert ok2.status == 200, ok2.text()
        new = parse_sdp(ok2.body).media[0].ice_ufrag
        assert new and new != old, ok2.text()          # the answerer restarted too
        leg.send_ack(ok2, re_inv)
        assert info(leg, fragment(stale.getsockname()[1])).status == 200
        assert info(leg, fragment(fresh.getsockname()[1], ufrag=new_ufrag,
                                  pwd=new_pwd)).status == 200
        assert stun_username(fresh) == f"{new_ufrag}:{new}"
        stale.settimeout(0.5)
        with pytest.raises(TimeoutError):
            stale.recvfrom(2048)
        leg.send("BYE", in_dialog=True)
        assert udp.response_to("BYE", call_id=leg.call_id).status == 200
    finally:
        for s in socks:
            s.close()


def test_info_errors(answerer: Callable[..., Answerer], udp: SipPeer,
                     tmp_path: Path) -> None:
    """RFC 6086 §4.2.2: an INFO whose Info-Package the UA did not indicate in its Recv-Info
    gets 469 (Bad Info Package) with a Recv-Info header listing what it does receive; a
    body of another type than the package's gets 415; a malformed sdpfrag is a client
    error (400), never a crash, and the dialog goes on (a later good INFO gets 200)."""
    a = answerer(config=config(tmp_path))
    leg = Leg(udp, a.addr, a.uri())
    inv = leg.send("INVITE", body=trickle_offer(), headers=[("Supported", "trickle-ice")])
    ok = udp.response_to("INVITE", inv.cseq[0], call_id=leg.call_id)
    assert ok.status == 200, ok.text()
    leg.send_ack(ok, inv)
    r = info(leg, b"hello", headers=[("Info-Package", "foo"),
                                     ("Content-Disposition", "Info-Package")],
             content_type="text/plain")
    assert r.status == 469, r.text()
    assert "trickle-ice" in r.tokens("recv-info"), r.text()
    r = info(leg, b"hello", content_type="text/plain")
    assert r.status == 415, r.text()
    r = info(leg, b"a=candidate:this is not a candidate\r\n")
    assert r.status == 400, r.text()
    r = info(leg, fragment(40000))
    assert r.status == 200, r.text()
    leg.send("BYE", in_dialog=True)
    assert udp.response_to("BYE", call_id=leg.call_id).status == 200


def test_answerer_trickles_relay_candidate_after_the_ack(
        answerer: Callable[..., Answerer], udp: SipPeer, tmp_path: Path) -> None:
    """RFC 8840 §4.2 / RFC 8838 §5: answering a trickle offer, the answerer need not wait
    for its server candidates: the 2xx carries what it has (the host candidate) without
    ``a=end-of-candidates``, and the relayed candidate follows in an INFO (§4.4: package
    trickle-ice, ``Content-Disposition: Info-Package``, an sdpfrag with the answer's
    credentials and mid) once the offerer has the answer: after the ACK (§4.3), never
    before.  The last INFO carries ``a=end-of-candidates`` (§4.4, RFC 8838 §13)."""
    with Coturn() as turn:
        a = answerer(config=config(tmp_path, turn=turn))
        leg = Leg(udp, a.addr, a.uri())
        inv = leg.send("INVITE", body=trickle_offer(mid="a1"),
                       headers=[("Supported", "trickle-ice"), ("Recv-Info", "trickle-ice")])
        ok = udp.response_to("INVITE", inv.cseq[0], call_id=leg.call_id)
        assert ok.status == 200, ok.text()
        m = parse_sdp(ok.body).media[0]
        assert {c.type.value for c in m.candidates} == {"host"}, ok.text()
        assert not m.end_of_candidates, ok.text()
        early = udp.collect(lambda x: not x.is_response and x.method == "INFO", 0.5)
        assert not early, "INFO before the ACK:\n" + early[0].text()
        leg.send_ack(ok, inv)
        seen: list[str] = []
        end = False
        while not end:
            req = udp.request_in("INFO", call_id=leg.call_id, timeout=5)
            assert req.get("info-package") == "trickle-ice", req.text()
            assert (req.get("content-disposition") or "").lower().startswith("info-package")
            assert (req.get("content-type") or "").lower() == FRAG_TYPE, req.text()
            assert req.to_tag == leg.from_tag and req.from_tag == ok.to_tag, req.text()
            frag = parse_fragment(req.body)
            sec = frag.section("a1", 0)
            assert sec is not None and sec.mid == "a1", req.text()
            assert frag.credentials(sec)[0] == m.ice_ufrag, req.text()
            seen += [c.type.value for c in sec.candidates]
            end = frag.complete(sec)
            udp.reply(req, 200)
        assert "relay" in seen, seen
        leg.send("BYE", in_dialog=True)
        assert udp.response_to("BYE", call_id=leg.call_id).status == 200


# ----------------------------------------------------------------------------- siplink calls


def test_caller_advertises_trickle_and_uses_the_early_dialog(
        udp: SipPeer, media_socket: socket.socket, tmp_path: Path) -> None:
    """RFC 8840 §4.1: a half-trickle offerer sends a full offer (all candidates and
    ``a=end-of-candidates``) with ``a=ice-options:trickle``, ``Supported: trickle-ice`` and
    ``Recv-Info: trickle-ice``.  §4.3: on an unreliable 18x from a trickle-ice answerer the
    offerer sends an INFO in that early dialog (its To tag) so the answerer knows the dialog
    exists; INFO the answerer sends in the early dialog is accepted (200, not 481), and
    its candidates are checked once the answer is in force."""
    c = Caller(f"sip:bob@{HOST}:{udp.port}", "--listen", f"{HOST}:0", "--duration", "1",
               "--timeout", "10", before=("-c", config(tmp_path)))
    try:
        inv = udp.request_in("INVITE", timeout=10)
        assert "trickle-ice" in inv.tokens("supported"), inv.text()
        assert "trickle-ice" in inv.tokens("recv-info"), inv.text()
        offer = parse_sdp(inv.body)
        m = offer.media[0]
        assert "trickle" in offer.ice_options_for(m), inv.text()
        assert m.end_of_candidates and m.candidates and m.mid, inv.text()
        tag = new_tag()
        udp.reply(inv, 180, to_tag=tag, headers=[("Contact", udp.contact()),
                                                  ("Supported", "trickle-ice")])
        req = udp.request_in("INFO", call_id=inv.call_id, timeout=5)
        assert req.to_tag == tag and req.from_tag == inv.from_tag, req.text()
        assert req.cseq[0] > inv.cseq[0], req.text()
        assert req.get("info-package") == "trickle-ice", req.text()
        frag = parse_fragment(req.body)
        sec = frag.section(m.mid, 0)
        assert sec is not None and frag.complete(sec), req.text()
        udp.reply(req, 200)
        # our INFO in the early dialog: From is our tag, To siplink's
        body = fragment(media_socket.getsockname()[1], mid=m.mid or "0")
        ours = (f"INFO {uri_of(inv['contact'])} SIP/2.0\r\n"
                f"Via: {udp.via('z9hG4bKwire' + tag)}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:bob@{HOST}:{udp.port}>;tag={tag}\r\nTo: {inv['from']}\r\n"
                f"Call-ID: {inv.call_id}\r\nCSeq: 1 INFO\r\n"
                "Info-Package: trickle-ice\r\nContent-Disposition: Info-Package\r\n"
                f"Content-Type: {FRAG_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body
        udp.send(ours, inv.source)
        r = udp.response_to("INFO", 1, call_id=inv.call_id)
        assert r.status == 200, r.text()
        answer = (f"v=0\r\no=wire 4242 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 0.0.0.0\r\n"
                  "t=0 0\r\na=ice-options:trickle\r\nm=audio 9 RTP/AVP 0\r\n"
                  f"a=rtpmap:0 PCMU/8000\r\na=ice-ufrag:{UFRAG}\r\na=ice-pwd:{PWD}\r\n"
                  f"a=mid:{m.mid}\r\na=sendrecv\r\n").encode()
        udp.reply(inv, 200, to_tag=tag, headers=[("Contact", udp.contact()),
                                                  ("Content-Type", "application/sdp")],
                  body=answer)
        udp.request_in("ACK", call_id=inv.call_id, timeout=5)
        user = stun_username(media_socket)
        assert user == f"{UFRAG}:{m.ice_ufrag}", user
    finally:
        c.stop()
