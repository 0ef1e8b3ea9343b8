"""dnsmasq (Debian ``dnsmasq-base``) as the DNS server of RFC 3263 tests (../shared/lab/dns.md).

``with Dnsmasq(naptr=[...], srv=[...], hosts=[...]) as dns: dns.addr`` -> ("127.0.0.1", port).
It serves only the records given, on a free loopback port, and never forwards a query
(``--no-resolv`` and no upstream): names outside the test zone get no records.  Tests ask
only this server, and only for names in a ``.test`` zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from tests.peers.process import PeerProcess, free_port, require_binary

HOST = "127.0.0.1"


class Dnsmasq:
    """``naptr``: (name, order, preference, service, replacement); ``srv``: (name, target,
    port, priority, weight); ``hosts``: (name, address, ...); ``ttl``: --local-ttl."""

    def __init__(self, *, naptr: Sequence[tuple[str, int, int, str, str]] = (),
                 srv: Sequence[tuple[str, str, int, int, int]] = (),
                 hosts: Sequence[tuple[str, ...]] = (), ttl: int = 0) -> None:
        binary = require_binary("dnsmasq")
        self.port = free_port(HOST)
        argv = [binary, "--keep-in-foreground", "--no-daemon", "--no-resolv", "--no-hosts",
                "--no-poll", f"--port={self.port}", f"--listen-address={HOST}",
                "--bind-interfaces", "--log-queries", "--log-facility=-",
                f"--local-ttl={ttl}", "--pid-file="]
        for name, order, pref, service, repl in naptr:
            argv.append(f"--naptr-record={name},{order},{pref},S,{service},,{repl}")
        for name, target, port, prio, weight in srv:
            argv.append(f"--srv-host={name},{target},{port},{prio},{weight}")
        for name, *addrs in hosts:
            argv.append(f"--host-record={name},{','.join(addrs)}")
        self.process = PeerProcess(argv, ready=r"started, version", name="dnsmasq")

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def server(self) -> str:
        """``IP:PORT`` for ``--dns`` and ``[sip] dns_servers``."""
        return f"{HOST}:{self.port}"

    def queries(self) -> list[str]:
        """The questions it received ("query[SRV] _sip._udp.example.test from ...")."""
        return [line for line in self.process.log().splitlines() if "query[" in line]

    def start(self) -> Self:
        self.process.start(timeout=10)
        return self

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
