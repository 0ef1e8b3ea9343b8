"""G.711 PCMU (mu-law) and PCMA (A-law) codecs, table-based, ``bytes -> bytes``.

PCM is 16-bit signed little-endian mono (what :mod:`wave` reads and writes); a G.711 payload is
one byte per sample. Encoding looks each 16-bit sample up in a 65536-entry table; decoding
builds the low and high byte of each sample with two :meth:`bytes.translate` calls, so both
run at C speed. The tables are computed once at import from the ITU-T G.711 segment rules
(the classic reference algorithm: mu-law on 14-bit, A-law on 13-bit magnitudes).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

__all__ = [
    "CODECS",
    "G711Codec",
    "G711Error",
    "PCMA",
    "PCMU",
    "alaw_decode",
    "alaw_encode",
    "codec_by_name",
    "codec_by_payload_type",
    "ulaw_decode",
    "ulaw_encode",
]


class G711Error(ValueError):
    """PCM that is not whole 16-bit samples."""


_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return len(ends)


def _ulaw_from_14bit(v: int) -> int:
    """mu-law code of a signed 14-bit value (G.711 Table 2a, with bias 33)."""
    if v < 0:
        v = -v
        mask = 0x7F
    else:
        mask = 0xFF
    v = min(v, 8159) + 33
    seg = _segment(v, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


def _alaw_from_13bit(v: int) -> int:
    """A-law code of a signed 13-bit value (G.711 Table 1a, even bits inverted)."""
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = _segment(v, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    q = (v >> 1) if seg < 2 else (v >> seg)
    return ((seg << 4) | (q & 0x0F)) ^ mask


def _ulaw_to_linear(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _alaw_to_linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _signed(u: int, bits: int) -> int:
    return u - (1 << bits) if u >= 1 << (bits - 1) else u


# Encoding tables indexed by the unsigned 16-bit sample: mu-law depends on sample >> 2 only,
# A-law on sample >> 3 only, so build the small table and repeat each entry.
_U14 = bytes(_ulaw_from_14bit(_signed(u, 14)) for u in range(1 << 14))
_A13 = bytes(_alaw_from_13bit(_signed(u, 13)) for u in range(1 << 13))
_ULAW_ENC = bytes(b for b in _U14 for _ in range(4))
_ALAW_ENC = bytes(b for b in _A13 for _ in range(8))

_ULAW_LIN = [_ulaw_to_linear(c) & 0xFFFF for c in range(256)]
_ALAW_LIN = [_alaw_to_linear(c) & 0xFFFF for c in range(256)]
_ULAW_LO = bytes(v & 0xFF for v in _ULAW_LIN)
_ULAW_HI = bytes(v >> 8 for v in _ULAW_LIN)
_ALAW_LO = bytes(v & 0xFF for v in _ALAW_LIN)
_ALAW_HI = bytes(v >> 8 for v in _ALAW_LIN)

_BIG_ENDIAN = sys.byteorder == "big"


def _samples(pcm: bytes) -> array[int]:
    if len(pcm) % 2:
        raise G711Error("PCM length is not a whole number of 16-bit samples")
    a = array("H")
    a.frombytes(pcm)
    if _BIG_ENDIAN:  # pragma: no cover - little-endian machines
        a.byteswap()
    return a


def _encode(pcm: bytes, table: bytes) -> bytes:
    samples = _samples(pcm)
    if len(samples) < 2:
        return bytes(map(table.__getitem__, samples))
    # itemgetter over all indices does the lookups in C: about twice as fast as map()
    return bytes(itemgetter(*samples)(table))


def _decode(data: bytes, lo: bytes, hi: bytes) -> bytes:
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(lo)
    out[1::2] = data.translate(hi)
    return bytes(out)


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit signed little-endian PCM -> mu-law bytes."""
    return _encode(pcm, _ULAW_ENC)


def ulaw_decode(data: bytes) -> bytes:
    """mu-law bytes -> 16-bit signed little-endian PCM."""
    return _decode(bytes(data), _ULAW_LO, _ULAW_HI)


def alaw_encode(pcm: bytes) -> bytes:
    """16-bit signed little-endian PCM -> A-law bytes."""
    return _encode(pcm, _ALAW_ENC)


def alaw_decode(data: bytes) -> bytes:
    """A-law bytes -> 16-bit signed little-endian PCM."""
    return _decode(bytes(data), _ALAW_LO, _ALAW_HI)


@dataclass(frozen=True, slots=True)
class G711Codec:
    """A codec as SDP names it (``a=rtpmap:0 PCMU/8000``)."""

    name: str
    payload_type: int
    clock_rate: int
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytes], bytes]
    silence: int          # the code of a zero sample (for comfort fill)


PCMU = G711Codec("PCMU", 0, 8000, ulaw_encode, ulaw_decode, _ULAW_ENC[0])
PCMA = G711Codec("PCMA", 8, 8000, alaw_encode, alaw_decode, _ALAW_ENC[0])
CODECS: tuple[G711Codec, ...] = (PCMU, PCMA)


def codec_by_name(name: str) -> G711Codec | None:
    for c in CODECS:
        if c.name.lower() == name.lower():
            return c
    return None


def codec_by_payload_type(pt: int) -> G711Codec | None:
    for c in CODECS:
        if c.payload_type == pt:
            return c
    return None
