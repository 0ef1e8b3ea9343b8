"""TURN over TCP/TLS, sans-I/O: stream framing (RFC 8489 §6.2.2, RFC 8656 §12.5), requests
sent once with the Ti timeout on a reliable transport, a lost connection ends the allocation,
TURN URIs (RFC 7065), and the agent handing its allocation to a stream connection."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ice.agent import Agent
from ice.events import GatheringComplete, GatheringFailed, RelayError
from ice.gathering import GatheringError, TurnServer, parse_turn_uri
from ice.stream_framing import FramingError, StreamFramer, frame
from ice.stun import Attr, Class, Message, Method, decode, encode, new_transaction_id
from ice.turn import (
    RELIABLE_TI,
    Allocation,
    AllocationFailed,
    AllocationSucceeded,
    ChannelBound,
    DataReceived,
    StreamConnection,
)

SERVER = ("192.0.2.10", 3478)
PEER = ("198.51.100.7", 40000)


def stun_bytes(n_attr_bytes: int = 0) -> bytes:
    msg = Message(Method.BINDING, Class.REQUEST, new_transaction_id(),
                  {Attr.SOFTWARE: "x" * n_attr_bytes} if n_attr_bytes else {})
    return encode(msg)


# ---- framing ---------------------------------------------------------------------------------

def test_stun_messages_are_split_by_their_header_length() -> None:
    a, b = stun_bytes(), stun_bytes(9)
    f = StreamFramer()
    stream = a + b
    out: list[bytes] = []
    for i in range(len(stream)):          # byte by byte: boundaries come from the length only
        out += f.feed(stream[i:i + 1])
    assert out == [a, b]
    assert f.buffered == 0


def test_channeldata_on_a_stream_is_padded_to_four_bytes() -> None:
    # RFC 8656 §12.5: over TCP and TLS the ChannelData message is padded to a multiple of 4
    raw = b"\x40\x01\x00\x05hello"
    framed = frame(raw)
    assert framed == raw + b"\x00\x00\x00" and len(framed) % 4 == 0
    s = stun_bytes(1)
    assert frame(s) == s                                  # STUN is never padded
    f = StreamFramer()
    after = stun_bytes()
    assert f.feed(framed + after[:7]) == [framed]        # the padding belongs to the message
    assert f.feed(after[7:]) == [after]


def test_channeldata_of_aligned_length_has_no_padding() -> None:
    raw = b"\x40\x00\x00\x04abcd"
    assert frame(raw) == raw
    assert StreamFramer().feed(raw + raw) == [raw, raw]


def test_garbage_on_the_stream_is_a_framing_error_for_good() -> None:
    f = StreamFramer()
    with pytest.raises(FramingError, match="first byte 0x80"):
        f.feed(b"\x80\x00\x00\x00")        # RTP, say: neither STUN nor ChannelData
    with pytest.raises(FramingError):
        f.feed(stun_bytes())               # no resynchronisation on a stream
    with pytest.raises(FramingError, match="multiple of 4"):
        StreamFramer().feed(b"\x00\x01\x00\x03" + b"\x00" * 16)


@given(st.lists(st.binary(max_size=40), max_size=6), st.integers(1, 13))
def test_framing_any_chunking_gives_the_same_messages(payloads: list[bytes], chunk: int) -> None:
    msgs = [frame(b"\x40\x00" + len(p).to_bytes(2, "big") + p) for p in payloads]
    msgs.insert(len(msgs) // 2, stun_bytes(len(payloads)))
    stream = b"".join(msgs)
    f = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += f.feed(stream[i:i + chunk])
    assert out == msgs


# ---- the allocation over a reliable transport ---------------------------------------------

def _answer(alloc: Allocation, now: float, success: dict) -> None:
    """Answer the 401 challenge, then the request with ``success`` attributes."""
    [(req, _)] = alloc.datagrams_to_send(now)
    m = decode(req)
    challenge = Message(m.method, Class.ERROR, m.transaction_id,
                        {Attr.ERROR_CODE: (401, "Unauthorized"), Attr.REALM: "r",
                         Attr.NONCE: b"n0nce"})
    assert alloc.receive(encode(challenge), SERVER, now)
    [(req, _)] = alloc.datagrams_to_send(now)
    m = decode(req)
    ok = Message(m.method, Class.SUCCESS, m.transaction_id, success)
    assert alloc.receive(encode(ok, key=alloc.key), SERVER, now)


def _allocated(transport: str = "tcp") -> Allocation:
    alloc = Allocation(SERVER, "u", "p", transport=transport)
    alloc.allocate(0.0)
    _answer(alloc, 0.0, {Attr.XOR_RELAYED_ADDRESS: ("192.0.2.10", 50000),
                         Attr.XOR_MAPPED_ADDRESS: ("203.0.113.5", 61000), Attr.LIFETIME: 600})
    assert isinstance(alloc.next_event(), AllocationSucceeded)
    return alloc


def test_reliable_requests_are_sent_once_and_time_out_after_ti() -> None:
    # RFC 8489 §6.2.2: no retransmission over TCP; the transaction fails after Ti = 39.5 s
    alloc = Allocation(SERVER, "u", "p", transport="tcp")
    alloc.allocate(0.0)
    assert len(alloc.datagrams_to_send(0.0)) == 1
    assert alloc.get_timer() == pytest.approx(RELIABLE_TI)
    for t in (0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 39.0):
        alloc.handle_timer(t)
        assert alloc.datagrams_to_send(t) == []
    alloc.handle_timer(RELIABLE_TI)
    ev = alloc.next_event()
    assert isinstance(ev, AllocationFailed) and ev.code is None


def test_udp_requests_still_retransmit() -> None:
    alloc = Allocation(SERVER, "u", "p")
    alloc.allocate(0.0)
    alloc.datagrams_to_send(0.0)
    alloc.handle_timer(0.5)
    assert len(alloc.datagrams_to_send(0.5)) == 1


def test_channeldata_sent_on_a_stream_is_padded() -> None:
    alloc = _allocated("tls")
    alloc.bind_channel(PEER, 1.0)
    [(req, _)] = alloc.datagrams_to_send(1.0)
    m = decode(req)
    ok = Message(m.method, Class.SUCCESS, m.transaction_id, {})
    assert alloc.receive(encode(ok, key=alloc.key), SERVER, 1.0)
    events = [alloc.next_event(), alloc.next_event()]
    assert any(isinstance(e, ChannelBound) for e in events)
    alloc.send_to(PEER, b"12345", 2.0)
    [(data, to)] = alloc.datagrams_to_send(2.0)
    assert to == SERVER
    assert data[:4] == b"\x40\x00\x00\x05" and data[4:9] == b"12345" and len(data) == 12
    # a padded ChannelData from the server is read by its length field
    assert alloc.receive(b"\x40\x00\x00\x03abc\x00", SERVER, 3.0)
    assert alloc.next_event() == DataReceived(PEER, b"abc", 0x4000)


def test_a_lost_connection_fails_the_allocation() -> None:
    alloc = _allocated()
    alloc.connection_lost(5.0, "TURN server closed the TCP connection")
    ev = alloc.next_event()
    assert ev == AllocationFailed(None, "TURN server closed the TCP connection", "refresh")
    assert alloc.state.value == "failed" and alloc.get_timer() is None
    pending = Allocation(SERVER, "u", "p", transport="tcp")
    pending.allocate(0.0)
    pending.connection_lost(0.1, "cannot connect")
    assert pending.next_event() == AllocationFailed(None, "cannot connect", "allocate")


def test_stream_allocation_does_not_follow_try_alternate() -> None:
    alloc = Allocation(SERVER, "u", "p", transport="tcp")
    alloc.allocate(0.0)
    [(req, _)] = alloc.datagrams_to_send(0.0)
    m = decode(req)
    alt = Message(m.method, Class.ERROR, m.transaction_id,
                  {Attr.ERROR_CODE: (300, "Try Alternate"),
                   Attr.ALTERNATE_SERVER: ("192.0.2.11", 3478)})
    assert alloc.receive(encode(alt), SERVER, 0.1)
    ev = alloc.next_event()
    assert isinstance(ev, AllocationFailed) and ev.code == 300
    assert alloc.server == SERVER


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transport"):
        Allocation(SERVER, "u", "p", transport="sctp")


# ---- TURN URIs (RFC 7065) ---------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "expected"), [
    ("turn:192.0.2.1", ("192.0.2.1", 3478, "udp")),
    ("turn:192.0.2.1:3479?transport=udp", ("192.0.2.1", 3479, "udp")),
    ("turn:turn.test?transport=tcp", ("turn.test", 3478, "tcp")),
    ("turns:turn.test", ("turn.test", 5349, "tls")),
    ("turns:[2001:db8::1]:443?transport=tcp", ("2001:db8::1", 443, "tls")),
])
def test_turn_uris(uri: str, expected: tuple[str, int, str]) -> None:
    t = parse_turn_uri(uri, "u", "p")
    assert (t.host, t.port, t.transport) == expected
    assert (t.username, t.password) == ("u", "p")


@pytest.mark.parametrize("uri", ["turns:h?transport=udp", "turn:h?transport=sctp",
                                 "turn:h?foo=bar", "stun:h", "turn:"])
def test_bad_turn_uris(uri: str) -> None:
    with pytest.raises(GatheringError):
        parse_turn_uri(uri)


# ---- the agent: a relay over a stream connection -------------------------------------------

def test_agent_asks_for_a_stream_and_relays_through_it() -> None:
    agent = Agent(True, local_addresses=["10.0.0.2"], rng=random.Random(1),
                  turn_servers=[TurnServer("192.0.2.10", 443, "u", "p", "tls", "/ca.pem")])
    agent.add_host_socket(0, 1, ("10.0.0.2", 5000))
    agent.gather(0.0)
    [conn] = agent.stream_connections_to_open()
    assert conn == StreamConnection(0, 1, "10.0.0.2", ("192.0.2.10", 443), "tls", "/ca.pem")
    assert agent.stream_connections_to_open() == []      # handed out once
    # nothing for the TURN server goes out on the UDP socket
    assert all(remote != ("192.0.2.10", 443) for _, _, remote in agent.datagrams_to_send(0.0))
    [req] = [d for c, d in agent.stream_data_to_send() if c == conn]
    m = decode(req)
    assert m.method == Method.ALLOCATE and m[Attr.REQUESTED_TRANSPORT] == 17   # relay: UDP
    agent.stream_connected(conn, ("10.0.0.2", 40001), 0.1)
    challenge = Message(m.method, Class.ERROR, m.transaction_id,
                        {Attr.ERROR_CODE: (401, "Unauthorized"), Attr.REALM: "r",
                         Attr.NONCE: b"n"})
    agent.stream_received(conn, encode(challenge), 0.1)
    agent.datagrams_to_send(0.1)
    [req] = [d for c, d in agent.stream_data_to_send() if c == conn]
    m = decode(req)
    from ice.stun import long_term_key
    ok = Message(m.method, Class.SUCCESS, m.transaction_id,
                 {Attr.XOR_RELAYED_ADDRESS: ("192.0.2.10", 50000),
                  Attr.XOR_MAPPED_ADDRESS: ("203.0.113.5", 61000), Attr.LIFETIME: 600})
    agent.stream_received(conn, encode(ok, key=long_term_key("u", "r", "p")), 0.2)
    relayed = [c for c in agent.local_candidates(0) if c.type.value == "relay"]
    assert [(c.address, c.port, c.related_address) for c in relayed] == [
        ("192.0.2.10", 50000, "203.0.113.5")]
    # RFC 8445 §5.1.1.2's srflx-from-Allocate is for UDP: this mapping is our TCP one
    assert not [c for c in agent.local_candidates(0) if c.type.value == "srflx"]
    events = []
    while (ev := agent.next_event()) is not None:
        events.append(ev)
    assert GatheringComplete(0) in events
    # the server closes the connection: the allocation is gone with it (RFC 8656 §3.1)
    agent.stream_lost(conn, "TURN server 192.0.2.10:443 closed the TLS connection", 5.0)
    errors = [e for e in iter(agent.next_event, None) if isinstance(e, RelayError)]
    assert errors and "closed the TLS connection" in errors[0].reason
    agent.handle_timer(600.0)        # past the refresh time: no Refresh on a dead connection
    agent.datagrams_to_send(600.0)
    assert agent.stream_data_to_send() == []


def test_agent_reports_a_stream_that_could_not_open() -> None:
    agent = Agent(True, local_addresses=["10.0.0.2"], rng=random.Random(1), policy="relay",
                  turn_servers=[TurnServer("192.0.2.10", 3478, "u", "p", "tcp")])
    agent.add_host_socket(0, 1, ("10.0.0.2", 5000))
    agent.gather(0.0)
    [conn] = agent.stream_connections_to_open()
    agent.stream_lost(conn, "cannot connect to TURN server 192.0.2.10:3478 over TCP: refused",
                      0.3)
    events = []
    while (ev := agent.next_event()) is not None:
        events.append(ev)
    failed = [e for e in events if isinstance(e, GatheringFailed)]
    assert failed and "over TCP: refused" in failed[0].reason
    assert GatheringComplete(0) in events


def test_udp_and_tcp_to_the_same_server_are_two_allocations() -> None:
    agent = Agent(True, local_addresses=["10.0.0.2"], rng=random.Random(1),
                  turn_servers=[TurnServer("192.0.2.10", 3478, "u", "p", "udp"),
                                TurnServer("192.0.2.10", 3478, "u", "p", "tcp")])
    agent.add_host_socket(0, 1, ("10.0.0.2", 5000))
    agent.gather(0.0)
    # gathering transactions are paced one per Ta (RFC 8445 §5.1.1.2): run the clock a bit
    opened, udp, streamed = [], [], []
    now = 0.0
    while now < 0.3:
        opened += agent.stream_connections_to_open()
        udp += [r for _, _, r in agent.datagrams_to_send(now) if r == ("192.0.2.10", 3478)]
        streamed += agent.stream_data_to_send()
        t = agent.get_timer()
        if t is None or t > 0.3:
            break
        now = max(now, t)
        agent.handle_timer(now)
    assert len(opened) == 1
    assert len(udp) == 1
    assert len(streamed) == 1


# ---- configuration: [[ice.turn_servers]] ------------------------------------------------------

def test_config_turn_servers_become_udp_tcp_and_tls_servers() -> None:
    from siplink.media.icesession import media_options
    from siplink.ua.config import loads

    cfg = loads('[[ice.turn_servers]]\nuri = "turn:192.0.2.1"\nusername = "u"\n'
                'password = "p"\n\n[[ice.turn_servers]]\n'
                'uri = "turn:192.0.2.1:3479?transport=tcp"\n\n[[ice.turn_servers]]\n'
                'uri = "turns:turn.test"\ntls_ca = "/etc/ca.pem"\n')
    assert media_options(cfg)["turn_servers"] == (
        TurnServer("192.0.2.1", 3478, "u", "p", "udp"),
        TurnServer("192.0.2.1", 3479, "", "", "tcp"),
        TurnServer("turn.test", 5349, "", "", "tls", "/etc/ca.pem"))


@pytest.mark.parametrize(("body", "key", "words"), [
    ('uri = "turns:turn.test?transport=udp"', "ice.turn_servers.uri", "DTLS"),
    ('uri = "turn:turn.test?transport=sctp"', "ice.turn_servers.uri", "udp or tcp"),
    ('uri = "turn:turn.test"\ntls_ca = "ca.pem"', "ice.turn_servers.tls_ca", "turns:"),
])
def test_config_bad_turn_server_names_the_key(body: str, key: str, words: str) -> None:
    from siplink.ua.config import ConfigError, loads

    with pytest.raises(ConfigError) as e:
        loads(f"[[ice.turn_servers]]\n{body}\n", path="x.toml")
    assert e.value.key == key and words in str(e.value)
    assert e.value.line is not None


def test_agent_refuses_an_unknown_turn_transport() -> None:
    from ice.agent import IceError

    with pytest.raises(IceError, match="transport must be one of udp, tcp, tls"):
        Agent(True, turn_servers=[TurnServer("192.0.2.10", 3478, "u", "p", "sctp")])

