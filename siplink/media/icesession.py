"""ICE-negotiated media for a SIP call: :class:`IceMediaSession`, the UA's MediaSession hook.

The session is the SDP offer/answer (``sdp.OfferAnswer``: RFC 3264 + RFC 8839 attributes) of
one call, composed of three parts that each own their state::

    IceTransport  (siplink.media.ice_transport)  the ICE agent (RFC 8445) on its Twisted
                  driver, one UDP socket per component, RFC 7983 demultiplexing
    AudioChannel  (siplink.media.audio_channel)  the MediaStream (RTP/RTCP, G.711, RFC 4733)
                  on its MediaDriver: codec, direction, tone/WAV source, recording, DTMF
    MediaReport   (siplink.media.report)         state, cause, timing and :meth:`summary`

An SDP answer (or offer) is parsed here once and flows down: the peer's ICE parameters to
the transport (:meth:`IceTransport.start_checks`), the negotiated audio to the channel
(:meth:`AudioChannel.negotiate`).  The parts report upward only through the transport's
callbacks (connected, pair changed, failed); the channel never calls back.

Offerer (``make_offer``): gather (restricted to ``local_addresses``/``interfaces``), offer
our candidates with the default candidate in c=/m=; on the answer, start checks as the
controlling agent.  Answerer (``make_answer``): gather, answer, start checks as controlled.
The audio channel starts only when ICE completes, on the selected pair, and is fed from the
same sockets after demultiplexing.  When we control and the peer is RFC 5245-style (no
``ice2`` option), a re-INVITE carries the updated offer (selected candidates +
``a=remote-candidates``) once the pair is nominated.  Hold, resume and ICE restart are the
call's (:meth:`Call.hold`, :meth:`Call.resume`, :meth:`Call.restart_ice`): it asks
:meth:`make_offer` for the re-offer (``hold``, ``ice_restart``) and sends the re-INVITE; an
ICE restart offered by the peer is followed.  ICE failure or lost consent ends the call
(:meth:`Call.end`) with the cause ``ice-failed: ...`` / ``ice-consent-lost``.

Peer without ICE (RFC 8839 §3.2.1.1/§3.3, RFC 3264): when the offer or answer has no
ice-ufrag/ice-pwd, no checks run: RTP goes to its c=/m= address, RTCP to a=rtcp (or port+1)
unless rtcp-mux, both sent from our default candidate's socket (where the peer sends), and
media starts at once; an answer to such an offer has no ICE attributes.  ``ice_used`` is
then False and :meth:`summary` says so.  ``require_ice=True`` refuses such a peer instead
(488 to the offer, the call ends with ``ice-required: ...`` on the answer).

RTCP: with ``rtcp_mux=True`` (the default) the offer has ``a=rtcp-mux`` and still both
components, RTP and RTCP, with ``a=rtcp`` (RFC 5761 §5.1.3, RFC 8839): when the answer
accepts rtcp-mux, component 2 is removed before the checks start (its candidates, socket and
TURN allocation released), else ICE runs on both, so a peer that does not multiplex works.
``a=rtcp-mux-only`` (RFC 8858) is not offered.  ``rtcp_mux=False`` offers no multiplexing.
Answering, we follow the offer.

Trickle ICE over SIP (RFC 8838, RFC 8840), ``trickle="half"`` by default: our offers carry
every candidate, ``a=ice-options:trickle`` and ``a=mid``; the call adds ``Supported:
trickle-ice`` and ``Recv-Info: trickle-ice`` (:attr:`option_tags`, :attr:`info_packages`).
Answering a trickle offer we do not wait for server candidates: the answer has the host ones
(none under a relay-only policy: the RFC 8840 placeholder ``c=0.0.0.0``, port 9) and the
others go out in INFO requests (:meth:`_flush_trickle`, one at a time, the last with
``a=end-of-candidates``) once the call says the dialog can carry them
(:meth:`signalling_ready`: the ACK for the callee; a 18x from a trickle-ice peer or the 2xx
for the caller).  ``trickle="full"`` also offers before gathering completes.  Candidates the
peer trickles (:meth:`on_info`) are added to the agent, which then waits for the peer's
end-of-candidates before it declares failure; fragments of another ICE generation (ufrag) are
ignored, and those that come before the checks start wait for them.

The UA attaches the session to its Call when the Call is made (:meth:`attach`, idempotent).
What ICE did is visible on the session (``call.media``; ``call.ice``, :func:`ice_info`): the
read-only views ``state``, ``selected_pairs``, ``time_to_connected``, ``checks_sent``,
``stream``... (owned by the report, the transport and the channel: ``session.report``,
``session.transport``, ``session.channel``), ``trace`` (SDP, ICE and RTP records) and
:meth:`summary`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from ice.address import Address
from ice.candidate import Candidate
from ice.gathering import StunServer, TurnServer
from ice.trace import Trace, TraceRecord
from sdp import DEFAULT_CODECS, Codec, IceParams, OfferAnswer, SdpError, parse
from sdp.errors import OfferPendingError
from sdp.offeranswer import NegotiatedMedia
from sdp.trickle import CONTENT_TYPE as TRICKLE_CONTENT_TYPE
from sdp.trickle import (
    INFO_PACKAGE,
    OPTION_TAG,
    FragmentMedia,
    SdpFragment,
    format_fragment,
    parse_fragment,
)
from siplink.media.audio_channel import AudioChannel
from siplink.media.ice_transport import IceSessionError, IceTransport
from siplink.media.report import MediaReport, PairInfo, fmt_address
from siplink.media.stream import MediaStream, PcmSource, WavSource
from siplink.media.tone import ToneGenerator
from siplink.ua.useragent import CallState, EndCause, MediaRejected

if TYPE_CHECKING:
    from siplink.ua.config import Config
    from siplink.ua.useragent import Call

__all__ = ["IceMediaSession", "IceSessionError", "PairInfo", "ice_info", "media_options"]

log = Logger(namespace="siplink.media.icesession")

TRICKLE_MODES = ("off", "half", "full")


class IceMediaSession:
    """The :class:`~siplink.ua.useragent.MediaSession` of one call, with ICE (module docstring).

    ``local_addresses``/``interfaces``: where host candidates are gathered (default
    127.0.0.1 only); ``stun_servers``/``turn_servers`` and ``policy="relay"`` as for
    :class:`ice.agent.Agent`.  ``rtcp_mux``: offer RTCP multiplexed on one component (else two
    components).  ``source``: what we play (``tone`` Hz or a ``wav`` file are shortcuts; silence
    by default); ``record_wav``: write the received audio there when the call ends.
    ``ice2``: announce ``a=ice-options:ice2`` (RFC 8445 agent; a peer that does not is treated
    as RFC 5245-style).  ``bind_context``: a context-manager factory around socket binding
    (tests bind inside a network namespace).  ``require_ice``: refuse a peer without ICE
    (default: plain RTP to its c=/m= address).  ``trickle``: "half" (default), "full" or
    "off" (module docstring).  The UA tells the session its :class:`Call` (:meth:`attach`),
    to end it, send the RFC 5245 updated offer or trickle INFOs.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        local_addresses: Sequence[str] | None = None,
        interfaces: Sequence[str] | None = None,
        stun_servers: Sequence[StunServer | Address | str] = (),
        turn_servers: Sequence[TurnServer] = (),
        policy: str = "all",
        rtcp_mux: bool = True,
        require_ice: bool = False,
        codecs: Sequence[Codec] = DEFAULT_CODECS,
        source: PcmSource | None = None,
        tone: float | None = None,
        wav: str | None = None,
        record_wav: str | None = None,
        ptime: float = 0.020,
        rtcp_interval: float = 5.0,
        ta: float = 0.02,
        nomination: str = "regular",
        lite: bool = False,
        max_pairs: int = 100,
        nomination_delay: float = 1.0,
        failed_timeout: float = 30.0,
        consent_interval: float = 5.0,
        consent_timeout: float = 30.0,
        ice2: bool = True,
        updated_offer: bool = True,
        record: bool = True,
        trace: Trace | None = None,
        bind_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        trickle: str = "half",
    ) -> None:
        if trickle not in TRICKLE_MODES:
            raise ValueError(f"trickle must be one of {', '.join(TRICKLE_MODES)}, "
                             f"not {trickle!r}")
        self.reactor = reactor
        self.trickle = trickle
        if local_addresses is None and interfaces is None:
            local_addresses = ("127.0.0.1",)
        self.rtcp_mux = rtcp_mux
        self.require_ice = require_ice
        self.updated_offer = updated_offer
        self.trace = trace if trace is not None else Trace()
        if source is None and wav is not None:
            source = WavSource.from_file(wav)     # MediaError for a WAV we cannot play
        if source is None and tone is not None:
            source = ToneGenerator(tone)
        first = (tuple(local_addresses) if local_addresses is not None else ("0.0.0.0",))[0]
        self.oa = OfferAnswer(first, codecs=codecs, rtcp_mux=rtcp_mux,
                              ptime=ptime * 1000, username="siplink", trace=self.trace,
                              mid="0" if trickle != "off" else None)
        self.transport = IceTransport(
            reactor, local_addresses=local_addresses, interfaces=interfaces,
            stun_servers=stun_servers, turn_servers=turn_servers, policy=policy, lite=lite,
            max_pairs=max_pairs, ta=ta, nomination=nomination,
            nomination_delay=nomination_delay, failed_timeout=failed_timeout,
            consent_interval=consent_interval, consent_timeout=consent_timeout, ice2=ice2,
            trace=self.trace, bind_context=bind_context, on_connected=self._connected,
            on_pair_changed=self._pair_changed, on_failed=self._fail,
            on_candidate=self._flush_trickle)
        self.channel = AudioChannel(reactor, send=self.transport.send_media, source=source,
                                    ptime=ptime, rtcp_interval=rtcp_interval, record=record,
                                    record_wav=record_wav, trace=self.trace)
        self.report = MediaReport(self.transport, self.channel)
        self.call: Call | None = None
        self._waiters: list[defer.Deferred[MediaStream]] = []
        self._update_pending = False
        self._closed = False
        # trickle ICE over SIP (RFC 8840): what our INFOs have told the peer, what came in
        self._signalled: set[tuple[int, str, str, int]] = set()   # local candidates sent
        self._end_sent = False
        self._trickle_ready = False     # the dialog can carry our INFO (see signalling_ready)
        self._peer_trickles = False
        self._info_pending = False
        self._remote_fragments: list[SdpFragment] = []   # before checks start
        self.trickle_stats = {"infos_sent": 0, "infos_received": 0, "candidates_sent": 0,
                              "candidates_received": 0}

    # ------------------------------------------------------------------ read-only views
    # what the parts own, under the names callers and tests have always read
    @property
    def state(self) -> str:
        """new, gathering, checking, connected, failed or closed."""
        return self.report.state

    @property
    def cause(self) -> str | None:
        return self.report.cause

    @property
    def ice_used(self) -> bool:
        return self.transport.ice_used

    @property
    def started_at(self) -> float | None:
        return self.report.started_at

    @property
    def connected_at(self) -> float | None:
        return self.report.connected_at

    @property
    def time_to_connected(self) -> float | None:
        """Seconds from the first offer/answer built to ICE completed."""
        return self.report.time_to_connected

    @property
    def updated_offers(self) -> int:
        return self.report.updated_offers

    @property
    def selected_pairs(self) -> dict[int, PairInfo]:
        return self.transport.selected_pairs

    @property
    def checks_sent(self) -> int:
        return self.transport.checks_sent

    @property
    def restarts(self) -> int:
        return self.transport.restarts

    @property
    def stream(self) -> MediaStream | None:
        return self.channel.stream

    # ------------------------------------------------------------------ public API
    def attach(self, call: Call) -> None:
        """The call this session serves (to end it on ICE failure and send the updated
        offer).  The UA calls it when the Call is made; calling it again is harmless."""
        self.call = call

    def ice_info(self) -> dict[str, Any]:
        """What ICE did (:meth:`summary`), as ``Call.ice`` reports it."""
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """What ICE and media did, JSON-ready."""
        return self.report.summary()

    def summary_line(self) -> str:
        """One line on what ICE did: ``ICE: not used by the peer`` for a plain-RTP peer."""
        return self.report.summary_line()

    def wait_connected(self) -> defer.Deferred[MediaStream]:
        """Fires with the MediaStream once ICE completed and media started; fails with
        :class:`IceSessionError` when ICE fails or the session closes first."""
        stream = self.channel.stream
        if stream is not None and self.report.state == "connected":
            return defer.succeed(stream)
        if self.report.state in ("failed", "closed"):
            return defer.fail(IceSessionError(self.report.cause or self.report.state))
        d: defer.Deferred[MediaStream] = defer.Deferred()
        self._waiters.append(d)
        return d

    def send_dtmf(self, digits: str) -> None:
        if not self.channel.started:
            raise IceSessionError("media not started (ICE not connected)")
        self.channel.send_dtmf(digits)

    # ------------------------------------------------------------------ SIP extensions
    @property
    def info_packages(self) -> tuple[str, ...]:
        """The Info-Packages this media receives (the call's Recv-Info, RFC 6086)."""
        return (INFO_PACKAGE,) if self.trickle != "off" else ()

    @property
    def option_tags(self) -> tuple[str, ...]:
        """Option tags the call adds to Supported (RFC 8840 §4.1: ``trickle-ice``)."""
        return (OPTION_TAG,) if self.trickle != "off" else ()

    def on_info(self, package: str, content_type: str | None, body: bytes
                ) -> tuple[int, str | None]:
        """An INFO of one of our packages: a trickle-ice-sdpfrag (RFC 8840 §4.4); the
        status to answer it with (400 for a malformed fragment, 415 for another body)."""
        if package != INFO_PACKAGE:
            return 469, "Bad Info Package"
        ctype = (content_type or "").split(";", 1)[0].strip().lower()
        if ctype != TRICKLE_CONTENT_TYPE:
            return 415, "Unsupported Media Type"
        try:
            frag = parse_fragment(body)
        except SdpError as e:
            self._event(f"trickle: malformed INFO body: {e}")
            return 400, f"Bad trickle-ice-sdpfrag: {e}"[:120]
        self.trickle_stats["infos_received"] += 1
        self._peer_trickles = True
        t = self.transport
        if t.agent is None or t.checks_started_at is None or t.restart_pending:
            self._remote_fragments.append(frag)   # applied when the checks start
        else:
            self._apply_fragment(frag)
        return 200, None

    def signalling_ready(self, peer_options: frozenset[str] = frozenset(), *,
                         force: bool = False) -> None:
        """The call's dialog can carry our trickle INFOs now: as the caller on a 18x with a
        To tag from a peer that supports ``trickle-ice`` (``force``: it was not reliable,
        so an INFO tells the peer the early dialog exists, RFC 8840 §4.3) and on the 2xx;
        as the callee once the ACK came.  The candidates gathered since our offer or
        answer go out, then ``a=end-of-candidates``."""
        if self.trickle == "off" or self._closed:
            return
        if OPTION_TAG in peer_options:
            self._peer_trickles = True
        if not self._peer_trickles:
            return
        first = not self._trickle_ready
        self._trickle_ready = True
        self._flush_trickle(force=force and first)

    # ------------------------------------------------------------------ MediaSession
    async def make_offer(self, *, hold: bool = False, ice_restart: bool = False) -> bytes:
        """Our offer: the first (gathers), or a re-offer for the call's re-INVITE with
        ``hold`` (we offer sendonly, RFC 3264 §8.4) and ``ice_restart`` (new credentials,
        RFC 8445 §9; media stays on the old pair until a new one is selected)."""
        t = self.transport
        if t.agent is None:
            self.report.started_at = self._now()
            self.report.state = "gathering"
            # RTP and RTCP even with rtcp-mux offered: the peer may not multiplex.  Full
            # trickle offers at once what is there; half trickle gathers everything first
            t.trickle = self.trickle != "off"
            await t.gather(controlling=True, components=2, complete=self.trickle != "full")
            if self._closed:             # the call ended while we gathered
                raise IceSessionError("session closed while gathering")
        elif ice_restart and not t.restart_pending:
            t.restart()
            self.report.state = "checking"
        if self.oa.pending_offer is not None:   # our last re-offer failed (488/491/timeout)
            self.oa.cancel_offer()
        try:
            ice = self._local_ice()
            offer = self.oa.create_offer(ice, hold=hold, now=self._now())
        except SdpError as e:
            raise IceSessionError(f"cannot build the offer: {e}") from e
        self._mark_signalled(ice)
        return offer.serialize().encode()

    async def on_answer(self, sdp: bytes) -> None:
        try:
            neg = self.oa.receive_answer(sdp, now=self._now())
        except SdpError as e:
            self._fail(f"bad SDP answer: {e}")
            return
        audio = neg.audio
        t = self.transport
        if audio is not None and audio.ice is None and audio.ice_mismatch:
            # RFC 8839: the peer saw our default destination outside our candidates; with a
            # one-component (mux-only) offer that is a peer without RTCP multiplexing
            hint = (" (peer does not multiplex RTCP: offer with rtcp_mux=False)"
                    if t.components == 1 and not audio.rtcp_mux else "")
            self._fail("ice-failed: peer answered a=ice-mismatch" + hint)
            return
        if audio is None:
            self._fail("no audio")
            return
        if audio.rtcp_mux and t.components == 2 and t.checks_started_at is None:
            t.remove_rtcp_component()        # RFC 5761 §5.1.3: RTCP on component 1
        if audio.ice is None:
            if self.require_ice:
                self._fail("ice-required: peer answered without ICE")
            else:
                self._without_ice(audio)
            return
        self.channel.negotiate(audio)
        if t.checks_started_at is None or t.restart_pending or audio.ice_restart:
            self._start_checks(audio)
        if "trickle" in audio.ice.options:
            self._peer_trickles = True
            self.signalling_ready()   # the answer came in the 2xx: the dialog exists

    async def make_answer(self, offer: bytes) -> bytes:
        self.report.started_at = self._now()
        try:
            remote = parse(offer)
        except SdpError as e:
            raise MediaRejected(f"bad SDP: {e}"[:120], 488) from e
        m = next((m for m in remote.media if m.kind == "audio" and m.port != 0), None)
        if m is None:
            raise MediaRejected("no audio stream offered")
        if (not m.ice_ufrag or not m.ice_pwd) and self.require_ice:
            raise MediaRejected("ICE required (no ice-ufrag/ice-pwd in the offer)")
        self.report.state = "gathering"
        # a trickle offer (RFC 8838 §5): answer with the host candidates, trickle the rest
        peer_trickles = "trickle" in remote.ice_options_for(m)
        trickling = self.trickle != "off" and peer_trickles
        self.transport.trickle = trickling
        self._peer_trickles = trickling
        try:
            await self.transport.gather(
                controlling=False, components=1 if (self.rtcp_mux and m.rtcp_mux) else 2,
                complete=not trickling)
        except Exception as e:
            raise MediaRejected(f"no local media address: {e}"[:120], 488) from e
        if self._closed:
            raise MediaRejected("call ended while gathering", 487)
        if remote.ice_lite:
            self.transport.set_remote_lite()
        return self._answer(offer)

    async def on_reoffer(self, offer: bytes, *, hold: bool = False) -> bytes:
        """The peer's re-offer (re-INVITE or UPDATE); ``hold``: the call holds the peer, our
        answer stays sendonly/inactive."""
        t = self.transport
        if t.agent is None:
            return await self.make_answer(offer)
        try:
            restart = self.oa.is_ice_restart(offer)
        except SdpError as e:
            raise MediaRejected(f"bad SDP: {e}"[:120], 488) from e
        if restart:
            t.restart()
            self.report.state = "checking"
        return self._answer(offer, hold=hold)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.channel.stop()              # RTCP BYE, the recording written
        self.transport.close()
        if self.report.state != "failed":
            self.report.state = "closed"
        call = self.call
        ended = f"call ended ({call.cause})" if call is not None and call.cause else "closed"
        self._notify(IceSessionError(self.report.cause or ended))

    # ------------------------------------------------------------------ internals: SDP
    def _now(self) -> float:
        return float(self.reactor.seconds())

    def _local_ice(self) -> IceParams:
        return self.transport.local_params(connected=self.report.state == "connected")

    def _answer(self, offer: bytes, *, hold: bool = False) -> bytes:
        try:
            ice = self._local_ice()
            answer = self.oa.create_answer(offer, ice, hold=hold, now=self._now())
        except OfferPendingError as e:        # glare (RFC 3261 §14.2): 491
            raise MediaRejected(str(e)[:120], 491) from e
        except SdpError as e:
            raise MediaRejected(str(e)[:120], 488, warn_code=305) from e
        neg = self.oa.negotiated
        audio = neg.audio if neg is not None else None
        if audio is None or (audio.ice is None and (audio.ice_mismatch or self.require_ice)):
            raise MediaRejected("ICE required (mismatch or no ICE in the offer)")
        if audio.ice is None:
            self._without_ice(audio)        # our answer has no ICE attributes (RFC 8839)
            return answer.serialize().encode()
        self._mark_signalled(ice)
        self.channel.negotiate(audio)
        t = self.transport
        if t.checks_started_at is None or t.restart_pending:
            self._start_checks(audio)
        return answer.serialize().encode()

    def _start_checks(self, audio: NegotiatedMedia) -> None:
        assert audio.ice is not None
        self.report.state = "checking"
        self.transport.start_checks(audio.ice)
        early, self._remote_fragments = self._remote_fragments, []
        for frag in early:               # trickled before the checks could start
            self._apply_fragment(frag)

    # ------------------------------------------------------------------ internals: trickle
    def _audio_section(self) -> tuple[str | None, str, str]:
        """mid, proto and first format of our audio m-line (for the fragment's m= line; an
        answer's mid is the offer's, RFC 5888)."""
        local = self.oa.local or self.oa.pending_offer
        m = None if local is None else next(
            (x for x in local.media if x.kind == "audio" and x.port != 0), None)
        if m is None:
            return None, "RTP/AVP", "0"
        return m.mid, m.proto, m.fmt[0] if m.fmt else "0"

    def _apply_fragment(self, frag: SdpFragment) -> None:
        neg = self.oa.negotiated
        audio = neg.audio if neg is not None else None
        if audio is None or audio.ice is None:
            return
        section = frag.section(audio.mid, 0)
        if section is None:
            self._event("trickle: INFO without a section for our audio stream: ignored")
            return
        ufrag, _pwd = frag.credentials(section)
        if ufrag is not None and ufrag != audio.ice.ufrag:
            # RFC 8838 §8.3 / RFC 8840 §4.4: candidates of another ICE generation
            self._event(f"trickle: candidates for ufrag {ufrag} (ours is "
                        f"{audio.ice.ufrag}): ignored")
            return
        self.trickle_stats["candidates_received"] += len(section.candidates)
        self.transport.add_remote_candidates(section.candidates, frag.complete(section))

    def _mark_signalled(self, ice: IceParams) -> None:
        self._signalled.update(_key(c) for c in ice.candidates)
        if ice.end_of_candidates and self.transport.trickle:
            self._end_sent = True

    def _flush_trickle(self, force: bool = False) -> None:
        """Send the candidates gathered since our last offer/answer/INFO in one INFO (one
        INFO at a time, so they arrive in order), with end-of-candidates once complete."""
        t = self.transport
        if (self._closed or not self._trickle_ready or self._info_pending or t.agent is None
                or self.call is None or not t.trickle or t.restart_pending):
            return
        pending = [c for c in t.agent.local_candidates(0) if _key(c) not in self._signalled]
        end = t.gathering_done and not self._end_sent
        if not pending and not end and not force:
            return
        mid, proto, fmt = self._audio_section()
        try:
            body = format_fragment(
                t.agent.local_username, t.agent.local_password,
                [FragmentMedia(0, "audio", mid, tuple(pending), t.gathering_done)],
                proto=proto, fmt=fmt)
        except SdpError as e:
            log.info("cannot write a trickle INFO: {e}", e=e)
            return
        self._signalled.update(_key(c) for c in pending)
        self._end_sent = self._end_sent or t.gathering_done
        self._info_pending = True
        self.trickle_stats["infos_sent"] += 1
        self.trickle_stats["candidates_sent"] += len(pending)
        self._event(f"trickle: INFO with {len(pending)} candidates"
                    + (", end-of-candidates" if t.gathering_done else ""))

        def done(resp: Any) -> None:
            self._info_pending = False
            if resp.status >= 300:
                log.info("trickle INFO answered {s} {r}: no more trickling",
                         s=resp.status, r=resp.reason)
                self._event(f"trickle: INFO answered {resp.status}: stop trickling")
                self._trickle_ready = False
                return
            self._flush_trickle()

        def failed(f: Any) -> None:
            self._info_pending = False
            log.info("trickle INFO failed: {e}", e=f.getErrorMessage())

        self.call.request("INFO", body, TRICKLE_CONTENT_TYPE, headers=[
            ("Info-Package", INFO_PACKAGE), ("Content-Disposition", "Info-Package")],
        ).addCallbacks(done, failed)

    def _without_ice(self, audio: NegotiatedMedia) -> None:
        """The peer does not do ICE (RFC 8839 §3.2.1.1): no checks, media to its default
        destination from our default candidates, at once."""
        if audio.remote_rtp is None:
            self._fail("peer without ICE gave no media address")
            return
        rtcp = None if audio.rtcp_mux else audio.remote_rtcp
        t = self.transport
        if t.ice_used:
            t.without_ice()
            self._event(f"peer without ICE: media to {fmt_address(audio.remote_rtp)}"
                        + (f", RTCP to {fmt_address(rtcp)}" if rtcp else " (rtcp-mux)"))
        self.channel.negotiate(audio)
        if self.channel.started:
            self.channel.set_remote(audio.remote_rtp, rtcp)
            return
        if self.report.connected_at is None:
            self.report.connected_at = self._now()
        self.report.state = "connected"
        if self._start_media(audio.remote_rtp, rtcp):
            self._resolve_waiters()

    # ------------------------------------------------------------------ internals: events up
    def _pair_changed(self) -> None:
        remotes = self.transport.selected_remotes()
        if self.channel.started and self.transport.ice_used and remotes is not None:
            self.channel.set_remote(*remotes)

    def _connected(self) -> None:
        if self._closed:
            return
        if self.report.connected_at is None:
            self.report.connected_at = self._now()
        self.report.state = "connected"
        if self.channel.started:
            self._pair_changed()
        else:
            remotes = self.transport.selected_remotes()
            if remotes is None:
                self._fail("ICE connected but no negotiated audio or selected pair")
                return
            if not self._start_media(*remotes):
                return
        t = self.transport
        if t.controlling and t.remote_rfc5245 and self.updated_offer and not self._update_pending:
            # RFC 5245 §9.1.2.2: tell a 5245 peer which pair was nominated
            self._update_pending = True
            self.reactor.callLater(0, self._send_updated_offer)
        self._resolve_waiters()

    def _start_media(self, remote: Address, remote_rtcp: Address | None) -> bool:
        if not self.channel.start(remote, remote_rtcp):
            self._fail("no negotiated audio")
            return False
        self.transport.deliver_media_to(self.channel.datagram_received)
        return True

    def _resolve_waiters(self) -> None:
        stream = self.channel.stream
        if stream is None:
            return
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(stream)

    def _send_updated_offer(self) -> None:
        call = self.call
        if call is None or call.state is not CallState.CONFIRMED or self._closed:
            self._update_pending = False
            return

        def done(result: Any) -> Any:
            self._update_pending = False
            self.report.updated_offers += 1
            return result

        def failed(f: Any) -> None:
            self._update_pending = False
            log.info("updated offer failed: {e}", e=f.getErrorMessage())

        call.reinvite().addCallbacks(done, failed)

    def _fail(self, cause: str) -> None:
        if self._closed or self.report.state == "failed":
            return
        self.report.state = "failed"
        self.report.cause = cause
        self._event(f"call ends: {cause}")
        log.info("ICE session ends the call: {cause}", cause=cause)
        if self.call is not None:
            # BYE once answered; before that never a global 6xx (§16.7 stops a forking
            # proxy from trying other branches): 488 with the reason in a Warning
            self.call.end(_end_cause(cause), 488, cause)   # closes this session
        self._notify(IceSessionError(cause))   # waiters learn it once the call has ended

    def _notify(self, err: IceSessionError) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(err)

    def _event(self, summary: str) -> None:
        self.trace.add(TraceRecord(self._now(), "event", summary, protocol="ice"))


