"""The one error the SIP message codec raises for malformed input."""

from __future__ import annotations

from typing import Any


class SipParseError(ValueError):
    """Malformed SIP input.

    ``reason`` is short text fit for a response's reason phrase (``400 Bad Request: ...`` style
    UAS answers put it after the code); ``status`` is the response a UAS should give: 400 by
    default, 505 for an unsupported SIP version, 513 for a message too large, 413 for a body too
    large.  ``partial`` is, when the start line and header fields could be split, the message as
    far as it was parsed (its start line and raw headers), so that a UAS can still build the
    error response from its Via, From, To, Call-ID and CSeq; ``None`` otherwise.
    """

    def __init__(self, reason: str, status: int = 400, partial: Any = None) -> None:
        # a reason phrase is one line of printable text: never echo control octets
        if not (reason.isascii() and reason.isprintable()) or len(reason) > 200:
            reason = "".join(c if c.isascii() and c.isprintable() else "?" for c in reason[:200])
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, status={self.status})"
