"""3xx redirects followed by the UAC (issue 13), checked on the wire and against SIPp.

RFC 3261 §8.1.3.4: "Upon receipt of a redirection response (for example, a 301 response
status code), clients SHOULD use the URI(s) in the Contact header field to formulate one or
more new requests based on the redirected request ... the client SHOULD try the URIs in
order of the q-value (§20.10) ... If the request fails with a URI, the next one is tried"
(§16.5/§16.6, the same target is not tried twice), and a UAC stops after a number of hops.
The test plays the redirecting server and the targets with raw sockets (tests/wire.py); the
ACK of each 3xx is §17.1.1.3's (the transaction's), the new INVITE keeps Call-ID, From tag
and To (only the Request-URI and CSeq change) and goes to the Contact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted

from tests.peers.kamailio import Kamailio
from tests.peers.sipp import SippUas
from tests.wire import HOST, Caller, SipMessage, SipPeer, new_tag, sdp, uri_of


@pytest.fixture
def peers() -> Iterator[list[SipPeer]]:
    ps = [SipPeer("udp") for _ in range(3)]
    try:
        yield ps
    finally:
        for p in ps:
            p.close()


def call(target: SipPeer, *flags: str) -> Caller:
    return Caller(f"sip:bob@{HOST}:{target.port}", "--no-ice", "--listen", f"{HOST}:0",
                  "--timeout", "10", "--duration", "0.3", *flags)


def redirect(peer: SipPeer, inv: SipMessage, contacts: list[str], status: int = 302) -> None:
    peer.reply(inv, status, to_tag=new_tag(),
               headers=[("Contact", c) for c in contacts])
    ack = peer.request_in("ACK", call_id=inv.call_id)
    assert ack.branch == inv.branch, ack.text()     # §17.1.1.3: the ACK of a non-2xx


def same_request(first: SipMessage, again: SipMessage) -> None:
    """§8.1.3.4: "based on the redirected request": same Call-ID, From (tag), To."""
    assert again.call_id == first.call_id, again.text()
    assert again.from_tag == first.from_tag and not again.to_tag, again.text()
    assert uri_of(again["to"]) == uri_of(first["to"]), again.text()
    assert again.cseq[0] > first.cseq[0] and again.cseq[1] == "INVITE", again.text()
    assert again.branch != first.branch, again.text()


def answer_and_bye(peer: SipPeer, inv: SipMessage) -> None:
    peer.reply(inv, 200, to_tag=new_tag(), headers=[("Contact", peer.contact())],
               body=sdp(port=peer.port + 2))
    peer.request_in("ACK", call_id=inv.call_id, timeout=10)
    bye = peer.request_in("BYE", call_id=inv.call_id, timeout=10)
    peer.reply(bye, 200)


def test_302_contacts_are_tried_in_q_order(peers: list[SipPeer]) -> None:
    """Two Contacts, q=0.4 and q=0.9: the INVITE goes first to the q=0.9 one; when it
    answers 486 the next Contact (q=0.4) gets the INVITE and its 200 is the outcome. The CLI
    exits 0 and prints the chain."""
    redirector, low, high = peers
    c = call(redirector, "--json")
    try:
        inv = redirector.request_in("INVITE", timeout=10)
        redirect(redirector, inv, [f"<sip:low@{HOST}:{low.port}>;q=0.4",
                                   f"<sip:high@{HOST}:{high.port}>;q=0.9"])
        inv2 = high.request_in("INVITE", timeout=10)
        assert inv2.uri == f"sip:high@{HOST}:{high.port}", inv2.text()
        same_request(inv, inv2)
        high.reply(inv2, 486, to_tag=new_tag())
        high.request_in("ACK", call_id=inv.call_id)
        inv3 = low.request_in("INVITE", timeout=10)
        assert inv3.uri == f"sip:low@{HOST}:{low.port}", inv3.text()
        same_request(inv2, inv3)
        answer_and_bye(low, inv3)
        assert c.wait(20) == 0, c.log()
        out = json.loads(c.out.strip().splitlines()[-1])
        assert out["status"] == 200
        # each hop: the response that sent the INVITE on, and where it went
        assert out["redirects"] == [f"302 -> sip:high@{HOST}:{high.port}",
                                    f"486 -> sip:low@{HOST}:{low.port}"], out
    finally:
        c.stop()


def test_a_redirect_back_to_a_tried_target_is_not_followed(peers: list[SipPeer]) -> None:
    """A 301 whose only Contact is the URI already tried (a loop) is the final outcome: no
    second INVITE, exit 1 (rejected), and the text output names the 301."""
    redirector = peers[0]
    c = call(redirector)
    try:
        inv = redirector.request_in("INVITE", timeout=10)
        redirect(redirector, inv, [f"<sip:bob@{HOST}:{redirector.port}>"], status=301)
        assert c.wait(20) == 1, c.log()
        again = [m for m in redirector.collect(
            lambda m: not m.is_response and m.method == "INVITE", 0.5)
            if m.branch != inv.branch]
        assert again == [], again
        assert "301" in c.out, c.log()
    finally:
        c.stop()


def test_at_most_five_redirects(peers: list[SipPeer]) -> None:
    """A server that redirects every INVITE to a new URI: siplink follows 5 hops, then the
    sixth 302 is the outcome (exit 1)."""
    redirector = peers[0]
    c = call(redirector)
    try:
        invites = []
        for n in range(6):
            inv = redirector.request_in("INVITE", timeout=10)
            invites.append(inv)
            redirect(redirector, inv, [f"<sip:hop{n}@{HOST}:{redirector.port}>"])
        assert c.wait(20) == 1, c.log()
        late = redirector.collect(lambda m: not m.is_response and m.method == "INVITE", 0.5)
        assert late == [], [m.uri for m in late]
        assert [m.uri for m in invites[1:]] == [f"sip:hop{n}@{HOST}:{redirector.port}"
                                                for n in range(5)]
    finally:
        c.stop()


# ----------------------------------------------------------------------------- SIPp

_SIPP_REDIRECT = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="redirect to the next UAS">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 302 Moved Temporarily
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:moved@127.0.0.1:{target}>
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"""


