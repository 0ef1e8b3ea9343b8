"""`siplink answer` as a UAS, checked on the wire from the RFC text.

The test is the UAC: raw SIP on a UDP (or TCP) socket of its own (tests/wire.py), siplink runs
as a subprocess (``python -m siplink -v answer --media static``). Every assertion is what RFC
3261/3262/3264/4028 require of a UAS, quoted in the test's docstring, not what siplink does.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.wire import (
    HOST,
    Answerer,
    Leg,
    SipMessage,
    SipPeer,
    answerers,
    param,
    sdp,
    uri_of,
)

StartAnswerer = Callable[..., Answerer]


@pytest.fixture
def answerer() -> Iterator[StartAnswerer]:
    """Start ``siplink answer`` with extra flags; stopped (by PID) after the test."""
    yield from answerers()


@pytest.fixture
def udp() -> Iterator[SipPeer]:
    with SipPeer("udp") as p:
        yield p


def no_unhandled_error(a: Answerer, peer: SipPeer) -> None:
    """Every Deferred failure consumed or reported once: no "Unhandled error in Deferred"
    and no traceback in siplink answer's log. Twisted logs an unconsumed failure when its
    Deferred is garbage-collected, so first churn the process with 150 OPTIONS (each one
    allocates enough to run the cyclic collector), then stop it and read the whole log."""
    from tests.wire import Leg as _Leg

    for _ in range(150):
        leg = _Leg(peer, a.addr, a.uri())
        leg.send("OPTIONS")
        peer.response_to("OPTIONS", call_id=leg.call_id)
    time.sleep(0.5)
    a.stop()
    log = a.log()
    for word in ("Unhandled error", "Traceback"):
        at = log.find(word)
        assert at < 0, f"siplink answer logged {word!r}:\n{log[max(0, at - 600):at + 1200]}"


def assert_to_tag(resp: SipMessage, req: SipMessage) -> None:
    """RFC 3261 §8.2.6.2: "if the To header field in the request did not contain a tag, the
    URI in the To header field in the response MUST equal the URI in the To header field;
    additionally, the UAS MUST add a tag to the To header field in the response (with the
    exception of the 100 (Trying) response...)"."""
    assert resp.to_tag, f"{resp.start} has no To tag:\n{resp.text()}"
    assert uri_of(resp["to"]) == uri_of(req["to"]), resp.text()
    assert resp["from"] == req["from"] and resp.call_id == req.call_id, resp.text()
    assert resp.cseq == req.cseq, resp.text()


def invite(leg: Leg, body: bytes | None = None, **kw: object) -> SipMessage:
    return leg.send("INVITE", body=sdp(port=leg.peer.port + 1) if body is None else body,
                    **kw)


def establish(leg: Leg, body: bytes | None = None) -> tuple[SipMessage, SipMessage]:
    """INVITE -> 200 -> ACK; returns (INVITE, 200)."""
    inv = invite(leg, body)
    ok = leg.peer.response_to("INVITE", inv.cseq[0], call_id=leg.call_id)
    assert ok.status == 200, ok.text()
    leg.send_ack(ok, inv)
    return inv, ok


# ----------------------------------------------------------------------------- OPTIONS


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_options_200_lists_capabilities(answerer: StartAnswerer, transport: str) -> None:
    """RFC 3261 §11.2: "Allow, Accept, Accept-Encoding, Accept-Language, and Supported header
    fields SHOULD be present in a 200 (OK) response to an OPTIONS request." §8.2.6.2: the UAS
    MUST add a To tag. siplink implements 100rel (RFC 3262) and timer (RFC 4028), so
    Supported lists both; Allow lists at least the RFC 3261 methods it answers."""
    a = answerer(transports=("udp", "tcp"))
    with SipPeer(transport, connect=a.addr if transport == "tcp" else None) as peer:
        leg = Leg(peer, a.addr, a.uri(transport=transport))
        req = leg.send("OPTIONS", headers=[("Accept", "application/sdp")])
        resp = peer.response_to("OPTIONS")
        assert resp.status == 200, resp.text()
        assert_to_tag(resp, req)
        assert {"invite", "ack", "cancel", "bye", "options"} <= resp.tokens("allow"), \
            resp.text()
        assert "application/sdp" in resp.tokens("accept"), resp.text()
        assert resp.has("accept-encoding"), f"no Accept-Encoding:\n{resp.text()}"
        assert resp.has("accept-language"), f"no Accept-Language:\n{resp.text()}"
        assert {"100rel", "timer"} <= resp.tokens("supported"), \
            f"Supported must list 100rel and timer:\n{resp.text()}"


