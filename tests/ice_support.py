"""Helpers for the ICE agent tests: two agents on a seeded simulated network."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ice import stun
from ice.agent import Agent
from ice.events import IceCompleted, IceFailed
from ice.sim.simnet import Nat, SimAgent, SimNet, StunServer, TurnServer, connect

__all__ = ["Nat", "SimAgent", "SimNet", "StunServer", "TurnServer", "connect", "pair_on_net",
           "run_until_done", "sent_stun", "done"]


def pair_on_net(
    net: SimNet,
    a_ip: str = "192.0.2.1",
    b_ip: str = "192.0.2.2",
    *,
    a_kw: dict[str, Any] | None = None,
    b_kw: dict[str, Any] | None = None,
    a_addresses: list[str] | None = None,
    b_addresses: list[str] | None = None,
    gather: bool = True,
    start: bool = True,
) -> tuple[SimAgent, SimAgent]:
    """Agent A (controlling) on ``a_ip`` and B (controlled) on ``b_ip``; gathered; with
    ``start`` credentials and candidates exchanged and checks started."""
    for ip in [a_ip, b_ip, *(a_addresses or []), *(b_addresses or [])]:
        if ip not in net._hosts:
            net.add_host(ip)
    a_kw = {"rng": random.Random(1), **(a_kw or {})}
    b_kw = {"rng": random.Random(2), **(b_kw or {})}
    a_kw.setdefault("controlling", True)
    b_kw.setdefault("controlling", False)
    a = SimAgent(net, Agent(local_addresses=a_addresses or [a_ip], **a_kw), a_ip)
    b = SimAgent(net, Agent(local_addresses=b_addresses or [b_ip], **b_kw), b_ip)
    if a_addresses:
        _rebind(net, a, a_addresses)
    if b_addresses:
        _rebind(net, b, b_addresses)
    if gather:
        for x in (a, b):
            x.agent.gather(net.now)
            x.pump()
        net.run(net.now + 10, stop=lambda: all(
            s.gathering_done for x in (a, b) for s in x.agent._streams))
    if start:
        connect(a, b)
    return a, b


def _rebind(net: SimNet, x: SimAgent, addresses: list[str]) -> None:
    """SimAgent binds on one IP; a multihomed agent needs a socket per address."""
    x.agent._sockets.clear()
    for stream, component, ip in x.agent.addresses_to_bind():
        addr = net.bind(ip, x._receive)
        x.agent.add_host_socket(stream, component, addr)


def done(x: SimAgent) -> bool:
    return all(any(isinstance(e.event, (IceCompleted, IceFailed)) and e.event.stream == s
                   for e in x.events) for s in range(x.agent.streams))


def run_until_done(net: SimNet, a: SimAgent, b: SimAgent, limit: float = 60.0) -> float:
    start = net.now
    net.run(start + limit, stop=lambda: done(a) and done(b))
    return net.now - start


def sent_stun(net: SimNet, predicate: Callable[[bytes, tuple[str, int], tuple[str, int]], bool]
              | None = None) -> list[tuple[float, tuple[str, int], tuple[str, int], stun.Message]]:
    """Start recording every STUN datagram the network carries; returns the live list."""
    log: list[tuple[float, tuple[str, int], tuple[str, int], stun.Message]] = []
    original = net.send

    def send(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        if stun.is_stun(data):
            try:
                log.append((net.now, src, dst, stun.decode(data)))
            except stun.StunDecodeError:
                pass
        if predicate is not None and not predicate(data, src, dst):
            return
        original(src, dst, data)

    net.send = send  # type: ignore[method-assign]
    return log
