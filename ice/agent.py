"""The ICE agent (RFC 8445, with RFC 5245 aggressive nomination), as a sans-I/O state machine.

The agent never opens a socket or reads the clock.  Its driver (``ice.drivers.agent`` on real
UDP sockets, ``ice.sim.simnet`` in virtual time) binds one socket per component per stream on the
addresses :meth:`Agent.addresses_to_bind` names, reports them with
:meth:`Agent.add_host_socket`, then feeds datagrams to :meth:`Agent.receive`, sends what
:meth:`Agent.datagrams_to_send` returns, and calls :meth:`Agent.handle_timer` at
:meth:`Agent.get_timer`.  What happens is reported by :meth:`Agent.next_event`.

Timing, all configurable (``now`` is seconds, any epoch):

* one new check (ordinary or triggered) per ``ta`` across every stream (RFC 8445 §6.1.4.2);
* a check's RTO is ``max(500 ms, ta * pairs Waiting or In-Progress)``.  RFC 8445 §14.3
  suggests (SHOULD) ``max(500 ms, Ta * N * (Num-Waiting + Num-In-Progress))`` with N the
  total number of checks, and allows other mechanisms ("Agents MAY calculate the RTO value
  using other mechanisms ... MUST NOT use an RTO value smaller than 500 ms"): we leave N out
  because it makes the RTO quadratic in the check list (10 pairs at Ta 50 ms: 2.5 s; 100
  pairs: 500 s), so a lost check would in effect never be retransmitted within a call; the
  500 ms floor is kept.  A check is sent ``check_rc`` times in all, doubling the interval,
  and fails ``check_rm * RTO`` after the last send: with the defaults (Rc 5, Rm 8, RTO
  500 ms) a pair that never answers fails 11.5 s after its first check;
* gathering: one Binding (STUN server) or Allocate (TURN server) transaction per ``ta``, RTO
  ``max(500 ms, ta * number of server-reflexive and relayed candidates)`` (RFC 8445 §5.1.1.2,
  §14.3); an Allocate's XOR-MAPPED-ADDRESS is a server-reflexive candidate too;
* a stream whose checks all failed, once end-of-candidates is known, fails at once; one still
  not Completed ``failed_timeout`` (30 s) after :meth:`start_checks` fails anyway;
* consent freshness (RFC 7675): a Binding request every 5 s +-20 % on each selected pair,
  retransmitted (RTO 500 ms) so one lost packet does not matter; 30 s without any response
  expires consent (``ConsentExpired``) and :meth:`send_data` refuses that component;
* regular nomination (RFC 8445 §8.1.1 leaves the stopping criterion to the agent): the
  controlling agent nominates a component's best valid pair once every better pair (higher
  priority, not Failed) is *hopeless*, and at the latest ``nomination_delay`` (1 s) after
  the first valid pair; the nominating check is paced like any other (one Ta).  A better
  pair that is Waiting, or Frozen behind a foundation still being checked, is not hopeless
  (it is checked within a few Ta).  An In-Progress one is hopeless once its check went
  unanswered for the *patience*, ``max(nomination_patience (100 ms), 4 * largest RTT seen)``.
  Settling for a relayed pair while a direct one is unanswered costs more (latency, relay
  bandwidth for the whole call), so then the direct pair also gets its first retransmission
  (its RTO, 500 ms, plus the patience; ``relay_after_retransmission=False`` drops this), and
  only ``nomination_delay`` ends the wait once loss was seen (a STUN or TURN server answered
  only a retransmission, or a peer's check arrived twice; not a check answered late, which
  NAT filtering and TURN permissions cause on a clean path) or once the peer's own check
  came in on that direct pair (the path works at least one way).
  Why: the old rule (wait ``nomination_delay`` while any better pair was pending) made every
  NATed call take over 1 s, because behind NATs the best pairs (host-host) never answer.
  libnice's regular mode (nominate once a host pair is valid, two pairs are valid or nothing
  is left to check) settles early whatever the loss; pjnath waits a fixed 400 ms once each
  component has a valid pair; libwebrtc nominates at once and renominates, which RFC 8445
  §8.1.1 forbids (one nomination per component per session).  Ours waits as long as the
  evidence asks: a few RTTs for a pair that plainly does not answer, one retransmission
  before settling for the relay, the full delay when loss is known.  Measured (NAT lab,
  bench/natlab.py, offer/answer built -> connected): EIM/EIM ~0.2 s (was ~1.07 s), relayed
  cases ~0.7 s (was ~1.1 s; ~0.3 s without the retransmission wait), 10 % loss median of
  20 calls ~1.4 s caller / 0.65 s callee, SIP losses included (was ~2.8 s / 1.6 s); in simnet (bench/bench_ice.py --pair-choice) the
  relay wins where a direct pair works no more often than before (5/10/20 % loss: 10, 23,
  63 of 1000 runs; before 10, 26, 67; without the retransmission wait 16, 43, 64);
* a nominating check refused with an error response fails the check list at once (RFC 8445
  §7.2.5.3.4); one that times out is nominated again instead (a deliberate deviation: the
  peer may already have selected the pair, only its answers were lost, and failing would end
  a call the peer sees connected);
* once a component has a nominated pair, its other pairs stop being checked (§8.1.2);

Choices worth knowing: a check received on an In-Progress pair stops that pair's
retransmissions (a late answer still counts) and re-checks it as a triggered check (RFC 8445
§7.3.1.4); a relayed local candidate is not paired with a peer host candidate known to be
behind a NAT (the relay cannot reach it, and coturn stops relaying for an allocation after a
send error); remote candidates that are not IP addresses (FQDN, mDNS) are ignored; one
ufrag/pwd serves every stream.
"""

from __future__ import annotations

import ipaddress
import random
import string
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from twisted.logger import Logger

from ice import stun
from ice.address import Address
from ice.candidate import (
    TYPE_PREFERENCE,
    Candidate,
    CandidateType,
    candidate_priority,
    compute_foundation,
)
from ice.checklist import (
    CandidatePair,
    CheckList,
    CheckListSet,
    CheckListState,
    PairState,
    form_pairs,
    pair_base,
)
from ice.events import (
    ApplicationData,
    CandidateGathered,
    CheckSent,
    ConsentExpired,
    Event,
    GatheringComplete,
    GatheringFailed,
    IceCompleted,
    IceFailed,
    PairStateChanged,
    RelayError,
    RoleChanged,
    SelectedPairChanged,
)
from ice.gathering import (
    StunServer,
    TurnServer,
    host_candidate,
    is_redundant,
    local_preferences,
    parse_server_uri,
    reflexive_candidate,
    select_local_addresses,
)
from ice.stun import Attr, Class, Method
from ice.stun_transaction import StunClientTransaction
from ice.trace import Trace, TraceRecord
from ice.turn import TRANSPORTS as TURN_TRANSPORTS
from ice.turn import (
    Allocation,
    AllocationFailed,
    AllocationState,
    AllocationSucceeded,
    ChannelBindFailed,
    DataReceived,
    PermissionFailed,
    Released,
    StreamConnection,
)

log = Logger(namespace="ice.agent")

Datagram = tuple[bytes, Address, Address]   # (data, local address, remote address)

_ICE_CHARS = string.ascii_letters + string.digits + "+/"
CONSENT_INTERVAL = 5.0
CONSENT_TIMEOUT = 30.0
MAX_EARLY_CHECKS = 64
MAX_REMOTE_CANDIDATES = 1000
MAX_PENDING_EVENTS = 4096


class IceError(Exception):
    """Misuse of the agent API (unknown stream, bad credentials, closed agent)."""


@dataclass
class _Pending:
    kind: str                        # "check" | "consent" | "gather"
    txn: StunClientTransaction
    local: Address
    stream: int
    component: int
    pair: CandidatePair | None = None
    use_candidate: bool = False
    controlling: bool = False
    key: bytes | None = None
    priority: int = 0
    server: Address | None = None
    pref_offset: int = 0                # subtracted from the base's local preference (§5.1.2)
    triggered: bool = False
    listen_until: float | None = None   # retransmissions stopped; a late answer still counts


@dataclass
class _Relay:
    """A TURN allocation made from the host socket ``base`` (RFC 8445 §5.1.1.2)."""

    stream: int
    component: int
    base: Address
    server: Address
    alloc: Allocation
    index: int = 0                   # the server's place in turn_servers (local preference)
    relayed: Address | None = None
    removed: bool = False            # its component was removed: released, never used
    connection: StreamConnection | None = None   # TURN over TCP/TLS: the driver's connection


@dataclass
class _Consent:
    pair: CandidatePair
    last_ok: float
    next_at: float
    ufrag: str                       # USERNAME "remote:local" used for this pair
    key: bytes                       # remote password in force when the pair was selected
    expired: bool = False


@dataclass
class _Stream:
    index: int
    components: int
    checklist: CheckList
    local_candidates: list[Candidate] = field(default_factory=list)
    remote_candidates: list[Candidate] = field(default_factory=list)
    remote_ufrag: str | None = None
    remote_pwd: str | None = None
    remote_end: bool = False
    gathering_done: bool = False
    gather_started: bool = False
    selected: dict[int, CandidatePair] = field(default_factory=dict)
    consent: dict[int, _Consent] = field(default_factory=dict)
    completed: bool = False
    failed: bool = False
    checks_started_at: float | None = None
    first_valid_at: float | None = None
    nominate_at: float | None = None     # regular nomination: nominate by then at the latest
    reconsider_at: float | None = None   # regular nomination: look at the rivals again then
    rtt: float = 0.0                     # largest check RTT seen (answers to a first send)


def _random_string(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ICE_CHARS) for _ in range(n))


