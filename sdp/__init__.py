"""SDP offer/answer (RFC 3264) with ICE attributes (RFC 8839), on top of sdp-transform.

``parse(text)`` gives a typed :class:`SessionDescription` (or raises :class:`SdpError`);
``SessionDescription.serialize()`` writes it back; :class:`OfferAnswer` applies the RFC 3264
rules per dialog. :mod:`sdp.transform` is the only module that touches sdp-transform.
"""

from sdp.errors import OfferPendingError, SdpError
from sdp.ice import RemoteCandidate
from sdp.offeranswer import (
    DEFAULT_CODECS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    IceParams,
    Negotiated,
    NegotiatedMedia,
    OfferAnswer,
    RemoteIce,
)
from sdp.session import (
    Bandwidth,
    Codec,
    Connection,
    MediaDescription,
    Origin,
    Rtcp,
    SessionDescription,
    parse,
)

__all__ = [
    "DEFAULT_CODECS",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "IceParams",
    "Negotiated",
    "NegotiatedMedia",
    "OfferAnswer",
    "RemoteIce",
    "Bandwidth",
    "Codec",
    "Connection",
    "MediaDescription",
    "OfferPendingError",
    "Origin",
    "RemoteCandidate",
    "Rtcp",
    "SdpError",
    "SessionDescription",
    "parse",
]