def test_follows_a_sipp_redirect_to_a_sipp_uas(tmp_path: Path) -> None:
    """SIPp plays the redirecting server (its own 302 scenario) and a second SIPp with the
    built-in uas answers the redirected INVITE: the call is answered and BYE'd (exit 0)."""
    with SippUas("uas") as target:
        xml = tmp_path / "redirect.xml"
        xml.write_text(_SIPP_REDIRECT.replace("{target}", str(target.port)))
        with SippUas(xml) as red:
            c = Caller(f"sip:bob@{red.address}", "--no-ice", "--listen", f"{HOST}:0",
                       "--timeout", "10", "--duration", "0.3")
            try:
                assert c.wait(30) == 0, c.log() + red.proc.log() + target.proc.log()
                assert f"redirected: 302 -> sip:moved@{HOST}:{target.port}" in c.out, c.out
            finally:
                c.stop()


# ----------------------------------------------------------------------------- Kamailio


@pytest_twisted.ensureDeferred
async def test_redirect_from_kamailio_is_followed_through_the_proxy(kamailio: Kamailio) -> None:
    """Kamailio answers an authenticated INVITE for ``moved`` with a 302 to bob's AOR; the
    caller sends the INVITE again (new CSeq, through its outbound proxy, digest again) to
    that Contact, Kamailio looks bob up and bob answers."""
    from twisted.internet import reactor

    from siplink.ua.useragent import Account, CallState, UserAgent

    agents = []
    try:
        for user in ("alice", "bob"):
            ua = UserAgent(reactor, user=user)
            ua.listen()
            agents.append((ua, Account(user, kamailio.address, password="secret",
                                       proxy=kamailio.address)))
        (a, acc_a), (b, acc_b) = agents
        assert await b.register(acc_b).register() == 3600
        kamailio.proc.wait_for("REGISTERED sip:bob@", timeout=5)
        b.on_incoming_call = lambda call: call.answer()
        call = a.call(f"sip:moved@{kamailio.address}", account=acc_a)
        await call.answered
        assert call.state is CallState.CONFIRMED
        assert call.redirects == [(302, f"sip:bob@{kamailio.address}")]
        await call.hangup()
    finally:
        for ua, _ in agents:
            ua.close()
