"""Simulation: ICE agents behind simulated RFC 4787 NATs in virtual time (tests, benchmarks)."""
