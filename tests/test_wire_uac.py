"""`siplink call` (and a `siplink test` re-INVITE step) as a UAC, checked on the wire.

The test is the UAS: raw SIP on a UDP socket of its own (tests/wire.py) that receives the
INVITE and answers however the RFC case needs; siplink runs as a subprocess (``python -m
siplink call sip:bob@127.0.0.1:PORT --no-ice``). Every assertion is what RFC 3261/3262 require
of a UAC, quoted in the test's docstring, not what siplink does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.wire import HOST, Caller, SipMessage, SipPeer, new_tag, response, sdp, uri_of

StartCall = Callable[..., Caller]


@pytest.fixture
def uas() -> Iterator[SipPeer]:
    with SipPeer("udp") as p:
        yield p


@pytest.fixture
def start_call(uas: SipPeer) -> Iterator[StartCall]:
    """``siplink call sip:bob@127.0.0.1:<the test's port> --no-ice ...``; stopped after."""
    started: list[Caller] = []

    def start(*flags: str, command: str = "call") -> Caller:
        if command == "call":
            args: tuple[str, ...] = (f"sip:bob@{HOST}:{uas.port}", "--no-ice",
                                     "--listen", f"{HOST}:0", *flags)
        else:
            args = flags
        c = Caller(*args, command=command)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()


def clean(c: Caller) -> None:
    """No traceback and no "Unhandled error in Deferred" on the CLI's output."""
    text = c.out + c.err
    assert "Traceback" not in text and "Unhandled error" not in text, c.log()


def answer(uas: SipPeer, inv: SipMessage, tag: str, status: int = 200,
           headers: list[tuple[str, str]] | None = None) -> bytes:
    """Send a 2xx with our Contact and an SDP answer; returns its bytes (to retransmit)."""
    hdrs = [("Contact", uas.contact())] + (headers or [])
    return uas.reply(inv, status, to_tag=tag, headers=hdrs,
                     body=sdp(port=uas.port + 2) if status < 300 else b"")


def check_2xx_ack(ack: SipMessage, inv: SipMessage, tag: str, uas: SipPeer) -> None:
    """RFC 3261 §13.2.2.4: the ACK to a 2xx is built like an in-dialog request (§12.2.1.1):
    Request-URI the remote target (the 2xx's Contact), To with the remote tag, "The CSeq
    header field's sequence number MUST be the same as the INVITE being acknowledged, but
    the CSeq method MUST be ACK"."""
    assert ack.uri == uri_of(uas.contact()), ack.text()
    assert ack.call_id == inv.call_id and ack.from_tag == inv.from_tag, ack.text()
    assert ack.to_tag == tag, ack.text()
    assert ack.cseq == (inv.cseq[0], "ACK"), ack.text()


# ----------------------------------------------------------------------------- basic call


def test_basic_call_invite_ack_bye(uas: SipPeer, start_call: StartCall) -> None:
    """RFC 3261 §8.1.1: the INVITE has To, From (with a tag, §8.1.1.3), CSeq, Call-ID,
    Max-Forwards, Via (branch starting z9hG4bK, §8.1.1.7) and exactly one Contact SIP URI
    (§8.1.1.8). §13.2.2.4 the ACK (see check_2xx_ack). §15.1.1 / §12.2.1.1: the BYE goes to
    the remote target, with the dialog's tags and Call-ID and a CSeq one higher than the
    INVITE's. The 200 to the BYE ends the call: exit 0."""
    c = start_call("--duration", "0.5", "--timeout", "10")
    inv = uas.request_in("INVITE", timeout=10)
    for h in ("to", "from", "cseq", "call-id", "max-forwards", "via"):
        assert inv.has(h), f"INVITE without {h}:\n{inv.text()}"
    assert inv.from_tag and not inv.to_tag, inv.text()
    assert (inv.branch or "").startswith("z9hG4bK"), inv.text()
    assert len(inv.all("contact")) == 1 and uri_of(inv["contact"]).startswith("sip:")
    assert inv.cseq[1] == "INVITE"
    tag = new_tag()
    answer(uas, inv, tag)
    ack = uas.request_in("ACK")
    check_2xx_ack(ack, inv, tag, uas)
    bye = uas.request_in("BYE", timeout=10)
    assert bye.uri == uri_of(uas.contact()), bye.text()
    assert bye.call_id == inv.call_id and bye.from_tag == inv.from_tag, bye.text()
    assert bye.to_tag == tag, bye.text()
    assert bye.cseq == (inv.cseq[0] + 1, "BYE"), bye.text()
    uas.reply(bye, 200)
    assert c.wait(20) == 0, c.log()
    clean(c)


