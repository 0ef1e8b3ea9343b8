"""Candidate pairs and check lists (RFC 8445 §6.1.2), as plain data and pure functions.

A :class:`CheckList` holds the pairs of one media stream, ordered by pair priority, with the
per-pair states of RFC 8445 §6.1.2.6 and the triggered-check queue of §6.1.4.1.  The frozen
algorithm spans every check list of a session (the "checklist set"), so it lives in
:class:`CheckListSet`.  Nothing here sends packets or reads a clock: the agent drives it.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ice.address import Address
from ice.candidate import Candidate, pair_priority


class PairState(enum.Enum):
    FROZEN = "Frozen"
    WAITING = "Waiting"
    IN_PROGRESS = "In-Progress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class CheckListState(enum.Enum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


@dataclass(eq=False)
class CandidatePair:
    """A local and a remote candidate of one component of one stream (RFC 8445 §6.1.2)."""

    stream: int
    local: Candidate
    remote: Candidate
    local_base: Address            # where checks are sent from (the local candidate's base)
    priority: int = 0
    state: PairState = PairState.FROZEN
    valid: bool = False            # in the valid list (RFC 8445 §7.2.5.3.2)
    nominated: bool = False        # valid and nominated (RFC 8445 §8.1.1)
    remote_nominated: bool = False  # a USE-CANDIDATE arrived for it (controlled side)
    checks_sent: int = 0
    rtt: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def component(self) -> int:
        return self.local.component

    @property
    def foundation(self) -> tuple[str, str]:
        """RFC 8445 §6.1.2.6: the pair foundation joins the two candidate foundations."""
        return (self.local.foundation, self.remote.foundation)

    @property
    def remote_addr(self) -> Address:
        return (self.remote.address, self.remote.port)

    @property
    def key(self) -> tuple[int, int, Address, Address]:
        return (self.stream, self.component, self.local_base, self.remote_addr)

    def update_priority(self, controlling: bool) -> None:
        g, d = ((self.local.priority, self.remote.priority) if controlling
                else (self.remote.priority, self.local.priority))
        self.priority = pair_priority(g, d)

    def describe(self) -> str:
        return (f"s{self.stream}c{self.component} {self.local.type.value} "
                f"{self.local_base[0]}:{self.local_base[1]} -> {self.remote.type.value} "
                f"{self.remote.address}:{self.remote.port}")

    def __repr__(self) -> str:
        return f"CandidatePair({self.describe()} {self.state.value})"


def pair_base(local: Candidate, base_of: dict[Address, Address]) -> Address:
    """The base a local candidate sends from: a server-reflexive candidate's base is the host
    candidate it was learnt on (RFC 8445 §6.1.2.4: pairs use the base, not the srflx)."""
    addr = (local.address, local.port)
    return base_of.get(addr, addr)


def _same_family(a: str, b: str) -> bool:
    return (":" in a) == (":" in b)


def _link_local(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_link_local
    except ValueError:
        return False


def pairable_addresses(local: str, remote: str) -> bool:
    """RFC 8445 §6.1.2.2: the same address family, and an IPv6 link-local address only with
    another link-local one (a global address cannot reach fe80::/10, nor the reverse)."""
    if not _same_family(local, remote):
        return False
    return ":" not in local or _link_local(local) == _link_local(remote)


def form_pairs(
    stream: int,
    locals_: Iterable[Candidate],
    remotes: Iterable[Candidate],
    base_of: dict[Address, Address],
    controlling: bool,
) -> list[CandidatePair]:
    """RFC 8445 §6.1.2.2: pair every local with every remote candidate of the same component
    and address family; server-reflexive locals are replaced by their base (§6.1.2.4)."""
    out: list[CandidatePair] = []
    remotes = list(remotes)
    for local in locals_:
        if local.transport != "udp":
            continue
        for remote in remotes:
            if (remote.component != local.component or remote.transport != "udp"
                    or not pairable_addresses(local.address, remote.address)):
                continue
            pair = CandidatePair(stream, local, remote, pair_base(local, base_of))
            pair.update_priority(controlling)
            out.append(pair)
    return out


class CheckList:
    """The pairs of one media stream, highest priority first (RFC 8445 §6.1.2)."""

    def __init__(self, stream: int, components: int, max_pairs: int = 100) -> None:
        self.stream = stream
        self.components = components
        self.max_pairs = max_pairs
        self.pairs: list[CandidatePair] = []
        self.state = CheckListState.RUNNING
        self.triggered: deque[CandidatePair] = deque()
        # valid pairs that are not in the check list (local peer-reflexive, RFC 8445 §7.2.5.3.2)
        self.valid_extra: list[CandidatePair] = []
        self._by_key: dict[tuple[int, int, Address, Address], CandidatePair] = {}

    # ---- membership ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[CandidatePair]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def find(self, component: int, local_base: Address, remote: Address) -> CandidatePair | None:
        return self._by_key.get((self.stream, component, local_base, remote))

    def add(self, pair: CandidatePair) -> CandidatePair | None:
        """Insert ``pair`` in priority order, pruning redundant pairs (RFC 8445 §6.1.2.4: same
        local base and remote candidate, keep the higher priority) and capping the list at
        ``max_pairs`` (§6.1.2.5: drop the lowest priority).  Returns the pair kept for that
        key, or None when it was pruned by the cap."""
        existing = self._by_key.get(pair.key)
        if existing is not None:
            if pair.priority > existing.priority and existing.state in (
                    PairState.FROZEN, PairState.WAITING):
                existing.local, existing.remote, existing.priority = (
                    pair.local, pair.remote, pair.priority)
                self.sort()
            return existing
        self.pairs.append(pair)
        self._by_key[pair.key] = pair
        self.sort()
        while len(self.pairs) > self.max_pairs:
            victim = next((p for p in reversed(self.pairs)
                           if p.state in (PairState.FROZEN, PairState.WAITING)), None)
            if victim is None:
                break
            self.remove(victim)
        return pair if pair.key in self._by_key and self._by_key[pair.key] is pair else None

    def remove(self, pair: CandidatePair) -> None:
        self.pairs.remove(pair)
        self._by_key.pop(pair.key, None)
        try:
            self.triggered.remove(pair)
        except ValueError:
            pass

    def sort(self) -> None:
        self.pairs.sort(key=lambda p: (-p.priority, p.component))

    def recompute_priorities(self, controlling: bool) -> None:
        """After a role change (RFC 8445 §7.2.5.1) every pair priority changes."""
        for p in self.pairs:
            p.update_priority(controlling)
        self.sort()

    # ---- queries ---------------------------------------------------------------------------
    def in_state(self, *states: PairState) -> list[CandidatePair]:
        return [p for p in self.pairs if p.state in states]

    def valid_pairs(self, component: int | None = None) -> list[CandidatePair]:
        return [p for p in self.pairs if p.valid and (component is None or p.component == component)]

    def best_valid(self, component: int) -> CandidatePair | None:
        return next((p for p in self.pairs if p.valid and p.component == component), None)

    def nominated(self, component: int) -> CandidatePair | None:
        return next((p for p in self.pairs if p.nominated and p.component == component), None)

    def active_count(self) -> int:
        """Pairs being checked, for RTO = max(500 ms, Ta * N) (RFC 8445 §14.3)."""
        return sum(1 for p in self.pairs if p.state in (PairState.WAITING, PairState.IN_PROGRESS))

    def push_triggered(self, pair: CandidatePair) -> None:
        """RFC 8445 §7.3.1.4: queue a triggered check (once)."""
        if pair not in self.triggered:
            self.triggered.append(pair)

    def next_ordinary(self) -> CandidatePair | None:
        """The highest-priority Waiting pair (RFC 8445 §6.1.4.2 step 3)."""
        return next((p for p in self.pairs if p.state is PairState.WAITING), None)


class CheckListSet:
    """Every check list of a session, with the frozen algorithm across them (RFC 8445 §6.1.2.6)
    and the limit on candidate pairs across them (§6.1.2.5)."""

    def __init__(self, max_pairs: int | None = None) -> None:
        self.lists: list[CheckList] = []
        self.max_pairs = max_pairs
        self._rr = 0

    def total_pairs(self) -> int:
        return sum(len(cl.pairs) for cl in self.lists)

    def enforce_limit(self) -> list[CandidatePair]:
        """RFC 8445 §6.1.2.5: the agent MUST limit the pairs of the whole checklist set;
        lowest-priority pairs are discarded, evenly across check lists (always from the
        longest one).  Only pairs not yet checked (Frozen or Waiting) are discarded."""
        dropped: list[CandidatePair] = []
        if self.max_pairs is None:
            return dropped
        while self.total_pairs() > self.max_pairs:
            victim: CandidatePair | None = None
            for cl in sorted(self.lists, key=lambda c: -len(c.pairs)):
                victim = next((p for p in reversed(cl.pairs)
                               if p.state in (PairState.FROZEN, PairState.WAITING)), None)
                if victim is not None:
                    cl.remove(victim)
                    dropped.append(victim)
                    break
            if victim is None:
                break
        return dropped

    def __iter__(self) -> Iterator[CheckList]:
        return iter(self.lists)

    def add(self, checklist: CheckList) -> None:
        self.lists.append(checklist)

    def active_foundations(self) -> set[tuple[str, str]]:
        return {p.foundation for cl in self.lists for p in cl.pairs
                if p.state in (PairState.WAITING, PairState.IN_PROGRESS)}

    def succeeded_foundations(self) -> set[tuple[str, str]]:
        return {p.foundation for cl in self.lists for p in cl.pairs
                if p.state is PairState.SUCCEEDED}

    def initial_unfreeze(self) -> list[CandidatePair]:
        """RFC 8445 §6.1.2.6 step 3: for each foundation, unfreeze the first pair (lowest
        component, then highest priority) in the first check list that has that foundation."""
        seen = self.active_foundations() | {
            p.foundation for cl in self.lists for p in cl.pairs if p.state is PairState.SUCCEEDED}
        changed: list[CandidatePair] = []
        for cl in self.lists:
            for pair in sorted(cl.pairs, key=lambda p: (p.component, -p.priority)):
                if pair.state is PairState.FROZEN and pair.foundation not in seen:
                    seen.add(pair.foundation)
                    pair.state = PairState.WAITING
                    changed.append(pair)
        return changed

    def unfreeze_foundation(self, foundation: tuple[str, str]) -> list[CandidatePair]:
        """RFC 8445 §7.2.5.3.3: a success unfreezes the Frozen pairs of that foundation in
        every check list."""
        changed: list[CandidatePair] = []
        for cl in self.lists:
            for pair in cl.pairs:
                if pair.state is PairState.FROZEN and pair.foundation == foundation:
                    pair.state = PairState.WAITING
                    changed.append(pair)
        return changed

    def unfreeze_idle(self, cl: CheckList) -> list[CandidatePair]:
        """RFC 8445 §6.1.4.2 step 2: with nothing Waiting, unfreeze one Frozen pair per
        foundation that has no Waiting or In-Progress pair anywhere."""
        busy = self.active_foundations()
        changed: list[CandidatePair] = []
        for pair in sorted(cl.pairs, key=lambda p: (p.component, -p.priority)):
            if pair.state is PairState.FROZEN and pair.foundation not in busy:
                busy.add(pair.foundation)
                pair.state = PairState.WAITING
                changed.append(pair)
        return changed

    def next_check(self) -> tuple[CandidatePair, bool, list[CandidatePair]] | None:
        """The pair to check at this Ta tick (RFC 8445 §6.1.4.2), taking the Running check
        lists in round-robin: triggered queue first, then the best Waiting pair, unfreezing
        when a list has none.  Returns (pair, triggered, pairs unfrozen on the way)."""
        n = len(self.lists)
        unfrozen: list[CandidatePair] = []
        for i in range(n):
            cl = self.lists[(self._rr + i) % n]
            if cl.state is not CheckListState.RUNNING:
                continue
            while cl.triggered:
                pair = cl.triggered.popleft()
                if pair.state is PairState.SUCCEEDED and not pair.extra.get("nominate"):
                    continue    # a late answer already made it valid: nothing to check
                if pair.state is not PairState.FAILED or pair.extra.get("retry"):
                    self._rr = (self._rr + i + 1) % n
                    return pair, True, unfrozen
            pair_or_none = cl.next_ordinary()
            if pair_or_none is None:
                unfrozen += self.unfreeze_idle(cl)
                pair_or_none = cl.next_ordinary()
            if pair_or_none is not None:
                self._rr = (self._rr + i + 1) % n
                return pair_or_none, False, unfrozen
        return None
