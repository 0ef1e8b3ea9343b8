"""Reliable provisional responses (RFC 3262) between two agents, and the sans-I/O pieces."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from siplink.core.prack import RSeqTracker, parse_rack, parse_rseq
from siplink.core.transaction import (
    T1,
    T2,
    PrackNotReceived,
    RequestReceived,
    Target,
    TransactionLayer,
)
from siplink.sip.message import Request, SipParseError, make_request, make_response
from siplink.ua.useragent import Call, CallState, UserAgent


def test_rack_rseq_parsing_and_ordering() -> None:
    assert parse_rack("776656 1 INVITE") == (776656, 1, "INVITE")
    assert parse_rseq(" 42 ") == 42
    for bad in ("", "1 INVITE", "x 1 INVITE"):
        with pytest.raises(SipParseError):
            parse_rack(bad)
    with pytest.raises(SipParseError):
        parse_rseq("0")
    t = RSeqTracker()
    assert t.accept(10) and not t.accept(10) and not t.accept(12) and t.accept(11)


def test_reliable_provisional_retransmits_until_prack_then_gives_up() -> None:
    layer = TransactionLayer()
    peer = Target("udp", "127.0.0.1", 5099)
    inv = make_request("INVITE", "sip:bob@127.0.0.1", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKp1"), ("From", "<sip:a@h>;tag=a"),
        ("To", "<sip:b@h>"), ("Call-ID", "p1"), ("CSeq", "1 INVITE"), ("Supported", "100rel")])
    from siplink.sip.message import parse_message
    layer.receive_message(parse_message(bytes(inv)), peer, 0.0)
    ev = layer.next_event()
    assert isinstance(ev, RequestReceived) and ev.key is not None
    req: Any = ev.request
    ringing = make_response(req, 180, to_tag="b", headers=[("Require", "100rel"), ("RSeq", "7")])
    layer.send_1xx_reliably(ev.key, ringing, 7, 0.0)
    layer.datagrams_to_send()
    times = []
    while (t := layer.get_timer()) is not None and t < 40:
        layer.handle_timer(t)
        times += [t for d, _ in layer.datagrams_to_send() if d.startswith(b"SIP/2.0 180")]
    assert times[:5] == pytest.approx([T1, 3 * T1, 7 * T1, 15 * T1, 15 * T1 + T2])
    assert max(times) <= 64 * T1
    evs = []
    while (e := layer.next_event()) is not None:
        evs.append(e)
    assert any(isinstance(e, PrackNotReceived) for e in evs)
    assert not layer.prack_received("p1", 7)       # already given up


@pytest_twisted.ensureDeferred
async def test_100rel_ringing_is_pracked_and_call_answers() -> None:
    a = UserAgent(reactor, user="alice")
    b = UserAgent(reactor, user="bob")
    a.listen()
    b.listen()
    seen: list[Request] = []
    b.on_request = seen.append
    incoming: list[Call] = []

    async def handler(call: Call) -> None:
        incoming.append(call)
        call.ring()
        await task.deferLater(reactor, 0.1, lambda: None)
        call.answer()

    b.on_incoming_call = handler
    try:
        call = a.call(f"sip:bob@127.0.0.1:{b.port}")
        states: list[CallState] = []
        call.subscribe(lambda ev: states.append(ev.state))
        await call.answered
        assert incoming[0].rel100
        pracks = [r for r in seen if r.method == "PRACK"]
        assert len(pracks) == 1
        rseq = incoming[0].session.rseq
        assert pracks[0].headers.get("RAck") == f"{rseq} 1 INVITE"
        assert not b.layer.prack_received(call.call_id, rseq)     # nothing left to stop
        assert states == [CallState.RINGING, CallState.CONFIRMED]
        await call.hangup()
        await task.deferLater(reactor, 0.05, lambda: None)
        assert incoming[0].cause == "remote-bye"
    finally:
        a.close()
        b.close()
