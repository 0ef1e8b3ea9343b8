"""The sans-I/O TURN Allocation against a scripted server, in virtual time; ChannelData;
RFC 7983 demultiplexing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from ice.demux import PacketKind, classify
from ice.stun import (
    Attr,
    Class,
    Message,
    Method,
    check_integrity,
    decode,
    encode,
    long_term_key,
    new_transaction_id,
)
from ice.trace import Trace
from ice.turn import (
    Allocation,
    AllocationFailed,
    AllocationRefreshed,
    AllocationState,
    AllocationSucceeded,
    ChannelBindFailed,
    ChannelBound,
    ChannelDataError,
    DataReceived,
    PermissionCreated,
    PermissionFailed,
    Released,
    decode_channel_data,
    encode_channel_data,
)

SERVER = ("192.0.2.10", 3478)
RELAYED = ("192.0.2.10", 50000)
MAPPED = ("198.51.100.7", 40000)
PEER = ("203.0.113.5", 7000)
REALM = "example.org"
KEY = long_term_key("alice", REALM, "secret")


class FakeServer:
    """Answers like a TURN server; ``script`` overrides per method."""

    def __init__(self) -> None:
        self.nonce = b"nonce-1"
        self.requests: list[Message] = []
        self.raw: list[bytes] = []
        self.stale_once = False
        self.password_ok = True
        self.silent = False
        self.error: dict[Method, tuple[int, str]] = {}

    def handle(self, data: bytes) -> bytes | None:
        if data[0] >= 0x40:
            self.raw.append(data)
            return None
        msg = decode(data)
        self.raw.append(data)
        self.requests.append(msg)
        if self.silent or msg.cls == Class.INDICATION:
            return None
        tid = msg.transaction_id
        if Attr.USERNAME not in msg:
            return encode(Message(msg.method, Class.ERROR, tid, {
                Attr.ERROR_CODE: (401, "Unauthorized"), Attr.REALM: REALM,
                Attr.NONCE: self.nonce}))
        if self.stale_once:
            self.stale_once = False
            self.nonce = b"nonce-2"
            return encode(Message(msg.method, Class.ERROR, tid, {
                Attr.ERROR_CODE: (438, "Stale Nonce"), Attr.REALM: REALM,
                Attr.NONCE: self.nonce}))
        if not check_integrity(data, KEY) or not self.password_ok:
            return encode(Message(msg.method, Class.ERROR, tid, {
                Attr.ERROR_CODE: (401, "Unauthorized"), Attr.REALM: REALM,
                Attr.NONCE: self.nonce}))
        assert msg[Attr.NONCE] == self.nonce
        if msg.method in self.error:
            return encode(Message(msg.method, Class.ERROR, tid,
                                  {Attr.ERROR_CODE: self.error[msg.method]}), key=KEY)
        attrs: dict = {}
        if msg.method == Method.ALLOCATE:
            attrs = {Attr.XOR_RELAYED_ADDRESS: RELAYED, Attr.XOR_MAPPED_ADDRESS: MAPPED,
                     Attr.LIFETIME: 600}
        elif msg.method == Method.REFRESH:
            attrs = {Attr.LIFETIME: msg.get(Attr.LIFETIME, 600)}
        return encode(Message(msg.method, Class.SUCCESS, tid, attrs), key=KEY)


class Net:
    """Connects an Allocation and a FakeServer in virtual time, like a Twisted driver."""

    def __init__(self, alloc: Allocation, server: FakeServer) -> None:
        self.clock = Clock()
        self.alloc = alloc
        self.server = server
        self.events: list = []
        self.sent_at: list[tuple[float, Message | bytes]] = []

    def pump(self) -> None:
        now = self.clock.seconds()
        for _ in range(20):
            out = self.alloc.datagrams_to_send(now)
            if not out:
                break
            for data, addr in out:
                assert addr == SERVER
                self.sent_at.append((now, decode(data) if data[0] < 4 else data))
                answer = self.server.handle(data)
                if answer is not None:
                    assert self.alloc.receive(answer, SERVER, now)
        while (e := self.alloc.next_event()) is not None:
            self.events.append(e)

    def advance_to(self, t: float, step: float = 0.25) -> None:
        while self.clock.seconds() < t:
            timer = self.alloc.get_timer()
            nxt = min(t, timer) if timer is not None and timer > self.clock.seconds() else \
                min(t, self.clock.seconds() + step)
            self.clock.advance(nxt - self.clock.seconds())
            self.alloc.handle_timer(self.clock.seconds())
            self.pump()

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


def allocated(**kw) -> Net:
    net = Net(Allocation(SERVER, "alice", "secret", **kw), FakeServer())
    net.alloc.allocate(net.clock.seconds())
    net.pump()
    assert net.of(AllocationSucceeded) == [AllocationSucceeded(RELAYED, MAPPED, 600)]
    return net


def test_allocate_answers_401_challenge_with_long_term_credentials():
    net = allocated()
    first, second = net.server.requests
    assert Attr.USERNAME not in first and first[Attr.REQUESTED_TRANSPORT] == 17
    assert second[Attr.USERNAME] == "alice" and second[Attr.REALM] == REALM
    assert second[Attr.NONCE] == b"nonce-1"
    assert check_integrity(net.server.raw[1], KEY)
    assert net.alloc.state is AllocationState.ALLOCATED
    assert net.alloc.relayed_address == RELAYED and net.alloc.mapped_address == MAPPED


def test_stale_nonce_438_is_retried_with_the_new_nonce():
    net = allocated()
    net.server.stale_once = True
    net.alloc.refresh(net.clock.seconds())
    net.pump()
    assert net.of(AllocationRefreshed) == [AllocationRefreshed(600)]
    assert [r[Attr.NONCE] for r in net.server.requests[-2:]] == [b"nonce-1", b"nonce-2"]
    assert net.alloc.nonce == b"nonce-2"


def test_wrong_password_fails_once_without_loop():
    net = Net(Allocation(SERVER, "alice", "wrong"), FakeServer())
    net.alloc.allocate(0.0)
    net.pump()
    assert len(net.server.requests) == 2
    [failed] = net.of(AllocationFailed)
    assert failed.code == 401 and "wrong username or password" in failed.reason
    assert net.alloc.state is AllocationState.FAILED and net.alloc.get_timer() is None


def test_allocate_timeout_follows_rfc8489_schedule():
    net = Net(Allocation(SERVER, "alice", "secret"), FakeServer())
    net.server.silent = True
    net.alloc.allocate(0.0)
    net.pump()
    net.advance_to(45.0)
    assert [t for t, _ in net.sent_at] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    [failed] = net.of(AllocationFailed)
    assert failed.code is None and "no answer" in failed.reason
    assert net.alloc.state is AllocationState.FAILED


def test_refresh_happens_a_minute_before_expiry():
    net = allocated()
    assert net.alloc.get_timer() == 540.0
    net.advance_to(539.0)
    assert net.of(AllocationRefreshed) == []
    net.advance_to(541.0)
    assert net.of(AllocationRefreshed) == [AllocationRefreshed(600)]
    refreshes = [(t, m) for t, m in net.sent_at
                 if isinstance(m, Message) and m.method == Method.REFRESH]
    assert [t for t, _ in refreshes] == [540.0]
    assert net.alloc.get_timer() == 1080.0


def test_refresh_437_loses_the_allocation():
    net = allocated()
    net.server.error[Method.REFRESH] = (437, "Allocation Mismatch")
    net.advance_to(541.0)
    [failed] = net.of(AllocationFailed)
    assert (failed.code, failed.during) == (437, "refresh")
    assert net.alloc.state is AllocationState.FAILED and net.alloc.get_timer() is None


def test_release_sends_lifetime_zero():
    net = allocated()
    net.alloc.release(net.clock.seconds())
    net.pump()
    last = net.server.requests[-1]
    assert last.method == Method.REFRESH and last[Attr.LIFETIME] == 0
    assert net.of(Released) == [Released()]
    assert net.alloc.state is AllocationState.RELEASED and net.alloc.get_timer() is None


def test_permission_queue_send_indication_and_refresh_every_4_minutes():
    net = allocated()
    net.alloc.send_to(PEER, b"one", 0.0)
    net.alloc.send_to(PEER, b"two", 0.0)
    net.pump()
    assert net.of(PermissionCreated) == [PermissionCreated(PEER[0])]
    create = [m for _, m in net.sent_at if isinstance(m, Message)
              and m.method == Method.CREATE_PERMISSION]
    assert len(create) == 1 and create[0][Attr.XOR_PEER_ADDRESS][0] == PEER[0]
    sends = [m for _, m in net.sent_at if isinstance(m, Message) and m.method == Method.SEND]
    assert [(m[Attr.XOR_PEER_ADDRESS], m[Attr.DATA]) for m in sends] == \
        [(PEER, b"one"), (PEER, b"two")]
    assert all(m.cls == Class.INDICATION for m in sends)
    net.advance_to(500.0)
    times = [t for t, m in net.sent_at if isinstance(m, Message)
             and m.method == Method.CREATE_PERMISSION]
    assert times == [0.0, 240.0, 480.0]
    assert len(net.of(PermissionCreated)) == 1   # refreshes are silent


def test_channel_bind_then_channel_data_both_ways():
    net = allocated()
    number = net.alloc.bind_channel(PEER, 0.0)
    net.pump()
    assert net.of(ChannelBound) == [ChannelBound(PEER, number)]
    assert number == 0x4000 and net.alloc.has_permission(PEER)
    net.alloc.send_to(PEER, b"rtp-ish", 0.0)
    net.pump()
    assert net.server.raw[-1] == encode_channel_data(0x4000, b"rtp-ish")
    assert net.alloc.receive(encode_channel_data(0x4000, b"back", pad=True), SERVER, 1.0)
    assert net.alloc.next_event() == DataReceived(PEER, b"back", 0x4000)
    # ChannelData on an unknown channel is consumed and dropped
    assert net.alloc.receive(encode_channel_data(0x4001, b"x"), SERVER, 1.0)
    assert net.alloc.next_event() is None
    net.advance_to(600.0)
    binds = [t for t, m in net.sent_at if isinstance(m, Message)
             and m.method == Method.CHANNEL_BIND]
    assert binds == [0.0, 540.0]


def test_data_indication_and_foreign_datagrams():
    net = allocated()
    ind = encode(Message(Method.DATA, Class.INDICATION, new_transaction_id(),
                         {Attr.XOR_PEER_ADDRESS: PEER, Attr.DATA: b"hi"}))
    assert net.alloc.receive(ind, SERVER, 1.0)
    assert net.alloc.next_event() == DataReceived(PEER, b"hi", None)
    # not from the server, RTP, an unknown transaction: left to the caller
    assert not net.alloc.receive(ind, ("192.0.2.99", 3478), 1.0)
    assert not net.alloc.receive(b"\x80\x00" + bytes(10), SERVER, 1.0)
    other = encode(Message(Method.BINDING, Class.SUCCESS, new_transaction_id(),
                           {Attr.XOR_MAPPED_ADDRESS: MAPPED}))
    assert not net.alloc.receive(other, SERVER, 1.0)


def test_forged_success_without_valid_integrity_is_dropped():
    net = Net(Allocation(SERVER, "alice", "secret"), FakeServer())
    net.alloc.allocate(0.0)
    out = net.alloc.datagrams_to_send(0.0)
    challenge = net.server.handle(out[0][0])
    net.alloc.receive(challenge, SERVER, 0.0)
    [(auth, _)] = net.alloc.datagrams_to_send(0.0)
    tid = decode(auth).transaction_id
    forged = encode(Message(Method.ALLOCATE, Class.SUCCESS, tid, {
        Attr.XOR_RELAYED_ADDRESS: ("6.6.6.6", 1), Attr.LIFETIME: 600}), key=b"attacker")
    assert net.alloc.receive(forged, SERVER, 0.1)      # consumed, but dropped
    assert net.alloc.next_event() is None
    assert net.alloc.state is AllocationState.ALLOCATING
    real = net.server.handle(auth)
    net.alloc.receive(real, SERVER, 0.2)
    assert net.alloc.next_event() == AllocationSucceeded(RELAYED, MAPPED, 600)


def test_permission_and_channel_failures_are_events():
    net = allocated()
    net.server.error[Method.CREATE_PERMISSION] = (403, "Forbidden IP")
    net.server.error[Method.CHANNEL_BIND] = (403, "Forbidden IP")
    net.alloc.send_to(PEER, b"dropped", 0.0)
    net.alloc.bind_channel(("203.0.113.6", 1), 0.0)
    net.pump()
    assert net.of(PermissionFailed) == [PermissionFailed(PEER[0], 403, "Forbidden IP")]
    assert net.of(ChannelBindFailed) == [ChannelBindFailed(("203.0.113.6", 1), 403,
                                                           "Forbidden IP")]
    assert not any(isinstance(m, Message) and m.method == Method.SEND for _, m in net.sent_at)


def test_trace_records():
    trace = Trace()
    net = allocated(trace=trace)
    assert [r.direction for r in trace][:4] == ["out", "in", "out", "in"]
    assert trace.records[0].summary.startswith("Allocate request")
    assert all(r.protocol == "turn" for r in trace)
    assert net.alloc.state is AllocationState.ALLOCATED


def test_api_misuse_raises():
    alloc = Allocation(SERVER, "a", "b")
    with pytest.raises(RuntimeError):
        alloc.send_to(PEER, b"x", 0.0)
    alloc.allocate(0.0)
    with pytest.raises(RuntimeError):
        alloc.allocate(0.0)


# ---- ChannelData and demultiplexing ------------------------------------------------------

def test_channel_data_framing():
    assert encode_channel_data(0x4001, b"abcde") == b"\x40\x01\x00\x05abcde"
    assert encode_channel_data(0x4001, b"abcde", pad=True) == b"\x40\x01\x00\x05abcde\0\0\0"
    assert decode_channel_data(b"\x40\x01\x00\x05abcde\0\0\0") == (0x4001, b"abcde")
    for bad in (b"\x40\x01\x00", b"\x40\x01\x00\x09abc", b"\x50\x00\x00\x00"):
        with pytest.raises(ChannelDataError):
            decode_channel_data(bad)
    with pytest.raises(ValueError):
        encode_channel_data(0x3FFF, b"")


@pytest.mark.parametrize("data,kind", [
    (encode(Message(Method.BINDING, Class.REQUEST, bytes(12))), PacketKind.STUN),
    (b"\x00\x01\x00\x00" + bytes(16), PacketKind.UNKNOWN),        # no magic cookie
    (encode_channel_data(0x4000, b"x"), PacketKind.CHANNEL_DATA),
    (encode_channel_data(0x4FFF, b""), PacketKind.CHANNEL_DATA),
    (b"\x80\x00\x00\x01" + bytes(8), PacketKind.RTP),
    (b"\x80\xe0\x00\x01" + bytes(8), PacketKind.RTP),              # PT 96 with marker
    (b"\x80\xc8\x00\x06" + bytes(24), PacketKind.RTCP),            # SR (200)
    (b"\x81\xc9\x00\x07" + bytes(28), PacketKind.RTCP),            # RR (201)
    (b"\x16\xfe\xfd" + bytes(10), PacketKind.DTLS),
    (b"\x10" + bytes(10), PacketKind.ZRTP),
    (b"\xff\x00", PacketKind.UNKNOWN),
    (b"", PacketKind.UNKNOWN),
])
def test_rfc7983_demux(data, kind):
    assert classify(data) is kind


def test_password_algorithms_challenge_selects_sha256():
    """RFC 8489 §9.2.4: a nonce starting with the "obMatJos2" cookie and PASSWORD-ALGORITHMS
    in the 401 -> the client echoes both and keys MESSAGE-INTEGRITY with SHA-256."""
    from ice.stun import PasswordAlgorithm

    alloc = Allocation(SERVER, "alice", "secret")
    alloc.allocate(0.0)
    [(first, _)] = alloc.datagrams_to_send(0.0)
    tid = decode(first).transaction_id
    algorithms = ((1, b""), (2, b""))
    challenge = encode(Message(Method.ALLOCATE, Class.ERROR, tid, {
        Attr.ERROR_CODE: (401, "Unauthorized"), Attr.REALM: REALM,
        Attr.NONCE: b"obMatJos2AAAAnonce", Attr.PASSWORD_ALGORITHMS: algorithms}))
    assert alloc.receive(challenge, SERVER, 0.0)
    [(second, _)] = alloc.datagrams_to_send(0.0)
    req = decode(second)
    assert req[Attr.PASSWORD_ALGORITHMS] == algorithms
    assert req[Attr.PASSWORD_ALGORITHM] == (2, b"")
    sha_key = long_term_key("alice", REALM, "secret", PasswordAlgorithm.SHA256)
    assert check_integrity(second, sha_key) and not check_integrity(second, KEY)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_random_datagrams_from_the_server_never_raise(data):
    net = allocated()
    net.alloc.bind_channel(PEER, 0.0)
    net.pump()
    for blob in (data, b"\x40\x00" + data, b"\x00\x17" + data, b"\x01\x13" + data):
        net.alloc.receive(blob, SERVER, 1.0)
        net.alloc.handle_timer(1.0)
        net.alloc.datagrams_to_send(1.0)
    while (event := net.alloc.next_event()) is not None:
        assert isinstance(event, DataReceived)
    assert net.alloc.state is AllocationState.ALLOCATED


def test_undrained_data_events_are_bounded():
    from ice.turn import MAX_PENDING_EVENTS

    net = allocated()
    ind = encode(Message(Method.DATA, Class.INDICATION, new_transaction_id(),
                         {Attr.XOR_PEER_ADDRESS: PEER, Attr.DATA: b"x"}))
    for _ in range(MAX_PENDING_EVENTS + 100):
        net.alloc.receive(ind, SERVER, 1.0)
    assert net.alloc.dropped_data == 100
    n = 0
    while net.alloc.next_event() is not None:
        n += 1
    assert n == MAX_PENDING_EVENTS


def test_failed_permission_and_channel_refresh_forget_them():
    net = allocated()
    net.alloc.bind_channel(PEER, 0.0)
    net.pump()
    assert net.alloc.channel_for(PEER) == 0x4000 and net.alloc.has_permission(PEER)
    net.server.error[Method.CREATE_PERMISSION] = (403, "Forbidden")
    net.server.error[Method.CHANNEL_BIND] = (403, "Forbidden")
    net.advance_to(545.0)
    assert net.of(PermissionFailed) and net.of(ChannelBindFailed)
    assert not net.alloc.has_permission(PEER) and net.alloc.channel_for(PEER) is None
    # data for the old channel is no longer delivered; a new send asks for a permission again
    assert net.alloc.receive(encode_channel_data(0x4000, b"late"), SERVER, 546.0)
    assert net.alloc.next_event() is None
    del net.server.error[Method.CREATE_PERMISSION]
    net.alloc.send_to(PEER, b"again", 546.0)
    net.clock.advance(1.0)
    net.pump()
    sends = [m for _, m in net.sent_at if isinstance(m, Message) and m.method == Method.SEND]
    assert [m[Attr.DATA] for m in sends] == [b"again"]


def test_300_try_alternate_moves_to_the_alternate_server():
    alt = ("192.0.2.20", 3479)
    alloc = Allocation(SERVER, "alice", "secret")
    alloc.allocate(0.0)
    [(first, dest)] = alloc.datagrams_to_send(0.0)
    assert dest == SERVER
    redirect = encode(Message(Method.ALLOCATE, Class.ERROR, decode(first).transaction_id, {
        Attr.ERROR_CODE: (300, "Try Alternate"), Attr.ALTERNATE_SERVER: alt}))
    assert alloc.receive(redirect, SERVER, 0.1)
    [(second, dest)] = alloc.datagrams_to_send(0.1)
    assert dest == alt and alloc.server == alt and alloc.redirects == 1
    assert decode(second)[Attr.REQUESTED_TRANSPORT] == 17
    # the rest of the exchange happens with the alternate server only
    server = FakeServer()
    challenge = server.handle(second)
    assert not alloc.receive(challenge, SERVER, 0.2)
    assert alloc.receive(challenge, alt, 0.2)
    [(third, dest)] = alloc.datagrams_to_send(0.2)
    assert dest == alt
    assert alloc.receive(server.handle(third), alt, 0.3)
    assert alloc.next_event() == AllocationSucceeded(RELAYED, MAPPED, 600)


def test_300_without_alternate_server_fails():
    alloc = Allocation(SERVER, "alice", "secret")
    alloc.allocate(0.0)
    [(first, _)] = alloc.datagrams_to_send(0.0)
    alloc.receive(encode(Message(Method.ALLOCATE, Class.ERROR, decode(first).transaction_id,
                                 {Attr.ERROR_CODE: (300, "Try Alternate")})), SERVER, 0.1)
    assert alloc.next_event() == AllocationFailed(300, "Try Alternate")
