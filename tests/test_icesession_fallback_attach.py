"""The UA attaches a media session that has ``attach`` to its Call when the Call is made
(outgoing and incoming), ``attach`` stays idempotent for callers that still call it, and
``Call.ice`` forwards the session's ICE info (None for media without ICE, e.g. StaticMedia).
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

import tests.test_icesession as ti
from siplink.media.icesession import IceMediaSession
from siplink.ua.useragent import Call, StaticMedia, UserAgent

pytestmark = pytest.mark.timeout(60)


@pytest_twisted.ensureDeferred
async def test_sessions_are_attached_by_the_ua_and_call_ice_reports_ice() -> None:
    p = ti.Pair()
    attached_in_handler: list[bool] = []
    handler = p.b.on_incoming_call
    assert handler is not None

    def incoming(call: Call) -> None:
        attached_in_handler.append(isinstance(call.media, IceMediaSession)
                                   and call.media.call is call)
        handler(call)
    p.b.on_incoming_call = incoming
    try:
        call = p.a.call(f"sip:bob@127.0.0.1:{p.b.port}", media=p.sa)
        assert p.sa.call is call                  # no session.attach(call) needed
        p.sa.attach(call)                         # ... and still harmless
        assert p.sa.call is call
        p.call = call
        await call.answered
        await p.sa.wait_connected()
        assert attached_in_handler == [True]
        sb = p.incoming[0].media
        assert isinstance(sb, IceMediaSession)
        await sb.wait_connected()
        for c, s in ((call, p.sa), (p.incoming[0], sb)):
            info = c.ice
            assert info is not None and info["state"] == "connected" and info["ice_used"]
            assert info["selected_pairs"][0]["local"]["address"].startswith("127.0.0.1:")
            assert info["time_to_connected_ms"] is not None and info["checks_sent"] >= 1
            assert info["selected_pairs"] == s.summary()["selected_pairs"]
        await call.hangup()
    finally:
        p.close()


def test_call_ice_is_none_for_media_without_ice() -> None:
    ua = UserAgent(reactor, user="alice")
    try:
        call = ua.call("sip:nobody@127.0.0.1:9", media=StaticMedia())
        assert call.ice is None
    finally:
        ua.close()
