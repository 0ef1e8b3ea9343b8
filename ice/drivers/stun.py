"""Thin Twisted adapter: a STUN Binding request on its own UDP socket (``siplink stun``).

The protocol work is done by :mod:`ice.stun` and :class:`ice.stun_transaction.
StunClientTransaction`; this module only moves datagrams and keeps one ``callLater``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ice.address import Address
from ice.drivers.timer import TimerDriver
from ice.stun import (
    Attr,
    Class,
    Message,
    Method,
    StunDecodeError,
    decode,
    encode,
    new_transaction_id,
)
from ice.stun_transaction import StunClientTransaction, TransactionState

log = Logger(namespace="ice.drivers.stun")


class StunError(Exception):
    """Base of the failures a STUN/TURN client reports to its caller."""


class StunTimeout(StunError):
    pass


class StunErrorResponse(StunError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class StunBadReply(StunError):
    pass


class BindingClient(DatagramProtocol):
    """Send one Binding request to ``server``; :meth:`request` fires with the response."""

    def __init__(
        self,
        clock: Any,
        server: Address,
        *,
        rto: float = 0.5,
        rc: int = 7,
        rm: int = 16,
        software: str | None = "siplink",
    ) -> None:
        self.clock = clock
        self.server = server
        self.rto, self.rc, self.rm = rto, rc, rm
        self.software = software
        self.txn: StunClientTransaction | None = None
        self._deferred: Deferred[Message] | None = None
        self._timer: TimerDriver | None = None
        self.received: list[bytes] = []   # raw responses, for tests and -v output

    def request(self) -> Deferred[Message]:
        """Fires with the success response; fails with StunTimeout / StunErrorResponse /
        StunBadReply."""
        tid = new_transaction_id()
        msg = Message(Method.BINDING, Class.REQUEST, tid)
        if self.software:
            msg.attributes[Attr.SOFTWARE] = self.software
        self.txn = StunClientTransaction(encode(msg), tid, self.server, self.clock.seconds(),
                                         rto=self.rto, rc=self.rc, rm=self.rm)
        if self._timer is None:
            self._timer = TimerDriver(self.clock, self.txn, self._flush)
        self._timer.core = self.txn
        self._deferred = Deferred(canceller=lambda _d: self._stop())
        if self._transport() is not None:
            self.txn.handle_timer(self.clock.seconds())
            self._flush()
        return self._deferred

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802 - Twisted API
        txn = self.txn
        if txn is None or txn.done or (addr[0], addr[1]) != self.server:
            return
        try:
            msg = decode(datagram)
        except StunDecodeError as e:
            if len(datagram) >= 20 and datagram[8:20] == txn.transaction_id:
                self._finish(StunBadReply(f"malformed reply: {e.reason}"))
            else:
                log.debug("dropped non-STUN datagram: {reason}", reason=e.reason)
            return
        if msg.transaction_id != txn.transaction_id:
            return
        self.received.append(datagram)
        txn.receive_response(msg, self.clock.seconds())
        if txn.state is TransactionState.SUCCEEDED:
            if msg.address(Attr.XOR_MAPPED_ADDRESS) is None and \
                    msg.address(Attr.MAPPED_ADDRESS) is None:
                self._finish(StunBadReply("Binding success without a mapped address"))
            else:
                self._finish(msg)
        elif txn.state is TransactionState.FAILED:
            code, reason = msg.error_code or (0, "error response without ERROR-CODE")
            self._finish(StunErrorResponse(code, reason.rstrip("\x00 ")))

    def _transport(self) -> Any:
        return self.transport

    def _flush(self) -> None:
        """Send what the transaction queued (after its handle_timer), then rearm."""
        txn = self.txn
        transport = self._transport()
        if txn is None or transport is None or self._timer is None:
            return
        now = self.clock.seconds()
        for data, addr in txn.datagrams_to_send(now):
            transport.write(data, addr)
        if txn.timed_out:
            self._finish(StunTimeout(f"no answer from {self.server[0]}:{self.server[1]} after "
                                     f"{txn.sent} requests"))
            return
        self._timer.rearm(now)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.txn is not None:
            self.txn.cancel()

    def _finish(self, outcome: Message | StunError) -> None:
        self._stop()
        d, self._deferred = self._deferred, None
        if d is None:
            return
        if isinstance(outcome, Message):
            d.callback(outcome)
        else:
            d.errback(outcome)
