"""Which local address reaches a destination: the source address the kernel's routing table
picks (RFC 6724 source address selection), found by connecting a UDP socket (no packet is
sent). Used by the command line to choose a listen address, never by a core."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["source_address", "ip_literal"]


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address (an IPv6 reference may be bracketed), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def source_address(host: str) -> str | None:
    """The local address the routing table uses toward the numeric ``host`` (a loopback
    destination: the loopback address of its family); None without a route."""
    ip = ip_literal(host)
    if ip is None:
        return None
    if ip.is_loopback:
        return "::1" if ip.version == 6 else "127.0.0.1"
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((str(ip), 9))
        except OSError:
            return None
        local: str = s.getsockname()[0]
    return local
