"""ICE (RFC 8445): STUN codec, TURN client and the ICE agent, as sans-I/O cores."""
