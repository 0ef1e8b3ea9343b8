"""The RFC 8445 / RFC 8838 points of the ICE audit (siplink issue 14 §4), one test each, written
from the RFCs' words.  Deterministic: agents on a seeded simulated network (ice.sim.simnet) or fed
datagrams directly; every time is virtual.
"""

from __future__ import annotations

import random

import pytest

from ice import stun
from ice.agent import Agent
from ice.candidate import Candidate, CandidateType, pair_priority
from ice.checklist import CheckListState, PairState, form_pairs
from ice.events import CheckSent, IceCompleted, IceFailed, RoleChanged, SelectedPairChanged
from ice.gathering import GatheringError, TurnServer, host_candidate, select_local_addresses
from ice.sim.simnet import Nat, SimAgent, SimNet, StunServer
from ice.sim.simnet import TurnServer as SimTurn
from tests.ice_support import connect, pair_on_net, run_until_done, sent_stun

EIM = "endpoint-independent"
APDM = "address-and-port-dependent"
SERVER = "203.0.113.10"


def gathered(net: SimNet, x: SimAgent) -> None:
    x.agent.gather(net.now)
    x.pump()
    net.run(net.now + 10, stop=lambda: all(s.gathering_done for s in x.agent._streams))


# ---- §5.1.2 priorities, §5.1.1.3 foundations ---------------------------------------------------

def test_candidate_priorities_are_unique_with_several_servers_behind_a_symmetric_nat():
    """RFC 8445 §5.1.2.1: "the local preference ... MUST be unique" per candidate of a
    component; so two relays from two TURN servers and three server-reflexive candidates from
    three STUN servers behind a symmetric NAT (three different mappings) differ in priority."""
    net = SimNet(seed=1, latency=0.01)
    net.add_host(SERVER)
    net.add_host("203.0.113.11")
    stuns = [StunServer(net, SERVER, 3478), StunServer(net, SERVER, 3480),
             StunServer(net, "203.0.113.11", 3478)]
    SimTurn(net, SERVER, 3479)
    SimTurn(net, "203.0.113.11", 3479)
    net.add_nat(Nat("198.51.100.1", "lan", mapping=APDM, filtering=APDM))
    net.add_host("10.0.0.1", "lan")
    a = SimAgent(net, Agent(True, local_addresses=["10.0.0.1"], rng=random.Random(1),
                            stun_servers=[s.addr for s in stuns],
                            turn_servers=[TurnServer(SERVER, 3479, "alice", "secret"),
                                          TurnServer("203.0.113.11", 3479, "alice", "secret")]),
                 "10.0.0.1")
    gathered(net, a)
    cands = a.agent.local_candidates(0)
    relays = [c for c in cands if c.type is CandidateType.RELAYED]
    srflx = [c for c in cands if c.type is CandidateType.SERVER_REFLEXIVE]
    assert len(relays) == 2 and len(srflx) >= 3
    assert len({c.priority for c in cands}) == len(cands), [str(c) for c in cands]


def test_srflx_foundation_depends_on_the_stun_server_ip_only():
    """RFC 8445 §5.1.1.3: same foundation for candidates of the same type, base IP, "the IP
    address of the STUN or TURN servers" and transport: two servers on one IP (different
    ports) give one foundation, a server on another IP another."""
    net = SimNet(seed=2, latency=0.01)
    net.add_host(SERVER)
    net.add_host("203.0.113.11")
    stuns = [StunServer(net, SERVER, 3478), StunServer(net, SERVER, 3480),
             StunServer(net, "203.0.113.11", 3478)]
    net.add_nat(Nat("198.51.100.1", "lan", mapping=APDM, filtering=APDM))
    net.add_host("10.0.0.1", "lan")
    a = SimAgent(net, Agent(True, local_addresses=["10.0.0.1"], rng=random.Random(1),
                            stun_servers=[s.addr for s in stuns]), "10.0.0.1")
    gathered(net, a)
    srflx = [c for c in a.agent.local_candidates(0) if c.type is CandidateType.SERVER_REFLEXIVE]
    assert len(srflx) == 3                      # symmetric NAT: one mapping per server
    assert srflx[0].foundation == srflx[1].foundation
    assert srflx[2].foundation != srflx[0].foundation


# ---- §5.1.1.1 / §6.1.2.2 IPv6 ---------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["fec0::1", "fec0:1::5", "::192.0.2.1", "fe80::1",
                                "::ffff:192.0.2.1"])
