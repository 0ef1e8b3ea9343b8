"""DTMF as RTP telephone-events (RFC 4733 §2.3, payload ``telephone-event/8000``).

- :class:`TelephoneEvent`: the 4-octet payload (event, E bit, volume, duration).
- :func:`event_series`: the packets one key press produces: the first with the RTP marker
  bit, growing durations every packet interval, then the final packet (E bit) sent three times
  with the same timestamp and duration (§2.5.1.4).
- :class:`DtmfSender`: a queue of digits turned into that series, one packet per media tick,
  with a pause between digits; the media stream asks it each tick.
- :class:`DtmfReceiver`: de-duplicates the series (by event timestamp) into digits.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

__all__ = [
    "DIGITS",
    "DtmfDigit",
    "DtmfError",
    "DtmfReceiver",
    "DtmfSender",
    "DtmfTick",
    "TelephoneEvent",
    "digit_of",
    "event_of",
    "event_series",
]

DIGITS = "0123456789*#ABCD"


class DtmfError(ValueError):
    """A telephone-event payload that cannot be decoded, or a digit that has no event code."""


def event_of(digit: str) -> int:
    """Event code of a DTMF digit (RFC 4733 §3.2: 0-9, * = 10, # = 11, A-D = 12-15)."""
    i = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if i < 0:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return i


def digit_of(event: int) -> str | None:
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool = False
    volume: int = 10          # dBm0 below 0, 0..63
    duration: int = 0         # timestamp units since the event's timestamp

    def encode(self) -> bytes:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise DtmfError("event or volume out of range")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError("duration out of range")
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | self.volume,
                           self.duration)

    @classmethod
    def decode(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise DtmfError("telephone-event payload shorter than 4 octets")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True, slots=True)
class DtmfTick:
    """One packet of a series: the payload, whether it carries the marker bit."""

    event: TelephoneEvent
    marker: bool


def event_series(digit: str, *, duration: int = 800, packet_samples: int = 160,
                 volume: int = 10, end_repeats: int = 3) -> list[DtmfTick]:
    """The packets of one key press of ``duration`` samples, one every ``packet_samples``."""
    code = event_of(digit)
    if duration <= 0 or packet_samples <= 0:
        raise DtmfError("duration and packet interval must be positive")
    duration = min(duration, 0xFFFF)
    out: list[DtmfTick] = []
    d = 0
    while True:
        d = min(d + packet_samples, duration)
        if d >= duration:
            break
        out.append(DtmfTick(TelephoneEvent(code, False, volume, d), marker=not out))
    final = TelephoneEvent(code, True, volume, duration)
    for i in range(max(1, end_repeats)):
        out.append(DtmfTick(final, marker=not out and i == 0))
    return out


class DtmfSender:
    """Digits queued by :meth:`send`, produced one packet per media tick by :meth:`tick`.

    ``tick(timestamp)`` returns ``(DtmfTick, event_timestamp)`` while an event is being sent
    (every packet of one event carries the timestamp of its first tick), or None when the
    stream should send audio (nothing queued, or the pause between digits).
    """

    def __init__(self, *, packet_samples: int = 160, duration: int = 800, gap: int = 400,
                 volume: int = 10, max_queue: int = 256) -> None:
        self.packet_samples = packet_samples
        self.duration = duration
        self.gap = gap
        self.volume = volume
        self.max_queue = max_queue
        self._queue: deque[str] = deque()
        self._series: deque[DtmfTick] = deque()
        self._event_ts = 0
        self._gap_left = 0

    def send(self, digits: str) -> None:
        """Queue digits (raises :class:`DtmfError` for a character that is not a digit)."""
        for d in digits:
            event_of(d)
        if len(self._queue) + len(digits) > self.max_queue:
            raise DtmfError("too many digits queued")
        self._queue.extend(digits)

    @property
    def busy(self) -> bool:
        return bool(self._queue or self._series or self._gap_left > 0)

    def tick(self, timestamp: int) -> tuple[DtmfTick, int] | None:
        if not self._series:
            if self._gap_left > 0:
                self._gap_left -= self.packet_samples
                return None
            if not self._queue:
                return None
            digit = self._queue.popleft()
            self._series.extend(event_series(digit, duration=self.duration,
                                             packet_samples=self.packet_samples,
                                             volume=self.volume))
            self._event_ts = timestamp
        t = self._series.popleft()
        if not self._series:
            self._gap_left = self.gap
        return t, self._event_ts


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    digit: str
    timestamp: int       # the event's RTP timestamp
    duration: int        # timestamp units (the last duration seen)
    volume: int
    ssrc: int = 0


class DtmfReceiver:
    """Turns received telephone-event packets into digits, each reported once.

    A digit is reported on the first end packet of its event; the redundant end packets
    (same timestamp) are ignored. If an event's end packets are all lost, the event is
    reported when the next event (another timestamp) starts, or on :meth:`flush`.
    """

    def __init__(self, *, remember: int = 64) -> None:
        self._done: deque[tuple[int, int]] = deque(maxlen=remember)   # (ssrc, timestamp)
        self._open: tuple[int, int, TelephoneEvent] | None = None

    def receive(self, timestamp: int, payload: bytes, ssrc: int = 0) -> list[DtmfDigit]:
        """Feed one telephone-event payload; returns the digits completed by it (0, 1 or 2)."""
        ev = TelephoneEvent.decode(payload)
        key = (ssrc, timestamp)
        out: list[DtmfDigit] = []
        if key in self._done:
            return out
        if self._open is not None and (self._open[0], self._open[1]) != key:
            out.extend(self.flush())
        if digit_of(ev.event) is None:
            return out  # a non-DTMF event (tones, flash): not a digit
        if ev.end:
            self._done.append(key)
            self._open = None
            out.append(DtmfDigit(DIGITS[ev.event], timestamp, ev.duration, ev.volume, ssrc))
        else:
            self._open = (ssrc, timestamp, ev)
        return out

    @property
    def event_open(self) -> bool:
        """An event has started and its end has not been received (yet)."""
        return self._open is not None

    def flush(self) -> list[DtmfDigit]:
        """Report an event whose end was never received."""
        if self._open is None:
            return []
        ssrc, ts, ev = self._open
        self._open = None
        self._done.append((ssrc, ts))
        return [DtmfDigit(DIGITS[ev.event], ts, ev.duration, ev.volume, ssrc)]
