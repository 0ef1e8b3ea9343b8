"""STUN client transactions over UDP (RFC 8489 §6.2.1), sans-I/O.

The request is sent at once, then retransmitted after RTO, 2*RTO, 4*RTO, ... until Rc
requests have been sent; after the last one the client waits Rm*RTO more and then gives up.
With the defaults (RTO 500 ms, Rc 7, Rm 16) requests leave at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and
31.5 s and the transaction times out at 39.5 s.
"""

from __future__ import annotations

import enum

from ice.address import Address
from ice.stun import Class, Message
from ice.trace import Trace, TraceRecord


class TransactionState(enum.Enum):
    WAITING = "waiting"        # no final answer yet
    SUCCEEDED = "succeeded"    # a success response arrived: ``result`` holds it
    FAILED = "failed"          # an error response arrived: ``result`` holds it
    TIMED_OUT = "timed-out"    # no answer after Rc requests and the final wait
    CANCELLED = "cancelled"


class StunClientTransaction:
    """One request and its retransmissions; ``now`` is always passed in."""

    def __init__(
        self,
        request: bytes,
        transaction_id: bytes,
        addr: Address,
        now: float,
        *,
        rto: float = 0.5,
        rc: int = 7,
        rm: int = 16,
        trace: Trace | None = None,
    ) -> None:
        if rc < 1:
            raise ValueError("Rc must be at least 1")
        self.request = request
        self.transaction_id = transaction_id
        self.addr = addr
        self.rto = rto
        self.rc = rc
        self.rm = rm
        self.started = now
        self.state = TransactionState.WAITING
        self.result: Message | None = None
        self.sent = 0                       # requests handed out so far
        self._interval = rto
        self._next_send: float | None = now  # when the next (re)transmission is due
        self._deadline: float | None = None  # set after the last send: final wait ends
        self.send_times: list[float] = []
        self.trace = trace

    # ---- state -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state is not TransactionState.WAITING

    @property
    def timed_out(self) -> bool:
        return self.state is TransactionState.TIMED_OUT

    # ---- sans-I/O interface -----------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        if self.done or self._next_send is None or now < self._next_send:
            return []
        self.sent += 1
        self.send_times.append(now)
        if self.trace is not None:
            what = "request" if self.sent == 1 else f"retransmission {self.sent - 1}"
            self.trace.add(TraceRecord(now, "out", f"STUN {what} {self.transaction_id.hex()}",
                                       remote=self.addr, protocol="stun", raw=self.request))
        if self.sent >= self.rc:
            self._next_send = None
            self._deadline = now + self.rm * self.rto
        else:
            self._next_send = now + self._interval
            self._interval *= 2
        return [(self.request, self.addr)]

    def get_timer(self) -> float | None:
        if self.done:
            return None
        if self._next_send is not None:
            return self._next_send
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """Time has reached ``now``: a due retransmission becomes available from
        :meth:`datagrams_to_send`, or the transaction times out."""
        if self.done:
            return
        if self._next_send is None and self._deadline is not None and now >= self._deadline:
            self.state = TransactionState.TIMED_OUT
            self._event(now, f"timed out after {self.sent} requests")

    def receive_response(self, msg: Message, now: float) -> None:
        """A response with this transaction's id; the caller has verified it already."""
        if self.done or msg.transaction_id != self.transaction_id:
            return
        if msg.cls == Class.SUCCESS:
            self.state = TransactionState.SUCCEEDED
        elif msg.cls == Class.ERROR:
            self.state = TransactionState.FAILED
        else:
            return
        self.result = msg
        self._event(now, f"{self.state.value}: {msg.summary()}")

    def _event(self, now: float, text: str) -> None:
        if self.trace is not None:
            self.trace.add(TraceRecord(now, "event", f"STUN transaction "
                                       f"{self.transaction_id.hex()} {text}",
                                       remote=self.addr, protocol="stun"))

    def cancel(self) -> None:
        if not self.done:
            self.state = TransactionState.CANCELLED
