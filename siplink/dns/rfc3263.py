"""Locating SIP servers (RFC 3263 §4): which transport, address and port a URI's host means.

:func:`locate` follows the RFC's steps over an asynchronous :class:`Lookups` interface (the
records only: NAPTR, SRV, A/AAAA), so the procedure itself does no I/O and is tested with a
table of records; :class:`siplink.dns.resolver.DnsResolver` is the one implementation that
asks a DNS server (twisted.names).  The ordering rules are pure functions: NAPTR by order then
preference (RFC 3403 §4.1), SRV by priority and, within a priority, the weighted random
selection of RFC 2782 (the ``rng`` is injected).

§4.1 transport: the URI's ``transport`` parameter; else UDP for a numeric host or an explicit
port (TLS for ``sips:``); else the NAPTR records of services we support (SIP+D2U, SIP+D2T,
SIPS+D2T; only SIPS+ for a ``sips:`` URI); else SRV queries for each transport we support, in
our order; else UDP (TLS for ``sips:``).  §4.2 port and address: a numeric host is the
address; an explicit port skips SRV (A/AAAA of the host); else SRV of ``_sip._udp``,
``_sip._tcp`` or ``_sips._tcp`` (from NAPTR, the replacement), each target's A/AAAA; no SRV
record: A/AAAA of the host with the transport's default port.  Every target keeps how it was
found (:attr:`ServerTarget.source`) for ``siplink resolve`` and the logs.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "NaptrRecord",
    "ServerTarget",
    "SrvRecord",
    "Lookups",
    "LocateError",
    "locate",
    "order_naptr",
    "order_srv",
]

# RFC 3263 §4.1 / RFC 7118 §5: NAPTR services -> (transport, secure)
SERVICES: dict[str, tuple[str, bool]] = {
    "SIP+D2U": ("udp", False),
    "SIP+D2T": ("tcp", False),
    "SIPS+D2T": ("tls", True),
    "SIP+D2W": ("ws", False),
    "SIPS+D2W": ("wss", True),
}
SRV_PREFIX: dict[str, str] = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp",
                              "ws": "_sip._ws", "wss": "_sips._ws"}
DEFAULT_PORT: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}
MAX_TARGETS = 32          # addresses tried for one request at most (hostile zones are big)


class LocateError(Exception):
    """The URI's host gives no server (no record, or the lookups failed or timed out)."""


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class ServerTarget:
    """One place to send the request: ``transport`` ``address``:``port``, reached through
    the name ``host`` (the URI's host or an SRV target); ``source`` says which records led
    here (``"numeric"``, ``"A"``, ``"SRV _sip._udp.example.test -> sip1.example.test A"``,
    ``"NAPTR SIP+D2U -> SRV ... -> ... AAAA"``)."""

    transport: str
    address: str
    port: int
    host: str
    source: str


class Lookups(Protocol):
    """The DNS records :func:`locate` needs; each returns no records for a name that has none
    (NXDOMAIN, no data) and raises :class:`LocateError` when the server cannot be asked."""

    async def naptr(self, name: str) -> list[NaptrRecord]: ...
    async def srv(self, name: str) -> list[SrvRecord]: ...
    async def addresses(self, name: str) -> list[tuple[str, str]]: ...   # (address, "A"|"AAAA")


def is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def order_naptr(records: Sequence[NaptrRecord], transports: Sequence[str], secure: bool
                ) -> list[tuple[str, NaptrRecord]]:
    """The usable NAPTR records in order (RFC 3403: order, then preference): terminal ``S``
    records of services for ``transports`` (only SIPS ones when ``secure``), each with its
    transport."""
    out = []
    for r in sorted(records, key=lambda r: (r.order, r.preference)):
        svc = SERVICES.get(r.service.upper())
        if svc is None or r.flags.lower() != "s" or not r.replacement:
            continue
        transport, is_secure = svc
        if transport not in transports or (secure and not is_secure):
            continue
        out.append((transport, r))
    return out


