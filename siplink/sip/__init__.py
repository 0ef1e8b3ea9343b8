"""SIP codec: messages, headers, URIs, their typed parse errors, and RFC 7616/8760 digest."""
