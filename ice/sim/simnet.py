"""A deterministic simulated UDP network in virtual time, for tests and benchmarks.

Hosts live in *realms*: the public realm (the "internet") or a private realm behind a
:class:`Nat`.  A NAT's behaviour is named as RFC 4787 names it: mapping and filtering are each
``"endpoint-independent"``, ``"address-dependent"`` or ``"address-and-port-dependent"`` (a
"symmetric" NAT is address-and-port-dependent mapping).  A NAT can also act as a firewall that
drops every outgoing UDP datagram except to named destinations.  Every datagram gets the
network's latency, a seeded uniform jitter and a seeded loss.  Nothing touches a real socket
or the wall clock: :meth:`SimNet.run` advances virtual time from event to event.

:class:`SimAgent` drives an :class:`ice.agent.Agent` on a simulated host; :class:`StunServer`
answers Binding requests.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ice import stun
from ice.address import Address
from ice.agent import Agent
from ice.events import Event

Handler = Callable[[bytes, Address, Address, float], None]

MAPPINGS = ("endpoint-independent", "address-dependent", "address-and-port-dependent")

PUBLIC = "public"


@dataclass
class Nat:
    """A NAT between a private realm and the public one (RFC 4787 behaviours)."""

    public_ip: str
    realm: str
    mapping: str = "endpoint-independent"
    filtering: str = "endpoint-independent"
    firewall_allow: set[str] | None = None   # when set: drop outgoing UDP to other IPs
    next_port: int = 40000
    # mapping key -> public port; public port -> (internal address, permitted remotes)
    _out: dict[tuple[object, ...], int] = field(default_factory=dict)
    _in: dict[int, tuple[Address, set[object]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS or self.filtering not in MAPPINGS:
            raise ValueError("mapping/filtering must be one of " + ", ".join(MAPPINGS))

    def outbound(self, src: Address, dst: Address) -> Address | None:
        if self.firewall_allow is not None and dst[0] not in self.firewall_allow:
            return None
        key: tuple[object, ...]
        if self.mapping == "endpoint-independent":
            key = (src,)
        elif self.mapping == "address-dependent":
            key = (src, dst[0])
        else:
            key = (src, dst)
        port = self._out.get(key)
        if port is None:
            port = self.next_port
            self.next_port += 1
            self._out[key] = port
            self._in[port] = (src, set())
        self._in[port][1].update((dst[0], dst))
        return (self.public_ip, port)

    def inbound(self, src: Address, public_port: int) -> Address | None:
        entry = self._in.get(public_port)
        if entry is None:
            return None
        internal, permitted = entry
        if self.filtering == "address-dependent" and src[0] not in permitted:
            return None
        if self.filtering == "address-and-port-dependent" and src not in permitted:
            return None
        return internal


class SimNet:
    """The network: an event queue in virtual time, realms, NATs and bound sockets."""

    def __init__(self, seed: int = 0, latency: float = 0.005, jitter: float = 0.0,
                 loss: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._sockets: dict[tuple[str, Address], Handler] = {}   # (realm, addr) -> handler
        self._hosts: dict[str, str] = {}                          # ip -> realm
        self._nats: dict[str, Nat] = {}                           # realm -> NAT
        self._nat_by_ip: dict[str, Nat] = {}
        self._ports = itertools.count(10000)
        self.delivered = 0
        self.dropped = 0

    # ---- topology ------------------------------------------------------------------------
    def add_host(self, ip: str, realm: str = PUBLIC) -> str:
        self._hosts[ip] = realm
        return ip

    def add_nat(self, nat: Nat) -> Nat:
        self._nats[nat.realm] = nat
        self._nat_by_ip[nat.public_ip] = nat
        return nat

    def bind(self, ip: str, handler: Handler, port: int | None = None) -> Address:
        realm = self._hosts[ip]
        addr = (ip, port if port is not None else next(self._ports))
        if (realm, addr) in self._sockets:
            raise OSError(f"address {addr} in use")
        self._sockets[(realm, addr)] = handler
        return addr

    def unbind(self, ip: str, port: int) -> None:
        self._sockets.pop((self._hosts[ip], (ip, port)), None)

    # ---- time ------------------------------------------------------------------------------
    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (max(when, self.now), next(self._seq), fn))

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> float:
        """Process events up to virtual time ``until`` or until ``stop()``; returns now."""
        spins = 0
        while self._queue and self._queue[0][0] <= until:
            when, _, fn = heapq.heappop(self._queue)
            spins = spins + 1 if when == self.now else 0
            if spins > 100_000:
                raise RuntimeError(f"simulation stuck at t={when}: a timer never advances")
            self.now = when
            fn()
            if stop is not None and stop():
                return self.now
        self.now = max(self.now, until) if stop is None or not stop() else self.now
        return self.now

    # ---- datagrams -------------------------------------------------------------------------
    def send(self, src: Address, dst: Address, data: bytes) -> None:
        realm = self._hosts.get(src[0])
        if realm is None:
            return
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        delay = self.latency + (self.rng.uniform(0, self.jitter) if self.jitter else 0.0)
        route = self._route(realm, src, dst)
        if route is None:
            self.dropped += 1
            return
        target_realm, seen_src, target = route
        handler = self._sockets.get((target_realm, target))
        if handler is None:
            self.dropped += 1
            return

        def deliver() -> None:
            h = self._sockets.get((target_realm, target))
            if h is not None:
                self.delivered += 1
                h(data, target, seen_src, self.now)

        self.call_at(self.now + delay, deliver)

    def routable_from_public(self, dst: Address) -> bool:
        """Whether a public host has a route to ``dst`` (a private address has none)."""
        return self._hosts.get(dst[0]) == PUBLIC or dst[0] in self._nat_by_ip

    def _route(self, realm: str, src: Address, dst: Address) -> tuple[str, Address, Address] | None:
        # same realm: direct
        if self._hosts.get(dst[0]) == realm:
            return realm, src, dst
        # leave a private realm through its NAT
        while realm != PUBLIC:
            nat = self._nats.get(realm)
            if nat is None:
                return None
            mapped = nat.outbound(src, dst)
            if mapped is None:
                return None
            src, realm = mapped, PUBLIC
            if self._hosts.get(dst[0]) == realm:
                return realm, src, dst
        # public realm: a public host, or a NAT's public address
        if self._hosts.get(dst[0]) == PUBLIC:
            return PUBLIC, src, dst
        nat = self._nat_by_ip.get(dst[0])
        if nat is None:
            return None
        internal = nat.inbound(src, dst[1])
        if internal is None:
            return None
        return nat.realm, src, internal


class StunServer:
    """A STUN server (RFC 8489 Binding only) on a simulated public host."""

    def __init__(self, net: SimNet, ip: str, port: int = 3478) -> None:
        self.net = net
        self.addr = net.bind(ip, self._receive, port)
        self.requests = 0

    def _receive(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        try:
            msg = stun.decode(data)
        except stun.StunDecodeError:
            return
        if msg.cls != stun.Class.REQUEST or msg.method != stun.Method.BINDING:
            return
        self.requests += 1
        resp = stun.success_response(msg, [(stun.Attr.XOR_MAPPED_ADDRESS, remote)])
        self.net.send(local, remote, stun.encode(resp))


@dataclass
class _ServerAllocation:
    client: Address
    relayed: Address
    permissions: set[str] = field(default_factory=set)
    channels: dict[int, Address] = field(default_factory=dict)
    broken: bool = False


class TurnServer:
    """A small TURN server (RFC 8656 over UDP) on a simulated public host: long-term
    credentials, Allocate/Refresh, CreatePermission, ChannelBind, Send/Data indications and
    ChannelData.  Enough for ICE relay scenarios; not a general server."""

    REALM = "sim.test"
    NONCE = b"simnonce0123"

    def __init__(self, net: SimNet, ip: str, port: int = 3478, username: str = "alice",
                 password: str = "secret", forbidden: set[str] | None = None,
                 break_on_unroutable: bool = False) -> None:
        self.net = net
        self.ip = ip
        self.addr = net.bind(ip, self._receive, port)
        self.key = stun.long_term_key(username, self.REALM, password)
        self.username = username
        self.forbidden = forbidden or set()      # peer IPs that get 403
        # like coturn 4.6.1 behind a blackhole route: one send to an address without a route
        # fails and the allocation relays nothing more
        self.break_on_unroutable = break_on_unroutable
        self.allocations: dict[Address, _ServerAllocation] = {}
        self._by_relay: dict[Address, _ServerAllocation] = {}
        self.released = 0

    def _send(self, msg: stun.Message, to: Address, key: bytes | None) -> None:
        self.net.send(self.addr, to, stun.encode(msg, key=key))

    def _receive(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        if data and 0x40 <= data[0] <= 0x4F:
            alloc = self.allocations.get(remote)
            if alloc is None or len(data) < 4:
                return
            chan = int.from_bytes(data[:2], "big")
            peer = alloc.channels.get(chan)
            if peer is not None:
                self._relay_out(alloc, peer, data[4:4 + int.from_bytes(data[2:4], "big")])
            return
        try:
            msg = stun.decode(data)
        except stun.StunDecodeError:
            return
        alloc = self.allocations.get(remote)
        if msg.cls == stun.Class.INDICATION:
            peer = msg.address(stun.Attr.XOR_PEER_ADDRESS)
            payload = msg.get(stun.Attr.DATA)
            if (alloc is not None and msg.method == stun.Method.SEND and peer is not None
                    and isinstance(payload, bytes) and peer[0] in alloc.permissions):
                self._relay_out(alloc, peer, payload)
            return
        if msg.cls != stun.Class.REQUEST:
            return
        if _ATTR_MI not in msg or msg.get(stun.Attr.USERNAME) != self.username:
            err = stun.error_response(msg, 401)
            err[stun.Attr.REALM] = self.REALM
            err[stun.Attr.NONCE] = self.NONCE
            self._send(err, remote, None)
            return
        if not stun.check_integrity(data, self.key):
            err = stun.error_response(msg, 401)
            err[stun.Attr.REALM] = self.REALM
            err[stun.Attr.NONCE] = self.NONCE
            self._send(err, remote, None)
            return
        m = msg.method
        if m == stun.Method.ALLOCATE:
            if alloc is None:
                relayed = self.net.bind(self.ip, self._relay_receive)
                alloc = _ServerAllocation(remote, relayed)
                self.allocations[remote] = alloc
                self._by_relay[relayed] = alloc
            self._send(stun.success_response(msg, [
                (stun.Attr.XOR_RELAYED_ADDRESS, alloc.relayed),
                (stun.Attr.XOR_MAPPED_ADDRESS, remote), (stun.Attr.LIFETIME, 600)]),
                remote, self.key)
            return
        if alloc is None:
            self._send(stun.error_response(msg, 437), remote, self.key)
            return
        peer = msg.address(stun.Attr.XOR_PEER_ADDRESS)
        if m == stun.Method.REFRESH:
            lifetime = msg.get(stun.Attr.LIFETIME)
            if lifetime == 0:
                del self.allocations[remote]
                del self._by_relay[alloc.relayed]
                self.net.unbind(*alloc.relayed)
                self.released += 1
            self._send(stun.success_response(msg, [(stun.Attr.LIFETIME, lifetime if
                                                    isinstance(lifetime, int) else 600)]),
                       remote, self.key)
        elif m in (stun.Method.CREATE_PERMISSION, stun.Method.CHANNEL_BIND) and peer is not None:
            if peer[0] in self.forbidden:
                self._send(stun.error_response(msg, 403), remote, self.key)
                return
            alloc.permissions.add(peer[0])
            chan = msg.get(stun.Attr.CHANNEL_NUMBER)
            if m == stun.Method.CHANNEL_BIND and isinstance(chan, int):
                alloc.channels[chan] = peer
            self._send(stun.success_response(msg), remote, self.key)
        else:
            self._send(stun.error_response(msg, 400), remote, self.key)

    def _relay_out(self, alloc: _ServerAllocation, peer: Address, data: bytes) -> None:
        if alloc.broken:
            return
        if self.break_on_unroutable and not self.net.routable_from_public(peer):
            alloc.broken = True
            return
        self.net.send(alloc.relayed, peer, data)

    def _relay_receive(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        alloc = self._by_relay.get(local)
        if alloc is None or alloc.broken or remote[0] not in alloc.permissions:
            return
        for chan, peer in alloc.channels.items():
            if peer == remote:
                self.net.send(self.addr, alloc.client,
                              chan.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data)
                return
        ind = stun.Message(stun.Method.DATA, stun.Class.INDICATION, self.net.rng.randbytes(12),
                           {stun.Attr.XOR_PEER_ADDRESS: remote, stun.Attr.DATA: data})
        self.net.send(self.addr, alloc.client, stun.encode(ind, fingerprint=False))


_ATTR_MI = stun.Attr.MESSAGE_INTEGRITY


@dataclass
class _Timed:
    time: float
    event: Event


class SimAgent:
    """Runs an :class:`Agent` on a simulated host: binds its sockets, pumps its output and
    keeps its timer armed; events are kept with their virtual time in ``events``."""

    def __init__(self, net: SimNet, agent: Agent, ip: str,
                 on_event: Callable[[SimAgent, Event], None] | None = None) -> None:
        self.net = net
        self.agent = agent
        self.ip = ip
        self.events: list[_Timed] = []
        self.on_event = on_event
        self._timer_at: float | None = None
        for stream, component, _ip in agent.addresses_to_bind():
            addr = net.bind(ip, self._receive)
            agent.add_host_socket(stream, component, addr)

    def _receive(self, data: bytes, local: Address, remote: Address, now: float) -> None:
        self.agent.receive(data, local, remote, now)
        self.pump()

    def _timer(self, when: float) -> None:
        if self._timer_at != when:
            return
        self._timer_at = None
        self.agent.handle_timer(self.net.now)
        self.pump()

    def pump(self) -> None:
        now = self.net.now
        for data, local, remote in self.agent.datagrams_to_send(now):
            self.net.send(local, remote, data)
        while True:
            ev = self.agent.next_event()
            if ev is None:
                break
            self.events.append(_Timed(now, ev))
            if self.on_event is not None:
                self.on_event(self, ev)
        for data, local, remote in self.agent.datagrams_to_send(now):
            self.net.send(local, remote, data)
        t = self.agent.get_timer()
        if t is not None and t != self._timer_at:
            when = max(t, now)
            self._timer_at = when
            self.net.call_at(when, lambda: self._timer(when))

    def first(self, kind: type[Event]) -> _Timed | None:
        return next((e for e in self.events if isinstance(e.event, kind)), None)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e.event for e in self.events if isinstance(e.event, kind)]


def connect(a: SimAgent, b: SimAgent, now: float | None = None) -> None:
    """Exchange credentials and every local candidate (the offer/answer), start both."""
    t = a.net.now if now is None else now
    for x, y in ((a, b), (b, a)):
        for s in range(x.agent.streams):
            y.agent.set_remote_credentials(s, x.agent.local_username, x.agent.local_password)
            for c in x.agent.local_candidates(s):
                y.agent.add_remote_candidate(s, c)
    a.agent.start_checks(t)
    b.agent.start_checks(t)
    a.pump()
    b.pump()
