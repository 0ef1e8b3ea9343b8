"""The DNS side of RFC 3263: NAPTR, SRV, A and AAAA lookups on ``twisted.names``.

:class:`DnsResolver` implements :class:`siplink.dns.rfc3263.Lookups` with an asynchronous
``twisted.names.client.Resolver``: the servers given (``[sip] dns_servers``, ``--dns``), or
the system's (``/etc/resolv.conf``, ``/etc/hosts``) when none are.  Nothing blocks the reactor:
a silent server delays only the requests waiting on its answer, and every lookup gives up
after ``timeout`` seconds with :class:`~siplink.dns.rfc3263.LocateError`.  Answers are cached
for their TTL (a TTL of 0, dnsmasq's default, is not cached).  Names under ``.invalid``
(RFC 6761 §6.4) are never asked: they have no records.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.names import client, dns
from twisted.names import error as dns_error

from siplink.dns.rfc3263 import LocateError, NaptrRecord, ServerTarget, SrvRecord, locate

__all__ = ["DnsResolver"]

log = Logger(namespace="siplink.dns")

# NXDOMAIN, NOTIMP, and REFUSED: dnsmasq without upstream servers refuses the names and
# types it has no data for (an A-only host's AAAA); each means "no such record here"
_NO_RECORDS = (dns_error.DNSNameError, dns_error.DNSNotImplementedError,
               dns_error.DNSQueryRefusedError)


class DnsResolver:
    """RFC 3263 lookups through ``servers`` (``(host, port)`` pairs; None: the system's)."""

    def __init__(self, reactor: Any, servers: Sequence[tuple[str, int]] | None = None, *,
                 timeout: float = 5.0, rng: random.Random | None = None) -> None:
        self.reactor = reactor
        self.servers = list(servers) if servers else None
        self.timeout = timeout
        self.rng = rng if rng is not None else random.Random()
        if self.servers:
            # only these servers: no resolv.conf, no hosts file
            self._resolver: Any = client.Resolver(servers=self.servers, reactor=reactor)
        else:
            self._resolver = client.createResolver()
        self._cache: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self.queries = 0                   # questions sent (cache misses), for tests

    # ---------------------------------------------------------------- RFC 3263
    async def locate(self, host: str, port: int | None, transport: str | None, secure: bool,
                     transports: Sequence[str] = ("udp", "tcp", "tls")) -> list[ServerTarget]:
        """:func:`siplink.dns.rfc3263.locate` with these lookups and this resolver's rng."""
        return await locate(host, port, transport, secure, self, self.rng, transports)

    # ---------------------------------------------------------------- Lookups
    async def naptr(self, name: str) -> list[NaptrRecord]:
        rrs = await self._lookup("NAPTR", name, self._resolver.lookupNamingAuthorityPointer)
        return [NaptrRecord(r.order, r.preference, _text(r.flags), _text(r.service),
                            _text(r.regexp), str(r.replacement).rstrip("."))
                for r in rrs if isinstance(r, dns.Record_NAPTR)]

    async def srv(self, name: str) -> list[SrvRecord]:
        rrs = await self._lookup("SRV", name, self._resolver.lookupService)
        return [SrvRecord(r.priority, r.weight, r.port, str(r.target).rstrip("."))
                for r in rrs if isinstance(r, dns.Record_SRV)]

    async def addresses(self, name: str) -> list[tuple[str, str]]:
        """A then AAAA records of ``name`` (both asked at once)."""
        a, aaaa = await defer.gatherResults([
            defer.ensureDeferred(self._lookup("A", name, self._resolver.lookupAddress)),
            defer.ensureDeferred(self._lookup("AAAA", name,
                                              self._resolver.lookupIPV6Address))],
            consumeErrors=True).addErrback(_first_error)
        out = [(r.dottedQuad(), "A") for r in a if isinstance(r, dns.Record_A)]
        out += [(socket.inet_ntop(socket.AF_INET6, r.address), "AAAA") for r in aaaa
                if isinstance(r, dns.Record_AAAA)]
        return out

    # ---------------------------------------------------------------- internals
    async def _lookup(self, kind: str, name: str, method: Any) -> list[Any]:
        clean = name.rstrip(".").lower()
        if clean == "invalid" or clean.endswith(".invalid"):
            return []                      # RFC 6761 §6.4: never asked, never resolves
        now = float(self.reactor.seconds())
        hit = self._cache.get((kind, clean))
        if hit is not None and hit[0] > now:
            return hit[1]
        self.queries += 1
        d = method(clean, timeout=(self.timeout,))
        d.addTimeout(self.timeout, self.reactor)
        try:
            answers, _authority, _additional = await d
        except _NO_RECORDS as e:
            log.debug("DNS {kind} {name}: {e}", kind=kind, name=clean, e=type(e).__name__)
            return []
        except (defer.TimeoutError, dns_error.DNSQueryTimeoutError) as e:
            raise LocateError(f"DNS {kind} {clean}: no answer within {self.timeout:g} s"
                              + _servers(self.servers)) from e
        except dns_error.DNSServerError as e:
            raise LocateError(f"DNS {kind} {clean}: server failure (SERVFAIL)") from e
        except dns_error.DomainError as e:
            raise LocateError(f"DNS {kind} {clean}: {type(e).__name__}") from e
        except OSError as e:
            raise LocateError(f"DNS {kind} {clean}: {e}") from e
        records = [rr.payload for rr in answers]   # the callers keep the types they asked
        ttl = min((rr.ttl for rr in answers), default=0)
        if ttl > 0:
            self._cache[(kind, clean)] = (now + ttl, records)
        return records


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _servers(servers: Sequence[tuple[str, int]] | None) -> str:
    if not servers:
        return " (system resolver)"
    return " (asked " + ", ".join(f"{h}:{p}" for h, p in servers) + ")"


def _first_error(f: Any) -> Any:
    """gatherResults wraps the failure: raise the lookup's own error."""
    if isinstance(f.value, defer.FirstError):
        return f.value.subFailure
    return f
