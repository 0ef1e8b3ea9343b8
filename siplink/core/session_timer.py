"""Session timers (RFC 4028): negotiation of Session-Expires / Min-SE and the refresh schedule.

Pure functions; the UA core applies them (headers on INVITE / 2xx / refreshes, one timer per
call: refresh at half the interval when we are the refresher, otherwise BYE when the interval
runs out without a refresh, §10).
"""

from __future__ import annotations

from dataclasses import dataclass

from siplink.core.prack import supports
from siplink.sip.message import Request, Response, SipParseError

__all__ = [
    "MIN_SE",
    "SessionTimer",
    "TooSmall",
    "expire_delay",
    "parse_session_expires",
    "refresh_delay",
    "uac_result",
    "uas_negotiate",
]

MIN_SE = 90          # §4: the smallest Min-SE allowed
MAX_SE = 2**31 - 1


@dataclass(frozen=True, slots=True)
class SessionTimer:
    interval: int
    refresher: str   # "uac" or "uas"

    def header(self) -> str:
        return f"{self.interval};refresher={self.refresher}"


class TooSmall(Exception):
    """The offered Session-Expires is below our Min-SE: answer 422 with ``Min-SE``."""

    def __init__(self, min_se: int) -> None:
        super().__init__(f"Session-Expires below {min_se}")
        self.min_se = min_se


def parse_session_expires(value: str | None) -> tuple[int, str | None] | None:
    """``delta-seconds *(;se-params)``: (interval, refresher or None); None when absent."""
    if value is None:
        return None
    head, *params = [p.strip() for p in value.split(";")]
    if not head.isdigit():
        raise SipParseError("malformed Session-Expires")
    interval = int(head)
    if not 1 <= interval <= MAX_SE:
        raise SipParseError("Session-Expires out of range")
    refresher = None
    for p in params:
        name, _, val = p.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower()
            if refresher not in ("uac", "uas"):
                raise SipParseError("bad refresher")
    return interval, refresher


def uas_negotiate(request: Request, min_se: int = MIN_SE) -> SessionTimer | None:
    """§9: the timer a UAS applies to an INVITE (None: no session timer). Raises TooSmall."""
    se = parse_session_expires(request.headers.get("Session-Expires"))
    if se is None:
        return None
    interval, refresher = se
    if interval < min_se:
        raise TooSmall(min_se)
    if refresher is None:
        refresher = "uac" if supports(request, "timer") else "uas"
    return SessionTimer(interval, refresher)


def uac_result(response: Response) -> SessionTimer | None:
    """§7.2: the timer a 2xx sets for the UAC (None when the answer has no Session-Expires)."""
    se = parse_session_expires(response.headers.get("Session-Expires"))
    if se is None:
        return None
    interval, refresher = se
    return SessionTimer(interval, refresher or "uac")


def refresh_delay(interval: int) -> float:
    """§10: the refresher sends its refresh at half the interval."""
    return interval / 2


def expire_delay(interval: int) -> float:
    """§10: the other side ends the session if no refresh came by interval - min(32, SE/3)."""
    return interval - min(32.0, interval / 3)
