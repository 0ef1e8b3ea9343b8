"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states), sans-I/O.

:class:`TransactionLayer` owns every client and server transaction of one user agent. It is a
pure state machine: the transport driver feeds it parsed messages with ``receive_message(msg,
source, now)``, asks it for ``datagrams_to_send()``, keeps one timer armed at ``get_timer()``
and calls ``handle_timer(now)``; the transaction user (the UA core) calls ``send_request`` /
``send_response`` and reads ``next_event()``. It never opens a socket nor reads the clock.

Timers (Table 4 of RFC 3261): A/B (client INVITE), D, E/F (client non-INVITE), G/H/I (server
INVITE), J (server non-INVITE), K, plus L/M of RFC 6026. Over reliable transports the
retransmission timers are not set and D/I/J/K are zero.

The UAS core's retransmission of 2xx responses to INVITE until the ACK arrives (§13.3.1.4)
lives here too (``send_2xx_reliably``) so that every deadline of a user agent sits in one heap.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple

from twisted.logger import Logger

from ice.address import Address
from ice.trace import Trace, TraceRecord
from siplink.sip.message import (
    Request,
    Response,
    SipParseError,
    error_response,
    make_ack,
    make_response,
    parse_message,
)

log = Logger()

__all__ = [
    "T1",
    "T2",
    "T4",
    "AckNotReceived",
    "PrackNotReceived",
    "CancelReceived",
    "ClientKey",
    "RequestReceived",
    "ResponseReceived",
    "ServerKey",
    "State",
    "Target",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailed",
    "response_target",
]

T1 = 0.5
T2 = 4.0
T4 = 5.0
MAGIC_COOKIE = "z9hG4bK"
RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})
MAX_SERVER_TRANSACTIONS = 10_000
# RFC 3261 §18.1.1: a request larger than this (the path MTU being unknown) goes over TCP
MAX_UDP_REQUEST = 1300


class Target(NamedTuple):
    """Where a message goes or came from: transport name, host, port."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"        # RFC 6026
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


ClientKey = tuple[str, str]             # (branch, CSeq method)
ServerKey = tuple[object, ...]          # see _server_key


# ------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU. ``key`` is None for an ACK to a 2xx (no transaction)."""

    request: Request
    source: Target
    key: ServerKey | None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched an INVITE server transaction; the layer already answered it 200.

    ``pending`` is True when the INVITE has no final response yet: the TU should answer 487.
    """

    invite_key: ServerKey
    cancel: Request
    pending: bool


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for the TU. ``key`` is None for a stray 2xx (retransmission after M)."""

    response: Response
    key: ClientKey | None


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B, F or H fired (or the transport failed): the request is abandoned (408)."""

    key: ClientKey | ServerKey
    request: Request
    timer: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport could not carry a request of a client transaction (a TCP or TLS
    connection refused, failed or closed before a final response): the transaction is over
    (RFC 3261 §17.1.1.2, §17.1.2.2 "inform the TU"; §8.1.3.1: the TU treats it like a 503)."""

    key: ClientKey
    request: Request
    reason: str
    target: Target | None = None      # where it could not go (the connection, the address)


@dataclass(frozen=True, slots=True)
class AckNotReceived:
    """A 2xx to INVITE was retransmitted for 64*T1 and no ACK came: the TU should send BYE."""

    response: Response


@dataclass(frozen=True, slots=True)
class PrackNotReceived:
    """A reliable provisional was retransmitted for 64*T1 without a PRACK (RFC 3262 §3):
    the TU should reject the INVITE with a 5xx."""

    response: Response


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    key: ClientKey | ServerKey


Event = (RequestReceived | CancelReceived | ResponseReceived | TransactionTimeout
         | TransportFailed | AckNotReceived | PrackNotReceived | TransactionTerminated)


# ------------------------------------------------------------------------------- helpers


def response_target(request: Request | Response, source: Target) -> Target:
    """Where a response to ``request`` (received from ``source``) goes: RFC 3261 §18.2.2, RFC 3581.

    Reliable transports answer on the connection the request came on (the transport keys
    connections by their remote address, which is ``source``).
    """
    if source.reliable:
        return source
    via = request.via[0]
    if via.maddr:
        return Target(source.transport, via.maddr, via.port or 5060)
    host = via.received or via.host
    if via.wants_rport:
        return Target(source.transport, host, source.port)
    return Target(source.transport, host, via.port or 5060)


