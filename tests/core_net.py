"""User-agent cores on a simulated wire, in virtual time: no reactor, no clock, no sockets.

Each :class:`Node` is one :class:`~siplink.core.user_agent.UserAgentCore` over its own
:class:`~siplink.core.transaction.TransactionLayer`, with a seeded ``random.Random``.
:class:`Net` moves the datagrams every layer queues to the node whose address they name
(a ``drop`` predicate can lose some, ``delay`` adds latency), feeds the layers' events to
their cores, answers :class:`ResolveHost` from a table, and advances time to the next
deadline of any node. The cores are driven exactly as the Twisted driver drives them, so
these tests show the protocol behaviour itself, fast and deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from siplink.core.errors import CallState
from siplink.core.events import CallStateChanged, CoreEvent, IncomingCall, ResolveHost
from siplink.core.invite_session import InviteSession
from siplink.core.transaction import Target, TransactionLayer
from siplink.core.user_agent import UserAgentCore
from siplink.sip.message import Request, Response, parse_message

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@dataclass
class Wire:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    message: Request | Response
    data: bytes

    @property
    def label(self) -> str:
        m = self.message
        if isinstance(m, Request):
            return f"{m.method} {m.cseq.number}"
        return f"{m.status} {m.cseq.method} {m.cseq.number}"


@dataclass
class Node:
    name: str
    address: tuple[str, int]
    seed: int = 1
    core: UserAgentCore = field(init=False)
    events: list[CoreEvent] = field(default_factory=list)
    on_incoming: Callable[[InviteSession, float], None] | None = None

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.layer = TransactionLayer(rng=rng)
        host, port = self.address
        self.core = UserAgentCore(self.layer, rng=rng, user=self.name,
                                  local=lambda tp: Target(tp, host, port),
                                  no_answer_timeout=0)

    def sessions(self) -> list[InviteSession]:
        return [e.session for e in self.events if isinstance(e, IncomingCall)]

    def states(self, s: InviteSession) -> list[CallState]:
        return [e.state for e in self.events if isinstance(e, CallStateChanged)
                and e.session is s]

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@{self.address[0]}:{self.address[1]}"


class Net:
    def __init__(self, *nodes: Node, names: dict[str, str] | None = None) -> None:
        self.nodes = {n.address: n for n in nodes}
        self.now = 0.0
        self.names = dict(names or {})     # what ResolveHost is answered with
        self.drop: Callable[[Wire], bool] = lambda w: False
        self.delay = 0.01
        self.log: list[Wire] = []
        self._in_flight: list[tuple[float, Wire]] = []
        self.unresolved: list[str] = []

    # ------------------------------------------------------------------ moving things
    def settle(self) -> None:
        """Deliver everything due now, until no node has anything more to do."""
        busy = True
        while busy:
            busy = False
            for node in self.nodes.values():
                for data, target in node.layer.datagrams_to_send():
                    busy = True
                    msg = parse_message(data)
                    w = Wire(self.now, node.address, (target.host, target.port), msg, data)
                    self.log.append(w)
                    if not self.drop(w):
                        self._in_flight.append((self.now + self.delay, w))
                while (lev := node.layer.next_event()) is not None:
                    busy = True
                    node.core.handle_layer_event(lev, self.now)
                while (ev := node.core.next_event()) is not None:
                    busy = True
                    node.events.append(ev)
                    if isinstance(ev, ResolveHost):
                        addr = self.names.get(ev.name)
                        if addr is None:
                            self.unresolved.append(ev.name)
                        node.core.host_resolved(ev.name, addr, self.now)
                    elif isinstance(ev, IncomingCall) and node.on_incoming is not None:
                        node.on_incoming(ev.session, self.now)
            due = [x for x in self._in_flight if x[0] <= self.now]
            for item in due:
                self._in_flight.remove(item)
                _, w = item
                dest = self.nodes.get(w.dst)
                if dest is not None:
                    busy = True
                    dest.layer.receive(w.data, Target("udp", *w.src), self.now)

    def run(self, until: float) -> None:
        """Advance virtual time to ``until``, firing every deadline and delivery on the way."""
        self.settle()
        while True:
            deadlines = [d for n in self.nodes.values() if (d := n.core.get_timer()) is not None]
            deadlines += [t for t, _ in self._in_flight]
            nxt = min(deadlines, default=None)
            if nxt is None or nxt > until:
                break
            self.now = max(self.now, nxt)
            for node in self.nodes.values():
                d = node.core.get_timer()
                if d is not None and d <= self.now:
                    node.core.handle_timer(self.now)
            self.settle()
        self.now = until
        self.settle()

    def sent(self, src: Node, what: str = "") -> list[Wire]:
        return [w for w in self.log if w.src == src.address and w.label.startswith(what)]
