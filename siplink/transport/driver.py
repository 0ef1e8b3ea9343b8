"""SIP transports on Twisted (RFC 3261 §18): UDP, TCP and TLS drivers for a TransactionLayer.

:class:`SipTransport` is the thin I/O adapter around the sans-I/O
:class:`~siplink.core.transaction.TransactionLayer`: it owns the listening sockets, feeds every
datagram / framed stream message into the layer with ``reactor.seconds()`` as ``now``, writes
what the layer queues, keeps exactly one ``callLater`` armed at the layer's next deadline, and
hands the layer's events to the transaction user (a callback).

Stream transports reuse connections (§18 and RFC 5923's spirit): connections are keyed by the
remote address, both the ones we opened and the ones accepted, so a response or a request to
an address we already talk to goes on the same connection. Responses are routed by the layer
per §18.2.2 (``response_target``) using the received/rport parameters stamped on arrival.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger

from ice.address import Address
from ice.drivers.timer import TimerDriver
from ice.drivers.tls import VerifyingClientTLS
from ice.stun import is_stun
from siplink.core.transaction import Event, Target, TransactionLayer
from siplink.sip.message import SipParseError, StreamParser

log = Logger()

__all__ = ["SipTransport", "Target"]

MAX_DATAGRAM = 65535
CONNECT_TIMEOUT = 10.0
# A stream message started must be complete this long after the last complete one (64*T1),
# else the connection is closed: a peer that never finishes a header section or a body
# cannot hold a connection (and its buffer) forever.
INCOMPLETE_TIMEOUT = 32.0
UDP_BUFFER = 4 * 1024 * 1024


def _grow_buffers(sock: Any, size: int = UDP_BUFFER) -> None:
    """Bigger UDP socket buffers: call-rate bursts overflow the 208 KiB default and every
    dropped datagram costs a 500 ms retransmission."""
    import socket
    for opt, force in ((socket.SO_RCVBUF, 33), (socket.SO_SNDBUF, 32)):  # SO_*BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass


class _UdpProtocol(protocol.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 - Twisted API
        host, port = addr[0], addr[1]
        if not data.strip(b"\r\n"):
            return  # RFC 5626 keep-alive (CRLF)
        if data[0] < 2 and is_stun(data):       # RFC 5626 §4.4.1 STUN keep-alive answers
            for listener in list(self.owner.stun_listeners):
                try:
                    listener(data, Target("udp", host, port))
                except Exception:
                    log.failure("STUN listener failed")
            return
        self.owner._input(data, Target("udp", host, port))


class _StreamProtocol(protocol.Protocol):
    """One TCP/TLS connection; frames messages with the codec's StreamParser."""

    transport: Any

    def __init__(self, owner: SipTransport, transport_name: str) -> None:
        self.owner = owner
        self.name = transport_name
        self.parser = StreamParser()
        self.remote: Target | None = None
        self.local: Address | None = None   # our end, once connected
        self.dialed: Target | None = None           # the target we connected to (client side)
        self.pending: list[bytes] = []
        self._incomplete: Any = None      # callLater closing a stalled partial message

    def connectionMade(self) -> None:  # noqa: N802
        peer = self.transport.getPeer()
        host = self.transport.getHost()
        self.remote = Target(self.name, peer.host, peer.port)
        self.local = (host.host, host.port)
        self.owner._connections[self.remote] = self
        self.owner._connecting.pop(self.remote, None)
        if self.dialed is not None:
            self.owner.layer.stream_local(self.dialed, self.local)
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        assert self.remote is not None
        try:
            messages = self.parser.feed(data)
        except SipParseError as e:
            log.info("closing {remote}: unframeable stream ({reason})", remote=self.remote,
                     reason=e.reason)
            self.transport.loseConnection()
            return
        errors = self.parser.pop_errors()
        if (messages or errors) and self._incomplete is not None:
            self._incomplete.cancel()             # progress: a message was framed
            self._incomplete = None
        for msg in messages:
            self.owner._input_message(msg, self.remote)
        for err in errors:
            self.owner._input_error(err, self.remote)
        if self.parser.buffered and self._incomplete is None and self.transport is not None:
            self._incomplete = self.owner.reactor.callLater(self.owner.incomplete_timeout,
                                                            self._stalled)

    def _stalled(self) -> None:
        self._incomplete = None
        log.info("closing {remote}: message incomplete after {t} s ({n} octets buffered)",
                 remote=self.remote, t=self.owner.incomplete_timeout, n=self.parser.buffered)
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if self._incomplete is not None and self._incomplete.active():
            self._incomplete.cancel()
        self._incomplete = None
        if self.remote is not None and self.owner._connections.get(self.remote) is self:
            del self.owner._connections[self.remote]
        flow = self.dialed or self.remote
        if flow is not None and not self.owner._closed:
            for listener in list(self.owner.flow_listeners):
                try:
                    listener(flow)
                except Exception:
                    log.failure("flow listener failed")