def test_deprecated_and_link_local_ipv6_are_not_host_candidates(ip):
    """RFC 8445 §5.1.1.1: IPv6 site-local unicast (fec0::/10, RFC 3879) and IPv4-compatible
    IPv6 addresses (RFC 4291) MUST NOT be included; nor link-local / IPv4-mapped ones."""
    with pytest.raises(GatheringError):
        select_local_addresses([ip])


def test_a_link_local_remote_candidate_is_not_paired_with_a_global_address():
    """RFC 8445 §6.1.2.2: pairs need the same address family, and a link-local IPv6 address
    is only reachable from the same link: never paired with a global one."""
    local = host_candidate(("2001:db8::1", 5000), 1, 65535)
    ll = host_candidate(("fe80::2", 5000), 1, 65535)
    glob = host_candidate(("2001:db8::2", 5000), 1, 65535)
    pairs = form_pairs(0, [local], [ll, glob], {}, True)
    assert [p.remote.address for p in pairs] == ["2001:db8::2"]


# ---- §5.1.1.2 srflx from the Allocate response, gathering pacing -------------------------------

def test_turn_only_agents_behind_eim_nats_get_srflx_from_allocate_and_connect_directly():
    """RFC 8445 §5.1.1.2: the Allocate response's XOR-MAPPED-ADDRESS gives a server-reflexive
    candidate.  With only a TURN server configured, two agents behind endpoint-independent
    mapping NATs (address-and-port-dependent filtering, like Linux MASQUERADE) then find the
    direct srflx path instead of going through the relay."""
    net = SimNet(seed=3, latency=0.02)
    net.add_host(SERVER)
    SimTurn(net, SERVER, 3479)
    for realm, pub, ip in (("lanA", "203.0.113.1", "10.0.0.1"),
                           ("lanB", "203.0.113.2", "10.1.0.1")):
        net.add_nat(Nat(pub, realm, mapping=EIM, filtering=APDM))
        net.add_host(ip, realm)
    kw = {"turn_servers": [TurnServer(SERVER, 3479, "alice", "secret")]}
    a, b = pair_on_net(net, "10.0.0.1", "10.1.0.1", a_kw=dict(kw), b_kw=dict(kw))
    srflx = [c for c in a.agent.local_candidates(0) if c.type is CandidateType.SERVER_REFLEXIVE]
    assert [(c.address, c.related_address) for c in srflx] == [("203.0.113.1", "10.0.0.1")]
    run_until_done(net, a, b)
    for x in (a, b):
        p = x.agent.selected_pair(0, 1)
        assert p is not None
        assert CandidateType.RELAYED not in (p.local.type, p.remote.type), p


def test_gathering_transactions_are_paced_at_ta_with_the_gathering_rto():
    """RFC 8445 §5.1.1.2: Binding and Allocate requests to servers are paced like checks (one
    per Ta); §14.3: their RTO is MAX(500 ms, Ta * number of srflx and relay candidates)."""
    net = SimNet(seed=4, latency=0.01)
    net.add_host(SERVER)
    net.add_host("192.0.2.1")
    log = sent_stun(net, predicate=lambda d, s, dst: False)     # no server answers
    ta = 0.2
    a = SimAgent(net, Agent(True, local_addresses=["192.0.2.1"], rng=random.Random(1), ta=ta,
                            stun_servers=[(SERVER, 3478), (SERVER, 3480)],
                            turn_servers=[TurnServer(SERVER, 3479, "u", "p"),
                                          TurnServer(SERVER, 3481, "u", "p")]), "192.0.2.1")
    a.agent.gather(net.now)
    a.pump()
    net.run(net.now + 1.5)
    first: dict[bytes, float] = {}
    sends: dict[bytes, list[float]] = {}
    for t, _src, _dst, m in log:
        first.setdefault(m.transaction_id, t)
        sends.setdefault(m.transaction_id, []).append(t)
    starts = sorted(first.values())
    assert len(starts) == 4                     # 2 Binding + 2 Allocate, one per Ta
    assert [round(b - a_, 6) for a_, b in zip(starts, starts[1:], strict=False)] == [ta] * 3
    rto = max(0.5, ta * 4)
    for times in sends.values():
        if len(times) > 1:
            assert times[1] - times[0] == pytest.approx(rto)


# ---- §6.1.2.5 the pair limit ---------------------------------------------------------------------