def _branch(msg: Request | Response) -> str:
    return str(msg.via[0].branch or "")


class _Txn:
    __slots__ = ("key", "request", "data", "target", "state", "invite", "server",
                 "last_response", "last_data", "timers", "interval", "ack_data", "ack",
                 "to_tag", "merge_key")

    def __init__(self, key: ClientKey | ServerKey, request: Request, data: bytes, target: Target,
                 state: State, *, invite: bool, server: bool) -> None:
        self.key = key
        self.request = request
        self.data = data                     # client: the request bytes
        self.target = target
        self.state = state
        self.invite = invite
        self.server = server
        self.last_response: Response | None = None
        self.last_data: bytes | None = None  # server: the last response bytes
        self.timers: dict[str, float] = {}
        self.interval = T1
        self.ack_data: bytes | None = None   # client INVITE: the ACK to a non-2xx
        self.ack: Request | None = None      # ... and that ACK itself (for the trace)
        self.to_tag: str | None = None
        self.merge_key: tuple[str, str, int, str] | None = None


class _Retransmit2xx:
    """A response the UAS core (not a transaction) retransmits: a 2xx to INVITE until the ACK
    (RFC 3261 §13.3.1.4) or a reliable provisional until its PRACK (RFC 3262 §3)."""

    __slots__ = ("key", "response", "data", "target", "interval", "deadline", "give_up",
                 "server_key")

    def __init__(self, key: tuple[object, ...], response: Response, data: bytes, target: Target,
                 now: float) -> None:
        self.key = key
        self.server_key: ServerKey | None = None
        self.response = response
        self.data = data
        self.target = target
        self.interval = T1
        self.deadline = now + T1
        self.give_up = now + 64 * T1


# ------------------------------------------------------------------------------- the layer


