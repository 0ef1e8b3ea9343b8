"""Tone generation and frequency detection, also through G.711."""

from __future__ import annotations

import math
import time

import pytest

from siplink.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from siplink.media.tone import (
    ToneGenerator,
    detect_frequency,
    goertzel_power,
    pcm_samples,
    rms,
    sine,
)


def test_generator_is_phase_continuous():
    g = ToneGenerator(440.0)
    frames = b"".join(g.read(160) for _ in range(10))
    assert frames == sine(440.0, 0.2)
    xs = pcm_samples(frames)
    assert len(xs) == 1600
    assert max(xs) == pytest.approx(0.3 * 32767, rel=0.01)
    assert rms(xs) == pytest.approx(0.3 * 32767 / math.sqrt(2), rel=0.02)


def test_goertzel_peaks_at_the_tone():
    xs = pcm_samples(sine(1000.0, 0.1))
    assert goertzel_power(xs, 8000, 1000.0) > 100 * goertzel_power(xs, 8000, 1200.0)


def test_detect_440_through_pcmu_within_5_hz():
    pcm = sine(440.0, 1.0)
    decoded = ulaw_decode(ulaw_encode(pcm))
    t = time.perf_counter()
    f = detect_frequency(decoded)
    elapsed = time.perf_counter() - t
    assert f is not None and abs(f - 440.0) < 5.0, f
    assert elapsed < 2.0  # a sanity bound for the suite, not a benchmark


@pytest.mark.parametrize("freq", [97.0, 350.0, 1004.0, 2600.0, 3700.0])
def test_detect_various_through_pcma(freq):
    f = detect_frequency(alaw_decode(alaw_encode(sine(freq, 0.5))))
    assert f is not None and abs(f - freq) < 2.0, (freq, f)


def test_detect_strongest_of_two_tones():
    a = pcm_samples(sine(697.0, 0.5, amplitude=0.1))
    b = pcm_samples(sine(1209.0, 0.5, amplitude=0.4))
    mixed = bytes(__import__("array").array("h", [x + y for x, y in zip(a, b, strict=True)]))
    f = detect_frequency(mixed)
    assert f is not None and abs(f - 1209.0) < 2.0


def test_silence_and_short_input_give_none():
    assert detect_frequency(bytes(16000)) is None
    assert detect_frequency(b"") is None
    assert detect_frequency(sine(440.0, 0.001)) is None


def test_generator_rejects_bad_arguments():
    for bad in (dict(frequencies=5000.0), dict(frequencies=-1.0), dict(frequencies=[])):
        with pytest.raises(ValueError):
            ToneGenerator(**bad)
    with pytest.raises(ValueError):
        ToneGenerator(440.0, amplitude=2.0)


def test_cycle_table_matches_direct_computation():
    g = ToneGenerator([697.0, 1209.0], amplitude=0.5)
    assert g._cycle is not None and len(g._cycle) == 2 * 8000  # gcd(8000, 697, 1209) = 1
    got = b"".join(g.read(n) for n in (173, 7999, 5, 160, 8001, 1))
    assert got == ToneGenerator([697.0, 1209.0], amplitude=0.5)._compute(0, 173 + 7999 + 5 + 160 + 8001 + 1)
    h = ToneGenerator(440.5)           # not whole hertz: computed each time
    assert h._cycle is None
    assert b"".join(h.read(100) for _ in range(3)) == ToneGenerator(440.5)._compute(0, 300)
