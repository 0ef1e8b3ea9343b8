"""An ``aioice.Connection`` (an ICE implementation we did not write) running in a thread
with its own asyncio loop, gathering on loopback only.

aioice gathers on every address of the machine and leaves 127.0.0.1 out; the peer replaces
its address lister with one that returns exactly the addresses the test names, so no packet
ever leaves loopback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from ice.candidate import Candidate, CandidateType

try:
    import aioice
    import aioice.ice
except ImportError:  # pragma: no cover - a missing peer is a failure, not a skip
    aioice = None


def require_aioice() -> Any:
    if aioice is None:
        pytest.fail("peer library aioice is not installed: pip install aioice==0.13.0")
    return aioice


def to_aioice(c: Candidate) -> Any:
    return aioice.Candidate(
        foundation=c.foundation, component=c.component, transport=c.transport,
        priority=c.priority, host=c.address, port=c.port, type=c.type.value,
        related_address=c.related_address, related_port=c.related_port)


def from_aioice(c: Any) -> Candidate:
    return Candidate(
        foundation=c.foundation, component=c.component, transport=c.transport.lower(),
        priority=c.priority, address=c.host, port=c.port, type=CandidateType(c.type),
        related_address=c.related_address, related_port=c.related_port)


class AioicePeer:
    """``peer = AioicePeer(controlling=False); peer.start(); ...; peer.stop()``."""

    def __init__(self, controlling: bool, *, components: int = 1,
                 addresses: Sequence[str] = ("127.0.0.1",), **kwargs: Any) -> None:
        require_aioice()
        self.controlling = controlling
        self.components = components
        self.addresses = list(addresses)
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="aioice-peer")
        self.conn: Any = None

    def run(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self, timeout: float = 10.0) -> AioicePeer:
        addresses = self.addresses
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)
        self.thread.start()

        async def make() -> None:
            self.conn = aioice.Connection(ice_controlling=self.controlling,
                                          components=self.components, use_ipv6=False,
                                          **self.kwargs)
            await self.conn.gather_candidates()

        self.run(make()).result(timeout)
        return self

    @property
    def username(self) -> str:
        return str(self.conn.local_username)

    @property
    def password(self) -> str:
        return str(self.conn.local_password)

    def candidates(self) -> list[Candidate]:
        return [from_aioice(c) for c in self.conn.local_candidates]

    def connect(self, ufrag: str, pwd: str, candidates: Sequence[Candidate]
                ) -> concurrent.futures.Future[Any]:
        """Set the remote side and run ``connect()``; the future fails on ICE failure."""
        async def go() -> None:
            self.conn.remote_username = ufrag
            self.conn.remote_password = pwd
            for c in candidates:
                await self.conn.add_remote_candidate(to_aioice(c))
            await self.conn.add_remote_candidate(None)
            await self.conn.connect()

        return self.run(go())

    def send(self, data: bytes, component: int = 1) -> concurrent.futures.Future[Any]:
        return self.run(self.conn.sendto(data, component))

    def recv(self, timeout: float = 5.0) -> concurrent.futures.Future[Any]:
        async def go() -> tuple[bytes, int]:
            return await asyncio.wait_for(self.conn.recvfrom(), timeout)  # type: ignore[no-any-return]

        return self.run(go())

    def selected(self, component: int = 1) -> tuple[tuple[str, int], tuple[str, int]] | None:
        pair = self.conn._nominated.get(component)
        if pair is None:
            return None
        return (pair.local_addr, pair.remote_addr)

    def stop(self) -> None:
        if self.conn is not None and self.thread.is_alive():
            try:
                self.run(self.conn.close()).result(5)
            except Exception:  # noqa: BLE001 - best effort on teardown
                pass
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()
