"""TURN client (RFC 8656) as a sans-I/O :class:`Allocation`, to the server over UDP, TCP or
TLS (RFC 8656 §3.1; the relayed transport address is UDP in every case).

The allocation never owns a socket: whoever owns the socket (the ICE agent's host candidate,
or :mod:`ice.drivers.turn` for the command line) passes every datagram from the server to
:meth:`Allocation.receive`, sends what :meth:`Allocation.datagrams_to_send` returns to the
server, and calls :meth:`Allocation.handle_timer` at :meth:`Allocation.get_timer`.  Over TCP
or TLS the owner of the connection splits the stream into messages
(:class:`ice.stream_framing.StreamFramer`) and feeds each to :meth:`Allocation.receive`; the
allocation then pads ChannelData (RFC 8656 §12.5), sends each request once and waits Ti
(39.5 s, RFC 8489 §6.2.2) instead of retransmitting, and is told
:meth:`Allocation.connection_lost` when the connection ends (the allocation dies with it).

What it does: Allocate (answering the 401 challenge with REALM/NONCE and long-term
credentials, retrying on 438 Stale Nonce), Refresh a minute before expiry, Refresh with
LIFETIME 0 to release, CreatePermission (refreshed every 4 minutes, RFC 8656 §9), ChannelBind
(refreshed every 9 minutes, §11), Send/Data indications and ChannelData (§12).
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass, field

from twisted.logger import Logger

from ice.address import Address
from ice.stun import (
    Attr,
    Class,
    Message,
    Method,
    PasswordAlgorithm,
    StunDecodeError,
    decode,
    encode,
    is_stun,
    long_term_key,
    new_transaction_id,
    verify,
)
from ice.stun_transaction import StunClientTransaction, TransactionState
from ice.trace import Direction, Trace, TraceRecord

log = Logger(namespace="ice.turn")

UDP = 17
STREAM_TRANSPORTS = ("tcp", "tls")
TRANSPORTS = ("udp", *STREAM_TRANSPORTS)
RELIABLE_TI = 39.5                # RFC 8489 §6.2.2: transaction timeout on a reliable transport
PERMISSION_LIFETIME = 300.0       # RFC 8656 §9
PERMISSION_REFRESH = 240.0        # refresh a minute before it lapses
CHANNEL_LIFETIME = 600.0          # RFC 8656 §11
CHANNEL_REFRESH = 540.0
CHANNEL_MIN, CHANNEL_MAX = 0x4000, 0x4FFF
MAX_QUEUED_PER_PEER = 64          # datagrams held while a permission is being created
MAX_AUTH_RETRIES = 3              # 401/438 answers followed per request
MAX_REDIRECTS = 2                 # 300 Try Alternate answers followed per allocation
MAX_PENDING_EVENTS = 4096         # undrained events beyond this: received data is dropped


# ---- ChannelData (RFC 8656 §12.4) ------------------------------------------------------------

_chan_hdr = struct.Struct("!HH")


class ChannelDataError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode_channel_data(channel: int, data: bytes, *, pad: bool = False) -> bytes:
    """A ChannelData message; ``pad`` rounds up to 4 bytes (needed over TCP, not UDP)."""
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise ValueError(f"channel number 0x{channel:04x} out of range")
    out = _chan_hdr.pack(channel, len(data)) + data
    if pad and len(data) % 4:
        out += b"\x00" * (-len(data) % 4)
    return out


def decode_channel_data(data: bytes) -> tuple[int, bytes]:
    """``(channel, application data)``; raises :class:`ChannelDataError`."""
    if len(data) < 4:
        raise ChannelDataError("shorter than a ChannelData header")
    channel, length = _chan_hdr.unpack_from(data)
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise ChannelDataError(f"channel number 0x{channel:04x} out of range")
    if 4 + length > len(data):
        raise ChannelDataError("ChannelData length exceeds the datagram")
    return channel, data[4:4 + length]


# ---- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocationSucceeded:
    relayed: Address
    mapped: Address | None
    lifetime: int


@dataclass(frozen=True, slots=True)
class AllocationFailed:
    """The allocation could not be made, or was lost (``during`` "refresh").
    ``code`` is the STUN error code, None when the server did not answer, 0 when its answer
    was unusable (a bad reply)."""

    code: int | None
    reason: str
    during: str = "allocate"


@dataclass(frozen=True, slots=True)
class AllocationRefreshed:
    lifetime: int


@dataclass(frozen=True, slots=True)
class PermissionCreated:
    peer: str            # permissions are per IP address (RFC 8656 §9)


@dataclass(frozen=True, slots=True)
class PermissionFailed:
    peer: str
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class ChannelBound:
    peer: Address
    channel: int


@dataclass(frozen=True, slots=True)
class ChannelBindFailed:
    peer: Address
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DataReceived:
    peer: Address
    data: bytes
    channel: int | None = None   # the channel it came on, None for a Data indication


@dataclass(frozen=True, slots=True)
class Released:
    pass


Event = (AllocationSucceeded | AllocationFailed | AllocationRefreshed | PermissionCreated
         | PermissionFailed | ChannelBound | ChannelBindFailed | DataReceived | Released)


class AllocationState(enum.Enum):
    IDLE = "idle"
    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    RELEASING = "releasing"
    RELEASED = "released"
    FAILED = "failed"


class _Kind(enum.Enum):
    ALLOCATE = "allocate"
    REFRESH = "refresh"
    RELEASE = "release"
    PERMISSION = "permission"
    CHANNEL = "channel"


@dataclass
class _Pending:
    kind: _Kind
    method: Method
    attributes: dict[Attr | int, object]
    txn: StunClientTransaction
    authenticated: bool
    retries: int = 0
    peer: Address | None = None


@dataclass
class _Permission:
    installed: bool = False
    pending: bool = False
    refresh_at: float | None = None
    queue: deque[tuple[Address, bytes]] = field(default_factory=deque)


@dataclass
class _Channel:
    number: int
    bound: bool = False
    pending: bool = False
    refresh_at: float | None = None


@dataclass(frozen=True, slots=True)
class StreamConnection:
    """A TCP or TLS connection to a TURN server that one allocation runs on (RFC 8656 §3.1),
    for the owner of the ICE agent to open: from ``bind`` (a local IP) to ``server``; over
    TLS the server's certificate is verified against ``server[0]`` (a host name or an IP),
    with the CA certificates in the PEM file ``tls_ca`` (empty: the system's)."""

    stream: int
    component: int
    bind: str
    server: Address
    transport: str
    tls_ca: str = ""


class Allocation:
    """A TURN allocation on one 5-tuple (local socket or connection <-> ``server``);
    ``transport`` is how the server is reached: "udp", "tcp" or "tls"."""

    def __init__(
        self,
        server: Address,
        username: str,
        password: str,
        *,
        lifetime: int | None = None,
        family: int | None = None,
        software: str | None = "siplink",
        rto: float = 0.5,
        rc: int = 7,
        rm: int = 16,
        trace: Trace | None = None,
        local: Address | None = None,
        transport: str = "udp",
        ti: float = RELIABLE_TI,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not "
                             f"{transport!r}")
        self.transport = transport
        self.ti = ti
        self.server = server
        self.username = username
        self.password = password
        self.requested_lifetime = lifetime
        if family not in (None, 4, 6):
            raise ValueError("family must be None, 4 or 6")
        self.family = family   # REQUESTED-ADDRESS-FAMILY (RFC 8656 §7.1); None: server default
        self.software = software
        self.rto, self.rc, self.rm = rto, rc, rm
        self.trace = trace
        self.local = local     # the socket's address, named in trace records (None: unknown)
        self.state = AllocationState.IDLE
        self.relayed_address: Address | None = None
        self.mapped_address: Address | None = None
        self.lifetime: int | None = None
        self.realm: str | None = None
        self.nonce: bytes | None = None
        self.key: bytes | None = None
        self._algorithms: tuple[tuple[int, bytes], ...] | None = None
        self._algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5
        self._pending: dict[bytes, _Pending] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[Event] = deque()
        self._refresh_at: float | None = None
        self._permissions: dict[str, _Permission] = {}
        self._channels: dict[Address, _Channel] = {}
        self._peer_by_channel: dict[int, Address] = {}
        self._next_channel = CHANNEL_MIN
        self.dropped_data = 0             # DataReceived dropped because events were not drained
        self.redirects = 0                # 300 Try Alternate followed (``server`` changed)

    @property
    def reliable(self) -> bool:
        """The server is reached over a stream (TCP or TLS)."""
        return self.transport in STREAM_TRANSPORTS

    # ---- public API -------------------------------------------------------------------------

    def allocate(self, now: float) -> None:
        if self.state is not AllocationState.IDLE:
            raise RuntimeError(f"allocate() in state {self.state.value}")
        self.state = AllocationState.ALLOCATING
        attrs: dict[Attr | int, object] = {Attr.REQUESTED_TRANSPORT: UDP}
        if self.requested_lifetime is not None:
            attrs[Attr.LIFETIME] = self.requested_lifetime
        if self.family is not None:
            attrs[Attr.REQUESTED_ADDRESS_FAMILY] = 0x01 if self.family == 4 else 0x02
        self._request(_Kind.ALLOCATE, Method.ALLOCATE, attrs, now)

    def refresh(self, now: float, lifetime: int | None = None) -> None:
        """Refresh now (it also happens by itself a minute before expiry)."""
        self._require_allocated("refresh")
        attrs: dict[Attr | int, object] = {}
        lt = lifetime if lifetime is not None else self.requested_lifetime
        if lt is not None:
            attrs[Attr.LIFETIME] = lt
        self._refresh_at = None
        self._request(_Kind.REFRESH, Method.REFRESH, attrs, now)

    def release(self, now: float) -> None:
        """Refresh with LIFETIME 0; :class:`Released` follows (also if the server is gone)."""
        if self.state in (AllocationState.RELEASING, AllocationState.RELEASED):
            return
        if self.state is not AllocationState.ALLOCATED:
            self._cancel_all()
            self.state = AllocationState.RELEASED
            self._events.append(Released())
            return
        self._cancel_all()
        self.state = AllocationState.RELEASING
        self._request(_Kind.RELEASE, Method.REFRESH, {Attr.LIFETIME: 0}, now)

    def create_permission(self, peer: Address | str, now: float) -> None:
        self._require_allocated("create_permission")
        ip = peer if isinstance(peer, str) else peer[0]
        perm = self._permissions.setdefault(ip, _Permission())
        if perm.pending:
            return
        perm.pending = True
        self._request(_Kind.PERMISSION, Method.CREATE_PERMISSION,
                      {Attr.XOR_PEER_ADDRESS: (ip, 0)}, now, peer=(ip, 0))

    def bind_channel(self, peer: Address, now: float) -> int:
        """Bind (or refresh) a channel to ``peer``; returns its number."""
        self._require_allocated("bind_channel")
        chan = self._channels.get(peer)
        if chan is None:
            if self._next_channel > CHANNEL_MAX:
                raise RuntimeError("no channel numbers left")
            chan = _Channel(self._next_channel)
            self._next_channel += 1
            self._channels[peer] = chan
            self._peer_by_channel[chan.number] = peer
        if not chan.pending:
            chan.pending = True
            self._request(_Kind.CHANNEL, Method.CHANNEL_BIND,
                          {Attr.CHANNEL_NUMBER: chan.number, Attr.XOR_PEER_ADDRESS: peer},
                          now, peer=peer)
        return chan.number

    def send_to(self, peer: Address, data: bytes, now: float) -> None:
        """Relay ``data`` to ``peer``: ChannelData when a channel is bound, else a Send
        indication; without a permission yet, one is created and the data waits for it."""
        self._require_allocated("send_to")
        chan = self._channels.get(peer)
        if chan is not None and chan.bound:
            self._out(encode_channel_data(chan.number, data, pad=self.reliable), now,
                      f"ChannelData 0x{chan.number:04x} {len(data)} bytes to "
                      f"{peer[0]}:{peer[1]}", data)
            return
        perm = self._permissions.get(peer[0])
        if perm is not None and perm.installed:
            self._send_indication(peer, data, now)
            return
        if perm is None or not perm.pending:
            self.create_permission(peer, now)
            perm = self._permissions[peer[0]]
        if len(perm.queue) >= MAX_QUEUED_PER_PEER:
            perm.queue.popleft()
        perm.queue.append((peer, data))

    def connection_lost(self, now: float, reason: str) -> None:
        """The TCP/TLS connection the allocation runs on ended (or never opened): the server
        drops the allocation with it (RFC 8656 §3.1), so every request fails and so does the
        allocation (:class:`AllocationFailed` with code None), or a release completes."""
        if self.state in (AllocationState.RELEASED, AllocationState.FAILED):
            return
        self._trace("event", f"connection lost: {reason}", now)
        if self.state is AllocationState.RELEASING:
            self._cancel_all()
            self.state = AllocationState.RELEASED
            self._events.append(Released())
            return
        during = "allocate" if self.state in (AllocationState.IDLE,
                                              AllocationState.ALLOCATING) else "refresh"
        self._cancel_all()
        self.state = AllocationState.FAILED
        self._events.append(AllocationFailed(None, reason, during=during))

    def has_permission(self, peer: Address | str) -> bool:
        perm = self._permissions.get(peer if isinstance(peer, str) else peer[0])
        return perm is not None and perm.installed

    def channel_for(self, peer: Address) -> int | None:
        chan = self._channels.get(peer)
        return chan.number if chan is not None and chan.bound else None

    # ---- sans-I/O interface -------------------------------------------------------------------

    def receive(self, data: bytes, addr: Address, now: float) -> bool:
        """Feed a datagram; True when it belonged to this allocation (consumed, perhaps
        dropped), False when the caller should handle it (another protocol, unknown STUN)."""
        if addr != self.server or not data:
            return False
        first = data[0]
        if 0x40 <= first <= 0x4F:
            return self._receive_channel_data(data, now)
        if first > 3:
            return False
        try:
            msg = decode(data)
        except StunDecodeError as e:
            log.debug("TURN: dropped undecodable message from server: {reason}", reason=e.reason)
            return False
        if msg.cls == Class.INDICATION:
            if msg.method != Method.DATA:
                return False
            peer = msg.address(Attr.XOR_PEER_ADDRESS)
            payload = msg.get(Attr.DATA)
            self._trace("in", msg.summary(), now, data, payload if isinstance(payload, bytes)
                        else b"")
            if peer is None or not isinstance(payload, bytes):
                log.info("TURN: Data indication without XOR-PEER-ADDRESS/DATA dropped")
                return True
            self._data_event(DataReceived(peer, payload))
            return True
        pending = self._pending.get(msg.transaction_id)
        if pending is None or msg.cls == Class.REQUEST:
            return False
        self._trace("in", msg.summary(), now, data)
        if not self._authentic(msg, data, pending):
            return True
        del self._pending[msg.transaction_id]
        pending.txn.receive_response(msg, now)
        if msg.cls == Class.SUCCESS:
            self._on_success(pending, msg, now)
        else:
            self._on_error(pending, msg, now)
        return True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out = self._outbox
        self._outbox = []
        for pending in self._pending.values():
            for item in pending.txn.datagrams_to_send(now):
                out.append(item)
                if pending.txn.sent > 1:     # the first copy was traced by _request
                    name = pending.method.name.replace("_", "-").title().replace("-", "")
                    self._trace("out", f"{name} request {pending.txn.transaction_id.hex()} "
                                f"retransmission {pending.txn.sent - 1}", now, item[0])
        return out

    def get_timer(self) -> float | None:
        times = [t for p in self._pending.values() if (t := p.txn.get_timer()) is not None]
        if self._refresh_at is not None:
            times.append(self._refresh_at)
        times.extend(p.refresh_at for p in self._permissions.values()
                     if p.refresh_at is not None)
        times.extend(c.refresh_at for c in self._channels.values() if c.refresh_at is not None)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for tid, pending in list(self._pending.items()):
            pending.txn.handle_timer(now)
            if pending.txn.timed_out:
                del self._pending[tid]
                self._on_timeout(pending, now)
        if self.state is not AllocationState.ALLOCATED:
            return
        if self._refresh_at is not None and now >= self._refresh_at:
            self.refresh(now)
        for ip, perm in self._permissions.items():
            if perm.refresh_at is not None and now >= perm.refresh_at:
                perm.refresh_at = None
                self.create_permission(ip, now)
        for peer, chan in self._channels.items():
            if chan.refresh_at is not None and now >= chan.refresh_at:
                chan.refresh_at = None
                self.bind_channel(peer, now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # ---- internals ---------------------------------------------------------------------------

    def _data_event(self, event: DataReceived) -> None:
        # received data is bounded: nobody draining next_event() must not grow memory
        if len(self._events) >= MAX_PENDING_EVENTS:
            self.dropped_data += 1
            return
        self._events.append(event)

    def _require_allocated(self, what: str) -> None:
        if self.state is not AllocationState.ALLOCATED:
            raise RuntimeError(f"{what}() needs an allocation (state {self.state.value})")

    def _trace(self, direction: Direction, summary: str, now: float, raw: bytes = b"",
               carried: bytes | None = None) -> None:
        """``carried``: the payload of a Send/Data indication or ChannelData; one that is not
        STUN (media) makes the record's protocol "rtp", so that views leaving RTP out (pcap
        by default, ``-v``) leave relayed media out too, and keep relayed checks."""
        if self.trace is not None:
            protocol = "turn" if carried is None or is_stun(carried) else "rtp"
            self.trace.add(TraceRecord(now, direction, summary, local=self.local,
                                       remote=self.server, protocol=protocol, raw=raw))

    def _out(self, data: bytes, now: float, summary: str, carried: bytes) -> None:
        self._outbox.append((data, self.server))
        self._trace("out", summary, now, data, carried)

    def _send_indication(self, peer: Address, data: bytes, now: float) -> None:
        msg = Message(Method.SEND, Class.INDICATION, new_transaction_id(),
                      {Attr.XOR_PEER_ADDRESS: peer, Attr.DATA: data})
        self._out(encode(msg), now, f"Send indication {len(data)} bytes to {peer[0]}:{peer[1]}",
                  data)

    def _request(
        self,
        kind: _Kind,
        method: Method,
        attrs: dict[Attr | int, object],
        now: float,
        *,
        peer: Address | None = None,
        retries: int = 0,
    ) -> None:
        msg = Message(method, Class.REQUEST, new_transaction_id(), dict(attrs))
        if self.software and method == Method.ALLOCATE:
            msg.attributes[Attr.SOFTWARE] = self.software
        authenticated = self.key is not None
        if authenticated:
            msg.attributes[Attr.USERNAME] = self.username
            msg.attributes[Attr.REALM] = self.realm or ""
            msg.attributes[Attr.NONCE] = self.nonce or b""
            if self._algorithms is not None:
                msg.attributes[Attr.PASSWORD_ALGORITHMS] = self._algorithms
                msg.attributes[Attr.PASSWORD_ALGORITHM] = (int(self._algorithm), b"")
        data = encode(msg, key=self.key)
        if self.reliable:   # RFC 8489 §6.2.2: sent once; no answer within Ti is a timeout
            txn = StunClientTransaction(data, msg.transaction_id, self.server, now,
                                        rto=self.ti, rc=1, rm=1)
        else:
            txn = StunClientTransaction(data, msg.transaction_id, self.server, now,
                                        rto=self.rto, rc=self.rc, rm=self.rm)
        self._pending[msg.transaction_id] = _Pending(kind, method, attrs, txn, authenticated,
                                                     retries, peer)
        self._trace("out", msg.summary(), now, data)

    def _authentic(self, msg: Message, data: bytes, pending: _Pending) -> bool:
        """RFC 8489 §9.2.5: a response to an authenticated request must carry a valid
        MESSAGE-INTEGRITY, except the error codes that say the credentials are not usable."""
        if not pending.authenticated or self.key is None:
            return True
        err = msg.error_code
        has_mi = Attr.MESSAGE_INTEGRITY in msg or Attr.MESSAGE_INTEGRITY_SHA256 in msg
        if err is not None and err[0] in (400, 401, 420, 438) and not has_mi:
            return True
        problem = verify(data, self.key)
        if problem is not None:
            log.warn("TURN: dropped {summary} from {server}: {problem}",
                     summary=msg.summary(), server=self.server, problem=problem)
            return False
        return True

    def _retry(self, pending: _Pending, now: float) -> None:
        self._request(pending.kind, pending.method, pending.attributes, now, peer=pending.peer,
                      retries=pending.retries + 1)

    def _on_error(self, pending: _Pending, msg: Message, now: float) -> None:
        code, reason = msg.error_code or (400, "error response without ERROR-CODE")
        reason = reason.rstrip("\x00 ")
        if code in (401, 438) and pending.retries < MAX_AUTH_RETRIES:
            realm = msg.get(Attr.REALM)
            nonce = msg.get(Attr.NONCE)
            # 401 to a request that already carried credentials means they are wrong;
            # 438 means only the nonce went stale (RFC 8489 §9.2.5)
            if (isinstance(nonce, bytes) and (code == 438 or not pending.authenticated)
                    and (isinstance(realm, str) or self.realm is not None)):
                self._take_challenge(realm if isinstance(realm, str) else None, nonce, msg)
                self._retry(pending, now)
                return
        alternate = msg.address(Attr.ALTERNATE_SERVER)
        if (code == 300 and pending.kind is _Kind.ALLOCATE and alternate is not None
                and not self.reliable   # a stream would need a new connection: not followed
                and self.redirects < MAX_REDIRECTS and alternate != self.server):
            # RFC 8656 §7.3 / RFC 8489 §10: try the alternate server, same credentials
            self._trace("event", f"redirected to {alternate[0]}:{alternate[1]}", now)
            self.redirects += 1
            self.server = alternate
            self.realm = self.nonce = self.key = None
            self._algorithms = None
            self._algorithm = PasswordAlgorithm.MD5
            self._request(pending.kind, pending.method, pending.attributes, now)
            return
        if code == 401 and pending.authenticated:
            reason = f"{reason} (wrong username or password for realm {self.realm!r}?)"
        self._fail(pending, code, reason, now)

    def _take_challenge(self, realm: str | None, nonce: bytes, msg: Message) -> None:
        if realm is not None:
            self.realm = realm
        self.nonce = nonce
        algs = msg.get(Attr.PASSWORD_ALGORITHMS)
        # RFC 8489 §9.2.4: the "obMatJos2" nonce cookie announces PASSWORD-ALGORITHMS
        if nonce.startswith(b"obMatJos2") and isinstance(algs, tuple) and algs:
            self._algorithms = algs
            numbers = [a[0] for a in algs]
            self._algorithm = (PasswordAlgorithm.SHA256 if PasswordAlgorithm.SHA256 in numbers
                               else PasswordAlgorithm.MD5)
        self.key = long_term_key(self.username, self.realm or "", self.password,
                                 self._algorithm)

    def _fail(self, pending: _Pending, code: int | None, reason: str, now: float) -> None:
        kind = pending.kind
        self._trace("event", f"{kind.value} failed: {code} {reason}", now)
        if kind is _Kind.ALLOCATE:
            self.state = AllocationState.FAILED
            self._cancel_all()
            self._events.append(AllocationFailed(code, reason))
        elif kind is _Kind.REFRESH:
            if code is None or code == 437:
                # the allocation is gone (or unreachable): nothing left to refresh
                self.state = AllocationState.FAILED
                self._cancel_all()
                self._events.append(AllocationFailed(code, reason, during="refresh"))
            else:
                self._events.append(AllocationFailed(code, reason, during="refresh"))
                self._refresh_at = now + 30.0
        elif kind is _Kind.RELEASE:
            self.state = AllocationState.RELEASED
            self._events.append(Released())
        elif kind is _Kind.PERMISSION:
            assert pending.peer is not None
            # a failed create or refresh: the server will not (or soon no longer) relay for
            # this IP, so forget it; a later send_to() asks again
            perm = self._permissions.pop(pending.peer[0], None)
            if perm is not None:
                perm.queue.clear()
            self._events.append(PermissionFailed(pending.peer[0], code, reason))
        elif kind is _Kind.CHANNEL:
            assert pending.peer is not None
            chan = self._channels.pop(pending.peer, None)
            if chan is not None:
                self._peer_by_channel.pop(chan.number, None)
            self._events.append(ChannelBindFailed(pending.peer, code, reason))

    def _on_timeout(self, pending: _Pending, now: float) -> None:
        self._fail(pending, None, f"no answer from TURN server {self.server[0]}:"
                                  f"{self.server[1]}", now)

    def _on_success(self, pending: _Pending, msg: Message, now: float) -> None:
        kind = pending.kind
        if kind is _Kind.ALLOCATE:
            relayed = msg.address(Attr.XOR_RELAYED_ADDRESS)
            lifetime = msg.get(Attr.LIFETIME)
            if relayed is None or not isinstance(lifetime, int):
                self._fail(pending, 0, "bad reply: Allocate success without "
                                       "XOR-RELAYED-ADDRESS or LIFETIME", now)
                return
            self.state = AllocationState.ALLOCATED
            self.relayed_address = relayed
            self.mapped_address = msg.address(Attr.XOR_MAPPED_ADDRESS)
            self._set_lifetime(lifetime, now)
            self._trace("event", f"allocated {relayed[0]}:{relayed[1]} for {lifetime}s", now)
            self._events.append(AllocationSucceeded(relayed, self.mapped_address, lifetime))
        elif kind is _Kind.REFRESH:
            lifetime = msg.get(Attr.LIFETIME)
            if isinstance(lifetime, int) and self.state is AllocationState.ALLOCATED:
                self._set_lifetime(lifetime, now)
                self._events.append(AllocationRefreshed(lifetime))
        elif kind is _Kind.RELEASE:
            self.state = AllocationState.RELEASED
            self._trace("event", "released", now)
            self._events.append(Released())
        elif kind is _Kind.PERMISSION:
            assert pending.peer is not None
            self._install_permission(pending.peer[0], now)
        elif kind is _Kind.CHANNEL:
            assert pending.peer is not None
            chan = self._channels.get(pending.peer)
            if chan is None:
                return
            was_bound = chan.bound
            chan.bound = True
            chan.pending = False
            chan.refresh_at = now + CHANNEL_REFRESH
            # a channel binding installs or refreshes the permission for its IP (§11)
            self._install_permission(pending.peer[0], now)
            if not was_bound:
                self._events.append(ChannelBound(pending.peer, chan.number))

    def _install_permission(self, ip: str, now: float) -> None:
        perm = self._permissions.setdefault(ip, _Permission())
        first = not perm.installed
        perm.installed = True
        perm.pending = False
        perm.refresh_at = now + PERMISSION_REFRESH
        if first:
            self._events.append(PermissionCreated(ip))
        while perm.queue:
            peer, data = perm.queue.popleft()
            self.send_to(peer, data, now)

    def _set_lifetime(self, lifetime: int, now: float) -> None:
        self.lifetime = lifetime
        # RFC 8656 §8: refresh before expiry; a minute ahead, or halfway for short ones
        ahead = 60.0 if lifetime > 120 else lifetime / 2
        self._refresh_at = now + max(lifetime - ahead, 1.0)

    def _cancel_all(self) -> None:
        for pending in self._pending.values():
            pending.txn.cancel()
        self._pending.clear()
        self._refresh_at = None
        for perm in self._permissions.values():
            perm.refresh_at = None
            perm.queue.clear()
        for chan in self._channels.values():
            chan.refresh_at = None

    def _receive_channel_data(self, data: bytes, now: float) -> bool:
        try:
            channel, payload = decode_channel_data(data)
        except ChannelDataError as e:
            log.debug("TURN: dropped ChannelData: {reason}", reason=e.reason)
            return True
        peer = self._peer_by_channel.get(channel)
        if peer is None:
            log.debug("TURN: ChannelData on unbound channel 0x{channel:04x}", channel=channel)
            return True
        self._trace("in", f"ChannelData 0x{channel:04x} {len(payload)} bytes from "
                          f"{peer[0]}:{peer[1]}", now, data, payload)
        self._data_event(DataReceived(peer, payload, channel))
        return True


__all__ = [
    "Allocation", "AllocationFailed", "AllocationRefreshed", "AllocationState",
    "AllocationSucceeded", "ChannelBindFailed", "ChannelBound", "ChannelDataError",
    "DataReceived", "Event", "PermissionCreated", "PermissionFailed", "Released",
    "StreamConnection", "TransactionState", "decode_channel_data", "encode_channel_data",
]