# ----------------------------------------------------------------------------- To tags on errors


@pytest.mark.parametrize("method", ["BYE", "INFO"])
def test_request_outside_dialog_481_with_to_tag(answerer: StartAnswerer, udp: SipPeer,
                                                method: str) -> None:
    """RFC 3261 §15.1.2: "If the BYE does not match an existing dialog, the UAS core SHOULD
    generate a 481 (Call/Transaction Does Not Exist) response"; §12.2.2 the same for any
    request that matches no dialog. §8.2.6.2: the request had no To tag, so the UAS MUST add
    one to the response."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send(method, content_type=None)
    resp = udp.response_to(method)
    assert resp.status == 481, resp.text()
    assert_to_tag(resp, req)


def test_unknown_to_tag_481_keeps_the_request_to(answerer: StartAnswerer,
                                                 udp: SipPeer) -> None:
    """RFC 3261 §12.2.2: "If the UAS receives a request within a dialog that doesn't match
    an existing dialog, it MUST respond 481"; §8.2.6.2: "If a request contained a To tag in
    the request, the To header field in the response MUST equal that of the request"."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri(), to_tag="nosuchdialog")
    req = leg.send("BYE")
    resp = udp.response_to("BYE")
    assert resp.status == 481, resp.text()
    assert resp["to"] == req["to"], resp.text()


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
def test_require_unknown_extension_420(answerer: StartAnswerer, udp: SipPeer,
                                       method: str) -> None:
    """RFC 3261 §8.2.2.3: "If a UAS does not understand an option-tag listed in a Require
    header field, it MUST respond by generating a response with status code 420 (Bad
    Extension). The UAS MUST add an Unsupported header field, and list in it those options it
    does not understand amongst those in the Require header field of the request." To tag:
    §8.2.6.2. A non-2xx to INVITE is ACKed (§17.1.1.3)."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send(method, headers=[("Require", "foo")],
                   body=sdp() if method == "INVITE" else b"")
    resp = udp.response_to(method)
    assert resp.status == 420, resp.text()
    assert resp.tokens("unsupported") == {"foo"}, resp.text()
    assert_to_tag(resp, req)
    if method == "INVITE":
        leg.send_ack(resp, req)


@pytest.mark.parametrize("method", ["PUBLISH", "SUBSCRIBE"])
def test_recognised_unsupported_method_405_with_allow(answerer: StartAnswerer, udp: SipPeer,
                                                      method: str) -> None:
    """RFC 3261 §8.2.1: "If a UAS recognizes but does not support the method of a request, it
    MUST generate a 405 (Method Not Allowed) response. ... The UAS MUST also add an Allow
    header field to the 405". To tag: §8.2.6.2."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send(method, headers=[("Event", "presence"), ("Expires", "60")])
    resp = udp.response_to(method)
    assert resp.status == 405, resp.text()
    assert resp.has("allow") and method.lower() not in resp.tokens("allow"), resp.text()
    assert_to_tag(resp, req)


def test_unknown_method_501(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §21.5.2: "501 Not Implemented ... This is the appropriate response when a UAS
    does not recognize the request method and is not capable of supporting it for any
    user." To tag: §8.2.6.2."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send("FROBNICATE")
    resp = udp.response_to("FROBNICATE")
    assert resp.status == 501, resp.text()
    assert_to_tag(resp, req)


def test_unsupported_content_type_415_with_accept(answerer: StartAnswerer,
                                                  udp: SipPeer) -> None:
    """RFC 3261 §8.2.3: a body of a type the UAS does not understand gets "a 415 (Unsupported
    Media Type) response. The response MUST contain an Accept header field listing the types
    of all bodies it understands". To tag: §8.2.6.2; the non-2xx is ACKed."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send("INVITE", body=b"<wire/>", content_type="application/x-wire+xml")
    resp = udp.response_to("INVITE")
    assert resp.status == 415, resp.text()
    assert "application/sdp" in resp.tokens("accept"), resp.text()
    assert_to_tag(resp, req)
    leg.send_ack(resp, req)


def test_unsupported_content_encoding_415_with_accept_encoding(answerer: StartAnswerer,
                                                               udp: SipPeer) -> None:
    """RFC 3261 §8.2.3: "If the request contained content encodings not understood by the
    UAS, the response MUST contain an Accept-Encoding header field listing the encodings
    understood by the UAS" (the 415 of the same section). An SDP offer sent gzip-compressed
    (Content-Encoding: gzip, §20.12) to a UAS that does not decode gzip."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send("INVITE", body=gzip.compress(sdp(port=udp.port + 1)),
                   headers=[("Content-Type", "application/sdp"),
                            ("Content-Encoding", "gzip")])
    resp = udp.response_to("INVITE")
    if resp.status == 200:
        leg.send_ack(resp, req)
        leg.send("BYE")
    assert resp.status == 415, resp.text()
    assert resp.has("accept-encoding"), resp.text()
    assert "gzip" not in resp.tokens("accept-encoding"), resp.text()
    assert_to_tag(resp, req)
    leg.send_ack(resp, req)


