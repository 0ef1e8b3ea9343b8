"""tests/peers/netns.py: namespaces wired with veths, sockets and programs inside them, an
in-process Twisted endpoint per namespace, and complete removal afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor

from tests.peers.natlab import NatLab, SiteSpec
from tests.peers.netns import Lab, list_namespaces

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_veth_routes_sockets_and_programs_inside_namespaces() -> None:
    root = _netns_inode()
    with Lab() as lab:
        a, r, b = lab.namespace("a"), lab.namespace("r"), lab.namespace("b")
        lab.veth(a, "eth0", r, "ra", "192.0.2.10/24", "192.0.2.1/24")
        lab.veth(b, "eth0", r, "rb", "198.51.100.10/24", "198.51.100.1/24")
        a.route_add("default", via="192.0.2.1")
        b.route_add("default", via="198.51.100.1")
        r.sysctl("net.ipv4.ip_forward", "1")
        server = b.socket()
        server.bind(("198.51.100.10", 9000))
        server.settimeout(2)
        client = a.socket()
        client.sendto(b"routed", ("198.51.100.10", 9000))
        assert server.recvfrom(100) == (b"routed", ("192.0.2.10", client.getsockname()[1]))
        # A program inside sees only the namespace's interfaces, and runs there by PID.
        out = a.run(["ip", "-o", "-4", "addr", "show"]).stdout
        assert "192.0.2.10/24" in out and "198.51.100" not in out
        p = b.peer([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
                   ready="up", name="sleeper").start()
        assert b.pids() == [p.pid]
        names = [ns.name for ns in lab.namespaces]
        assert set(names) <= set(list_namespaces())
        # The root namespace never saw any of it.
        assert _netns_inode() == root
    assert not set(names) & set(list_namespaces())
    assert not Path(f"/proc/{p.pid}").exists()


class _Echo(protocol.DatagramProtocol):
    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        cast(Any, self.transport).write(b"echo:" + data, addr)


class _Client(protocol.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: defer.Deferred[tuple[bytes, tuple[str, int]]] = defer.Deferred()

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        if not self.reply.called:
            self.reply.callback((data, addr))


@pytest_twisted.inlineCallbacks
def test_twisted_endpoints_in_two_namespaces_share_one_reactor():
    """``entered()`` lets listenUDP bind in a namespace; the reactor serves both afterwards."""
    root = _netns_inode()
    lab = Lab()
    ports = []
    try:
        a, b = lab.namespace("ta"), lab.namespace("tb")
        lab.veth(a, "v0", b, "v1", "198.51.100.1/24", "198.51.100.2/24")
        with b.entered():
            assert _netns_inode() != root
            ports.append(reactor.listenUDP(5000, _Echo(), interface="198.51.100.2"))
        client = _Client()
        with a.entered():
            ports.append(reactor.listenUDP(0, client, interface="198.51.100.1"))
        assert _netns_inode() == root
        cast(Any, client.transport).write(b"hi", ("198.51.100.2", 5000))
        data, addr = yield client.reply.addTimeout(2, reactor)
        assert (data, addr) == (b"echo:hi", ("198.51.100.2", 5000))
    finally:
        for port in ports:
            yield port.stopListening()
        lab.close()


def _root_state() -> dict[str, str]:
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    return {
        "links": " ".join(sorted(line.split(":")[1].split("@")[0].strip()
                                 for line in run("ip", "-o", "link").splitlines())),
        "routes": run("ip", "route"),
        "iptables": run("iptables", "-S") + run("iptables", "-t", "nat", "-S"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
    }


def test_a_running_nat_lab_leaves_the_root_namespace_untouched() -> None:
    """No link, route, iptables rule or forwarding switch of the root namespace changes."""
    before = _root_state()
    with NatLab(SiteSpec("apdm", loss=0.1), "udp-blocked-except-turn") as lab:
        lab.start_proxy()
        during = _root_state()
    assert during == before
    assert _root_state() == before
