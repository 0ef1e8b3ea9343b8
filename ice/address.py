"""The transport address every layer passes around: ``(host, port)``, and how it is written
in URIs, Via sent-by and logs (RFC 3986 §3.2.2 / RFC 3261 §25.1: an IPv6 reference in
brackets)."""

Address = tuple[str, int]


def format_host(host: str) -> str:
    """``host`` as it appears in a URI or a Via: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def format_address(host: str, port: int | None = None) -> str:
    """``host:port`` (or ``host``) with an IPv6 host in brackets."""
    return format_host(host) if port is None else f"{format_host(host)}:{port}"