# ----------------------------------------------------------------------------- PRACK


def test_bye_after_prack_takes_the_next_cseq(uas: SipPeer, start_call: StartCall) -> None:
    """RFC 3262 §3: the UAS sends the 180 reliably (Require: 100rel, RSeq); §4 / §7.2: the UAC
    PRACKs it in the early dialog with "RAck: <RSeq> <CSeq number> <method>" of the
    response. RFC 3261 §12.2.1.1: for each new request in the dialog "the local sequence
    number MUST be incremented by one": PRACK = INVITE + 1, and the BYE after it = PRACK + 1
    (the ACK keeps the INVITE's number, §13.2.2.4)."""
    c = start_call("--duration", "0.5", "--timeout", "10")
    inv = uas.request_in("INVITE", timeout=10)
    assert "100rel" in inv.tokens("supported") | inv.tokens("require"), \
        f"INVITE does not offer 100rel:\n{inv.text()}"
    tag = new_tag()
    uas.reply(inv, 180, to_tag=tag, headers=[("Require", "100rel"), ("RSeq", "1"),
                                             ("Contact", uas.contact())])
    prack = uas.request_in("PRACK")
    assert prack["rack"].split() == ["1", str(inv.cseq[0]), "INVITE"], prack.text()
    assert prack.cseq == (inv.cseq[0] + 1, "PRACK"), prack.text()
    assert prack.to_tag == tag and prack.call_id == inv.call_id, prack.text()
    assert prack.uri == uri_of(uas.contact()), prack.text()
    uas.reply(prack, 200)
    answer(uas, inv, tag)
    ack = uas.request_in("ACK")
    check_2xx_ack(ack, inv, tag, uas)
    bye = uas.request_in("BYE", timeout=10)
    uas.reply(bye, 200)
    assert bye.cseq == (prack.cseq[0] + 1, "BYE"), \
        f"BYE CSeq {bye.cseq} after PRACK CSeq {prack.cseq}"
    assert c.wait(20) == 0, c.log()
    clean(c)


# ----------------------------------------------------------------------------- 2xx retransmissions


def test_each_retransmitted_2xx_to_invite_is_acked(uas: SipPeer,
                                                   start_call: StartCall) -> None:
    """RFC 3261 §13.2.2.4: "The UAC core MUST generate an ACK request for each 2xx received
    from the transaction layer." (§13.3.1.4: the UAS retransmits its 2xx until it gets an
    ACK, e.g. when the first ACK was lost.) The 200 sent again twice, 0.5 s apart: an ACK
    for each, same CSeq number as the INVITE."""
    c = start_call("--duration", "3", "--timeout", "10")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    ok = answer(uas, inv, tag)
    check_2xx_ack(uas.request_in("ACK"), inv, tag, uas)
    for _ in (1, 2):
        time.sleep(0.5)
        uas.send(ok, inv.source)
        ack = uas.request_in("ACK", timeout=2)
        check_2xx_ack(ack, inv, tag, uas)
    bye = uas.request_in("BYE", timeout=10)
    uas.reply(bye, 200)
    assert c.wait(20) == 0, c.log()
    clean(c)


