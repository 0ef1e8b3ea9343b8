"""One ``callLater`` kept armed at a sans-I/O core's next deadline: the timer half of every driver.

Each core (ICE agent, STUN transaction, TURN allocation, SIP transaction layer, media stream)
says when it next needs the clock with ``get_timer()`` and is told the time has come with
``handle_timer(now)``.  A driver feeds its core some input, sends what the core queued, then
calls :meth:`TimerDriver.rearm`; when the delayed call fires, the driver's core gets
``handle_timer(clock.seconds())`` and the driver's ``after`` callback runs (send what the core
queued, dispatch its events, rearm).  :meth:`TimerDriver.cancel` when the driver stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger

__all__ = ["TimedCore", "TimerDriver"]


class TimedCore(Protocol):
    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class TimerDriver:
    """Keeps at most one delayed call on ``clock`` (an ``IReactorTime``: the reactor or a
    ``task.Clock``), armed at ``core.get_timer()``.

    ``after`` runs once ``core.handle_timer`` returned.  With ``failure`` set, an exception
    from ``handle_timer`` is logged on ``log`` under that message and ``after`` still runs (the
    reactor is never handed a core's bug); without it, the exception propagates.
    """

    def __init__(self, clock: Any, core: TimedCore, after: Callable[[], None] | None = None,
                 *, failure: str | None = None, log: Logger | None = None) -> None:
        self.clock = clock
        self.core = core
        self.after = after
        self._failure = failure
        self._log = log if log is not None else Logger()
        self._call: Any = None  # IDelayedCall
        self._at: float | None = None

    @property
    def armed(self) -> bool:
        return self._call is not None and self._call.active()

    @property
    def deadline(self) -> float | None:
        """When the armed call fires (None when none is)."""
        return self._at if self.armed else None

    def rearm(self, now: float | None = None) -> None:
        """Arm at the core's deadline (``now`` defaults to ``clock.seconds()``); a call already
        armed at that deadline is kept, none is left when the core has no deadline."""
        t = self.core.get_timer()
        if t is None:
            self.cancel()
            return
        if t == self._at and self.armed:
            return
        self.cancel()
        if now is None:
            now = self.clock.seconds()
        self._at = t
        self._call = self.clock.callLater(max(0.0, t - now), self._fire)

    def cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._at = None

    def _fire(self) -> None:
        self._call = None
        self._at = None
        if self._failure is None:
            self.core.handle_timer(self.clock.seconds())
        else:
            try:
                self.core.handle_timer(self.clock.seconds())
            except Exception:
                self._log.failure(self._failure)
        if self.after is not None:
            self.after()
