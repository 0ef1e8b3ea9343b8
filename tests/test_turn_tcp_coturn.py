"""TURN over TCP and TLS against coturn on loopback (RFC 8656 §3.1): allocate, refresh,
permission, channel and data both ways on the stream; the TLS certificate is verified against
the configured host (a test CA made here); ``siplink turn --transport``/``turns:``; and two
ICE agents whose only path is a relay reached over TCP or TLS."""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from ice.agent import Agent
from ice.candidate import CandidateType
from ice.drivers.agent import TwistedAgent
from ice.drivers.turn import TurnError
from ice.drivers.turn_stream import TurnStreamClient
from ice.gathering import TurnServer
from ice.turn import Allocation, DataReceived, PermissionCreated
from tests.peers.coturn import PASSWORD, REALM, USER, Coturn
from tests.peers.tls_ca import TestCa
from tests.test_ice_interop import exchange, wait_for
from tests.test_turn_coturn import EchoPeer, _listen, _timeout

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def certs():
    with tempfile.TemporaryDirectory(prefix="siplink-turn-ca-") as d:
        ca = TestCa(Path(d))
        good = ca.issue("turn", ["127.0.0.1", "turn.test"])
        other = ca.issue("other", ["turn.other.test"])       # trusted, but another name
        yield ca, good, other


@pytest.fixture(scope="module")
def coturn(certs):
    _ca, good, _other = certs
    server = Coturn(tls_cert=good)
    server.start()
    yield server
    server.stop()


def client(coturn: Coturn, transport: str, ca: TestCa, **kw) -> TurnStreamClient:
    port = coturn.tls_port if transport == "tls" else coturn.port
    return TurnStreamClient(Allocation((coturn.ip, port), USER, PASSWORD, transport=transport),
                            reactor, tls_ca=str(ca.path), **kw)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest_twisted.ensureDeferred
async def test_allocate_refresh_release(coturn, certs, transport):
    proto = client(coturn, transport, certs[0])
    try:
        local = await _timeout(proto.connect())
        ok = await _timeout(proto.allocate())
        # the server saw the allocation come from our TCP connection's address
        assert ok.mapped == local
        assert ok.relayed[0] == "127.0.0.1"
        assert coturn.relay_min <= ok.relayed[1] <= coturn.relay_max
        assert ok.lifetime == 600 and proto.allocation.realm == REALM
        refreshed = await _timeout(proto.refresh(lifetime=900))
        assert refreshed.lifetime == 900
        await _timeout(proto.release())
        assert proto.allocation.state.value == "released"
        # coturn took the allocation on a stream connection from our TCP address
        coturn.process.wait_for(rf"tcp or tls connected to: {local[0]}:{local[1]}\b",
                                timeout=5)
        coturn.process.wait_for(r"refreshed, realm=<lab\.test>, username=<alice>, lifetime=900",
                                timeout=5)
    finally:
        await proto.close()


async def _roundtrip(coturn, ca, transport: str, use_channel: bool) -> None:
    peer = EchoPeer()
    peer_port, peer_addr = _listen(peer)
    proto = client(coturn, transport, ca)
    try:
        await _timeout(proto.connect())
        ok = await _timeout(proto.allocate())
        if use_channel:
            bound = await _timeout(proto.bind_channel(peer_addr))
            assert 0x4000 <= bound.channel <= 0x4FFF
        else:
            created = await _timeout(proto.create_permission(peer_addr))
            assert created == PermissionCreated("127.0.0.1")
        # odd lengths: the ChannelData on the stream needs padding both ways (RFC 8656 §12.5)
        for payload in (b"hello through the relay!", b"odd", b"x" * 1001):
            arrived = peer.next()
            reply = proto.receive_from(peer_addr)
            proto.send_to(peer_addr, payload)
            data, source = await _timeout(arrived)
            assert data == payload
            assert source == ok.relayed          # the peer sees the relay, over UDP
            event = await _timeout(reply)
            assert isinstance(event, DataReceived)
            assert event.peer == peer_addr and event.data == b"echo:" + payload
            assert (event.channel is not None) == use_channel
        await _timeout(proto.release())
    finally:
        await proto.close()
        await peer_port.stopListening()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("use_channel", [False, True], ids=["permission", "channel"])
