"""Gathering (RFC 8445 §5.1.1): which local addresses to use, host candidates, and the
bookkeeping of server-reflexive and relayed candidates.

Address selection is the only function here that looks at the machine (it lists interfaces
with ``ifaddr``); tests never call it without naming addresses or the ``lo`` interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ice.address import Address
from ice.candidate import (
    TYPE_PREFERENCE,
    Candidate,
    CandidateType,
    candidate_priority,
    compute_foundation,
)


class GatheringError(ValueError):
    """A bad gathering configuration (unknown interface, unusable address)."""


@dataclass(frozen=True, slots=True)
class StunServer:
    host: str
    port: int = 3478


@dataclass(frozen=True, slots=True)
class TurnServer:
    """``transport``: how the server is reached, "udp", "tcp" or "tls" (RFC 8656 §3.1; the
    relay to peers is UDP regardless); over TLS the certificate must name ``host`` and chain
    to the CAs in the PEM file ``tls_ca`` (empty: the system's)."""

    host: str
    port: int = 3478
    username: str = ""
    password: str = ""
    transport: str = "udp"
    tls_ca: str = ""


def parse_turn_uri(uri: str, username: str = "", password: str = "", *,
                   tls_ca: str = "") -> TurnServer:
    """A TURN URI (RFC 7065) as a :class:`TurnServer`: ``turn:HOST[:PORT]`` (UDP, 3478),
    ``turn:HOST[:PORT]?transport=tcp`` (TCP, 3478), ``turns:HOST[:PORT]`` (TLS over TCP,
    5349).  Raises :class:`GatheringError` for anything else (``turns:...?transport=udp``
    would be DTLS, which is not supported)."""
    scheme, host, port = parse_server_uri(uri)
    if not uri.strip().lower().startswith(("turn:", "turns:")):
        raise GatheringError(f"bad TURN URI {uri!r}: must start with turn: or turns:")
    query = uri.partition("?")[2]
    transport = ""
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key.lower() != "transport":
            raise GatheringError(f"bad TURN URI {uri!r}: unknown parameter {key!r}")
        transport = value.lower()
    if transport not in ("", "udp", "tcp"):
        raise GatheringError(f"bad TURN URI {uri!r}: transport must be udp or tcp")
    if scheme == "turns":
        if transport == "udp":
            raise GatheringError(f"bad TURN URI {uri!r}: turns: over UDP (DTLS) is not "
                                 "supported; use turns: (TLS) or turn:...?transport=tcp")
        kind = "tls"
    else:
        kind = transport or "udp"
    return TurnServer(host, port, username, password, kind, tls_ca)


def parse_server_uri(uri: str) -> tuple[str, str, int]:
    """``stun:HOST[:PORT]`` / ``turn:HOST[:PORT][?transport=udp]`` (RFC 7064, RFC 7065) or a
    bare ``HOST[:PORT]`` -> (scheme, host, port).  IPv6 hosts are written in brackets."""
    text = uri.strip()
    scheme = "stun"
    for prefix in ("stuns:", "stun:", "turns:", "turn:"):
        if text.lower().startswith(prefix):
            scheme, text = prefix[:-1], text[len(prefix):]
            break
    text = text.split("?", 1)[0]
    default = 5349 if scheme.endswith("s") else 3478
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise GatheringError(f"bad server URI {uri!r}: unclosed [")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise GatheringError(f"bad server URI {uri!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise GatheringError(f"bad server URI {uri!r}: no host")
    try:
        port = int(port_text) if port_text else default
    except ValueError:
        raise GatheringError(f"bad server URI {uri!r}: port {port_text!r}") from None
    if not 0 < port < 65536:
        raise GatheringError(f"bad server URI {uri!r}: port {port} out of range")
    return scheme, host, port


def _usable(ip: str, include_loopback: bool) -> bool:
    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if a.is_unspecified or a.is_multicast:
        return False
    if isinstance(a, ipaddress.IPv6Address):
        # RFC 8445 §5.1.1.1: no link-local, site-local (fec0::/10, deprecated by RFC 3879),
        # IPv4-mapped or IPv4-compatible (::a.b.c.d, deprecated by RFC 4291) IPv6 addresses
        if a.is_link_local or a.is_site_local or a.ipv4_mapped is not None:
            return False
        if int(a) >> 32 == 0 and int(a) > 1:
            return False
    if a.is_loopback and not include_loopback:
        return False
    return True


def select_local_addresses(
    addresses: Sequence[str] | None = None,
    interfaces: Sequence[str] | None = None,
    *,
    ipv4: bool = True,
    ipv6: bool = True,
) -> list[str]:
    """The IP addresses to gather host candidates on, in preference order.

    ``addresses`` names them outright (loopback allowed); ``interfaces`` restricts to those
    interface names (loopback allowed when named, e.g. ``lo``); with neither, every usable
    non-loopback address of the machine.  Duplicates are removed; order is kept.
    """
    out: list[str] = []
    if addresses:
        for ip in addresses:
            if not _usable(ip, include_loopback=True):
                raise GatheringError(f"unusable local address {ip!r}")
            if ip not in out:
                out.append(ip)
    else:
        import ifaddr

        adapters = list(ifaddr.get_adapters())
        names = {a.nice_name for a in adapters} | {a.name for a in adapters}
        for wanted in interfaces or ():
            if wanted not in names:
                raise GatheringError(f"no interface named {wanted!r}")
        for adapter in adapters:
            if interfaces and adapter.nice_name not in interfaces and adapter.name not in interfaces:
                continue
            for entry in adapter.ips:
                raw = entry.ip
                text = raw if isinstance(raw, str) else str(raw[0])
                if _usable(text, include_loopback=bool(interfaces)) and text not in out:
                    out.append(text)
    return [ip for ip in out if (":" in ip and ipv6) or (":" not in ip and ipv4)]


def local_preferences(addresses: Sequence[str]) -> dict[str, int]:
    """A unique local preference per address (RFC 8445 §5.1.2.1): the first named address
    is preferred; IPv6 and IPv4 interleave as the list gives them (RFC 8421 leaves the order
    to policy)."""
    return {ip: 65535 - 128 * i for i, ip in enumerate(addresses)}


def host_candidate(address: Address, component: int, local_preference: int) -> Candidate:
    return Candidate(
        foundation=compute_foundation(CandidateType.HOST, address[0]),
        component=component,
        transport="udp",
        priority=candidate_priority(TYPE_PREFERENCE[CandidateType.HOST], local_preference,
                                    component),
        address=address[0],
        port=address[1],
        type=CandidateType.HOST,
    )


def reflexive_candidate(
    kind: CandidateType,
    address: Address,
    base: Address,
    component: int,
    local_preference: int,
    server: str | None,
) -> Candidate:
    """A server-reflexive or relayed candidate learnt from ``server`` on ``base``."""
    return Candidate(
        foundation=compute_foundation(kind, base[0], server=server),
        component=component,
        transport="udp",
        priority=candidate_priority(TYPE_PREFERENCE[kind], local_preference, component),
        address=address[0],
        port=address[1],
        type=kind,
        related_address=base[0],
        related_port=base[1],
    )


def is_redundant(cand: Candidate, existing: Iterable[Candidate]) -> bool:
    """RFC 8445 §5.1.3: a candidate with the same transport address (and component) as one
    already kept, e.g. a srflx equal to its host candidate when there is no NAT."""
    return any(o.address == cand.address and o.port == cand.port
               and o.component == cand.component for o in existing)
