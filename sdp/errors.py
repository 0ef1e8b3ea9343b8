"""The one error type of the SDP core."""

from __future__ import annotations


class SdpError(Exception):
    """Malformed or unacceptable SDP.

    ``reason`` is short and fit for a SIP reason phrase (the UA answers 400 for a body it cannot
    parse and 488 when an offer has nothing acceptable); ``line`` is the 1-based line number of
    the offending line when there is one.
    """

    MAX_REASON = 200

    def __init__(self, reason: str, line: int | None = None) -> None:
        if len(reason) > self.MAX_REASON:     # bounded whatever the input quoted in it
            reason = reason[: self.MAX_REASON - 3] + "..."
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


class OfferPendingError(SdpError):
    """An offer arrived (or was to be sent) while our own offer is outstanding: glare.

    RFC 3261 §14.1 / RFC 3264 §4: the UA answers such a re-INVITE with 491 Request Pending.
    """
