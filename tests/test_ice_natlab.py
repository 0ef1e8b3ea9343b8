"""Our agents behind real kernel NATs (the NAT lab of tests/peers/natlab.py: namespaces,
iptables MASQUERADE, coturn on the public side), on real UDP sockets with the Twisted driver.

Each agent's sockets are bound inside its site's host namespace (``NetNs.entered()``); the
reactor then runs both agents in this process.  The namespaces are deleted afterwards.
"""

from __future__ import annotations

import random

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from ice.agent import Agent
from ice.candidate import CandidateType
from ice.drivers.agent import TwistedAgent
from ice.gathering import TurnServer
from tests.peers.natlab import NatLab, SiteSpec

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(90)]

RELAYED = CandidateType.RELAYED


async def call_through_lab(a_spec: SiteSpec | str, b_spec: SiteSpec | str):
    lab = NatLab(a_spec, b_spec)
    await threads.deferToThread(lab.build)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    agents: list[TwistedAgent] = []
    try:
        assert lab.turn is not None
        turn = TurnServer(lab.turn.addr[0], lab.turn.addr[1], lab.turn.user, lab.turn.password)
        for name, site, controlling, seed in (("a", lab.a, True, 1), ("b", lab.b, False, 2)):
            ag = TwistedAgent(
                Agent(controlling, local_addresses=[site.host_ip], stun_servers=[lab.turn.addr],
                      turn_servers=[turn], rng=random.Random(seed)),
                on_data=lambda s, c, d, r, name=name: got[name].append(d))
            with site.host.entered():
                ag.bind()
            agents.append(ag)
        a, b = agents
        await defer.gatherResults([a.gather(), b.gather()])
        for x, y in ((a, b), (b, a)):
            y.agent.set_remote_credentials(0, x.agent.local_username, x.agent.local_password)
            for c in x.agent.local_candidates(0):
                y.agent.add_remote_candidate(0, c)
        t0 = reactor.seconds()
        await defer.gatherResults([a.start(), b.start()])
        elapsed = reactor.seconds() - t0
        pa, pb = a.agent.selected_pair(0, 1), b.agent.selected_pair(0, 1)
        for i in range(20):
            assert a.send(0, 1, b"\x80a%d" % i) and b.send(0, 1, b"\x80b%d" % i)
        for _ in range(100):
            if len(got["a"]) >= 20 and len(got["b"]) >= 20:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        assert (pa.local.address, pa.local.port) == pb.remote_addr
        assert (pb.local.address, pb.local.port) == pa.remote_addr
        return lab, a, b, (pa.local.type, pa.remote.type), (pb.local.type, pb.remote.type), \
            elapsed, got
    finally:
        await defer.gatherResults([x.close() for x in agents])
        await threads.deferToThread(lab.close)


@pytest_twisted.ensureDeferred
async def test_both_sites_behind_eim_nats_connect_without_relay():
    lab, a, b, ta, tb, elapsed, got = await call_through_lab("eim", "eim")
    srflx_like = {CandidateType.SERVER_REFLEXIVE, CandidateType.PEER_REFLEXIVE}
    assert ta[0] in srflx_like and ta[1] in srflx_like, ta
    assert tb[0] in srflx_like and tb[1] in srflx_like, tb
    assert len(got["a"]) == 20 and len(got["b"]) == 20
    assert elapsed < 3.0


@pytest_twisted.ensureDeferred
async def test_both_sites_behind_symmetric_nats_use_the_relay():
    lab, a, b, ta, tb, elapsed, got = await call_through_lab("apdm", "apdm")
    assert RELAYED in ta and RELAYED in tb, (ta, tb)
    assert len(got["a"]) == 20 and len(got["b"]) == 20
    assert elapsed < 3.0


@pytest_twisted.ensureDeferred
async def test_site_with_udp_blocked_except_turn_uses_the_relay():
    lab, a, b, ta, tb, elapsed, got = await call_through_lab("udp-blocked-except-turn", "eim")
    assert ta[0] is RELAYED and tb[1] is RELAYED, (ta, tb)
    assert len(got["a"]) == 20 and len(got["b"]) == 20


@pytest_twisted.ensureDeferred
async def test_eim_sites_with_five_percent_loss_each_way_still_connect():
    lab, a, b, ta, tb, elapsed, got = await call_through_lab(SiteSpec("eim", loss=0.05),
                                                             SiteSpec("eim", loss=0.05))
    # two lossy NATs on the way: about 10 % of datagrams lost, never a failed call
    assert len(got["a"]) >= 12 and len(got["b"]) >= 12
    assert elapsed < 8.0
