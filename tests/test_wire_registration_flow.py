"""A registration's flow, checked on the wire (RFC 5626 §4.4, §4.5; RFC 3581).

The test is the registrar: a TCP listening socket of its own (raw bytes, tests/wire.py
parsing) or a UDP one; siplink registers in-process (``UserAgent.register``).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from siplink.ua.useragent import Account, UserAgent
from tests.wire import HOST, SipPeer, frame, parse, response

pytestmark = pytest.mark.timeout(60)


def sleep(seconds: float) -> Any:
    return task.deferLater(reactor, seconds, lambda: None)


class TcpRegistrar:
    """Accepts connections one after the other; reads what comes, answers REGISTER 200."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conn: socket.socket | None = None
        self.buf = bytearray()

    def accept(self, timeout: float = 10) -> None:
        self.sock.settimeout(timeout)
        self.conn, _ = self.sock.accept()
        self.buf.clear()

    def read(self, want: bytes | None = None, timeout: float = 10) -> Any:
        """The next SIP message, or (``want``) until those raw bytes arrive."""
        assert self.conn is not None
        self.conn.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if want is not None and want in self.buf:
                del self.buf[:self.buf.index(want) + len(want)]
                return want
            if want is None:
                while self.buf[:2] == b"\r\n":
                    del self.buf[:2]
                data = frame(self.buf)
                if data is not None:
                    return parse(data)
            chunk = self.conn.recv(4096)
            if not chunk:
                raise AssertionError("connection closed by siplink")
            self.buf += chunk
        raise AssertionError(f"nothing within {timeout}s (buffered {bytes(self.buf)[:80]!r})")

    def answer(self, req: Any) -> None:
        assert self.conn is not None
        self.conn.sendall(response(req, 200, headers=[("Contact", req["contact"])]))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.sock.close()


@pytest_twisted.ensureDeferred
async def test_tcp_flow_gets_crlf_pings_and_a_lost_flow_registers_again() -> None:
    """RFC 5626 §4.4.1: on a connection-oriented flow the keep-alive is a double-CRLF ping
    (the server answers a single CRLF pong, which must not disturb the stream); §4.5: when
    the flow fails (the connection closes) the UA registers again over a new flow."""
    reg_srv = TcpRegistrar()
    ua = UserAgent(reactor, host=HOST, user="alice")
    ua.listen(("udp", "tcp"))
    acc = Account("alice", HOST, proxy=f"{HOST}:{reg_srv.port}", transport="tcp",
                  keepalive_s=0.3, expires=600)
    try:
        reg = ua.register(acc)
        d = defer.ensureDeferred(reg.register())
        await threads.deferToThread(reg_srv.accept)
        req = await threads.deferToThread(reg_srv.read)
        assert req.method == "REGISTER" and "transport=tcp" in req["contact"], req.text()
        reg_srv.answer(req)
        await d
        await threads.deferToThread(reg_srv.read, b"\r\n\r\n")       # the ping
        reg_srv.conn.sendall(b"\r\n")                                 # our pong
        await threads.deferToThread(reg_srv.read, b"\r\n\r\n")       # pings go on
        first_cseq = req.cseq[0]
        reg_srv.conn.close()                                          # the flow dies
        await threads.deferToThread(reg_srv.accept)                   # a new connection
        again = await threads.deferToThread(reg_srv.read)
        assert again.method == "REGISTER" and again.call_id == req.call_id, again.text()
        assert again.cseq[0] > first_cseq, again.text()
        reg_srv.answer(again)
        await sleep(0.3)
        assert reg.flow_failures == 1 and reg.state.value == "registered"
    finally:
        ua.close()
        reg_srv.close()
        await sleep(0.1)


