"""Reliable provisional responses (RFC 3262) and option tags: the small pieces the UA uses.

The retransmission of a reliable provisional lives in the transaction layer
(:meth:`~siplink.core.transaction.TransactionLayer.send_1xx_reliably`); the UA core decides when
to send one and answers PRACKs. Here: option-tag queries (Supported / Require), RSeq and RAck
parsing, and the UAC's per-early-dialog RSeq ordering (§4: deliver in order, drop repeats).
"""

from __future__ import annotations

import random

from siplink.sip.message import Request, Response, SipParseError

__all__ = ["RSeqTracker", "first_rseq", "option_tags", "parse_rack", "parse_rseq", "requires",
           "supports"]

MAX_RSEQ = 2**31 - 1


def _tags(msg: Request | Response, header: str) -> set[str]:
    return {t.strip().lower() for t in msg.headers.get_all(header) if t.strip()}


def supports(msg: Request | Response, option: str) -> bool:
    """``option`` appears in Supported or Require."""
    return option in _tags(msg, "Supported") or option in _tags(msg, "Require")


def option_tags(msg: Request | Response) -> set[str]:
    """Every option tag of Supported and Require, lower case."""
    return _tags(msg, "Supported") | _tags(msg, "Require")


def requires(msg: Request | Response, option: str) -> bool:
    return option in _tags(msg, "Require")


def parse_rseq(value: str | None) -> int:
    """RSeq: 1*DIGIT in 1..2**31-1; raises SipParseError."""
    if value is None or not value.strip().isdigit():
        raise SipParseError("missing or malformed RSeq")
    n = int(value.strip())
    if not 1 <= n <= MAX_RSEQ:
        raise SipParseError("RSeq out of range")
    return n


def parse_rack(value: str | None) -> tuple[int, int, str]:
    """RAck: ``response-num CSeq-num Method``; raises SipParseError."""
    parts = (value or "").split()
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise SipParseError("missing or malformed RAck")
    return int(parts[0]), int(parts[1]), parts[2]


def first_rseq() -> int:
    """§3: the first RSeq is random in 1..2**31-1, leaving room to count up."""
    return random.randint(1, 2**30)


class RSeqTracker:
    """The UAC's view of one early dialog's reliable provisionals (§4)."""

    def __init__(self) -> None:
        self.last: int | None = None

    def accept(self, rseq: int) -> bool:
        """True when ``rseq`` is the next one to deliver (and PRACK); False for a repeat or an
        out-of-order response (which the UAS will retransmit)."""
        if self.last is not None and rseq != self.last + 1:
            return False
        self.last = rseq
        return True
