"""The NAT lab of issue 9: a public segment with coturn, two private sites behind kernel NATs.

Topology (all inside namespaces the lab creates and deletes; nothing routes out)::

    public ns  (bridge "pub": 203.0.113.1/24; coturn on 203.0.113.1:3478, SIP proxy room on
       |        203.0.113.1:5080, test servers)
       +-- veth -- public2 ns  eth0 203.0.113.2/24 (a second public host, other destination)
       +-- veth -- site a NAT ns  wan 203.0.113.10 | lan 192.0.2.1/24    -- host a 192.0.2.10
       +-- veth -- site b NAT ns  wan 203.0.113.20 | lan 198.51.100.1/24 -- host b 198.51.100.10

Hosts have a default route to their NAT (inside the lab only); NAT namespaces have
``ip_forward=1`` (their own sysctl). The NAT and public namespaces have a *blackhole* default
route: a packet to another site's private address is dropped silently, as on the internet
(``icmp_unreachable=True``: no default route instead, so the NAT answers with ICMP
net-unreachable, which sockets see with IP_RECVERR). Each NAT drops unsolicited UDP to its own
WAN address in INPUT, before conntrack confirms an entry (see Pitfalls). Site NAT behaviour
(iptables in the NAT namespace, interfaces ``wan``/``lan``):

- ``"eim"``: ``MASQUERADE`` - endpoint-independent mapping, source port preserved.
- ``"apdm"``: ``MASQUERADE --random-fully`` - address-and-port-dependent mapping: a new
  random public port per destination.
- ``"udp-blocked-except-turn"``: EIM NAT plus a FORWARD firewall that drops every UDP packet
  from the LAN except to coturn (203.0.113.1:3478) and, unless ``sip_udp=False``, to the public
  SIP port (203.0.113.1:5080) so signalling still works; replies are let in by conntrack.
- ``"udp-blocked"``: EIM NAT plus a FORWARD firewall that drops every UDP packet from the LAN
  (a corporate network: TCP only; SIP over TCP, TURN over TCP or TLS).
- ``loss=p``: ``-m statistic --mode random --probability p -j DROP`` on FORWARD for UDP, both
  directions through the NAT (so a round trip survives with (1-p)^2). ``lab.set_loss(site, p)``
  changes it while running. (No netem in this kernel: no delay.)

API::

    with NatLab(a="eim", b=SiteSpec("apdm", loss=0.1)) as lab:   # builds, starts coturn
        lab.public            # NetNs of the public side;  lab.public_ip == "203.0.113.1"
        lab.public2           # NetNs of a second public host, 203.0.113.2 (PUBLIC_IP2)
        lab.turn              # CoturnInNs (addr, uri, user/password alice/secret), or None;
                              # NatLab(turn_tls=True): also TURN over TLS on 203.0.113.1:5349
                              # with a certificate for that IP from lab.turn_ca (ca.pem path)
        lab.start_proxy()     # SipProxyInNs: Kamailio registrar/proxy on 203.0.113.1:5080 that
                              # handles NATed clients (received/rport, Contact fixing, RR)
        lab.a, lab.b          # Site: .host (NetNs), .nat (NetNs), .host_ip, .wan_ip, .spec
        s = lab.a.host.socket()                        # UDP socket in host a
        echo = lab.echo(PUBLIC_IP, 7000)               # UdpEcho in the public ns
        lab.a.host.peer([...], ready=...).start()      # a program in host a
        stun_binding(s, lab.turn.addr)                 # -> the NATed (ip, port) coturn sees

``natlab(...)`` is a fixture body (``yield from natlab("eim", "apdm")``). ``turn=False`` skips
coturn. Build takes about 0.2 s with coturn, close about 0.1 s (plus 0.4 s for Kamailio).

Pitfalls: the kernel's SIP ALG (nf_conntrack_sip) may rewrite SIP on port 5060 through a NAT:
keep SIP on 5080 (``SIP_PORT``) or another port. Linux conntrack filtering is always
address-and-port dependent: an unsolicited packet to a NAT's WAN address is never forwarded.
Without the INPUT drop, a peer's packet that reaches the NAT before the host's own first packet
(an ICE check racing the other side's) leaves a conntrack entry on the same tuple, and
MASQUERADE then gives the host's flow a different port: plain MASQUERADE is only
endpoint-independent while that race is avoided. APDM toward a *public* host still lets
peer-reflexive pairs work; relays become necessary between two NATed sites.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from tests.peers.netns import Lab, NetNs
from tests.peers.process import PeerProcess, require_binary
from tests.peers.turn_in_ns import TURN_PORT, CoturnInNs

log = logging.getLogger(__name__)

NatKind = Literal["eim", "apdm", "udp-blocked-except-turn", "udp-blocked"]
NAT_KINDS: tuple[str, ...] = ("eim", "apdm", "udp-blocked-except-turn", "udp-blocked")

PUBLIC_NET = "203.0.113.0/24"
PUBLIC_IP = "203.0.113.1"
PUBLIC_IP2 = "203.0.113.2"
SIP_PORT = 5080
PROXY_CONFIG = Path(__file__).resolve().parent.parent / "data" / "lab" / "kamailio-nat.cfg"
OUTBOUND_PROXY_CONFIG = PROXY_CONFIG.with_name("kamailio-outbound.cfg")   # RFC 5626 registrar
_SITES = {
    "a": {"wan": "203.0.113.10", "lan_net": "192.0.2", "lan_prefix": 24},
    "b": {"wan": "203.0.113.20", "lan_net": "198.51.100", "lan_prefix": 24},
}


@dataclass(frozen=True)
class SiteSpec:
    nat: NatKind = "eim"
    loss: float = 0.0
    sip_udp: bool = True  # udp-blocked-except-turn: also let UDP to the public SIP port out


@dataclass
class Site:
    name: str
    spec: SiteSpec
    nat: NetNs
    host: NetNs
    wan_ip: str
    lan_gw: str
    host_ip: str
    loss: float = 0.0

    @property
    def lan_cidr(self) -> str:
        return self.lan_gw.rsplit(".", 1)[0] + ".0/24"


@dataclass
class UdpEcho:
    """UDP server in a namespace: replies ``b"<ip> <port> "+payload`` and records sources."""

    sock: socket.socket
    received: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: bool = False

    @property
    def sources(self) -> set[tuple[str, int]]:
        return {addr for _, addr in self.received}

    def start(self) -> UdpEcho:
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="udp-echo")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append((data, addr))
            try:
                self.sock.sendto(f"{addr[0]} {addr[1]} ".encode() + data, addr)
            except OSError as exc:
                log.debug("echo reply to %s failed: %s", addr, exc)

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(2)
        self.sock.close()


def stun_binding(sock: socket.socket, server: tuple[str, int], timeout: float = 1.0,
                 tries: int = 3) -> tuple[str, int]:
    """Send a STUN Binding request (RFC 5389) on ``sock``; return XOR-MAPPED-ADDRESS."""
    tid = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
    old = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        for _ in range(tries):
            sock.sendto(request, server)
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                continue
            mtype, length, cookie = struct.unpack_from("!HHI", data)
            if mtype != 0x0101 or cookie != 0x2112A442 or data[8:20] != tid:
                continue
            pos = 20
            while pos + 4 <= 20 + length:
                atype, alen = struct.unpack_from("!HH", data, pos)
                value = data[pos + 4: pos + 4 + alen]
                if atype == 0x0020 and value[1] == 0x01:  # XOR-MAPPED-ADDRESS, IPv4
                    port = struct.unpack("!H", value[2:4])[0] ^ 0x2112
                    raw = struct.unpack("!I", value[4:8])[0] ^ 0x2112A442
                    return socket.inet_ntoa(struct.pack("!I", raw)), port
                pos += 4 + alen + (-alen % 4)
            raise AssertionError(f"STUN response without XOR-MAPPED-ADDRESS: {data.hex()}")
        raise TimeoutError(f"no STUN Binding response from {server}")
    finally:
        sock.settimeout(old)


class SipProxyInNs:
    """Kamailio (``tests/data/lab/kamailio-nat.cfg``: registrar + record-routing proxy that
    fixes NATed Contacts, no auth) on ``ip:port`` inside ``ns``. Stopped with the lab."""

    def __init__(self, ns: NetNs, ip: str = PUBLIC_IP, port: int = SIP_PORT,
                 config: Path | None = None) -> None:
        self.ns, self.ip, self.port = ns, ip, port
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-kamailio-ns-"))
        ns.cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text((config or PROXY_CONFIG).read_text().replace("__IP__", ip)
                       .replace("__PORT__", str(port)))
        self.process: PeerProcess = ns.peer(
            [require_binary("kamailio"), "-f", str(cfg), "-DD", "-E", "-Y", str(self.dir),
             "-P", str(self.dir / "kamailio.pid"), "-w", str(self.dir), "-m", "64", "-M", "8"],
            name="kamailio")

    @property
    def addr(self) -> tuple[str, int]:
        return (self.ip, self.port)

    def start(self, timeout: float = 15.0) -> SipProxyInNs:
        self.process.start()
        self.process.wait_for(r"SO_RCVBUF is finally", timeout=timeout)
        time.sleep(0.3)  # the worker processes bind after the banner
        return self

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()


class NatLab:
    """Builds the topology above on enter (or ``build()``), deletes it on exit (``close()``)."""

    def __init__(self, a: SiteSpec | NatKind = "eim", b: SiteSpec | NatKind = "eim", *,
                 turn: bool = True, icmp_unreachable: bool = False,
                 turn_tls: bool = False) -> None:
        self.specs = {"a": _spec(a), "b": _spec(b)}
        self.turn_tls = turn_tls
        self.turn_ca: Path | None = None    # with turn_tls: the CA that signed coturn's cert
        self.icmp_unreachable = icmp_unreachable
        self.with_turn = turn
        self.lab = Lab()
        self.sites: dict[str, Site] = {}
        self.turn: CoturnInNs | None = None
        self.proxy: SipProxyInNs | None = None
        self.public_ip = PUBLIC_IP
        self._echoes: list[UdpEcho] = []
        self._public: NetNs | None = None
        self._public2: NetNs | None = None

    @property
    def public(self) -> NetNs:
        assert self._public is not None, "lab not built"
        return self._public

    @property
    def public2(self) -> NetNs:
        """A second public host, 203.0.113.2 (on the same segment)."""
        assert self._public2 is not None, "lab not built"
        return self._public2

    @property
    def a(self) -> Site:
        return self.sites["a"]

    @property
    def b(self) -> Site:
        return self.sites["b"]

    def build(self) -> NatLab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        lab = self.lab
        pub = self._public = lab.namespace("pub")
        ports = []
        for name, spec in self.specs.items():
            conf = _SITES[name]
            nat = lab.namespace(f"nat{name}")
            host = lab.namespace(f"host{name}")
            lan_gw, host_ip = f"{conf['lan_net']}.1", f"{conf['lan_net']}.10"
            lab.veth(nat, "wan", pub, f"p{name}", f"{conf['wan']}/24")
            ports.append(f"p{name}")
            lab.veth(nat, "lan", host, "eth0", f"{lan_gw}/24", f"{host_ip}/24")
            host.route_add("default", via=lan_gw)
            nat.sysctl("net.ipv4.ip_forward", "1")
            site = Site(name, spec, nat, host, str(conf["wan"]), lan_gw, host_ip)
            self._configure_nat(site)
            self.sites[name] = site
        # A second public host (its own namespace, so agents in ``public`` see one address:
        # baresip offers every address of the namespace and answers from the primary one).
        pub2 = self._public2 = lab.namespace("pub2")
        lab.veth(pub2, "eth0", pub, "p2", f"{PUBLIC_IP2}/24")
        pub.bridge("pub", [*ports, "p2"], f"{PUBLIC_IP}/24")
        if not self.icmp_unreachable:
            # Like the internet, drop packets to other sites' private addresses silently
            # (a blackhole route discards without ICMP; nothing leaves the namespace).
            for ns in (pub, pub2, *(site.nat for site in self.sites.values())):
                ns.ip("route", "add", "blackhole", "default")
        if self.with_turn:
            cert = None
            if self.turn_tls:
                from tests.peers.tls_ca import TestCa

                ca_dir = Path(tempfile.mkdtemp(prefix="siplink-natlab-ca-"))
                pub.cleanups.append(lambda: shutil.rmtree(ca_dir, ignore_errors=True))
                ca = TestCa(ca_dir, "NAT lab test CA")
                cert = ca.issue("turn", [PUBLIC_IP])
                self.turn_ca = ca.path
            self.turn = CoturnInNs(pub, PUBLIC_IP, TURN_PORT, tls_cert=cert).start()

    def _configure_nat(self, site: Site) -> None:
        nat, spec = site.nat, site.spec
        masq = ["-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
        if spec.nat == "apdm":
            masq.append("--random-fully")
        nat.iptables(*masq, table="nat")
        # Nothing listens on the NAT itself: drop unsolicited UDP before conntrack confirms an
        # entry for it. Otherwise a peer's packet that arrives first (an ICE check to our srflx
        # address) occupies the tuple and MASQUERADE moves our outgoing flow to another port.
        nat.iptables("-A", "INPUT", "-i", "wan", "-p", "udp", "-j", "DROP")
        if spec.nat == "udp-blocked-except-turn":
            nat.iptables("-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                         "-j", "ACCEPT")
            allowed = [(PUBLIC_IP, TURN_PORT)] + ([(PUBLIC_IP, SIP_PORT)] if spec.sip_udp else [])
            for ip, port in allowed:
                nat.iptables("-A", "FORWARD", "-i", "lan", "-p", "udp", "-d", ip,
                             "--dport", str(port), "-j", "ACCEPT")
            nat.iptables("-A", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP")
        if spec.nat == "udp-blocked":
            nat.iptables("-A", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP")
        if spec.loss:
            self.set_loss(site, spec.loss)

    def set_loss(self, site: Site | str, p: float) -> None:
        """Drop forwarded UDP at ``site``'s NAT with probability ``p`` (0 removes the rule)."""
        s = self.sites[site] if isinstance(site, str) else site
        if s.loss:
            s.nat.iptables("-D", "FORWARD", *_loss_rule(s.loss))
        if p:
            s.nat.iptables("-I", "FORWARD", "1", *_loss_rule(p))
        s.loss = p

    def start_proxy(self, config: Path | None = None) -> SipProxyInNs:
        """Kamailio on 203.0.113.1:5080 in the public namespace (see SipProxyInNs);
        ``config``: another configuration (e.g. ``OUTBOUND_PROXY_CONFIG``)."""
        if self.proxy is None:
            self.proxy = SipProxyInNs(self.public, config=config).start()
        return self.proxy

    def echo(self, ip: str = PUBLIC_IP, port: int = 7000, ns: NetNs | None = None) -> UdpEcho:
        """A UDP echo server on ``ip:port`` in the public namespace (``public2`` for
        PUBLIC_IP2, or ``ns``)."""
        if ns is None:
            ns = self.public2 if ip == PUBLIC_IP2 else self.public
        sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((ip, port))
        e = UdpEcho(sock).start()
        self._echoes.append(e)
        return e

    def close(self) -> None:
        for e in self._echoes:
            e.close()
        self._echoes.clear()
        if self.turn is not None:
            self.turn.stop()
        self.lab.close()

    def namespaces(self) -> list[str]:
        return [ns.name for ns in self.lab.namespaces]

    def __enter__(self) -> NatLab:
        return self.build()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spec(s: SiteSpec | str) -> SiteSpec:
    if isinstance(s, SiteSpec):
        return s
    if s not in NAT_KINDS:
        raise ValueError(f"unknown NAT kind {s!r}; one of {NAT_KINDS}")
    return SiteSpec(nat=cast(NatKind, s))


def _loss_rule(p: float) -> list[str]:
    return ["-p", "udp", "-m", "statistic", "--mode", "random", "--probability", f"{p:.4f}",
            "-j", "DROP"]


def natlab(a: SiteSpec | NatKind = "eim", b: SiteSpec | NatKind = "eim", *,
           turn: bool = True, icmp_unreachable: bool = False,
           turn_tls: bool = False) -> Iterator[NatLab]:
    """Fixture body: ``yield from natlab("eim", "apdm")``; deleted after the test."""
    lab = NatLab(a, b, turn=turn, icmp_unreachable=icmp_unreachable,
                 turn_tls=turn_tls).build()
    try:
        yield lab
    finally:
        lab.close()


__all__ = ["NatLab", "SiteSpec", "Site", "UdpEcho", "stun_binding", "natlab", "PUBLIC_IP",
           "PUBLIC_IP2", "SIP_PORT", "TURN_PORT", "NAT_KINDS"]
