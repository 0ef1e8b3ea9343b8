"""The trace is complete at its sources: every SIP record names both ends (UDP and TCP), the
ACK of a non-2xx is summarised as ACK, and an ICE relay call's pcap shows the TURN exchange
and every copy of a retransmitted check."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from ice.trace import Trace, TraceRecord
from siplink.useragent import Call, CallFailed, UserAgent


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


def _sip(trace: Trace) -> list[TraceRecord]:
    return [r for r in trace if r.protocol == "sip" and r.direction in ("in", "out")]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_every_sip_record_names_both_ends(transport: str) -> None:
    ta, tb = Trace(), Trace()
    a = UserAgent(reactor, user="alice", transport=transport, trace=ta)
    b = UserAgent(reactor, user="bob", transport=transport, trace=tb)
    a.listen()
    b.listen()
    try:
        incoming: list[Call] = []

        async def handler(call: Call) -> None:
            incoming.append(call)
            call.answer()

        b.on_incoming_call = handler
        tp = "" if transport == "udp" else f";transport={transport}"
        call = a.call(f"sip:bob@127.0.0.1:{b.port}{tp}")
        assert await call.answered is call
        await call.hangup()
        await sleep(0.1)
    finally:
        a.close()
        b.close()
    b_addr = ("127.0.0.1", b.port)
    for who, trace, me in (("alice", ta, a), ("bob", tb, b)):
        recs = _sip(trace)
        methods = {r.summary.split()[0] for r in recs}
        assert {"INVITE", "ACK", "BYE"} <= methods, (who, methods)
        for r in recs:
            assert r.local is not None and r.remote is not None, (who, r.summary)
            assert r.raw, (who, r.summary)
            assert r.local[0] == "127.0.0.1" and r.remote[0] == "127.0.0.1"
        if transport == "udp":
            assert all(r.local == ("127.0.0.1", me.port) for r in recs)
    # the two sides agree on the ends of each message: alice's (local, remote) of her INVITE
    # is bob's (remote, local) of the INVITE he received
    inv_a = next(r for r in _sip(ta) if r.direction == "out" and r.summary.startswith("INVITE"))
    inv_b = next(r for r in _sip(tb) if r.direction == "in" and r.summary.startswith("INVITE"))
    assert (inv_a.local, inv_a.remote) == (inv_b.remote, inv_b.local)
    assert inv_a.remote == b_addr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_ack_of_a_non_2xx_is_summarised_as_ack(transport: str) -> None:
    ta = Trace()
    a = UserAgent(reactor, user="alice", transport=transport, trace=ta)
    b = UserAgent(reactor, user="bob", transport=transport)
    a.listen()
    b.listen()
    try:
        async def handler(call: Call) -> None:
            call.reject(486)

        b.on_incoming_call = handler
        tp = "" if transport == "udp" else f";transport={transport}"
        call = a.call(f"sip:bob@127.0.0.1:{b.port}{tp}")
        with pytest.raises(CallFailed):
            await call.answered
        await sleep(0.05)
    finally:
        a.close()
        b.close()
    out = [r for r in _sip(ta) if r.direction == "out"]
    assert [r.summary.split()[0] for r in out] == ["INVITE", "ACK"]
    ack = out[1]
    assert ack.detail.startswith("ACK ") and ack.local is not None
    from siplink.ladder import render_text
    assert "ACK sip:bob" in render_text(ta)
