"""The regular-nomination policy of ice.agent (RFC 8445 §8.1.1 leaves when to stop checking and
nominate to the agent; the module docstring of ice.agent says what ours does and why).

Two public agents with a TURN server; the network drops what each scenario says between their
host addresses, so the direct pairs stay unanswered while the relayed ones work.  Virtual time.
"""

from __future__ import annotations

import pytest

from ice.candidate import CandidateType
from ice.events import IceCompleted
from ice.gathering import TurnServer
from ice.sim.simnet import SimNet
from ice.sim.simnet import TurnServer as SimTurn
from tests.ice_support import pair_on_net, run_until_done, sent_stun

SERVER = "203.0.113.10"
A, B = "192.0.2.1", "192.0.2.2"


def run(drop, **a_kw):
    net = SimNet(seed=21, latency=0.01)
    net.add_host(SERVER)
    SimTurn(net, SERVER, 3479)
    kw = {"turn_servers": [TurnServer(SERVER, 3479, "alice", "secret")]}
    a, b = pair_on_net(net, A, B, a_kw={**kw, **a_kw}, b_kw=dict(kw), start=False)
    sent_stun(net, predicate=lambda d, s, dst: not drop(s, dst))
    from ice.sim.simnet import connect
    t0 = net.now
    connect(a, b)
    run_until_done(net, a, b)
    done = a.first(IceCompleted)
    assert done is not None
    pair = a.agent.selected_pair(0, 1)
    assert pair is not None and CandidateType.RELAYED in (pair.local.type, pair.remote.type)
    first_valid = a.agent.first_valid_at(0)
    assert first_valid is not None
    return done.time - t0, first_valid - t0


def direct(s, dst):
    return {s[0], dst[0]} == {A, B}


def test_relay_is_nominated_after_the_direct_pairs_first_retransmission():
    """Settling for the relay while a direct pair is unanswered: wait for that pair's first
    retransmission (RTO 500 ms) plus the patience, then nominate -- before nomination_delay."""
    done, first_valid = run(direct)
    assert first_valid < 0.3
    # direct check at 0 (host-host, the best pair), retransmitted at 0.5; patience 4 RTT of
    # the relay-relay path (60 ms): nominated at ~0.74 s, answered an RTT later; without this
    # policy it would be first valid + nomination_delay (1.14 s)
    assert 0.5 + 4 * 0.06 < done < 0.9


def test_without_the_retransmission_wait_the_relay_is_nominated_after_the_patience():
    done, first_valid = run(direct, relay_after_retransmission=False)
    assert done < 0.5 and done - first_valid < 0.3


def test_a_direct_pair_the_peer_reached_is_waited_for_until_nomination_delay():
    """The peer's check came in on the direct pair (only our direction is lost): the direct
    path may still work, so only nomination_delay ends the wait for it."""
    done, first_valid = run(lambda s, dst: s[0] == A and dst[0] == B, nomination_delay=0.8)
    assert done == pytest.approx(first_valid + 0.8, abs=0.1)
