"""RFC 3261 §17 transactions, sans-I/O: timers A-M, matching, merged requests, CANCEL.

Time is passed in directly (``now``), so every timer is checked to the millisecond.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from siplink.core.transaction import (
    T1,
    T2,
    T4,
    AckNotReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    State,
    Target,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    response_target,
)
from siplink.sip.message import Request, Response, make_request, make_response, parse_message

PEER = Target("udp", "127.0.0.1", 5099)
TCP_PEER = Target("tcp", "127.0.0.1", 5099)


def request(method: str = "INVITE", branch: str = "z9hG4bKabc", *, cseq: int = 1,
            to_tag: str | None = None, call_id: str = "c1", from_tag: str = "ft",
            via_host: str = "127.0.0.1", via_port: int = 5099, rport: bool = True,
            cseq_method: str | None = None) -> Request:
    to = "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    via = f"SIP/2.0/UDP {via_host}:{via_port};branch={branch}" + (";rport" if rport else "")
    return make_request(method, "sip:bob@127.0.0.1", [
        ("Via", via), ("Max-Forwards", "70"), ("From", f"<sip:alice@127.0.0.1>;tag={from_tag}"),
        ("To", to), ("Call-ID", call_id), ("CSeq", f"{cseq} {cseq_method or method}"),
        ("Contact", "<sip:alice@127.0.0.1:5099>"),
    ])


def wire(msg: Request | Response) -> Request | Response:
    """The message as the peer would receive it (serialized and parsed again)."""
    return parse_message(bytes(msg))


def events(layer: TransactionLayer) -> list[object]:
    out = []
    while (ev := layer.next_event()) is not None:
        out.append(ev)
    return out


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, bytes]]:
    """Fire every timer up to ``end``; returns (time, datagram) for everything sent."""
    sent: list[tuple[float, bytes]] = []
    while (t := layer.get_timer()) is not None and t <= end:
        layer.handle_timer(t)
        sent += [(t, d) for d, _ in layer.datagrams_to_send()]
    return sent


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


# ----------------------------------------------------------------------------- client INVITE


def test_timer_a_doubles_and_timer_b_times_out() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(), PEER, 100.0)
    assert len(layer.datagrams_to_send()) == 1
    sent = run_until(layer, 200.0)
    times = [round(t - 100.0, 6) for t, _ in sent]
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]          # A doubles: 0.5, 1, 2, 4, 8, 16
    evs = events(layer)
    timeout = [e for e in evs if isinstance(e, TransactionTimeout)]
    assert len(timeout) == 1 and timeout[0].timer == "B" and timeout[0].key == key
    assert layer.client_state(key) is State.TERMINATED
    assert len(layer) == 0 and layer.get_timer() is None


def test_provisional_stops_timer_a_and_b() -> None:
    layer = TransactionLayer()
    req = request()
    key = layer.send_request(req, PEER, 0.0)
    layer.datagrams_to_send()
    layer.receive_message(wire(make_response(req, 180, to_tag="tt")), PEER, 0.2)
    assert layer.client_state(key) is State.PROCEEDING
    assert run_until(layer, 100.0) == []
    assert not [e for e in events(layer) if isinstance(e, TransactionTimeout)]
    assert layer.client_state(key) is State.PROCEEDING   # a UA without timer C waits for the TU


def test_non_2xx_is_acked_and_timer_d_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    req = request()
    key = layer.send_request(req, PEER, 0.0)
    layer.datagrams_to_send()
    busy = wire(make_response(req, 486, to_tag="tt"))
    layer.receive_message(busy, PEER, 0.1)
    out = layer.datagrams_to_send()
    assert [first_line(d) for d, _ in out] == ["ACK sip:bob@127.0.0.1 SIP/2.0"]
    ack = parse_message(out[0][0])
    assert ack.via[0].branch == "z9hG4bKabc" and ack.to.tag == "tt" and ack.cseq.method == "ACK"
    finals = [e for e in events(layer) if isinstance(e, ResponseReceived)]
    assert [e.response.status for e in finals] == [486]
    layer.receive_message(busy, PEER, 5.0)                  # retransmitted 486
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["ACK sip:bob@127.0.0.1 SIP/2.0"]
    assert events(layer) == []                              # not passed to the TU again
    assert layer.get_timer() == pytest.approx(0.1 + 32.0)  # timer D
    run_until(layer, 40.0)
    assert layer.client_state(key) is State.TERMINATED


def test_2xx_goes_to_accepted_and_retransmissions_reach_the_tu() -> None:
    layer = TransactionLayer()
    req = request()
    key = layer.send_request(req, PEER, 0.0)
    ok = wire(make_response(req, 200, to_tag="tt"))
    layer.receive_message(ok, PEER, 0.1)
    layer.receive_message(ok, PEER, 0.6)
    oks = [e for e in events(layer) if isinstance(e, ResponseReceived)]
    assert len(oks) == 2 and all(e.key == key for e in oks)   # RFC 6026: TU re-ACKs
    assert layer.client_state(key) is State.ACCEPTED
    assert layer.get_timer() == pytest.approx(0.1 + 64 * T1)  # timer M
    run_until(layer, 100.0)
    assert layer.client_state(key) is State.TERMINATED
    layer.receive_message(ok, PEER, 101.0)                    # stray 2xx after M
    assert [type(e) for e in events(layer) if not isinstance(e, TransactionTerminated)] == [
        ResponseReceived]


def test_reliable_transport_has_no_retransmissions_and_zero_d() -> None:
    layer = TransactionLayer()
    req = request()
    key = layer.send_request(req, TCP_PEER, 0.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == pytest.approx(64 * T1)          # only B
    layer.receive_message(wire(make_response(req, 404, to_tag="x")), TCP_PEER, 1.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == pytest.approx(1.0)              # D = 0
    run_until(layer, 1.0)
    assert layer.client_state(key) is State.TERMINATED


# ----------------------------------------------------------------------------- client non-INVITE


def test_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS"), PEER, 0.0)
    layer.datagrams_to_send()
    times = [t for t, _ in run_until(layer, 64.0)]
    assert times[:5] == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5])   # 0.5,1,2,4,4,4...
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) == pytest.approx(T2)
    assert times[-1] < 32.0
    assert [e.timer for e in events(layer) if isinstance(e, TransactionTimeout)] == ["F"]


def test_timer_e_is_t2_after_a_provisional_and_k_after_final() -> None:
    layer = TransactionLayer()
    req = request("BYE", to_tag="tt")
    key = layer.send_request(req, PEER, 0.0)
    layer.datagrams_to_send()
    layer.handle_timer(0.5)
    layer.datagrams_to_send()                                   # E retransmission at 0.5
    layer.receive_message(wire(make_response(req, 100)), PEER, 0.7)
    sent = [t for t, _ in run_until(layer, 10.0)]
    assert sent[0] == pytest.approx(1.5)                        # the one already armed
    assert sent[1] - sent[0] == pytest.approx(T2)               # then T2 in Proceeding
    layer.receive_message(wire(make_response(req, 200)), PEER, 10.0)
    assert layer.client_state(key) is State.COMPLETED
    assert layer.get_timer() == pytest.approx(10.0 + T4)        # timer K
    run_until(layer, 20.0)
    assert layer.client_state(key) is State.TERMINATED


def test_response_matching_uses_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    inv = request()
    layer.send_request(inv, PEER, 0.0)
    cancel = request("CANCEL")                                  # same branch, other method
    ckey = layer.send_request(cancel, PEER, 0.1)
    layer.receive_message(wire(make_response(cancel, 200)), PEER, 0.2)
    evs = [e for e in events(layer) if isinstance(e, ResponseReceived)]
    assert [e.key for e in evs] == [ckey]
    other = wire(make_response(request(branch="z9hG4bKother"), 200, to_tag="t"))
    layer.receive_message(other, PEER, 0.3)                     # no such transaction: stray 2xx
    assert [e.key for e in events(layer) if isinstance(e, ResponseReceived)] == [None]


# ----------------------------------------------------------------------------- server INVITE


def test_server_invite_sends_100_and_repeats_last_provisional() -> None:
    layer = TransactionLayer()
    inv = request()
    layer.receive_message(wire(inv), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 100 Trying"]
    layer.send_response(ev.key, make_response(ev.request, 180, to_tag="tt"), 0.1)
    layer.datagrams_to_send()
    layer.receive_message(wire(inv), PEER, 0.5)                 # retransmitted INVITE
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 180 Ringing"]
    assert [e for e in events(layer) if isinstance(e, RequestReceived)] == []


def test_timer_g_caps_at_t2_and_timer_h_without_ack() -> None:
    layer = TransactionLayer()
    layer.receive_message(wire(request()), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    layer.datagrams_to_send()
    layer.send_response(ev.key, make_response(ev.request, 486, to_tag="tt"), 0.0)
    layer.datagrams_to_send()
    sent = run_until(layer, 100.0)
    times = [t for t, _ in sent]
    assert times[:5] == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5])
    assert all(first_line(d) == "SIP/2.0 486 Busy Here" for _, d in sent)
    assert [e.timer for e in events(layer) if isinstance(e, TransactionTimeout)] == ["H"]
    assert layer.server_state(ev.key) is State.TERMINATED


def test_ack_confirms_and_timer_i_terminates() -> None:
    layer = TransactionLayer()
    inv = request()
    layer.receive_message(wire(inv), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    layer.send_response(ev.key, make_response(ev.request, 603, to_tag="tt"), 0.0)
    layer.datagrams_to_send()
    ack = request("ACK", to_tag="tt", cseq_method="ACK")       # same branch as the INVITE
    layer.receive_message(wire(ack), PEER, 0.2)
    assert layer.server_state(ev.key) is State.CONFIRMED
    assert [e for e in events(layer) if isinstance(e, RequestReceived)] == []   # absorbed
    assert layer.get_timer() == pytest.approx(0.2 + T4)         # timer I
    assert run_until(layer, 10.0) == []                         # G stopped
    assert layer.server_state(ev.key) is State.TERMINATED


def test_uas_core_retransmits_2xx_until_ack() -> None:
    layer = TransactionLayer()
    layer.receive_message(wire(request()), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    ok = make_response(ev.request, 200, to_tag="tt")
    layer.send_response(ev.key, ok, 0.0)
    layer.send_2xx_reliably(ok, PEER, 0.0)
    layer.datagrams_to_send()
    sent = [t for t, d in run_until(layer, 8.0) if first_line(d) == "SIP/2.0 200 OK"]
    assert sent == pytest.approx([0.5, 1.5, 3.5, 7.5])
    assert layer.ack_pending(ok)
    ack = request("ACK", branch="z9hG4bKack", to_tag="tt", cseq_method="ACK")
    layer.receive_message(wire(ack), PEER, 8.0)
    acks = [e for e in events(layer) if isinstance(e, RequestReceived)]
    assert len(acks) == 1 and acks[0].key is None               # the ACK goes to the TU
    assert not layer.ack_pending(ok)
    assert [d for _, d in run_until(layer, 100.0) if first_line(d) == "SIP/2.0 200 OK"] == []


def test_2xx_without_ack_reports_ack_not_received() -> None:
    layer = TransactionLayer()
    layer.receive_message(wire(request()), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    ok = make_response(ev.request, 200, to_tag="tt")
    layer.send_response(ev.key, ok, 0.0)
    layer.send_2xx_reliably(ok, PEER, 0.0)
    sent = run_until(layer, 100.0)
    assert max(t for t, _ in sent) <= 64 * T1
    assert [type(e) for e in events(layer) if isinstance(e, AckNotReceived)] == [AckNotReceived]
    assert len(layer) == 0


# ----------------------------------------------------------------------------- server non-INVITE


def test_timer_j_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    opt = request("OPTIONS")
    layer.receive_message(wire(opt), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    assert layer.datagrams_to_send() == []                      # no 100 for non-INVITE
    layer.send_response(ev.key, make_response(ev.request, 200, to_tag="t"), 0.1)
    layer.datagrams_to_send()
    layer.receive_message(wire(opt), PEER, 3.0)
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 200 OK"]
    assert [e for e in events(layer) if isinstance(e, RequestReceived)] == []
    assert layer.get_timer() == pytest.approx(0.1 + 64 * T1)
    run_until(layer, 40.0)
    assert layer.server_state(ev.key) is State.TERMINATED and len(layer) == 0


def test_merged_request_gets_482() -> None:
    layer = TransactionLayer()
    layer.receive_message(wire(request(branch="z9hG4bK1")), PEER, 0.0)
    layer.datagrams_to_send()
    layer.receive_message(wire(request(branch="z9hG4bK2")), Target("udp", "127.0.0.2", 5099), 0.1)
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 482 Loop Detected"]
    assert len([e for e in events(layer) if isinstance(e, RequestReceived)]) == 1


def test_cancel_matches_invite_and_unknown_cancel_gets_481() -> None:
    layer = TransactionLayer()
    layer.receive_message(wire(request()), PEER, 0.0)
    (inv,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    layer.datagrams_to_send()
    layer.receive_message(wire(request("CANCEL")), PEER, 1.0)
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 200 OK"]
    (cancelled,) = [e for e in events(layer) if isinstance(e, CancelReceived)]
    assert cancelled.invite_key == inv.key and cancelled.pending
    layer.receive_message(wire(request("CANCEL", branch="z9hG4bKnone")), PEER, 1.0)
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == [
        "SIP/2.0 481 Call/Transaction Does Not Exist"]


def test_rfc2543_request_without_cookie_is_matched() -> None:
    layer = TransactionLayer()
    old = request("OPTIONS", branch="1234", rport=False)
    layer.receive_message(wire(old), PEER, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    layer.send_response(ev.key, make_response(ev.request, 200, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    layer.receive_message(wire(old), PEER, 1.0)                  # retransmission
    assert [first_line(d) for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 200 OK"]
    assert [e for e in events(layer) if isinstance(e, RequestReceived)] == []
    layer.receive_message(wire(request("OPTIONS", branch="1234", cseq=2, rport=False)), PEER, 1.0)
    assert len([e for e in events(layer) if isinstance(e, RequestReceived)]) == 1


# ----------------------------------------------------------------------------- §18 routing


def test_response_routing_rport_received_and_sent_by() -> None:
    layer = TransactionLayer()
    nat = Target("udp", "127.0.0.9", 40000)
    layer.receive_message(wire(request("OPTIONS", via_host="10.0.0.1", via_port=5060)), nat, 0.0)
    (ev,) = [e for e in events(layer) if isinstance(e, RequestReceived)]
    via = ev.request.via[0]
    assert via.received == "127.0.0.9" and via.rport == 40000
    layer.send_response(ev.key, make_response(ev.request, 200, to_tag="t"), 0.0)
    ((data, target),) = layer.datagrams_to_send()
    assert target == nat
    assert b"received=127.0.0.9" in data and b"rport=40000" in data
    no_rport = wire(request("OPTIONS", via_host="10.0.0.1", via_port=5070, rport=False))
    assert response_target(no_rport, nat) == Target("udp", "10.0.0.1", 5070)
    assert response_target(no_rport, TCP_PEER) == TCP_PEER      # reliable: same connection


# ----------------------------------------------------------------------------- bad input

CORPUS = Path(__file__).resolve().parent / "data" / "rfc4475"


def test_malformed_request_gets_400_with_the_codec_reason() -> None:
    layer = TransactionLayer()
    data = bytes(request("OPTIONS")).replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    layer.receive(data, PEER, 0.0)
    ((out, target),) = layer.datagrams_to_send()
    assert first_line(out).startswith("SIP/2.0 400 ") and len(first_line(out)) > len("SIP/2.0 400 ")
    assert target == PEER
    assert len(layer) == 0


def test_every_torture_message_is_answered_or_dropped_never_raises() -> None:
    files = sorted(CORPUS.glob("*.dat"))
    assert len(files) == 49
    answered = 0
    for f in files:
        layer = TransactionLayer()
        layer.receive(f.read_bytes(), PEER, 0.0)
        for data, _ in layer.datagrams_to_send():
            assert data.startswith(b"SIP/2.0 ")
            answered += 1
        events(layer)
        run_until(layer, 100.0)
        assert layer.get_timer() is None
    assert answered >= 20
    bad = (CORPUS / "badvers.dat").read_bytes()
    layer = TransactionLayer()
    layer.receive(bad, PEER, 0.0)
    assert [first_line(d)[:11] for d, _ in layer.datagrams_to_send()] == ["SIP/2.0 505"]


def test_overload_guard_counts_unanswered_work_not_lingering_transactions() -> None:
    """Issue 12 §5 / RFC 3261 §21.5.4: 503 (with Retry-After) only under real overload,
    before a transaction is built.  Requests the TU has not answered count against
    ``max_server_transactions``; answered ones that only linger for their timers (32 s over
    UDP, absorbing retransmissions) do not, up to ``max_lingering`` in all."""
    layer = TransactionLayer(max_server_transactions=3)
    layer.max_lingering = 8
    invites = []
    for i in range(3):                                   # three INVITEs, none answered
        layer.receive(bytes(request("INVITE", f"z9hG4bKi{i}", call_id=f"i{i}")), PEER, 0.0)
        invites += events(layer)
    layer.datagrams_to_send(0.0)
    layer.receive(bytes(request("OPTIONS", "z9hG4bKo0", call_id="o0")), PEER, 0.1)
    out = [parse_message(d) for d, _ in layer.datagrams_to_send(0.1)]
    assert [(m.status, m.headers.get("Retry-After")) for m in out] == [(503, "5")]
    assert events(layer) == []                           # refused before any transaction
    for ev in invites:                                   # the TU answers them (486)
        layer.send_response(ev.key, make_response(ev.request, 486, to_tag="t"), 0.5)
    # answered work lingers (timer J) but no longer blocks new requests
    for i in range(5):
        layer.receive(bytes(request("OPTIONS", f"z9hG4bKp{i}", call_id=f"p{i}")), PEER, 1.0)
        (ev,) = events(layer)
        assert isinstance(ev, RequestReceived) and ev.key is not None
        layer.send_response(ev.key, make_response(ev.request, 200), 1.0)
    assert len(layer) == 8
    layer.datagrams_to_send(1.0)
    # the lingering bound still holds: the ninth transaction gets 503
    layer.receive(bytes(request("OPTIONS", "z9hG4bKq", call_id="q")), PEER, 2.0)
    out = [parse_message(d) for d, _ in layer.datagrams_to_send(2.0)]
    assert [m.status for m in out] == [503]
    assert layer.refused_overload == 2