def test_each_retransmitted_2xx_to_reinvite_is_acked(uas: SipPeer, start_call: StartCall,
                                                     tmp_path: Path) -> None:
    """RFC 3261 §13.2.2.4 (quoted above) holds for a re-INVITE too (§14.1: "the UAC ...
    same as for the initial INVITE"). The re-INVITE comes from a `siplink test` scenario
    step (``action = "reinvite"``): CSeq one higher than the INVITE's (§12.2.1.1), in the
    dialog (our tag, Request-URI our Contact); its 200 sent again twice: an ACK for each
    with the re-INVITE's CSeq number."""
    scenario = tmp_path / "reinvite.toml"
    scenario.write_text(
        '[scenario]\nname = "wire-reinvite"\ntimeout_s = 20.0\n\n'
        f'[[calls]]\nname = "reinvite"\nto = "sip:bob@{HOST}:{uas.port}"\nice = false\n'
        'duration_s = 3.0\nsteps = [ { at_s = 0.5, action = "reinvite" } ]\n'
        '[calls.expect]\nstatus = 200\n')
    c = start_call(str(scenario), "--no-progress", command="test")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    answer(uas, inv, tag)
    check_2xx_ack(uas.request_in("ACK"), inv, tag, uas)
    reinv = uas.recv(lambda m: not m.is_response and m.method == "INVITE", 10, "re-INVITE")
    assert reinv.call_id == inv.call_id and reinv.to_tag == tag, reinv.text()
    assert reinv.uri == uri_of(uas.contact()), reinv.text()
    assert reinv.cseq == (inv.cseq[0] + 1, "INVITE"), reinv.text()
    ok = answer(uas, reinv, tag)
    check_2xx_ack(uas.request_in("ACK"), reinv, tag, uas)
    for _ in (1, 2):
        time.sleep(0.5)
        uas.send(ok, reinv.source)
        ack = uas.request_in("ACK", timeout=2)
        check_2xx_ack(ack, reinv, tag, uas)
    bye = uas.request_in("BYE", timeout=10)
    uas.reply(bye, 200)
    assert c.wait(30) == 0, c.log()
    clean(c)


def _sdp_field(body: str, prefix: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith(prefix)]


def test_hold_and_resume_reinvites_offer_sendonly_then_sendrecv(
        uas: SipPeer, start_call: StartCall, tmp_path: Path) -> None:
    """RFC 3264 §8.4: "If the stream to be placed on hold was previously a sendrecv media
    stream, it is placed on hold by marking it sendonly"; resuming offers sendrecv again.
    §8: each new offer keeps the o= session id and its version "MUST be ... one higher
    than the previous" one. The hold and resume re-INVITEs come from ``siplink test``
    steps (``action = "hold"``/``"resume"``, i.e. ``Call.hold()``/``Call.resume()``), in
    the dialog with rising CSeqs; while held we keep answering recvonly (§8.4: the answer
    to sendonly is recvonly)."""
    scenario = tmp_path / "hold.toml"
    scenario.write_text(
        '[scenario]\nname = "wire-hold"\ntimeout_s = 20.0\n\n'
        f'[[calls]]\nname = "hold"\nto = "sip:bob@{HOST}:{uas.port}"\nice = false\n'
        'duration_s = 3.0\nsteps = [ { at_s = 0.5, action = "hold" }, '
        '{ at_s = 1.5, action = "resume" } ]\n[calls.expect]\nstatus = 200\n')
    c = start_call(str(scenario), "--no-progress", command="test")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    answer(uas, inv, tag)
    check_2xx_ack(uas.request_in("ACK"), inv, tag, uas)
    first = inv.body.decode()
    assert _sdp_field(first, "a=sendrecv"), first
    origins = [_sdp_field(first, "o=")[0].split()]
    expected_direction = {"hold": "a=sendonly", "resume": "a=sendrecv"}
    cseq = inv.cseq[0]
    for step, our_direction in (("hold", "recvonly"), ("resume", "sendrecv")):
        reinv = uas.recv(lambda m: not m.is_response and m.method == "INVITE", 10,
                         f"{step} re-INVITE")
        assert reinv.call_id == inv.call_id and reinv.to_tag == tag, reinv.text()
        assert reinv.cseq[0] > cseq, reinv.text()
        cseq = reinv.cseq[0]
        body = reinv.body.decode()
        direction = [a for a in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")
                     if _sdp_field(body, a)]
        assert direction == [expected_direction[step]], f"{step}: {body}"
        o = _sdp_field(body, "o=")[0].split()
        assert o[1] == origins[-1][1] and int(o[2]) == int(origins[-1][2]) + 1, \
            f"{step}: o= {o} after {origins[-1]}"
        origins.append(o)
        uas.reply(reinv, 200, to_tag=tag, headers=[("Contact", uas.contact())],
                  body=sdp(port=uas.port + 2, version=len(origins), direction=our_direction))
        check_2xx_ack(uas.request_in("ACK"), reinv, tag, uas)
    bye = uas.request_in("BYE", timeout=10)
    uas.reply(bye, 200)
    assert c.wait(30) == 0, c.log()     # exit 0: both steps got their expected 200
    clean(c)


