"""RFC 8489 §6.2.1 retransmission schedule, driven by twisted.internet.task.Clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from ice.stun import Attr, Class, Message, Method, decode, encode, new_transaction_id
from ice.stun_transaction import StunClientTransaction, TransactionState

SERVER = ("127.0.0.1", 3478)


def _request() -> tuple[bytes, bytes]:
    tid = new_transaction_id()
    return encode(Message(Method.BINDING, Class.REQUEST, tid)), tid


class _Driver:
    """What a Twisted adapter does: flush datagrams, keep one callLater at get_timer()."""

    def __init__(self, clock: Clock, txn: StunClientTransaction) -> None:
        self.clock = clock
        self.txn = txn
        self.sent: list[float] = []
        self.timed_out_at: float | None = None
        self.call = None
        self.pump()

    def pump(self) -> None:
        now = self.clock.seconds()
        self.txn.handle_timer(now)
        for _data, _addr in self.txn.datagrams_to_send(now):
            self.sent.append(now)
        if self.txn.timed_out and self.timed_out_at is None:
            self.timed_out_at = now
        if self.call is not None and self.call.active():
            self.call.cancel()
        t = self.txn.get_timer()
        if t is not None:
            self.call = self.clock.callLater(max(0.0, t - now), self.pump)


def test_default_schedule_and_timeout():
    clock = Clock()
    data, tid = _request()
    drv = _Driver(clock, StunClientTransaction(data, tid, SERVER, clock.seconds()))
    for _ in range(200):
        clock.advance(0.25)
    assert drv.sent == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert drv.timed_out_at == 39.5
    assert drv.txn.state is TransactionState.TIMED_OUT
    assert drv.txn.get_timer() is None


def test_schedule_with_custom_rto_rc_rm():
    clock = Clock()
    data, tid = _request()
    clock.advance(10)
    drv = _Driver(clock, StunClientTransaction(data, tid, SERVER, clock.seconds(),
                                               rto=0.1, rc=3, rm=4))
    clock.pump([0.05] * 40)
    assert [round(t - 10, 6) for t in drv.sent] == [0, 0.1, 0.3]
    assert drv.timed_out_at is not None and round(drv.timed_out_at - 10, 6) == 0.7


def test_no_early_send():
    data, tid = _request()
    txn = StunClientTransaction(data, tid, SERVER, 0.0)
    assert txn.datagrams_to_send(0.0) == [(data, SERVER)]
    assert txn.datagrams_to_send(0.2) == []
    assert txn.get_timer() == 0.5
    assert txn.datagrams_to_send(0.5) == [(data, SERVER)]
    assert txn.get_timer() == 1.5


@pytest.mark.parametrize("cls,state", [(Class.SUCCESS, TransactionState.SUCCEEDED),
                                       (Class.ERROR, TransactionState.FAILED)])
def test_response_ends_transaction(cls, state):
    clock = Clock()
    data, tid = _request()
    drv = _Driver(clock, StunClientTransaction(data, tid, SERVER, 0.0))
    clock.advance(0.5)
    attrs = {Attr.XOR_MAPPED_ADDRESS: ("192.0.2.7", 4000)} if cls == Class.SUCCESS else {
        Attr.ERROR_CODE: (400, "Bad Request")}
    resp = decode(encode(Message(Method.BINDING, cls, tid, attrs)))
    drv.txn.receive_response(resp, clock.seconds())
    drv.pump()
    clock.pump([1.0] * 60)
    assert drv.sent == [0, 0.5]
    assert drv.txn.state is state
    assert drv.txn.result == resp
    assert not drv.txn.timed_out


def test_other_transaction_id_and_indication_ignored():
    data, tid = _request()
    txn = StunClientTransaction(data, tid, SERVER, 0.0)
    txn.receive_response(Message(Method.BINDING, Class.SUCCESS, new_transaction_id()), 0.1)
    txn.receive_response(Message(Method.BINDING, Class.INDICATION, tid), 0.1)
    assert txn.state is TransactionState.WAITING and txn.result is None


def test_cancel():
    data, tid = _request()
    txn = StunClientTransaction(data, tid, SERVER, 0.0)
    txn.datagrams_to_send(0.0)
    txn.cancel()
    assert txn.done and txn.get_timer() is None and txn.datagrams_to_send(5.0) == []


def test_trace_records_sends_and_outcome():
    from ice.trace import Trace

    trace = Trace()
    data, tid = _request()
    txn = StunClientTransaction(data, tid, SERVER, 0.0, rc=2, rm=2, trace=trace)
    txn.datagrams_to_send(0.0)
    txn.datagrams_to_send(0.5)
    txn.handle_timer(1.5)
    assert [r.direction for r in trace] == ["out", "out", "event"]
    assert trace.records[1].summary == f"STUN retransmission 1 {tid.hex()}"
    assert trace.records[0].raw == data and trace.records[0].remote == SERVER
    assert "timed out after 2 requests" in trace.records[2].summary
