"""ICE calls between siplink and a real baresip (1.0, ``medianat=ice``) in a network namespace.

baresip refuses loopback host candidates, so the test creates a namespace with a veth address
(198.51.100.1) and runs baresip there; our UserAgent and its ICE sockets are bound inside the
same namespace from this process (``NetNs.entered`` around the binds), so no traffic leaves it.

Both directions: siplink calls baresip (we control) and baresip calls siplink (we are
controlled; baresip without rtcp-mux, so two components, RTP and RTCP). In
each: ICE completes on both sides (our session state and baresip's "connectivity check is
complete"), both sides agree on the pair (baresip's media raddr is our selected local address
and vice versa), we decode baresip's 440 Hz sine, baresip decodes our tone (its own sndfile
recording of what it received) and counts our packets, and our DTMF reaches it. When we
call: with and without rtcp-mux (one or two components), baresip gets our updated offer
(a=remote-candidates, it is an RFC 5245 agent), and hold/resume by re-INVITE stop and restart
its sending; our default rtcp-mux offer (which also offers the RTCP component) to a baresip
without rtcp-mux runs ICE on both components and RTP and RTCP flow.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from sdp import parse
from siplink.media.icesession import IceMediaSession
from siplink.ua.useragent import Call, CallState, UserAgent
from tests.peers.baresip import Baresip, recorded_wavs, wav_tone_hz
from tests.peers.netns import Lab, NetNs

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(120)]
IP = "198.51.100.1"
SIP_PORT = 25060


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


async def wait_for(predicate: Any, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen in {timeout}s: {what}")
        await sleep(0.05)


async def log_wait(b: Baresip, pattern: str, timeout: float = 10.0) -> re.Match[str]:
    """Baresip.wait_for without blocking the reactor (our agent must keep answering)."""
    rx = re.compile(pattern, re.M)
    found: list[re.Match[str]] = []

    def seen() -> bool:
        m = rx.search(b._recent())
        if m:
            found.append(m)
        return m is not None

    await wait_for(seen, timeout, f"{pattern!r} in baresip's log:\n{b._recent()[-3000:]}")
    return found[0]


@pytest.fixture
def ns() -> Iterator[NetNs]:
    with Lab() as lab:
        n = lab.namespace("ice7")
        lab.veth(n, "v0", n, "v1", f"{IP}/24")
        yield n


def our_agent(ns: NetNs, tone: float, *, rtcp_mux: bool = True) -> UserAgent:
    ua = UserAgent(reactor, host=IP, port=SIP_PORT, user="siplink", bind_context=ns.entered)
    ua.listen()
    ua.media_factory = lambda: IceMediaSession(
        reactor, local_addresses=(IP,), tone=tone, rtcp_interval=1.0,
        rtcp_mux=rtcp_mux, bind_context=ns.entered)
    return ua


def check_media(s: IceMediaSession, b: Baresip, rec: Path, our_tone: float,
                heard_hz: float | None = None, sent_before_hangup: int | None = None) -> None:
    """Both sides agree on the pair; RTP each way, checked by its content.

    ``sent_before_hangup``: when baresip hangs up it stops receiving at once while we send
    until its BYE arrives, so it must have received what we sent before it hung up (within
    packets in flight), and never more than we sent in all."""
    pair = s.selected_pairs[1]
    assert pair.local_type == "host" and pair.local_address[0] == IP
    # (with rtcp-mux baresip logs no RTCP address: wait_media_connected() wants two)
    b_rtp = b.wait_for(r"stream: mnat 'ice' connected: raddr (\S+)").group(1)
    assert b_rtp == f"{IP}:{pair.local_address[1]}"            # baresip sends to our pair
    assert (pair.remote_type, IP, pair.remote_address[1], 1) in b.candidates()
    assert s.stream is not None
    st = s.stream.stats()
    assert st.packets_received > 80 and st.packets_sent > 80, st
    f = heard_hz if heard_hz is not None else s.stream.detected_frequency()
    assert f is not None and abs(f - 440.0) < 5, f               # baresip's ausine
    stats = b.wait_rtp_stats()
    if sent_before_hangup is None:
        assert stats.rx_packets > 80 and abs(stats.rx_packets - st.packets_sent) <= 10, (stats, st)
    else:
        assert stats.rx_packets > 80, (stats, st)
        assert sent_before_hangup - 10 <= stats.rx_packets <= st.packets_sent, \
            (stats, st, sent_before_hangup)
    heard = wav_tone_hz(recorded_wavs(rec)["dec"])
    assert abs(heard - our_tone) < 20, heard                      # baresip decoded our tone
    keys = re.findall(r"received event: '(.)' \(end=1\)", b._recent())
    assert "".join(keys) == "12#", b._recent()[-2000:]


@pytest.mark.parametrize("mux", [True, False], ids=["rtcp-mux", "no-rtcp-mux"])
@pytest_twisted.ensureDeferred
async def test_siplink_calls_baresip(ns: NetNs, tmp_path: Path, mux: bool) -> None:
    b = Baresip(ns, IP, 25200, user="bob", interface="v0", rtcp_mux=mux,
                record_dir=tmp_path).start()
    ua = our_agent(ns, 1000.0, rtcp_mux=mux)
    try:
        s = ua.media_factory()
        assert isinstance(s, IceMediaSession)
        b.mark()
        call = ua.call(b.uri, media=s)
        s.attach(call)
        await call.answered
        await s.wait_connected()
        await log_wait(b, r"ice: audio: connectivity check is complete")
        assert s.transport.controlling and s.state == "connected"
        assert 0 < (s.time_to_connected or 0) < 5
        answer = parse(call.remote_sdp).media[0]
        assert answer.rtcp_mux is mux and {c.type.value for c in answer.candidates} >= {"host"}
        # one component with rtcp-mux, else RTP and RTCP each on its own selected pair
        assert s.transport.components == (1 if mux else 2)
        assert set(s.selected_pairs) == ({1} if mux else {1, 2})
        # baresip is an RFC 5245 agent: we sent it the updated offer (a=remote-candidates)
        await wait_for(lambda: s.updated_offers == 1, 5, "updated offer answered")
        assert s.transport.remote_rfc5245
        reoffer = [m for m in b.received_sip() if m.startswith("INVITE") and
                   "a=remote-candidates" in m]
        pair = s.selected_pairs[1]
        assert reoffer and f"a=remote-candidates:1 {IP} {pair.remote_address[1]}" in reoffer[-1]
        await sleep(1.0)
        s.send_dtmf("12#")
        await sleep(2.0)
        assert s.stream is not None
        heard_hz = s.stream.detected_frequency()
        # hold and resume by re-INVITE: baresip answers recvonly and stops sending, then
        # answers sendrecv and sends again
        resp = await call.hold()
        assert resp.status == 200 and b"a=recvonly" in resp.body
        await sleep(0.3)
        n = s.stream.stats().packets_received
        await sleep(0.6)
        assert s.stream.stats().packets_received - n <= 2
        resp = await call.resume()
        assert resp.status == 200 and b"a=sendrecv" in resp.body
        await sleep(0.6)
        assert s.stream.stats().packets_received - n > 15
        await call.hangup()
        await sleep(0.3)
        check_media(s, b, tmp_path, 1000.0, heard_hz)
    finally:
        ua.close()
        b.stop()


@pytest_twisted.ensureDeferred
async def test_baresip_calls_siplink(ns: NetNs, tmp_path: Path) -> None:
    b = Baresip(ns, IP, 25200, user="alice", interface="v0", rtcp_mux=False,
                record_dir=tmp_path).start()
    ua = our_agent(ns, 1200.0)
    incoming: list[Call] = []
    ua.on_incoming_call = lambda call: (incoming.append(call), call.answer())
    try:
        b.dial(f"sip:siplink@{IP}:{SIP_PORT}")
        await wait_for(lambda: bool(incoming) and incoming[0].state is CallState.CONFIRMED,
                       10, "incoming call answered")
        s = incoming[0].media
        assert isinstance(s, IceMediaSession)
        await s.wait_connected()
        await log_wait(b, r"ice: audio: connectivity check is complete")
        assert not s.transport.controlling and s.state == "connected"
        # baresip offered RTP and RTCP on two components: we answered with both
        assert s.transport.components == 2 and set(s.selected_pairs) == {1, 2}
        offer = parse(incoming[0].invite.body).media[0]    # type: ignore[union-attr]
        assert not offer.rtcp_mux and {c.component for c in offer.candidates} == {1, 2}
        await log_wait(b, r"Call established")
        await sleep(1.0)
        s.send_dtmf("12#")
        await sleep(2.0)
        # baresip's RTCP (every ~5 s) arrives on the RTCP component's socket and is counted
        await wait_for(lambda: s.transport.media_in.get("rtcp/2", 0) >= 1, 8, "RTCP on component 2")
        assert s.stream is not None and s.stream.stats().rtcp_received >= 1
        assert s.transport.media_in.get("rtp/1", 0) > 100 and "rtcp/1" not in s.transport.media_in
        sent_before_hangup = s.stream.stats().packets_sent
        b.hangup()
        await wait_for(lambda: incoming[0].state is CallState.ENDED, 10, "BYE from baresip")
        assert incoming[0].cause == "remote-bye"
        check_media(s, b, tmp_path, 1200.0, sent_before_hangup=sent_before_hangup)
    finally:
        ua.close()
        b.stop()


@pytest_twisted.ensureDeferred
async def test_mux_offer_to_baresip_without_rtcp_mux_runs_ice_on_both_components(
        ns: NetNs, tmp_path: Path) -> None:
    """Our default offer (rtcp_mux=True) carries a=rtcp-mux and still both components with
    a=rtcp (RFC 5761 §5.1.3): baresip without rtcp-mux answers without it, ICE completes on
    RTP and RTCP, RTCP flows each way on component 2 and the tones are heard.  (This test used
    to expect the call to end with an a=ice-mismatch cause: the old mux-only offer.)"""
    b = Baresip(ns, IP, 25200, user="bob", interface="v0", rtcp_mux=False,
                record_dir=tmp_path).start()
    ua = our_agent(ns, 1000.0, rtcp_mux=True)
    try:
        s = ua.media_factory()
        assert isinstance(s, IceMediaSession)
        b.mark()
        call = ua.call(b.uri, media=s)
        await call.answered
        assert call.invite is not None
        offer = parse(call.invite.body).media[0]
        assert offer.rtcp_mux and offer.rtcp is not None and b"rtcp-mux-only" not in \
            call.invite.body
        assert {c.component for c in offer.candidates} == {1, 2}
        answer = parse(call.remote_sdp).media[0]
        assert not answer.rtcp_mux and not answer.ice_mismatch
        await s.wait_connected()
        await log_wait(b, r"ice: audio: connectivity check is complete")
        assert s.transport.controlling and s.state == "connected" and s.ice_used
        assert s.transport.components == 2 and set(s.selected_pairs) == {1, 2}
        assert s.selected_pairs[2].local_address[1] == offer.rtcp.port
        rtp_raddr, rtcp_raddr = b.wait_media_connected()
        assert rtp_raddr == f"{IP}:{s.selected_pairs[1].local_address[1]}"
        assert rtcp_raddr == f"{IP}:{s.selected_pairs[2].local_address[1]}"
        await sleep(1.0)
        s.send_dtmf("12#")
        await sleep(2.0)
        # baresip's RTCP (every ~5 s) arrives on component 2; ours (every 1 s) goes there
        await wait_for(lambda: s.transport.media_in.get("rtcp/2", 0) >= 1, 8, "RTCP on component 2")
        assert s.stream is not None and s.stream.stats().rtcp_received >= 1
        assert s.stream.stats().rtcp_sent >= 2 and "rtcp/1" not in s.transport.media_in
        assert s.stream.remote_rtcp == s.selected_pairs[2].remote_address
        await call.hangup()
        await sleep(0.3)
        check_media(s, b, tmp_path, 1000.0)
    finally:
        ua.close()
        b.stop()
