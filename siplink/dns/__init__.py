"""RFC 3263 server location: :mod:`siplink.dns.rfc3263` (the procedure, over abstract
lookups) and :mod:`siplink.dns.resolver` (the lookups, on twisted.names)."""

from siplink.dns.rfc3263 import LocateError, ServerTarget, locate

__all__ = ["LocateError", "ServerTarget", "locate"]
