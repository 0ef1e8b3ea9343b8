"""Session timers (RFC 4028) between two agents: negotiation, 422 + Min-SE retry, refresh by
UPDATE at half the interval, BYE when no refresh comes. Real sockets, Clock time."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from siplink.core.session_timer import (
    SessionTimer,
    TooSmall,
    expire_delay,
    parse_session_expires,
    uas_negotiate,
)
from siplink.sip.message import Request, make_request, parse_message
from siplink.ua.useragent import Call, CallState, UserAgent
from tests.test_sip_transport import ClockReactor


def test_negotiation_rules() -> None:
    assert parse_session_expires("1800;refresher=uas") == (1800, "uas")
    assert parse_session_expires(None) is None
    inv: Any = parse_message(bytes(make_request("INVITE", "sip:b@h", [
        ("Via", "SIP/2.0/UDP h:1;branch=z9hG4bKs"), ("From", "<sip:a@h>;tag=1"),
        ("To", "<sip:b@h>"), ("Call-ID", "s"), ("CSeq", "1 INVITE"),
        ("Supported", "timer"), ("Session-Expires", "100")])))
    assert uas_negotiate(inv) == SessionTimer(100, "uac")
    with pytest.raises(TooSmall) as e:
        uas_negotiate(inv, min_se=120)
    assert e.value.min_se == 120
    assert expire_delay(90) == 60 and expire_delay(1800) == 1768


async def real_sleep(seconds: float = 0.05) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def connected(fake: ClockReactor, *, offer: int, min_se: int = 90
                    ) -> tuple[UserAgent, UserAgent, Call, list[Call], list[Request]]:
    a = UserAgent(fake, user="alice", session_expires=offer)
    b = UserAgent(fake, user="bob", min_se=min_se)
    a.listen()
    b.listen()
    seen: list[Request] = []
    b.on_request = seen.append
    incoming: list[Call] = []
    b.on_incoming_call = lambda call: (incoming.append(call), call.answer())
    call = a.call(f"sip:bob@127.0.0.1:{b.port}")
    await call.answered
    await real_sleep()
    return a, b, call, incoming, seen


@pytest_twisted.ensureDeferred
async def test_refresher_sends_update_at_half_interval() -> None:
    fake = ClockReactor()
    a, b, call, incoming, seen = await connected(fake, offer=90)
    try:
        assert call.session_timer == SessionTimer(90, "uac")
        assert incoming[0].session_timer == SessionTimer(90, "uac")
        for _ in range(3):                        # three refreshes, 45 s apart
            fake.clock.advance(45)
            await real_sleep()
        updates = [r for r in seen if r.method == "UPDATE"]
        assert len(updates) == 3
        assert updates[0].headers.get("Session-Expires") == "90;refresher=uac"
        assert call.state is CallState.CONFIRMED and incoming[0].state is CallState.CONFIRMED
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_no_refresh_ends_the_session_with_bye() -> None:
    fake = ClockReactor()
    a, b, call, incoming, _ = await connected(fake, offer=90)
    try:
        call.session.set_timer("session-refresh", None)   # the refresher goes silent
        fake.clock.advance(61)                    # 90 - min(32, 90/3) = 60 s
        await real_sleep()
        assert incoming[0].cause == "session-expired"
        assert call.cause == "remote-bye"
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_422_retry_with_min_se() -> None:
    fake = ClockReactor()
    a, b, call, incoming, _ = await connected(fake, offer=90, min_se=120)
    try:
        assert call.invite is not None and call.invite.cseq.number == 2   # 422, then retry
        assert call.invite.headers.get("Session-Expires") == "120"
        assert call.session_timer == SessionTimer(120, "uac")
        await call.hangup()
        await real_sleep()
    finally:
        a.close()
        b.close()
