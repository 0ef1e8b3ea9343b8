"""IceMediaSession with a peer that does not do ICE (RFC 8839 §3.2.1.1/§3.3), against SIPp.

SIPp's built-in scenarios carry plain SDP (no ice-ufrag/ice-pwd).  Our UAC calls SIPp's ``uas``
(``-rtp_echo``): the call is answered, no checks run, RTP goes to SIPp's m= port from our
default candidate's socket and comes back, and our tone is decoded.  SIPp's ``uac`` calls our
UAS (IceMediaSession as the media factory): the 200 carries an answer without ICE attributes.
With ``require_ice=True`` both directions refuse the peer as before (488 / a clear cause).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from sdp import parse
from siplink.media.icesession import IceMediaSession, IceSessionError
from siplink.ua.useragent import Call, CallState, EndCause, UserAgent
from tests.peers.sipp import SippUas, run_uac

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]
HOST = "127.0.0.1"


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


async def wait_for(predicate: Any, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in {timeout}s: {what}")
        await sleep(0.05)


@pytest_twisted.ensureDeferred
async def test_we_call_sipp_uas_without_ice_and_hear_our_tone_echoed() -> None:
    sipp = SippUas("uas", extra=["-m", "1", "-rtp_echo"]).start()
    ua = UserAgent(reactor, host=HOST, user="alice")
    ua.listen()
    try:
        s = IceMediaSession(reactor, tone=700.0, rtcp_interval=0.5)
        call = ua.call(f"sip:service@{sipp.address}", media=s)
        await call.answered
        stream = await s.wait_connected()
        assert s.ice_used is False and s.state == "connected"
        assert s.summary_line() == "ICE: not used by the peer"
        assert s.summary()["ice_used"] is False and s.checks_sent == 0
        assert s.selected_pairs == {}
        # our offer had ICE (and the default candidate in c=/m=); SIPp's answer had none
        assert call.invite is not None
        offer = parse(call.invite.body).media[0]
        assert offer.ice_ufrag and offer.candidates
        answer = parse(call.remote_sdp).media[0]
        assert answer.ice_ufrag is None and not answer.candidates
        # RTP to SIPp's m= port, RTCP to port+1 (no rtcp-mux in its answer)
        assert stream.remote == (HOST, answer.port)
        assert stream.remote_rtcp == (HOST, answer.port + 1)
        # the echo arrives on our default candidate's socket (the c=/m= address we offered)
        assert s.transport.agent is not None
        default = s.transport.agent.default_candidate(0, 1)
        assert default is not None and (default.address, default.port) == (
            offer.connection.address if offer.connection else "", offer.port)
        await sleep(1.5)
        st = stream.stats()
        assert st.packets_sent >= 50 and st.packets_received >= st.packets_sent - 10, st
        assert s.transport.media_in.get("rtp/1", 0) >= 50
        f = stream.detected_frequency()
        assert f is not None and abs(f - 700.0) < 5, f
        await call.hangup()
        assert call.state is CallState.ENDED
    finally:
        ua.close()
        sipp.stop()


@pytest_twisted.ensureDeferred
async def test_require_ice_ends_the_call_to_a_peer_without_ice() -> None:
    sipp = SippUas("uas", extra=["-m", "1"]).start()
    ua = UserAgent(reactor, host=HOST, user="alice")
    ua.listen()
    try:
        s = IceMediaSession(reactor, require_ice=True)
        call = ua.call(f"sip:service@{sipp.address}", media=s)
        await call.answered
        with pytest.raises(IceSessionError) as exc:
            await s.wait_connected()
        assert exc.value.cause == "ice-required: peer answered without ICE"
        await wait_for(lambda: call.state is CallState.ENDED, 5, "call ended")
        assert call.cause is EndCause.ICE_REQUIRED and s.stream is None
        assert call.end_reason == exc.value.cause
    finally:
        ua.close()
        sipp.stop()


def _uas(require_ice: bool) -> tuple[UserAgent, list[Call]]:
    ua = UserAgent(reactor, host=HOST, port=0, user="siplink")
    ua.listen()
    ua.media_factory = lambda: IceMediaSession(reactor, tone=500.0,
                                               require_ice=require_ice)
    calls: list[Call] = []

    def incoming(call: Call) -> None:
        calls.append(call)
        call.answer()                 # 488 with require_ice: the test looks
    ua.on_incoming_call = incoming
    return ua, calls


def _sip_port(ua: UserAgent) -> int:
    return int(ua.local("udp").port)


@pytest_twisted.ensureDeferred
async def test_sipp_uac_calls_us_and_gets_an_answer_without_ice() -> None:
    ua, calls = _uas(require_ice=False)
    log = Path(tempfile.mkdtemp(prefix="sipp-noice-")) / "msg.log"
    try:
        res = await threads.deferToThread(
            run_uac, f"{HOST}:{_sip_port(ua)}", calls=1, rate=1, limit=1, timeout=20,
            extra=["-trace_msg", "-message_file", str(log)])
        assert res.returncode == 0, res.log
        assert res.count("SuccessfulCall") == 1 and res.count("FailedCall") == 0, res.stats
        assert len(calls) == 1
        s = calls[0].media
        assert isinstance(s, IceMediaSession)
        assert s.ice_used is False and s.checks_sent == 0
        assert s.stream is not None and s.stream.stats().packets_sent > 0
        await wait_for(lambda: calls[0].state is CallState.ENDED, 5, "BYE from SIPp")
        assert calls[0].cause == "remote-bye"
    finally:
        ua.close()
    text = log.read_text(errors="replace")
    ok = text[text.index("SIP/2.0 200 OK"):]
    body = ok[ok.index("v=0"):].split("\n\n")[0]
    assert "m=audio" in body and "a=ice-ufrag" not in body and "a=candidate" not in body, body
    assert "a=ice-pwd" not in body and "a=ice-options" not in body, body


@pytest_twisted.ensureDeferred
async def test_require_ice_answers_488_to_sipp_uac() -> None:
    ua, calls = _uas(require_ice=True)
    try:
        res = await threads.deferToThread(
            run_uac, f"{HOST}:{_sip_port(ua)}", calls=1, rate=1, limit=1, timeout=10)
        assert res.count("FailedCall") == 1 and res.count("SuccessfulCall") == 0, res.stats
        assert len(calls) == 1 and calls[0].status == 488
    finally:
        ua.close()
