"""Media: RTP/RTCP, G.711, RFC 4733 DTMF and tones in the sans-I/O MediaStream, its Twisted
driver, and IceMediaSession (SDP offer/answer + ICE + media for one call).
"""