@pytest_twisted.ensureDeferred
async def test_data_round_trip(coturn, certs, transport, use_channel):
    await _roundtrip(coturn, certs[0], transport, use_channel)


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_a_clear_401_over_tls(coturn, certs):
    proto = TurnStreamClient(Allocation((coturn.ip, coturn.tls_port), USER, "nope",
                                        transport="tls"), reactor, tls_ca=str(certs[0].path))
    try:
        await _timeout(proto.connect())
        with pytest.raises(TurnError) as info:
            await _timeout(proto.allocate())
    finally:
        await proto.close()
    assert info.value.code == 401 and "wrong username or password" in info.value.reason


# ---- certificate checks --------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_untrusted_certificate_is_refused(coturn):
    """No CA configured: the test CA is not in the system store, so the handshake fails."""
    proto = TurnStreamClient(Allocation((coturn.ip, coturn.tls_port), USER, PASSWORD,
                                        transport="tls"), reactor)
    with pytest.raises(TurnError) as info:
        await _timeout(proto.connect())
    await proto.close()
    assert info.value.during == "connect"
    assert "TLS handshake with TURN server 127.0.0.1:" in info.value.reason
    assert "not trusted" in info.value.reason or "verify failed" in info.value.reason
    assert proto.allocation.state.value != "allocated"


@pytest.fixture(scope="module")
def coturn_other_name(certs):
    _ca, _good, other = certs
    server = Coturn(tls_cert=other)
    server.start()
    yield server
    server.stop()


@pytest_twisted.ensureDeferred
async def test_certificate_for_another_name_is_refused(coturn_other_name, certs):
    """Trusted CA, but the certificate names turn.other.test, not 127.0.0.1: refused, and
    no TURN request ever reached the server."""
    server = coturn_other_name
    proto = TurnStreamClient(Allocation((server.ip, server.tls_port), USER, PASSWORD,
                                        transport="tls"), reactor, tls_ca=str(certs[0].path))
    allocate = proto.allocate()          # queued until the connection is verified
    with pytest.raises(TurnError) as info:
        await _timeout(proto.connect())
    with pytest.raises(TurnError):
        await _timeout(allocate)
    await proto.close()
    assert "certificate name mismatch" in info.value.reason
    assert "'127.0.0.1'" in info.value.reason
    assert "ALLOCATE processed" not in server.log()


# ---- the command line -----------------------------------------------------------------------

def siplink(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siplink", *argv], capture_output=True,
                          text=True, timeout=timeout)


class _UdpEcho:
    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.received: list[bytes] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self.received.append(data)
            self.sock.sendto(b"pong:" + data, addr)

    def close(self) -> None:
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.mark.parametrize("how", ["tcp-uri", "tcp-flag", "tls-uri", "tls-flag"])
def test_cli_turn_over_tcp_and_tls(coturn, certs, how):
    ca = str(certs[0].path)
    server = {
        "tcp-uri": [f"turn:127.0.0.1:{coturn.port}?transport=tcp"],
        "tcp-flag": [f"127.0.0.1:{coturn.port}", "--transport", "tcp"],
        "tls-uri": [f"turns:127.0.0.1:{coturn.tls_port}", "--tls-ca", ca],
        "tls-flag": [f"127.0.0.1:{coturn.tls_port}", "--transport", "tls", "--tls-ca", ca],
    }[how]
    peer = _UdpEcho()
    try:
        r = siplink("turn", *server, "-u", USER, "-w", PASSWORD, "--channel",
                    "--peer", f"127.0.0.1:{peer.addr[1]}", "--expect-reply")
    finally:
        peer.close()
    assert r.returncode == 0, r.stdout + r.stderr
    transport = how.split("-")[0].upper()
    assert f"connected over {transport} from 127.0.0.1:" in r.stdout
    assert "relayed address: 127.0.0.1:" in r.stdout
    assert f"reply from 127.0.0.1:{peer.addr[1]}: 22 bytes b'pong:siplink turn test'" in r.stdout
    assert peer.received == [b"siplink turn test"]
    assert r.stdout.splitlines()[-1] == "released"