# ----------------------------------------------------------------------------- giving up


def test_timeout_while_ringing_sends_cancel_and_acks_487(uas: SipPeer,
                                                         start_call: StartCall) -> None:
    """RFC 3261 §9.1: a UAC giving up on a ringing INVITE CANCELs it. "The Request-URI,
    Call-ID, To, the numeric part of CSeq, and From header fields in the CANCEL request MUST
    be identical to those in the request being cancelled, including tags", with "a single
    Via header field value matching the top Via value in the request being cancelled", and
    CSeq method CANCEL. The UAS then sends 200 to the CANCEL and 487 to the INVITE (§9.2);
    §17.1.1.3: the 487 is ACKed with the INVITE's branch (single Via equal to its top Via),
    the To of the 487 and the INVITE's CSeq number. README: exit code 3 (no answer)."""
    c = start_call("--timeout", "2", "--duration", "0")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    uas.reply(inv, 100)
    uas.reply(inv, 180, to_tag=tag, headers=[("Contact", uas.contact())])
    cancel = uas.request_in("CANCEL", timeout=8)
    assert cancel.uri == inv.uri and cancel.call_id == inv.call_id, cancel.text()
    assert cancel["from"] == inv["from"] and cancel["to"] == inv["to"], cancel.text()
    assert cancel.cseq == (inv.cseq[0], "CANCEL"), cancel.text()
    assert cancel.all("via") == inv.all("via")[:1], cancel.text()
    uas.reply(cancel, 200, to_tag=tag)
    uas.reply(inv, 487, to_tag=tag)
    ack = uas.request_in("ACK", timeout=5)
    assert ack.all("via") == inv.all("via")[:1], ack.text()
    assert ack.uri == inv.uri and ack.to_tag == tag, ack.text()
    assert ack.cseq == (inv.cseq[0], "ACK"), ack.text()
    assert c.wait(30) == 3, c.log()
    clean(c)


@pytest.mark.parametrize("behaviour", ["silent", "trying-only"])
def test_callee_never_answers_exit_3(uas: SipPeer, start_call: StartCall,
                                     behaviour: str) -> None:
    """README: exit code 3 is "timeout / no answer". A UAS that never answers (silent) or
    sends only 100 Trying: `siplink call --timeout 2.5` exits 3. Silent: the INVITE is
    retransmitted over UDP (§17.1.1.2 timer A: after T1 = 0.5 s, then 1 s), identical, and
    §9.1 "If no provisional response has been received, the CANCEL request MUST NOT be
    sent". Trying-only: a provisional response (the 100) has been received, so giving up
    means CANCELling the INVITE (§9.1, as for the ringing case), with the INVITE's branch
    and CSeq number; the UAS answers nothing more, and siplink still exits 3.
    (Timer B = 64*T1 = 32 s: siplink has no way to shorten T1 from the command line, so the
    transaction-timeout variant is not tested here; see the report.)"""
    c = start_call("--timeout", "2.5", "--duration", "0")
    inv = uas.request_in("INVITE", timeout=10)
    if behaviour == "trying-only":
        uas.reply(inv, 100)
    seen = uas.collect(lambda m: not m.is_response, 4.0)    # the first 4 s of requests
    rc = c.wait(45)
    assert rc == 3, c.log()
    cancels = [m for m in seen if m.method == "CANCEL"]
    if behaviour == "silent":
        assert not cancels, "CANCEL sent without any provisional response"
        again = [m for m in seen if m.method == "INVITE"]
        assert len(again) >= 2 and all(m.raw == inv.raw for m in again), \
            f"{len(again)} INVITE retransmissions in 2.5 s"
    else:
        assert cancels, "gave up after a 100 Trying without CANCELling the INVITE"
        assert cancels[0].branch == inv.branch, cancels[0].text()
        assert cancels[0].cseq == (inv.cseq[0], "CANCEL"), cancels[0].text()
    clean(c)


