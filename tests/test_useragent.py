"""UserAgent and Call API between two agents on loopback: every call flow, bad input, leaks."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from siplink.ua.useragent import (
    Call,
    CallEvent,
    CallState,
    EndCause,
    MediaRejected,
    SipError,
    StaticMedia,
    UserAgent,
)


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def agents() -> Any:
    a = UserAgent(reactor, user="alice")
    b = UserAgent(reactor, user="bob")
    a.listen()
    b.listen()
    yield a, b
    a.close()
    b.close()


def no_leaks(*uas: UserAgent) -> None:
    """Every transaction ends once its timers have run (fired here in virtual time)."""
    for ua in uas:
        ua.layer.handle_timer(ua.now() + 100.0)
        ua.layer.datagrams_to_send()
        while ua.layer.next_event() is not None:
            pass
        assert len(ua.layer) == 0, f"{ua.user} leaked transactions"
        leaked = {k: n for k, n in ua.state_sizes().items() if n}
        assert not leaked, f"{ua.user} keeps per-call state: {leaked}"


def bob(b: UserAgent) -> str:
    return f"sip:bob@127.0.0.1:{b.port}"


@pytest_twisted.ensureDeferred
async def test_ring_answer_and_bye_from_the_callee(agents: Any) -> None:
    a, b = agents
    incoming: list[Call] = []

    async def handler(call: Call) -> None:
        incoming.append(call)
        call.ring()
        await sleep(0.05)
        call.answer()

    b.on_incoming_call = handler
    call = a.call(bob(b))
    states: list[CallState] = []
    call.subscribe(lambda ev: states.append(ev.state))
    assert await call.answered is call
    assert states == [CallState.RINGING, CallState.CONFIRMED]
    assert call.dialog is not None and incoming[0].dialog is not None
    assert call.dialog.id == (incoming[0].dialog.id[0], incoming[0].dialog.id[2],
                              incoming[0].dialog.id[1])
    assert isinstance(incoming[0].media, StaticMedia) and incoming[0].media.remote
    await incoming[0].hangup()
    assert await call.ended == "remote-bye"
    assert incoming[0].cause == "local-bye"
    await sleep(0.05)
    no_leaks(a, b)


@pytest_twisted.ensureDeferred
async def test_reject_redirect_and_media_rejection(agents: Any) -> None:
    a, b = agents
    b.on_incoming_call = lambda call: call.reject(486)
    call = a.call(bob(b))
    with pytest.raises(SipError) as e:
        await call.answered
    assert e.value.status == 486 and call.cause == "rejected"

    # a 302 is followed (RFC 3261 §8.1.3.4): carol's 486 is the outcome, with the chain
    carol = bob(b).replace("sip:bob@", "sip:carol@")
    b.on_incoming_call = lambda call: (call.redirect(carol) if "bob@" in str(call.invite.uri)
                                       else call.reject(486))
    call = a.call(bob(b))
    with pytest.raises(SipError) as e:
        await call.answered
    assert e.value.status == 486 and call.redirects == [(302, carol)]

    class Picky(StaticMedia):
        async def make_answer(self, offer: bytes) -> bytes:
            raise MediaRejected()

    b.media_factory = Picky
    b.on_incoming_call = lambda call: call.answer()
    call = a.call(bob(b))
    with pytest.raises(SipError) as e:
        await call.answered
    assert e.value.status == 488
    await sleep(0.05)
    no_leaks(a, b)


@pytest_twisted.ensureDeferred
async def test_cancel_gets_487(agents: Any) -> None:
    a, b = agents
    ringing: list[Call] = []
    b.on_incoming_call = lambda call: (ringing.append(call), call.ring())
    call = a.call(bob(b))
    rung: defer.Deferred[None] = defer.Deferred()
    call.subscribe(lambda ev: rung.callback(None) if ev.state is CallState.RINGING else None)
    await rung
    await call.hangup()
    assert call.cause == "cancelled" and call.status == 487
    assert ringing[0].state is CallState.ENDED and ringing[0].cause == "cancelled"
    with pytest.raises(SipError):
        await call.answered
    await sleep(0.05)
    no_leaks(a, b)


@pytest_twisted.ensureDeferred
async def test_in_dialog_requests_reinvite_and_glare(agents: Any) -> None:
    a, b = agents
    incoming: list[Call] = []
    b.on_incoming_call = lambda call: (incoming.append(call), call.answer())
    call = a.call(bob(b))
    await call.answered
    assert (await call.info(b"Signal=5\r\nDuration=160\r\n")).status == 200
    assert (await call.update()).status == 200
    assert (await call.options()).status == 200
    resp = await call.reinvite()
    assert resp.status == 200 and resp.body.startswith(b"v=0")
    # glare: both sides re-INVITE at once, each answers the other 491 (RFC 3261 §14.1)
    results = await defer.DeferredList([call.reinvite(), incoming[0].reinvite()],
                                       consumeErrors=True)
    failures = [r for ok, r in results if not ok]
    assert failures and all(f.check(SipError) and f.value.status == 491 for f in failures)
    await sleep(0.05)
    assert (await call.reinvite()).status == 200                # retry after glare works
    await call.hangup()
    await sleep(0.05)
    assert incoming[0].cause == "remote-bye"
    no_leaks(a, b)


@pytest_twisted.ensureDeferred
async def test_out_of_dialog_answers(agents: Any) -> None:
    a, b = agents
    target = f"sip:127.0.0.1:{b.port}"
    opt = await a.request("OPTIONS", target)
    assert opt.status == 200 and "INVITE" in (opt.headers.get("Allow") or "")
    assert (await a.request("FROBNICATE", target)).status == 501
    assert (await a.request("REGISTER", target)).status == 405
    assert (await a.request("BYE", target)).status == 481
    b.on_incoming_call = None
    call = a.call(bob(b))
    with pytest.raises(SipError) as e:
        await call.answered
    assert e.value.status == 480
    await sleep(0.05)
    no_leaks(a, b)


@pytest_twisted.ensureDeferred
async def test_malformed_request_gets_400_with_reason(agents: Any) -> None:
    _, b = agents
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    port = s.getsockname()[1]
    bad = (f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKm"
           "\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: m1\r\nCSeq: 1 INVITE\r\n"
           "Max-Forwards: 70\r\nContent-Length: 5000\r\n\r\nv=0\r\n").encode()
    try:
        s.sendto(bad, ("127.0.0.1", b.port))
        data = b""
        for _ in range(100):
            await sleep(0.01)
            try:
                data = s.recv(65535)
                break
            except BlockingIOError:
                continue
        assert data.startswith(b"SIP/2.0 400 ")
        assert b"Content-Length" in data.split(b"\r\n", 1)[0]
        assert b.calls == {}
    finally:
        s.close()


@pytest_twisted.ensureDeferred
async def test_unanswered_invite_times_out_with_timer_b() -> None:
    """A silent peer: timer B ends the call with 408 (Clock-driven, no real waiting)."""
    from tests.test_sip_transport import ClockReactor

    fake = ClockReactor()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    ua = UserAgent(fake, user="alice")
    ua.listen()
    try:
        call = ua.call(f"sip:bob@127.0.0.1:{sink.getsockname()[1]}")
        events: list[CallEvent] = []
        call.subscribe(events.append)
        fake.clock.pump([1.0] * 40)
        # no final response came: no status (a 408 would claim one), the cause says timeout,
        # the same outcome as our own --timeout (one rule: CLI exit 3)
        assert call.state is CallState.ENDED and call.status is None
        assert call.cause is EndCause.TIMEOUT
        with pytest.raises(SipError) as e:
            await call.answered
        assert e.value.timed_out and e.value.status is None
        assert len(ua.layer) == 0
    finally:
        ua.close()
        sink.close()


@pytest_twisted.ensureDeferred
async def test_unanswered_calls_are_bounded_on_both_sides() -> None:
    """A handler that only rings, forever: the UAC cancels after no_answer_timeout (487) and
    nothing is left behind; a UAS whose application never decides answers 480."""
    from tests.test_sip_transport import ClockReactor

    fake = ClockReactor()
    a = UserAgent(fake, user="alice", no_answer_timeout=60)
    b = UserAgent(fake, user="bob", no_answer_timeout=90)
    a.listen()
    b.listen()
    try:
        ringing: list[Call] = []
        b.on_incoming_call = lambda call: (ringing.append(call), call.ring())
        call = a.call(bob(b))
        for _ in range(20):
            await sleep(0.01)
            if call.state is CallState.RINGING:
                break
        fake.clock.advance(60)
        for _ in range(50):
            await sleep(0.01)
            if call.state is CallState.ENDED:
                break
        assert call.cause == "cancelled" and call.status == 487
        assert ringing[0].cause == "cancelled"

        b.on_incoming_call = lambda call: ringing.append(call)   # never rings nor answers
        a.no_answer_timeout = 0
        call = a.call(bob(b))
        for _ in range(20):
            await sleep(0.01)
            if len(ringing) == 2:
                break
        fake.clock.advance(90)
        for _ in range(50):
            await sleep(0.01)
            if call.state is CallState.ENDED:
                break
        assert ringing[1].status == 480 and call.status == 480
        fake.clock.advance(100)
        no_leaks(a, b)
    finally:
        a.close()
        b.close()
