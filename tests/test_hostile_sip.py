"""Hostile SIP traffic against a running UserAgent on loopback (UDP and TCP, and a SIPp flood).

What each test proves:

* malformed requests over UDP and TCP get a 400 (505 for another version) whose reason phrase
  is the codec's own ``SipParseError.reason`` for those bytes, and the agent goes on serving:
  a valid OPTIONS right after gets 200;
* a malformed request whose Via names a host (no rport) gets its 400 at the source address
  (§18.2.1 received), and nothing escapes the transport (regression: the 400 went to the
  name, Twisted's InvalidAddressError escaped the pump);
* 200 INVITEs to an agent without a call handler: each gets 480 and no error is logged
  (regression: every rejected call logged "Unhandled error in Deferred" when freed);
* a TCP peer that sends header lines forever is cut off once the header section passes
  ``MAX_HEADER_BYTES``; one that never finishes a body (or dribbles it) is closed after the
  transport's ``incomplete_timeout``; in both cases the buffer stayed bounded;
* SIPp flooding OPTIONS far above what the agent may hold (each UDP server transaction lives
  32 s after its 200): 200 until ``max_lingering`` transactions are held, then 503 for every
  further request -- every request answered, no crash, no error logged, transactions and
  memory bounded; once the transactions time out, a valid OPTIONS gets 200 again.  (Answered
  transactions no longer count against ``max_server_transactions``, which bounds the
  requests the TU has not answered yet: tests/test_transaction.py.)
"""

from __future__ import annotations

import gc
import os
import resource
import time
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, task, threads
from twisted.logger import ILogObserver, globalLogPublisher

from siplink.sip.message import MAX_HEADER_BYTES, SipParseError, parse_message
from siplink.ua.useragent import UserAgent
from tests.peers.sipp import run_uac

DATA = Path(__file__).resolve().parent / "data" / "sipp"


def options(via: str, call_id: str, extra: str = "", cseq: str = "1 OPTIONS") -> bytes:
    return (f"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:eve@127.0.0.1>;tag=e1\r\nTo: <sip:bob@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n").encode()


# (what is wrong, the bytes) -- each must be refused by the codec, with a Via we can answer
def malformed(port: int, transport: str = "UDP") -> list[tuple[str, bytes]]:
    via = f"SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKbad{{n}};rport"
    cases = [
        ("Max-Forwards not a number", options(via, "m1").replace(b"Max-Forwards: 70",
                                                                 b"Max-Forwards: ten")),
        ("CSeq not a number", options(via, "m2", cseq="one OPTIONS")),
        ("CSeq method differs", options(via, "m3", cseq="1 INVITE")),
        ("empty Via list", options(",,,", "m4")),
        ("two Call-IDs", options(via, "m5", "Call-ID: again\r\n")),
        ("Content-Length past the end", options(via, "m6").replace(b"Content-Length: 0",
                                                                    b"Content-Length: 10")),
        ("negative Content-Length", options(via, "m7").replace(b"Content-Length: 0",
                                                               b"Content-Length: -5")),
        ("bad header name (UDP)", options(via, "m9", "Bad Name: x\r\n")),
        ("unsupported version", options(via, "m8").replace(b" SIP/2.0\r\n", b" SIP/7.0\r\n", 1)),
    ]
    if transport == "TCP":   # Content-Length frames a stream: those errors are fatal there
        cases = [c for c in cases if "Content-Length" not in c[0] and "UDP" not in c[0]]
    return [(what, data.replace(b"{n}", str(i).encode())) for i, (what, data) in
            enumerate(cases)]


