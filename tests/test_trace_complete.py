"""The trace is complete at its sources: every SIP record names both ends (UDP and TCP), the
ACK of a non-2xx is summarised as ACK, and an ICE relay call's pcap shows the TURN exchange
and every copy of a retransmitted check."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from ice.trace import Trace, TraceRecord
from siplink.calltest.trace_export import export_pcap
from siplink.ua.useragent import Call, SipError, UserAgent
from tests.peers.process import require_binary


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


def _sip(trace: Trace) -> list[TraceRecord]:
    return [r for r in trace if r.protocol == "sip" and r.direction in ("in", "out")]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_every_sip_record_names_both_ends(transport: str) -> None:
    ta, tb = Trace(), Trace()
    a = UserAgent(reactor, user="alice", transport=transport, trace=ta)
    b = UserAgent(reactor, user="bob", transport=transport, trace=tb)
    a.listen()
    b.listen()
    try:
        incoming: list[Call] = []

        async def handler(call: Call) -> None:
            incoming.append(call)
            call.answer()

        b.on_incoming_call = handler
        tp = "" if transport == "udp" else f";transport={transport}"
        call = a.call(f"sip:bob@127.0.0.1:{b.port}{tp}")
        assert await call.answered is call
        await call.hangup()
        await sleep(0.1)
    finally:
        a.close()
        b.close()
    b_addr = ("127.0.0.1", b.port)
    for who, trace, me in (("alice", ta, a), ("bob", tb, b)):
        recs = _sip(trace)
        methods = {r.summary.split()[0] for r in recs}
        assert {"INVITE", "ACK", "BYE"} <= methods, (who, methods)
        for r in recs:
            assert r.local is not None and r.remote is not None, (who, r.summary)
            assert r.raw, (who, r.summary)
            assert r.local[0] == "127.0.0.1" and r.remote[0] == "127.0.0.1"
        if transport == "udp":
            assert all(r.local == ("127.0.0.1", me.port) for r in recs)
    # the two sides agree on the ends of each message: alice's (local, remote) of her INVITE
    # is bob's (remote, local) of the INVITE he received
    inv_a = next(r for r in _sip(ta) if r.direction == "out" and r.summary.startswith("INVITE"))
    inv_b = next(r for r in _sip(tb) if r.direction == "in" and r.summary.startswith("INVITE"))
    assert (inv_a.local, inv_a.remote) == (inv_b.remote, inv_b.local)
    assert inv_a.remote == b_addr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_ack_of_a_non_2xx_is_summarised_as_ack(transport: str) -> None:
    ta = Trace()
    a = UserAgent(reactor, user="alice", transport=transport, trace=ta)
    b = UserAgent(reactor, user="bob", transport=transport)
    a.listen()
    b.listen()
    try:
        async def handler(call: Call) -> None:
            call.reject(486)

        b.on_incoming_call = handler
        tp = "" if transport == "udp" else f";transport={transport}"
        call = a.call(f"sip:bob@127.0.0.1:{b.port}{tp}")
        with pytest.raises(SipError):
            await call.answered
        await sleep(0.05)
    finally:
        a.close()
        b.close()
    out = [r for r in _sip(ta) if r.direction == "out"]
    assert [r.summary.split()[0] for r in out] == ["INVITE", "ACK"]
    ack = out[1]
    assert ack.detail.startswith("ACK ") and ack.local is not None
    from siplink.calltest.ladder import render_text
    assert "ACK sip:bob" in render_text(ta)


# ---- ICE: every datagram the agent sends or receives ---------------------------------------


def _tshark_stun(path: Path) -> list[list[str]]:
    out = subprocess.run([require_binary("tshark"), "-r", str(path), "-Y", "stun", "-T",
                          "fields", "-e", "stun.type", "-e", "stun.id", "-e", "ip.src",
                          "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [ln.split("\t") for ln in out.stdout.splitlines()]


def test_check_retransmissions_are_traced_copy_by_copy(tmp_path: Path) -> None:
    from ice import stun
    from siplink.calltest.pcap import read_pcap
    from tests.ice_support import SimNet, pair_on_net, sent_stun

    net = SimNet(seed=5, latency=0.01)
    a, b = pair_on_net(net, "127.0.0.1", "127.0.0.2", start=False)
    silent: set[bytes] = set()

    def lossy(data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> bool:
        # B does not hear the first two copies of A's first check
        if src[0] == "127.0.0.1" and stun.is_stun(data):
            m = stun.decode(data)
            if m.cls == stun.Class.REQUEST and (not silent or m.transaction_id in silent):
                silent.add(m.transaction_id)
                return sum(1 for _, s, _, x in wire if s[0] == "127.0.0.1"
                           and x.transaction_id == m.transaction_id) > 2
        return True

    wire = sent_stun(net, predicate=lossy)
    for x, y in ((a, b), (b, a)):         # B answers but never checks: A's check retransmits
        y.agent.set_remote_credentials(0, x.agent.local_username, x.agent.local_password)
        for c in x.agent.local_candidates(0):
            y.agent.add_remote_candidate(0, c)
    a.agent.start_checks(net.now)
    a.pump()
    net.run(net.now + 5)
    (tid,) = silent
    on_wire = [(s, d, m) for _, s, d, m in wire if m.transaction_id == tid
               and m.cls == stun.Class.REQUEST]
    assert len(on_wire) == 3
    traced = [r for r in a.agent.trace if r.direction == "out" and r.protocol == "stun"
              and r.raw and stun.decode(r.raw).transaction_id == tid]
    assert len(traced) == 3
    assert "retransmission 1" in traced[1].summary and "retransmission 2" in traced[2].summary
    assert all((r.local, r.remote) == on_wire[0][:2] for r in traced)
    # every STUN datagram A sent or received is in its trace, with both ends
    mine = [r for r in a.agent.trace if r.protocol == "stun" and r.direction != "event"]
    assert all(r.local and r.remote and r.raw for r in mine)
    sent_by_a = sorted(m.transaction_id + bytes([m.cls]) for _, s, _, m in wire
                       if s[0] == "127.0.0.1")
    traced_out = sorted(stun.decode(r.raw).transaction_id + bytes([stun.decode(r.raw).cls])
                        for r in mine if r.direction == "out")
    assert traced_out == sent_by_a
    got_by_a = sorted(m.transaction_id + bytes([m.cls]) for _, _, d, m in wire
                      if d[0] == "127.0.0.1")
    traced_in = sorted(stun.decode(r.raw).transaction_id + bytes([stun.decode(r.raw).cls])
                       for r in mine if r.direction == "in")
    assert traced_in == got_by_a
    pcap = tmp_path / "checks.pcap"
    export_pcap(a.agent.trace, pcap)
    copies = [p for p in read_pcap(pcap.read_bytes()) if stun.is_stun(p.payload)
              and stun.decode(p.payload).transaction_id == tid
              and stun.decode(p.payload).cls == stun.Class.REQUEST]
    assert len(copies) == 3
    rows = _tshark_stun(pcap)
    assert sum(1 for r in rows if r[1] == tid.hex() and r[0] == "0x0001") == 3


@pytest.mark.peer
@pytest_twisted.ensureDeferred
async def test_relay_call_pcap_shows_the_turn_exchange(tmp_path: Path) -> None:
    import random

    from twisted.internet import threads

    from ice.agent import Agent
    from ice.candidate import CandidateType
    from ice.drivers.agent import TwistedAgent
    from ice.gathering import TurnServer
    from tests.peers.coturn import PASSWORD, USER, Coturn
    from tests.test_ice_interop import exchange, wait_for

    turn = Coturn()
    await threads.deferToThread(turn.start)
    cfg = [TurnServer(turn.addr[0], turn.addr[1], USER, PASSWORD)]
    got: list[bytes] = []
    a = TwistedAgent(Agent(True, policy="relay", turn_servers=cfg, rng=random.Random(3)),
                     on_data=lambda s, c, d, r: got.append(d))
    b = TwistedAgent(Agent(False, local_addresses=["127.0.0.2"], rng=random.Random(4)))
    try:
        await defer.gatherResults([a.gather(), b.gather()])
        exchange(a, b)
        await defer.gatherResults([a.start(), b.start()])
        sel = a.agent.selected_pair(0, 1)
        assert sel is not None and sel.local.type is CandidateType.RELAYED
        assert b.send(0, 1, b"\x80via-relay")
        await wait_for(lambda: got == [b"\x80via-relay"])
        await wait_for(lambda: any(r.summary.startswith("ChannelBind success")
                                   for r in a.agent.trace))
    finally:
        await defer.gatherResults([a.close(), b.close()])
        await threads.deferToThread(turn.stop)
    trace = list(a.agent.trace)
    packets = [r for r in trace if r.direction in ("in", "out") and r.raw]
    assert all(r.local and r.remote for r in packets)
    turn_recs = [r for r in packets if r.protocol == "turn"]
    assert turn_recs and all(r.remote == turn.addr for r in turn_recs)
    base = {r.local for r in turn_recs}
    assert len(base) == 1
    pcap = tmp_path / "relay.pcap"
    assert export_pcap(trace, pcap) >= len(turn_recs)
    rows = _tshark_stun(pcap)
    types = {r[0] for r in rows}
    server = (turn.addr[0], str(turn.addr[1]))
    # Allocate (401 then success), CreatePermission and ChannelBind, requests and responses
    for want in ("0x0003", "0x0113", "0x0103", "0x0008", "0x0108", "0x0009", "0x0109"):
        assert want in types, (want, sorted(types))
    for r in rows:
        if r[0] in ("0x0003", "0x0008", "0x0009"):
            assert (r[4], r[5]) == server
        if r[0] in ("0x0103", "0x0108", "0x0109"):
            assert (r[2], r[3]) == server


def test_turn_records_name_our_socket_count_retransmissions_and_keep_media_apart() -> None:
    from ice import stun
    from ice.turn import Allocation, encode_channel_data
    from tests.test_turn import PEER, SERVER, Net, allocated

    local = ("127.0.0.1", 40000)
    trace = Trace()
    silent = Allocation(SERVER, "alice", "secret", trace=trace, local=local)
    silent.allocate(0.0)
    copies: list[bytes] = []
    for t in (0.0, 0.5, 1.5):            # the server never answers: RTO 0.5 s, doubling
        silent.handle_timer(t)
        copies += [d for d, _ in silent.datagrams_to_send(t)]
    assert len(copies) == 3 and len(set(copies)) == 1
    out = [r for r in trace if r.direction == "out"]
    assert [r.raw for r in out] == copies
    assert "retransmission 1" in out[1].summary and "retransmission 2" in out[2].summary
    assert all(r.local == local and r.remote == SERVER and r.protocol == "turn" for r in out)

    trace = Trace()
    net: Net = allocated(trace=trace, local=local)
    net.alloc.bind_channel(PEER, 0.0)
    net.pump()
    check = stun.encode(stun.Message(stun.Method.BINDING, stun.Class.REQUEST, bytes(12)))
    net.alloc.send_to(PEER, check, 0.0)
    net.alloc.send_to(PEER, b"\x80" + bytes(171), 0.0)
    net.pump()
    assert net.alloc.receive(encode_channel_data(0x4000, b"\x80back", pad=True), SERVER, 1.0)
    chans = [r for r in trace if r.summary.startswith("ChannelData")]
    assert [(r.direction, r.protocol) for r in chans] == [("out", "turn"), ("out", "rtp"),
                                                         ("in", "rtp")]
    assert all(r.local == local and r.remote == SERVER and r.raw for r in trace
               if r.direction != "event")
    assert {r.protocol for r in trace} == {"turn", "rtp"}