def test_2xx_with_unresolvable_contact_is_a_clear_error(uas: SipPeer,
                                                        start_call: StartCall) -> None:
    """RFC 3261 §12.1.2: the remote target is the 2xx's Contact, where the ACK (§13.2.2.4)
    and every later request go; if its host cannot be resolved (RFC 3263 §4: the request
    fails) the UA cannot use the dialog. The CLI must say so clearly: not a traceback, not
    "no final response" (a 200 did arrive), exit 1 ("the operation failed"). The host is
    under .invalid (RFC 6761 §6.4), which never resolves."""
    c = start_call("--duration", "0.5", "--timeout", "5")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    uas.send(response(inv, 200, to_tag=tag,
                      headers=[("Contact", "<sip:x@nonexistent.invalid>")],
                      body=sdp(port=uas.port + 2)), inv.source)
    rc = c.wait(40)
    text = c.out + c.err
    assert "no final response" not in text, c.log()
    assert "Traceback" not in text and "Unhandled error" not in text, c.log()
    assert "nonexistent.invalid" in text, f"the error does not name the host:\n{c.log()}"
    assert rc == 1, c.log()


def test_busy_486_is_acked_and_exit_1(uas: SipPeer, start_call: StartCall) -> None:
    """RFC 3261 §17.1.1.3: the ACK for a non-2xx final response has "a single Via header
    field, and this MUST be equal to the top Via header field of the original request", the
    INVITE's Request-URI, Call-ID, From and CSeq number, "The To header field in the ACK MUST
    equal the To header field in the response being acknowledged", CSeq method ACK. The
    INVITE got an error response: README exit 1 ("an error response")."""
    c = start_call("--timeout", "10", "--duration", "0")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    busy = response(inv, 486, to_tag=tag)
    uas.send(busy, inv.source)
    ack = uas.request_in("ACK", timeout=5)
    assert ack.all("via") == inv.all("via")[:1], ack.text()
    assert ack.uri == inv.uri and ack.call_id == inv.call_id, ack.text()
    assert ack["from"] == inv["from"] and ack.to_tag == tag, ack.text()
    assert ack.cseq == (inv.cseq[0], "ACK"), ack.text()
    assert c.wait(20) == 1, c.log()
    assert "486" in c.out, c.log()
    clean(c)


def test_record_route_becomes_the_route_set(uas: SipPeer, start_call: StartCall) -> None:
    """RFC 3261 §12.1.2: "The route set MUST be set to the list of URIs in the Record-Route
    header field from the response, taken in reverse order and preserving all URI
    parameters"; §12.2.1.1: with a loose router (;lr) first, the Request-URI is the remote
    target and the route set goes into Route header fields, in order; the request goes to
    the first Route (§8.1.2). Both Record-Route entries point at the test's socket, so the
    ACK and BYE must arrive here with Route: proxy2, proxy1."""
    c = start_call("--duration", "0.5", "--timeout", "10")
    inv = uas.request_in("INVITE", timeout=10)
    tag = new_tag()
    p1, p2 = f"<sip:proxy1@{HOST}:{uas.port};lr>", f"<sip:proxy2@{HOST}:{uas.port};lr>"
    answer(uas, inv, tag, headers=[("Record-Route", f"{p1}, {p2}")])
    ack = uas.request_in("ACK")
    assert ack.all("route") == [p2, p1], ack.text()
    check_2xx_ack(ack, inv, tag, uas)
    bye = uas.request_in("BYE", timeout=10)
    uas.reply(bye, 200)
    assert bye.all("route") == [p2, p1], bye.text()
    assert bye.uri == uri_of(uas.contact()), bye.text()
    assert c.wait(20) == 0, c.log()
    clean(c)
