"""``siplink stun`` and ``siplink turn`` as a user runs them (subprocess), against coturn and
against a scripted bad server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from ice.stun import Attr, Class, Message, decode, encode
from tests.peers.coturn import PASSWORD, USER, Coturn

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def coturn():
    server = Coturn()
    server.start()
    yield server
    server.stop()


def siplink(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siplink", *argv], capture_output=True,
                          text=True, timeout=timeout)


class UdpResponder:
    """A loopback UDP socket answering each datagram with ``answer(data) -> bytes|None``."""

    def __init__(self, answer) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.answer = answer
        self.received: list[bytes] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            self.received.append(data)
            out = self.answer(data)
            if out is not None:
                self.sock.sendto(out, addr)

    def __enter__(self) -> UdpResponder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def test_stun_prints_mapped_address(coturn):
    r = siplink("stun", f"127.0.0.1:{coturn.port}")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith("mapped address: 127.0.0.1:")
    assert 0 < int(line.rsplit(":", 1)[1]) < 65536


def test_stun_timeout_exit_3():
    with UdpResponder(lambda data: None) as silent:
        r = siplink("stun", f"127.0.0.1:{silent.addr[1]}", "--timeout", "1.2")
        assert len(silent.received) >= 2        # sent and retransmitted (at 0 and 0.5 s)
    assert r.returncode == 3
    assert "no answer from 127.0.0.1" in r.stderr


def test_stun_bad_reply_exit_1():
    def answer(data: bytes) -> bytes:
        req = decode(data)
        # a success response without any mapped address
        return encode(Message(req.method, Class.SUCCESS, req.transaction_id,
                              {Attr.SOFTWARE: "broken"}))

    with UdpResponder(answer) as bad:
        r = siplink("stun", f"127.0.0.1:{bad.addr[1]}", "--timeout", "3")
    assert r.returncode == 1
    assert "bad reply" in r.stderr and "mapped address" in r.stderr


def test_stun_malformed_reply_exit_1():
    def answer(data: bytes) -> bytes:
        # right header and transaction id, truncated attribute
        return data[:2].replace(b"\x00\x01", b"\x01\x01") + b"\x00\x04" + data[4:20] + \
            b"\x00\x20\x00\x08"

    with UdpResponder(answer) as bad:
        r = siplink("stun", f"127.0.0.1:{bad.addr[1]}", "--timeout", "3")
    assert r.returncode == 1
    assert "malformed reply" in r.stderr


def test_stun_usage_errors():
    assert siplink("stun", "127.0.0.1:notaport").returncode == 2
    assert siplink("stun", "[::1").returncode == 2


def test_turn_allocate_refresh_release(coturn):
    r = siplink("turn", f"127.0.0.1:{coturn.port}", "--user", USER, "--password", PASSWORD)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    relayed = out[0].split(": ")[1]
    host, port = relayed.rsplit(":", 1)
    assert host == "127.0.0.1" and coturn.relay_min <= int(port) <= coturn.relay_max
    assert out[1].startswith("mapped address: 127.0.0.1:")
    assert out[2] == "lifetime: 600 s"
    assert out[3] == "refreshed: lifetime 600 s"
    assert out[-1] == "released"


@pytest.mark.parametrize("channel", [False, True])
def test_turn_peer_datagram_and_reply(coturn, channel):
    with UdpResponder(lambda data: b"pong:" + data) as peer:
        args = ["turn", f"127.0.0.1:{coturn.port}", "-u", USER, "-w", PASSWORD,
                "--peer", f"127.0.0.1:{peer.addr[1]}", "--expect-reply"]
        r = siplink(*args, *(["--channel"] if channel else []))
        assert peer.received == [b"siplink turn test"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"sent 17 bytes to 127.0.0.1:{peer.addr[1]}" in r.stdout
    assert "(ChannelData)" in r.stdout if channel else "(Send indication)" in r.stdout
    assert f"reply from 127.0.0.1:{peer.addr[1]}: 22 bytes b'pong:siplink turn test'" in r.stdout


def test_turn_wrong_password_exit_1(coturn):
    r = siplink("turn", f"127.0.0.1:{coturn.port}", "--user", USER, "--password", "nope")
    assert r.returncode == 1
    assert "allocate failed: 401" in r.stderr
    assert "wrong username or password" in r.stderr
    assert "relayed address" not in r.stdout


def test_turn_timeout_exit_3():
    with UdpResponder(lambda data: None) as silent:
        r = siplink("turn", f"127.0.0.1:{silent.addr[1]}", "-u", "a", "-w", "b",
                    "--timeout", "1")
    assert r.returncode == 3
    assert "no answer" in r.stderr


def test_turn_bad_reply_exit_1():
    def answer(data: bytes) -> bytes:
        req = decode(data)
        return encode(Message(req.method, Class.SUCCESS, req.transaction_id,
                              {Attr.LIFETIME: 600}))  # no XOR-RELAYED-ADDRESS

    with UdpResponder(answer) as bad:
        r = siplink("turn", f"127.0.0.1:{bad.addr[1]}", "-u", "a", "-w", "b")
    assert r.returncode == 1
    assert "bad reply" in r.stderr


def test_turn_needs_credentials():
    r = siplink("turn", "127.0.0.1:3478")
    assert r.returncode == 2
    assert "--user" in r.stderr


@pytest.fixture(scope="module")
def coturn6():
    server = Coturn(ipv6=True)
    server.start()
    yield server
    server.stop()


def test_ipv6_stun_and_turn(coturn6):
    r = siplink("stun", f"[::1]:{coturn6.port}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("mapped address: [::1]:")
    r = siplink("turn", f"[::1]:{coturn6.port}", "-u", USER, "-w", PASSWORD, "--family", "6")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("relayed address: [::1]:")
    assert "mapped address: [::1]:" in r.stdout and r.stdout.endswith("released\n")


def test_servers_and_credentials_from_the_configuration(coturn, tmp_path):
    conf = tmp_path / "siplink.toml"
    conf.write_text(
        "[ice]\n"
        f'stun_servers = ["127.0.0.1:{coturn.port}"]\n'
        "[[ice.turn_servers]]\n"
        f'uri = "turn:127.0.0.1:{coturn.port}?transport=udp"\n'
        f'username = "{USER}"\npassword = "{PASSWORD}"\n')
    r = siplink("--config", str(conf), "stun")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("mapped address: 127.0.0.1:")
    r = siplink("--config", str(conf), "turn")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("relayed address: 127.0.0.1:")
    # a flag overrides the configuration
    r = siplink("--config", str(conf), "turn", "--password", "wrong")
    assert r.returncode == 1 and "401" in r.stderr


def test_no_server_anywhere_is_usage_error(tmp_path):
    conf = tmp_path / "empty.toml"
    conf.write_text("")
    r = siplink("--config", str(conf), "stun")
    assert r.returncode == 2 and "no server given" in r.stderr
    r = siplink("--config", str(conf), "turn")
    assert r.returncode == 2 and "no server given" in r.stderr
