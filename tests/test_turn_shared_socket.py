"""How the ICE agent embeds TURN: one UDP socket carries a STUN Binding transaction, the TURN
allocation, and RTP relayed through a channel; datagrams are demultiplexed (RFC 7983) and the
Allocation never owns the socket.  Against coturn."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from ice.demux import PacketKind, classify
from ice.stun import Attr, Class, Message, Method, decode, encode, new_transaction_id
from ice.stun_transaction import StunClientTransaction
from ice.turn import Allocation, AllocationSucceeded, ChannelBound, DataReceived
from tests.peers.coturn import PASSWORD, USER, Coturn

pytestmark = pytest.mark.peer

RTP = bytes([0x80, 0x00, 0x00, 0x01]) + bytes(8) + b"payload"


class SharedSocket(DatagramProtocol):
    """A host-candidate socket: Binding checks and a TURN allocation side by side."""

    def __init__(self, server):
        self.server = server
        self.alloc = Allocation(server, USER, PASSWORD)
        self.binding: StunClientTransaction | None = None
        self.events: list = []
        self.kinds: list[PacketKind] = []
        self.changed = defer.Deferred()
        self.call = None

    def datagramReceived(self, data, addr):  # noqa: N802
        now = reactor.seconds()
        self.kinds.append(classify(data))
        if not self.alloc.receive(data, (addr[0], addr[1]), now):
            if classify(data) is PacketKind.STUN and self.binding is not None:
                self.binding.receive_response(decode(data), now)
        self.flush()

    def flush(self):
        now = reactor.seconds()
        out = self.alloc.datagrams_to_send(now)
        if self.binding is not None:
            self.binding.handle_timer(now)
            out += self.binding.datagrams_to_send(now)
        for data, addr in out:
            self.transport.write(data, addr)
        while (e := self.alloc.next_event()) is not None:
            self.events.append(e)
        d, self.changed = self.changed, defer.Deferred()
        d.callback(None)
        timers = [t for t in (self.alloc.get_timer(),
                              self.binding.get_timer() if self.binding else None)
                  if t is not None]
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = reactor.callLater(max(0.0, min(timers) - now), self.flush) if timers \
            else None

    async def until(self, predicate, timeout=5.0):
        deadline = reactor.seconds() + timeout
        while not predicate():
            assert reactor.seconds() < deadline, f"timed out; events {self.events}"
            d = self.changed
            d.addTimeout(0.2, reactor)
            try:
                await d
            except defer.TimeoutError:
                pass


class RtpEcho(DatagramProtocol):
    def datagramReceived(self, data, addr):  # noqa: N802
        if classify(data) is PacketKind.RTP:
            self.transport.write(data[:1] + b"\x01" + data[2:], addr)   # same RTP, PT 1


@pytest.fixture(scope="module")
def coturn():
    server = Coturn()
    server.start()
    yield server
    server.stop()


@pytest_twisted.ensureDeferred
async def test_binding_allocation_and_rtp_share_one_socket(coturn):
    sock = SharedSocket(coturn.addr)
    port = reactor.listenUDP(0, sock, interface="127.0.0.1")
    echo_port = reactor.listenUDP(0, RtpEcho(), interface="127.0.0.1")
    local = (port.getHost().host, port.getHost().port)
    peer = (echo_port.getHost().host, echo_port.getHost().port)
    try:
        now = reactor.seconds()
        tid = new_transaction_id()
        sock.binding = StunClientTransaction(
            encode(Message(Method.BINDING, Class.REQUEST, tid)), tid, coturn.addr, now)
        sock.alloc.allocate(now)
        sock.flush()
        await sock.until(lambda: sock.binding.done
                         and any(isinstance(e, AllocationSucceeded) for e in sock.events))
        # the Binding response was not swallowed by the allocation, and vice versa
        assert sock.binding.result.address(Attr.XOR_MAPPED_ADDRESS) == local
        ok = next(e for e in sock.events if isinstance(e, AllocationSucceeded))
        assert ok.mapped == local

        sock.alloc.bind_channel(peer, reactor.seconds())
        sock.flush()
        await sock.until(lambda: any(isinstance(e, ChannelBound) for e in sock.events))
        sock.alloc.send_to(peer, RTP, reactor.seconds())
        sock.flush()
        await sock.until(lambda: any(isinstance(e, DataReceived) for e in sock.events))
        got = next(e for e in sock.events if isinstance(e, DataReceived))
        assert got.peer == peer and got.channel == 0x4000
        assert classify(got.data) is PacketKind.RTP and got.data[1] == 0x01
        assert PacketKind.CHANNEL_DATA in sock.kinds and PacketKind.STUN in sock.kinds
        sock.alloc.release(reactor.seconds())
        sock.flush()
        await sock.until(lambda: sock.alloc.state.value == "released")
    finally:
        if sock.call is not None and sock.call.active():
            sock.call.cancel()
        await port.stopListening()
        await echo_port.stopListening()
