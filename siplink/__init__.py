"""siplink: a SIP user agent with ICE-negotiated media, built on sans-I/O cores and Twisted."""

__version__ = "0.1.0"
