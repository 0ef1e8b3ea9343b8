"""IceMediaSession between two siplink UserAgents on loopback (real UDP sockets, reactor).

Each test checks one promise of the ICE call layer: media only after ICE completes and on the
selected pair; a WAV file played and the received audio recorded to WAV; hold/resume and ICE
restart by re-INVITE; the updated offer with
a=remote-candidates for an RFC 5245 peer; the call ends with a clear cause when checks fail
or consent is lost; an offer without ICE is refused with 488.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from sdp import parse
from siplink.media.icesession import IceMediaSession, IceSessionError, ice_info
from siplink.media.stream import wav_bytes
from siplink.media.tone import detect_frequency, sine
from siplink.sip.message import Request
from siplink.ua.useragent import Call, CallState, SipError, UserAgent
from tests.peers.process import free_port

pytestmark = pytest.mark.timeout(60)


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


class Pair:
    """alice (caller) and bob (auto-answering callee) with IceMediaSessions."""

    def __init__(self, alice_opts: dict[str, Any] | None = None,
                 bob_opts: dict[str, Any] | None = None) -> None:
        self.a = UserAgent(reactor, user="alice")
        self.b = UserAgent(reactor, user="bob")
        self.a.listen()
        self.b.listen()
        self.incoming: list[Call] = []
        self.bob_requests: list[Request] = []
        self.b.on_request = self.bob_requests.append
        bopts = {"tone": 440.0, "rtcp_interval": 1.0, **(bob_opts or {})}
        self.b.media_factory = lambda: IceMediaSession(reactor, **bopts)
        self.b.on_incoming_call = lambda call: (self.incoming.append(call), call.answer())
        aopts = {"tone": 1000.0, "rtcp_interval": 1.0, **(alice_opts or {})}
        self.sa = IceMediaSession(reactor, **aopts)
        self.call: Call | None = None

    async def connect(self) -> tuple[IceMediaSession, IceMediaSession]:
        self.call = self.a.call(f"sip:bob@127.0.0.1:{self.b.port}", media=self.sa)
        await self.call.answered
        await self.sa.wait_connected()
        sb = self.incoming[0].media
        assert isinstance(sb, IceMediaSession)
        await sb.wait_connected()
        return self.sa, sb

    def close(self) -> None:
        self.a.close()
        self.b.close()


@pytest_twisted.ensureDeferred
async def test_media_starts_only_after_ice_on_the_selected_pair() -> None:
    p = Pair()
    try:
        sa, sb = await p.connect()
        assert p.call is not None
        await sleep(1.5)
        for me, peer, heard in ((sa, sb, 440.0), (sb, sa, 1000.0)):
            pair = me.selected_pairs[1]
            assert (pair.local_type, pair.remote_type) == ("host", "host")
            assert pair.remote_address == peer.selected_pairs[1].local_address
            assert me.time_to_connected is not None and 0 < me.time_to_connected < 2
            assert me.checks_sent >= 1
            st = me.stream.stats() if me.stream else None
            assert st is not None and st.packets_sent > 40 and st.packets_received > 40
            # the first RTP packet left after ICE completed, and nothing was dropped early
            assert st.first_sent_at is not None and me.connected_at is not None
            assert st.first_sent_at >= me.connected_at
            f = me.stream.detected_frequency() if me.stream else None
            assert f is not None and abs(f - heard) < 5
            # the ICE trace shows completion before the first RTP record
            recs = me.trace.records
            connected = next(i for i, r in enumerate(recs) if r.summary.startswith("ICE connected"))
            first_rtp = next(i for i, r in enumerate(recs) if r.protocol == "rtp"
                             and r.direction == "out" and r.summary.startswith("RTP"))
            assert connected < first_rtp
        info = ice_info(p.call)
        assert info is not None and info["role"] == "controlling"
        assert info["selected_pairs"][0]["local"]["address"] == \
            f"{sa.selected_pairs[1].local_address[0]}:{sa.selected_pairs[1].local_address[1]}"
        # both SDPs carried ICE, ice2 and the default candidate in c=/m=
        offer = parse(p.incoming[0].invite.body)    # type: ignore[union-attr]
        m = offer.media[0]
        assert m.ice_ufrag and "ice2" in offer.ice_options_for(m)
        assert any(c.port == m.port for c in m.candidates)
        await p.call.hangup()
        await sleep(0.2)
        assert p.incoming[0].cause == "remote-bye"
        assert sa.state == "closed" and sb.state == "closed"
    finally:
        p.close()


@pytest_twisted.ensureDeferred
async def test_hold_resume_and_ice_restart_by_reinvite() -> None:
    p = Pair()
    try:
        sa, sb = await p.connect()
        call = p.call
        assert call is not None and sa.stream is not None and sb.stream is not None
        await sleep(0.5)
        assert (await call.hold()).status == 200
        held_sdp = p.bob_requests[-1].body
        assert b"a=sendonly" in held_sdp
        before = sb.stream.stats().packets_sent
        got_before = sa.stream.stats().packets_received
        await sleep(0.6)
        # bob (held, recvonly) stops sending; alice keeps sending
        assert sb.stream.stats().packets_sent == before
        assert sa.stream.stats().packets_received - got_before <= 2
        assert (await call.resume()).status == 200
        await sleep(0.5)
        assert sb.stream.stats().packets_sent > before + 10

        old = sa.transport.agent.local_username if sa.transport.agent else None
        checks = sa.checks_sent
        resp = await call.restart_ice()
        assert resp.status == 200
        restart_offer = parse(p.bob_requests[-1].body)
        assert restart_offer.media[0].ice_ufrag != old
        # the answer carries bob's new credentials too
        assert parse(resp.body).media[0].ice_ufrag == (sb.transport.agent.local_username if sb.transport.agent
                                                       else None)
        await sleep(0.5)
        assert sa.restarts == 1 and sb.restarts == 1
        assert sa.checks_sent > checks and sa.state == "connected" and sb.state == "connected"
        sent = sa.stream.stats().packets_received
        await sleep(0.5)
        assert sa.stream.stats().packets_received > sent + 10   # media still flows
        assert p.call is not None
        await p.call.hangup()
    finally:
        p.close()


@pytest_twisted.ensureDeferred
async def test_updated_offer_with_remote_candidates_for_an_rfc5245_peer() -> None:
    p = Pair(bob_opts={"ice2": False})
    try:
        sa, sb = await p.connect()
        for _ in range(40):
            if sa.updated_offers:
                break
            await sleep(0.05)
        assert sa.updated_offers == 1 and sa.transport.remote_rfc5245 and not sb.transport.remote_rfc5245
        reinvite = [r for r in p.bob_requests if r.method == "INVITE"][-1]
        m = parse(reinvite.body).media[0]
        pair = sa.selected_pairs[1]
        assert [(r.component, r.address, r.port) for r in m.remote_candidates] == \
            [(1, *pair.remote_address)]
        assert [(c.address, c.port) for c in m.candidates] == [pair.local_address]
        assert (m.connection.address if m.connection else None, m.port) == pair.local_address
        assert p.call is not None
        await p.call.hangup()
    finally:
        p.close()


def _move_candidate(sdp: bytes) -> bytes:
    """``sdp`` with its host candidate (and m= port) moved to a port nobody listens on."""
    port = re.search(rb"^m=audio (\d+)", sdp, re.M)
    assert port is not None
    dead = str(free_port()).encode()
    sdp = re.sub(rb"^(m=audio )\d+", rb"\g<1>" + dead, sdp, flags=re.M)
    return re.sub(rb"^(a=candidate:\S+ \d \S+ \d+ \S+ )" + port.group(1) + rb" ",
                  rb"\g<1>" + dead + b" ", sdp, flags=re.M)


class UnreachableAnswerer(IceMediaSession):
    """Sees alice's candidate on a dead port and answers with its own on another: no check
    can succeed either way."""

    async def make_answer(self, offer: bytes) -> bytes:
        return _move_candidate(await super().make_answer(_move_candidate(offer)))


@pytest_twisted.ensureDeferred
async def test_ice_failure_ends_the_call_with_a_cause() -> None:
    p = Pair(alice_opts={"failed_timeout": 2.0})
    p.b.media_factory = lambda: UnreachableAnswerer(reactor)
    try:
        p.call = p.a.call(f"sip:bob@127.0.0.1:{p.b.port}", media=p.sa)
        await p.call.answered
        with pytest.raises(IceSessionError) as exc:
            await p.sa.wait_connected()
        assert exc.value.cause.startswith("ice-failed")
        await sleep(0.3)
        assert p.call.state is CallState.ENDED and p.call.cause is not None
        assert p.call.cause.startswith("ice-failed")
        assert p.incoming[0].state is CallState.ENDED
        assert p.sa.stream is None and p.sa.checks_sent >= 1   # no media without ICE
        assert [r.method for r in p.bob_requests][-1] == "BYE"
    finally:
        p.close()


@pytest_twisted.ensureDeferred
async def test_consent_loss_ends_the_call() -> None:
    opts = {"consent_interval": 0.3, "consent_timeout": 1.5}
    p = Pair(alice_opts=opts, bob_opts=opts)
    try:
        sa, sb = await p.connect()
        assert sb.transport.driver is not None
        await sb.transport.driver.close()          # bob's media sockets vanish; SIP stays up
        await sleep(2.5)
        assert p.call is not None and p.call.state is CallState.ENDED
        assert p.call.cause == "ice-consent-lost" and sa.state == "failed"
        assert p.incoming[0].cause == "remote-bye"
    finally:
        p.close()


@pytest_twisted.ensureDeferred
async def test_offer_without_ice_gets_488() -> None:
    b = UserAgent(reactor, user="bob")
    a = UserAgent(reactor, user="alice")
    b.listen()
    a.listen()
    # refusing a peer without ICE is opt-in (require_ice); by default it gets plain RTP
    b.media_factory = lambda: IceMediaSession(reactor, require_ice=True)
    b.on_incoming_call = lambda call: call.answer()
    try:
        call = a.call(f"sip:bob@127.0.0.1:{b.port}")      # StaticMedia: plain SDP, no ICE
        with pytest.raises(SipError) as exc:
            await call.answered
        assert exc.value.status == 488 and "ICE" in exc.value.reason
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_play_a_wav_file_and_record_the_received_audio(tmp_path: Path) -> None:
    played = tmp_path / "play.wav"
    played.write_bytes(wav_bytes(sine(697.0, 2.0)))
    recorded = tmp_path / "heard.wav"
    p = Pair(alice_opts={"tone": None, "wav": str(played)},
             bob_opts={"record_wav": str(recorded)})
    try:
        await p.connect()
        await sleep(1.2)
        assert p.call is not None
        await p.call.hangup()
        await sleep(0.2)
        with wave.open(str(recorded)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            pcm = w.readframes(w.getnframes())
        assert len(pcm) > 2 * 8000                  # more than a second of audio
        f = detect_frequency(pcm, 8000)
        assert f is not None and abs(f - 697.0) < 5, f
    finally:
        p.close()


@pytest_twisted.ensureDeferred
async def test_callee_restarts_ice_and_roles_stay() -> None:
    p = Pair()
    try:
        sa, sb = await p.connect()
        bob_ufrag = sb.transport.agent.local_username if sb.transport.agent else None
        resp = await p.incoming[0].restart_ice()   # bob (controlled) sends the re-INVITE
        assert resp.status == 200
        assert sb.transport.agent is not None and sb.transport.agent.local_username != bob_ufrag
        await sleep(0.5)
        assert (sa.restarts, sb.restarts) == (1, 1)
        assert sa.transport.controlling and not sb.transport.controlling            # RFC 8445 §9: roles kept
        assert sa.state == sb.state == "connected"
        assert sa.stream is not None and sb.stream is not None
        n = sa.stream.stats().packets_received
        await sleep(0.5)
        assert sa.stream.stats().packets_received > n + 10
        assert p.call is not None
        await p.call.hangup()
    finally:
        p.close()