class Agent:
    """A full (or lite) ICE agent for ``streams`` media streams of ``components`` each
    (2 = RTP and RTCP, 1 = rtcp-mux).

    ``controlling``/``tie_breaker``: the role (RFC 8445 §6.1.1, conflicts repaired §7.3.1.1);
    ``lite``: answer checks only and select what the peer nominates; ``remote_lite``: the peer
    is lite, so we control.  ``nomination``: ``"regular"`` (RFC 8445) or ``"aggressive"``
    (RFC 5245 §8.1.1.2, every check nominates).  ``ta``: check pacing (50 ms; 20 ms for the
    RFC 5245 habit; at least 5 ms).  ``stun_servers``/``turn_servers``: server-reflexive and
    relayed candidates; ``policy="relay"`` keeps only relayed ones.  ``local_addresses`` or
    ``interfaces`` restrict host candidates (default: 127.0.0.1 only, never the machine's
    real addresses unless asked).  ``max_pairs``: cap on the pairs of all check lists
    together (RFC 8445 §6.1.2.5).  ``trickle``: remote candidates may still come after
    :meth:`start_checks` until :meth:`end_of_candidates`.  ``rng``: seed it for reproducible
    credentials, tie-breaker and transaction ids.  Timers (``check_rc``/``check_rm``, ``failed_timeout``,
    ``consent_*``) and the nomination policy (``nomination_delay``, ``nomination_patience``,
    ``relay_after_retransmission``) are described in the module docstring.
    """

    def __init__(
        self,
        controlling: bool,
        *,
        components: int = 1,
        streams: int = 1,
        ta: float = 0.05,
        lite: bool = False,
        nomination: str = "regular",
        stun_servers: Sequence[StunServer | Address | str] = (),
        turn_servers: Sequence[TurnServer] = (),
        local_addresses: Sequence[str] | None = None,
        interfaces: Sequence[str] | None = None,
        policy: str = "all",
        max_pairs: int = 100,
        tie_breaker: int | None = None,
        rng: random.Random | None = None,
        trickle: bool = False,
        remote_lite: bool = False,
        check_rc: int = 5,
        check_rm: int = 8,
        gather_rc: int = 4,
        gather_rm: int = 4,
        failed_timeout: float = 30.0,
        nomination_delay: float = 1.0,
        nomination_patience: float = 0.1,
        relay_after_retransmission: bool = True,
        consent_interval: float = CONSENT_INTERVAL,
        consent_timeout: float = CONSENT_TIMEOUT,
        local_username: str | None = None,
        local_password: str | None = None,
    ) -> None:
        if nomination not in ("regular", "aggressive"):
            raise IceError(f"nomination must be 'regular' or 'aggressive', not {nomination!r}")
        if policy not in ("all", "relay"):
            raise IceError(f"policy must be 'all' or 'relay', not {policy!r}")
        if not 1 <= components <= 2 or streams < 1:
            raise IceError("components must be 1 or 2 and streams at least 1")
        if ta < 0.005:
            raise IceError("Ta must be at least 5 ms (RFC 8445 §14.2)")
        for name, value, minimum in (("ufrag", local_username, 4), ("pwd", local_password, 22)):
            if value is not None and (len(value) < minimum
                                      or any(c not in _ICE_CHARS for c in value)):
                raise IceError(f"local {name} must be at least {minimum} ice-chars (RFC 8839)")
        self._rng = rng if rng is not None else random.SystemRandom()
        self.lite = lite
        self.controlling = controlling and not lite
        self.remote_lite = remote_lite
        if remote_lite and lite:
            raise IceError("two lite agents cannot run ICE together")
        if remote_lite:
            self.controlling = True
        self.ta = ta
        self.nomination = nomination
        self.policy = policy
        self.trickle = trickle
        self.check_rc, self.check_rm = check_rc, check_rm
        self.gather_rc, self.gather_rm = gather_rc, gather_rm
        self.failed_timeout = failed_timeout
        self.nomination_delay = nomination_delay
        self.nomination_patience = nomination_patience
        self.relay_after_retransmission = relay_after_retransmission
        self.consent_interval = consent_interval
        self.consent_timeout = consent_timeout
        self.stun_servers = [
            s if isinstance(s, StunServer)
            else StunServer(*parse_server_uri(s)[1:]) if isinstance(s, str)
            else StunServer(s[0], s[1])
            for s in stun_servers]
        self.turn_servers = list(turn_servers)
        for t in self.turn_servers:
            if t.transport not in TURN_TRANSPORTS:
                raise IceError(f"TURN server {t.host}:{t.port}: transport must be one of "
                               f"{', '.join(TURN_TRANSPORTS)}, not {t.transport!r}")
        if local_addresses is None and interfaces is None:
            local_addresses = ("127.0.0.1",)     # never the machine's real addresses by default
        self.local_addresses = select_local_addresses(local_addresses, interfaces)
        self._local_pref = local_preferences(self.local_addresses)
        self.max_pairs = max_pairs
        self.tie_breaker = (tie_breaker if tie_breaker is not None
                            else self._rng.getrandbits(64))
        self.local_username = local_username or _random_string(self._rng, 8)
        self.local_password = local_password or _random_string(self._rng, 24)
        self._old_credentials: tuple[str, str] | None = None
        self._streams: list[_Stream] = [
            _Stream(i, components, CheckList(i, components, max_pairs)) for i in range(streams)]
        self._set = CheckListSet(max_pairs)
        for s in self._streams:
            self._set.add(s.checklist)
        self._sockets: dict[Address, tuple[int, int]] = {}
        self._base_of: dict[Address, Address] = {}
        self._pending: dict[bytes, _Pending] = {}
        self._out: list[Datagram] = []
        self._events: deque[Event] = deque()
        self._early: deque[tuple[stun.Message, Address, Address, int, int]] = deque(
            maxlen=MAX_EARLY_CHECKS)
        self._running = False
        self._next_check_at = 0.0
        self._closed = False
        self._prflx_counter = 0
        self._next_gather_at = 0.0         # gathering transactions are paced at Ta too
        self._relays: list[_Relay] = []
        self._relay_by_addr: dict[Address, _Relay] = {}
        self._relay_by_path: dict[tuple[Address, Address], _Relay] = {}
        self._relay_by_stream: dict[StreamConnection, _Relay] = {}   # TURN over TCP/TLS
        self._streams_to_open: list[StreamConnection] = []
        self._stream_out: list[tuple[StreamConnection, bytes]] = []
        self._retired_sockets: list[Address] = []   # of removed components, to be closed
        self.trace = Trace()
        self.dropped_data = 0
        self.loss_seen = False       # a STUN answer came only after a retransmission, or a
        self._seen_requests: deque[bytes] = deque(maxlen=256)   # peer's check came twice
        self._turn_sent: deque[bytes] = deque(maxlen=256)
        self._turn_resent: set[bytes] = set()

    # ================================================================ public: gathering
    @property
    def streams(self) -> int:
        return len(self._streams)

    def addresses_to_bind(self) -> list[tuple[int, int, str]]:
        """(stream, component, local IP) for every host socket the driver must bind."""
        return [(s.index, c, ip) for s in self._streams for c in range(1, s.components + 1)
                for ip in self.local_addresses]

    def add_host_socket(self, stream: int, component: int, address: Address) -> None:
        """The driver bound ``address`` for ``stream``/``component``."""
        self._stream(stream)
        self._sockets[address] = (stream, component)

    def component_of(self, local: Address) -> tuple[int, int] | None:
        return self._sockets.get(local)

    def gather(self, now: float) -> None:
        """Host candidates now; server-reflexive ones as STUN servers answer (RFC 8445 §5.1.1).
        ``GatheringComplete`` follows once every server answered or gave up."""
        jobs: list[tuple[_Stream, int, Address, int, StunServer | TurnServer]] = []
        started = [s for s in self._streams if not s.gather_started]
        for s in started:
            s.gather_started = True
            for addr, (si, comp) in self._sockets.items():
                if si != s.index:
                    continue
                pref = self._local_pref.get(addr[0], 65535 - 128 * len(self._local_pref))
                cand = host_candidate(addr, comp, pref)
                self._base_of[addr] = addr
                if self.policy == "all":
                    self._add_local(s, cand)
                if self.lite:
                    continue
                for j, server in enumerate(self.stun_servers):
                    if (":" in server.host) != (":" in addr[0]) or self.policy == "relay":
                        continue
                    jobs.append((s, comp, addr, j, server))
                for k, t in enumerate(self.turn_servers):
                    if self._relay_wanted(s, comp, addr, t, jobs):
                        jobs.append((s, comp, addr, k, t))
        # RFC 8445 §5.1.1.2 / §14.3: one gathering transaction (Binding or Allocate) per Ta,
        # with RTO = max(500 ms, Ta * number of server-reflexive and relayed candidates)
        rto = max(0.5, self.ta * len(jobs))
        for js, comp, addr, index, job in jobs:
            at = max(now, self._next_gather_at)
            self._next_gather_at = at + self.ta
            if isinstance(job, StunServer):
                self._start_gather(js, comp, addr, (job.host, job.port), at, index, rto)
            else:
                self._start_relay(js, comp, addr, job, at, index, rto)
        for s in started:
            self._maybe_gathering_done(s)

    def local_candidates(self, stream: int = 0) -> list[Candidate]:
        return list(self._stream(stream).local_candidates)

    def remote_candidates(self, stream: int = 0) -> list[Candidate]:
        return list(self._stream(stream).remote_candidates)

    def default_candidate(self, stream: int, component: int) -> Candidate | None:
        """RFC 8445 §5.1.4: the candidate for the c=/m= line (relay > srflx > host)."""
        order = {CandidateType.RELAYED: 0, CandidateType.SERVER_REFLEXIVE: 1,
                 CandidateType.HOST: 2, CandidateType.PEER_REFLEXIVE: 3}
        cands = [c for c in self._stream(stream).local_candidates if c.component == component]
        return min(cands, key=lambda c: (order[c.type], -c.priority), default=None)

    def remove_component(self, stream: int, component: int, now: float | None = None) -> None:
        """Drop the last component of ``stream`` before :meth:`start_checks` (the answer
        accepted rtcp-mux, RFC 5761 §5.1.3 / RFC 8839): its local and remote candidates and
        pairs go, no check is sent for it, and its TURN allocations are released (with
        ``now``; without it they are forgotten).  Its host sockets are then handed to the
        driver by :meth:`sockets_to_close`, once their allocations are released."""
        s = self._stream(stream)
        if self._running or s.checks_started_at is not None:
            raise IceError("remove_component() is only valid before start_checks()")
        if component != s.components or s.components == 1:
            raise IceError(f"stream {stream}: only the last of several components can be "
                           f"removed, not {component} of {s.components}")
        s.components -= 1
        s.checklist.components = s.components
        s.local_candidates = [c for c in s.local_candidates if c.component != component]
        s.remote_candidates = [c for c in s.remote_candidates if c.component != component]
        for pair in [p for p in s.checklist.pairs if p.component == component]:
            s.checklist.remove(pair)
        s.checklist.valid_extra = [p for p in s.checklist.valid_extra
                                   if p.component != component]
        for tid, pending in list(self._pending.items()):
            if pending.stream == stream and pending.component == component:
                pending.txn.cancel()
                del self._pending[tid]
        self._early = deque((e for e in self._early if (e[3], e[4]) != (stream, component)),
                            maxlen=MAX_EARLY_CHECKS)
        relayed = {r.relayed for r in self._relays}
        for relay in list(self._relays):
            if relay.stream != stream or relay.component != component or relay.removed:
                continue
            relay.removed = True
            if relay.relayed is not None:
                self._relay_by_addr.pop(relay.relayed, None)
            if now is not None:
                relay.alloc.release(now)
                self._drain_relay(relay, now)
            else:                               # forgotten, as by close() without now
                self._relays.remove(relay)
                self._relay_by_path.pop((relay.base, relay.server), None)
        for addr, where in list(self._sockets.items()):
            if where == (stream, component):
                del self._sockets[addr]
                if addr not in relayed:
                    self._retired_sockets.append(addr)
        self._maybe_gathering_done(s)
        if now is not None:
            self._trace(now, "event", f"stream {stream}: component {component} removed")

    def sockets_to_close(self) -> list[Address]:
        """Host sockets of removed components that the driver may close now (each once)."""
        done = (AllocationState.RELEASED, AllocationState.FAILED, AllocationState.IDLE)
        busy = {r.base for r in self._relays if r.removed and r.alloc.state not in done}
        ready = [a for a in self._retired_sockets if a not in busy]
        if ready:
            self._retired_sockets = [a for a in self._retired_sockets if a in busy]
            for r in [r for r in self._relays if r.removed and r.base in ready]:
                self._relays.remove(r)
                self._relay_by_path.pop((r.base, r.server), None)
        return ready

    # ================================================================ public: remote side
    def set_remote_credentials(self, stream: int, ufrag: str, pwd: str) -> None:
        if not ufrag or not pwd:
            raise IceError("remote ufrag and pwd must not be empty")
        s = self._stream(stream)
        s.remote_ufrag, s.remote_pwd = ufrag, pwd

    def set_remote_lite(self, lite: bool = True) -> None:
        """The peer announced ``a=ice-lite`` (RFC 8445 §6.1.1: the full agent controls)."""
        if lite and self.lite:
            raise IceError("two lite agents cannot run ICE together")
        self.remote_lite = lite
        if lite and not self.controlling:
            self.controlling = True
            for cl in self._set:
                cl.recompute_priorities(True)

    def add_remote_candidate(self, stream: int, cand: Candidate, now: float | None = None
                             ) -> None:
        """A remote candidate from the offer/answer or trickled later (RFC 8838)."""
        s = self._stream(stream)
        if cand.transport != "udp" or not 1 <= cand.component <= s.components:
            return
        try:
            ipaddress.ip_address(cand.address)
        except ValueError:
            # an FQDN or mDNS name: resolving is the caller's job (the agent does no I/O)
            self._trace(now or 0.0, "event", f"ignored remote candidate {cand}: not an IP")
            return
        if len(s.remote_candidates) >= MAX_REMOTE_CANDIDATES:
            return
        for i, old in enumerate(s.remote_candidates):
            if (old.address, old.port, old.component) == (cand.address, cand.port,
                                                          cand.component):
                if old.type is CandidateType.PEER_REFLEXIVE \
                        and cand.type is not CandidateType.PEER_REFLEXIVE:
                    # RFC 8838 §11 (RFC 8445 §7.3.1.3): a peer-reflexive candidate signalled
                    # later takes its real type, priority and foundation, in every pair too
                    s.remote_candidates[i] = cand
                    for p in [*s.checklist.pairs, *s.checklist.valid_extra]:
                        if p.remote is old:
                            p.remote = cand
                            p.update_priority(self.controlling)
                    s.checklist.sort()
                    if not self.lite:
                        self._pair(s, [c for c in s.local_candidates if self._pairable(c)
                                       and c.type is not CandidateType.PEER_REFLEXIVE],
                                   [cand])
                    self._trace(now or 0.0, "event", f"remote peer-reflexive {cand.address}:"
                                f"{cand.port} signalled as {cand.type.value}")
                    if now is not None:
                        self._pace(now)
                return
        s.remote_candidates.append(cand)
        if cand.type is CandidateType.SERVER_REFLEXIVE and cand.related_address:
            # the peer's host behind this srflx is private: drop unchecked relay pairs to it
            natted = self._natted_hosts(s)
            for p in list(s.checklist.pairs):
                if (self._relay_to_natted_host(p, natted)
                        and p.state in (PairState.FROZEN, PairState.WAITING)):
                    s.checklist.remove(p)
        if not self.lite:
            self._pair(s, [c for c in s.local_candidates if self._pairable(c)], [cand])
        if now is not None:
            self._pace(now)

    def end_of_candidates(self, stream: int, now: float | None = None) -> None:
        s = self._stream(stream)
        s.remote_end = True
        if now is not None and self._running:
            self._check_failed(s, now)

    # ================================================================ public: checks
    def start_checks(self, now: float) -> None:
        """Begin connectivity checks (RFC 8445 §6.1.4); call once remote credentials and
        candidates are known (more candidates may trickle in afterwards)."""
        if self._closed:
            raise IceError("agent is closed")
        for s in self._streams:
            if s.remote_ufrag is None:
                raise IceError(f"stream {s.index}: remote credentials not set")
            if s.checks_started_at is None:
                s.checks_started_at = now
            if not self.trickle:
                s.remote_end = True
        self._running = True
        if not self.lite:
            for pair in self._set.initial_unfreeze():
                self._emit_state(pair)
        early, self._early = list(self._early), deque(maxlen=MAX_EARLY_CHECKS)
        for msg, local, remote, si, comp in early:
            self._handle_request_checked(msg, local, remote, si, comp, now)
        self._pace(now)
        for s in self._streams:
            self._check_failed(s, now)

    def receive(self, data: bytes, local_addr: Address, remote_addr: Address, now: float
                ) -> None:
        """One datagram arrived on the host socket ``local_addr`` from ``remote_addr``."""
        relay = self._relay_by_path.get((local_addr, remote_addr))
        if relay is not None and self._turn_resent and stun.is_stun(data) \
                and data[8:20] in self._turn_resent:
            self.loss_seen = True     # a TURN server answered a retransmitted request
        if relay is not None and relay.alloc.receive(data, remote_addr, now):
            self._drain_relay(relay, now)
            return
        if self._closed:
            return
        where = self._sockets.get(local_addr)
        if where is None:
            return
        si, comp = where
        if not stun.is_stun(data):
            self._emit(ApplicationData(si, comp, data, remote_addr))
            return
        try:
            msg = stun.decode(data)
        except stun.StunDecodeError as e:
            self._trace(now, "in", f"undecodable STUN from {remote_addr}: {e.reason}",
                        local_addr, remote_addr, data)
            return
        if msg.cls == Class.REQUEST:
            self._handle_request(msg, data, local_addr, remote_addr, si, comp, now)
        elif msg.cls in (Class.SUCCESS, Class.ERROR):
            self._handle_response(msg, data, local_addr, remote_addr, now)
        else:   # indications (keepalives) need nothing but a trace record
            self._trace(now, "in", f"{msg.summary()} from {remote_addr[0]}:{remote_addr[1]}",
                        local_addr, remote_addr, data)

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        raw, self._out = self._out, []
        for p in list(self._pending.values()):
            for data, addr in p.txn.datagrams_to_send(now):
                raw.append((data, p.local, addr))
                if p.txn.sent > 1:   # the first copy was traced when the request was made
                    about = f" {p.pair.describe()}" if p.pair is not None else ""
                    self._trace(now, "out", f"{p.kind} retransmission {p.txn.sent - 1}{about}",
                                p.local, addr, data)
        if not self._relays:
            return raw
        out: list[Datagram] = []
        for item in raw:
            relay = self._relay_by_addr.get(item[1])
            if relay is None:
                out.append(item)
            elif relay.alloc.state is AllocationState.ALLOCATED:
                relay.alloc.send_to(item[2], item[0], now)   # Send indication / ChannelData
        for relay in self._relays:
            for data, addr in relay.alloc.datagrams_to_send(now):
                if relay.connection is not None:   # goes on its stream: stream_data_to_send
                    self._stream_out.append((relay.connection, data))
                else:
                    out.append((data, relay.base, addr))
                if stun.is_stun(data) and not data[0] & 0x01 and not data[1] & 0x10:
                    self._note_turn_request(data[8:20])     # a TURN request (class 0b00)
        return out

    def _note_turn_request(self, tid: bytes) -> None:
        """Transaction ids of TURN requests sent more than once, to tell loss from silence."""
        if tid in self._turn_sent:
            self._turn_resent.add(tid)
        else:
            self._turn_sent.append(tid)
            if len(self._turn_resent) > 256:
                self._turn_resent.clear()

    # ---- TURN over TCP/TLS (RFC 8656 §3.1): the driver owns the connections -------------
    def stream_connections_to_open(self) -> list[StreamConnection]:
        """TCP/TLS connections to TURN servers the driver must open now (each once)."""
        out, self._streams_to_open = self._streams_to_open, []
        return out

    def stream_data_to_send(self) -> list[tuple[StreamConnection, bytes]]:
        """Messages for the TURN stream connections (after :meth:`datagrams_to_send`)."""
        out, self._stream_out = self._stream_out, []
        return out

    def stream_connected(self, conn: StreamConnection, local: Address, now: float) -> None:
        """The driver's connection is up (TLS: verified), from ``local``."""
        relay = self._relay_by_stream.get(conn)
        if relay is not None:
            relay.alloc.local = local
            self._trace(now, "event", f"TURN {conn.transport} connection to {relay.server} "
                        f"from {local}")

    def stream_received(self, conn: StreamConnection, message: bytes, now: float) -> None:
        """One STUN or ChannelData message framed off the connection ``conn``."""
        relay = self._relay_by_stream.get(conn)
        if relay is not None and relay.alloc.receive(message, relay.server, now):
            self._drain_relay(relay, now)

    def stream_lost(self, conn: StreamConnection, reason: str, now: float) -> None:
        """The connection could not be opened or ended: its allocation is gone."""
        relay = self._relay_by_stream.get(conn)
        if relay is not None:
            relay.alloc.connection_lost(now, reason)
            self._drain_relay(relay, now)

    def get_timer(self) -> float | None:
        times: list[float] = [t for r in self._relays if (t := r.alloc.get_timer()) is not None]
        if self._closed:
            return min(times) if times else None
        for p in self._pending.values():
            t = p.txn.get_timer()
            if t is not None:
                times.append(t)
        if self._running and not self.lite and self._has_work():
            times.append(self._next_check_at)
        for s in self._streams:
            for c in s.consent.values():
                if not c.expired:
                    times.append(c.next_at)
                    times.append(c.last_ok + self.consent_timeout)
            if s.checks_started_at is not None and not s.completed and not s.failed:
                times.append(s.checks_started_at + self.failed_timeout)
                if s.nominate_at is not None:
                    times.append(s.nominate_at)
                if s.reconsider_at is not None:
                    times.append(s.reconsider_at)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for relay in list(self._relays):
            relay.alloc.handle_timer(now)
            self._drain_relay(relay, now)
        if self._closed:
            return
        for tid, p in list(self._pending.items()):
            if p.listen_until is not None:
                if now >= p.listen_until:
                    del self._pending[tid]
                continue
            p.txn.handle_timer(now)
            if p.txn.timed_out:
                del self._pending[tid]
                self._on_timeout(p, now)
        for s in self._streams:
            if s.checks_started_at is not None and not s.completed and not s.failed:
                if now >= s.checks_started_at + self.failed_timeout:
                    self._fail(s, "timeout: no pair nominated within "
                               f"{self.failed_timeout:g} s", now)
                    continue
                if s.nominate_at is not None and now >= s.nominate_at:
                    s.nominate_at = s.reconsider_at = None
                    if self.controlling and self.nomination == "regular":
                        self._maybe_nominate(s, now, force=True)
                elif s.reconsider_at is not None and now >= s.reconsider_at:
                    s.reconsider_at = None
                    if self.controlling and self.nomination == "regular":
                        self._maybe_nominate(s, now)
            self._consent_timers(s, now)
        self._pace(now)

    def _emit(self, event: Event) -> None:
        """Queue an event; undrained application data beyond a bound is dropped, so a caller
        that never calls next_event() cannot make memory grow without end."""
        if isinstance(event, ApplicationData) and len(self._events) >= MAX_PENDING_EVENTS:
            self.dropped_data += 1
            return
        self._events.append(event)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # ================================================================ public: media
    def selected_pair(self, stream: int, component: int = 1) -> CandidatePair | None:
        return self._stream(stream).selected.get(component)

    def is_valid(self, stream: int, component: int, remote: Address,
                 local: Address | None = None) -> bool:
        """Whether ``remote`` (with ``local``: from the local socket or relayed address
        ``local``) is the remote end of a valid pair of ``component`` -- a check on it
        succeeded (RFC 8445 §7.2.5.3.2).  Media from it may be taken before nomination
        (§12.1: the peer MAY send on any valid pair; §12.2: be prepared to receive it)."""
        s = self._stream(stream)
        return any(p.valid and p.component == component and p.remote_addr == remote
                   and (local is None or p.local_base == local)
                   for p in (*s.checklist.pairs, *s.checklist.valid_extra))

    def first_valid_at(self, stream: int = 0) -> float | None:
        """When the stream's first valid pair appeared (None: not yet)."""
        return self._stream(stream).first_valid_at

    def send_data(self, stream: int, component: int, data: bytes) -> bool:
        """Queue ``data`` on the selected pair; False when there is none or consent expired."""
        s = self._stream(stream)
        pair = s.selected.get(component)
        if pair is None or self._closed:
            return False
        consent = s.consent.get(component)
        if consent is not None and consent.expired:
            return False
        self._out.append((data, pair.local_base, pair.remote_addr))
        return True

    def send_without_ice(self, stream: int, component: int, data: bytes, remote: Address
                         ) -> bool:
        """Queue ``data`` to ``remote`` from the base of the component's default candidate,
        with no pair and no checks: the peer does not do ICE and media goes to and from the
        default candidates (RFC 8839 §3.2.1.1, RFC 3264).  False when there is none."""
        cand = self.default_candidate(stream, component)
        if cand is None or self._closed:
            return False
        self._out.append((data, pair_base(cand, self._base_of), remote))
        return True

    def state(self, stream: int = 0) -> str:
        s = self._stream(stream)
        return "Failed" if s.failed else "Completed" if s.completed else "Running"

    def checklist(self, stream: int = 0) -> CheckList:
        return self._stream(stream).checklist

    def restart(self, now: float) -> None:
        """ICE restart (RFC 8445 §9): new ufrag/pwd and fresh check lists; media keeps going
        on the old selected pairs until new ones are selected.  The caller then signals the
        new credentials, sets the remote ones and calls :meth:`start_checks` again."""
        self._old_credentials = (self.local_username, self.local_password)
        self.local_username = _random_string(self._rng, 8)
        self.local_password = _random_string(self._rng, 24)
        for tid, p in list(self._pending.items()):
            if p.kind == "check":
                p.txn.cancel()
                del self._pending[tid]
        self._set = CheckListSet(self.max_pairs)
        for s in self._streams:
            s.checklist = CheckList(s.index, s.components, self.max_pairs)
            self._set.add(s.checklist)
            s.remote_candidates = []
            s.remote_ufrag = s.remote_pwd = None
            s.remote_end = False
            s.completed = s.failed = False
            s.checks_started_at = None
            s.first_valid_at = s.nominate_at = s.reconsider_at = None
            s.rtt = 0.0
            s.local_candidates = [c for c in s.local_candidates
                                  if c.type is not CandidateType.PEER_REFLEXIVE]
        self._running = False
        self._trace(now, "event", "ICE restart: new credentials " + self.local_username)

    def close(self, now: float | None = None) -> None:
        """Stop checks, consent and timers.  With ``now``, TURN allocations are released
        (a Refresh with LIFETIME 0): keep driving datagrams_to_send/handle_timer/receive until
        :attr:`released`; without it they are just forgotten."""
        for relay in self._relays:
            if now is not None:
                relay.alloc.release(now)
                self._drain_relay(relay, now)
        if now is None:
            self._relays.clear()
            self._relay_by_addr.clear()
            self._relay_by_path.clear()
            self._relay_by_stream.clear()
        for p in self._pending.values():
            p.txn.cancel()
        self._pending.clear()
        for s in self._streams:
            s.consent.clear()
        self._out.clear()
        self._running = False
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def released(self) -> bool:
        """No TURN allocation is left (after :meth:`close`)."""
        return all(r.alloc.state in (AllocationState.RELEASED, AllocationState.FAILED,
                                     AllocationState.IDLE) for r in self._relays)

    # ================================================================ internals: helpers
    def _stream(self, index: int) -> _Stream:
        if not 0 <= index < len(self._streams):
            raise IceError(f"no stream {index}")
        return self._streams[index]

    def _trace(self, now: float, direction: str, summary: str, local: Address | None = None,
               remote: Address | None = None, raw: bytes = b"", detail: str = "") -> None:
        self.trace.add(TraceRecord(now, direction, summary, detail, local, remote,  # type: ignore[arg-type]
                                   "stun" if raw else "ice", raw))

    def _emit_state(self, pair: CandidatePair) -> None:
        self._events.append(PairStateChanged(pair.stream, pair.component, pair.local_base,
                                             pair.remote_addr, pair.state.value))

    def _set_state(self, pair: CandidatePair, state: PairState, now: float) -> None:
        if pair.state is state:
            return
        pair.state = state
        self._emit_state(pair)
        self._trace(now, "event", f"pair {pair.describe()} -> {state.value}")

    def _pairable(self, c: Candidate) -> bool:
        if self.policy == "relay":
            return c.type is CandidateType.RELAYED
        return True

    def _add_local(self, s: _Stream, cand: Candidate) -> None:
        if is_redundant(cand, s.local_candidates):
            return
        s.local_candidates.append(cand)
        self._events.append(CandidateGathered(s.index, cand))
        if not self.lite and self._pairable(cand):
            self._pair(s, [cand], s.remote_candidates)

    def _pair(self, s: _Stream, locals_: Iterable[Candidate], remotes: Iterable[Candidate]
              ) -> list[CandidatePair]:
        added: list[CandidatePair] = []
        natted = self._natted_hosts(s)
        for pair in form_pairs(s.index, list(locals_), list(remotes), self._base_of,
                               self.controlling):
            if self._relay_to_natted_host(pair, natted):
                continue
            kept = s.checklist.add(pair)
            if kept is pair:
                added.append(pair)
        if added:
            self._set.enforce_limit()      # RFC 8445 §6.1.2.5: across the checklist set
            added = [p for p in added if s.checklist.find(p.component, p.local_base,
                                                          p.remote_addr) is p]
        if self._running and s.checklist.state is CheckListState.RUNNING:
            # RFC 8838 §12: a new pair is Waiting when a pair of its foundation already
            # succeeded (rule 2) or when no pair of its foundation is being checked; else Frozen
            busy = self._set.active_foundations()
            succeeded = self._set.succeeded_foundations()
            for pair in added:
                if pair.foundation in succeeded or pair.foundation not in busy:
                    busy.add(pair.foundation)
                    pair.state = PairState.WAITING
                    self._emit_state(pair)
        return added

    @staticmethod
    def _natted_hosts(s: _Stream) -> set[str]:
        """Remote host addresses known to sit behind a NAT: the base of one of the peer's
        server-reflexive candidates that differs from it."""
        return {c.related_address for c in s.remote_candidates
                if c.type is CandidateType.SERVER_REFLEXIVE and c.related_address
                and c.related_address != c.address}

    @staticmethod
    def _relay_to_natted_host(pair: CandidatePair, natted: set[str]) -> bool:
        """A relayed local candidate is not paired with a remote host candidate behind a NAT:
        the relay cannot reach that private address, and a TURN server that gets a send error
        for it may stop relaying for the whole allocation (seen with coturn 4.6.1 when its
        route to the address is a blackhole).  Any pair that could work through the relay
        (to the peer's srflx, relay or a learnt peer-reflexive address) is still formed."""
        return (pair.local.type is CandidateType.RELAYED
                and pair.remote.type is CandidateType.HOST and pair.remote.address in natted)

    def _has_work(self) -> bool:
        """Whether the next Ta tick would send a check (RFC 8445 §6.1.4.2): a triggered check,
        a Waiting pair, or a Frozen one whose foundation nobody is checking."""
        busy: set[tuple[str, str]] | None = None
        for cl in self._set:
            if cl.state is not CheckListState.RUNNING:
                continue
            if cl.triggered:
                return True
            for p in cl.pairs:
                if p.state is PairState.WAITING:
                    return True
                if p.state is PairState.FROZEN:
                    if busy is None:
                        busy = self._set.active_foundations()
                    if p.foundation not in busy:
                        return True
        return False

    def _rto(self) -> float:
        n = sum(cl.active_count() for cl in self._set)
        return max(0.5, self.ta * n)

    def _new_tid(self) -> bytes:
        return self._rng.randbytes(12)

    # ================================================================ internals: checks
    def _pace(self, now: float) -> None:
        """Send at most one new check per Ta (RFC 8445 §6.1.4.2)."""
        if not self._running or self.lite or self._closed or now < self._next_check_at:
            return
        pick = self._set.next_check()
        if pick is None:
            return
        pair, triggered, unfrozen = pick
        for p in unfrozen:
            self._emit_state(p)
        pair.extra.pop("retry", None)
        self._send_check(pair, now, triggered, pair.extra.pop("nominate", False) is True)
        self._next_check_at = now + self.ta

    def _send_check(self, pair: CandidatePair, now: float, triggered: bool,
                    nominate: bool) -> None:
        s = self._streams[pair.stream]
        assert s.remote_ufrag is not None and s.remote_pwd is not None
        use_candidate = self.controlling and (nominate or self.nomination == "aggressive")
        prflx_priority = candidate_priority(TYPE_PREFERENCE[CandidateType.PEER_REFLEXIVE],
                                            (pair.local.priority >> 8) & 0xFFFF, pair.component)
        tid = self._new_tid()
        msg = stun.Message(Method.BINDING, Class.REQUEST, tid)
        msg[Attr.USERNAME] = f"{s.remote_ufrag}:{self.local_username}"
        msg[Attr.PRIORITY] = prflx_priority
        if self.controlling:
            msg[Attr.ICE_CONTROLLING] = self.tie_breaker
            if use_candidate:
                msg[Attr.USE_CANDIDATE] = True
        else:
            msg[Attr.ICE_CONTROLLED] = self.tie_breaker
        key = stun.short_term_key(s.remote_pwd)
        data = stun.encode(msg, key=key)
        if pair.state is not PairState.SUCCEEDED or not nominate:
            self._set_state(pair, PairState.IN_PROGRESS, now)
        # an older transaction of the same pair stops retransmitting; its answer still counts
        self._stop_retransmitting(pair, now)
        txn = StunClientTransaction(data, tid, pair.remote_addr, now, rto=self._rto(),
                                    rc=self.check_rc, rm=self.check_rm)
        self._pending[tid] = _Pending("check", txn, pair.local_base, pair.stream,
                                      pair.component, pair, use_candidate, self.controlling,
                                      key, prflx_priority, triggered=triggered)
        pair.checks_sent += 1
        pair.extra["sent_at"] = now
        pair.extra["rto"] = txn.rto
        self._events.append(CheckSent(pair.stream, pair.component, pair.local_base,
                                      pair.remote_addr, use_candidate, triggered))
        self._trace(now, "out", f"check {'triggered ' if triggered else ''}"
                    f"{'USE-CANDIDATE ' if use_candidate else ''}{pair.describe()}",
                    pair.local_base, pair.remote_addr, data, msg.summary())

    def _stop_retransmitting(self, pair: CandidatePair, now: float) -> None:
        for old in self._pending.values():
            if old.pair is pair and old.kind == "check" and not old.txn.done:
                old.txn.cancel()
                old.listen_until = now + max(self._rto(), old.txn.rto) * self.check_rm

    def _handle_response(self, msg: stun.Message, data: bytes, local: Address,
                         remote: Address, now: float) -> None:
        p = self._pending.get(msg.transaction_id)
        if p is None:
            self._trace(now, "in", f"{msg.summary()} from {remote[0]}:{remote[1]}: no "
                        "transaction (late or repeated)", local, remote, data)
            return
        if p.kind != "check" and (remote != p.txn.addr or local != p.local):
            # a STUN server's (or consent) answer only counts from where the request went: a
            # forged one must neither plant a reflexive candidate nor end the transaction
            # (checks: RFC 8445 §7.2.5.2.1 below, after integrity)
            self._trace(now, "in", f"{msg.summary()} from {remote[0]}:{remote[1]}, not from "
                        f"{p.txn.addr[0]}:{p.txn.addr[1]}: dropped", local, remote, data)
            return
        if p.key is not None and stun.verify(data, p.key) is not None:
            self._trace(now, "in", f"response failed integrity from {remote}", local, remote,
                        data)
            return
        del self._pending[msg.transaction_id]
        if p.txn.sent > 1 and p.kind == "gather":
            # a STUN server answered only a retransmission: the path loses packets.  (A check
            # answered late proves nothing: the peer's NAT may have filtered the first copy
            # until its own check opened it, or its relay lacked the permission yet.)
            self.loss_seen = True

        p.txn.receive_response(msg, now)
        what = {"check": "check response", "consent": "consent response",
                "gather": "STUN server response"}[p.kind]
        about = f" for {p.pair.describe()}" if p.pair is not None else ""
        rtt = f" rtt {1000 * (now - p.txn.send_times[-1]):.1f} ms" if p.txn.send_times else ""
        self._trace(now, "in", f"{what} {msg.summary()} from {remote[0]}:{remote[1]}{about}"
                    f"{rtt} (sent {p.txn.sent}x)", local, remote, data)
        if p.kind == "gather":
            self._on_gather_response(p, msg, now)
        elif p.kind == "consent":
            self._on_consent_response(p, msg, remote, now)
        else:
            self._on_check_response(p, msg, local, remote, now)

    def _on_check_response(self, p: _Pending, msg: stun.Message, local: Address,
                           remote: Address, now: float) -> None:
        pair = p.pair
        assert pair is not None
        s = self._streams[pair.stream]
        if pair.extra.get("sent_at") is not None:
            pair.rtt = now - float(pair.extra["sent_at"])  # type: ignore[arg-type]
        # RFC 8445 §7.2.5.2.1: the response must come back on the same pair of addresses
        if remote != pair.remote_addr or local != pair.local_base:
            self._set_state(pair, PairState.FAILED, now)
            self._check_failed(s, now)
            return
        if msg.cls == Class.ERROR:
            err = msg.error_code
            if err is not None and err[0] == 487:
                # RFC 8445 §7.2.5.1: switch to the role the request did not claim, retry;
                # "The agent MUST change the tiebreaker value."
                if p.controlling == self.controlling:
                    self._switch_role(not p.controlling, "487 Role Conflict received", now)
                    self.tie_breaker = self._rng.getrandbits(64)
                pair.extra["retry"] = True
                self._set_state(pair, PairState.WAITING, now)
                s.checklist.push_triggered(pair)
                self._pace(now)
                return
            self._set_state(pair, PairState.FAILED, now)
            if self._nomination_failed(s, pair, p, f"{err[0] if err else 'error'} response",
                                       now):
                return
            self._check_failed(s, now)
            return
        if s.checklist.find(pair.component, pair.local_base, pair.remote_addr) is not pair \
                and pair.extra.get("valid_only") is None:
            return   # the pair belongs to a check list replaced by a restart
        if p.txn.sent == 1 and p.txn.send_times:
            s.rtt = max(s.rtt, now - p.txn.send_times[0])
        self._set_state(pair, PairState.SUCCEEDED, now)
        mapped = msg.address(Attr.XOR_MAPPED_ADDRESS) or msg.address(Attr.MAPPED_ADDRESS)
        valid = self._valid_pair_for(s, pair, mapped, p.priority, now)
        was_nominated = valid.nominated
        if p.use_candidate or (not self.controlling and pair.remote_nominated):
            valid.nominated = True
        # RFC 8445 §7.2.5.3.3: unfreeze the same foundation in every check list
        for q in self._set.unfreeze_foundation(pair.foundation):
            self._emit_state(q)
        if s.first_valid_at is None:
            s.first_valid_at = now
            if self.controlling and self.nomination == "regular":
                s.nominate_at = now + self.nomination_delay
        self._refresh_consent(s, valid, now)
        if valid.nominated and not was_nominated:
            self._trace(now, "event", f"nominated {valid.describe()}")
        self._update_selected(s, now)
        if self.controlling and self.nomination == "regular":
            self._maybe_nominate(s, now)
        self._pace(now)

    def _nomination_failed(self, s: _Stream, pair: CandidatePair, p: _Pending, why: str,
                           now: float) -> bool:
        """RFC 8445 §7.2.5.3.4: a nominating check refused with an error response removes its
        pair from the valid list and fails the check list at once; so does the controlled
        agent's triggered check for a pair the peer nominated.  (A timeout is retried: see
        the module docstring.)"""
        # (with RFC 5245 aggressive nomination every check carries USE-CANDIDATE: one
        # refused check there is just a failed pair)
        nominating = (p.use_candidate and self.nomination == "regular") or (
            not p.controlling and pair.remote_nominated and p.triggered)
        if not nominating or s.completed or s.failed or p.pair is None:
            return False
        if s.checklist.find(pair.component, pair.local_base, pair.remote_addr) is not pair \
                and pair not in s.checklist.valid_extra:
            return False          # a pair of a check list replaced by a restart
        for q in (pair, pair.extra.get("checked")):
            if isinstance(q, CandidatePair):
                q.valid = q.nominated = False
                q.state = PairState.FAILED
        if pair in s.checklist.valid_extra:
            s.checklist.valid_extra.remove(pair)
        self._fail(s, f"component {pair.component}: nomination of {pair.describe()} failed "
                   f"({why})", now)
        return True

    def _valid_pair_for(self, s: _Stream, pair: CandidatePair, mapped: Address | None,
                        priority: int, now: float) -> CandidatePair:
        """RFC 8445 §7.2.5.3.2: the valid pair has the local candidate whose address equals the
        mapped address (a new peer-reflexive one when none does, §7.2.5.3.1)."""
        existing = pair.extra.get("valid")
        if isinstance(existing, CandidatePair):
            return existing
        valid = pair
        if mapped is not None and mapped != (pair.local.address, pair.local.port):
            local = next((c for c in s.local_candidates if (c.address, c.port) == mapped
                          and c.component == pair.component), None)
            if local is None:
                local = Candidate(
                    foundation=compute_foundation(CandidateType.PEER_REFLEXIVE,
                                                  pair.local_base[0]),
                    component=pair.component, transport="udp", priority=priority,
                    address=mapped[0], port=mapped[1], type=CandidateType.PEER_REFLEXIVE,
                    related_address=pair.local_base[0], related_port=pair.local_base[1])
                self._base_of[mapped] = pair.local_base
                s.local_candidates.append(local)
                self._trace(now, "event", f"learnt local peer-reflexive {mapped[0]}:{mapped[1]}")
            valid = CandidatePair(s.index, local, pair.remote, pair.local_base)
            valid.update_priority(self.controlling)
            valid.state = PairState.SUCCEEDED
            valid.extra["valid_only"] = True
            valid.extra["checked"] = pair
            valid.remote_nominated = pair.remote_nominated
        valid.valid = True
        pair.extra["valid"] = valid
        if valid is not pair:
            valid.extra["valid"] = valid
            s.checklist.valid_extra.append(valid)
        return valid

    def _valid_list(self, s: _Stream, component: int) -> list[CandidatePair]:
        pairs = [p for p in s.checklist.pairs if p.valid and p.component == component]
        pairs += [p for p in s.checklist.valid_extra if p.component == component]
        return sorted(pairs, key=lambda p: -p.priority)

    def _maybe_nominate(self, s: _Stream, now: float, force: bool = False) -> None:
        """Regular nomination (RFC 8445 §8.1.1), the policy of the module docstring: once
        each component has a valid pair, check the best valid pair again with USE-CANDIDATE
        as soon as every better pair is hopeless (:meth:`_hopeless_at`), or with ``force``
        (``nomination_delay`` after the first valid pair)."""
        if s.completed or s.failed:
            return
        s.reconsider_at = None
        later: list[float] = []
        groups: dict[tuple[str, str], list[CandidatePair]] | None = None
        for comp in range(1, s.components + 1):
            if any(p.nominated or p.extra.get("nominating") for p in self._valid_list(s, comp)):
                continue
            valid = self._valid_list(s, comp)
            if not valid:
                continue
            best = valid[0]
            if not force:
                rivals = [p for p in s.checklist.pairs
                          if p.component == comp and p.priority > best.priority
                          and p.state in (PairState.FROZEN, PairState.WAITING,
                                          PairState.IN_PROGRESS)
                          and "removed" not in p.extra]
                if groups is None and any(p.state is PairState.FROZEN for p in rivals):
                    groups = {}
                    for cl in self._set:
                        for q in cl.pairs:
                            groups.setdefault(q.foundation, []).append(q)
                waits = [self._hopeless_at(s, best, p, now, groups or {}) for p in rivals]
                due = max(waits, default=now)
                if due > now:
                    later.append(due)
                    continue
            best.extra["nominating"] = True
            best.extra["nominate"] = True
            s.checklist.triggered.appendleft(best)   # paced like any check (§6.1.4.2)
            self._trace(now, "event", f"nominating {best.describe()}"
                        + (" (nomination_delay reached)" if force else ""))
            self._pace(now)
        finite = [t for t in later if t != float("inf")]   # inf: nomination_delay decides
        if finite:
            s.reconsider_at = min(finite)

    def _patience(self, s: _Stream) -> float:
        """How long a check may stay unanswered before its pair is deemed hopeless: four
        times the slowest answer seen on this stream, at least ``nomination_patience``."""
        return max(self.nomination_patience, 4 * s.rtt)

    def _hopeless_at(self, s: _Stream, best: CandidatePair, rival: CandidatePair, now: float,
                     groups: dict[tuple[str, str], list[CandidatePair]]) -> float:
        """When ``rival`` (better than the valid ``best``, not yet answered) stops being worth
        waiting for (the policy of the module docstring).  Waiting: it is checked within a
        few Ta, ask again one Ta after the next check.  Frozen: it follows its foundation,
        hopeless once every checked pair of that foundation is (and none succeeded).
        In-Progress: hopeless once its latest check went unanswered for the patience; but when
        ``best`` is relayed and ``rival`` direct, only after the rival's first retransmission
        had its patience too (``relay_after_retransmission``), and never (``nomination_delay``
        decides) once loss was seen or the peer's check came in on the rival's addresses."""
        soon = max(now, self._next_check_at) + self.ta
        if rival.state is PairState.WAITING:
            return soon
        if rival.state is PairState.FROZEN:
            same = [q for q in groups.get(rival.foundation, ()) if q is not rival]
            if any(q.state is PairState.SUCCEEDED for q in same):
                return soon
            busy = [q for q in same if q.state is PairState.IN_PROGRESS]
            if not busy and not any(q.state is PairState.FAILED for q in same):
                return soon
            return max((self._hopeless_at(s, best, q, now, groups) for q in busy), default=now)
        sent_at = rival.extra.get("sent_at")
        if not isinstance(sent_at, (int, float)):
            return soon
        if self._relayed(best) and not self._relayed(rival):
            if self.loss_seen or rival.extra.get("heard"):
                return float("inf")      # only nomination_delay (or the rival failing) ends this
            if self.relay_after_retransmission:
                rto = rival.extra.get("rto")
                return float(sent_at) + (rto if isinstance(rto, (int, float)) else 0.5) \
                    + self._patience(s)
        return float(sent_at) + self._patience(s)

    @staticmethod
    def _relayed(pair: CandidatePair) -> bool:
        return CandidateType.RELAYED in (pair.local.type, pair.remote.type)

    def _conclude_component(self, s: _Stream, comp: int, keep: CandidatePair, now: float
                            ) -> None:
        """RFC 8445 §8.1.2: once a pair of a component is nominated (check list Running), the
        other pairs of that component leave the check list and the triggered-check queue;
        In-Progress ones stop retransmitting but a late answer is still taken."""
        if s.checklist.state is not CheckListState.RUNNING:
            return
        if self.nomination == "aggressive" and self.controlling:
            return      # RFC 5245 aggressive nomination keeps checking for a better pair
        checked = keep.extra.get("checked")
        for p in s.checklist.pairs:
            if p.component != comp or p is keep or p is checked:
                continue
            if p.state in (PairState.FROZEN, PairState.WAITING):
                p.state = PairState.FAILED
                p.extra["removed"] = True
                self._emit_state(p)
            elif p.state is PairState.IN_PROGRESS:
                self._stop_retransmitting(p, now)
                p.extra["removed"] = True
            try:
                s.checklist.triggered.remove(p)
            except ValueError:
                pass

    def _update_selected(self, s: _Stream, now: float) -> None:
        for comp in range(1, s.components + 1):
            nominated = [p for p in self._valid_list(s, comp) if p.nominated]
            if not nominated:
                continue
            best = nominated[0]
            self._conclude_component(s, comp, best, now)
            if s.selected.get(comp) is not best:
                s.selected[comp] = best
                self._events.append(SelectedPairChanged(s.index, comp, best.local, best.remote,
                                                        best.local_base))
                self._trace(now, "event", f"selected {best.describe()}")
                relay = self._relay_by_addr.get(best.local_base)
                if relay is not None and relay.alloc.state is AllocationState.ALLOCATED:
                    relay.alloc.bind_channel(best.remote_addr, now)
                if self.lite:
                    continue     # RFC 7675 §4: a lite agent does not send consent requests
                s.consent[comp] = _Consent(
                    best, now, now + self._consent_delay(),
                    f"{s.remote_ufrag}:{self.local_username}",
                    stun.short_term_key(s.remote_pwd or ""))
        if (not s.completed and not s.failed
                and all(c in s.selected and s.selected[c].nominated
                        and s.selected[c].stream == s.index
                        and self._is_current(s, s.selected[c])
                        for c in range(1, s.components + 1))):
            s.completed = True
            s.checklist.state = CheckListState.COMPLETED
            if self.nomination == "regular" or not self.controlling:
                # RFC 8445 §8.1.2: stop checking what is left of the stream
                for p in s.checklist.pairs:
                    if p.state in (PairState.FROZEN, PairState.WAITING):
                        p.state = PairState.FAILED
                        p.extra["removed"] = True
            s.checklist.triggered.clear()
            if all(x.completed or x.failed for x in self._streams):
                self._old_credentials = None
            self._events.append(IceCompleted(s.index))
            self._trace(now, "event", f"stream {s.index} Completed")

    def _is_current(self, s: _Stream, pair: CandidatePair) -> bool:
        return pair in s.checklist.pairs or pair in s.checklist.valid_extra

    def _check_failed(self, s: _Stream, now: float) -> None:
        """RFC 8445 §7.2.5.3.5 / §8.1.2: a stream fails when every pair failed and no more
        candidates can come."""
        if s.completed or s.failed or not self._running or self.lite:
            return
        if not s.remote_end or not s.gathering_done:
            return
        cl = s.checklist
        for comp in range(1, s.components + 1):
            if any(p.component == comp and (p.state is not PairState.FAILED or p.valid)
                   for p in cl.pairs) or any(p.component == comp for p in cl.valid_extra):
                continue
            if any(p.pair is not None and p.pair.stream == s.index and p.kind == "check"
                   and not p.txn.done for p in self._pending.values()):
                return
            self._fail(s, f"component {comp}: every candidate pair failed"
                       if cl.pairs else f"component {comp}: no candidate pairs", now)
            return

    def _fail(self, s: _Stream, reason: str, now: float) -> None:
        s.failed = True
        s.checklist.state = CheckListState.FAILED
        for tid, p in list(self._pending.items()):
            if p.kind == "check" and p.stream == s.index:
                p.txn.cancel()
                del self._pending[tid]
        self._events.append(IceFailed(s.index, reason))
        self._trace(now, "event", f"stream {s.index} Failed: {reason}")

    def _switch_role(self, controlling: bool, reason: str, now: float) -> None:
        if controlling == self.controlling:
            return
        self.controlling = controlling
        for cl in self._set:
            cl.recompute_priorities(controlling)
        for s in self._streams:
            for p in s.checklist.valid_extra:
                p.update_priority(controlling)
        self._events.append(RoleChanged(controlling, reason))
        self._trace(now, "event", f"role -> {'controlling' if controlling else 'controlled'}"
                    f" ({reason})")

    def _on_timeout(self, p: _Pending, now: float) -> None:
        if p.kind == "gather":
            s = self._streams[p.stream]
            assert p.server is not None
            self._events.append(GatheringFailed(p.stream, p.component, p.server,
                                                "no answer from STUN server"))
            self._trace(now, "event", f"STUN server {p.server} unreachable")
            self._maybe_gathering_done(s)
            self._check_failed(s, now)
            return
        if p.kind == "consent":
            return
        pair = p.pair
        assert pair is not None
        self._trace(now, "event", f"check timed out {pair.describe()}")
        s = self._streams[pair.stream]
        if pair.state is PairState.IN_PROGRESS:
            self._set_state(pair, PairState.FAILED, now)
        # a nominating check that timed out is nominated again (module docstring: the peer
        # may have selected the pair already, only its answers were lost)
        pair.extra.pop("nominating", None)
        self._check_failed(s, now)
        if self.controlling and self.nomination == "regular":
            self._maybe_nominate(s, now)

    # ================================================================ internals: requests
    def _handle_request(self, msg: stun.Message, data: bytes, local: Address, remote: Address,
                        si: int, comp: int, now: float) -> None:
        self._trace(now, "in", f"{msg.summary()} from {remote[0]}:{remote[1]}", local, remote,
                    data)
        if msg.method != Method.BINDING:
            self._respond(stun.error_response(msg, 400), None, local, remote, now)
            return
        username = msg.get(Attr.USERNAME)
        creds = [(self.local_username, self.local_password)]
        if self._old_credentials is not None:
            creds.append(self._old_credentials)
        # RFC 8445 §7.3: the username is valid only as two values separated by a colon
        if not isinstance(username, str) or ":" not in username \
                or Attr.MESSAGE_INTEGRITY not in msg:
            self._respond(stun.error_response(msg, 400), None, local, remote, now)
            return
        pwd = next((p for u, p in creds if username.split(":", 1)[0] == u), None)
        if pwd is None or not stun.check_integrity(data, stun.short_term_key(pwd)):
            self._respond(stun.error_response(msg, 401), None, local, remote, now)
            return
        key = stun.short_term_key(pwd)
        err420 = stun.error_420(msg)
        if err420 is not None:
            self._respond(err420, key, local, remote, now)
            return
        # RFC 8445 §7.3.1.1: role conflicts
        if not self.lite:
            theirs_ctl = msg.get(Attr.ICE_CONTROLLING)
            theirs_ctd = msg.get(Attr.ICE_CONTROLLED)
            if self.controlling and isinstance(theirs_ctl, int):
                if self.tie_breaker >= theirs_ctl:
                    self._respond(stun.error_response(msg, 487), key, local, remote, now)
                    return
                self._switch_role(False, "role conflict: peer has the larger tie-breaker", now)
            elif not self.controlling and isinstance(theirs_ctd, int):
                if self.tie_breaker >= theirs_ctd:
                    self._switch_role(True, "role conflict: we have the larger tie-breaker", now)
                else:
                    self._respond(stun.error_response(msg, 487), key, local, remote, now)
                    return
        resp = stun.success_response(msg, [(Attr.XOR_MAPPED_ADDRESS, remote)])
        self._respond(resp, key, local, remote, now)
        if msg.transaction_id in self._seen_requests:
            self.loss_seen = True    # the peer retransmitted a check we answered: a loss
        else:
            self._seen_requests.append(msg.transaction_id)
        if pwd != self.local_password:
            return   # a check (consent) on the pre-restart credentials: answered, nothing more
        if not self._running and not self.lite:
            self._early.append((msg, local, remote, si, comp))
            return
        self._handle_request_checked(msg, local, remote, si, comp, now)

    def _respond(self, msg: stun.Message, key: bytes | None, local: Address, remote: Address,
                 now: float) -> None:
        data = stun.encode(msg, key=key)
        self._out.append((data, local, remote))
        self._trace(now, "out", f"{msg.summary()} to {remote[0]}:{remote[1]}", local, remote,
                    data)

    def _handle_request_checked(self, msg: stun.Message, local: Address, remote: Address,
                                si: int, comp: int, now: float) -> None:
        s = self._streams[si]
        use_candidate = Attr.USE_CANDIDATE in msg
        if self.policy == "relay" and local not in self._relay_by_addr:
            return   # host sockets only carry TURN traffic under the relay policy
        if self.lite:
            self._lite_request(s, comp, local, remote, use_candidate, now)
            return
        # RFC 8445 §7.3.1.3: a source address we do not know is a peer-reflexive candidate
        rc = next((c for c in s.remote_candidates
                   if (c.address, c.port) == remote and c.component == comp), None)
        if rc is None:
            if len(s.remote_candidates) >= MAX_REMOTE_CANDIDATES:
                return
            self._prflx_counter += 1
            prio = msg.get(Attr.PRIORITY)
            rc = Candidate(foundation=f"prflx{self._prflx_counter}", component=comp,
                           transport="udp",
                           priority=prio if isinstance(prio, int) else 0,
                           address=remote[0], port=remote[1], type=CandidateType.PEER_REFLEXIVE)
            s.remote_candidates.append(rc)
            self._trace(now, "event", f"learnt remote peer-reflexive {remote[0]}:{remote[1]}")
        pair = s.checklist.find(comp, local, remote)
        if pair is None:
            lc = next((c for c in s.local_candidates if (c.address, c.port) == local), None)
            if lc is None:
                lc = host_candidate(local, comp, self._local_pref.get(local[0], 0))
            pair = CandidatePair(si, lc, rc, local)
            pair.update_priority(self.controlling)
            if s.checklist.add(pair) is not pair:
                return
            self._set.enforce_limit()
            if s.checklist.find(comp, local, remote) is not pair:
                return
            self._emit_state(pair)
        if use_candidate and not self.controlling:
            pair.remote_nominated = True
        pair.extra["heard"] = True      # the peer's check came in on this pair's addresses
        # RFC 8445 §7.3.1.4: triggered checks
        if pair.state is PairState.SUCCEEDED:
            if use_candidate and not self.controlling:
                valid = pair.extra.get("valid")
                v = valid if isinstance(valid, CandidatePair) else pair
                if not v.nominated:
                    v.nominated = True
                    self._trace(now, "event", f"nominated by peer {v.describe()}")
                    self._update_selected(s, now)
        elif pair.state is PairState.IN_PROGRESS:
            if s.checklist.state is CheckListState.RUNNING:
                # RFC 8445 §7.3.1.4: stop retransmitting (a late answer still counts) and
                # check again as a triggered check: our request may have been lost
                self._stop_retransmitting(pair, now)
                pair.extra["retry"] = True
                self._set_state(pair, PairState.WAITING, now)
                s.checklist.push_triggered(pair)
        elif pair.state in (PairState.FROZEN, PairState.WAITING, PairState.FAILED):
            if s.checklist.state is CheckListState.RUNNING or use_candidate:
                if "removed" not in pair.extra or use_candidate:
                    pair.extra.pop("removed", None)
                    pair.extra["retry"] = True
                    self._set_state(pair, PairState.WAITING, now)
                    s.checklist.push_triggered(pair)
                    if s.checklist.state is not CheckListState.RUNNING:
                        # a nomination after completion (aggressive peer): check it at once
                        s.checklist.triggered.remove(pair)
                        self._send_check(pair, now, True, False)
        self._pace(now)

    def _lite_request(self, s: _Stream, comp: int, local: Address, remote: Address,
                      use_candidate: bool, now: float) -> None:
        """RFC 8445 §8.2: a lite agent selects what the full agent nominates."""
        if not use_candidate:
            return
        pair = s.checklist.find(comp, local, remote)
        if pair is None:
            lc = next((c for c in s.local_candidates if (c.address, c.port) == local), None)
            rc = next((c for c in s.remote_candidates
                       if (c.address, c.port) == remote and c.component == comp), None)
            if lc is None:
                return
            if rc is None:
                self._prflx_counter += 1
                rc = Candidate(f"prflx{self._prflx_counter}", comp, "udp", 0, remote[0],
                               remote[1], CandidateType.PEER_REFLEXIVE)
            pair = CandidatePair(s.index, lc, rc, local)
            pair.update_priority(self.controlling)
            s.checklist.add(pair)
        pair.state = PairState.SUCCEEDED
        pair.valid = pair.nominated = True
        self._update_selected(s, now)

    # ================================================================ internals: gathering
    def _start_gather(self, s: _Stream, comp: int, base: Address, server: Address,
                      now: float, index: int = 0, rto: float = 0.5) -> None:
        """A Binding request to a STUN server, first sent at ``now`` (paced by the caller)."""
        tid = self._new_tid()
        msg = stun.Message(Method.BINDING, Class.REQUEST, tid)
        data = stun.encode(msg)
        txn = StunClientTransaction(data, tid, server, now, rto=rto, rc=self.gather_rc,
                                    rm=self.gather_rm)
        self._pending[tid] = _Pending("gather", txn, base, s.index, comp, server=server,
                                      pref_offset=index)
        self._trace(now, "out", f"Binding request to STUN server {server[0]}:{server[1]}",
                    base, server, data)

    def _on_gather_response(self, p: _Pending, msg: stun.Message, now: float) -> None:
        s = self._streams[p.stream]
        assert p.server is not None
        mapped = msg.address(Attr.XOR_MAPPED_ADDRESS) or msg.address(Attr.MAPPED_ADDRESS)
        if msg.cls == Class.ERROR or mapped is None:
            err = msg.error_code
            self._events.append(GatheringFailed(
                p.stream, p.component, p.server,
                f"STUN error {err[0]} {err[1]}" if err else "no mapped address"))
        else:
            self._base_of.setdefault(mapped, p.local)
            # RFC 8445 §5.1.2.1: a distinct local preference per server on the same base;
            # §5.1.1.3: the foundation depends on the server's IP address only
            cand = reflexive_candidate(CandidateType.SERVER_REFLEXIVE, mapped, p.local,
                                       p.component, self._pref(p.local, p.pref_offset),
                                       p.server[0])
            self._add_local(s, cand)
            if self._running:
                self._pace(now)
        self._maybe_gathering_done(s)
        self._check_failed(s, now)

    def _maybe_gathering_done(self, s: _Stream) -> None:
        if s.gathering_done:
            return
        if any(p.kind == "gather" and p.stream == s.index for p in self._pending.values()):
            return
        if any(r.stream == s.index and not r.removed
               and r.alloc.state is AllocationState.ALLOCATING
               for r in self._relays):
            return
        s.gathering_done = True
        self._events.append(GatheringComplete(s.index))

    def _relay_wanted(self, s: _Stream, comp: int, base: Address, server: TurnServer,
                      jobs: Sequence[tuple[_Stream, int, Address, int, object]]) -> bool:
        """One allocation per component per TURN server, from the first host socket of the
        server's address family."""
        srv = (server.host, server.port)
        if (":" in server.host) != (":" in base[0]):
            return False
        if any(r.stream == s.index and r.component == comp and r.server == srv
               and r.alloc.transport == server.transport for r in self._relays):
            return False
        return not any(js is s and jc == comp and j is server for js, jc, _, _, j in jobs)

    def _start_relay(self, s: _Stream, comp: int, base: Address, server: TurnServer,
                     now: float, index: int = 0, rto: float = 0.5) -> None:
        """An allocation on ``server`` from ``base``, its Allocate first sent at ``now``."""
        srv = (server.host, server.port)
        stream = server.transport != "udp"   # TCP/TLS: its local address comes on connect
        alloc = Allocation(srv, server.username, server.password, rto=rto, rc=self.gather_rc,
                           rm=self.gather_rm, trace=self.trace,
                           local=None if stream else base, transport=server.transport)
        relay = _Relay(s.index, comp, base, srv, alloc, index)
        self._relays.append(relay)
        if alloc.reliable:   # over TCP/TLS: the driver opens it; messages wait meanwhile
            relay.connection = StreamConnection(s.index, comp, base[0], srv, server.transport,
                                                server.tls_ca)
            self._relay_by_stream[relay.connection] = relay
            self._streams_to_open.append(relay.connection)
        else:
            self._relay_by_path[(base, srv)] = relay
        alloc.allocate(now)

    def _pref(self, base: Address, offset: int) -> int:
        """The local preference of a candidate on ``base``: the base address's, less
        ``offset`` (one step per server), so no two candidates share a priority (§5.1.2)."""
        return max(0, self._local_pref.get(base[0], 0) - offset)

    def _drain_relay(self, relay: _Relay, now: float) -> None:
        s = self._streams[relay.stream]
        while (ev := relay.alloc.next_event()) is not None:
            if relay.removed and not isinstance(ev, Released):
                continue                 # its component was removed: only the release counts
            if isinstance(ev, AllocationSucceeded):
                if self._closed:
                    continue
                relay.relayed = ev.relayed
                self._sockets[ev.relayed] = (relay.stream, relay.component)
                self._base_of[ev.relayed] = ev.relayed
                self._relay_by_addr[ev.relayed] = relay
                cand = Candidate(
                    # RFC 8445 §5.1.1.3: the server's IP (not its port) and the transport
                    # to it are part of the foundation
                    foundation=compute_foundation(
                        CandidateType.RELAYED, relay.base[0],
                        server=relay.server[0]
                        + ("" if relay.connection is None else f"/{relay.alloc.transport}")),
                    component=relay.component, transport="udp",
                    priority=candidate_priority(TYPE_PREFERENCE[CandidateType.RELAYED],
                                                self._pref(relay.base, relay.index),
                                                relay.component),
                    address=ev.relayed[0], port=ev.relayed[1], type=CandidateType.RELAYED,
                    related_address=(ev.mapped or relay.base)[0],
                    related_port=(ev.mapped or relay.base)[1])
                self._trace(now, "event", f"relayed candidate {cand}")
                if ev.mapped is not None and self.policy == "all" and relay.connection is None:
                    # RFC 8445 §5.1.1.2: the Allocate response's XOR-MAPPED-ADDRESS is a
                    # server-reflexive candidate (redundant when a STUN server gave it too);
                    # over TURN/TCP or TLS it is our TCP mapping, no UDP candidate at all
                    self._base_of.setdefault(ev.mapped, relay.base)
                    self._add_local(s, reflexive_candidate(
                        CandidateType.SERVER_REFLEXIVE, ev.mapped, relay.base,
                        relay.component,
                        self._pref(relay.base, len(self.stun_servers) + relay.index),
                        relay.server[0]))
                self._add_local(s, cand)
                self._maybe_gathering_done(s)
                self._pace(now)
            elif isinstance(ev, AllocationFailed):
                kind = GatheringFailed if ev.during == "allocate" else RelayError
                self._events.append(kind(
                    relay.stream, relay.component, relay.server,
                    f"TURN {ev.during} failed: {ev.code} {ev.reason}"))
                self._maybe_gathering_done(s)
                self._check_failed(s, now)
            elif isinstance(ev, DataReceived):
                if relay.relayed is not None:
                    self.receive(ev.data, relay.relayed, ev.peer, now)
            elif isinstance(ev, (PermissionFailed, ChannelBindFailed)):
                what = "permission" if isinstance(ev, PermissionFailed) else "channel"
                reason = f"TURN {what} for {ev.peer} failed: {ev.code} {ev.reason}"
                self._trace(now, "event", reason)
                self._events.append(RelayError(relay.stream, relay.component, relay.server,
                                               reason))
            elif isinstance(ev, Released):
                self._trace(now, "event", f"TURN allocation on {relay.server} released")

    # ================================================================ internals: consent
    def _consent_delay(self) -> float:
        return self.consent_interval * (0.8 + 0.4 * self._rng.random())

    def _refresh_consent(self, s: _Stream, pair: CandidatePair, now: float) -> None:
        for c in s.consent.values():
            if c.pair is pair or (c.pair.local_base, c.pair.remote_addr) == (
                    pair.local_base, pair.remote_addr):
                c.last_ok = now

    def _on_consent_response(self, p: _Pending, msg: stun.Message, remote: Address,
                             now: float) -> None:
        s = self._streams[p.stream]
        c = s.consent.get(p.component)
        if c is None or msg.cls != Class.SUCCESS or remote != c.pair.remote_addr:
            return
        c.last_ok = now

    def _consent_timers(self, s: _Stream, now: float) -> None:
        if self.lite:
            return
        for comp, c in list(s.consent.items()):
            if c.expired:
                continue
            if now >= c.last_ok + self.consent_timeout:
                c.expired = True
                for tid, p in list(self._pending.items()):
                    if p.kind == "consent" and p.stream == s.index and p.component == comp:
                        p.txn.cancel()
                        del self._pending[tid]
                self._events.append(ConsentExpired(s.index, comp))
                self._trace(now, "event", f"consent expired {c.pair.describe()}")
                continue
            if now >= c.next_at:
                c.next_at = now + self._consent_delay()
                tid = self._new_tid()
                msg = stun.Message(Method.BINDING, Class.REQUEST, tid)
                msg[Attr.USERNAME] = c.ufrag
                msg[Attr.PRIORITY] = c.pair.local.priority
                if self.controlling:
                    msg[Attr.ICE_CONTROLLING] = self.tie_breaker
                else:
                    msg[Attr.ICE_CONTROLLED] = self.tie_breaker
                data = stun.encode(msg, key=c.key)
                # RFC 7675 §5.1: retransmitted, and given up before the next one is due
                txn = StunClientTransaction(data, tid, c.pair.remote_addr, now, rto=0.5, rc=4,
                                            rm=1)
                self._pending[tid] = _Pending("consent", txn, c.pair.local_base, s.index, comp,
                                              c.pair, key=c.key)
                self._trace(now, "out", f"consent request {c.pair.describe()}",
                            c.pair.local_base, c.pair.remote_addr, data)

