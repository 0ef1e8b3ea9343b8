"""Twisted adapters for :class:`siplink.media.stream.MediaStream` (the core stays sans-I/O).

:class:`MediaDriver` keeps one ``callLater`` armed at the stream's ``get_timer()``, flushes
``datagrams_to_send`` through a ``send(data, addr)`` callable and hands events to
``on_event``. It owns no socket, so the call layer can feed it from the one socket it shares
with STUN/TURN (after demultiplexing, RFC 7983) via :meth:`MediaDriver.datagram_received`.
:class:`RtpProtocol` is the simple case: a UDP socket used for RTP/RTCP only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger

from ice.address import Address
from ice.drivers.timer import TimerDriver
from siplink.media.stream import MediaEvent, MediaStream

__all__ = ["MediaDriver", "RtpProtocol"]

log = Logger()

# Twisted's zope interfaces do not type-check as Protocols without a plugin: the clock is an
# ``IReactorTime`` provider (the reactor, task.Clock), the delayed call an ``IDelayedCall``.
Clock = Any


class MediaDriver:
    def __init__(self, stream: MediaStream, send: Callable[[bytes, Address], None],
                 clock: Clock, *,
                 on_event: Callable[[MediaEvent], None] | None = None) -> None:
        self.stream = stream
        self._send = send
        self._clock = clock
        self.on_event = on_event
        self._timer = TimerDriver(clock, stream, self._service)
        self.events: list[MediaEvent] = []   # kept when no on_event is given (bounded)

    def start(self) -> None:
        self.stream.start(self._clock.seconds())
        self._service()

    def stop(self, reason: str = "") -> None:
        self.stream.stop(self._clock.seconds(), reason)
        self._service()
        self._timer.cancel()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.stream.receive(data, self._clock.seconds(), addr=addr)
        self._service()

    def send_dtmf(self, digits: str) -> None:
        self.stream.send_dtmf(digits)

    def _service(self) -> None:
        for data, addr in self.stream.datagrams_to_send(self._clock.seconds()):
            try:
                self._send(data, addr)
            except OSError as e:  # e.g. ICMP unreachable surfaced on a connected socket
                log.info("media send to {addr} failed: {err}", addr=addr, err=e)
        while (ev := self.stream.next_event()) is not None:
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:
                    log.failure("media event handler failed")
            elif len(self.events) < 10_000:
                self.events.append(ev)
        self._timer.rearm()


class RtpProtocol(protocol.DatagramProtocol):
    """A UDP socket carrying one MediaStream's RTP and RTCP (rtcp-mux)."""

    def __init__(self, stream: MediaStream, clock: Clock | None = None, *,
                 on_event: Callable[[MediaEvent], None] | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.driver = MediaDriver(stream, self._write, clock, on_event=on_event)

    def _write(self, data: bytes, addr: Address) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.write(data, addr)

    def startProtocol(self) -> None:
        self.driver.start()

    def stopProtocol(self) -> None:
        if self.driver.stream.get_timer() is not None:
            self.driver.stop("socket closed")

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.driver.datagram_received(datagram, (addr[0], addr[1]))