class TransactionLayer:
    """All transactions of one SIP element (see the module docstring)."""

    def __init__(self, *, trace: Trace | None = None, auto_trying: bool = True,
                 user_agent: str | None = None,
                 encode: Callable[[Request | Response], bytes] = bytes,
                 max_server_transactions: int = MAX_SERVER_TRANSACTIONS,
                 rng: random.Random | None = None) -> None:
        # the To tags of the responses the layer makes itself (CANCEL, 482, 503)
        self._rng = rng or random.Random()
        self._clients: dict[ClientKey, _Txn] = {}
        self._servers: dict[ServerKey, _Txn] = {}
        self._merge: dict[tuple[str, str, int, str], ServerKey] = {}
        self._r2xx: dict[tuple[object, ...], _Retransmit2xx] = {}
        self._heap: list[tuple[float, int, object, str]] = []
        self._seq = itertools.count()
        self._out: list[tuple[bytes, Target]] = []
        self._events: deque[Event] = deque()
        self.trace = trace
        self.auto_trying = auto_trying
        self.user_agent = user_agent
        self._encode = encode
        self._now = 0.0
        # overload (503 with Retry-After, before a transaction is built): beyond
        # ``max_server_transactions`` requests the TU has not answered yet (the work that
        # costs), or beyond ``max_lingering`` transactions in all, most of them answered and
        # only absorbing retransmissions until their timers (32 s over UDP): memory stays
        # bounded whatever the rate, but answered work no longer refuses new work
        self.max_server_transactions = max_server_transactions
        self.max_lingering = max_server_transactions * 10
        self.refused_overload = 0
        self._unanswered: set[ServerKey] = set()   # server txns without a final response
        # our own transport address for a message to or from a Target, for the trace: set by
        # the transport driver (SipTransport.local_address); None there means a stream still
        # connecting, whose records wait in _unplaced until stream_local() names the address
        self.local_for: Callable[[Target], Address | None] | None = None
        self._unplaced: dict[Target, list[TraceRecord]] = {}

    # --------------------------------------------------------------- introspection
    def state_sizes(self) -> dict[str, int]:
        """How many entries each table holds that grows with traffic (all 0 when idle)."""
        return {"clients": len(self._clients), "servers": len(self._servers),
                "merge": len(self._merge), "retransmit_2xx": len(self._r2xx),
                "timers": len(self._heap), "unplaced_trace": len(self._unplaced),
                "out": len(self._out), "events": len(self._events)}

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers) + len(self._r2xx)

    def client_state(self, key: ClientKey) -> State:
        t = self._clients.get(key)
        return t.state if t else State.TERMINATED

    def server_state(self, key: ServerKey) -> State:
        t = self._servers.get(key)
        return t.state if t else State.TERMINATED

    def server_target(self, key: ServerKey) -> Target | None:
        """Where server transaction ``key`` sends its responses (None once it is gone)."""
        t = self._servers.get(key)
        return t.target if t is not None else None

    def server_request(self, key: ServerKey) -> Request | None:
        t = self._servers.get(key)
        return t.request if t else None

    # --------------------------------------------------------------- sans-I/O plumbing
    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Target]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, ref, name = heap[0]
            if self._timer_live(ref, name, deadline):
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        self._now = now
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, ref, name = heapq.heappop(heap)
            if not self._timer_live(ref, name, deadline):
                continue
            if isinstance(ref, _Txn):
                del ref.timers[name]
                self._fire(ref, name, now)
            elif isinstance(ref, _Retransmit2xx):
                self._fire_2xx(ref, now)

    def _timer_live(self, ref: object, name: str, deadline: float) -> bool:
        if isinstance(ref, _Txn):
            return ref.timers.get(name) == deadline and ref.state is not State.TERMINATED
        if isinstance(ref, _Retransmit2xx):
            return self._r2xx.get(ref.key) is ref and ref.deadline == deadline
        return False

    def _set(self, t: _Txn, name: str, deadline: float) -> None:
        t.timers[name] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), t, name))

    def _send(self, data: bytes, target: Target, what: Request | Response, now: float) -> None:
        """Queue ``data`` (the encoding of ``what``, the message itself) for ``target``."""
        self._out.append((data, target))
        if self.trace is not None:
            local = self.local_for(target) if self.local_for is not None else None
            record = TraceRecord(now, "out", _summary(what), data.decode("utf-8", "replace"),
                                 local, (target.host, target.port), "sip", data)
            if local is None and self.local_for is not None and target.reliable:
                self._unplaced.setdefault(target, []).append(record)
            else:
                self.trace.add(record)

    def stream_local(self, target: Target, local: Address | None) -> None:
        """The stream to ``target`` connected from ``local`` (None: it failed or closed): the
        trace gets the records of what was queued for it meanwhile."""
        for record in self._unplaced.pop(target, ()):
            if self.trace is not None:
                self.trace.add(replace(record, local=local))

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _terminate(self, t: _Txn) -> None:
        if t.state is State.TERMINATED:
            return
        t.state = State.TERMINATED
        t.timers.clear()
        if t.server:
            self._servers.pop(t.key, None)
            self._unanswered.discard(t.key)
            if t.merge_key is not None and self._merge.get(t.merge_key) == t.key:
                del self._merge[t.merge_key]
        else:
            self._clients.pop(t.key, None)  # type: ignore[arg-type]
        self._emit(TransactionTerminated(t.key))

    # --------------------------------------------------------------- client side
    def send_request(self, request: Request, target: Target, now: float, *,
                     may_switch: bool = True) -> ClientKey:
        """Start a client transaction for ``request`` (not ACK) toward ``target``. A UDP
        request over ``MAX_UDP_REQUEST`` bytes goes over TCP to the same address with its
        top Via saying so (RFC 3261 §18.1.1), unless ``may_switch`` is False."""
        self._now = now
        if request.method == "ACK":
            raise ValueError("ACK is sent with send_stateless, not in a client transaction")
        key: ClientKey = (_branch(request), request.method)
        if key in self._clients:
            raise ValueError(f"a client transaction with branch {key[0]!r} already exists")
        data = self._encode(request)
        if target.transport == "udp" and len(data) > MAX_UDP_REQUEST and may_switch:
            vias = request.headers.get_all("via")
            proto, _, rest = vias[0].partition(" ")
            request.headers.set("Via", [proto.rsplit("/", 1)[0] + "/TCP " + rest, *vias[1:]])
            log.info("{method} of {n} bytes goes over TCP to {host}:{port} (RFC 3261 "
                     "§18.1.1: over {limit} bytes)", method=request.method, n=len(data),
                     host=target.host, port=target.port, limit=MAX_UDP_REQUEST)
            target = Target("tcp", target.host, target.port)
            data = self._encode(request)
        invite = request.method == "INVITE"
        t = _Txn(key, request, data, target, State.CALLING if invite else State.TRYING,
                 invite=invite, server=False)
        self._clients[key] = t
        self._send(data, target, request, now)
        if not target.reliable:
            self._set(t, "A" if invite else "E", now + T1)
        self._set(t, "B" if invite else "F", now + 64 * T1)
        return key

    def send_stateless(self, msg: Request | Response, target: Target, now: float) -> None:
        """Send outside any transaction (the ACK to a 2xx, a stateless reply)."""
        self._now = now
        self._send(self._encode(msg), target, msg, now)

    def transport_failed(self, target: Target, reason: str, now: float) -> None:
        """Nothing can be sent to ``target`` (a stream connection refused or lost): every
        client transaction toward it that has no final response yet ends now with
        :class:`TransportFailed`, instead of waiting for timer B or F."""
        self._now = now
        for t in list(self._clients.values()):
            if t.target == target and t.state in (State.CALLING, State.TRYING,
                                                  State.PROCEEDING):
                self._emit(TransportFailed(t.key, t.request, reason,  # type: ignore[arg-type]
                                           target))
                self._terminate(t)

    def cancel_client(self, key: ClientKey) -> None:
        """Forget a client transaction silently (the TU gave up on it)."""
        t = self._clients.get(key)
        if t is not None:
            self._terminate(t)

    def _client_response(self, resp: Response, now: float) -> None:
        key: ClientKey = (_branch(resp), resp.cseq.method)
        t = self._clients.get(key)
        if t is None:
            if 200 <= resp.status < 300 and resp.cseq.method == "INVITE":
                self._emit(ResponseReceived(resp, None))  # the TU re-sends its ACK
            else:
                log.debug("stray response {status} dropped", status=resp.status)
            return
        status = resp.status
        if t.invite:
            if t.state in (State.CALLING, State.PROCEEDING):
                if status < 200:
                    t.state = State.PROCEEDING
                    t.timers.pop("A", None)
                    self._emit(ResponseReceived(resp, key))
                elif status < 300:
                    t.state = State.ACCEPTED
                    t.timers.clear()
                    self._set(t, "M", now + 64 * T1)
                    self._emit(ResponseReceived(resp, key))
                else:
                    t.state = State.COMPLETED
                    t.timers.clear()
                    t.ack = _ack_for(t.request, resp)
                    t.ack_data = self._encode(t.ack)
                    self._send(t.ack_data, t.target, t.ack, now)
                    self._set(t, "D", now + (0.0 if t.target.reliable else 32.0))
                    self._emit(ResponseReceived(resp, key))
            elif t.state is State.ACCEPTED:
                if 200 <= status < 300:
                    self._emit(ResponseReceived(resp, key))
            elif t.state is State.COMPLETED and status >= 300 and t.ack is not None \
                    and t.ack_data is not None:
                self._send(t.ack_data, t.target, t.ack, now)
            return
        if t.state in (State.TRYING, State.PROCEEDING):
            if status < 200:
                t.state = State.PROCEEDING
                self._emit(ResponseReceived(resp, key))
            else:
                t.state = State.COMPLETED
                t.timers.clear()
                self._emit(ResponseReceived(resp, key))
                self._set(t, "K", now + (0.0 if t.target.reliable else T4))

    # --------------------------------------------------------------- server side
    def send_response(self, key: ServerKey, response: Response, now: float) -> None:
        """Send ``response`` in server transaction ``key`` (the TU's answer)."""
        self._now = now
        t = self._servers.get(key)
        if t is None:
            raise KeyError(f"no server transaction {key!r}")
        if t.state not in (State.TRYING, State.PROCEEDING):
            if t.invite and t.state is State.ACCEPTED and 200 <= response.status < 300:
                self._send(self._encode(response), t.target, response, now)
                return
            raise ValueError(f"cannot send {response.status} in state {t.state.value}")
        data = self._encode(response)
        t.last_response = response
        t.last_data = data
        status = response.status
        t.to_tag = response.to.tag
        self._send(data, t.target, response, now)
        if status < 200:
            t.state = State.PROCEEDING
            return
        self._unanswered.discard(key)
        # the merge key stays until the transaction ends: a copy of the request that
        # arrives by another path after our final response is still merged (§8.2.2.2)
        if t.invite:
            if status < 300:
                t.state = State.ACCEPTED       # RFC 6026: absorb INVITE retransmissions
                self._set(t, "L", now + 64 * T1)
            else:
                t.state = State.COMPLETED
                if not t.target.reliable:
                    t.interval = T1
                    self._set(t, "G", now + T1)
                self._set(t, "H", now + 64 * T1)
        else:
            t.state = State.COMPLETED
            self._set(t, "J", now + (0.0 if t.target.reliable else 64 * T1))

    def send_2xx_reliably(self, response: Response, target: Target, now: float) -> None:
        """Retransmit a 2xx to INVITE until its ACK (``ack_received``) or 64*T1 (§13.3.1.4)."""
        self._retransmit(_r2xx_key(response), response, target, now)

    def send_1xx_reliably(self, key: ServerKey, response: Response, rseq: int,
                          now: float) -> None:
        """Send a reliable provisional (RFC 3262) in server transaction ``key`` and retransmit
        it (T1 doubling, capped at T2 as for a 2xx) until :meth:`prack_received`."""
        self.send_response(key, response, now)
        t = self._servers.get(key)
        if t is not None:
            self._retransmit(("1xx", response.call_id, rseq), response, t.target, now, key)

    def prack_received(self, call_id: str, rseq: int) -> bool:
        """A PRACK for (Call-ID, RSeq) arrived: stop retransmitting; False if none pending."""
        return self._r2xx.pop(("1xx", call_id, rseq), None) is not None

    def _retransmit(self, key: tuple[object, ...], response: Response, target: Target,
                    now: float, server_key: ServerKey | None = None) -> None:
        data = self._encode(response)
        r = _Retransmit2xx(key, response, data, target, now)
        r.server_key = server_key
        self._r2xx[key] = r
        if target.reliable:
            r.deadline = r.give_up
        heapq.heappush(self._heap, (r.deadline, next(self._seq), r, "2xx"))

    def _fire_2xx(self, r: _Retransmit2xx, now: float) -> None:
        if now >= r.give_up:
            self._r2xx.pop(r.key, None)
            if r.key[0] == "1xx":
                self._emit(PrackNotReceived(r.response))
            else:
                self._emit(AckNotReceived(r.response))
            return
        if r.server_key is not None:
            t = self._servers.get(r.server_key)
            if t is None or t.state is not State.PROCEEDING:
                self._r2xx.pop(r.key, None)      # a final response went out: stop
                return
        self._send(r.data, r.target, r.response, now)
        r.interval = min(r.interval * 2, T2)
        r.deadline = min(now + r.interval, r.give_up)
        heapq.heappush(self._heap, (r.deadline, next(self._seq), r, "2xx"))

    def _server_request(self, req: Request, source: Target, now: float) -> None:
        method = req.method
        key = _server_key(req)
        t = self._servers.get(key)
        if method == "ACK":
            if t is not None and t.invite:
                if t.state is State.COMPLETED:
                    t.state = State.CONFIRMED
                    t.timers.clear()
                    self._set(t, "I", now + (0.0 if t.target.reliable else T4))
                return   # absorbed (ACK to a non-2xx, or retransmission)
            # an ACK to a 2xx: its own transaction, for the TU
            r = self._r2xx.pop(_ack_2xx_key(req), None)
            if r is None and t is None and self._is_2543_ack_retrans(req):
                return
            self._emit(RequestReceived(req, source, None))
            return
        if t is not None:
            # a retransmission: repeat the last response
            if t.last_data is not None and t.state in (State.PROCEEDING, State.COMPLETED):
                self._send(t.last_data, t.target, t.last_response or req, now)
            return
        if (len(self._unanswered) >= self.max_server_transactions
                or len(self._servers) >= self.max_lingering):
            self.refused_overload += 1
            self._reply_stateless(req, source, 503, "Service Unavailable", now,
                                  [("Retry-After", "5")])   # RFC 3261 §21.5.4
            return
        if method == "CANCEL":
            self._cancel(req, source, key, now)
            return
        # §8.2.2.2 merged requests: same From tag, Call-ID, CSeq but another branch
        merge_key: tuple[str, str, int, str] | None = None
        if req.to.tag is None:
            merge_key = (req.from_.tag or "", req.call_id, req.cseq.number, method)
            if merge_key in self._merge:
                self._reply_stateless(req, source, 482, "Loop Detected", now)
                return
        invite = method == "INVITE"
        target = response_target(req, source)
        t = _Txn(key, req, b"", target, State.PROCEEDING if invite else State.TRYING,
                 invite=invite, server=True)
        self._servers[key] = t
        self._unanswered.add(key)
        if merge_key is not None:
            t.merge_key = merge_key
            self._merge[merge_key] = key
        self._emit(RequestReceived(req, source, key))
        if invite and self.auto_trying:
            self.send_response(key, make_response(req, 100), now)

    def _is_2543_ack_retrans(self, req: Request) -> bool:
        return False

    def _cancel(self, req: Request, source: Target, key: ServerKey, now: float) -> None:
        invite_key = _server_key(req, method="INVITE")
        inv = self._servers.get(invite_key)
        t = _Txn(key, req, b"", response_target(req, source), State.TRYING,
                 invite=False, server=True)
        self._servers[key] = t
        self._unanswered.add(key)
        if inv is None:
            self.send_response(key, make_response(req, 481, to_tag=self._new_tag()), now)
            return
        # §9.2: the 200 to CANCEL carries the To tag of our response to the INVITE
        self.send_response(key, make_response(req, 200, to_tag=inv.to_tag or self._new_tag()), now)
        pending = inv.state in (State.TRYING, State.PROCEEDING)
        self._emit(CancelReceived(invite_key, req, pending))

    def _new_tag(self) -> str:
        return f"{self._rng.getrandbits(48):012x}"

    def _reply_stateless(self, req: Request, source: Target, status: int, reason: str,
                         now: float, headers: list[tuple[str, str]] | None = None) -> None:
        resp = make_response(req, status, reason, headers=headers or [],
                             to_tag=self._new_tag())   # §8.2.6.2
        try:
            target = response_target(req, source)
        except SipParseError:     # the Via itself is malformed: answer the source address
            target = source
        self._send(self._encode(resp), target, resp, now)

    def ack_pending(self, response: Response) -> bool:
        return _r2xx_key(response) in self._r2xx

    # --------------------------------------------------------------- input
    def receive(self, data: bytes, source: Target, now: float) -> None:
        """One datagram (or one framed stream message) from ``source``."""
        self._now = now
        try:
            msg = parse_message(data)
        except SipParseError as e:
            self.reject_malformed(data, source, e, now)
            return
        self.receive_message(msg, source, now, raw=data)

    def receive_message(self, msg: Request | Response, source: Target, now: float,
                        raw: bytes = b"") -> None:
        self._now = now
        if self.trace is not None:
            raw = raw or msg.serialize()      # a stream transport hands over parsed messages
            local = self.local_for(source) if self.local_for is not None else None
            self.trace.add(TraceRecord(now, "in", _summary(msg), raw.decode("utf-8", "replace"),
                                       local, (source.host, source.port), "sip", raw))
        try:
            if isinstance(msg, Response):
                self._client_response(msg, now)
            else:
                _stamp_via(msg, source)
                self._server_request(msg, source, now)
        except SipParseError as e:
            # a header the codec parses lazily was malformed
            if isinstance(msg, Request) and msg.method != "ACK":
                try:
                    self._reply_stateless(msg, source, 400, e.reason, now)
                except SipParseError:
                    log.info("dropped malformed request: {reason}", reason=e.reason)
            else:
                log.info("dropped malformed message: {reason}", reason=e.reason)

    def reject_malformed(self, data: bytes, source: Target, err: SipParseError,
                         now: float) -> None:
        """Answer a request the codec refused with 400 (or its status) when we can."""
        resp = error_response(data, err) or _raw_error_response(err)
        if resp is None:
            log.info("dropped unparseable message from {src}: {reason}", src=source,
                     reason=err.reason)
            return
        try:
            _stamp_via(resp, source)   # §18.2.1 received/rport, as for a request that parsed
            target = response_target(resp, source)  # the Via is copied from the request
        except (SipParseError, IndexError, AttributeError):
            target = source
        self._send(self._encode(resp), target, resp, now)

    # --------------------------------------------------------------- timers
    def _fire(self, t: _Txn, name: str, now: float) -> None:
        if name in ("A", "E"):
            self._send(t.data, t.target, t.request, now)
            t.interval = t.interval * 2
            if name == "E":
                t.interval = min(t.interval, T2)
                if t.state is State.PROCEEDING:
                    t.interval = T2
            self._set(t, name, now + t.interval)
        elif name == "G":
            assert t.last_data is not None
            self._send(t.last_data, t.target, t.last_response or t.request, now)
            t.interval = min(t.interval * 2, T2)
            self._set(t, "G", now + t.interval)
        elif name in ("B", "F", "H"):
            if name == "B" and t.state is not State.CALLING:
                return
            if name == "F" and t.state not in (State.TRYING, State.PROCEEDING):
                return
            self._emit(TransactionTimeout(t.key, t.request, name))
            self._terminate(t)
        else:  # D, I, J, K, L, M
            self._terminate(t)


