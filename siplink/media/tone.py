"""Sine tones and tone-frequency detection on 16-bit PCM (no FFT library: Goertzel).

- :class:`ToneGenerator` produces successive frames of one or more summed sines with
  continuous phase (what a media stream plays); :func:`sine` is the one-shot form.
- :func:`goertzel_power` is the power of one frequency in a block of samples (the
  generalised Goertzel recurrence, valid for any frequency, not only DFT bins).
- :func:`detect_frequency` finds the dominant frequency: a coarse scan over a short,
  Hann-windowed block, then a fine search around the peak over a longer block, so a tone is
  found to a fraction of a hertz in a few tens of milliseconds of CPU.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Sequence

__all__ = [
    "ToneGenerator",
    "detect_frequency",
    "goertzel_power",
    "pcm_samples",
    "rms",
    "sine",
]


def pcm_samples(pcm: bytes) -> array[int]:
    """16-bit signed little-endian PCM as an array of ints (a trailing odd byte is dropped)."""
    a = array("h")
    a.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if struct.pack("=h", 1) != struct.pack("<h", 1):  # pragma: no cover - big-endian hosts
        a.byteswap()
    return a


class ToneGenerator:
    """Summed sines at ``frequencies`` (Hz), ``amplitude`` the peak of the sum in 0..1."""

    def __init__(self, frequencies: float | Sequence[float], *, sample_rate: int = 8000,
                 amplitude: float = 0.3) -> None:
        freqs = [float(frequencies)] if isinstance(frequencies, int | float) else \
            [float(f) for f in frequencies]
        if not freqs or any(f < 0 or f >= sample_rate / 2 for f in freqs):
            raise ValueError("tone frequencies must be in [0, sample_rate/2)")
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError("amplitude must be in [0, 1]")
        self.frequencies = tuple(freqs)
        self.sample_rate = sample_rate
        self.amplitude = amplitude
        self._n = 0
        # Whole-hertz tones repeat every sample_rate / gcd(...) samples (at most one second):
        # compute that cycle once and play it from a table.
        self._cycle: bytes | None = None
        if all(f.is_integer() for f in freqs):
            g = sample_rate
            for f in freqs:
                g = math.gcd(g, int(f))
            period = sample_rate // g if g else 1
            self._cycle = self._compute(0, period)

    def _compute(self, n0: int, samples: int) -> bytes:
        peak = 32767 * self.amplitude / len(self.frequencies)
        steps = [2 * math.pi * f / self.sample_rate for f in self.frequencies]
        out = array("h", [
            int(round(peak * sum(math.sin(w * (n0 + i)) for w in steps)))
            for i in range(samples)
        ])
        if struct.pack("=h", 1) != struct.pack("<h", 1):  # pragma: no cover
            out.byteswap()
        return out.tobytes()

    def read(self, samples: int) -> bytes:
        """The next ``samples`` samples as 16-bit little-endian PCM."""
        n0 = self._n
        self._n += samples
        cycle = self._cycle
        if cycle is None:
            return self._compute(n0, samples)
        period = len(cycle) // 2
        start = 2 * (n0 % period)
        want = 2 * samples
        if start + want <= len(cycle):
            return cycle[start:start + want]
        reps = (start + want) // len(cycle) + 1
        return (cycle * reps)[start:start + want]


def sine(frequency: float, seconds: float, *, sample_rate: int = 8000,
         amplitude: float = 0.3) -> bytes:
    return ToneGenerator(frequency, sample_rate=sample_rate,
                         amplitude=amplitude).read(int(seconds * sample_rate))


def rms(samples: Sequence[int] | Sequence[float]) -> float:
    if not samples:
        return 0.0
    return math.sqrt(sum(float(x) * x for x in samples) / len(samples))


def goertzel_power(samples: Sequence[float] | Sequence[int], sample_rate: float,
                   frequency: float) -> float:
    """|X(f)|^2 of ``samples`` at ``frequency`` (generalised Goertzel)."""
    coeff = 2.0 * math.cos(2.0 * math.pi * frequency / sample_rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def _hann(xs: Sequence[int]) -> list[float]:
    n = len(xs)
    if n < 2:
        return [float(x) for x in xs]
    return [x * (0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))) for i, x in enumerate(xs)]


def detect_frequency(pcm: bytes, sample_rate: int = 8000, *, min_hz: float = 50.0,
                     max_hz: float | None = None, min_rms: float = 100.0,
                     max_seconds: float = 1.0) -> float | None:
    """The dominant frequency of 16-bit PCM in hertz, or None when it is (nearly) silent.

    Uses at most ``max_seconds`` of audio from the middle of ``pcm``.
    """
    xs = pcm_samples(pcm)
    limit = int(max_seconds * sample_rate)
    if len(xs) > limit:
        start = (len(xs) - limit) // 2
        xs = xs[start:start + limit]
    if len(xs) < 64 or rms(xs) < min_rms:
        return None
    top = max_hz if max_hz is not None else sample_rate / 2 - 1
    # Coarse: a 32 ms Hann-windowed block, step of half a bin.
    # The loudest such block, so silences (DTMF gaps, lost packets) do not blind the scan.
    n_coarse = min(len(xs), 256)
    starts = range(0, len(xs) - n_coarse + 1, n_coarse)
    mid = max(starts, key=lambda i: sum(x * x for x in xs[i:i + n_coarse]))
    block = _hann(xs[mid:mid + n_coarse])
    step = sample_rate / n_coarse / 2
    best_f, best_p = min_hz, -1.0
    f = min_hz
    while f <= top:
        p = goertzel_power(block, sample_rate, f)
        if p > best_p:
            best_f, best_p = f, p
        f += step
    # Fine: the whole (windowed) block, narrowing the step around the best frequency.
    long_block = _hann(xs)
    lo, hi, fine = best_f - 2 * step, best_f + 2 * step, step / 4
    for _ in range(4):
        best_p = -1.0
        f = max(min_hz, lo)
        while f <= min(top, hi):
            p = goertzel_power(long_block, sample_rate, f)
            if p > best_p:
                best_f, best_p = f, p
            f += fine
        lo, hi, fine = best_f - fine, best_f + fine, fine / 8
    return best_f