def order_srv(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782: lowest priority first; within a priority, repeatedly pick at random with
    probability proportional to the weight (weight-0 records first in the running order,
    so they are picked only when the sum is 0 or they win the draw at 0)."""
    out: list[SrvRecord] = []
    for prio in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == prio and r.target != "."),
                       key=lambda r: r.weight)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total) if total > 0 else 0
            running = 0
            for i, r in enumerate(group):
                running += r.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


async def _addresses(lookups: Lookups, transport: str, name: str, port: int, source: str
                     ) -> list[ServerTarget]:
    found = await lookups.addresses(name)
    return [ServerTarget(transport, addr, port, name.rstrip("."), f"{source}{kind}")
            for addr, kind in found]


async def _via_srv(lookups: Lookups, transport: str, host: str, rng: random.Random,
                   source: str = "") -> list[ServerTarget]:
    name = f"{SRV_PREFIX[transport]}.{host}"
    return await _srv_targets(lookups, transport, name, rng, source)


async def _srv_targets(lookups: Lookups, transport: str, srv_name: str, rng: random.Random,
                       source: str = "") -> list[ServerTarget]:
    out: list[ServerTarget] = []
    for rec in order_srv(await lookups.srv(srv_name), rng):
        target = rec.target.rstrip(".")
        out += await _addresses(lookups, transport, target, rec.port,
                                f"{source}SRV {srv_name.rstrip('.')} -> {target} ")
        if len(out) >= MAX_TARGETS:
            break
    return out


async def locate(host: str, port: int | None, transport: str | None, secure: bool,
                 lookups: Lookups, rng: random.Random,
                 transports: Sequence[str] = ("udp", "tcp", "tls")) -> list[ServerTarget]:
    """The ordered targets for a URI with ``host``, ``port`` (None: not given), the
    ``transport`` parameter (None: not given) and ``secure`` (``sips:``), among the
    ``transports`` we can use, in our order of preference; :class:`LocateError` when none."""
    name = host.strip("[]")
    tp = transport.lower() if transport else None
    if tp is not None and secure and tp == "tcp":
        tp = "tls"                         # sips:...;transport=tcp means TLS over TCP
    if is_numeric(name):
        chosen = tp or ("tls" if secure else "udp")
        return [ServerTarget(chosen, name, port or DEFAULT_PORT.get(chosen, 5060), name,
                             "numeric")]
    if tp is None and port is not None:
        tp = "tls" if secure else "udp"   # §4.1: an explicit port, no NAPTR
    targets: list[ServerTarget] = []
    if tp is not None:
        if tp not in transports:
            raise LocateError(f"{host}: transport {tp} is not available here")
        if port is not None:
            targets = await _addresses(lookups, tp, name, port, "")
        else:
            targets = await _via_srv(lookups, tp, name, rng)
            if not targets:
                targets = await _addresses(lookups, tp, name, DEFAULT_PORT[tp], "")
    else:
        for ntp, rec in order_naptr(await lookups.naptr(name), transports, secure):
            targets += await _srv_targets(lookups, ntp, rec.replacement, rng,
                                          f"NAPTR {rec.service.upper()} -> ")
            if len(targets) >= MAX_TARGETS:
                break
        if not targets:
            # §4.1: no NAPTR: SRV for each transport we support, in our order
            for stp in transports:
                if secure and stp != "tls":
                    continue
                if stp not in SRV_PREFIX or stp in ("ws", "wss"):
                    continue
                targets += await _via_srv(lookups, stp, name, rng)
        if not targets:
            chosen = "tls" if secure else "udp"
            if chosen not in transports:
                raise LocateError(f"{host}: transport {chosen} is not available here")
            targets = await _addresses(lookups, chosen, name, DEFAULT_PORT[chosen], "")
    if not targets:
        raise LocateError(f"{host}: no NAPTR, SRV, A or AAAA record")
    return list(dict.fromkeys(targets))[:MAX_TARGETS]