class UdpPeer(protocol.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: defer.DeferredQueue[bytes] = defer.DeferredQueue()

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.queue.put(data)


class TcpPeer(protocol.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.got: defer.DeferredQueue[bytes] = defer.DeferredQueue()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.data += data
        while b"\r\n\r\n" in self.data:
            head, _, rest = self.data.partition(b"\r\n\r\n")
            self.got.put(head)
            self.data = rest

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if not self.closed.called:
            self.closed.callback(None)


async def within(d: defer.Deferred[Any], seconds: float) -> Any:
    return await d.addTimeout(seconds, reactor)


def expected_status(data: bytes) -> tuple[int, str]:
    try:
        parse_message(data)
    except SipParseError as e:
        return e.status, e.reason
    raise AssertionError("the codec accepted a message meant to be malformed")


@pytest.fixture
def errors() -> Any:
    """Every error-level log event (log.failure, unhandled errors) while the test runs."""
    seen: list[dict[str, Any]] = []
    gc.collect()       # what earlier tests left to be freed is logged now, not during this one

    def observer(event: dict[str, Any]) -> None:
        if event.get("isError") or event.get("log_failure") is not None:
            seen.append(event)

    globalLogPublisher.addObserver(cast(ILogObserver, observer))
    yield seen
    globalLogPublisher.removeObserver(cast(ILogObserver, observer))


@pytest.fixture
def ua() -> Any:
    agent = UserAgent(reactor, user="bob")
    agent.listen(("udp", "tcp"))
    yield agent
    agent.close()


async def udp_exchange(peer: UdpPeer, port: Any, ua_port: int, data: bytes) -> bytes:
    port.write(data, ("127.0.0.1", ua_port))
    return cast(bytes, await within(peer.queue.get(), 5))


async def ok_after(peer: UdpPeer, port: Any, ua_port: int, tag: str) -> None:
    me = port.getHost().port
    reply = await udp_exchange(peer, port, ua_port, options(
        f"SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKok{tag};rport", f"ok-{tag}"))
    assert reply.startswith(b"SIP/2.0 200 "), reply[:80]


@pytest_twisted.ensureDeferred
async def test_malformed_udp_gets_the_codecs_400_and_the_agent_keeps_serving(
        ua: UserAgent, errors: list[dict[str, Any]]) -> None:
    peer = UdpPeer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    try:
        me = port.getHost().port
        for what, data in malformed(me):
            status, reason = expected_status(data)
            reply = await udp_exchange(peer, port, ua.port, data)
            line = reply.split(b"\r\n", 1)[0].decode()
            want = reason if status == 400 else None
            assert line.startswith(f"SIP/2.0 {status} "), (what, line)
            if want is not None:
                assert line == f"SIP/2.0 400 {want}", (what, line)
            assert b"Call-ID: m" in reply or b"i: m" in reply, (what, reply[:200])
            await ok_after(peer, port, ua.port, "".join(c for c in what if c.isalnum()))
        # garbage that is not SIP at all: dropped, and still serving
        for junk in (b"\x00" * 100, os.urandom(1400), b"INVITE\r\n\r\n", b"SIP/2.0 200\r\n\r\n"):
            port.write(junk, ("127.0.0.1", ua.port))
        await ok_after(peer, port, ua.port, "after-junk")
        assert not errors, errors[:3]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_malformed_tcp_gets_the_codecs_400_on_the_same_connection(
        ua: UserAgent, errors: list[dict[str, Any]]) -> None:
    tcp_port = ua.transport.local["tcp"].port
    peer = await protocol.ClientCreator(reactor, TcpPeer).connectTCP("127.0.0.1", tcp_port)
    try:
        me = peer.transport.getHost().port
        for i, (what, data) in enumerate(malformed(me, "TCP")):
            status, reason = expected_status(data)
            peer.transport.write(data)
            head = await within(peer.got.get(), 5)
            line = head.split(b"\r\n", 1)[0].decode()
            assert line.startswith(f"SIP/2.0 {status} "), (what, line)
            if status == 400:
                assert line == f"SIP/2.0 400 {reason}", (what, line)
            peer.transport.write(options(
                f"SIP/2.0/TCP 127.0.0.1:{me};branch=z9hG4bKtok{i}", f"tok{i}"))
            head = await within(peer.got.get(), 5)
            assert head.startswith(b"SIP/2.0 200 "), (what, head[:80])
        assert not peer.closed.called     # well-framed errors never cost the connection
        # an unframeable message (no Content-Length on a stream) is fatal for the connection
        peer.transport.write(options(f"SIP/2.0/TCP 127.0.0.1:{me};branch=z9hG4bKx", "nocl")
                             .replace(b"Content-Length: 0\r\n", b""))
        await within(peer.closed, 5)
        assert not ua.transport._connections
        assert not errors, errors[:3]
    finally:
        peer.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_malformed_request_with_a_via_hostname_is_answered_at_its_source(
        ua: UserAgent, errors: list[dict[str, Any]]) -> None:
    peer = UdpPeer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    try:
        me = port.getHost().port
        for i in range(3):
            # sent-by is a name (no rport): the 400 goes to the source address (§18.2.1
            # received), never to a name Twisted cannot write to (regression: the
            # InvalidAddressError escaped the transport's pump)
            data = options(f"SIP/2.0/UDP host.invalid:{me};branch=z9hG4bKh{i}", f"h{i}",
                           cseq="x OPTIONS")
            status, reason = expected_status(data)
            reply = await udp_exchange(peer, port, ua.port, data)
            assert reply.startswith(f"SIP/2.0 {status} {reason}\r\n".encode()), reply[:80]
            assert b";received=127.0.0.1" in reply
        await ok_after(peer, port, ua.port, "after-hostname")
        assert not errors, errors[:3]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_invite_burst_without_a_call_handler_logs_no_error(
        ua: UserAgent, errors: list[dict[str, Any]]) -> None:
    peer = UdpPeer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    try:
        me = port.getHost().port
        for i in range(200):
            port.write(options(f"SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKinv{i};rport",
                               f"inv{i}", f"Contact: <sip:eve@127.0.0.1:{me}>\r\n",
                               cseq="1 INVITE").replace(b"OPTIONS sip:", b"INVITE sip:"),
                       ("127.0.0.1", ua.port))
            if i % 50 == 49:
                await task.deferLater(reactor, 0.02, lambda: None)
        finals: list[bytes] = []
        while len(finals) < 200:
            reply = await within(peer.queue.get(), 5)
            if not reply.startswith(b"SIP/2.0 100 "):
                finals.append(reply)
        assert all(r.startswith(b"SIP/2.0 480 ") for r in finals)
        assert not ua.calls
        gc.collect()                 # a failed Deferred nobody consumed is logged when freed
        await task.deferLater(reactor, 0, lambda: None)
        ours = [e for e in errors if "480" in repr(e.get("log_failure") or e.get("failure"))
                or "inv" in repr(e)]
        assert not ours, ours[:3]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_tcp_header_section_that_never_ends_is_cut_off(
        ua: UserAgent, errors: list[dict[str, Any]]) -> None:
    peer = await protocol.ClientCreator(reactor, TcpPeer).connectTCP(
        "127.0.0.1", ua.transport.local["tcp"].port)
    sent = 0
    peer.transport.write(b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n")
    chunk = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    deadline = time.monotonic() + 10
    while not peer.closed.called and time.monotonic() < deadline:
        peer.transport.write(chunk * 8)
        sent += len(chunk) * 8
        await task.deferLater(reactor, 0.002, lambda: None)
        assert sent < 4 * MAX_HEADER_BYTES, "still connected long past the header bound"
    await within(peer.closed, 5)
    assert not ua.transport._connections
    assert not errors, errors[:3]


@pytest.mark.parametrize("dribble", [False, True])
@pytest_twisted.ensureDeferred
async def test_tcp_body_that_never_finishes_is_closed(
        ua: UserAgent, errors: list[dict[str, Any]], dribble: bool) -> None:
    ua.transport.incomplete_timeout = 1.0
    peer = await protocol.ClientCreator(reactor, TcpPeer).connectTCP(
        "127.0.0.1", ua.transport.local["tcp"].port)
    me = peer.transport.getHost().port
    head = options(f"SIP/2.0/TCP 127.0.0.1:{me};branch=z9hG4bKbody", "body").replace(
        b"Content-Length: 0", b"Content-Type: text/plain\r\nContent-Length: 100000")
    started = time.monotonic()
    peer.transport.write(head + b"x" * 100)
    conn = None
    while not peer.closed.called and time.monotonic() - started < 6:
        if dribble:                 # one octet every 0.2 s: progress, but never a message
            peer.transport.write(b"y")
        await task.deferLater(reactor, 0.2, lambda: None)
        if conn is None and ua.transport._connections:
            (conn,) = ua.transport._connections.values()
        if conn is not None:
            assert conn.parser.buffered <= len(head) + 100 + 40
    await within(peer.closed, 1)
    assert 0.9 <= time.monotonic() - started < 4
    assert conn is not None and not ua.transport._connections
    assert not errors, errors[:3]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest_twisted.ensureDeferred
async def test_sipp_options_flood_above_capacity(ua: UserAgent,
                                                 errors: list[dict[str, Any]]) -> None:
    cap = ua.layer.max_lingering = 6000     # the default is 10 x max_server_transactions
    before = rss_kib()
    # 24000 OPTIONS as fast as SIPp sends them (~5000/s): each server transaction lives 32 s
    # (timer J), so the layer is full after ~1 s and the rest must get 503, not memory
    res = await threads.deferToThread(
        run_uac, f"127.0.0.1:{ua.port}", scenario=DATA / "flood_options.xml", calls=24000,
        rate=12000, limit=24000, timeout=20)
    grown = rss_kib() - before
    ok, failed = res.count("SuccessfulCall"), res.count("FailedCall")
    assert res.returncode in (0, 1), res.log           # 1: the 503s count as failed calls
    assert ok + failed == 24000, res.stats
    # 200 until the layer was full (a request the kernel dropped under the flood may find it
    # full when SIPp retransmits it)...
    assert 1000 <= ok <= cap, res.stats
    # ...then 503, stateless; what the kernel dropped because the agent could not read fast
    # enough (more on a loaded machine) ends as SIPp timeouts
    assert failed > 0 and ua.layer.refused_overload > 0, (failed, ua.layer.refused_overload)
    assert len(ua.layer) <= cap
    assert grown < 150 * 1024, f"RSS grew {grown} KiB for {cap} live transactions"
    peer = UdpPeer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    try:
        me = port.getHost().port
        reply = await udp_exchange(peer, port, ua.port, options(
            f"SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKfull;rport", "full"))
        assert reply.startswith(b"SIP/2.0 503 "), reply[:80]       # still answering
        # once timer J has run out for the flood's transactions, business as usual
        ua.layer.handle_timer(ua.now() + 33.0)
        assert len(ua.layer) == 0
        t0 = time.monotonic()
        await ok_after(peer, port, ua.port, "after-flood")
        assert time.monotonic() - t0 < 2.0
    finally:
        await port.stopListening()
    assert not errors, errors[:3]
