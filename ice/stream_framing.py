"""Framing of STUN messages and TURN ChannelData on a byte stream (TCP or TLS), sans-I/O.

Over UDP a datagram is a message.  On a stream the receiver finds the message boundaries
itself: a STUN message is its 20-byte header plus the length the header gives (RFC 8489 §6.2.2,
always a multiple of 4), and a ChannelData message is its 4-byte header plus its length,
padded to a multiple of 4 on streams (RFC 8656 §12.5).  The two are told apart by the first
two bits (RFC 8656 §12: 0b00 STUN, 0b01 ChannelData; RFC 7983 demultiplexing).

:class:`StreamFramer` is fed bytes as they arrive and returns whole messages; :func:`frame`
makes one message ready for a stream (padding ChannelData).
"""

from __future__ import annotations

import struct

STUN_HEADER = 20
CHANNEL_HEADER = 4
MAX_MESSAGE = STUN_HEADER + 0xFFFF        # the longest STUN message a length field allows

_u16 = struct.Struct("!H")


class FramingError(ValueError):
    """The stream holds something that is neither STUN nor ChannelData; it cannot be
    resynchronised (there are no boundaries to look for), so the connection must close."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _padded(n: int) -> int:
    return (n + 3) & ~3


def frame(message: bytes) -> bytes:
    """``message`` as it goes on a stream: ChannelData padded to 4 bytes, STUN unchanged."""
    if message and 0x40 <= message[0] <= 0x7F and len(message) % 4:
        return message + b"\x00" * (-len(message) % 4)
    return message


class StreamFramer:
    """Splits a byte stream into STUN messages and ChannelData messages (padding kept).

    ``feed`` returns the messages completed by the new bytes; raises :class:`FramingError`
    on a byte that starts neither (the framer stays failed: further feeds raise again)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.failed: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held of a message not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self.failed is not None:
            raise self.failed
        self._buffer += data
        out: list[bytes] = []
        while True:
            size = self._next_size()
            if size is None or len(self._buffer) < size:
                return out
            out.append(bytes(self._buffer[:size]))
            del self._buffer[:size]

    def _next_size(self) -> int | None:
        buf = self._buffer
        if len(buf) < CHANNEL_HEADER:
            return None
        first = buf[0]
        length = _u16.unpack_from(buf, 2)[0]
        if first < 0x40:
            if length % 4:      # RFC 8489 §5: the last two bits of the length are zero
                self._fail(f"STUN message length {length} is not a multiple of 4")
            return STUN_HEADER + length
        if first < 0x80:
            return CHANNEL_HEADER + _padded(length)
        self._fail(f"neither STUN nor ChannelData on the stream (first byte 0x{first:02x})")
        return None   # not reached

    def _fail(self, reason: str) -> None:
        self.failed = FramingError(reason)
        self._buffer.clear()
        raise self.failed


__all__ = ["FramingError", "MAX_MESSAGE", "StreamFramer", "frame"]