# ------------------------------------------------------------------------------- keys


def _raw_error_response(err: SipParseError) -> Response | None:
    """Last resort for an error reply (e.g. 505 to ``SIP/7.0`` whose Via the codec refuses):
    copy the raw Via/From/To/Call-ID/CSeq lines; the reply then goes back to the source."""
    partial = err.partial
    if not isinstance(partial, Request) or partial.method == "ACK":
        return None
    h = partial.headers
    if not h.get_lines("via") or h.get("call-id") is None or h.get("cseq") is None:
        return None
    lines = [("Via", v) for v in h.get_lines("via")]
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = h.get(name)
        if value is not None:
            lines.append((name, value))
    try:
        from siplink.sip.message import Headers
        return Response(err.status, None if err.status != 400 else err.reason[:120],
                        Headers(lines))
    except (SipParseError, ValueError):
        return None


def _server_key(req: Request, method: str | None = None) -> ServerKey:
    """§17.2.3 matching key; RFC 2543 fallback (§17.2.3 last paragraphs) without the cookie."""
    via = req.via[0]
    branch = str(via.branch or "")
    m = method or req.method
    if m == "ACK":
        m = "INVITE"
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, m)
    # RFC 2543: Request-URI, To tag (not for ACK/CANCEL matching), From tag, Call-ID, CSeq, top Via
    return ("2543", str(req.uri), req.from_.tag, req.call_id, req.cseq.number, m,
            via.host.lower(), via.port, branch)


def _r2xx_key(resp: Response) -> tuple[str, int, str]:
    return (resp.call_id, resp.cseq.number, resp.to.tag or "")


def _ack_2xx_key(ack: Request) -> tuple[str, int, str]:
    return (ack.call_id, ack.cseq.number, ack.to.tag or "")


def _stamp_via(req: Request | Response, source: Target) -> None:
    """§18.2.1 received, RFC 3581 rport: record where the request really came from."""
    via = req.via[0]
    if via.host != source.host:
        via.received = source.host
    if via.wants_rport:
        via.rport = source.port
        if via.received is None:
            via.received = source.host


def _ack_for(invite: Request, resp: Response) -> Request:
    """§17.1.1.3: the ACK a client INVITE transaction sends for a non-2xx final response."""
    return make_ack(invite, resp)


def _summary(msg: Request | Response) -> str:
    return msg.summary()
