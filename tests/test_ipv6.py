"""IPv6 end to end (issue 13): RFC 5118's torture messages, siplink on ``[::1]`` checked on
the wire, calls with ICE over UDP and TCP, a dual-stack ICE call, and Kamailio on ``[::1]``.

The RFC 5118 cases are written from the RFC's text (§4.1-§4.10) and fed to ``siplink parse``;
the wire tests play the other side with raw IPv6 sockets (tests/wire.py) and check what RFC
3261 §25.1 (an IPv6 reference in brackets in every URI and Via sent-by), RFC 4566 §5.7
(``c=IN IP6``) and RFC 3581 ask.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from tests.peers.kamailio import Kamailio
from tests.wire import (
    ROOT,
    Answerer,
    Caller,
    Leg,
    SipPeer,
    _env,
    new_tag,
    param,
    parse,
    sdp,
    siplink_argv,
    uri_of,
)

V6 = "::1"

# ----------------------------------------------------------------------------- RFC 5118

_REGISTER = ("REGISTER {ruri} SIP/2.0\r\nTo: sip:user@example.com\r\n"
             "From: sip:user@example.com;tag=81x2\r\n"
             "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\r\n"
             "Call-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\n"
             'Contact: "Caller" <sip:caller@[2001:db8::1]>\r\nCSeq: 98176 REGISTER\r\n'
             "Content-Length: 0\r\n\r\n")
_OPTIONS_VIA = ("OPTIONS sip:[2001:db8::10] SIP/2.0\r\nTo: sip:user@example.com\r\n"
                "From: sip:user@example.com;tag=81x2\r\nVia: {via}\r\n"
                "Call-ID: SSG95523997077@hlau_4100\r\nMax-Forwards: 70\r\n"
                'Contact: "Caller" <sip:caller@[2001:db8::9:1]>\r\nCSeq: 921 OPTIONS\r\n'
                "Content-Length: 0\r\n\r\n")


def _invite_with_sdp(body: str, vias: str = "Via: SIP/2.0/UDP [2001:db8::9:1];"
                     "branch=z9hG4bKas3-111\r\n") -> str:
    body = body.replace("\n", "\r\n")
    return ("INVITE sip:user@[2001:db8::10] SIP/2.0\r\nTo: sip:user@[2001:db8::10]\r\n"
            "From: sip:user@example.com;tag=81x2\r\n" + vias +
            "Call-ID: SSG9559905523997077@hlau_4100\r\nContact: \"Caller\" "
            "<sip:caller@[2001:db8::9:1]>\r\nCSeq: 8612 INVITE\r\nMax-Forwards: 70\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n" + body)


_SDP_V6 = ("v=0\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\ns=Live video feed\n"
           "c=IN IP6 2001:db8::20\nt=0 0\nm=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")
_SDP_MULT = ("v=0\no=bob 280744730 28977631 IN IP4 host.example.com\ns=\nt=0 0\n"
             "m=audio 22334 RTP/AVP 0\nc=IN IP4 192.0.2.1\n"
             "m=video 6024 RTP/AVP 107\nc=IN IP6 2001:db8::1\na=rtpmap:107 H263-1998/90000\n")
_SDP_MAPPED = ("v=0\no=assistant 971731711378798081 0 IN IP6 ::ffff:192.0.2.2\ns=Call me\n"
               "c=IN IP6 ::ffff:192.0.2.2\nt=0 0\nm=audio 6000 RTP/AVP 0\n"
               "a=rtpmap:0 PCMU/8000\n")

# (RFC 5118 section, message, valid?)
RFC5118 = [
    ("4.1 valid IPv6 reference", _REGISTER.format(ruri="sip:[2001:db8::10]"), True),
    ("4.2 IPv6 address without brackets", _REGISTER.format(ruri="sip:2001:db8::10"), False),
    ("4.3 port ambiguous: all inside brackets is the address",
     _REGISTER.format(ruri="sip:[2001:db8::10:5070]"), True),
    ("4.4 port unambiguous", _REGISTER.format(ruri="sip:[2001:db8::10]:5070"), True),
    ("4.5 received with delimiters", _OPTIONS_VIA.format(
        via="SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;"
            "received=[2001:db8::9:255]"), True),
    ("4.5 received without delimiters", _OPTIONS_VIA.format(
        via="SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;"
            "branch=z9hG4bKas3"), True),
    ("4.6 IPv6 in SDP", _invite_with_sdp(_SDP_V6), True),
    ("4.7 IPv4 and IPv6 in Via headers", _invite_with_sdp(
        _SDP_V6, "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111\r\n"
                 "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144\r\n"
                 "Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;"
                 "received=192.0.2.200\r\n"), True),
    ("4.8 IPv4 and IPv6 in SDP", _invite_with_sdp(_SDP_MULT), True),
    ("4.9 IPv4-mapped IPv6 address", _invite_with_sdp(_SDP_MAPPED), True),
    ("4.10 two colons before the embedded IPv4",
     "OPTIONS sip:user@[2001:db8::192.0.2.1] SIP/2.0\r\nTo: sip:user@example.com\r\n"
     "From: sip:user@example.com;tag=810x2\r\nVia: SIP/2.0/UDP lab1.east.example.com;"
     "branch=z9hG4bKas3-111\r\nCall-ID: G9559905523997077@hlau_4100\r\nCSeq: 689 OPTIONS\r\n"
     "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", True),
    ("4.10 three colons (the RFC 3261 ABNF bug)",
     "OPTIONS sip:user@[2001:db8:::192.0.2.1] SIP/2.0\r\nTo: sip:user@example.com\r\n"
     "From: sip:user@example.com;tag=810x2\r\nVia: SIP/2.0/UDP lab1.east.example.com;"
     "branch=z9hG4bKas3-111\r\nCall-ID: G9559905523997077@hlau_4100\r\nCSeq: 689 OPTIONS\r\n"
     "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", False),
]


@pytest.mark.parametrize("name,text,valid", RFC5118, ids=[c[0] for c in RFC5118])
def test_rfc5118_torture_messages(tmp_path: Path, name: str, text: str, valid: bool) -> None:
    """RFC 5118 §4: each message parses (``siplink parse`` exit 0) or is refused as
    malformed (exit 1, a 400 reason) as the RFC says; valid hosts keep their brackets."""
    f = tmp_path / "m.sip"
    f.write_bytes(text.encode())
    r = subprocess.run(siplink_argv("parse", str(f), "--json"), cwd=ROOT, env=_env(),
                       capture_output=True, timeout=30)
    assert r.returncode == (0 if valid else 1), (name, r.stdout, r.stderr)
    assert b"Traceback" not in r.stderr
    if not valid:
        return
    msg = json.loads(r.stdout)[0]["message"]
    host = msg["uri_parts"]["host"]
    assert host.startswith("[") and host.endswith("]"), msg["uri_parts"]
    if name.startswith("4.3"):   # §4.3: the port is part of the address, no port
        assert host == "[2001:db8::10:5070]" and msg["uri_parts"]["port"] is None
    if name.startswith("4.4"):
        assert host == "[2001:db8::10]" and msg["uri_parts"]["port"] == 5070
    if name.startswith("4.5"):
        assert msg["via"][0]["params"]["received"].strip("[]") == "2001:db8::9:255"


# ----------------------------------------------------------------------------- wire: UAS


@pytest.fixture
def answerer_v6() -> Iterator[Answerer]:
    a = Answerer(host=V6, transports=("udp", "tcp"))
    a.start()
    try:
        yield a
    finally:
        a.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_uas_on_ipv6_answers_with_bracketed_contact_and_ip6_sdp(
        answerer_v6: Answerer, transport: str) -> None:
    """``siplink answer --listen [::1]:P``: an INVITE from an IPv6 peer gets a 200 sent back
    to the source (RFC 3581 received/rport), whose Contact is an IPv6 reference in brackets
    (RFC 3261 §25.1), whose SDP says ``c=IN IP6`` (RFC 4566 §5.7); ACK, BYE, 200."""
    with SipPeer(transport, host=V6, connect=answerer_v6.addr if transport == "tcp"
                 else None) as peer:
        leg = Leg(peer, answerer_v6.addr, answerer_v6.uri("bob", transport))
        inv_bytes = leg.request("INVITE", body=sdp(V6, 40400))
        peer.send(inv_bytes, answerer_v6.addr)
        ok = peer.response_to("INVITE", timeout=10)
        assert ok.status == 200, ok.text()
        contact = uri_of(ok["contact"])
        assert f"@[{V6}]:{answerer_v6.port}" in contact, ok.text()
        via = ok["via"]
        assert via.startswith(f"SIP/2.0/{transport.upper()} [{V6}]:{peer.port}"), ok.text()
        if transport == "udp":
            assert (param(via, "received") or "").strip("[]") == V6, ok.text()
        assert b"c=IN IP6 ::1" in ok.body, ok.body
        leg.learn(ok)
        peer.send(leg.ack(ok, parse(inv_bytes)), answerer_v6.addr)
        peer.send(leg.request("BYE"), answerer_v6.addr)
        bye = peer.response_to("BYE", timeout=10)
        assert bye.status == 200, bye.text()


# ----------------------------------------------------------------------------- wire: UAC


def test_uac_to_an_ipv6_peer_brackets_every_host() -> None:
    """``siplink call sip:bob@[::1]:P`` with no ``--listen``: it sends from ``::1`` (the
    address that routes to the target), and the INVITE's Via sent-by, From, Contact and SDP
    are IPv6 as RFC 3261 §25.1 and RFC 4566 §5.7 write them; after our 200 it ACKs and its
    BYE goes to our bracketed Contact."""
    with SipPeer("udp", host=V6) as uas:
        c = Caller(f"sip:bob@[{V6}]:{uas.port}", "--no-ice", "--duration", "0.3",
                   "--timeout", "10")
        try:
            inv = uas.request_in("INVITE", timeout=10)
            via = inv["via"]
            assert via.startswith("SIP/2.0/UDP [::1]:"), inv.text()
            assert "@[::1]" in uri_of(inv["from"]), inv.text()
            assert uri_of(inv["contact"]).startswith("sip:siplink@[::1]:"), inv.text()
            assert b"c=IN IP6 ::1" in inv.body, inv.body
            tag = new_tag()
            uas.reply(inv, 200, to_tag=tag, headers=[("Contact", uas.contact())],
                      body=sdp(V6, uas.port + 2))
            ack = uas.request_in("ACK", timeout=10)
            assert ack.uri == uri_of(uas.contact()), ack.text()   # §13.2.2.4: remote target
            bye = uas.request_in("BYE", timeout=10)
            assert bye.uri == uri_of(uas.contact()), bye.text()
            uas.reply(bye, 200)
            assert c.wait(20) == 0, c.log()
        finally:
            c.stop()


# ----------------------------------------------------------------------------- calls


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ice_call_on_ipv6(transport: str) -> None:
    """siplink calls siplink on ``[::1]`` with ICE: host candidates are IPv6, the call is
    answered, ICE connects on an IPv6 pair and RTP flows both ways."""
    a = Answerer(host=V6, media="ice", transports=(transport,))
    a.start()
    try:
        c = Caller(a.uri("bob", transport), "--duration", "1.5", "--expect-ice", "host",
                   "--expect-media", "1", "--max-loss", "5", "--json", "--timeout", "15")
        assert c.wait(40) == 0, c.log() + a.log()
        result = json.loads(c.out.strip().splitlines()[-1])
        assert result["ice"]["state"] == "connected", result
        assert "[::1]" in result["ice"]["pair"], result
        assert result["rtp"]["received"] > 0 and result["rtp"]["sent"] > 0, result
    finally:
        a.stop()


def test_dual_stack_ice_call_offers_both_families(tmp_path: Path) -> None:
    """With ICE addresses of both families, the offer carries IPv4 and IPv6 host candidates
    (RFC 8445 §5.1.1.1), checks pair candidates of one family only (§6.1.2.2), and the call
    connects with media."""
    a = Answerer("--ice-address", "127.0.0.1", "--ice-address", V6, host=V6, media="ice")
    a.start()
    cfg = tmp_path / "dual.toml"
    cfg.write_text('[ice]\naddresses = ["127.0.0.1", "::1"]\n')
    try:
        c = Caller(a.uri(), "--duration", "1", "--expect-ice", "--expect-media", "0.5",
                   "--timeout", "15", before=("-vv", "-c", str(cfg)))
        assert c.wait(40) == 0, c.log() + a.log()
        err = c.err
        offer = err[err.index("INVITE sip:"):]
        cands = [line for line in offer.splitlines() if "a=candidate:" in line]
        assert any(" 127.0.0.1 " in x for x in cands) and any(" ::1 " in x for x in cands), \
            cands
        pairs = [line for line in err.splitlines() if " -> " in line and "host" in line]
        assert pairs
        for line in pairs:   # never an IPv4 candidate paired with an IPv6 one
            assert not ("127.0.0.1" in line and "[::1]" in line), line
    finally:
        a.stop()


# ----------------------------------------------------------------------------- Kamailio


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def kamailio_v6() -> Iterator[Kamailio]:
    k = Kamailio(host=V6)
    k.start()
    try:
        yield k
    finally:
        k.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_register_options_and_call_through_kamailio_on_ipv6(
        kamailio_v6: Kamailio, transport: str) -> None:
    """Kamailio listening on ``[::1]``: two siplink agents on ``[::1]`` register (digest),
    OPTIONS gets an answer, and one calls the other through the record-routing proxy; the
    Record-Route and Contact hosts are bracketed IPv6 references and BYE ends the call."""
    from siplink.ua.useragent import Account, CallState, UserAgent

    k = kamailio_v6
    agents = []
    try:
        for user in ("alice", "bob"):
            ua = UserAgent(reactor, host=V6, user=user, transport=transport)
            ua.listen()
            agents.append((ua, Account(user, k.address, password="secret",
                                       proxy=f"sip:{k.address};transport={transport}")))
        (a, acc_a), (b, acc_b) = agents
        assert await a.register(acc_a).register() == 3600
        assert await b.register(acc_b).register() == 3600
        k.proc.wait_for("REGISTERED sip:bob@", timeout=5)
        assert "contact=<sip:bob@[::1]:" in k.log(), k.log()
        # OPTIONS to bob's AOR: Kamailio looks up the registered IPv6 Contact and proxies
        resp = await a.request("OPTIONS", f"sip:bob@{k.address}", account=acc_a)
        assert resp.status == 200, resp.status
        incoming: list[Any] = []
        b.on_incoming_call = lambda call: (incoming.append(call), call.answer())
        call = a.call(f"sip:bob@{k.address}", account=acc_a)
        await call.answered
        assert call.state is CallState.CONFIRMED
        assert call.dialog is not None and "[::1]" in call.dialog.route_set[0]
        await call.hangup()
        await sleep(0.2)
        assert incoming and incoming[0].state is CallState.ENDED
    finally:
        for ua, _ in agents:
            ua.close()


def test_dual_stack_wildcard_listener_answers_both_families() -> None:
    """``siplink answer --listen [::]:P`` (one dual-stack socket) answers an INVITE from an
    IPv4 peer and one from an IPv6 peer. Each 200's Contact is the address that request
    reached (RFC 3261 §8.1.1.8: a URI the peer can send to, never the unspecified ``::``),
    and the answer's SDP is of the offer's family."""
    a = Answerer(host="::")
    a.start()
    try:
        for host in ("127.0.0.1", V6):
            with SipPeer("udp", host=host) as peer:
                dest = (host, a.port)
                ruri = f"sip:bob@{'[::1]' if host == V6 else host}:{a.port}"
                leg = Leg(peer, dest, ruri)
                inv = leg.request("INVITE", body=sdp(host, 40500))
                peer.send(inv, dest)
                ok = peer.response_to("INVITE", timeout=10)
                assert ok.status == 200, ok.text()
                contact = uri_of(ok["contact"])
                assert contact.startswith(f"sip:answer@{ruri.split('@')[1]}"), ok.text()
                assert "[::]" not in ok.text() and "0.0.0.0" not in ok.text(), ok.text()
                family = "IP6" if host == V6 else "IP4"
                assert f"c=IN {family} ".encode() in ok.body, ok.body
                assert b"IN IP6 ::\r\n" not in ok.body, ok.body
                peer.send(leg.ack(ok, parse(inv)), dest)
                peer.send(leg.request("BYE"), dest)
                assert peer.response_to("BYE", timeout=10).status == 200
    finally:
        a.stop()


@pytest_twisted.ensureDeferred
async def test_tls_on_ipv6_options_and_call_with_the_address_checked() -> None:
    """SIP over TLS on ``[::1]``: the server's certificate names the IPv6 address (an
    iPAddress subjectAltName, RFC 5922 §7.1 for a numeric URI host); OPTIONS gets 200 and a
    call is answered and ended over the TLS connection. A certificate for another address
    is refused (the check is on the IPv6 address, not skipped)."""
    from twisted.internet import ssl

    from siplink.ua.useragent import CallState, UserAgent
    from tests.test_security_tls import self_signed

    for cert_name, ok in ((V6, True), ("::2", False)):
        cert = self_signed(cert_name)
        bob = UserAgent(reactor, host=V6, user="bob", transport="tls")
        bob.listen(("tls",), tls_context=cert.options())
        bob.on_incoming_call = lambda call: call.answer()
        alice = UserAgent(reactor, host=V6, user="alice", transport="tls")
        alice.listen(("udp",))
        alice.transport.tls_trust_root = ssl.Certificate(cert.original)
        uri = f"sip:bob@[{V6}]:{bob.port};transport=tls"
        try:
            d = alice.request("OPTIONS", uri).addTimeout(5, reactor)
            if not ok:
                from twisted.internet.defer import TimeoutError as DeferredTimeout

                with pytest.raises(DeferredTimeout):   # the handshake fails: no response
                    await d
                continue
            assert (await d).status == 200
            call = alice.call(uri)
            await call.answered
            assert call.state is CallState.CONFIRMED
            assert call.dialog is not None and "[::1]" in str(call.dialog.remote_target)
            await call.hangup()
        finally:
            alice.close()
            bob.close()
