"""Twisted drivers for the sans-I/O ICE, STUN and TURN cores, and the shared timer driver."""
