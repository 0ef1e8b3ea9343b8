"""SDP offer/answer (RFC 3264) with ICE attributes (RFC 8839), on top of sdp-transform."""
