"""Thin Twisted adapter: a TURN :class:`ice.turn.Allocation` on its own UDP socket.

Used by ``siplink turn`` and the coturn tests.  (The ICE agent embeds the Allocation on its
own socket instead.)  Each operation returns a Deferred that fires with the event that ends it
or fails with :class:`TurnError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol

from ice.address import Address
from ice.drivers.stun import StunError
from ice.drivers.timer import TimerDriver
from ice.turn import (
    Allocation,
    AllocationFailed,
    AllocationRefreshed,
    AllocationSucceeded,
    ChannelBindFailed,
    ChannelBound,
    DataReceived,
    Event,
    PermissionCreated,
    PermissionFailed,
    Released,
)


class TurnError(StunError):
    """A TURN operation failed: ``code`` is the STUN error code, None for no answer."""

    def __init__(self, code: int | None, reason: str, during: str) -> None:
        super().__init__(f"{during}: {code if code is not None else 'timeout'} {reason}")
        self.code = code
        self.reason = reason
        self.during = during


_Waiter = tuple[Callable[[Event], bool], Callable[[Event], "TurnError | None"], Deferred[Any]]


class TurnClientProtocol(DatagramProtocol):
    def __init__(self, allocation: Allocation, clock: Any) -> None:
        self.allocation = allocation
        self.clock = clock
        self.events: deque[Event] = deque(maxlen=1000)   # the most recent, for inspection
        self.on_event: Callable[[Event], None] | None = None
        self.on_other: Callable[[bytes, Address], None] | None = None
        self._waiters: list[_Waiter] = []
        self._timer = TimerDriver(clock, allocation, self._pump)

    # ---- operations --------------------------------------------------------------------------

    def allocate(self) -> Deferred[AllocationSucceeded]:
        d = self._wait(lambda e: isinstance(e, AllocationSucceeded),
                       lambda e: _fail(e, AllocationFailed))
        self.allocation.allocate(self.clock.seconds())
        self._pump()
        return d

    def refresh(self, lifetime: int | None = None) -> Deferred[AllocationRefreshed]:
        d = self._wait(lambda e: isinstance(e, AllocationRefreshed),
                       lambda e: _fail(e, AllocationFailed))
        self.allocation.refresh(self.clock.seconds(), lifetime)
        self._pump()
        return d

    def release(self) -> Deferred[Released]:
        d = self._wait(lambda e: isinstance(e, Released), lambda e: None)
        self.allocation.release(self.clock.seconds())
        self._pump()
        return d

    def create_permission(self, peer: Address) -> Deferred[PermissionCreated]:
        ip = peer[0]
        if self.allocation.has_permission(ip):
            return succeed(PermissionCreated(ip))
        d = self._wait(lambda e: isinstance(e, PermissionCreated) and e.peer == ip,
                       lambda e: _fail(e, PermissionFailed) if getattr(e, "peer", None) == ip
                       else None)
        self.allocation.create_permission(peer, self.clock.seconds())
        self._pump()
        return d

    def bind_channel(self, peer: Address) -> Deferred[ChannelBound]:
        number = self.allocation.channel_for(peer)
        if number is not None:
            return succeed(ChannelBound(peer, number))
        d = self._wait(lambda e: isinstance(e, ChannelBound) and e.peer == peer,
                       lambda e: _fail(e, ChannelBindFailed) if getattr(e, "peer", None) == peer
                       else None)
        self.allocation.bind_channel(peer, self.clock.seconds())
        self._pump()
        return d

    def send_to(self, peer: Address, data: bytes) -> None:
        self.allocation.send_to(peer, data, self.clock.seconds())
        self._pump()

    def receive_from(self, peer: Address | None = None) -> Deferred[DataReceived]:
        """The next DataReceived (from ``peer`` when given)."""
        return self._wait(lambda e: isinstance(e, DataReceived)
                          and (peer is None or e.peer == peer), lambda e: None)

    # ---- Twisted plumbing --------------------------------------------------------------------

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802 - Twisted API
        source = (addr[0], addr[1])
        if not self.allocation.receive(datagram, source, self.clock.seconds()):
            if self.on_other is not None:
                self.on_other(datagram, source)
        self._pump()

    def stopProtocol(self) -> None:  # noqa: N802 - Twisted API
        self._timer.cancel()

    def _transport(self) -> Any:
        return self.transport

    def _pump(self) -> None:
        now = self.clock.seconds()
        if (transport := self._transport()) is not None:
            for data, addr in self.allocation.datagrams_to_send(now):
                transport.write(data, addr)
        while (event := self.allocation.next_event()) is not None:
            self.events.append(event)
            if self.on_event is not None:
                self.on_event(event)
            self._dispatch(event)
        # dispatching may have queued more (e.g. data waiting for a permission)
        if (transport := self._transport()) is not None:
            for data, addr in self.allocation.datagrams_to_send(now):
                transport.write(data, addr)
        self._timer.rearm(now)

    def _wait(self, ok: Callable[[Event], bool],
              fail: Callable[[Event], TurnError | None]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._waiters.append((ok, fail, d))
        return d

    def _dispatch(self, event: Event) -> None:
        for waiter in list(self._waiters):
            ok, fail, d = waiter
            if ok(event):
                self._waiters.remove(waiter)
                d.callback(event)
                continue
            error = fail(event)
            if error is not None:
                self._waiters.remove(waiter)
                d.errback(error)


def _fail(event: Event, kind: type) -> TurnError | None:
    if isinstance(event, AllocationFailed) and kind is AllocationFailed:
        return TurnError(event.code, event.reason, event.during)
    if isinstance(event, PermissionFailed) and kind is PermissionFailed:
        return TurnError(event.code, event.reason, "create-permission")
    if isinstance(event, ChannelBindFailed) and kind is ChannelBindFailed:
        return TurnError(event.code, event.reason, "channel-bind")
    if isinstance(event, AllocationFailed):
        return TurnError(event.code, event.reason, event.during)
    return None