def test_pair_limit_applies_to_the_whole_checklist_set_evenly():
    """RFC 8445 §6.1.2.5: the agent "MUST limit the total number of connectivity checks ...
    in the checklist set", discarding lowest-priority pairs, evenly across check lists."""
    addrs = [f"192.0.2.{i}" for i in range(1, 5)]
    a = Agent(True, streams=2, local_addresses=addrs, max_pairs=10, rng=random.Random(1))
    port = 10000
    for stream, comp, ip in a.addresses_to_bind():
        a.add_host_socket(stream, comp, (ip, port))
        port += 1
    a.gather(0.0)
    for stream in range(2):
        a.set_remote_credentials(stream, "rmte", "r" * 22)
        for i in range(4):
            a.add_remote_candidate(stream, host_candidate((f"198.51.100.{i + 1}", 20000 + stream),
                                                          1, 65535 - i))
    sizes = [len(a.checklist(s)) for s in range(2)]
    assert sum(sizes) == 10 and sizes == [5, 5]


# ---- §7.2.5.1 tie-breaker after 487 ----------------------------------------------------------------

def test_tie_breaker_changes_after_a_487_role_conflict():
    """RFC 8445 §7.2.5.1: on a 487 the agent switches role, re-checks the pair as a triggered
    check with its new role, and "The agent MUST change the tiebreaker value."""
    net = SimNet(seed=5, latency=0.01)
    a, b = pair_on_net(net, a_kw={"tie_breaker": 5}, start=False,
                       b_kw={"controlling": True, "tie_breaker": 2 ** 63})
    log = sent_stun(net)
    for x, y in ((a, b), (b, a)):
        y.agent.set_remote_credentials(0, x.agent.local_username, x.agent.local_password)
        for c in x.agent.local_candidates(0):
            y.agent.add_remote_candidate(0, c)
    a.agent.start_checks(net.now)          # only A checks: B answers 487 (its tie-breaker wins)
    a.pump()
    net.run(net.now + 0.3)
    assert a.of(RoleChanged) and not a.agent.controlling
    assert a.agent.tie_breaker != 5
    mine = [m for _, s, _, m in log if s[0] == "192.0.2.1" and m.cls == stun.Class.REQUEST]
    assert mine[0].get(stun.Attr.ICE_CONTROLLING) == 5
    assert mine[-1].get(stun.Attr.ICE_CONTROLLED) == a.agent.tie_breaker


# ---- §7.2.5.3.4 failed nomination ------------------------------------------------------------------

def test_a_nomination_refused_with_a_signed_400_fails_the_checklist_at_once():
    """RFC 8445 §7.2.5.3.4: if the USE-CANDIDATE request fails, the agent "MUST remove the
    candidate pair from the valid list, set the candidate pair state to Failed, and set the
    checklist state to Failed" -- not at the 30 s timeout."""
    net = SimNet(seed=6, latency=0.01)
    a, b = pair_on_net(net, start=False)
    original = b.agent.receive

    def refuse(data, local, remote, now):
        if stun.is_stun(data):
            msg = stun.decode(data)
            if msg.cls == stun.Class.REQUEST and stun.Attr.USE_CANDIDATE in msg:
                key = stun.short_term_key(b.agent.local_password)
                net.send(local, remote, stun.encode(stun.error_response(msg, 400), key=key))
                return
        original(data, local, remote, now)

    b.agent.receive = refuse       # type: ignore[method-assign]
    connect(a, b)
    t0 = net.now
    net.run(t0 + 5, stop=lambda: bool(a.of(IceFailed)))
    failed = a.first(IceFailed)
    assert failed is not None and failed.time - t0 < 0.5
    assert "nomination" in failed.event.reason
    assert a.agent.checklist(0).state is CheckListState.FAILED
    assert not any(p.valid for p in a.agent.checklist(0).pairs)


# ---- §7.3 USERNAME ---------------------------------------------------------------------------------

def test_a_binding_request_whose_username_has_no_colon_gets_400():
    """RFC 8445 §7.3: the username is valid only if it "consists of two values separated by a
    colon"; a request without one is a bad request (400), even with a valid integrity."""
    a = Agent(True, local_addresses=["192.0.2.1"], rng=random.Random(1))
    a.add_host_socket(0, 1, ("192.0.2.1", 10000))
    a.gather(0.0)
    req = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, b"\x01" * 12)
    req[stun.Attr.USERNAME] = a.local_username
    req[stun.Attr.PRIORITY] = 1
    req[stun.Attr.ICE_CONTROLLED] = 7
    a.receive(stun.encode(req, key=stun.short_term_key(a.local_password)),
              ("192.0.2.1", 10000), ("192.0.2.2", 20000), 0.0)
    (data, _, _), = a.datagrams_to_send(0.0)
    resp = stun.decode(data)
    assert resp.cls == stun.Class.ERROR and resp.error_code is not None
    assert resp.error_code[0] == 400


