"""Agent.remove_component: the offer had RTP and RTCP components, the answer accepted rtcp-mux
(RFC 5761 §5.1.3, RFC 8839), so component 2 goes before the checks start.

Sans-I/O on the simulated network (no check for the removed component, its TURN allocation
released before its socket is handed back), and the Twisted driver on loopback (the removed
component's UDP socket is closed).
"""

from __future__ import annotations

import dataclasses
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ice import stun
from ice.agent import Agent, IceError
from ice.candidate import CandidateType
from ice.drivers.agent import TwistedAgent
from ice.events import IceCompleted
from ice.gathering import TurnServer as TurnConfig
from tests.ice_support import SimNet, TurnServer, connect, pair_on_net, run_until_done, sent_stun


def comp2_socket(agent: Agent) -> tuple[str, int]:
    """The host socket of component 2 (the one a driver binds)."""
    (addr,) = [c.transport_address for c in agent.local_candidates(0)
               if c.component == 2 and c.type is CandidateType.HOST]
    return addr


def test_removed_component_gets_no_check_and_ice_completes_on_one():
    net = SimNet(seed=3, latency=0.01)
    a, b = pair_on_net(net, start=False, a_kw={"components": 2})
    assert {c.component for c in a.agent.local_candidates(0)} == {1, 2}
    c2 = comp2_socket(a.agent)
    # a remote component-2 candidate learnt before the answer said rtcp-mux: its pairs go too
    b1 = b.agent.local_candidates(0)[0]
    a.agent.add_remote_candidate(0, dataclasses.replace(b1, component=2, port=b1.port + 1))
    assert any(p.component == 2 for p in a.agent.checklist(0))
    log = sent_stun(net)
    a.agent.remove_component(0, 2, net.now)
    assert {c.component for c in a.agent.local_candidates(0)} == {1}
    assert a.agent.remote_candidates(0) == []
    assert not any(p.component == 2 for p in a.agent.checklist(0))
    assert a.agent.addresses_to_bind() == [(0, 1, "192.0.2.1")]
    assert a.agent.sockets_to_close() == [c2]        # no TURN: at once, and only once
    assert a.agent.sockets_to_close() == []
    connect(a, b)
    run_until_done(net, a, b)
    assert a.of(IceCompleted) == [IceCompleted(0)] and b.of(IceCompleted) == [IceCompleted(0)]
    assert a.agent.selected_pair(0, 1) is not None and a.agent.selected_pair(0, 2) is None
    checks = [m for _, src, _, m in log if m.cls == stun.Class.REQUEST]
    assert checks and not [src for _, src, _, m in log
                           if m.cls == stun.Class.REQUEST and src == c2]
    # data that still reaches the removed socket is not taken as media
    a.agent.receive(b"\x80\x00rtp", c2, b.agent.local_candidates(0)[0].transport_address,
                    net.now)
    assert a.agent.next_event() is None


def test_turn_allocation_of_the_removed_component_is_released_before_its_socket():
    net = SimNet(seed=4, latency=0.01)
    net.add_host("192.0.2.50")
    server = TurnServer(net, "192.0.2.50", 3478, password="secret")
    a, _b = pair_on_net(net, start=False, a_kw={
        "components": 2, "turn_servers": [TurnConfig("192.0.2.50", 3478, "alice", "secret")]})
    relayed = [c for c in a.agent.local_candidates(0) if c.type is CandidateType.RELAYED]
    assert sorted(c.component for c in relayed) == [1, 2]
    c2 = comp2_socket(a.agent)
    a.agent.remove_component(0, 2, net.now)
    assert [c.component for c in a.agent.local_candidates(0)
            if c.type is CandidateType.RELAYED] == [1]
    assert a.agent.sockets_to_close() == []          # the release is still on its way
    a.pump()
    net.run(net.now + 2)
    assert server.released == 1                      # only component 2's allocation
    assert a.agent.sockets_to_close() == [c2]
    assert a.agent.sockets_to_close() == []
    assert [r.component for r in a.agent._relays] == [1]


def test_remove_component_is_only_for_the_last_component_before_checks():
    one = Agent(True, components=1)
    with pytest.raises(IceError):
        one.remove_component(0, 1)
    two = Agent(True, components=2)
    with pytest.raises(IceError):
        two.remove_component(0, 1)                   # RTCP without RTP makes no sense
    net = SimNet(seed=5, latency=0.01)
    a, _b = pair_on_net(net, a_kw={"components": 2}, b_kw={"components": 2})
    with pytest.raises(IceError):
        a.agent.remove_component(0, 2, net.now)      # checks started


@pytest_twisted.ensureDeferred
async def test_twisted_driver_closes_the_removed_component_socket():
    agent = Agent(True, components=2, local_addresses=["127.0.0.1"])
    driver = TwistedAgent(agent, reactor)
    driver.bind()
    await driver.gather()
    c2 = comp2_socket(agent)
    assert len(driver._ports) == 2
    driver.remove_component(0, 2)
    await task.deferLater(reactor, 0.05, lambda: None)
    assert list(driver._ports) == [a for a, w in agent._sockets.items() if w == (0, 1)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(c2)                                   # the port is free again
    finally:
        s.close()
    await driver.close()


def test_without_now_the_allocation_is_forgotten_and_the_socket_free_at_once():
    net = SimNet(seed=6, latency=0.01)
    net.add_host("192.0.2.50")
    server = TurnServer(net, "192.0.2.50", 3478, password="secret")
    a, _b = pair_on_net(net, start=False, a_kw={
        "components": 2, "turn_servers": [TurnConfig("192.0.2.50", 3478, "alice", "secret")]})
    c2 = comp2_socket(a.agent)
    a.agent.remove_component(0, 2)
    assert [r.component for r in a.agent._relays] == [1]
    assert a.agent.sockets_to_close() == [c2]
    a.pump()
    net.run(net.now + 2)
    assert server.released == 0                     # nothing was sent for it
