"""Check lists on their own: pair formation, ordering, pruning, the cap, the frozen algorithm."""

from ice.candidate import Candidate, CandidateType, candidate_priority, compute_foundation
from ice.checklist import (
    CandidatePair,
    CheckList,
    CheckListSet,
    PairState,
    form_pairs,
)
from ice.gathering import host_candidate, local_preferences, reflexive_candidate


def host(ip: str, port: int, component: int = 1, pref: int = 65535) -> Candidate:
    return host_candidate((ip, port), component, pref)


def test_pairs_same_component_and_family_only():
    locals_ = [host("10.0.0.1", 1000, 1), host("10.0.0.1", 1001, 2), host("2001:db8::1", 1002)]
    remotes = [host("10.0.0.2", 2000, 1), host("10.0.0.2", 2001, 2), host("2001:db8::2", 2002)]
    pairs = form_pairs(0, locals_, remotes, {}, controlling=True)
    got = {(p.local.port, p.remote.port) for p in pairs}
    assert got == {(1000, 2000), (1001, 2001), (1002, 2002)}


def test_pair_priority_depends_on_role():
    lo = host("10.0.0.1", 1000, pref=65535)
    re = host("10.0.0.2", 2000, pref=100)
    (ctl,) = form_pairs(0, [lo], [re], {}, controlling=True)
    (ctd,) = form_pairs(0, [lo], [re], {}, controlling=False)
    assert ctl.priority != ctd.priority
    assert ctl.priority & 1 == 1 and ctd.priority & 1 == 0   # G > D bit


def test_checklist_sorted_pruned_and_capped():
    cl = CheckList(0, 1, max_pairs=5)
    prefs = local_preferences([f"10.0.0.{i}" for i in range(1, 5)])
    locals_ = [host(ip, 1000 + i, pref=prefs[ip]) for i, ip in enumerate(prefs)]
    remotes = [host(f"10.1.0.{i}", 2000 + i, pref=65535 - i) for i in range(4)]
    for p in form_pairs(0, locals_, remotes, {}, controlling=True):
        cl.add(p)
    assert len(cl) == 5
    prios = [p.priority for p in cl]
    assert prios == sorted(prios, reverse=True)
    # the five kept are the five best of the sixteen
    every = sorted((p.priority for p in form_pairs(0, locals_, remotes, {}, True)), reverse=True)
    assert prios == every[:5]


def test_srflx_pair_replaced_by_its_base_and_pruned():
    """RFC 8445 §6.1.2.4: a srflx local pairs from its base; the host pair, higher priority,
    makes it redundant."""
    base = ("10.0.0.1", 1000)
    h = host(*base)
    srflx = reflexive_candidate(CandidateType.SERVER_REFLEXIVE, ("203.0.113.1", 40000), base, 1,
                                65535, "stun:3478")
    remote = host("198.51.100.1", 5000)
    base_of = {("203.0.113.1", 40000): base, base: base}
    cl = CheckList(0, 1)
    for p in form_pairs(0, [srflx, h], [remote], base_of, controlling=True):
        cl.add(p)
    assert len(cl) == 1
    (only,) = cl.pairs
    assert only.local_base == base and only.local.type is CandidateType.HOST


def two_stream_set() -> tuple[CheckListSet, list[CheckList]]:
    s = CheckListSet()
    lists = []
    for stream in range(2):
        cl = CheckList(stream, 2)
        locals_ = [host("10.0.0.1", 1000 + 10 * stream + c, c) for c in (1, 2)] + [
            host("10.0.0.9", 1100 + 10 * stream + c, c, pref=1000) for c in (1, 2)]
        remotes = [host("10.1.0.1", 2000 + 10 * stream + c, c) for c in (1, 2)]
        for p in form_pairs(stream, locals_, remotes, {}, controlling=True):
            cl.add(p)
        s.add(cl)
        lists.append(cl)
    return s, lists


def test_initial_unfreeze_one_pair_per_foundation_in_first_list():
    s, (first, second) = two_stream_set()
    changed = s.initial_unfreeze()
    # two foundations (10.0.0.1 and 10.0.0.9 to 10.1.0.1): component 1 of the first stream
    assert len(changed) == 2
    assert all(p.stream == 0 and p.component == 1 for p in changed)
    assert all(p.state is PairState.FROZEN for p in second)
    assert {p.state for p in first if p.component == 2} == {PairState.FROZEN}


def test_success_unfreezes_the_foundation_in_every_list():
    s, (first, second) = two_stream_set()
    s.initial_unfreeze()
    winner = first.pairs[0]
    winner.state = PairState.SUCCEEDED
    changed = s.unfreeze_foundation(winner.foundation)
    assert changed and all(p.foundation == winner.foundation for p in changed)
    assert {p.stream for p in changed} == {0, 1}
    assert all(p.state is PairState.WAITING for p in changed)


def test_scheduler_round_robin_triggered_first_then_unfreeze_idle():
    s, (first, second) = two_stream_set()
    s.initial_unfreeze()
    trig = second.pairs[-1]
    second.push_triggered(trig)
    second.push_triggered(trig)          # queued once only
    assert len(second.triggered) == 1
    picks = []
    while (nxt := s.next_check()) is not None and len(picks) < 8:
        pair, triggered, _ = nxt
        picks.append((pair.stream, triggered))
        pair.state = PairState.IN_PROGRESS
    # stream 0 first, then stream 1's triggered check, then stream 0's other foundation
    assert picks == [(0, False), (1, True), (0, False)]
    # every other pair shares a foundation with an In-Progress pair: it stays Frozen
    assert all(p.state is PairState.FROZEN for p in second if p is not trig)
    # once those checks are over, a list with nothing Waiting unfreezes one pair per
    # foundation (RFC 8445 §6.1.4.2) and goes on, still round-robin
    for p in [*first, *second]:
        if p.state is PairState.IN_PROGRESS:
            p.state = PairState.FAILED
    more = []
    while (nxt := s.next_check()) is not None and len(more) < 8:
        pair, triggered, unfrozen = nxt
        more.append(pair.stream)
        pair.state = PairState.FAILED
    assert set(more) == {0, 1}
    assert all(p.state is PairState.FAILED for cl in (first, second) for p in cl)


def test_active_count_and_find():
    cl = CheckList(0, 1)
    p = CandidatePair(0, host("10.0.0.1", 1), host("10.0.0.2", 2), ("10.0.0.1", 1))
    p.update_priority(True)
    cl.add(p)
    assert cl.find(1, ("10.0.0.1", 1), ("10.0.0.2", 2)) is p
    assert cl.active_count() == 0
    p.state = PairState.WAITING
    assert cl.active_count() == 1


def test_unique_local_preference_per_address():
    prefs = local_preferences(["10.0.0.1", "2001:db8::1", "10.0.0.2"])
    assert len(set(prefs.values())) == 3
    prios = {candidate_priority(126, v, 1) for v in prefs.values()}
    assert len(prios) == 3
    assert compute_foundation(CandidateType.HOST, "10.0.0.1") != compute_foundation(
        CandidateType.HOST, "10.0.0.2")
