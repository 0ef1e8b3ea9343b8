"""The transport address every layer passes around: ``(host, port)``."""

Address = tuple[str, int]
