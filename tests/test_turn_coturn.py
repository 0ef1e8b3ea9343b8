"""The STUN/TURN client against a real server: coturn (turnserver) on loopback."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from ice.drivers.stun import BindingClient
from ice.drivers.turn import TurnClientProtocol, TurnError
from ice.stun import (
    Attr,
    Class,
    Message,
    Method,
    check_fingerprint,
    check_integrity,
    decode,
    encode,
    long_term_key,
    new_transaction_id,
)
from ice.turn import Allocation, DataReceived, PermissionCreated
from tests.peers.coturn import PASSWORD, REALM, USER, Coturn

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def coturn():
    server = Coturn()
    server.start()
    yield server
    server.stop()


class EchoPeer(DatagramProtocol):
    """A loopback UDP peer on the far side of the relay: records and answers b"echo:" + data."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.waiting: list[defer.Deferred] = []

    def datagramReceived(self, data, addr):  # noqa: N802
        self.received.append((data, addr))
        self.transport.write(b"echo:" + data, addr)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback((data, addr))

    def next(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.waiting.append(d)
        return d


def _listen(proto):
    port = reactor.listenUDP(0, proto, interface="127.0.0.1")
    host = port.getHost()
    return port, (host.host, host.port)


def _timeout(d, seconds=5.0):
    return d.addTimeout(seconds, reactor)


@pytest_twisted.ensureDeferred
async def test_binding_returns_our_address(coturn):
    client = BindingClient(reactor, coturn.addr)
    port, local = _listen(client)
    try:
        resp = await _timeout(client.request())
    finally:
        await port.stopListening()
    assert resp.cls == Class.SUCCESS
    assert resp.address(Attr.XOR_MAPPED_ADDRESS) == local
    assert resp.address(Attr.MAPPED_ADDRESS) == local
    assert "Coturn" in resp[Attr.SOFTWARE]
    raw = client.received[0]
    assert check_fingerprint(raw)
    assert encode(resp) == raw  # coturn's bytes re-encode identically


@pytest_twisted.ensureDeferred
async def test_allocate_refresh_release(coturn):
    proto = TurnClientProtocol(Allocation(coturn.addr, USER, PASSWORD), reactor)
    port, local = _listen(proto)
    try:
        ok = await _timeout(proto.allocate())
        assert ok.mapped == local
        assert ok.relayed[0] == "127.0.0.1"
        assert coturn.relay_min <= ok.relayed[1] <= coturn.relay_max
        assert ok.lifetime == 600
        assert proto.allocation.realm == REALM
        refreshed = await _timeout(proto.refresh(lifetime=900))
        assert refreshed.lifetime == 900
        await _timeout(proto.release())
        assert proto.allocation.state.value == "released"
        assert proto.allocation.get_timer() is None
        coturn.process.wait_for(r"refreshed, realm=<lab\.test>, username=<alice>, lifetime=900",
                                timeout=5)
        coturn.process.wait_for(r"refreshed, realm=<lab\.test>, username=<alice>, lifetime=0\b",
                                timeout=5)
    finally:
        await port.stopListening()


async def _relay_roundtrip(coturn, use_channel: bool):
    peer = EchoPeer()
    peer_port, peer_addr = _listen(peer)
    proto = TurnClientProtocol(Allocation(coturn.addr, USER, PASSWORD), reactor)
    port, _local = _listen(proto)
    try:
        ok = await _timeout(proto.allocate())
        if use_channel:
            bound = await _timeout(proto.bind_channel(peer_addr))
            assert 0x4000 <= bound.channel <= 0x4FFF
        else:
            created = await _timeout(proto.create_permission(peer_addr))
            assert created == PermissionCreated("127.0.0.1")
        arrived = peer.next()
        reply = proto.receive_from(peer_addr)
        proto.send_to(peer_addr, b"hello through the relay")
        data, source = await _timeout(arrived)
        assert data == b"hello through the relay"
        assert source == ok.relayed          # the peer sees the relayed address
        event = await _timeout(reply)
        assert isinstance(event, DataReceived)
        assert event.peer == peer_addr
        assert event.data == b"echo:hello through the relay"
        assert (event.channel is not None) == use_channel
        await _timeout(proto.release())
    finally:
        await port.stopListening()
        await peer_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_data_through_permission(coturn):
    await _relay_roundtrip(coturn, use_channel=False)


@pytest_twisted.ensureDeferred
async def test_data_through_channel(coturn):
    await _relay_roundtrip(coturn, use_channel=True)


@pytest_twisted.ensureDeferred
async def test_send_without_permission_creates_one_and_delivers(coturn):
    peer = EchoPeer()
    peer_port, peer_addr = _listen(peer)
    proto = TurnClientProtocol(Allocation(coturn.addr, USER, PASSWORD), reactor)
    port, _ = _listen(proto)
    try:
        await _timeout(proto.allocate())
        arrived = peer.next()
        proto.send_to(peer_addr, b"queued until the permission exists")
        data, _src = await _timeout(arrived)
        assert data == b"queued until the permission exists"
        assert any(isinstance(e, PermissionCreated) for e in proto.events)
        await _timeout(proto.release())
    finally:
        await port.stopListening()
        await peer_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_a_clear_401(coturn):
    proto = TurnClientProtocol(Allocation(coturn.addr, USER, "not-the-password"), reactor)
    port, _ = _listen(proto)
    try:
        with pytest.raises(TurnError) as info:
            await _timeout(proto.allocate())
    finally:
        await port.stopListening()
    assert info.value.code == 401
    assert "wrong username or password" in info.value.reason
    assert proto.allocation.state.value == "failed"


def test_coturn_messages_decode_and_reencode_byte_for_byte(coturn):
    """Raw 401 challenge and Allocate success from coturn: decode, verify, re-encode."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(3)
    try:
        req = Message(Method.ALLOCATE, Class.REQUEST, new_transaction_id(),
                      {Attr.REQUESTED_TRANSPORT: 17})
        s.sendto(encode(req), coturn.addr)
        challenge_raw, _ = s.recvfrom(2048)
        challenge = decode(challenge_raw)
        assert challenge.transaction_id == req.transaction_id
        assert challenge.cls == Class.ERROR and challenge.error_code[0] == 401
        assert challenge[Attr.REALM] == REALM and challenge[Attr.NONCE]
        assert encode(challenge) == challenge_raw

        key = long_term_key(USER, REALM, PASSWORD)
        req = Message(Method.ALLOCATE, Class.REQUEST, new_transaction_id(), {
            Attr.REQUESTED_TRANSPORT: 17, Attr.USERNAME: USER, Attr.REALM: REALM,
            Attr.NONCE: challenge[Attr.NONCE]})
        s.sendto(encode(req, key=key), coturn.addr)
        ok_raw, _ = s.recvfrom(2048)
        ok = decode(ok_raw)
        assert ok.cls == Class.SUCCESS
        assert check_integrity(ok_raw, key) and check_fingerprint(ok_raw)
        assert ok.address(Attr.XOR_MAPPED_ADDRESS) == s.getsockname()
        assert encode(ok, key=key) == ok_raw

        release = Message(Method.REFRESH, Class.REQUEST, new_transaction_id(), {
            Attr.LIFETIME: 0, Attr.USERNAME: USER, Attr.REALM: REALM,
            Attr.NONCE: challenge[Attr.NONCE]})
        s.sendto(encode(release, key=key), coturn.addr)
        done_raw, _ = s.recvfrom(2048)
        done = decode(done_raw)
        assert done.cls == Class.SUCCESS and done[Attr.LIFETIME] == 0
        assert encode(done, key=key) == done_raw
    finally:
        s.close()


# ---- IPv6 loopback ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coturn6():
    server = Coturn(ipv6=True)
    server.start()
    yield server
    server.stop()


def _listen6(proto):
    port = reactor.listenUDP(0, proto, interface="::1")
    host = port.getHost()
    return port, (host.host, host.port)


@pytest_twisted.ensureDeferred
async def test_ipv6_binding_xor_mapped_address(coturn6):
    client = BindingClient(reactor, ("::1", coturn6.port))
    port, local = _listen6(client)
    try:
        resp = await _timeout(client.request())
    finally:
        await port.stopListening()
    assert resp.address(Attr.XOR_MAPPED_ADDRESS) == local
    assert encode(resp) == client.received[0]


@pytest_twisted.ensureDeferred
async def test_ipv6_relay_channel_roundtrip(coturn6):
    peer = EchoPeer()
    peer_port, peer_addr = _listen6(peer)
    proto = TurnClientProtocol(Allocation(("::1", coturn6.port), USER, PASSWORD, family=6),
                               reactor)
    port, local = _listen6(proto)
    try:
        ok = await _timeout(proto.allocate())
        assert ok.relayed[0] == "::1" and ok.mapped == local
        await _timeout(proto.bind_channel(peer_addr))
        arrived = peer.next()
        reply = proto.receive_from(peer_addr)
        proto.send_to(peer_addr, b"v6 hello")
        data, source = await _timeout(arrived)
        assert (data, source) == (b"v6 hello", ok.relayed)
        event = await _timeout(reply)
        assert event.data == b"echo:v6 hello" and event.channel == 0x4000
        await _timeout(proto.release())
    finally:
        await port.stopListening()
        await peer_port.stopListening()
