"""The ICE transport of one call's media: :class:`IceTransport` (RFC 8445 agent + driver +
RFC 7983 demultiplexing).

It owns the :class:`ice.agent.Agent` and its Twisted driver
(:class:`ice.drivers.agent.TwistedAgent`): one UDP socket per component carrying STUN, TURN,
RTP and RTCP; gathering, the checks, the selected pairs, consent and ICE restarts.  What
arrives that is not STUN is demultiplexed here (RFC 7983): RTP/RTCP goes to the sink given
to :meth:`IceTransport.deliver_media_to` once the audio channel runs (before that, media on a
valid pair is kept for it, RFC 8445 §12.2), anything else is counted and dropped.

It knows nothing of SDP or of the call: the session hands it the peer's ICE parameters
(:meth:`IceTransport.start_checks`) and asks it for ours (:meth:`IceTransport.local_params`);
it reports upward only through its callbacks (``on_connected``, ``on_pair_changed``,
``on_failed``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from twisted.logger import Logger

from ice.address import Address
from ice.agent import Agent
from ice.candidate import Candidate
from ice.demux import PacketKind, classify
from ice.drivers.agent import TwistedAgent
from ice.events import (
    CandidateGathered,
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
from sdp import IceParams
from sdp.ice import RemoteCandidate
from sdp.offeranswer import RemoteIce
from siplink.media.report import PairInfo

__all__ = ["IceSessionError", "IceTransport"]

log = Logger(namespace="siplink.media.ice_transport")


class IceSessionError(Exception):
    """ICE did not connect (``cause`` as the call ends with) or the session closed first."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class IceTransport:
    """ICE for one media stream (module docstring).  The keyword settings are those of
    :class:`ice.agent.Agent`; ``ice2`` announces ``a=ice-options:ice2``; ``bind_context``
    wraps socket binding (tests bind inside a network namespace)."""

    def __init__(
        self,
        reactor: Any,
        *,
        local_addresses: Sequence[str] | None,
        interfaces: Sequence[str] | None,
        stun_servers: Sequence[StunServer | Address | str] = (),
        turn_servers: Sequence[TurnServer] = (),
        policy: str = "all",
        lite: bool = False,
        max_pairs: int = 100,
        ta: float = 0.02,
        nomination: str = "regular",
        nomination_delay: float = 1.0,
        failed_timeout: float = 30.0,
        consent_interval: float = 5.0,
        consent_timeout: float = 30.0,
        ice2: bool = True,
        trace: Trace,
        bind_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_pair_changed: Callable[[], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_candidate: Callable[[], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.local_addresses = tuple(local_addresses) if local_addresses is not None else None
        self.interfaces = tuple(interfaces) if interfaces is not None else None
        self.stun_servers = tuple(stun_servers)
        self.turn_servers = tuple(turn_servers)
        self.policy = policy
        self.lite = lite              # an ICE-lite agent: a=ice-lite, answers checks only
        self.max_pairs = max_pairs
        self.ta = ta
        self.nomination = nomination
        self.nomination_delay = nomination_delay
        self.failed_timeout = failed_timeout
        self.consent_interval = consent_interval
        self.consent_timeout = consent_timeout
        self.ice2 = ice2
        self.trickle = False          # a=ice-options:trickle in our offers and answers
        self.trace = trace
        self.bind_context = bind_context
        self.on_connected = on_connected
        self.on_pair_changed = on_pair_changed
        self.on_failed = on_failed
        self.on_candidate = on_candidate   # trickle: a candidate gathered, or gathering done
        self.gathering_done = False
        self.agent: Agent | None = None
        self.driver: TwistedAgent | None = None
        self.controlling: bool | None = None
        self.components = 1
        self.ice_used = True              # False once the peer's SDP had no ICE (no checks)
        self.checks_started_at: float | None = None
        self.checks_sent = 0
        self.restarts = 0
        self.restart_pending = False      # we restarted: checks start again on the answer
        self.remote_rfc5245 = False
        self.selected_pairs: dict[int, PairInfo] = {}
        self.gathering_failures: list[str] = []
        # where demultiplexed RTP/RTCP goes: the audio channel, once media started
        self.media_sink: Callable[[bytes, Address], None] | None = None
        self.dropped_before_media = 0     # RTP/RTCP that arrived before ICE completed
        self.early_media: list[tuple[int, bytes, Address]] = []   # ... on a valid pair: kept
        self.kept_before_media = 0
        self.dropped_other = 0            # non-STUN, non-RTP datagrams (DTLS, garbage)
        self.media_in: dict[str, int] = {}  # "rtp/1", "rtcp/2"...: media datagrams per
                                            # kind and component, as demultiplexed
        self._closed = False

    # ------------------------------------------------------------------ set-up
    async def gather(self, *, controlling: bool, components: int, complete: bool = True
                     ) -> None:
        """Create the agent, bind its sockets and gather; raises :class:`IceSessionError`
        when no candidate was gathered.  ``complete=False`` (trickle ICE, RFC 8838): return
        once the host candidates are there; the others come later (``on_candidate``, then
        ``gathering_done``)."""
        self.controlling = controlling
        self.components = components
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
        if not complete and not gathered.called:
            gathered.addCallbacks(self._gathered_later, self._gathering_failed)
            self._event("trickle: offering/answering before gathering completes, with "
                        f"{len(agent.local_candidates(0))} candidates")
            return
        cands = await gathered
        self.gathering_done = True
        if not cands:
            raise IceSessionError("no candidate gathered")
        self._event(f"gathered {len(cands)} candidates: " + "; ".join(str(c) for c in cands))

    def _gathered_later(self, cands: list[Any]) -> None:
        self.gathering_done = True
        if self._closed:
            return
        self._event(f"gathering complete: {len(cands)} candidates")
        if not cands:
            self._failed("ice-failed: no candidate gathered")
            return
        if self.on_candidate is not None:
            self.on_candidate()

    def _gathering_failed(self, f: Any) -> None:
        self.gathering_done = True
        if not self._closed:
            self._failed(f"ice-failed: gathering: {f.getErrorMessage()}")

    def add_remote_candidates(self, candidates: Sequence[Candidate], end: bool) -> None:
        """Candidates the peer trickled (RFC 8840 INFO), ``end``: its end-of-candidates."""
        assert self.driver is not None
        self.driver.add_remote_candidates(0, candidates, end)
        self._event(f"trickled in: {len(candidates)} remote candidates"
                    + (", end-of-candidates" if end else ""))
        # a peer-reflexive remote candidate now signalled takes its real type (RFC 8838 §11)
        self._record_selected()

    def _record_selected(self) -> None:
        """``selected_pairs`` from the agent's selected pair of each component, with the
        candidates' current types."""
        for c in range(1, self.components + 1):
            pair = self.agent.selected_pair(0, c) if self.agent is not None else None
            if pair is not None:
                self.selected_pairs[c] = PairInfo(c, pair.local.type.value,
                                                  pair.local.transport_address,
                                                  pair.remote.type.value, pair.remote_addr)

    def local_params(self, *, connected: bool) -> IceParams:
        """Our ICE attributes for the next offer or answer (``connected``: ICE completed)."""
        assert self.agent is not None
        cands = tuple(self.agent.local_candidates(0))
        options = (("ice2",) if self.ice2 else ()) + (("trickle",) if self.trickle else ())
        end = self.gathering_done
        selected = [self.agent.selected_pair(0, c) for c in range(1, self.components + 1)]
        if connected and all(p is not None for p in selected):
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
                    options=options, lite=self.lite, end_of_candidates=end)
            return IceParams(self.agent.local_username, self.agent.local_password,
                             candidates=tuple(dict.fromkeys(cands + defaults)),
                             default_candidates=defaults, options=options, lite=self.lite,
                             end_of_candidates=end)
        defaults = tuple(d for c in range(1, self.components + 1)
                         if (d := self.agent.default_candidate(0, c)) is not None)
        return IceParams(self.agent.local_username, self.agent.local_password,
                         candidates=cands, default_candidates=defaults, options=options,
                         lite=self.lite, end_of_candidates=end)

    def set_remote_lite(self) -> None:
        assert self.agent is not None
        self.agent.set_remote_lite()

    def remove_rtcp_component(self) -> None:
        """RFC 5761 §5.1.3: the answer accepted rtcp-mux, RTCP goes on component 1."""
        assert self.driver is not None
        self.driver.remove_component(0, 2)
        self.components = 1
        self._event("answer accepted rtcp-mux: component 2 removed")

    def start_checks(self, rice: RemoteIce) -> None:
        """The peer's ICE parameters and candidates (from its offer or answer): checks start."""
        assert self.agent is not None and self.driver is not None
        now = self._now()
        self.remote_rfc5245 = "ice2" not in rice.options
        # RFC 8838: a trickling peer may send candidates until its end-of-candidates
        self.agent.trickle = "trickle" in rice.options and not rice.end_of_candidates
        self.agent.set_remote_credentials(0, rice.ufrag, rice.pwd)
        if rice.lite:
            self.agent.set_remote_lite()
        for c in rice.candidates:
            self.agent.add_remote_candidate(0, c, now)
        if rice.end_of_candidates:
            self.agent.end_of_candidates(0)
        if self.checks_started_at is None:
            self.checks_started_at = now
        self.restart_pending = False
        self._event(f"checks start as {'controlling' if self.agent.controlling else 'controlled'}"
                    f" with {len(rice.candidates)} remote candidates"
                    + (" (RFC 5245 peer)" if self.remote_rfc5245 else ""))
        self.driver.start().addErrback(lambda f: None)   # outcome comes as events

    def restart(self) -> None:
        """ICE restart (RFC 8445 §9): new local credentials; media stays on the old pairs
        until the peer's new parameters come (:meth:`start_checks`)."""
        assert self.driver is not None
        self.driver.restart()
        self.restarts += 1
        self.restart_pending = True

    def without_ice(self) -> None:
        """The peer does not do ICE (RFC 8839 §3.2.1.1): media leaves from our default
        candidates' sockets, to the address the session gives."""
        self.ice_used = False

    def deliver_media_to(self, sink: Callable[[bytes, Address], None]) -> None:
        """Demultiplexed RTP/RTCP goes to ``sink`` from now on, starting with what was kept
        from valid pairs before (RFC 8445 §12.2)."""
        self.media_sink = sink
        early, self.early_media = self.early_media, []
        for component, data, addr in early:
            self._on_data(0, component, data, addr)

    def selected_remotes(self) -> tuple[Address, Address | None] | None:
        """Where RTP and RTCP go on the selected pairs (None before component 1 has one)."""
        if self.agent is None:
            return None
        pair = self.agent.selected_pair(0, 1)
        if pair is None:
            return None
        rtcp = self.agent.selected_pair(0, 2) if self.components == 2 else None
        return pair.remote_addr, rtcp.remote_addr if rtcp is not None else None

    def send_media(self, data: bytes, addr: Address, rtcp: bool = False) -> None:
        """Send RTP (or RTCP, ``rtcp``) on its component, or to ``addr`` without ICE."""
        if self.driver is None:
            return
        comp = 2 if rtcp and self.components == 2 else 1
        if not self.ice_used:
            self.driver.send_without_ice(0, comp, data, addr)
            return
        self.driver.send(0, comp, data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.driver is not None:
            self.driver.close().addErrback(lambda f: log.failure("ICE close failed", f))

    # ------------------------------------------------------------------ internals
    def _now(self) -> float:
        return float(self.reactor.seconds())

    def _on_ice_event(self, ev: Event) -> None:
        if isinstance(ev, CheckSent):
            self.checks_sent += 1
        elif isinstance(ev, SelectedPairChanged):
            self.selected_pairs[ev.component] = PairInfo(
                ev.component, ev.local.type.value, ev.local.transport_address,
                ev.remote.type.value, ev.remote.transport_address)
            if self.on_pair_changed is not None:
                self.on_pair_changed()
        elif isinstance(ev, IceCompleted):
            self._completed()
        elif isinstance(ev, IceFailed):
            self._failed(f"ice-failed: {ev.reason}")
        elif isinstance(ev, ConsentExpired):
            self._failed("ice-consent-lost")
        elif isinstance(ev, GatheringFailed | RelayError):
            self.gathering_failures.append(f"{ev.server[0]}:{ev.server[1]}: {ev.reason}")
        elif isinstance(ev, CandidateGathered):
            if self.on_candidate is not None and not self._closed:
                self.on_candidate()

    def _completed(self) -> None:
        if self._closed:
            return
        self._record_selected()
        self._event("ICE connected: " + ", ".join(str(p) for _, p in
                                                 sorted(self.selected_pairs.items())))
        if self.on_connected is not None:
            self.on_connected()

    def _failed(self, cause: str) -> None:
        if self.on_failed is not None:
            self.on_failed(cause)

    def _on_data(self, stream: int, component: int, data: bytes, remote: Address) -> None:
        kind = classify(data)
        if kind not in (PacketKind.RTP, PacketKind.RTCP):
            self.dropped_other += 1
            return
        if self.media_sink is None:
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
        self.media_sink(data, remote)

    def _event(self, summary: str) -> None:
        self.trace.add(TraceRecord(self._now(), "event", summary, protocol="ice"))
