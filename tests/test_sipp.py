"""Interop with SIPp (sip-tester) on loopback: its uac against our UAS (`siplink answer`),
its uas answering our UAC, and custom scenarios that delay or drop messages to prove timers."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from siplink.ua.useragent import CallState, EndCause, UserAgent
from tests.peers.process import PeerProcess, free_port
from tests.peers.sipp import SippUas, message_times, run_uac

pytestmark = pytest.mark.peer
DATA = Path(__file__).resolve().parent / "data" / "sipp"


def start_answer(*extra: str) -> tuple[PeerProcess, int]:
    port = free_port()
    proc = PeerProcess([sys.executable, "-m", "siplink", "answer", "--listen",
                        f"127.0.0.1:{port}", *extra], ready=r"listening on", name="siplink-answer",
                       cwd=Path(__file__).resolve().parent.parent)
    proc.start()
    return proc, port


def intervals(times: list[float]) -> list[float]:
    return [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]


def test_sipp_uac_calls_our_uas_with_zero_failures() -> None:
    uas, port = start_answer()
    try:
        res = run_uac(f"127.0.0.1:{port}", calls=60, rate=30, limit=30, timeout=30)
        assert res.returncode == 0, res.log
        assert res.count("SuccessfulCall") == 60 and res.count("FailedCall") == 0, res.stats
    finally:
        uas.stop()
    lines = [ln for ln in uas.log().splitlines() if ln.startswith("call ")]
    assert len(lines) == 60 and all("ended=remote-bye" in ln for ln in lines)


def test_sipp_uac_over_tcp() -> None:
    uas, port = start_answer("--transport", "tcp")
    try:
        res = run_uac(f"127.0.0.1:{port}", calls=20, rate=20, limit=10, timeout=30,
                      transport="t1")
        assert res.returncode == 0, res.log
        assert res.count("SuccessfulCall") == 20 and res.count("FailedCall") == 0
    finally:
        uas.stop()


def test_uas_retransmits_2xx_until_the_late_ack() -> None:
    """SIPp withholds its ACK for 2.5 s: our 200 OK must repeat at T1, 2T1, 4T1 (RFC 3261
    §13.3.1.4) and stop once the ACK arrives."""
    uas, port = start_answer()
    log = Path(tempfile.mkdtemp(prefix="sipp-late-")) / "msg.log"
    try:
        res = run_uac(f"127.0.0.1:{port}", scenario=DATA / "uac_late_ack.xml", calls=1, rate=1,
                      limit=1, timeout=20, extra=["-trace_msg", "-message_file", str(log)])
        assert res.returncode == 0, res.log
    finally:
        uas.stop()
    msgs = message_times(log.read_text(errors="replace"))
    oks = [t for t, d, line in msgs if d == "received" and line == "SIP/2.0 200 OK"]
    ack = next(t for t, d, line in msgs if d == "sent" and line.startswith("ACK "))
    bye = next(t for t, d, line in msgs if d == "sent" and line.startswith("BYE "))
    before_ack = [t for t in oks if t < ack]
    assert len(before_ack) == 3, msgs                       # sent at 0, 0.5, 1.5; ACK at 2.5
    assert intervals(before_ack) == pytest.approx([0.5, 1.0], abs=0.1)
    assert not [t for t in oks if ack + 0.05 < t < bye]     # ACK stopped the retransmissions


@pytest_twisted.ensureDeferred
async def test_our_uac_calls_the_sipp_uas() -> None:
    sipp = SippUas("uas", extra=["-m", "5"]).start()
    ua = UserAgent(reactor, user="alice")
    ua.listen()
    try:
        for _ in range(5):
            call = ua.call(f"sip:service@{sipp.address}")
            states: list[CallState] = []
            call.subscribe(lambda ev, states=states: states.append(ev.state))
            await call.answered
            assert call.remote_sdp.startswith(b"v=0")
            await call.hangup()
            assert states[:2] == [CallState.RINGING, CallState.CONFIRMED]
        await task.deferLater(reactor, 0.3, lambda: None)
        for _ in range(50):
            if sipp.proc.proc is not None and sipp.proc.proc.poll() is not None:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        assert sipp.proc.proc is not None and sipp.proc.proc.returncode == 0, sipp.proc.log()
        assert "SuccessfulCall(C)" not in sipp.stats() or \
            int(sipp.stats()["FailedCall(C)"]) == 0
    finally:
        ua.close()
        sipp.stop()


@pytest_twisted.ensureDeferred
async def test_client_timers_against_a_slow_sipp_uas() -> None:
    """SIPp answers the INVITE and the BYE only after 1.7 s: timers A and E retransmit at
    0.5 s and 1.5 s, and the call still completes."""
    sipp = SippUas(DATA / "uas_slow.xml", extra=["-m", "1"]).start()
    ua = UserAgent(reactor, user="alice")
    ua.listen()
    try:
        call = ua.call(f"sip:service@{sipp.address}")
        await call.answered
        bye = await call.request("BYE")
        ua.core.end(call.session, EndCause.LOCAL_BYE, ua.now())   # the BYE went by hand
        assert bye.status == 200
        await task.deferLater(reactor, 0.8, lambda: None)
    finally:
        ua.close()
        sipp.stop()
    msgs = message_times(sipp.messages())
    invites = [t for t, d, line in msgs if d == "received" and line.startswith("INVITE ")]
    byes = [t for t, d, line in msgs if d == "received" and line.startswith("BYE ")]
    assert len(invites) == 3 and intervals(invites) == pytest.approx([0.5, 1.0], abs=0.1)
    assert len(byes) == 3 and intervals(byes) == pytest.approx([0.5, 1.0], abs=0.1)
