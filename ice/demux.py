"""One socket, several protocols: classify a datagram by its first byte (RFC 7983, RFC 5761).

    0..3      STUN                 (and the magic cookie must be present)
    16..19    ZRTP
    20..63    DTLS
    64..79    TURN ChannelData     (RFC 8656 §12: channel numbers 0x4000..0x4FFF)
    128..191  RTP / RTCP           (RTCP when the second byte is 192..223, RFC 5761 §4)
"""

from __future__ import annotations

import enum

from ice.stun import is_stun


class PacketKind(enum.Enum):
    STUN = "stun"
    ZRTP = "zrtp"
    DTLS = "dtls"
    CHANNEL_DATA = "channel-data"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"


def classify(data: bytes) -> PacketKind:
    if not data:
        return PacketKind.UNKNOWN
    b = data[0]
    if b < 4:
        return PacketKind.STUN if is_stun(data) else PacketKind.UNKNOWN
    if 128 <= b <= 191:
        if len(data) < 2:
            return PacketKind.UNKNOWN
        # RFC 5761 §4: payload types 64-95 (with the marker bit: 192-223) are RTCP
        return PacketKind.RTCP if 192 <= data[1] <= 223 else PacketKind.RTP
    if 64 <= b <= 79:
        return PacketKind.CHANNEL_DATA if len(data) >= 4 else PacketKind.UNKNOWN
    if 20 <= b <= 63:
        return PacketKind.DTLS
    if 16 <= b <= 19:
        return PacketKind.ZRTP
    return PacketKind.UNKNOWN
