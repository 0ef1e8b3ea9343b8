"""A result many may wait for, as Deferreds: ``Call.answered`` and ``Call.ended``."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["Outcome"]

T = TypeVar("T")


class Outcome(Generic[T]):
    """A result many may wait for. Each :meth:`wait` gets a Deferred of its own, so a failure
    nobody waits for is never an "Unhandled error in Deferred", and one that is waited for is
    reported to each waiter exactly once."""

    __slots__ = ("_value", "_error", "_done", "_waiters")

    def __init__(self) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = False
        self._waiters: list[defer.Deferred[T]] = []

    @property
    def called(self) -> bool:
        return self._done

    @property
    def failed(self) -> bool:
        return self._done and self._error is not None

    def wait(self) -> defer.Deferred[T]:
        if self._done:
            if self._error is not None:
                return defer.fail(Failure(self._error))
            return defer.succeed(self._value)
        d: defer.Deferred[T] = defer.Deferred()
        self._waiters.append(d)
        return d

    def succeed(self, value: T) -> None:
        self._settle(value, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if self._done:
            return
        self._done, self._value, self._error = True, value, error
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if error is not None:
                d.errback(Failure(error))
            else:
                d.callback(value)
