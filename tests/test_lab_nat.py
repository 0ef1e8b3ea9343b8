"""The NAT lab (tests/peers/natlab.py) proven with real packets, without siplink.

A UDP echo server in the public namespace reports the source address it sees; clients in the
site hosts show what each kernel NAT does to their mappings. coturn answers STUN from behind
the NATs and relays for the firewalled site. Every namespace is gone afterwards, also when the
test body fails or the test process is killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.natlab import (
    PUBLIC_IP,
    PUBLIC_IP2,
    SIP_PORT,
    NatLab,
    SiteSpec,
    UdpEcho,
    natlab,
    stun_binding,
)
from tests.peers.netns import list_namespaces, sweep_stale
from tests.peers.process import require_binary

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(60)]


@pytest.fixture
def lab() -> Iterator[NatLab]:
    yield from natlab("eim", "apdm")


def _echo_roundtrip(sock: socket.socket, dest: tuple[str, int], timeout: float = 1.0) -> str:
    sock.settimeout(timeout)
    sock.sendto(b"ping", dest)
    data, src = sock.recvfrom(2048)
    assert src == dest
    return data.decode()


def _wait_received(echo: UdpEcho, n: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while len(echo.received) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_eim_site_keeps_its_public_port_for_every_destination(lab: NatLab) -> None:
    e1, e2 = lab.echo(PUBLIC_IP, 7000), lab.echo(PUBLIC_IP2, 7001)
    s = lab.a.host.socket()
    s.bind((lab.a.host_ip, 40000))
    seen1 = _echo_roundtrip(s, (PUBLIC_IP, 7000))
    seen2 = _echo_roundtrip(s, (PUBLIC_IP2, 7001))
    # The public side sees the NAT's WAN address, never the private one, with the port kept.
    assert e1.sources == e2.sources == {(lab.a.wan_ip, 40000)}
    assert seen1.startswith(f"{lab.a.wan_ip} 40000 ") and seen2.startswith(f"{lab.a.wan_ip} 40000 ")


def test_eim_mapping_survives_an_unsolicited_packet_arriving_first(lab: NatLab) -> None:
    """An ICE check from the far side can reach the NAT before the site's own first packet.
    The NAT drops it without creating a conntrack entry, so the later outgoing flow still
    keeps its port (otherwise MASQUERADE would pick another port: a surprise prflx)."""
    echo = lab.echo(PUBLIC_IP, 7000)
    for _ in range(3):
        echo.sock.sendto(b"early", (lab.a.wan_ip, 44000))
    time.sleep(0.05)
    s = lab.a.host.socket()
    s.bind((lab.a.host_ip, 44000))
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.recvfrom(2048)  # the unsolicited packets never reached the host
    _echo_roundtrip(s, (PUBLIC_IP, 7000))
    assert echo.sources == {(lab.a.wan_ip, 44000)}
    # After the host's packet the same public peer can reach it: filtering is per destination.
    echo.sock.sendto(b"late", (lab.a.wan_ip, 44000))
    assert s.recvfrom(2048) == (b"late", (PUBLIC_IP, 7000))


def test_apdm_site_gets_a_new_public_port_per_destination(lab: NatLab) -> None:
    dests = [(PUBLIC_IP, 7000), (PUBLIC_IP, 7001), (PUBLIC_IP2, 7000)]
    echoes = [lab.echo(ip, port) for ip, port in dests]
    s = lab.b.host.socket()
    s.bind((lab.b.host_ip, 40000))
    for d in dests:
        _echo_roundtrip(s, d)
        _echo_roundtrip(s, d)  # the same destination keeps its mapping
    mappings = [e.sources for e in echoes]
    assert all(len(m) == 1 for m in mappings), mappings
    ports = [next(iter(m))[1] for m in mappings]
    assert {next(iter(m))[0] for m in mappings} == {lab.b.wan_ip}
    assert len(set(ports)) == 3, f"APDM reused a mapping across destinations: {ports}"


def test_stun_binding_through_each_nat_returns_the_mapped_address(lab: NatLab) -> None:
    assert lab.turn is not None
    sa = lab.a.host.socket()
    sa.bind((lab.a.host_ip, 41000))
    assert stun_binding(sa, lab.turn.addr) == (lab.a.wan_ip, 41000)
    sb = lab.b.host.socket()
    sb.bind((lab.b.host_ip, 41000))
    ip, port = stun_binding(sb, lab.turn.addr)
    assert ip == lab.b.wan_ip
    # An independent client (coturn's own) agrees on the address.
    out = lab.b.host.run([require_binary("turnutils_stunclient"), "-p", str(lab.turn.port),
                          PUBLIC_IP]).stdout
    assert f"UDP reflexive addr: {lab.b.wan_ip}:" in out, out


def test_firewalled_site_reaches_turn_and_sip_but_no_other_udp_port() -> None:
    with NatLab("udp-blocked-except-turn", SiteSpec("udp-blocked-except-turn", sip_udp=False)) as lab:
        assert lab.turn is not None
        blocked, sip = lab.echo(PUBLIC_IP, 7000), lab.echo(PUBLIC_IP, SIP_PORT)
        for site in (lab.a, lab.b):
            s = site.host.socket()
            s.bind((site.host_ip, 42000))
            assert stun_binding(s, lab.turn.addr) == (site.wan_ip, 42000)
            for _ in range(5):
                s.sendto(b"x", (PUBLIC_IP, 7000))
                s.sendto(b"sip", (PUBLIC_IP, SIP_PORT))
        _wait_received(sip, 5)
        time.sleep(0.2)
        assert blocked.received == []
        # Site a lets signalling out on the SIP port; site b (sip_udp=False) does not.
        assert sip.sources == {(lab.a.wan_ip, 42000)}
        assert len(sip.received) == 5


def test_firewalled_site_relays_through_turn() -> None:
    """A real TURN client behind the firewall: allocation, permission, channel, data both ways."""
    uclient, peer = require_binary("turnutils_uclient"), require_binary("turnutils_peer")
    with NatLab("udp-blocked-except-turn", "eim") as lab:
        lab.public2.peer([peer, "-L", PUBLIC_IP2, "-p", "3480"], name="turnutils_peer").start()
        time.sleep(0.2)
        res = lab.a.host.run([uclient, "-c", "-u", "alice", "-w", "secret", "-e", PUBLIC_IP2,
                              "-r", "3480", "-n", "10", "-m", "1", PUBLIC_IP], timeout=30)
        assert "tot_send_msgs=10, tot_recv_msgs=10" in res.stdout, res.stdout[-2000:]
        assert "Total lost packets 0 " in res.stdout
        assert lab.turn is not None
        assert "CREATE_PERMISSION processed, success" in lab.turn.log()


def test_loss_drops_a_measurable_fraction(lab: NatLab) -> None:
    n, p = 600, 0.2
    echo = lab.echo(PUBLIC_IP, 7000)
    s = lab.a.host.socket()
    s.bind((lab.a.host_ip, 43000))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def burst(count: int) -> tuple[int, int]:
        echo.received.clear()
        for i in range(count):
            s.sendto(b"%d" % i, (PUBLIC_IP, 7000))
            if i % 50 == 49:
                time.sleep(0.005)
        time.sleep(0.3)
        replies = 0
        s.settimeout(0.05)
        try:
            while True:
                s.recvfrom(2048)
                replies += 1
        except TimeoutError:
            pass
        return len(echo.received), replies

    assert burst(50) == (50, 50)  # no loss configured: everything arrives
    lab.set_loss("a", p)
    up, back = burst(n)
    # One way (1-p) = 0.8, round trip (1-p)^2 = 0.64; bounds are > 5 sigma wide.
    assert 0.70 * n < up < 0.90 * n, up
    assert 0.53 * n < back < 0.75 * n, back
    lab.set_loss("a", 0)
    assert burst(50) == (50, 50)


@pytest.mark.parametrize("icmp", [False, True])
def test_other_sites_private_addresses_are_unreachable_silently_or_with_icmp(icmp: bool) -> None:
    with NatLab("eim", "eim", turn=False, icmp_unreachable=icmp) as lab:
        s = lab.a.host.socket()
        # Connected, with IP_RECVERR: even "soft" ICMP errors (net unreachable) reach recv.
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
        s.connect((lab.b.host_ip, 9))
        s.settimeout(0.3)
        s.send(b"to a private address behind another NAT")
        if icmp:
            with pytest.raises(OSError) as err:
                s.recv(100)
            assert not isinstance(err.value, TimeoutError)
        else:
            with pytest.raises(TimeoutError):
                s.recv(100)


# ---- cleanup ------------------------------------------------------------------------------

def test_namespaces_and_processes_are_gone_after_a_failing_body() -> None:
    with pytest.raises(ZeroDivisionError):
        with NatLab("eim", "apdm") as lab:
            names = lab.namespaces()
            assert lab.turn is not None
            turn_pid = lab.turn.process.pid
            assert len(names) == 6 and set(names) <= set(list_namespaces())
            1 / 0  # noqa: B018 - the forced failure
    assert not set(names) & set(list_namespaces())
    assert not Path(f"/proc/{turn_pid}").exists()


INNER_TEST = """
    import os, time
    from pathlib import Path
    from tests.peers.natlab import NatLab

    def test_inner():
        lab = NatLab("eim", "udp-blocked-except-turn").build()
        Path(os.environ["NAMES_FILE"]).write_text(" ".join(lab.namespaces()))
        if os.environ.get("HANG"):
            time.sleep(60)
        assert False, "forced failure"
