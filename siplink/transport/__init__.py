"""SIP transports on Twisted (RFC 3261 §18): the UDP/TCP/TLS driver around a TransactionLayer."""