class _StreamFactory(protocol.Factory):
    def __init__(self, owner: SipTransport, name: str) -> None:
        self.owner = owner
        self.name = name

    def buildProtocol(self, addr: Any) -> _StreamProtocol:  # noqa: N802
        return _StreamProtocol(self.owner, self.name)


class _ClientStreamFactory(protocol.ClientFactory):
    def __init__(self, owner: SipTransport, name: str, proto: _StreamProtocol,
                 target: Target) -> None:
        self.owner = owner
        self.name = name
        self.proto = proto
        self.target = target

    def buildProtocol(self, addr: Any) -> _StreamProtocol:  # noqa: N802
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:  # noqa: N802
        log.info("connection to {t} failed: {r}", t=self.target, r=reason.getErrorMessage())
        if self.owner._connecting.get(self.target) is self.proto:
            del self.owner._connecting[self.target]
        self.owner.layer.stream_local(self.target, None)   # trace what never left
        # RFC 3261 §8.1.3.1: a refused connection fails the requests at once, not at timer B
        self.owner.layer.transport_failed(self.target, reason.getErrorMessage(),
                                          self.owner.reactor.seconds())
        self.owner.pump()


class SipTransport:
    """Sockets + one timer around a :class:`TransactionLayer` (see the module docstring)."""

    def __init__(self, layer: TransactionLayer, reactor: Any,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.layer = layer
        self.reactor = reactor
        self.on_event = on_event
        self._udp: dict[str, Any] = {}           # family "4"/"6" -> listening port
        self._listening: dict[str, Any] = {}     # transport name -> IListeningPort
        self._connections: dict[Target, _StreamProtocol] = {}
        self._connecting: dict[Target, _StreamProtocol] = {}
        self._tls_client_ctx: Any = None
        # certificates TLS connections we open must chain to (an IOpenSSLTrustRoot, e.g.
        # ssl.Certificate of a CA); None: the platform's CAs.  Verification is always on
        # unless a client context given to listen_tls/set_tls_client_context says otherwise.
        self.tls_trust_root: Any = None
        # (address, port) -> the host name it was resolved from, for the TLS name check
        self.server_names: dict[tuple[str, int], str] = {}
        # one delayed call at the deadline of the layer, or of a core that includes it
        # (``clock``: the user-agent core)
        self._timer = TimerDriver(reactor, layer, self.pump, failure="timer handling failed",
                                  log=log)
        self._pumping = False
        self._closed = False
        # what runs once the layer is idle (the core's events; True when it did something)
        self.on_idle: Callable[[], bool] | None = None
        self.local: dict[str, Target] = {}       # transport name -> our bound address
        self._udp_local: dict[str, Address] = {}   # family -> UDP socket address
        self.incomplete_timeout = INCOMPLETE_TIMEOUT
        # told the target of every TCP/TLS connection that closed (RFC 5626 §4.4: a
        # registration whose flow died registers again on a new one)
        self.flow_listeners: list[Callable[[Target], None]] = []
        # STUN messages that arrive on the SIP UDP socket (keep-alive Binding responses)
        self.stun_listeners: list[Callable[[bytes, Target], None]] = []
        layer.local_for = self.local_address
        # a context-manager factory entered whenever a socket is made (a listener, or a
        # TCP/TLS connection opened later when a request needs one): e.g. a network
        # namespace's ``entered`` so that connections are dialled from where we listen
        self.bind_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None

    # --------------------------------------------------------------- sockets
    def listen_udp(self, host: str = "127.0.0.1", port: int = 0) -> Target:
        with self._socket_context():
            p = self.reactor.listenUDP(port, _UdpProtocol(self), interface=host,
                                       maxPacketSize=MAX_DATAGRAM)
        _grow_buffers(p.socket)
        self._udp["6" if ":" in host else "4"] = p
        self._listening["udp"] = p
        addr = p.getHost()
        self.local["udp"] = Target("udp", addr.host, addr.port)
        self._udp_local["6" if ":" in host else "4"] = (addr.host, addr.port)
        return self.local["udp"]

    def listen_tcp(self, host: str = "127.0.0.1", port: int = 0) -> Target:
        with self._socket_context():
            p = self.reactor.listenTCP(port, _StreamFactory(self, "tcp"), interface=host)
        self._listening["tcp"] = p
        addr = p.getHost()
        self.local["tcp"] = Target("tcp", addr.host, addr.port)
        return self.local["tcp"]

    def listen_tls(self, host: str, port: int, server_context: Any,
                   client_context: Any = None) -> Target:
        """TLS listener; ``server_context`` is an ``IOpenSSLServerConnectionCreator``
        (e.g. ``ssl.PrivateCertificate.options()``); ``client_context`` is used to connect."""
        with self._socket_context():
            p = self.reactor.listenSSL(port, _StreamFactory(self, "tls"), server_context,
                                       interface=host)
        self._listening["tls"] = p
        if client_context is not None:
            self._tls_client_ctx = client_context
        addr = p.getHost()
        self.local["tls"] = Target("tls", addr.host, addr.port)
        return self.local["tls"]

    def set_tls_client_context(self, ctx: Any) -> None:
        self._tls_client_ctx = ctx

    def close(self) -> None:
        self._closed = True        # nothing is written nor armed after this
        self._timer.cancel()
        for p in self._listening.values():
            p.stopListening()
        self._listening.clear()
        self._udp.clear()
        for conn in list(self._connections.values()) + list(self._connecting.values()):
            if conn.transport is not None:
                conn.transport.loseConnection()
        self._connections.clear()
        for target in list(self._connecting):
            self.layer.stream_local(target, None)
        self._connecting.clear()

    @property
    def clock(self) -> Any:
        """The core whose deadlines the transport's one timer follows: the transaction
        layer, or the user-agent core that includes it."""
        return self._timer.core

    @clock.setter
    def clock(self, core: Any) -> None:
        self._timer.core = core
        self._arm()

    def local_address(self, target: Target) -> Address | None:
        """Our end of the path to or from ``target``: the UDP socket of its family, or the
        stream connection's local address (None while that connection is still opening)."""
        if target.transport == "udp":
            return self._udp_local.get("6" if ":" in target.host else "4")
        conn = self._connections.get(target) or self._connecting.get(target)
        return conn.local if conn is not None else None

    # --------------------------------------------------------------- input
    def _input(self, data: bytes, source: Target) -> None:
        try:
            self.layer.receive(data, source, self.reactor.seconds())
        except Exception:  # never let a bug take the reactor down
            log.failure("error handling a message from {source}", source=source)
        self.pump()

    def _input_error(self, err: SipParseError, source: Target) -> None:
        try:
            self.layer.reject_malformed(b"", source, err, self.reactor.seconds())
        except Exception:
            log.failure("error answering a malformed message from {source}", source=source)
        self.pump()

    def _input_message(self, msg: Any, source: Target) -> None:
        try:
            self.layer.receive_message(msg, source, self.reactor.seconds())
        except Exception:
            log.failure("error handling a message from {source}", source=source)
        self.pump()

    # --------------------------------------------------------------- output
    def pump(self) -> None:
        """Flush queued messages, deliver events, re-arm the timer; re-entrancy safe."""
        if self._pumping or self._closed:
            return
        self._pumping = True
        try:
            while True:
                out = self.layer.datagrams_to_send()
                for data, target in out:
                    self._write(data, target)
                ev = self.layer.next_event()
                if ev is not None and self.on_event is not None:
                    try:
                        self.on_event(ev)
                    except Exception:
                        log.failure("transaction user failed on {ev}", ev=type(ev).__name__)
                if ev is not None or out:
                    continue
                # the transaction user's own events (it may send more)
                if self.on_idle is not None and self.on_idle():
                    continue
                break
        finally:
            self._pumping = False
        self._arm()

    def send_keepalive(self, target: Target, data: bytes) -> None:
        """A keep-alive on the flow to ``target`` (RFC 5626 §4.4.1): on a stream only when
        the connection is up (a keep-alive never opens one)."""
        if target.transport != "udp":
            conn = self._connections.get(target)
            if conn is None or conn.transport is None:
                return
        self._write(data, target)

    def _write(self, data: bytes, target: Target) -> None:
        if target.transport == "udp":
            port = self._udp.get("6" if ":" in target.host else "4")
            if port is None:
                log.warn("no UDP socket for {t}", t=target)
                return
            try:
                port.write(data, (target.host, target.port))
            except (OSError, ValueError, OverflowError) as e:
                # e.g. a Via sent-by hostname without rport (Twisted writes to IPs only):
                # that one response is lost, the pump and its timer go on
                log.info("send to {t} failed: {e}", t=target, e=e)
            return
        conn = self._connections.get(target) or self._connecting.get(target)
        if conn is not None and conn.transport is not None and conn.remote is not None:
            conn.transport.write(data)
            return
        if conn is not None:
            conn.pending.append(data)
            return
        proto = _StreamProtocol(self, target.transport)
        proto.dialed = target
        proto.pending.append(data)
        self._connecting[target] = proto
        factory = _ClientStreamFactory(self, target.transport, proto, target)
        with self._socket_context():
            if target.transport == "tls":
                self.reactor.connectSSL(target.host, target.port, factory,
                                        self._tls_client_ctx or self._verifying_context(target),
                                        timeout=CONNECT_TIMEOUT)
            else:
                self.reactor.connectTCP(target.host, target.port, factory,
                                        timeout=CONNECT_TIMEOUT)

    def _socket_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.bind_context() if self.bind_context is not None else contextlib.nullcontext()

    def _verifying_context(self, target: Target) -> Any:
        """TLS client options that check the server's certificate chain and that it names
        the server (RFC 5922 §7.1: the host name of the URI the address was resolved from,
        ``server_names``; the address itself only when the URI was numeric), against
        ``tls_trust_root`` or the platform's CAs."""
        from twisted.internet import ssl
        trust = self.tls_trust_root if self.tls_trust_root is not None else ssl.platformTrust()
        name = self.server_names.get((target.host, target.port), target.host)
        return VerifyingClientTLS(name, trust)

    def _arm(self) -> None:
        if not self._closed:
            self._timer.rearm()
