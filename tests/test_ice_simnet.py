"""ICE through simulated NATs (RFC 4787 behaviours), a firewall and loss, in virtual time.

Topology: a STUN server and a TURN server on a public host 203.0.113.10; agent A in realm
lanA (10.0.0.1) behind NAT 203.0.113.1, agent B in lanB (10.1.0.1) behind NAT 203.0.113.2.
Each scenario asserts the selected pair's candidate types and the time to connected.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ice.candidate import CandidateType
from ice.events import ApplicationData, IceCompleted, IceFailed
from ice.gathering import TurnServer as TurnConfig
from ice.sim.simnet import Nat, SimNet, StunServer, TurnServer
from tests.ice_support import pair_on_net, run_until_done

EIM = "endpoint-independent"
ADM = "address-dependent"
APDM = "address-and-port-dependent"
SERVER = "203.0.113.10"


def world(seed: int, *, a_nat: dict | None, b_nat: dict | None, loss: float = 0.0,
          latency: float = 0.02, jitter: float = 0.005, fragile_turn: bool = False):
    net = SimNet(seed=seed, latency=latency, jitter=jitter, loss=loss)
    net.add_host(SERVER)
    stun_srv = StunServer(net, SERVER, 3478)
    turn_srv = TurnServer(net, SERVER, 3479, break_on_unroutable=fragile_turn)
    for realm, pub, ip, cfg in (("lanA", "203.0.113.1", "10.0.0.1", a_nat),
                                ("lanB", "203.0.113.2", "10.1.0.1", b_nat)):
        if cfg is None:
            net.add_host(ip)           # a public host (no NAT)
        else:
            net.add_nat(Nat(pub, realm, **cfg))
            net.add_host(ip, realm)
    kw = {"stun_servers": [stun_srv.addr],
          "turn_servers": [TurnConfig(SERVER, 3479, "alice", "secret")]}
    a, b = pair_on_net(net, "10.0.0.1", "10.1.0.1", a_kw=dict(kw), b_kw=dict(kw), start=False)
    from ice.sim.simnet import connect
    connect(a, b)
    return net, a, b, turn_srv


def exchange_data(net, a, b) -> None:
    assert a.agent.send_data(0, 1, b"\x80from-a")
    assert b.agent.send_data(0, 1, b"\x80from-b")
    a.pump()
    b.pump()
    net.run(net.now + 1.0)
    assert b"\x80from-a" in [e.data for e in b.of(ApplicationData)]
    assert b"\x80from-b" in [e.data for e in a.of(ApplicationData)]


def types(x):
    p = x.agent.selected_pair(0, 1)
    assert p is not None, x.of(IceFailed)
    return p.local.type, p.remote.type


def test_host_host_public():
    net, a, b, _ = world(1, a_nat=None, b_nat=None)
    t = run_until_done(net, a, b)
    assert types(a) == (CandidateType.HOST, CandidateType.HOST)
    assert types(b) == (CandidateType.HOST, CandidateType.HOST)
    assert t < 0.2                    # two round trips of ~25 ms plus one Ta
    exchange_data(net, a, b)


@pytest.mark.parametrize("filtering", [EIM, ADM, APDM])
def test_both_behind_endpoint_independent_nats_srflx_wins(filtering):
    cfg = {"mapping": EIM, "filtering": filtering}
    net, a, b, _ = world(2, a_nat=dict(cfg), b_nat=dict(cfg))
    t = run_until_done(net, a, b)
    assert types(a) == (CandidateType.SERVER_REFLEXIVE, CandidateType.SERVER_REFLEXIVE)
    assert types(b) == (CandidateType.SERVER_REFLEXIVE, CandidateType.SERVER_REFLEXIVE)
    # the unreachable host-host pair is better: regular nomination waits until its check has
    # gone unanswered for the patience (4 RTT here: ~0.17 s), not for nomination_delay (1 s)
    assert t < 0.4
    exchange_data(net, a, b)


@pytest.mark.parametrize("fragile_turn", [False, True])
def test_both_behind_symmetric_nats_relay_wins(fragile_turn):
    """With ``fragile_turn`` the relay stops relaying after one send to an address it has no
    route to (coturn seen doing so): the agent must never send from its relay to the peer's
    private host address."""
    cfg = {"mapping": APDM, "filtering": APDM}
    net, a, b, turn = world(3, a_nat=dict(cfg), b_nat=dict(cfg), fragile_turn=fragile_turn)
    t = run_until_done(net, a, b)
    ta, tb = types(a), types(b)
    # one relay is enough: the path goes through at least one side's relayed candidate
    assert CandidateType.RELAYED in (ta[0], ta[1]) and CandidateType.RELAYED in (tb[0], tb[1])
    assert ta[0] is tb[1] or CandidateType.PEER_REFLEXIVE in (ta[0], tb[1])
    assert t < 1.0 + 0.6
    exchange_data(net, a, b)
    for x in (a, b):
        x.agent.close(net.now)
        x.pump()
    net.run(net.now + 2)
    assert a.agent.released and b.agent.released and not turn.allocations


def test_firewall_drops_udp_except_to_relay():
    fw = {"mapping": EIM, "filtering": APDM, "firewall_allow": {SERVER}}
    net, a, b, _ = world(4, a_nat=fw, b_nat={"mapping": EIM, "filtering": EIM})
    t = run_until_done(net, a, b)
    # A can only reach the relay's address: the path uses B's relayed candidate (or A's)
    assert CandidateType.RELAYED in types(a) and CandidateType.RELAYED in types(b)
    assert t < 1.0 + 0.6
    exchange_data(net, a, b)


def test_five_percent_loss_still_connects():
    results = []
    for seed in range(10):
        cfg = {"mapping": EIM, "filtering": APDM}
        net, a, b, _ = world(100 + seed, a_nat=dict(cfg), b_nat=dict(cfg), loss=0.05)
        t = run_until_done(net, a, b)
        assert a.of(IceCompleted) and b.of(IceCompleted), (seed, a.of(IceFailed))
        results.append((t, types(a)))
        for i in range(20):
            assert a.agent.send_data(0, 1, b"\x80%d" % i)
        a.pump()
        net.run(net.now + 1)
        assert len(b.of(ApplicationData)) >= 15
    # a lost check costs an RTO (500 ms) now and then, never a failure; when the srflx check
    # was lost past the nomination delay, a relayed pair (also valid) may carry the call
    assert max(t for t, _ in results) < 5.0
    srflx = (CandidateType.SERVER_REFLEXIVE, CandidateType.SERVER_REFLEXIVE)
    assert sum(1 for _, ty in results if ty == srflx) >= 7, results


def test_address_dependent_mapping_falls_back_to_prflx_or_relay():
    cfg = {"mapping": ADM, "filtering": ADM}
    net, a, b, _ = world(5, a_nat=dict(cfg), b_nat={"mapping": EIM, "filtering": EIM})
    run_until_done(net, a, b)
    assert a.of(IceCompleted) and b.of(IceCompleted)
    exchange_data(net, a, b)


def test_turn_403_on_permission_is_a_typed_event_and_ice_still_connects():
    """The relay refuses permissions toward B's public NAT address: a RelayError, no crash,
    and the call still connects over another pair."""
    from ice.events import RelayError
    net = SimNet(seed=6, latency=0.02)
    net.add_host(SERVER)
    stun_srv = StunServer(net, SERVER, 3478)
    TurnServer(net, SERVER, 3479, forbidden={"203.0.113.2"})
    net.add_nat(Nat("203.0.113.1", "lanA", mapping=EIM, filtering=EIM))
    net.add_host("10.0.0.1", "lanA")
    net.add_nat(Nat("203.0.113.2", "lanB", mapping=EIM, filtering=EIM))
    net.add_host("10.1.0.1", "lanB")
    kw = {"stun_servers": [stun_srv.addr],
          "turn_servers": [TurnConfig(SERVER, 3479, "alice", "secret")]}
    a, b = pair_on_net(net, "10.0.0.1", "10.1.0.1", a_kw=dict(kw), b_kw={
        "stun_servers": [stun_srv.addr]})
    run_until_done(net, a, b)
    errors = a.of(RelayError)
    assert errors and all("403" in e.reason for e in errors)
    assert a.of(IceCompleted) and b.of(IceCompleted)


NAT_CHOICES = [None, {"mapping": EIM, "filtering": EIM}, {"mapping": EIM, "filtering": APDM},
               {"mapping": ADM, "filtering": ADM}, {"mapping": APDM, "filtering": APDM},
               {"mapping": EIM, "filtering": APDM, "firewall_allow": {SERVER}}]


@settings(max_examples=int(os.environ.get("ICE_EXAMPLES", "30")), deadline=None)
@given(seed=st.integers(0, 10_000), a_nat=st.sampled_from(NAT_CHOICES),
       b_nat=st.sampled_from(NAT_CHOICES), loss=st.sampled_from([0.0, 0.02]),
       fragile=st.booleans())
def test_any_pair_of_nats_connects_through_the_relay_at_worst(seed, a_nat, b_nat, loss, fragile):
    net, a, b, _ = world(seed, a_nat=dict(a_nat) if a_nat else None,
                         b_nat=dict(b_nat) if b_nat else None, loss=loss, fragile_turn=fragile)
    run_until_done(net, a, b, limit=35)
    assert a.of(IceCompleted) and b.of(IceCompleted), (a.of(IceFailed), b.of(IceFailed))
    pa, pb = a.agent.selected_pair(0, 1), b.agent.selected_pair(0, 1)
    assert (pa.local.address, pa.local.port) == pb.remote_addr
    assert (pb.local.address, pb.local.port) == pa.remote_addr
    if loss == 0.0:
        exchange_data(net, a, b)
