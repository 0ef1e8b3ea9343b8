"""Hostile STUN traffic against a running ICE agent (TwistedAgent on loopback sockets).

What each test proves:

* a connectivity check signed with the wrong password gets 401 (an error, never a success),
  and one with a bad FINGERPRINT or no MESSAGE-INTEGRITY gets nothing or 400; after a burst of
  them no pair is succeeded, nominated or selected -- while the same check signed with the
  right password (the control) is answered with a success;
* a check response that comes from an address the check did not go to, forged without the
  peer's password, is dropped: the check stays in progress and the real answer still
  completes it;
* a STUN server's Binding response forged from another address is dropped: no reflexive
  candidate with the forged address, and the real server's answer still gives the srflx one
  (regression: the agent took it and ended the transaction).
"""

from __future__ import annotations

import random
from typing import Any

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task

from ice import stun
from ice.agent import Agent
from ice.candidate import Candidate, CandidateType
from ice.checklist import PairState
from ice.drivers.agent import TwistedAgent
from ice.events import IceCompleted, SelectedPairChanged
from ice.stun import Attr, Class, Method

PEER_UFRAG, PEER_PWD = "peerufrag", "peerpassword0123456789zz"


class Socket(protocol.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: defer.DeferredQueue[tuple[bytes, tuple[str, int]]] = defer.DeferredQueue()

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.queue.put((data, (addr[0], addr[1])))


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


def drain(sock: Socket) -> list[tuple[bytes, tuple[str, int]]]:
    out = []
    while sock.queue.pending:
        out.append(sock.queue.pending.pop(0))
    return out


def check(agent: Agent, key: bytes, *, tid: bytes | None = None, use_candidate: bool = True,
          fingerprint: bool = True) -> bytes:
    msg = stun.Message(Method.BINDING, Class.REQUEST, tid or random.randbytes(12), {
        Attr.USERNAME: f"{agent.local_username}:{PEER_UFRAG}", Attr.PRIORITY: 1862270975,
        Attr.ICE_CONTROLLING: 1 << 40})
    if use_candidate:
        msg[Attr.USE_CANDIDATE] = True
    return stun.encode(msg, key=key, fingerprint=fingerprint)


async def controlled_agent(peer: tuple[str, int]) -> TwistedAgent:
    agent = Agent(False, local_addresses=["127.0.0.1"], rng=random.Random(3))
    ta = TwistedAgent(agent, reactor)
    await ta.gather()
    agent.set_remote_credentials(0, PEER_UFRAG, PEER_PWD)
    agent.add_remote_candidate(0, Candidate("p", 1, "udp", 2130706431, peer[0], peer[1],
                                            CandidateType.HOST))
    ta.start().addErrback(lambda f: None)
    return ta


@pytest_twisted.ensureDeferred
async def test_checks_with_a_wrong_password_or_bad_fingerprint_are_never_a_success() -> None:
    attacker = Socket()
    port = reactor.listenUDP(0, attacker, interface="127.0.0.1")
    me = ("127.0.0.1", port.getHost().port)
    ta = await controlled_agent(("127.0.0.1", 9))      # its own checks go nowhere
    agent = ta.agent
    (local,) = list(ta._ports)
    try:
        wrong = stun.short_term_key("not-the-password-0123456789")
        right = stun.short_term_key(agent.local_password)
        sent: dict[bytes, str] = {}
        for _ in range(20):
            data = check(agent, wrong)
            sent[data[8:20]] = "wrong password"
            port.write(data, local)
            bad_fp = bytearray(check(agent, right))
            bad_fp[-1] ^= 0xFF                                    # FINGERPRINT no longer matches
            sent[bytes(bad_fp[8:20])] = "bad fingerprint"
            port.write(bytes(bad_fp), local)
            no_mi = check(agent, right)[:-32]                     # no MESSAGE-INTEGRITY
            no_mi = no_mi[:2] + (len(no_mi) - 20).to_bytes(2, "big") + no_mi[4:]
            sent[no_mi[8:20]] = "no integrity"
            port.write(no_mi, local)
        await sleep(0.5)
        answers = drain(attacker)
        kinds: dict[str, list[int]] = {}
        for data, _ in answers:
            msg = stun.decode(data)
            assert msg.cls == Class.ERROR, (sent.get(msg.transaction_id), msg.summary())
            kinds.setdefault(sent[msg.transaction_id], []).append(msg.error_code[0])
        assert kinds.get("wrong password") == [401] * 20
        assert "bad fingerprint" not in kinds                     # undecodable: no answer
        assert kinds.get("no integrity") == [400] * 20
        for pair in agent.checklist(0).pairs:
            assert pair.state is not PairState.SUCCEEDED
            assert not pair.nominated and not pair.remote_nominated
        assert agent.selected_pair(0, 1) is None
        assert not [e for _, e in ta.events if isinstance(e, (SelectedPairChanged,
                                                                IceCompleted))]
        # the control: the same check with the right password is answered with a success
        port.write(check(agent, right, use_candidate=False), local)
        data, _ = await attacker.queue.get().addTimeout(5, reactor)
        ok = stun.decode(data)
        assert ok.cls == Class.SUCCESS and stun.check_integrity(data, right)
        assert ok.address(Attr.XOR_MAPPED_ADDRESS) == me
    finally:
        await ta.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_check_response_from_another_address_is_dropped() -> None:
    peer, forger = Socket(), Socket()
    peer_port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    forger_port = reactor.listenUDP(0, forger, interface="127.0.0.1")
    peer_addr = ("127.0.0.1", peer_port.getHost().port)
    agent = Agent(True, local_addresses=["127.0.0.1"], rng=random.Random(4))
    ta = TwistedAgent(agent, reactor)
    try:
        await ta.gather()
        agent.set_remote_credentials(0, PEER_UFRAG, PEER_PWD)
        agent.add_remote_candidate(0, Candidate("p", 1, "udp", 2130706431, *peer_addr,
                                                CandidateType.HOST))
        ta.start().addErrback(lambda f: None)
        data, src = await peer.queue.get().addTimeout(5, reactor)
        req = stun.decode(data)
        assert req.cls == Class.REQUEST
        (pair,) = agent.checklist(0).pairs
        assert pair.state is PairState.IN_PROGRESS
        # a success "answer" from an address the check never went to, without the password
        forged = stun.encode(stun.success_response(req, [(Attr.XOR_MAPPED_ADDRESS, src)]),
                             key=stun.short_term_key("guessed-password-0123456789"))
        for _ in range(5):
            forger_port.write(forged, src)
        await sleep(0.3)
        assert pair.state is PairState.IN_PROGRESS and agent.selected_pair(0, 1) is None
        # the real peer answers (a retransmission carries the same transaction id)
        real = stun.encode(stun.success_response(req, [(Attr.XOR_MAPPED_ADDRESS, src)]),
                           key=stun.short_term_key(PEER_PWD))
        peer_port.write(real, src)
        for _ in range(50):
            if pair.state is PairState.SUCCEEDED:
                break
            await sleep(0.02)
        assert pair.state is PairState.SUCCEEDED
    finally:
        await ta.close()
        await peer_port.stopListening()
        await forger_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_stun_server_response_forged_from_another_address_is_dropped() -> None:
    server, forger = Socket(), Socket()
    server_port = reactor.listenUDP(0, server, interface="127.0.0.1")
    forger_port = reactor.listenUDP(0, forger, interface="127.0.0.1")
    server_addr = ("127.0.0.1", server_port.getHost().port)
    agent = Agent(True, local_addresses=["127.0.0.1"], stun_servers=[server_addr],
                  rng=random.Random(5))
    ta = TwistedAgent(agent, reactor)
    try:
        gathered = ta.gather()
        data, src = await server.queue.get().addTimeout(5, reactor)
        req = stun.decode(data)
        forged = stun.encode(stun.success_response(
            req, [(Attr.XOR_MAPPED_ADDRESS, ("127.0.0.66", 6666))]))
        forger_port.write(forged, src)
        await sleep(0.3)
        assert not any(c.address == "127.0.0.66" for c in agent.local_candidates(0))
        assert not gathered.called                          # still waiting for the server
        real = stun.encode(stun.success_response(
            req, [(Attr.XOR_MAPPED_ADDRESS, ("127.0.0.77", 7777))]))
        server_port.write(real, src)
        cands = await gathered.addTimeout(5, reactor)
        srflx = [c for c in cands if c.type is CandidateType.SERVER_REFLEXIVE]
        assert [(c.address, c.port) for c in srflx] == [("127.0.0.77", 7777)]
        assert not any(c.address == "127.0.0.66" for c in cands)
    finally:
        await ta.close()
        await server_port.stopListening()
        await forger_port.stopListening()