def _key(c: Candidate) -> tuple[int, str, str, int]:
    return (c.component, c.transport, c.address, c.port)


def _end_cause(cause: str) -> EndCause:
    if cause.startswith("ice-required"):
        return EndCause.ICE_REQUIRED
    if cause.startswith("ice-consent"):
        return EndCause.ICE_CONSENT
    if cause.startswith("ice"):
        return EndCause.ICE_FAILED
    return EndCause.MEDIA


def ice_info(call: Call) -> dict[str, Any] | None:
    """The ICE summary of a call whose media is an :class:`IceMediaSession` (else None)."""
    media = call.media
    return media.summary() if isinstance(media, IceMediaSession) else None


def candidate_summary(c: Candidate) -> str:
    return f"{c.type.value} {c.address}:{c.port}"


def media_options(config: Config) -> dict[str, Any]:
    """IceMediaSession keyword arguments from the configuration's [ice] and [media]."""
    import sdp
    from ice.gathering import parse_turn_uri

    ice = config.ice
    codecs = [getattr(sdp, c.upper()) for c in config.media.codecs]
    if config.media.dtmf:
        codecs.append(sdp.TELEPHONE_EVENT)
    turns = []
    for t in ice.turn_servers:   # turn: UDP or ?transport=tcp, turns: TLS (RFC 7065)
        turns.append(parse_turn_uri(t.uri, t.username, t.password, tls_ca=t.tls_ca))
    return {
        "local_addresses": tuple(ice.addresses) if ice.addresses or not ice.interfaces else None,
        "interfaces": tuple(ice.interfaces) if ice.interfaces else None,
        "stun_servers": tuple(ice.stun_servers),
        "turn_servers": tuple(turns),
        "policy": ice.policy,
        "rtcp_mux": ice.rtcp_mux,
        "ta": ice.ta_ms / 1000.0,
        "nomination": ice.nomination,
        "lite": ice.lite,
        "max_pairs": ice.max_pairs,
        "failed_timeout": ice.failed_timeout_s,
        "trickle": ice.trickle,
        "ptime": config.media.ptime / 1000.0,
        "codecs": tuple(codecs),
    }
