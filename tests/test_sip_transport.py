"""The Twisted drivers: one timer per layer deadline (Clock), UDP/TCP/TLS, connection reuse."""

from __future__ import annotations

import socket
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor, ssl, task

from siplink.core.transaction import Target, TransactionLayer
from siplink.sip.message import make_request, parse_message
from siplink.transport.driver import SipTransport
from siplink.ua.useragent import CallState, UserAgent


class ClockReactor:
    """The real reactor's sockets with a deterministic ``task.Clock`` for time."""

    def __init__(self) -> None:
        self.clock = task.Clock()

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, f: Any, *a: Any, **kw: Any) -> Any:  # noqa: N802
        return self.clock.callLater(delay, f, *a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


def options_to(port: int) -> Any:
    return make_request("OPTIONS", f"sip:x@127.0.0.1:{port}", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKclock;rport"), ("Max-Forwards", "70"),
        ("From", "<sip:a@127.0.0.1>;tag=1"), ("To", f"<sip:x@127.0.0.1:{port}>"),
        ("Call-ID", "clock-test"), ("CSeq", "1 OPTIONS")])


def test_driver_arms_one_timer_and_retransmits_on_the_wire() -> None:
    """Timer E on a real UDP socket, time advanced with a Clock: 0.5, 1, 2, 4, 4, ... then F."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(2.0)
    port = sink.getsockname()[1]
    fake = ClockReactor()
    timeouts: list[object] = []
    layer = TransactionLayer()
    drv = SipTransport(layer, fake, lambda ev: timeouts.append(ev))
    drv.listen_udp("127.0.0.1", 0)
    try:
        layer.send_request(options_to(port), Target("udp", "127.0.0.1", port), fake.seconds())
        drv.pump()
        got = [parse_message(sink.recv(65535))]
        assert len(fake.clock.getDelayedCalls()) == 1
        seen_at = [0.0]
        for _ in range(140):
            fake.clock.advance(0.25)
            sink.settimeout(0.01)
            try:
                while True:
                    got.append(parse_message(sink.recv(65535)))
                    seen_at.append(fake.seconds())
            except TimeoutError:
                pass
            assert len(fake.clock.getDelayedCalls()) <= 1    # exactly one callLater armed
        assert seen_at[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
        assert all(m.via[0].branch == "z9hG4bKclock" for m in got)
        assert max(seen_at) < 32.0
        assert any(type(ev).__name__ == "TransactionTimeout" for ev in timeouts)
        assert len(layer) == 0 and fake.clock.getDelayedCalls() == []
    finally:
        drv.close()
        sink.close()


async def _call_over(transport: str, **listen: Any) -> tuple[UserAgent, UserAgent]:
    a = UserAgent(reactor, user="alice", transport=transport)
    b = UserAgent(reactor, user="bob", transport=transport)
    a.listen(**listen)
    b.listen(**listen)
    b.on_incoming_call = lambda call: call.answer()
    call = a.call(f"sip:bob@127.0.0.1:{b.port};transport={transport}")
    await call.answered
    assert call.state is CallState.CONFIRMED
    assert (await call.options()).status == 200
    await call.hangup()
    await task.deferLater(reactor, 0.05, lambda: None)
    return a, b


@pytest_twisted.ensureDeferred
async def test_call_over_tcp_reuses_one_connection() -> None:
    a, b = await _call_over("tcp")
    try:
        assert len(a.transport._connections) == 1                # INVITE, ACK, OPTIONS, BYE
        (conn,) = b.transport._connections.values()
        assert conn.remote is not None and conn.remote.transport == "tcp"
        assert not b.calls and not a.calls
    finally:
        a.close()
        b.close()


def _tls_contexts() -> tuple[Any, Any]:
    key = ssl.KeyPair.generate(size=2048)  # Twisted 24 still builds it with pyOpenSSL
    cert = key.selfSignedCert(1, CN="127.0.0.1")
    server = cert.options()
    client = ssl.optionsForClientTLS("127.0.0.1", trustRoot=ssl.Certificate(cert.original))
    return server, client


@pytest_twisted.ensureDeferred
async def test_call_over_tls_with_a_self_signed_certificate() -> None:
    server, client = _tls_contexts()
    a, b = await _call_over("tls", tls_context=server, tls_client_context=client)
    try:
        assert len(a.transport._connections) == 1
        assert a.stats["answered"] == 1 and b.stats["answered"] == 1
    finally:
        a.close()
        b.close()


@pytest_twisted.ensureDeferred
async def test_tcp_framing_errors_get_400_and_keepalives_are_ignored() -> None:
    b = UserAgent(reactor, user="bob", transport="tcp")
    b.listen()
    got: defer.Deferred[bytes] = defer.Deferred()
    from twisted.internet import protocol

    class Client(protocol.Protocol):
        def connectionMade(self) -> None:  # noqa: N802
            bad = (b"\r\n\r\nOPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;"
                   b"branch=z9hG4bKt\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: x\r\n"
                   b"CSeq: 1 OPTIONS\r\nMax-Forwards: ten\r\nContent-Length: 0\r\n\r\n")
            self.transport.write(bad)

        def dataReceived(self, data: bytes) -> None:  # noqa: N802
            if not got.called:
                got.callback(data)

    ep = protocol.ClientCreator(reactor, Client)
    conn = await ep.connectTCP("127.0.0.1", b.port)
    try:
        data = await got
        assert data.startswith(b"SIP/2.0 400 ")
        assert b"Max-Forwards" in data.split(b"\r\n", 1)[0]
    finally:
        conn.transport.loseConnection()
        b.close()