# ---- §8.1.2 a nominated component stops checking ---------------------------------------------------

def test_pairs_of_a_nominated_component_are_no_longer_checked():
    """RFC 8445 §8.1.2: once a pair of a component is nominated (check list Running), the agent
    "MUST remove all candidate pairs for the same component from the checklist and from the
    triggered-check queue".  Component 2 of B is unreachable for 2 s, so component 1 is
    nominated long before the check list completes."""
    net = SimNet(seed=7, latency=0.01)
    a_ips, b_ips = ["192.0.2.1", "192.0.2.3"], ["192.0.2.2", "192.0.2.4"]
    a, b = pair_on_net(net, a_addresses=a_ips, b_addresses=b_ips, start=False,
                       a_kw={"components": 2}, b_kw={"components": 2})
    b_rtcp = {addr for addr, (_, comp) in b.agent._sockets.items() if comp == 2}
    sent_stun(net, predicate=lambda d, s, dst: net.now > 2.0 or (
        dst not in b_rtcp and s not in b_rtcp))
    connect(a, b)
    run_until_done(net, a, b)
    sel1 = next(e for e in a.events if isinstance(e.event, SelectedPairChanged)
                and e.event.component == 1)
    done = a.first(IceCompleted)
    assert done is not None and done.time > 2.0 > sel1.time
    later = [e for e in a.events if isinstance(e.event, CheckSent) and e.event.component == 1
             and e.time > sel1.time]
    assert later == []
    assert not [p for p in a.agent.checklist(0).pairs if p.component == 1
                and p.state in (PairState.WAITING, PairState.FROZEN)]


# ---- RFC 8838 §11 / §12 (trickle) -------------------------------------------------------------------

def test_a_remote_prflx_candidate_signalled_later_takes_its_real_type_and_priority():
    """RFC 8445 §7.3.1.3 / RFC 8838 §11: a peer-reflexive remote candidate learnt from a check
    is replaced by the candidate the peer signals later for the same address: type, priority
    and foundation, in the pairs (whose priorities are recomputed) too."""
    net = SimNet(seed=8, latency=0.01)
    a, b = pair_on_net(net, start=False, a_kw={"trickle": True}, b_kw={"trickle": True})
    a.agent.set_remote_credentials(0, b.agent.local_username, b.agent.local_password)
    b.agent.set_remote_credentials(0, a.agent.local_username, a.agent.local_password)
    for c in a.agent.local_candidates(0):
        b.agent.add_remote_candidate(0, c)          # A does not know B's candidate yet
    a.agent.start_checks(net.now)
    b.agent.start_checks(net.now)
    a.pump()
    b.pump()
    net.run(net.now + 0.2)
    (prflx,) = a.agent.remote_candidates(0)
    assert prflx.type is CandidateType.PEER_REFLEXIVE
    (real,) = b.agent.local_candidates(0)
    a.agent.add_remote_candidate(0, real, net.now)
    a.pump()
    assert a.agent.remote_candidates(0) == [real]
    pairs = [p for p in a.agent.checklist(0).pairs if p.remote_addr == (real.address, real.port)]
    assert pairs
    for p in pairs:
        assert p.remote is real
        assert p.priority == pair_priority(p.local.priority, real.priority)


def test_a_trickled_pair_whose_foundation_succeeded_starts_waiting():
    """RFC 8838 §12: a new pair goes to Waiting "if there is at least one pair in the checklist
    set whose foundation matches the foundation of the new pair and whose state is Succeeded"
    (rule 2), even while another pair of that foundation is being checked."""
    a = Agent(True, local_addresses=["192.0.2.1"], rng=random.Random(1), trickle=True)
    a.add_host_socket(0, 1, ("192.0.2.1", 10000))
    a.gather(0.0)
    a.set_remote_credentials(0, "rmte", "r" * 22)

    def remote(port: int) -> Candidate:
        return Candidate("X", 1, "udp", 2130706431 - port, "192.0.2.2", port,
                         CandidateType.HOST)

    a.add_remote_candidate(0, remote(1000))
    a.add_remote_candidate(0, remote(1001))
    a.start_checks(0.0)
    p1, p2 = a.checklist(0).pairs
    assert p1.foundation == p2.foundation
    p1.state = PairState.SUCCEEDED              # its check was answered
    p2.state = PairState.IN_PROGRESS            # the foundation is also being checked
    a.add_remote_candidate(0, remote(1002), 0.01)
    p3 = a.checklist(0).find(1, ("192.0.2.1", 10000), ("192.0.2.2", 1002))
    assert p3 is not None and p3.state is PairState.WAITING