@pytest_twisted.ensureDeferred
async def test_udp_contact_rewritten_to_the_address_the_registrar_saw() -> None:
    """RFC 3581 §4: the registrar puts the source it saw in our Via (``received``,
    ``rport``); when that is not our Contact (we are behind a NAT), the binding moves to it:
    the next REGISTER carries the public Contact and removes the private one
    (``expires=0``), same Call-ID, next CSeq.  UDP keep-alives are single CRLFs."""
    ua = UserAgent(reactor, host=HOST, user="alice")
    ua.listen()
    with SipPeer("udp") as registrar:
        acc = Account("alice", HOST, proxy=f"{HOST}:{registrar.port}", keepalive_s=0.3)
        try:
            reg = ua.register(acc)
            d = defer.ensureDeferred(reg.register())
            req = await threads.deferToThread(registrar.request_in, "REGISTER")
            via = req["via"].split(";rport")[0] + ";rport=40000;received=192.0.2.77" + \
                req["via"].split(";rport", 1)[1]
            raw = response(req, 200, headers=[("Contact", req["contact"])]).replace(
                req["via"].encode(), via.encode(), 1)
            registrar.send(raw, req.source)
            again = await threads.deferToThread(registrar.request_in, "REGISTER")
            contacts = again.all("contact")
            assert any("192.0.2.77:40000" in c and "expires=" in c
                       and "expires=0" not in c for c in contacts), again.text()
            assert any(f"{HOST}:" in c and "expires=0" in c for c in contacts), again.text()
            assert again.call_id == req.call_id and again.cseq[0] == req.cseq[0] + 1
            registrar.reply(again, 200, headers=[("Contact", contacts[0])])
            await d
            assert reg.rewritten and "192.0.2.77:40000" in reg.contact
            data, _ = await threads.deferToThread(registrar.sock.recvfrom, 100)
            assert data == b"\r\n", data
        finally:
            ua.close()
            await sleep(0.1)


@pytest_twisted.ensureDeferred
async def test_outbound_udp_flow_uses_stun_keepalives() -> None:
    """RFC 5626 §4.2: with outbound the Contact has ``+sip.instance`` (a URN) and
    ``reg-id``, and the REGISTER ``Supported: outbound``; §4.4.1: on UDP the keep-alive is a
    STUN Binding request (RFC 8489) on the flow; when its XOR-MAPPED-ADDRESS changes (the NAT
    gave a new binding) the UA registers again; §4.4.2: when a Binding goes unanswered, the
    flow has failed and the UA registers again too."""
    from ice import stun

    ua = UserAgent(reactor, host=HOST, user="alice")
    ua.listen()
    with SipPeer("udp") as registrar:
        acc = Account("alice", HOST, proxy=f"{HOST}:{registrar.port}", keepalive_s=0.3,
                      outbound=True, contact_rewrite=False)
        try:
            reg = ua.register(acc)
            d = defer.ensureDeferred(reg.register())
            req = await threads.deferToThread(registrar.request_in, "REGISTER")
            contact = req["contact"]
            assert '+sip.instance="<urn:uuid:' in contact and "reg-id=1" in contact, contact
            assert "outbound" in req.tokens("supported"), req.text()
            registrar.reply(req, 200, headers=[("Contact", contact)])
            await d

            def stun_request() -> tuple[Any, Any]:
                registrar.sock.settimeout(5)
                while True:
                    data, src = registrar.sock.recvfrom(2048)
                    if stun.is_stun(data):
                        return stun.decode(data), src

            for mapped in (("192.0.2.77", 40000), ("192.0.2.77", 40000), ("192.0.2.77", 40001)):
                msg, src = await threads.deferToThread(stun_request)
                assert (msg.method, msg.cls) == (stun.Method.BINDING, stun.Class.REQUEST)
                ok = stun.Message(stun.Method.BINDING, stun.Class.SUCCESS, msg.transaction_id)
                ok[stun.Attr.XOR_MAPPED_ADDRESS] = mapped
                registrar.sock.sendto(stun.encode(ok), src)
            again = await threads.deferToThread(registrar.request_in, "REGISTER")  # moved
            assert again.call_id == req.call_id and again.cseq[0] > req.cseq[0]
            registrar.reply(again, 200, headers=[("Contact", again["contact"])])
            await sleep(0.2)
            assert reg.stun_answers == 3 and reg.flow_failures == 1
            # now stop answering STUN: the flow is declared failed, REGISTER comes again
            third = await threads.deferToThread(registrar.request_in, "REGISTER", timeout=6)
            assert third.cseq[0] > again.cseq[0]
            registrar.reply(third, 200, headers=[("Contact", third["contact"])])
            await sleep(0.2)
            assert reg.flow_failures == 2
        finally:
            ua.close()
            await sleep(0.1)
