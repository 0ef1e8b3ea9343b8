"""Transport selection (issue 13), on the wire and through Kamailio.

RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if it is larger than
1300 bytes and the path MTU is unknown, the request MUST be sent using an RFC 2914 congestion
controlled transport protocol, such as TCP. ... If this causes a change in the transport
protocol from the one indicated in the top Via, the value in the top Via MUST be changed."
When TCP cannot be used (nothing listens), the request goes over UDP after all. §8.1.3.1: a
transport error (a refused TCP connection) is reported at once, like a 503, not after timer B.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import pytest_twisted

from tests.peers.kamailio import Kamailio
from tests.peers.process import free_port
from tests.wire import HOST, Caller, SipPeer

# eight ICE host addresses (two candidates each): an INVITE well over 1,300 bytes
_BIG = '[ice]\naddresses = [' + ", ".join(f'"127.0.0.{n}"' for n in range(1, 9)) + "]\n"


@pytest.fixture
def big_offer(tmp_path: Path) -> Path:
    cfg = tmp_path / "big.toml"
    cfg.write_text(_BIG)
    return cfg


def _udp_on(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, port))
    return s


def test_large_invite_goes_over_tcp_with_its_via_changed(big_offer: Path) -> None:
    """A UDP target (no transport parameter) that also listens on TCP: the INVITE of more
    than 1,300 bytes arrives over TCP, its top Via says TCP, and nothing arrives over UDP."""
    with SipPeer("tcp", listen=True) as tcp:
        udp = _udp_on(tcp.port)
        udp.settimeout(0.2)
        c = Caller(f"sip:bob@{HOST}:{tcp.port}", "--listen", f"{HOST}:0", "--timeout", "8",
                   before=("-c", str(big_offer)))
        try:
            inv = tcp.request_in("INVITE", timeout=10)
            assert len(inv.raw) > 1300, len(inv.raw)
            assert inv["via"].startswith("SIP/2.0/TCP "), inv.text()
            tcp.reply(inv, 486)
            assert c.wait(20) == 1, c.log()
            with pytest.raises(socket.timeout):
                udp.recvfrom(65535)         # no copy of the INVITE over UDP
        finally:
            c.stop()
            udp.close()


def test_large_invite_falls_back_to_udp_when_tcp_is_refused(big_offer: Path) -> None:
    """Nothing listens on TCP at the target: the large INVITE is sent over UDP (top Via
    UDP) within a second or two, not after timer B."""
    with SipPeer("udp") as udp:
        c = Caller(f"sip:bob@{HOST}:{udp.port}", "--listen", f"{HOST}:0", "--timeout", "8",
                   before=("-c", str(big_offer)))
        try:
            t0 = time.monotonic()
            inv = udp.request_in("INVITE", timeout=10)
            assert time.monotonic() - t0 < 5
            assert len(inv.raw) > 1300 and inv["via"].startswith("SIP/2.0/UDP "), inv.text()
            udp.reply(inv, 486)
            assert c.wait(20) == 1, c.log()
        finally:
            c.stop()


def test_small_request_stays_on_udp() -> None:
    """An OPTIONS of a few hundred bytes stays on UDP (the switch is for large requests)."""
    with SipPeer("udp") as udp:
        c = Caller(f"sip:x@{HOST}:{udp.port}", "--timeout", "5", command="options")
        try:
            req = udp.request_in("OPTIONS", timeout=10)
            assert len(req.raw) < 1300 and req["via"].startswith("SIP/2.0/UDP ")
            udp.reply(req, 200)
            assert c.wait(20) == 0, c.log()
        finally:
            c.stop()


@pytest.mark.parametrize("command", ["options", "call"])
def test_refused_tcp_connection_fails_at_once(command: str) -> None:
    """§8.1.3.1: ``transport=tcp`` to a port where nothing listens fails within a few
    seconds (not timer B's 32 s) with a clear message and no traceback."""
    port = free_port()
    uri = f"sip:x@{HOST}:{port};transport=tcp"
    args = (uri, "--timeout", "60") if command == "options" else \
        (uri, "--no-ice", "--timeout", "60")
    t0 = time.monotonic()
    c = Caller(*args, command=command)
    try:
        code = c.wait(20)
        assert time.monotonic() - t0 < 10, c.log()
        assert code in (1, 3), c.log()
        assert "Traceback" not in c.err and "Unhandled" not in c.err, c.log()
    finally:
        c.stop()


@pytest_twisted.ensureDeferred
async def test_large_invite_through_kamailio_goes_over_tcp(kamailio: Kamailio) -> None:
    """Alice registers over UDP; her INVITE through Kamailio (which listens on UDP and TCP)
    is over 1,300 bytes, so it goes to Kamailio over TCP with a TCP Via; Kamailio proxies
    it to bob and the call is answered."""
    from twisted.internet import reactor

    from ice.trace import Trace
    from siplink.ua.useragent import Account, CallState, UserAgent

    trace = Trace()
    agents = []
    try:
        for user, tr in (("alice", trace), ("bob", None)):
            ua = UserAgent(reactor, user=user, trace=tr)
            ua.listen()
            agents.append((ua, Account(user, kamailio.address, password="secret",
                                       proxy=kamailio.address)))
        (a, acc_a), (b, acc_b) = agents
        assert await b.register(acc_b).register() == 3600
        kamailio.proc.wait_for("REGISTERED sip:bob@", timeout=5)
        b.on_incoming_call = lambda call: call.answer()
        call = a.call(f"sip:bob@{kamailio.address}", account=acc_a,
                      headers=[("X-Padding", "p" * 1400)])
        await call.answered
        assert call.state is CallState.CONFIRMED
        invites = [r for r in trace.records if r.protocol == "sip" and r.direction == "out"
                   and r.detail.startswith("INVITE ")]
        assert invites and all(r.detail.split("\r\n")[1].startswith("Via: SIP/2.0/TCP ")
                               for r in invites), [r.detail[:200] for r in invites]
        await call.hangup()
    finally:
        for ua, _ in agents:
            ua.close()
