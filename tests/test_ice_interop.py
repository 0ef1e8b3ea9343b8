"""Our agent on real loopback sockets (Twisted driver): against itself, against aioice in
both roles with data both ways, and relay-only through coturn.  Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import random

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from ice.agent import Agent
from ice.candidate import CandidateType
from ice.drivers.agent import IceFailedError, TwistedAgent
from ice.events import RoleChanged
from ice.gathering import TurnServer
from tests.peers.aioice_peer import AioicePeer

pytestmark = pytest.mark.peer


async def wait_for(predicate, timeout: float = 5.0, step: float = 0.01) -> None:
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, step, lambda: None)
        waited += step


def exchange(a: TwistedAgent, b: TwistedAgent) -> None:
    for x, y in ((a, b), (b, a)):
        for s in range(x.agent.streams):
            y.agent.set_remote_credentials(s, x.agent.local_username, x.agent.local_password)
            for c in x.agent.local_candidates(s):
                y.agent.add_remote_candidate(s, c)


@pytest_twisted.ensureDeferred
async def test_two_of_our_agents_on_loopback_rtp_and_rtcp():
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    a = TwistedAgent(Agent(True, components=2, local_addresses=["127.0.0.1", "127.0.0.2"],
                           rng=random.Random(1)),
                     on_data=lambda s, c, d, r: got["a"].append(d))
    b = TwistedAgent(Agent(False, components=2, local_addresses=["127.0.0.3"],
                           rng=random.Random(2)),
                     on_data=lambda s, c, d, r: got["b"].append(d))
    try:
        await defer.gatherResults([a.gather(), b.gather()])
        assert {c.address for c in a.agent.local_candidates()} == {"127.0.0.1", "127.0.0.2"}
        exchange(a, b)
        await defer.gatherResults([a.start(), b.start()])
        for comp in (1, 2):
            pa, pb = a.agent.selected_pair(0, comp), b.agent.selected_pair(0, comp)
            assert pa.local_base == pb.remote_addr and pb.local_base == pa.remote_addr
        assert a.agent.selected_pair(0, 1).local.address == "127.0.0.1"   # preferred address
        assert a.send(0, 1, b"\x80rtp-a") and a.send(0, 2, b"\x80\xc8rtcp-a")
        assert b.send(0, 1, b"\x80rtp-b")
        await wait_for(lambda: len(got["b"]) == 2 and len(got["a"]) == 1)
        assert sorted(got["b"]) == [b"\x80rtp-a", b"\x80\xc8rtcp-a"]
    finally:
        await defer.gatherResults([a.close(), b.close()])
    assert a.agent.get_timer() is None and not a._ports and not a._timer.armed


@pytest_twisted.ensureDeferred
async def test_failure_is_a_failed_deferred_not_an_exception():
    a = TwistedAgent(Agent(True, rng=random.Random(1), check_rc=2, check_rm=1))
    try:
        await a.gather()
        a.agent.set_remote_credentials(0, "nobody", "x" * 22)
        from ice.gathering import host_candidate
        from tests.peers.process import free_port
        a.agent.add_remote_candidate(0, host_candidate(("127.0.0.1", free_port()), 1, 65535))
        with pytest.raises(IceFailedError) as err:
            await a.start()
        assert "failed" in err.value.reason
    finally:
        await a.close()


async def aioice_interop(our_controlling: bool, nomination: str = "regular",
                         components: int = 1) -> None:
    peer = AioicePeer(controlling=not our_controlling, components=components)
    received: list[bytes] = []
    ours = TwistedAgent(Agent(our_controlling, nomination=nomination, components=components,
                              rng=random.Random(7)),
                        on_data=lambda s, c, d, r: received.append(d))
    try:
        await threads.deferToThread(peer.start)
        await ours.gather()
        ours.agent.set_remote_credentials(0, peer.username, peer.password)
        for c in peer.candidates():
            ours.agent.add_remote_candidate(0, c)
        fut = peer.connect(ours.agent.local_username, ours.agent.local_password,
                           ours.agent.local_candidates(0))
        await ours.start()
        await threads.deferToThread(fut.result, 10)
        sel = ours.agent.selected_pair(0, 1)
        assert sel is not None and sel.local.type is CandidateType.HOST
        theirs = peer.selected()
        assert theirs == (sel.remote_addr, sel.local_base)
        # data both ways on the selected pair
        assert ours.send(0, 1, b"\x80to-aioice")
        data, comp = await threads.deferToThread(lambda: peer.recv().result(5))
        assert (data, comp) == (b"\x80to-aioice", 1)
        await threads.deferToThread(lambda: peer.send(b"\x80to-siplink").result(5))
        await wait_for(lambda: received == [b"\x80to-siplink"])
        if components == 2:
            sel2 = ours.agent.selected_pair(0, 2)
            assert peer.selected(2) == (sel2.remote_addr, sel2.local_base)
            assert ours.send(0, 2, b"\x81\xc9rtcp")
            data, comp = await threads.deferToThread(lambda: peer.recv().result(5))
            assert (data, comp) == (b"\x81\xc9rtcp", 2)
        assert not [e for _, e in ours.events if isinstance(e, RoleChanged)]
    finally:
        await ours.close()
        await threads.deferToThread(peer.stop)


@pytest_twisted.ensureDeferred
async def test_aioice_interop_we_are_controlling():
    await aioice_interop(True)


@pytest_twisted.ensureDeferred
async def test_aioice_interop_we_are_controlled():
    await aioice_interop(False)


@pytest_twisted.ensureDeferred
async def test_aioice_interop_rtp_and_rtcp_components_we_are_controlling():
    await aioice_interop(True, components=2)


@pytest_twisted.ensureDeferred
async def test_aioice_interop_rtp_and_rtcp_components_we_are_controlled():
    await aioice_interop(False, components=2)


@pytest_twisted.ensureDeferred
async def test_aioice_interop_aggressive_nomination():
    await aioice_interop(True, "aggressive")


@pytest_twisted.ensureDeferred
async def test_relay_only_through_coturn():
    from tests.peers.coturn import PASSWORD, USER, Coturn

    turn = Coturn()
    await threads.deferToThread(turn.start)
    cfg = [TurnServer(turn.addr[0], turn.addr[1], USER, PASSWORD)]
    got: list[bytes] = []
    a = TwistedAgent(Agent(True, policy="relay", turn_servers=cfg, rng=random.Random(3)),
                     on_data=lambda s, c, d, r: got.append(d))
    got_b: list[bytes] = []
    b = TwistedAgent(Agent(False, local_addresses=["127.0.0.2"], rng=random.Random(4),
                           stun_servers=[f"stun:{turn.addr[0]}:{turn.addr[1]}"]),
                     on_data=lambda s, c, d, r: got_b.append(d))
    try:
        await defer.gatherResults([a.gather(), b.gather()])
        # coturn answered B's Binding request: the srflx equals the host address on
        # loopback, so it is redundant (RFC 8445 §5.1.3) and B keeps its host candidate
        from ice.events import GatheringFailed
        assert not [e for _, e in b.events if isinstance(e, GatheringFailed)]
        assert any("STUN server response Binding success" in r.summary for r in b.agent.trace)
        assert [c.type for c in b.agent.local_candidates(0)] == [CandidateType.HOST]
        cands = a.agent.local_candidates(0)
        assert cands and all(c.type is CandidateType.RELAYED for c in cands)
        exchange(a, b)
        await defer.gatherResults([a.start(), b.start()])
        sel = a.agent.selected_pair(0, 1)
        assert sel.local.type is CandidateType.RELAYED
        assert b.agent.selected_pair(0, 1).remote_addr == sel.local_base
        assert b.send(0, 1, b"\x80via-relay")
        assert a.send(0, 1, b"\x80from-relay")
        await wait_for(lambda: got == [b"\x80via-relay"])
        await wait_for(lambda: got_b == [b"\x80from-relay"])
    finally:
        await defer.gatherResults([a.close(), b.close()])
        released = a.agent.released
        await threads.deferToThread(turn.stop)
    assert released


@pytest_twisted.ensureDeferred
async def test_ipv6_loopback_between_our_agents():
    a = TwistedAgent(Agent(True, local_addresses=["::1"], rng=random.Random(5)))
    b = TwistedAgent(Agent(False, local_addresses=["::1"], rng=random.Random(6)))
    got: list[bytes] = []
    b.on_data = lambda s, c, d, r: got.append(d)
    try:
        await defer.gatherResults([a.gather(), b.gather()])
        exchange(a, b)
        await defer.gatherResults([a.start(), b.start()])
        assert a.agent.selected_pair(0, 1).local_base[0] == "::1"
        assert a.send(0, 1, b"\x80v6")
        await wait_for(lambda: got == [b"\x80v6"])
    finally:
        await defer.gatherResults([a.close(), b.close()])


@pytest_twisted.ensureDeferred
async def test_restart_through_the_twisted_driver():
    got: list[bytes] = []
    a = TwistedAgent(Agent(True, rng=random.Random(8)))
    b = TwistedAgent(Agent(False, local_addresses=["127.0.0.2"], rng=random.Random(9)),
                     on_data=lambda s, c, d, r: got.append(d))
    try:
        await defer.gatherResults([a.gather(), b.gather()])
        exchange(a, b)
        await defer.gatherResults([a.start(), b.start()])
        old = a.agent.local_username
        a.restart()
        b.restart()
        assert a.agent.local_username != old
        assert a.send(0, 1, b"\x80during-restart")
        exchange(a, b)
        await defer.gatherResults([a.start(), b.start()])
        assert a.send(0, 1, b"\x80after-restart")
        await wait_for(lambda: got == [b"\x80during-restart", b"\x80after-restart"])
    finally:
        await defer.gatherResults([a.close(), b.close()])


@pytest_twisted.ensureDeferred
async def test_unbindable_address_is_skipped_and_none_bindable_fails_cleanly():
    # 192.0.2.77 (TEST-NET-1) is not on this machine: binding it fails, nothing is sent
    a = TwistedAgent(Agent(True, local_addresses=["192.0.2.77", "127.0.0.1"],
                           rng=random.Random(10)))
    try:
        cands = await a.gather()
        assert [c.address for c in cands] == ["127.0.0.1"]
    finally:
        await a.close()
    b = TwistedAgent(Agent(True, local_addresses=["192.0.2.77"], rng=random.Random(11)))
    with pytest.raises(IceFailedError):
        await b.gather()
    await b.close()


@pytest_twisted.ensureDeferred
async def test_aioice_relay_only_through_coturn_against_our_host_candidates():
    """aioice talks to us only through its coturn allocation: our checks and answers go to
    a relayed address, theirs arrive from it."""
    import aioice

    from tests.peers.coturn import PASSWORD, USER, Coturn

    turn = Coturn()
    await threads.deferToThread(turn.start)
    peer = AioicePeer(controlling=True, turn_server=turn.addr, turn_username=USER,
                      turn_password=PASSWORD, transport_policy=aioice.TransportPolicy.RELAY)
    got: list[bytes] = []
    ours = TwistedAgent(Agent(False, local_addresses=["127.0.0.2"], rng=random.Random(12)),
                        on_data=lambda s, c, d, r: got.append(d))
    try:
        await threads.deferToThread(peer.start)
        theirs = peer.candidates()
        assert theirs and all(c.type is CandidateType.RELAYED for c in theirs)
        await ours.gather()
        ours.agent.set_remote_credentials(0, peer.username, peer.password)
        for c in theirs:
            ours.agent.add_remote_candidate(0, c)
        fut = peer.connect(ours.agent.local_username, ours.agent.local_password,
                           ours.agent.local_candidates(0))
        await ours.start()
        await threads.deferToThread(fut.result, 10)
        sel = ours.agent.selected_pair(0, 1)
        assert sel.remote.type is CandidateType.RELAYED
        await threads.deferToThread(lambda: peer.send(b"\x80relayed").result(5))
        await wait_for(lambda: got == [b"\x80relayed"])
        assert ours.send(0, 1, b"\x80back")
        data, _ = await threads.deferToThread(lambda: peer.recv().result(5))
        assert data == b"\x80back"
    finally:
        await ours.close()
        await threads.deferToThread(peer.stop)
        await threads.deferToThread(turn.stop)
