"""ICE-negotiated media for a SIP call: :class:`IceMediaSession`, the UA's MediaSession hook.

One session per call composes the three layers::

    sdp.OfferAnswer   (RFC 3264 + RFC 8839 attributes)  -- what goes in the INVITE / 200
    ice.Agent         (RFC 8445) on ice.drivers.agent.TwistedAgent -- one UDP socket per
                      component, STUN checks, TURN, consent; every non-STUN datagram comes back
                      as application data
    siplink.media.stream.MediaStream (RTP/RTCP, G.711, RFC 4733) on siplink.media.driver.MediaDriver

Offerer (``make_offer``): gather (restricted to ``local_addresses``/``interfaces``), offer
our candidates with the default candidate in c=/m=; on the answer, start checks as the
controlling agent.  Answerer (``make_answer``): gather, answer, start checks as controlled.
The MediaStream starts only when ICE completes (``IceCompleted``), on the selected pair, and
is fed from the same sockets after demultiplexing (RFC 7983: RTP/RTCP only, anything else is
counted and dropped).  When we control and the peer is RFC 5245-style (no ``ice2`` option),
a re-INVITE carries the updated offer (selected candidates + ``a=remote-candidates``) once the
pair is nominated.  :meth:`hold` / :meth:`resume` / :meth:`restart_ice` send re-INVITEs; an
ICE restart offered by the peer is followed.  ICE failure or lost consent ends the call with a
BYE and the cause ``ice-failed: ...`` / ``ice-consent-lost``.

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

The UA attaches the session to its Call when the Call is made (:meth:`attach`, idempotent).
What ICE did is visible on the session (``call.media``; ``call.ice``, :func:`ice_info`):
``selected_pairs`` (per component: local/remote type and address), ``time_to_connected``,
``checks_sent``, ``state``, ``trace`` (SDP, ICE and RTP records) and :meth:`summary`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from ice.address import Address
from ice.agent import Agent
from ice.candidate import Candidate
from ice.demux import PacketKind, classify
from ice.drivers.agent import TwistedAgent
from ice.events import (
    CheckSent,
    ConsentExpired,
    Event,
    GatheringFailed,
    IceCompleted,
    IceFailed,
    RelayError,
    SelectedPairChanged,
)
from ice.gathering import StunServer, TurnServer
from ice.trace import Trace, TraceRecord
from sdp import DEFAULT_CODECS, Codec, IceParams, OfferAnswer, SdpError, parse
from sdp.errors import OfferPendingError
from sdp.ice import RemoteCandidate
from sdp.offeranswer import NegotiatedMedia, RemoteIce
from siplink.media.driver import MediaDriver
from siplink.media.g711 import CODECS, PCMU, G711Codec
from siplink.media.stream import MediaEvent, MediaStream, PcmSource, WavSource
from siplink.media.tone import ToneGenerator
from siplink.ua.useragent import CallState, EndCause, MediaRejected

if TYPE_CHECKING:
    from siplink.ua.config import Config
    from siplink.ua.useragent import Call, UserAgent

__all__ = ["IceMediaSession", "IceSessionError", "PairInfo", "ice_info", "media_options"]

log = Logger(namespace="siplink.media.icesession")




class IceSessionError(Exception):
    """ICE did not connect (``cause`` as the call ends with) or the session closed first."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True, slots=True)
class PairInfo:
    """The selected pair of one component, as the call reports it."""

    component: int
    local_type: str
    local_address: Address
    remote_type: str
    remote_address: Address

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component,
                "local": {"type": self.local_type, "address": _fmt(self.local_address)},
                "remote": {"type": self.remote_type, "address": _fmt(self.remote_address)}}

    def __str__(self) -> str:
        return (f"c{self.component} {self.local_type} {_fmt(self.local_address)} -> "
                f"{self.remote_type} {_fmt(self.remote_address)}")


def _fmt(addr: Address) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


