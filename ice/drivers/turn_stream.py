"""Twisted driver for TURN over TCP and TLS (RFC 8656 §3.1): the connection an allocation runs
on, its framing, and the certificate check.

* :class:`TurnStream`: one TCP or TLS connection to a TURN server; writes wait until it is
  up; what arrives is split into messages by :class:`ice.stream_framing.StreamFramer`; every
  way it can end (refused, timed out, TLS verification, closed by the server, garbage on the
  stream) reaches ``on_lost`` once, as a sentence.
* :class:`TurnStreamClient`: :class:`ice.drivers.turn.TurnClientProtocol` on a
  :class:`TurnStream` instead of a UDP socket (``siplink turn --transport tcp|tls``, tests).
* :class:`AgentRelayStreams`: opens the connections the ICE agent asks for
  (:meth:`ice.agent.Agent.stream_connections_to_open`) and carries its TURN messages.

Over TLS the server's certificate must chain to the trusted CAs (the PEM file ``tls_ca``, or
the system's) and name the configured host (a DNS name or an IP address in subjectAltName;
RFC 8656 §3.1 / RFC 6125), else the handshake is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ice.address import format_address
from ice.drivers.tls import TlsConfigError, VerifyingClientTLS, load_trust_root
from ice.drivers.turn import TurnClientProtocol, TurnError
from ice.stream_framing import FramingError, StreamFramer, frame
from ice.turn import STREAM_TRANSPORTS, Allocation, StreamConnection

log = Logger(namespace="ice.drivers.turn_stream")

Address = tuple[str, int]

CONNECT_TIMEOUT = 10.0


@implementer(IHandshakeListener)
class _StreamProtocol(Protocol):
    def __init__(self, owner: TurnStream) -> None:
        self.owner = owner
        self.framer = StreamFramer()

    def connectionMade(self) -> None:  # noqa: N802 - Twisted API
        if self.owner.transport_name == "tcp":
            self.owner._up(self)

    def handshakeCompleted(self) -> None:  # noqa: N802 - Twisted API
        self.owner._up(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted API
        try:
            messages = self.framer.feed(data)
        except FramingError as e:
            self.owner._lose(f"TURN server {self.owner.where} sent {e.reason}; connection "
                             "closed")
            if self.transport is not None:
                self.transport.abortConnection()
            return
        for message in messages:
            self.owner._message(message)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: N802, B008
        self.owner._down(reason)


class _Factory(ClientFactory):
    def __init__(self, owner: TurnStream) -> None:
        self.owner = owner

    def buildProtocol(self, addr: Any) -> _StreamProtocol:  # noqa: N802 - Twisted API
        return _StreamProtocol(self.owner)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:  # noqa: N802
        self.owner._lose(f"cannot connect to TURN server {self.owner.where} over "
                         f"{self.owner.transport_name.upper()}: {reason.getErrorMessage()}")


class TurnStream:
    """One TCP or TLS connection to ``server`` (host name or IP, port), opened by
    :meth:`open`.  ``on_connected(local)`` when it is up (after the TLS handshake),
    ``on_message(bytes)`` for each STUN or ChannelData message, ``on_lost(reason)`` once."""

    def __init__(
        self,
        reactor: Any,
        server: Address,
        transport: str,
        *,
        bind: str | None = None,
        tls_ca: str = "",
        trust_root: Any = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        on_connected: Callable[[Address], None] | None = None,
        on_message: Callable[[bytes], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        if transport not in STREAM_TRANSPORTS:
            raise ValueError(f"a TURN stream is tcp or tls, not {transport!r}")
        self.reactor = reactor
        self.server = server
        self.transport_name = transport
        self.bind = bind
        self.tls_ca = tls_ca
        self.trust_root = trust_root
        self.connect_timeout = connect_timeout
        self.on_connected = on_connected
        self.on_message = on_message
        self.on_lost = on_lost
        self.local: Address | None = None
        self.lost: str | None = None           # why it ended, once it has
        self._proto: _StreamProtocol | None = None
        self._connected = False
        self._pending: list[bytes] = []
        self._tls: VerifyingClientTLS | None = None
        self._connector: Any = None
        self._closing = False                  # close() was called: the end is ours
        self._closed: defer.Deferred[None] = defer.Deferred()

    @property
    def where(self) -> str:
        host, port = self.server
        return format_address(host, port)

    @property
    def connected(self) -> bool:
        return self._connected and self.lost is None

    def open(self) -> None:
        """Connect (raises :class:`TlsConfigError` for an unreadable CA file)."""
        factory: Any = _Factory(self)
        if self.transport_name == "tls":
            from twisted.protocols.tls import TLSMemoryBIOFactory

            trust = self.trust_root if self.trust_root is not None else load_trust_root(
                self.tls_ca)
            self._tls = VerifyingClientTLS(self.server[0], trust)
            creator: Any = self._tls
            factory = TLSMemoryBIOFactory(creator, True, factory)
        bind = (self.bind, 0) if self.bind else None
        self._connector = self.reactor.connectTCP(self.server[0], self.server[1], factory,
                                                  timeout=self.connect_timeout,
                                                  bindAddress=bind)

    def write(self, message: bytes) -> None:
        """Send one message (ChannelData padded); held until the connection is up."""
        if self.lost is not None:
            return
        data = frame(message)
        transport: Any = self._proto.transport if self._proto is not None else None
        if self._connected and transport is not None:
            transport.write(data)
        else:
            self._pending.append(data)

    def close(self) -> defer.Deferred[None]:
        """Close the connection; fires once it is closed.  ``on_lost`` is not called for a
        close we asked for."""
        self._closing = True
        transport: Any = self._proto.transport if self._proto is not None else None
        if transport is not None and self.lost is None:
            transport.loseConnection()
        elif self._connector is not None and self.lost is None:
            self._connector.disconnect()
        if self.lost is not None and not self._closed.called:
            self._closed.callback(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._closed.addBoth(lambda _: d.callback(None))
        return d

    # ---- from the protocol -------------------------------------------------------------------
    def _up(self, proto: _StreamProtocol) -> None:
        if self._connected:
            return
        self._proto = proto
        self._connected = True
        transport: Any = proto.transport
        host = transport.getHost()
        self.local = (host.host, host.port)
        log.info("TURN over {t} to {where} connected from {local}", t=self.transport_name,
                 where=self.where, local=self.local)
        pending, self._pending = self._pending, []
        for data in pending:
            transport.write(data)
        if self.on_connected is not None:
            self.on_connected(self.local)

    def _message(self, message: bytes) -> None:
        if self.lost is None and self.on_message is not None:
            self.on_message(message)

    def _down(self, reason: Failure) -> None:
        if self.lost is None and self._closing:
            self.lost = "closed"
        if self.lost is None:
            if self._tls is not None and not self._connected:
                why = self._tls.failure or reason.getErrorMessage()
                self._lose(f"TLS handshake with TURN server {self.where} failed: {why}")
            elif self._connected:
                self._lose(f"TURN server {self.where} closed the "
                           f"{self.transport_name.upper()} connection")
            else:
                self._lose(f"connection to TURN server {self.where} ended: "
                           f"{reason.getErrorMessage()}")
        if not self._closed.called:
            self._closed.callback(None)

    def _lose(self, reason: str) -> None:
        if self.lost is not None:
            return
        if self._closing:              # the connect we cancelled in close()
            self.lost = "closed"
            if not self._closed.called:
                self._closed.callback(None)
            return
        self.lost = reason
        self._pending.clear()
        log.info("{reason}", reason=reason)
        if self._proto is None and not self._closed.called:
            self._closed.callback(None)    # never connected: nothing left to close
        if self.on_lost is not None:
            self.on_lost(reason)


class _StreamWriter:
    """What :class:`TurnClientProtocol` writes to: ``write(data, addr)`` onto the stream."""

    def __init__(self, stream: TurnStream) -> None:
        self.stream = stream

    def write(self, data: bytes, addr: Address) -> None:
        self.stream.write(data)


class TurnStreamClient(TurnClientProtocol):
    """A TURN client on a TCP or TLS connection (``allocation.transport``): :meth:`connect`
    first, then the operations of :class:`TurnClientProtocol`; :meth:`close` at the end."""

    def __init__(self, allocation: Allocation, clock: Any, *, bind: str | None = None,
                 tls_ca: str = "", trust_root: Any = None,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        super().__init__(allocation, clock)
        self._connect_d: defer.Deferred[Address] | None = None
        self.stream = TurnStream(clock, allocation.server, allocation.transport, bind=bind,
                                 tls_ca=tls_ca, trust_root=trust_root,
                                 connect_timeout=connect_timeout,
                                 on_connected=self._on_connected, on_message=self._on_message,
                                 on_lost=self._on_lost)
        self._writer = _StreamWriter(self.stream)

    def connect(self) -> defer.Deferred[Address]:
        """Fires with the local address once connected (TLS: verified); fails with
        :class:`TurnError` (``during`` "connect") saying why not."""
        d: defer.Deferred[Address] = defer.Deferred()
        self._connect_d = d
        try:
            self.stream.open()
        except (TlsConfigError, ValueError) as e:
            self._connect_d = None
            return defer.fail(TurnError(None, str(e), "connect"))
        return d

    def close(self) -> defer.Deferred[None]:
        self.stopProtocol()
        return self.stream.close()

    def _transport(self) -> Any:
        return self._writer

    def _on_connected(self, local: Address) -> None:
        self.allocation.local = local
        d, self._connect_d = self._connect_d, None
        if d is not None:
            d.callback(local)

    def _on_message(self, message: bytes) -> None:
        self.datagramReceived(message, self.allocation.server)

    def _on_lost(self, reason: str) -> None:
        d, self._connect_d = self._connect_d, None
        if d is not None:
            d.errback(TurnError(None, reason, "connect"))
        self.allocation.connection_lost(self.clock.seconds(), reason)
        self._pump()


class AgentRelayStreams:
    """The TCP/TLS connections of an ICE agent's TURN allocations, for its Twisted driver:
    :meth:`pump` after every agent step (opens what the agent asks for, writes what it
    sends), :meth:`close` at shutdown.  ``step`` is the driver's pump, run after each input."""

    def __init__(self, agent: Any, reactor: Any, step: Callable[[], None]) -> None:
        self.agent = agent
        self.reactor = reactor
        self.step = step
        self.streams: dict[StreamConnection, TurnStream] = {}

    def pump(self) -> None:
        for conn in self.agent.stream_connections_to_open():
            self._open(conn)
        for conn, data in self.agent.stream_data_to_send():
            stream = self.streams.get(conn)
            if stream is not None:
                stream.write(data)

    def close(self) -> list[defer.Deferred[None]]:
        streams, self.streams = list(self.streams.values()), {}
        return [s.close() for s in streams]

    def _open(self, conn: StreamConnection) -> None:
        def connected(local: Address) -> None:
            self._input(lambda now: self.agent.stream_connected(conn, local, now))

        def message(data: bytes) -> None:
            self._input(lambda now: self.agent.stream_received(conn, data, now))

        def lost(reason: str) -> None:
            self._input(lambda now: self.agent.stream_lost(conn, reason, now))

        stream = TurnStream(self.reactor, conn.server, conn.transport, bind=conn.bind,
                            tls_ca=conn.tls_ca, on_connected=connected, on_message=message,
                            on_lost=lost)
        self.streams[conn] = stream
        try:
            stream.open()
        except (TlsConfigError, ValueError) as e:
            self.reactor.callLater(0, lost, str(e))

    def _input(self, feed: Callable[[float], None]) -> None:
        try:
            feed(float(self.reactor.seconds()))
        except Exception:  # the agent must not raise; if it does, never kill the reactor
            log.failure("ICE agent raised on TURN stream input")
        self.step()


__all__ = ["AgentRelayStreams", "TurnStream", "TurnStreamClient", "TlsConfigError",
           "load_trust_root"]
