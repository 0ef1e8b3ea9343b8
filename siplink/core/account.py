"""A SIP account: the identity we call from, and where (if anywhere) we register.

One type serves the configuration file (``[[accounts]]`` tables in TOML, see
:mod:`siplink.ua.config`) and the user agent (:class:`siplink.ua.useragent.UserAgent`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from siplink.sip.digest import DigestClient


@dataclass
class Account:
    user: str = "siplink"
    domain: str = "127.0.0.1"
    password: str | None = None        # never logged or shown in repr
    auth_user: str | None = None       # digest username, when it differs from user
    display_name: str | None = None
    proxy: str | None = None           # "host:port" or a SIP URI: outbound proxy / registrar
    registrar: str | None = None       # Request-URI of REGISTER (default sip:domain)
    expires: int = 3600
    name: str = "default"              # how commands refer to it (--account NAME)
    transport: str = ""                # udp | tcp | tls toward proxy/registrar ("": the UA's)
    # behind NATs (RFC 5626 and what registrars without it need): a keep-alive on the
    # registration's flow every keepalive_s (0: none; CRLF on UDP, CRLFCRLF ping on TCP/TLS),
    # re-register with the public address the registrar saw (Via received/rport), and the
    # RFC 5626 outbound Contact parameters (+sip.instance, reg-id) with Supported: outbound
    keepalive_s: float = 15.0
    contact_rewrite: bool = True
    outbound: bool = False
    _digest: DigestClient | None = field(default=None, repr=False, compare=False)
    # realms that challenged us -> the header that answers them (for pre-emptive credentials)
    _realms: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # An empty string in a config file means "not set".
        for name in ("password", "auth_user", "display_name", "proxy", "registrar"):
            if getattr(self, name) == "":
                setattr(self, name, None)

    def __repr__(self) -> str:
        return f"Account(name={self.name!r}, user={self.user!r}, domain={self.domain!r})"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def from_value(self) -> str:
        if self.display_name:
            return f'"{self.display_name}" <{self.aor}>'
        return f"<{self.aor}>"

    def digest(self) -> DigestClient | None:
        if self.password is None:
            return None
        if self._digest is None:
            self._digest = DigestClient(self.auth_user or self.user, self.password)
        return self._digest