class IceMediaSession:
    """The :class:`~siplink.ua.useragent.MediaSession` of one call, with ICE (module docstring).

    ``local_addresses``/``interfaces``: where host candidates are gathered (default
    127.0.0.1 only); ``stun_servers``/``turn_servers`` and ``policy="relay"`` as for
    :class:`ice.agent.Agent`.  ``rtcp_mux``: offer RTCP multiplexed on one component (else two
    components).  ``source``: what we play (``tone`` Hz or a ``wav`` file are shortcuts; silence
    by default); ``record_wav``: write the received audio there when the call ends.
    ``ice2``: announce ``a=ice-options:ice2`` (RFC 8445 agent; a peer that does not is treated
    as RFC 5245-style).  ``bind_context``: a context-manager factory around socket binding
    (tests bind inside a network namespace).  ``ua``/:meth:`attach`: how the session finds
    its :class:`Call` to end it or send re-INVITEs (found in ``ua.calls`` if not attached).
    ``require_ice``: refuse a peer without ICE (default: plain RTP to its c=/m= address).
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
        ua: UserAgent | None = None,
        trace: Trace | None = None,
        bind_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.reactor = reactor
        self.local_addresses = tuple(local_addresses) if local_addresses is not None else None
        self.interfaces = tuple(interfaces) if interfaces is not None else None
        if self.local_addresses is None and self.interfaces is None:
            self.local_addresses = ("127.0.0.1",)
        self.stun_servers = tuple(stun_servers)
        self.turn_servers = tuple(turn_servers)
        self.policy = policy
        self.rtcp_mux = rtcp_mux
        self.lite = lite              # an ICE-lite agent: a=ice-lite, answers checks only
        self.max_pairs = max_pairs
        self.require_ice = require_ice
        self.ptime = ptime
        self.rtcp_interval = rtcp_interval
        self.ta = ta
        self.nomination = nomination
        self.nomination_delay = nomination_delay
        self.failed_timeout = failed_timeout
        self.consent_interval = consent_interval
        self.consent_timeout = consent_timeout
        self.ice2 = ice2
        self.updated_offer = updated_offer
        self.record = record
        self.ua = ua
        self.bind_context = bind_context
        if source is None and wav is not None:
            source = WavSource.from_file(wav)     # MediaError for a WAV we cannot play
        self.source: PcmSource | None = source if source is not None else (
            ToneGenerator(tone) if tone is not None else None)
        self.record_wav = record_wav
        self.trace = trace if trace is not None else Trace()
        first = (self.local_addresses or ("0.0.0.0",))[0]
        self.oa = OfferAnswer(first, codecs=codecs, rtcp_mux=rtcp_mux,
                              ptime=ptime * 1000, username="siplink", trace=self.trace)
        self.agent: Agent | None = None
        self.driver: TwistedAgent | None = None
        self.call: Call | None = None
        self.controlling: bool | None = None
        self.components = 1
        self.stream: MediaStream | None = None
        self.media: MediaDriver | None = None
        self.media_events: list[MediaEvent] = []
        self.held = False
        self.state = "new"          # new, gathering, checking, connected, failed, closed
        self.cause: str | None = None
        self.started_at: float | None = None     # make_offer / make_answer first called
        self.checks_started_at: float | None = None
        self.connected_at: float | None = None   # ICE completed (first time)
        self.checks_sent = 0
        self.restarts = 0
        self.updated_offers = 0
        self.remote_rfc5245 = False
        self.ice_used = True              # False once the peer's SDP had no ICE (no checks)
        self.selected_pairs: dict[int, PairInfo] = {}
        self.gathering_failures: list[str] = []
        self.dropped_before_media = 0     # RTP/RTCP that arrived before ICE completed
        self.early_media: list[tuple[int, bytes, Address]] = []   # ... on a valid pair: kept
        self.kept_before_media = 0
        self.dropped_other = 0            # non-STUN, non-RTP datagrams (DTLS, garbage)
        self.media_in: dict[str, int] = {}  # "rtp/1", "rtcp/2"...: media datagrams per
                                            # kind and component, as demultiplexed
        self._waiters: list[defer.Deferred[MediaStream]] = []
        self._restart_pending = False
        self._update_pending = False
        self._closed = False

    # ------------------------------------------------------------------ public API
    def attach(self, call: Call) -> None:
        """The call this session serves (to end it on ICE failure and send re-INVITEs).
        The UA calls it when the Call is made; calling it again is harmless."""
        self.call = call

    def ice_info(self) -> dict[str, Any]:
        """What ICE did (:meth:`summary`), as ``Call.ice`` reports it."""
        return self.summary()

    def wait_connected(self) -> defer.Deferred[MediaStream]:
        """Fires with the MediaStream once ICE completed and media started; fails with
        :class:`IceSessionError` when ICE fails or the session closes first."""
        if self.stream is not None and self.state == "connected":
            return defer.succeed(self.stream)
        if self.state in ("failed", "closed"):
            return defer.fail(IceSessionError(self.cause or self.state))
        d: defer.Deferred[MediaStream] = defer.Deferred()
        self._waiters.append(d)
        return d

    @property
    def time_to_connected(self) -> float | None:
        """Seconds from the first offer/answer built to ICE completed."""
        if self.connected_at is None or self.started_at is None:
            return None
        return self.connected_at - self.started_at

    def send_dtmf(self, digits: str) -> None:
        if self.stream is None:
            raise IceSessionError("media not started (ICE not connected)")
        self.stream.send_dtmf(digits)

    def hold(self) -> defer.Deferred[Any]:
        """Put the peer on hold (re-INVITE, we offer sendonly)."""
        self.held = True
        return self._reinvite()

    def resume(self) -> defer.Deferred[Any]:
        self.held = False
        return self._reinvite()

    def restart_ice(self) -> defer.Deferred[Any]:
        """ICE restart by re-INVITE (RFC 8445 §9): new credentials, new checks; media stays
        on the old pair until a new one is selected."""
        self._restart_pending = True
        return self._reinvite()

    def summary(self) -> dict[str, Any]:
        """What ICE and media did, JSON-ready."""
        out: dict[str, Any] = {
            "state": self.state,
            "ice_used": self.ice_used,
            "cause": self.cause,
            "role": None if self.controlling is None else (
                "controlling" if self.controlling else "controlled"),
            "selected_pairs": [p.as_dict() for _, p in sorted(self.selected_pairs.items())],
            "time_to_connected_ms": (None if self.time_to_connected is None
                                     else round(self.time_to_connected * 1000, 1)),
            "checks_sent": self.checks_sent,
            "restarts": self.restarts,
            "updated_offers": self.updated_offers,
        }
        if not self.ice_used and self.stream is not None:
            out["media_to"] = {"rtp": _fmt(self.stream.remote) if self.stream.remote else None,
                               "rtcp": (_fmt(self.stream.remote_rtcp)
                                        if self.stream.remote_rtcp else None)}
        if self.stream is not None:
            st = self.stream.stats()
            out["media"] = {
                "codec": self.stream.codec.name,
                "packets_sent": st.packets_sent, "packets_received": st.packets_received,
                "packets_lost": st.packets_lost, "remote_packets_lost": st.remote_packets_lost,
                "jitter_ms": round(st.jitter * 1000, 2),
                "rtt_ms": None if st.rtt is None else round(st.rtt * 1000, 2),
                "rtcp_sent": st.rtcp_sent, "rtcp_received": st.rtcp_received,
                "dtmf_sent": st.dtmf_sent, "dtmf_received": st.dtmf_received,
                "dropped_before_start": st.dropped_before_start + self.dropped_before_media,
                "kept_before_start": self.kept_before_media,
            }
        return out

    def summary_line(self) -> str:
        """One line on what ICE did: ``ICE: not used by the peer`` for a plain-RTP peer."""
        if not self.ice_used:
            return "ICE: not used by the peer"
        pairs = ", ".join(str(p) for _, p in sorted(self.selected_pairs.items()))
        ttc = self.time_to_connected
        return (f"ICE: {self.state}" + (f" in {ttc * 1000:.0f} ms" if ttc is not None else "")
                + (f": {pairs}" if pairs else "") + (f" ({self.cause})" if self.cause else ""))

    # ------------------------------------------------------------------ MediaSession
    async def make_offer(self) -> bytes:
        now = self._now()
        if self.agent is None:
            self.started_at = now
            # RTP and RTCP even with rtcp-mux offered: the peer may not multiplex
            await self._create_agent(controlling=True, components=2)
            if self._closed:             # the call ended while we gathered
                raise IceSessionError("session closed while gathering")
        elif self._restart_pending:
            assert self.driver is not None
            self.driver.restart()
            self.restarts += 1
            self.state = "checking"
        if self.oa.pending_offer is not None:   # our last re-offer failed (488/491/timeout)
            self.oa.cancel_offer()
        try:
            offer = self.oa.create_offer(self._ice_params(), hold=self.held, now=self._now())
        except SdpError as e:
            raise IceSessionError(f"cannot build the offer: {e}") from e
        return offer.serialize().encode()

    async def on_answer(self, sdp: bytes) -> None:
        self._find_call()
        try:
            neg = self.oa.receive_answer(sdp, now=self._now())
        except SdpError as e:
            self._fail(f"bad SDP answer: {e}")
            return
        audio = neg.audio
        if audio is not None and audio.ice is None and audio.ice_mismatch:
            # RFC 8839: the peer saw our default destination outside our candidates; with a
            # one-component (mux-only) offer that is a peer without RTCP multiplexing
            hint = (" (peer does not multiplex RTCP: offer with rtcp_mux=False)"
                    if self.components == 1 and not audio.rtcp_mux else "")
            self._fail("ice-failed: peer answered a=ice-mismatch" + hint)
            return
        if audio is None:
            self._fail("no audio")
            return
        if audio.rtcp_mux and self.components == 2 and self.checks_started_at is None:
            # RFC 5761 §5.1.3: the answer accepted rtcp-mux, RTCP goes on component 1
            assert self.driver is not None
            self.driver.remove_component(0, 2)
            self.components = 1
            self._event("answer accepted rtcp-mux: component 2 removed")
        if audio.ice is None:
            if self.require_ice:
                self._fail("ice-required: peer answered without ICE")
            else:
                self._without_ice(audio)
            return
        if self.checks_started_at is None or self._restart_pending or audio.ice_restart:
            self._restart_pending = False
            self._start_checks(audio.ice)
        self._apply_direction(audio)

    async def make_answer(self, offer: bytes) -> bytes:
        self.started_at = self._now()
        self._find_call()
        try:
            remote = parse(offer)
        except SdpError as e:
            raise MediaRejected(f"bad SDP: {e}"[:120], 488) from e
        m = next((m for m in remote.media if m.kind == "audio" and m.port != 0), None)
        if m is None:
            raise MediaRejected("no audio stream offered")
        if (not m.ice_ufrag or not m.ice_pwd) and self.require_ice:
            raise MediaRejected("ICE required (no ice-ufrag/ice-pwd in the offer)")
        try:
            await self._create_agent(controlling=False,
                                     components=1 if (self.rtcp_mux and m.rtcp_mux) else 2)
        except Exception as e:
            raise MediaRejected(f"no local media address: {e}"[:120], 488) from e
        if self._closed:
            raise MediaRejected("call ended while gathering", 487)
        if remote.ice_lite:
            assert self.agent is not None
            self.agent.set_remote_lite()
        answer = self._answer(offer)
        return answer

    async def on_reoffer(self, offer: bytes) -> bytes:
        if self.agent is None:
            return await self.make_answer(offer)
        assert self.driver is not None
        try:
            restart = self.oa.is_ice_restart(offer)
        except SdpError as e:
            raise MediaRejected(f"bad SDP: {e}"[:120], 488) from e
        if restart:
            self.driver.restart()
            self.restarts += 1
            self.state = "checking"
        return self._answer(offer, restart=restart)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.media is not None:
            self.media.stop("call ended")
        if self.stream is not None and self.record_wav:
            try:
                self.stream.write_wav(self.record_wav)
            except OSError as e:
                log.warn("cannot write {path}: {e}", path=self.record_wav, e=e)
        if self.driver is not None:
            self.driver.close().addErrback(lambda f: log.failure("ICE close failed", f))
        if self.state not in ("failed",):
            self.state = "closed"
        call = self._find_call()
        ended = f"call ended ({call.cause})" if call is not None and call.cause else "closed"
        self._notify(IceSessionError(self.cause or ended))

    # ------------------------------------------------------------------ internals: set-up
    def _now(self) -> float:
        return float(self.reactor.seconds())

    async def _create_agent(self, *, controlling: bool, components: int) -> None:
        self.controlling = controlling
        self.components = components
        self.state = "gathering"
        agent = Agent(controlling, components=components, ta=self.ta,
                      nomination=self.nomination, lite=self.lite, max_pairs=self.max_pairs,
                      stun_servers=self.stun_servers,
                      turn_servers=self.turn_servers, local_addresses=self.local_addresses,
                      interfaces=self.interfaces, policy=self.policy,
                      failed_timeout=self.failed_timeout,
                      nomination_delay=self.nomination_delay,
                      consent_interval=self.consent_interval,
                      consent_timeout=self.consent_timeout)
        agent.trace = self.trace
        self.agent = agent
        self.driver = TwistedAgent(agent, self.reactor, on_event=self._on_ice_event,
                                   on_data=self._on_data)
        ctx = self.bind_context() if self.bind_context is not None else contextlib.nullcontext()
        with ctx:   # gathering opens TURN's TCP/TLS connections: their sockets too
            self.driver.bind()
            gathered = self.driver.gather()
        cands = await gathered
        if not cands:
            raise IceSessionError("no candidate gathered")
        self._event(f"gathered {len(cands)} candidates: " + "; ".join(str(c) for c in cands))

    def _ice_params(self) -> IceParams:
        assert self.agent is not None
        cands = tuple(self.agent.local_candidates(0))
        options = ("ice2",) if self.ice2 else ()
        selected = [self.agent.selected_pair(0, c) for c in range(1, self.components + 1)]
        if self.state == "connected" and all(p is not None for p in selected):
            pairs = [p for p in selected if p is not None]
            defaults = tuple(p.local for p in pairs)
            if self.controlling:
                # RFC 8839 §4.2.4 / RFC 5245 §9.1.2.2: after nomination, the controlling
                # agent's offer lists the selected candidates and a=remote-candidates
                return IceParams(
                    self.agent.local_username, self.agent.local_password,
                    candidates=defaults, default_candidates=defaults,
                    remote_candidates=tuple(RemoteCandidate(p.component, *p.remote_addr)
                                            for p in pairs),
                    options=options, lite=self.lite)
            return IceParams(self.agent.local_username, self.agent.local_password,
                             candidates=tuple(dict.fromkeys(cands + defaults)),
                             default_candidates=defaults, options=options, lite=self.lite)
        defaults = tuple(d for c in range(1, self.components + 1)
                         if (d := self.agent.default_candidate(0, c)) is not None)
        return IceParams(self.agent.local_username, self.agent.local_password,
                         candidates=cands, default_candidates=defaults, options=options,
                         lite=self.lite)

    def _answer(self, offer: bytes, *, restart: bool = False) -> bytes:
        try:
            answer = self.oa.create_answer(offer, self._ice_params(), hold=self.held,
                                           now=self._now())
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
        if self.checks_started_at is None or restart:
            self._start_checks(audio.ice)
        self._apply_direction(audio)
        return answer.serialize().encode()

    def _start_checks(self, rice: RemoteIce) -> None:
        assert self.agent is not None and self.driver is not None
        now = self._now()
        self.remote_rfc5245 = "ice2" not in rice.options
        self.agent.set_remote_credentials(0, rice.ufrag, rice.pwd)
        if rice.lite:
            self.agent.set_remote_lite()
        for c in rice.candidates:
            self.agent.add_remote_candidate(0, c, now)
        if rice.end_of_candidates:
            self.agent.end_of_candidates(0)
        if self.checks_started_at is None:
            self.checks_started_at = now
        self.state = "checking"
        self._event(f"checks start as {'controlling' if self.agent.controlling else 'controlled'}"
                    f" with {len(rice.candidates)} remote candidates"
                    + (" (RFC 5245 peer)" if self.remote_rfc5245 else ""))
        self.driver.start().addErrback(lambda f: None)   # outcome comes as events

    def _without_ice(self, audio: NegotiatedMedia) -> None:
        """The peer does not do ICE (RFC 8839 §3.2.1.1): no checks, media to its default
        destination from our default candidates, at once."""
        if audio.remote_rtp is None:
            self._fail("peer without ICE gave no media address")
            return
        rtcp = None if audio.rtcp_mux else audio.remote_rtcp
        if self.ice_used:
            self.ice_used = False
            self._event(f"peer without ICE: media to {_fmt(audio.remote_rtp)}"
                        + (f", RTCP to {_fmt(rtcp)}" if rtcp else " (rtcp-mux)"))
        if self.stream is None:
            if self.connected_at is None:
                self.connected_at = self._now()
            self.state = "connected"
            self._start_media(audio.remote_rtp, rtcp)
            stream = self.stream
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                if stream is not None:
                    d.callback(stream)
        else:
            self.stream.set_remote(audio.remote_rtp, rtcp)
            self._apply_direction(audio)

    # ------------------------------------------------------------------ internals: ICE events
    def _on_ice_event(self, ev: Event) -> None:
        if isinstance(ev, CheckSent):
            self.checks_sent += 1
        elif isinstance(ev, SelectedPairChanged):
            self.selected_pairs[ev.component] = PairInfo(
                ev.component, ev.local.type.value, ev.local.transport_address,
                ev.remote.type.value, ev.remote.transport_address)
            if self.stream is not None:
                self._point_media()
        elif isinstance(ev, IceCompleted):
            self._connected()
        elif isinstance(ev, IceFailed):
            self._fail(f"ice-failed: {ev.reason}")
        elif isinstance(ev, ConsentExpired):
            self._fail("ice-consent-lost")
        elif isinstance(ev, GatheringFailed | RelayError):
            self.gathering_failures.append(f"{ev.server[0]}:{ev.server[1]}: {ev.reason}")

    def _connected(self) -> None:
        if self._closed:
            return
        now = self._now()
        first = self.connected_at is None
        if first:
            self.connected_at = now
        self.state = "connected"
        for c in range(1, self.components + 1):
            pair = self.agent.selected_pair(0, c) if self.agent is not None else None
            if pair is not None and c not in self.selected_pairs:
                self.selected_pairs[c] = PairInfo(c, pair.local.type.value,
                                                  pair.local.transport_address,
                                                  pair.remote.type.value, pair.remote_addr)
        self._event("ICE connected: " + ", ".join(str(p) for _, p in
                                                 sorted(self.selected_pairs.items())))
        if self.stream is None:
            self._start_media()
        else:
            self._point_media()
        if (self.controlling and self.remote_rfc5245 and self.updated_offer
                and not self._update_pending):
            # RFC 5245 §9.1.2.2: tell a 5245 peer which pair was nominated
            self._update_pending = True
            self.reactor.callLater(0, self._send_updated_offer)
        stream = self.stream
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if stream is not None:
                d.callback(stream)

    def _send_updated_offer(self) -> None:
        call = self._find_call()
        if call is None or call.state is not CallState.CONFIRMED or self._closed:
            self._update_pending = False
            return

        def done(result: Any) -> Any:
            self._update_pending = False
            self.updated_offers += 1
            return result

        def failed(f: Any) -> None:
            self._update_pending = False
            log.info("updated offer failed: {e}", e=f.getErrorMessage())

        call.reinvite().addCallbacks(done, failed)

    def _fail(self, cause: str) -> None:
        if self._closed or self.state == "failed":
            return
        self.state = "failed"
        self.cause = cause
        self._event(f"call ends: {cause}")
        log.info("ICE session ends the call: {cause}", cause=cause)
        call = self._find_call()
        if call is not None:
            # BYE once answered; before that never a global 6xx (§16.7 stops a forking
            # proxy from trying other branches): 488 with the reason in a Warning
            call.end(_end_cause(cause), 488, cause)   # closes this session
        self._notify(IceSessionError(cause))   # waiters learn it once the call has ended

    def _notify(self, err: IceSessionError) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(err)

    def _find_call(self) -> Call | None:
        if self.call is not None:
            return self.call
        if self.ua is not None:
            for call in self.ua.calls.values():
                if call.media is self:
                    self.call = call
                    return call
        return None

    def _reinvite(self) -> defer.Deferred[Any]:
        call = self._find_call()
        if call is None:
            return defer.fail(IceSessionError("session not attached to a call"))
        return call.reinvite()

    # ------------------------------------------------------------------ internals: media
    def _codec(self, audio: NegotiatedMedia) -> G711Codec:
        sc = audio.send_codec
        for c in CODECS:
            if sc is not None and c.name.lower() == sc.name.lower():
                return c
        return PCMU

    def _start_media(self, remote: Address | None = None,
                     remote_rtcp: Address | None = None) -> None:
        """Media on the selected pairs, or to ``remote``/``remote_rtcp`` without ICE."""
        neg = self.oa.negotiated
        audio = neg.audio if neg is not None else None
        if remote is None:
            pair = self.agent.selected_pair(0, 1) if self.agent is not None else None
            if audio is None or pair is None:
                self._fail("ICE connected but no negotiated audio or selected pair")
                return
            remote = pair.remote_addr
            rtcp_pair = self.agent.selected_pair(0, 2) if (
                self.agent is not None and self.components == 2) else None
            remote_rtcp = rtcp_pair.remote_addr if rtcp_pair is not None else None
        if audio is None:
            self._fail("no negotiated audio")
            return
        te = audio.telephone_event
        self.stream = MediaStream(
            codec=self._codec(audio), ptime=self.ptime, source=self.source,
            remote=remote, remote_rtcp=remote_rtcp,
            dtmf_payload_type=te.pt if te is not None else None,
            rtcp_interval=self.rtcp_interval, record=self.record, trace=self.trace)
        self.media = MediaDriver(self.stream, self._send_media, self.reactor,
                                 on_event=self._on_media_event)
        self.media.start()
        self._apply_direction(audio)
        early, self.early_media = self.early_media, []
        for component, data, addr in early:
            self._on_data(0, component, data, addr)

    def _point_media(self) -> None:
        if self.stream is None or self.agent is None or not self.ice_used:
            return
        pair = self.agent.selected_pair(0, 1)
        rtcp = self.agent.selected_pair(0, 2) if self.components == 2 else None
        if pair is not None:
            self.stream.set_remote(pair.remote_addr,
                                   rtcp.remote_addr if rtcp is not None else None)

    def _apply_direction(self, audio: NegotiatedMedia) -> None:
        if self.stream is not None:
            self.stream.set_sending(audio.direction in ("sendrecv", "sendonly"))

    def _send_media(self, data: bytes, addr: Address) -> None:
        if self.driver is None or self._closed and self.media is None:
            return
        comp = 1
        if (self.components == 2 and self.stream is not None
                and self.stream.remote_rtcp is not None and addr == self.stream.remote_rtcp
                and self.stream.remote_rtcp != self.stream.remote):
            comp = 2
        if not self.ice_used:
            self.driver.send_without_ice(0, comp, data, addr)
            return
        self.driver.send(0, comp, data)

    def _on_data(self, stream: int, component: int, data: bytes, remote: Address) -> None:
        kind = classify(data)
        if kind not in (PacketKind.RTP, PacketKind.RTCP):
            self.dropped_other += 1
            return
        if self.media is None:
            # RFC 8445 §12.2: media on a valid (checked, not yet nominated) pair is kept for
            # when media starts; from an address no check has passed it is dropped
            if (self.agent is not None and len(self.early_media) < 100
                    and self.agent.is_valid(stream, component, remote)):
                self.early_media.append((component, data, remote))
                self.kept_before_media += 1
                return
            self.dropped_before_media += 1     # no media before ICE completes
            return
        key = f"{kind.value}/{component}"
        self.media_in[key] = self.media_in.get(key, 0) + 1
        self.media.datagram_received(data, remote)

    def _on_media_event(self, ev: MediaEvent) -> None:
        if len(self.media_events) < 10_000:
            self.media_events.append(ev)

    def _event(self, summary: str) -> None:
        self.trace.add(TraceRecord(self._now(), "event", summary, protocol="ice"))


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
        "ptime": config.media.ptime / 1000.0,
        "codecs": tuple(codecs),
    }