def test_cli_tls_name_mismatch_is_a_clear_error(coturn_other_name, certs):
    r = siplink("turn", f"turns:127.0.0.1:{coturn_other_name.tls_port}", "-u", USER,
                "-w", PASSWORD, "--tls-ca", str(certs[0].path))
    assert r.returncode == 1
    assert "certificate name mismatch" in r.stderr and "'127.0.0.1'" in r.stderr
    assert "relayed address" not in r.stdout


def test_cli_refused_connection_is_a_clear_error():
    from tests.peers.process import free_port

    port = free_port("127.0.0.1")          # nobody listens there
    r = siplink("turn", f"turn:127.0.0.1:{port}?transport=tcp", "-u", "a", "-w", "b")
    assert r.returncode == 1
    assert f"cannot connect to TURN server 127.0.0.1:{port} over TCP" in r.stderr


@pytest.mark.parametrize(("argv", "words"), [
    (["turns:127.0.0.1", "--transport", "udp"], "contradicts"),
    (["turn:127.0.0.1?transport=tcp", "--tls-ca", "ca.pem"], "--tls-ca is for TLS"),
    (["turns:127.0.0.1?transport=udp"], "DTLS"),
])
def test_cli_bad_transport_is_a_usage_error(argv, words):
    r = siplink("turn", *argv, "-u", "a", "-w", "b")
    assert r.returncode == 2 and words in r.stderr, r.stderr


def test_cli_unreadable_ca_file_is_a_clear_error(coturn):
    r = siplink("turn", f"turns:127.0.0.1:{coturn.tls_port}", "-u", USER, "-w", PASSWORD,
                "--tls-ca", "/nonexistent/ca.pem")
    assert r.returncode == 1
    assert "cannot read TLS CA file /nonexistent/ca.pem" in r.stderr


# ---- the ICE agent: relayed candidates over TCP and TLS ------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest_twisted.ensureDeferred
async def test_relay_only_agent_over_stream(coturn, certs, transport):
    port = coturn.tls_port if transport == "tls" else coturn.port
    cfg = [TurnServer(coturn.ip, port, USER, PASSWORD, transport, str(certs[0].path))]
    got: list[bytes] = []
    a = TwistedAgent(Agent(True, policy="relay", turn_servers=cfg, rng=random.Random(3)),
                     on_data=lambda s, c, d, r: got.append(d))
    got_b: list[bytes] = []
    b = TwistedAgent(Agent(False, local_addresses=["127.0.0.2"], rng=random.Random(4)),
                     on_data=lambda s, c, d, r: got_b.append(d))
    try:
        await _timeout(defer.gatherResults([a.gather(), b.gather()]))
        cands = a.agent.local_candidates(0)
        assert cands and all(c.type is CandidateType.RELAYED for c in cands)
        exchange(a, b)
        await _timeout(defer.gatherResults([a.start(), b.start()]), 10)
        sel = a.agent.selected_pair(0, 1)
        assert sel.local.type is CandidateType.RELAYED
        assert b.agent.selected_pair(0, 1).remote_addr == sel.local_base
        for i in range(3):
            assert b.send(0, 1, b"\x80to-relay-%d" % i)
            assert a.send(0, 1, b"\x80from-relay-%d" % i)
        await wait_for(lambda: len(got) == 3 and len(got_b) == 3)
        assert got == [b"\x80to-relay-%d" % i for i in range(3)]
        assert got_b == [b"\x80from-relay-%d" % i for i in range(3)]
        # the allocation really ran on a stream: no UDP datagram of A went to the server
        streams = list(a._relay_streams.streams.values())
        assert len(streams) == 1 and streams[0].connected
    finally:
        await defer.gatherResults([a.close(), b.close()])
    assert a.agent.released


@pytest_twisted.ensureDeferred
async def test_agent_with_mismatched_certificate_reports_gathering_failure(coturn_other_name,
                                                                           certs):
    from ice.events import GatheringFailed

    server = coturn_other_name
    cfg = [TurnServer(server.ip, server.tls_port, USER, PASSWORD, "tls", str(certs[0].path))]
    a = TwistedAgent(Agent(True, policy="relay", turn_servers=cfg, rng=random.Random(5)))
    try:
        await _timeout(a.gather())
        failed = [e for _, e in a.events if isinstance(e, GatheringFailed)]
        assert failed and "certificate name mismatch" in failed[0].reason
        assert a.agent.local_candidates(0) == []
    finally:
        await a.close()