@pytest.mark.parametrize("ruri,method", [("tel:+15551234567", "OPTIONS"),
                                         ("foo:bar@example.invalid", "INVITE")])
def test_unsupported_uri_scheme_416(answerer: StartAnswerer, udp: SipPeer, ruri: str,
                                    method: str) -> None:
    """RFC 3261 §8.2.2.1: "If the Request-URI uses a scheme not supported by the UAS, it
    SHOULD reject the request with a 416 (Unsupported URI Scheme) response." To tag:
    §8.2.6.2."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    req = leg.send(method, uri=ruri, body=sdp() if method == "INVITE" else b"")
    resp = udp.response_to(method)
    assert resp.status == 416, resp.text()
    assert_to_tag(resp, req)
    if method == "INVITE":
        leg.send_ack(resp, req)


# ----------------------------------------------------------------------------- merged requests


def test_merged_options_after_final_response_482(answerer: StartAnswerer,
                                                 udp: SipPeer) -> None:
    """RFC 3261 §8.2.2.2: "If the request has no tag in the To header field, the UAS core MUST
    check the request against ongoing transactions. If the From tag, Call-ID, and CSeq
    exactly match those associated with an ongoing transaction, but the request does not
    match that transaction (based on the matching rules in Section 17.2.3), the UAS core
    SHOULD generate a 482 (Loop Detected) response". Over UDP the first OPTIONS' server
    transaction stays (Completed, timer J = 64*T1, §17.2.2) after its 200, so a second OPTIONS
    with the same From tag, Call-ID and CSeq but another branch, 0.2 s later, is merged."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    first = leg.send("OPTIONS", cseq=7)
    r1 = udp.response_to("OPTIONS")
    assert r1.status == 200 and r1.branch == first.branch, r1.text()
    time.sleep(0.2)
    second = leg.send("OPTIONS", cseq=7)
    assert second.branch != first.branch
    r2 = udp.response_to("OPTIONS")
    assert r2.branch == second.branch, r2.text()
    assert r2.status == 482, r2.text()
    assert_to_tag(r2, second)


