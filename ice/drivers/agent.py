"""The Twisted driver of :class:`ice.agent.Agent`: real UDP sockets, one per component per
stream per local address, and one ``callLater`` kept armed at the agent's next deadline.

Every datagram on a socket goes to the agent, which demultiplexes it (STUN checks, TURN
traffic from a server it allocated on, application data such as RTP, reported as
:class:`ice.events.ApplicationData`).  Failures reach the caller as failed Deferreds
(:class:`IceFailedError`) or events, never as exceptions in the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ice.address import Address
from ice.agent import Agent
from ice.candidate import Candidate
from ice.drivers.timer import TimerDriver
from ice.drivers.turn_stream import AgentRelayStreams
from ice.events import (
    ApplicationData,
    Event,
    GatheringComplete,
    IceCompleted,
    IceFailed,
)

log = Logger(namespace="ice.drivers.agent")


class IceFailedError(Exception):
    def __init__(self, stream: int, reason: str) -> None:
        super().__init__(f"ICE failed on stream {stream}: {reason}")
        self.stream = stream
        self.reason = reason


class _Socket(DatagramProtocol):
    def __init__(self, owner: TwistedAgent, local: Address) -> None:
        self.owner = owner
        self.local = local

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 - Twisted API
        self.owner._datagram(data, self.local, (addr[0], addr[1]))


class TwistedAgent:
    """Runs ``agent`` on the reactor.  ``on_event`` sees every event but media, which goes to
    ``on_data`` as ``(stream, component, data, remote)``; ``events`` keeps the non-media
    events with their time."""

    def __init__(
        self,
        agent: Agent,
        reactor: Any = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        on_data: Callable[[int, int, bytes, Address], None] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.agent = agent
        self.reactor = reactor
        self.on_event = on_event
        self.on_data = on_data
        self.events: list[tuple[float, Event]] = []
        self._ports: dict[Address, Any] = {}
        self._timer = TimerDriver(reactor, agent, self._pump,
                                  failure="ICE agent raised in handle_timer", log=log)
        self._gathered: defer.Deferred[list[Candidate]] | None = None
        self._connected: defer.Deferred[None] | None = None
        self._closing: defer.Deferred[None] | None = None
        self._pending_streams: set[int] = set()
        self._gather_left: set[int] = set()
        self._relay_streams = AgentRelayStreams(agent, reactor, self._pump)   # TURN TCP/TLS

    # ---- sockets -------------------------------------------------------------------------
    def bind(self) -> list[Address]:
        """Bind every host socket the agent asks for (port 0: the OS picks)."""
        from twisted.internet.error import CannotListenError

        udp: Any = self.reactor
        for stream, component, ip in self.agent.addresses_to_bind():
            proto = _Socket(self, ("", 0))
            try:
                port = udp.listenUDP(0, proto, interface=ip)
            except CannotListenError as e:
                # an address that went away: gather on the others (RFC 8445 §5.1.1.1)
                log.warn("cannot bind {ip}: {e}", ip=ip, e=e)
                continue
            host = port.getHost()
            local = (ip, host.port)
            proto.local = local
            self._ports[local] = port
            self.agent.add_host_socket(stream, component, local)
        return list(self._ports)

    @property
    def now(self) -> float:
        clock: Any = self.reactor
        return float(clock.seconds())

    # ---- lifecycle -------------------------------------------------------------------------
    def gather(self) -> defer.Deferred[list[Candidate]]:
        """Gather; fires with every local candidate once gathering completed everywhere."""
        if not self._ports:
            self.bind()
        if not self._ports:
            return defer.fail(IceFailedError(0, "no local address could be bound: "
                                                + ", ".join(self.agent.local_addresses)))
        self._gathered = defer.Deferred()
        self._gather_left = set(range(self.agent.streams))
        d = self._gathered
        self.agent.gather(self.now)
        self._pump()
        return d

    def start(self) -> defer.Deferred[None]:
        """Start checks; fires when every stream completed, fails with IceFailedError."""
        self._connected = defer.Deferred()
        self._pending_streams = set(range(self.agent.streams))
        d = self._connected
        self.agent.start_checks(self.now)
        self._pump()
        return d

    def add_remote_candidates(self, stream: int, candidates: Sequence[Candidate],
                              end: bool = False) -> None:
        """Trickled remote candidates (RFC 8838), and ``end``: the peer's end-of-candidates;
        new pairs are checked at once."""
        now = self.now
        for c in candidates:
            self.agent.add_remote_candidate(stream, c, now)
        if end:
            self.agent.end_of_candidates(stream, now)
        self._pump()

    def restart(self) -> None:
        """ICE restart: new local credentials (signal them), then set the remote ones and
        candidates and call :meth:`start` again; media stays on the old pairs meanwhile."""
        self.agent.restart(self.now)
        self._pump()

    def remove_component(self, stream: int, component: int) -> None:
        """:meth:`ice.agent.Agent.remove_component` (before :meth:`start`): its TURN
        allocations are released, then its sockets closed."""
        self.agent.remove_component(stream, component, self.now)
        self._pump()

    def send(self, stream: int, component: int, data: bytes) -> bool:
        ok = self.agent.send_data(stream, component, data)
        if ok:
            self._pump()
        return ok

    def send_without_ice(self, stream: int, component: int, data: bytes, remote: Address
                         ) -> bool:
        """Send ``data`` to a peer that does not do ICE, from the default candidate."""
        ok = self.agent.send_without_ice(stream, component, data, remote)
        if ok:
            self._pump()
        return ok

    def close(self, release_timeout: float = 2.0) -> defer.Deferred[None]:
        """Close the agent, release TURN allocations (waiting at most ``release_timeout``),
        then close every socket and cancel the timer."""
        if self._closing is not None:
            return self._closing
        self._closing = defer.Deferred()
        self.agent.close(self.now)
        self._pump()
        deadline = self.now + release_timeout

        def check() -> None:
            if self.agent.released or self.now >= deadline:
                self._shutdown()
                return
            self.reactor.callLater(0.02, check)

        check()
        return self._closing

    def _shutdown(self) -> None:
        self._timer.cancel()
        ports, self._ports = list(self._ports.values()), {}
        ds = [defer.maybeDeferred(p.stopListening) for p in ports]
        ds += self._relay_streams.close()
        done = self._closing
        assert done is not None
        defer.gatherResults(ds, consumeErrors=True).addBoth(lambda _: done.callback(None))

    # ---- the pump ----------------------------------------------------------------------------
    def _datagram(self, data: bytes, local: Address, remote: Address) -> None:
        try:
            self.agent.receive(data, local, remote, self.now)
        except Exception:  # the agent must not raise; if it does, never kill the reactor
            log.failure("ICE agent raised on a datagram from {remote}", remote=remote)
        self._pump()

    def _pump(self) -> None:
        now = self.now
        for _ in range(2):   # events may queue more output (a data reply, a nomination)
            for data, local, remote in self.agent.datagrams_to_send(now):
                port = self._ports.get(local)
                if port is None:
                    continue
                try:
                    port.write(data, remote)
                except OSError as e:
                    log.info("send to {remote} failed: {e}", remote=remote, e=e)
            self._relay_streams.pump()
            self._drain(now)
        for local in self.agent.sockets_to_close():   # of a removed component
            port = self._ports.pop(local, None)
            if port is not None:
                defer.maybeDeferred(port.stopListening).addErrback(
                    lambda f: log.failure("closing a removed component's socket", f))
        if self._ports:
            self._timer.rearm(now)
        else:
            self._timer.cancel()

    def _drain(self, now: float) -> None:
        while (ev := self.agent.next_event()) is not None:
            if not isinstance(ev, ApplicationData):
                self.events.append((now, ev))
            if isinstance(ev, ApplicationData):
                if self.on_data is not None:
                    try:
                        self.on_data(ev.stream, ev.component, ev.data, ev.remote)
                    except Exception:
                        log.failure("on_data callback raised")
                continue   # media is not kept in ``events``
            elif isinstance(ev, GatheringComplete):
                self._gather_left.discard(ev.stream)
                if not self._gather_left and self._gathered is not None:
                    d, self._gathered = self._gathered, None
                    cands = [c for s in range(self.agent.streams)
                             for c in self.agent.local_candidates(s)]
                    d.callback(cands)
            elif isinstance(ev, IceCompleted):
                self._pending_streams.discard(ev.stream)
                if not self._pending_streams and self._connected is not None:
                    d2, self._connected = self._connected, None
                    d2.callback(None)
            elif isinstance(ev, IceFailed):
                if self._connected is not None:
                    d3, self._connected = self._connected, None
                    d3.errback(IceFailedError(ev.stream, ev.reason))
            if self.on_event is not None:
                try:
                    self.on_event(ev)
                except Exception:
                    log.failure("on_event callback raised")