"""


def _inner(tmp_path: Path, prefix: str | None, hang: bool) -> tuple[subprocess.Popen[bytes], Path]:
    test = tmp_path / "test_inner_lab.py"
    test.write_text(textwrap.dedent(INNER_TEST))
    names = tmp_path / "names"
    # TMPDIR: the peers' config dirs of a leaked or killed lab end up under tmp_path.
    env = dict(os.environ, NAMES_FILE=str(names), PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    env.pop("SIPLINK_NETNS_PREFIX", None)
    if prefix:
        env["SIPLINK_NETNS_PREFIX"] = prefix
    if hang:
        env["HANG"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-o", "addopts=", str(test)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, names


def test_a_failing_test_that_leaks_its_lab_is_swept_at_exit(tmp_path: Path) -> None:
    # The inner test never closes its lab and fails: the atexit sweeper of its run removes it.
    proc, names = _inner(tmp_path, f"slab-{os.getpid()}-inner{time.time_ns() % 10**6}-", False)
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 1, out.decode()
    assert b"forced failure" in out
    created = names.read_text().split()
    assert len(created) == 6
    assert not set(created) & set(list_namespaces())


def test_a_killed_run_is_swept_by_the_next_one(tmp_path: Path) -> None:
    proc, names = _inner(tmp_path, None, True)  # default prefix slab-<its pid>-
    try:
        deadline = time.monotonic() + 30
        while not (names.exists() and names.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0].decode()
            time.sleep(0.05)
        created = names.read_text().split()
        assert len(created) == 6
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # SIGKILL skips atexit: the namespaces (and coturn inside) are still there ...
    assert set(created) <= set(list_namespaces())
    # ... until the next run sweeps namespaces whose owner pid is dead.
    swept = sweep_stale()
    assert set(created) <= set(swept)
    assert not set(created) & set(list_namespaces())