def test_merged_invite_while_ringing_482(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §8.2.2.2 (quoted in the OPTIONS test): a second INVITE, same From tag,
    Call-ID and CSeq, new branch, while the first is still ringing, gets 482 (with a To tag,
    §8.2.6.2), and the first INVITE is unaffected (it can still be CANCELled: §9.2)."""
    a = answerer("--ring", "30")
    leg = Leg(udp, a.addr, a.uri())
    first = invite(leg, cseq=1)
    ringing = udp.response_to("INVITE", status=180, final=False)
    second = invite(leg, cseq=1)
    r2 = udp.recv(lambda m: m.is_response and m.branch == second.branch and m.status >= 200,
                  5, "final response to the merged INVITE")
    assert r2.status == 482, r2.text()
    assert_to_tag(r2, second)
    leg.send_ack(r2, second)
    leg.send("CANCEL", branch=first.branch, cseq=1)
    assert udp.response_to("CANCEL").status == 200
    r1 = udp.recv(lambda m: m.is_response and m.branch == first.branch and m.status >= 200,
                  5, "final response to the first INVITE")
    assert r1.status == 487 and r1.to_tag == ringing.to_tag, r1.text()
    leg.send_ack(r1, first)


# ----------------------------------------------------------------------------- CANCEL


def test_cancel_while_ringing_200_then_487_same_to_tag(answerer: StartAnswerer,
                                                       udp: SipPeer) -> None:
    """RFC 3261 §9.2: the CANCEL gets 200; "the UAS SHOULD then respond to the INVITE with a
    487 (Request Terminated)"; "The To tag of the response to the CANCEL and the To tag in
    the response to the original request SHOULD be the same." §8.2.6.2: the 200 to CANCEL
    (no To tag in the CANCEL) MUST carry a To tag."""
    a = answerer("--ring", "30")
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg)
    ringing = udp.response_to("INVITE", status=180, final=False)
    assert ringing.to_tag, ringing.text()
    cancel = leg.send("CANCEL", branch=inv.branch, cseq=inv.cseq[0])
    ok = udp.response_to("CANCEL")
    assert ok.status == 200, ok.text()
    assert_to_tag(ok, cancel)
    assert ok.to_tag == ringing.to_tag, "200 to CANCEL: another To tag than the 180's"
    final = udp.response_to("INVITE")
    assert final.status == 487, final.text()
    assert final.to_tag == ringing.to_tag, final.text()
    leg.send_ack(final, inv)


@pytest.mark.parametrize("media", ["static", "ice"])
def test_cancelled_call_leaves_no_unhandled_error(answerer: StartAnswerer, udp: SipPeer,
                                                  media: str) -> None:
    """A call CANCELled while ringing (RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE,
    ACK) is an ordinary outcome: siplink answer's log then has no "Unhandled error in
    Deferred" and no traceback (design rule: every Deferred failure consumed or reported
    once)."""
    a = answerer("--ring", "30", media=media)
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg)
    udp.response_to("INVITE", status=180, final=False)
    leg.send("CANCEL", branch=inv.branch, cseq=inv.cseq[0])
    assert udp.response_to("CANCEL").status == 200
    final = udp.response_to("INVITE")
    assert final.status == 487, final.text()
    leg.send_ack(final, inv)
    no_unhandled_error(a, udp)


@pytest.mark.parametrize("media,offer", [("static", "no-media"), ("ice", "no-media"),
                                         ("ice", "ipv6-candidate-only")])
def test_rejected_call_leaves_no_unhandled_error(answerer: StartAnswerer, udp: SipPeer,
                                                 media: str, offer: str) -> None:
    """A call rejected with a 4xx (RFC 3261 §13.3.1.3: 488 for an offer without any media
    line, or an ICE offer whose only candidate is IPv6 while we gather on 127.0.0.1) is an
    ordinary outcome: after the final response and its ACK (§17.1.1.3) siplink answer's log
    has no "Unhandled error in Deferred" and no traceback."""
    a = answerer(media=media)
    leg = Leg(udp, a.addr, a.uri())
    if offer == "no-media":
        body = sdp(media=False)
    else:
        body = sdp(port=udp.port + 1, ice="a=ice-ufrag:wire\r\na=ice-pwd:wirewirewirewirewirewire"
                   f"\r\na=candidate:1 1 UDP 2130706431 ::1 {udp.port + 1} typ host\r\n")
    inv = invite(leg, body=body)
    resp = udp.response_to("INVITE")
    leg.send_ack(resp, inv)
    assert 400 <= resp.status < 500, resp.text()
    no_unhandled_error(a, udp)


def test_cancel_unknown_transaction_481(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §9.2: "If the UAS did not find a matching transaction for the CANCEL according
    to the procedure above, it SHOULD respond to the CANCEL with a 481 (Call Leg/Transaction
    Does Not Exist)." To tag: §8.2.6.2."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    cancel = leg.send("CANCEL", cseq=1)
    resp = udp.response_to("CANCEL")
    assert resp.status == 481, resp.text()
    assert_to_tag(resp, cancel)


# ----------------------------------------------------------------------------- INVITE


def test_invite_without_contact_400(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §8.1.1.8: "The Contact header field MUST be present and contain exactly one
    SIP or SIPS URI in any request that can result in the establishment of a dialog." An
    INVITE without it is malformed: 400 (Bad Request, §21.4.1), with a To tag (§8.2.6.2)."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg, contact=False)
    resp = udp.response_to("INVITE")
    if resp.status == 200:
        leg.send_ack(resp, inv)
        leg.send("BYE")
    assert resp.status == 400, resp.text()
    assert_to_tag(resp, inv)
    leg.send_ack(resp, inv)


def test_2xx_to_invite_contact_and_stable_to_tag(answerer: StartAnswerer,
                                                 udp: SipPeer) -> None:
    """RFC 3261 §12.1.1: in a dialog-creating response "the UAS MUST add a Contact header
    field to the response. The Contact header field contains an address where the UAS would
    like to be contacted for subsequent requests in the dialog"; §8.1.1.8 exactly one SIP
    URI. §12.1: the 180 and the 200 belong to one dialog, so they carry the same To tag; the
    180 creates the early dialog, so it has a Contact too (§12.1.1 applies to "a response to
    a request that can establish a dialog", 101-199 with a tag included). §13.3.1.4: the
    INVITE had an offer, so the 2xx carries the answer (application/sdp with an m= line)."""
    a = answerer("--ring", "0.5")
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg)
    ringing = udp.response_to("INVITE", status=180, final=False)
    ok = udp.response_to("INVITE")
    assert ok.status == 200, ok.text()
    leg.send_ack(ok, inv)
    assert ringing.to_tag and ok.to_tag == ringing.to_tag, (ringing.text(), ok.text())
    assert len(ringing.all("contact")) == 1, f"dialog-creating 180 without Contact:\n{ringing}"
    contacts = ok.all("contact")
    assert len(contacts) == 1 and uri_of(contacts[0]).startswith("sip:"), ok.text()
    assert ok.get("content-type") == "application/sdp" and b"m=audio" in ok.body, ok.text()
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


def test_2xx_to_invite_has_allow_and_supported(answerer: StartAnswerer,
                                              udp: SipPeer) -> None:
    """RFC 3261 §13.3.1.4: "A 2xx response to an INVITE SHOULD contain the Allow header field
    and the Supported header field, and MAY contain the Accept header field." siplink
    implements 100rel (RFC 3262) and timer (RFC 4028): Supported lists both."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg, headers=[("Supported", "timer")])
    ok = udp.response_to("INVITE")
    assert ok.status == 200, ok.text()
    leg.send_ack(ok, inv)
    leg.send("BYE")
    assert ok.has("allow") and "invite" in ok.tokens("allow"), ok.text()
    assert {"100rel", "timer"} <= ok.tokens("supported"), \
        f"2xx to INVITE without Supported: 100rel, timer:\n{ok.text()}"


def test_2xx_retransmitted_until_ack(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §13.3.1.4: "The 2xx response is passed to the transport with an interval that
    starts at T1 seconds and doubles for each retransmission until it reaches T2 seconds
    ... Response retransmissions cease when an ACK request for the response is received."
    With T1 = 0.5 s, in 3.9 s without an ACK the 200 goes out at 0, 0.5, 1.5 and 3.5 s (4
    copies, same To tag); after the ACK no further copy comes (one allowed in flight)."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg)
    first = udp.response_to("INVITE")
    assert first.status == 200, first.text()
    copies = [first] + udp.collect(lambda m: m.is_response and m.cseq[1] == "INVITE"
                                   and m.status >= 200, 3.9)
    assert len(copies) >= 4, f"only {len(copies)} copies of the 200 in 3.9 s without ACK"
    assert all(c.status == 200 and c.to_tag == first.to_tag for c in copies)
    gaps = [round(b.when - a_.when, 2) for a_, b in zip(copies, copies[1:], strict=False)]
    assert gaps[0] >= 0.4 and all(g2 >= g1 * 1.5 for g1, g2 in zip(gaps, gaps[1:],
                                                                      strict=False)), gaps
    leg.send_ack(first, inv)
    after = udp.collect(lambda m: m.is_response and m.cseq[1] == "INVITE"
                        and m.status >= 200, 4.5)
    assert len(after) <= 1, f"{len(after)} copies of the 200 after the ACK"
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


def test_488_for_unacceptable_offer_has_warning(answerer: StartAnswerer,
                                                udp: SipPeer) -> None:
    """RFC 3261 §13.3.1.3: a UAS that cannot accept the offer answers 488 (Not Acceptable
    Here); "Such a response SHOULD include a Warning header field value explaining why the
    offer was rejected." §20.43: warn-code SP warn-agent SP warn-text, where the 3xx codes
    are for SDP problems (304 Media type not available, 305 Incompatible media format...).
    The offer here has no media line at all. To tag (§8.2.6.2), ACK (§17.1.1.3)."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg, body=sdp(media=False))
    resp = udp.response_to("INVITE")
    assert resp.status == 488, resp.text()
    assert_to_tag(resp, inv)
    leg.send_ack(resp, inv)
    warning = resp.get("warning")
    assert warning is not None, f"488 without Warning:\n{resp.text()}"
    code, agent, text = warning.split(" ", 2)
    assert code.isdigit() and code.startswith("3") and agent and text.startswith('"'), warning


@pytest.mark.parametrize("media", ["static", "ice"])
def test_late_offer_then_reinvites(answerer: StartAnswerer, udp: SipPeer, media: str) -> None:
    """RFC 3261 §13.3.1.4: "If the INVITE did not contain an offer, the 2xx MUST contain an
    offer if the UAS had not yet sent an offer"; §13.2.1 / RFC 3264 §4: the answer then comes
    in the ACK. §14.2: the same holds for a re-INVITE without SDP. RFC 3261 §14.2 gives 491
    only to "an INVITE on a dialog while an INVITE it had sent on that dialog is in
    progress" (or a pending offer): once both offer/answer exchanges are complete (answers
    in the ACKs), a third re-INVITE with an offer gets 200 with the answer.
    Our answers are plain RTP (no ICE), which an ICE offerer accepts (RFC 8839 §3.1 fallback)
    and --media static ignores."""
    a = answerer(media=media)
    leg = Leg(udp, a.addr, a.uri())
    inv = leg.send("INVITE")                           # late offer: no body
    ok = udp.response_to("INVITE")
    assert ok.status == 200, f"late-offer INVITE: {ok.text()}"
    assert ok.get("content-type") == "application/sdp" and b"m=audio" in ok.body, \
        f"2xx to an INVITE without offer carries no offer:\n{ok.text()}"
    leg.send_ack(ok, inv, body=sdp(port=udp.port + 1, version=1))
    time.sleep(0.3)

    reinv = leg.send("INVITE")                         # late-offer re-INVITE
    ok2 = udp.response_to("INVITE", reinv.cseq[0])
    assert ok2.status == 200, f"late-offer re-INVITE: {ok2.text()}"
    assert b"m=audio" in ok2.body, f"2xx to a re-INVITE without offer, no offer:\n{ok2.text()}"
    leg.send_ack(ok2, reinv, body=sdp(port=udp.port + 1, version=2))
    time.sleep(0.3)

    reinv3 = leg.send("INVITE", body=sdp(port=udp.port + 1, version=3))
    ok3 = udp.response_to("INVITE", reinv3.cseq[0])
    assert ok3.status == 200, f"re-INVITE with an offer after two late offers: {ok3.text()}"
    assert b"m=audio" in ok3.body, ok3.text()
    leg.send_ack(ok3, reinv3)
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


@pytest.mark.parametrize("media", ["static", "ice"])
def test_late_offer_reinvite_in_established_call(answerer: StartAnswerer, udp: SipPeer,
                                                 media: str) -> None:
    """As above, in a call set up with a normal offer (so the initial INVITE works even where
    late offer does not): RFC 3261 §14.2 / §13.3.1.4 a re-INVITE without SDP gets a 2xx
    with an offer, whose answer comes in the ACK (RFC 3264 §4); that completes the exchange,
    so the next re-INVITE with an offer gets 200 with an answer, not 491 (§14.2: 491 only
    while an INVITE transaction or offer of the UAS's own is pending)."""
    a = answerer(media=media)
    leg = Leg(udp, a.addr, a.uri())
    establish(leg)
    time.sleep(0.3)
    reinv = leg.send("INVITE")
    ok = udp.response_to("INVITE", reinv.cseq[0])
    assert ok.status == 200, f"late-offer re-INVITE: {ok.text()}"
    assert b"m=audio" in ok.body, f"2xx to a re-INVITE without offer, no offer:\n{ok.text()}"
    leg.send_ack(ok, reinv, body=sdp(port=udp.port + 1, version=2))
    time.sleep(0.3)
    reinv2 = leg.send("INVITE", body=sdp(port=udp.port + 1, version=3))
    ok2 = udp.response_to("INVITE", reinv2.cseq[0])
    assert ok2.status == 200, f"re-INVITE with an offer after a late offer: {ok2.text()}"
    assert b"m=audio" in ok2.body, ok2.text()
    leg.send_ack(ok2, reinv2)
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


def test_bye_in_early_dialog_ends_invite_with_487(answerer: StartAnswerer,
                                                  udp: SipPeer) -> None:
    """RFC 3261 §15: "the caller's UA MAY send a BYE for either confirmed or early
    dialogs"; §15.1.2: the UAS answers the BYE and "MUST still respond to any pending
    requests received for that dialog. It is RECOMMENDED that a 487 (Request Terminated)
    response be generated to those pending requests." (siplink answer --ring 30 rings and
    does not answer within the test.)"""
    a = answerer("--ring", "30")
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg)
    ringing = udp.response_to("INVITE", status=180, final=False)
    leg.learn(ringing)
    assert leg.to_tag, ringing.text()
    leg.send("BYE")
    bye_ok = udp.response_to("BYE")
    assert bye_ok.status == 200, bye_ok.text()
    final = udp.response_to("INVITE", timeout=5)
    assert final.status == 487, final.text()
    assert final.to_tag == ringing.to_tag, final.text()
    leg.send_ack(final, inv)
    no_unhandled_error(a, udp)


def test_bye_with_lower_cseq_500(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §12.2.2: "If the remote sequence number was not empty, but the sequence
    number of the request is lower than the remote sequence number, the request is out of
    order and MUST be rejected with a 500 (Server Internal Error) response." INVITE with
    CSeq 10, then BYE with CSeq 5 -> 500; the dialog stays, and a BYE with CSeq 11 -> 200."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri(), cseq=9)
    establish(leg)
    low = leg.send("BYE", cseq=5)
    resp = udp.response_to("BYE", 5)
    assert resp.status == 500, resp.text()
    assert resp["to"].endswith(f"tag={leg.to_tag}"), resp.text()
    assert low.cseq == resp.cseq
    leg.send("BYE", cseq=11)
    assert udp.response_to("BYE", 11).status == 200


def test_call_over_tcp(answerer: StartAnswerer) -> None:
    """RFC 3261 §18.2.2: over TCP the responses come back on the connection of the request;
    §12.1.1: the 2xx has a To tag and one Contact URI; the dialog then takes ACK and BYE
    (§13.2.2.4, §15.1.2) -> 200 to the BYE."""
    a = answerer(transports=("tcp",))
    with SipPeer("tcp", connect=a.addr) as tcp:
        leg = Leg(tcp, a.addr, a.uri(transport="tcp"))
        inv, ok = establish(leg)
        assert ok.to_tag and len(ok.all("contact")) == 1, ok.text()
        assert_to_tag(ok, inv)
        leg.send("BYE")
        assert tcp.response_to("BYE").status == 200


# ----------------------------------------------------------------------------- ICE failure


@pytest.mark.parametrize("candidate", ["tcp-only", "silent-udp"])
def test_ice_failure_on_incoming_call_is_not_a_global_failure(
        answerer: StartAnswerer, udp: SipPeer, tmp_path: Path, candidate: str) -> None:
    """RFC 3261 §21.6: 6xx means "a server has definitive information about a particular
    user, not just the particular instance indicated in the Request-URI" (603 Decline: the
    user does not wish to participate), and §16.7 a proxy stops forking on a 6xx. ICE
    failing on one device is not that: the call must not end with a 6xx (488, or 500/480
    with a reason, or a 2xx then BYE). Offers: only a TCP candidate (RFC 6544; no UDP pair
    can form, so ICE fails at once), or only a UDP candidate on a socket that never answers
    STUN, with [ice] failed_timeout_s = 2. Afterwards the log has no "Unhandled error"."""
    cfg = tmp_path / "ice.toml"
    cfg.write_text("[ice]\nfailed_timeout_s = 2.0\n")
    a = answerer(media="ice", config=str(cfg))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as media:
        media.bind((HOST, 0))
        mport = media.getsockname()[1]
        cand = (f"a=candidate:1 1 TCP 2130706431 {HOST} {mport} typ host tcptype passive"
                if candidate == "tcp-only" else
                f"a=candidate:1 1 UDP 2130706431 {HOST} {mport} typ host")
        ice = ("a=ice-ufrag:wire\r\na=ice-pwd:wirewirewirewirewirewire\r\n"
               f"{cand}\r\na=rtcp-mux\r\n")
        leg = Leg(udp, a.addr, a.uri())
        inv = invite(leg, body=sdp(port=mport, ice=ice))
        final = udp.response_to("INVITE", timeout=20)
        leg.send_ack(final, inv)
        ended: SipMessage | None = None
        if final.status < 300:
            ended = udp.request_in("BYE", timeout=20)
            udp.reply(ended, 200)
        assert final.status < 600, f"ICE failure answered with a global failure:\n{final.text()}"
        if final.status >= 300:
            assert final.status in (480, 488, 500), final.text()
        assert ended is not None or final.status >= 300
    no_unhandled_error(a, udp)


# ----------------------------------------------------------------------------- RFC 4028, 3262, 3311


def test_session_interval_too_small_422(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 4028 §9 (UAS): a Session-Expires below the UAS's minimum is rejected with "a 422
    (Session Interval Too Small)" that "MUST contain a Min-SE header field with the minimum
    timer value it will accept" (at least 90 s, §4/§5). To tag: RFC 3261 §8.2.6.2."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg, headers=[("Supported", "timer"), ("Session-Expires", "30")])
    resp = udp.response_to("INVITE")
    leg.send_ack(resp, inv)
    assert resp.status == 422, resp.text()
    min_se = (resp.get("min-se") or "").split(";")[0].strip()
    assert min_se.isdigit() and int(min_se) > 30, resp.text()
    assert_to_tag(resp, inv)


def test_session_timer_in_2xx(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 4028 §9: a UAS that accepts a request with Session-Expires (and Supported: timer)
    copies Session-Expires into the 2xx (not larger) and MUST set its refresher parameter;
    "If the refresher parameter in the Session-Expires header field in the 2xx response has
    a value of 'uac', the UAS MUST place a Require header field into the response with the
    value 'timer'"."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg, headers=[("Supported", "timer"), ("Session-Expires", "1800")])
    ok = udp.response_to("INVITE")
    leg.send_ack(ok, inv)
    assert ok.status == 200, ok.text()
    se = ok.get("session-expires") or ""
    interval, refresher = se.split(";")[0].strip(), (param(se, "refresher") or "")
    assert interval.isdigit() and 90 <= int(interval) <= 1800, ok.text()
    assert refresher.lower() in ("uac", "uas"), ok.text()
    if refresher.lower() == "uac":
        assert "timer" in ok.tokens("require"), ok.text()
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


def test_reliable_180_retransmitted_until_prack(answerer: StartAnswerer,
                                                udp: SipPeer) -> None:
    """RFC 3262 §3: to a UAC that supports 100rel the UAS may send provisionals reliably:
    with "a Require header field containing the option tag 100rel" and an RSeq between 1 and
    2**31 - 1; it is retransmitted "with an interval that starts at T1 seconds and doubles
    for each retransmission" until a PRACK matches it. A PRACK that "does not match any
    unacknowledged reliable provisional response" gets 481; the matching one (RAck: RSeq,
    CSeq number, method) gets 200 and stops the retransmissions. (siplink answer --ring 3
    sends the 180; whether it is reliable is the UAS's choice, so the test first checks it
    claims 100rel.)"""
    a = answerer("--ring", "3")
    leg = Leg(udp, a.addr, a.uri())
    inv = invite(leg, headers=[("Supported", "100rel")])
    first = udp.response_to("INVITE", status=180, final=False)
    assert "100rel" in first.tokens("require"), \
        f"siplink sent an unreliable 180 to a UAC supporting 100rel:\n{first.text()}"
    rseq = int(first["rseq"])
    assert 1 <= rseq <= 2**31 - 1
    copies = udp.collect(lambda m: m.is_response and m.status == 180, 1.7)
    assert len(copies) >= 2 and all(int(c["rseq"]) == rseq for c in copies), \
        f"{len(copies)} retransmissions of the reliable 180 in 1.7 s"
    leg.learn(first)
    leg.send("PRACK", headers=[("RAck", f"{rseq + 5} {inv.cseq[0]} INVITE")])
    assert udp.response_to("PRACK").status == 481
    leg.send("PRACK", headers=[("RAck", f"{rseq} {inv.cseq[0]} INVITE")])
    assert udp.response_to("PRACK").status == 200
    time.sleep(0.2)
    later = udp.collect(lambda m: m.is_response and m.status == 180, 1.0)
    assert not later, f"{len(later)} retransmissions of the 180 after its PRACK"
    ok = udp.response_to("INVITE", timeout=5)
    assert ok.status == 200 and ok.to_tag == first.to_tag, ok.text()
    leg.send_ack(ok, inv)
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


def test_update_with_offer_in_dialog_gets_answer(answerer: StartAnswerer,
                                                 udp: SipPeer) -> None:
    """RFC 3311 §5.2: a UAS receiving an UPDATE with an offer in a confirmed dialog with no
    offer/answer outstanding "MUST ... generate an answer in the 2xx response"; the 2xx
    carries the dialog's To tag (RFC 3261 §12.2.1.1/§8.2.6.2) and Contact (RFC 3311 §5.2:
    "the 2xx response to the UPDATE MUST contain a Contact header field")."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    establish(leg)
    upd = leg.send("UPDATE", body=sdp(port=udp.port + 1, version=2))
    ok = udp.response_to("UPDATE")
    assert ok.status == 200, ok.text()
    assert ok.to_tag == leg.to_tag and ok.cseq == upd.cseq, ok.text()
    assert ok.get("content-type") == "application/sdp" and b"m=audio" in ok.body, ok.text()
    assert ok.has("contact"), ok.text()
    leg.send("BYE")
    assert udp.response_to("BYE").status == 200


def test_record_route_copied_into_2xx(answerer: StartAnswerer, udp: SipPeer) -> None:
    """RFC 3261 §12.1.1: "When a UAS responds to a request with a response that establishes
    a dialog (such as a 2xx to INVITE), the UAS MUST copy all Record-Route header field
    values from the request into the response (including the URIs, URI parameters, and any
    Record-Route header field parameters, whether they are known or unknown to the UAS) and
    MUST maintain the order of those values"."""
    a = answerer()
    leg = Leg(udp, a.addr, a.uri())
    rr = [f"<sip:p1@{HOST}:{udp.port};lr;x=1>", f"<sip:p2@{HOST}:{udp.port};lr>;foo=bar"]
    inv = invite(leg, headers=[("Record-Route", rr[0]), ("Record-Route", rr[1])])
    ok = udp.response_to("INVITE")
    assert ok.status == 200, ok.text()
    leg.send_ack(ok, inv)
    assert ok.all("record-route") == rr, ok.text()
