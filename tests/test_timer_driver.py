"""ice.drivers.timer.TimerDriver in virtual time: one call armed at the core's deadline, kept when
the deadline is unchanged, moved when it changes, none when the core has none; firing calls
handle_timer(now) then ``after``; cancel leaves nothing armed."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import task
from twisted.logger import Logger, LogLevel, globalLogPublisher

from ice.drivers.timer import TimerDriver


class Core:
    def __init__(self) -> None:
        self.deadline: float | None = None
        self.fired: list[float] = []
        self.fail = False

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        if self.fail:
            raise RuntimeError("core bug")
        self.deadline = None


def test_one_call_armed_at_the_deadline_and_moved_when_it_changes() -> None:
    clock, core = task.Clock(), Core()
    after: list[float] = []
    timer = TimerDriver(clock, core, lambda: after.append(clock.seconds()))
    timer.rearm()
    assert not timer.armed and clock.getDelayedCalls() == []
    core.deadline = 2.0
    timer.rearm()
    first = clock.getDelayedCalls()
    timer.rearm()
    assert clock.getDelayedCalls() == first and len(first) == 1 and timer.deadline == 2.0
    core.deadline = 1.5
    timer.rearm()
    assert len(clock.getDelayedCalls()) == 1 and timer.deadline == 1.5
    clock.advance(1.4)
    assert core.fired == []
    clock.advance(0.1)
    assert core.fired == [1.5] and after == [1.5]
    assert not timer.armed and clock.getDelayedCalls() == []


def test_a_deadline_in_the_past_fires_at_once_and_none_disarms() -> None:
    clock, core = task.Clock(), Core()
    clock.advance(10.0)
    core.deadline = 3.0
    timer = TimerDriver(clock, core)
    timer.rearm()
    clock.advance(0)
    assert core.fired == [10.0]
    core.deadline = 12.0
    timer.rearm()
    core.deadline = None
    timer.rearm()
    assert not timer.armed and clock.getDelayedCalls() == []


def test_cancel_leaves_nothing_armed() -> None:
    clock, core = task.Clock(), Core()
    core.deadline = 1.0
    timer = TimerDriver(clock, core)
    timer.rearm()
    timer.cancel()
    timer.cancel()
    assert clock.getDelayedCalls() == [] and timer.deadline is None
    clock.advance(5)
    assert core.fired == []


def test_a_core_exception_is_logged_when_asked_else_raised() -> None:
    clock, core = task.Clock(), Core()
    core.fail = True
    core.deadline = 1.0
    after: list[bool] = []
    seen: list[dict[str, Any]] = []
    observer: Any = seen.append
    globalLogPublisher.addObserver(observer)
    try:
        timer = TimerDriver(clock, core, lambda: after.append(True), failure="core raised",
                            log=Logger(namespace="test.timer"))
        timer.rearm()
        clock.advance(1.0)
    finally:
        globalLogPublisher.removeObserver(observer)
    failures = [e for e in seen if e.get("log_namespace") == "test.timer"]
    assert [e["log_level"] for e in failures] == [LogLevel.critical]
    assert after == [True]

    strict = TimerDriver(clock, core)
    core.deadline = 3.0
    strict.rearm()
    with pytest.raises(RuntimeError):
        clock.advance(2.0)
