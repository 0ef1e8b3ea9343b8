"""G.711 against an independent reference: the standard library's audioop (Python 3.11)."""

from __future__ import annotations

import struct
import warnings

import pytest

from siplink.media.g711 import (
    PCMA,
    PCMU,
    G711Error,
    alaw_decode,
    alaw_encode,
    codec_by_name,
    codec_by_payload_type,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))


def test_ulaw_encode_all_65536_samples_match_audioop():
    assert ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)


def test_alaw_encode_all_65536_samples_match_audioop():
    assert alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES, 2)


def test_ulaw_decode_all_256_codes_match_audioop():
    assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_all_256_codes_match_audioop():
    assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_known_points():
    # mu-law: 0 -> 0xFF, max -> 0x80, min -> 0x00; A-law: 0 -> 0xD5
    assert ulaw_encode(struct.pack("<3h", 0, 32767, -32768)) == b"\xff\x80\x00"
    assert alaw_encode(struct.pack("<h", 0)) == b"\xd5"
    assert PCMU.silence == 0xFF and PCMA.silence == 0xD5
    assert struct.unpack("<2h", ulaw_decode(b"\xff\x7f")) == (0, 0)


def test_round_trip_is_idempotent():
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        once = dec(enc(ALL_SAMPLES))
        assert dec(enc(once)) == once


def test_odd_length_pcm_is_a_typed_error():
    with pytest.raises(G711Error):
        ulaw_encode(b"\x00\x01\x02")
    assert ulaw_encode(b"") == b"" and alaw_decode(b"") == b""


def test_codec_registry():
    assert codec_by_name("pcmu") is PCMU and codec_by_payload_type(8) is PCMA
    assert codec_by_name("opus") is None and codec_by_payload_type(96) is None
    assert PCMU.clock_rate == PCMA.clock_rate == 8000
