"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), and other absolute URIs kept opaque.

:class:`SipUri` holds the user, password, parameters and headers *unescaped* (``%41`` is
stored as ``A``; an escaped ``%00`` stays a NUL character, never a truncation), so that
comparison follows RFC 3261 §19.1.4; :meth:`SipUri.__str__` escapes them again.  A URI whose
scheme is neither sip, sips nor tel (``http:``, ``isbn:``, ``nobodyKnowsThisScheme:``) parses
too, with the part after the colon in :attr:`SipUri.opaque`, so that a UAS can answer 416.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, unquote

from siplink.sip.errors import SipParseError

__all__ = [
    "QUICK_SIP_URI_BASE",
    "QUICK_SIP_URI_PATTERN",
    "QUICK_URI_PARAMS",
    "SIP_URI_PATTERN",
    "SipParseError",
    "SipUri",
    "check_uri",
]

_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"


def _run(chars: str, empty: bool = False) -> str:
    """Characters of ``chars`` or %-escapes, written as an unrolled loop (fast in ``re``)."""
    body = rf"[{chars}]*(?:{_ESC}[{chars}]*)*"
    return body if empty else rf"(?=[{chars}%]){body}"


_USER = _run(_UNRESERVED + "&=+$,;?/")
_PASSWORD = _run(_UNRESERVED + "&=+$,", empty=True)
_PARAMCHARS = _run(_UNRESERVED + r"\[\]/:&+$")
_HNV_CHARS = _UNRESERVED + r"\[\]/?:+$"
_HNAME = _run(_HNV_CHARS)
_HVALUE = _run(_HNV_CHARS, empty=True)
_HOSTPART = (
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9\-.]*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>(?:;{_PARAMCHARS}(?:={_PARAMCHARS})?)*)"
    rf"(?:\?(?P<headers>{_HNAME}={_HVALUE}(?:&{_HNAME}={_HVALUE})*))?"
)
PORT_PATTERN = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# a whole sip/sips URI without the IPv6 address check, for fast paths of bigger patterns
# (callers confirm with check_uri when the match has a '[')
SIP_URI_PATTERN = (
    rf"[sS][iI][pP][sS]?:(?:{_USER}(?::{_PASSWORD})?@)?"
    rf"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9\-.]*[A-Za-z0-9.]|[A-Za-z0-9])(?::{PORT_PATTERN})?"
    rf"(?:;{_PARAMCHARS}(?:={_PARAMCHARS})?)*"
    rf"(?:\?{_HNAME}={_HVALUE}(?:&{_HNAME}={_HVALUE})*)?"
)
# The everyday shape of a sip/sips URI, a strict subset of SIP_URI_PATTERN (lower-case scheme,
# user without password or %-escapes, a host name or IPv4 address, a port in range, plain
# parameters, no IPv6 reference, no headers): what it matches, the full patterns accept
# exactly so, and check_uri returns it without raising.  Quick paths try it first.  Every
# part ends where a character outside its class starts, so possessive quantifiers (a match
# that fails gives up at once instead of backtracking) accept the same strings.
QUICK_SIP_URI_BASE = (
    r"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]++@)?"
    r"[A-Za-z0-9][A-Za-z0-9\-.]*+(?<=[A-Za-z0-9.])"
    rf"(?::(?>{PORT_PATTERN})(?![0-9]))?"
)
QUICK_URI_PARAMS = r"(?:;[A-Za-z0-9\-_.!~*'()/:&+$]++(?:=[A-Za-z0-9\-_.!~*'()/:&+$]++)?)*+"
QUICK_SIP_URI_PATTERN = QUICK_SIP_URI_BASE + QUICK_URI_PARAMS
# with userinfo (the first '@' ends it: '@' is allowed nowhere else) and without
_SIP_RE = re.compile(rf"(?P<user>{_USER})(?::(?P<password>{_PASSWORD}))?@{_HOSTPART}")
_SIP_NOUSER_RE = re.compile(rf"(?P<user>)(?P<password>){_HOSTPART}")
_TEL_RE = re.compile(
    r"(?P<number>\+[0-9\-.()]*[0-9][0-9\-.()]*|[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*)"
    rf"(?P<params>(?:;{_PARAMCHARS}(?:={_PARAMCHARS})?)*)"
)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_RE = re.compile(r"[\x21-\x7e]+")
_OPAQUE_BAD = frozenset('<>"')

# Characters that may appear unescaped in each part when serializing (RFC 3261 §25.1).
_SAFE_USER = "-_.!~*'()&=+$,;?/"
_SAFE_PASSWORD = "-_.!~*'()&=+$,"
_SAFE_PARAM = "-_.!~*'()[]/:&+$"
_SAFE_HNV = "-_.!~*'()[]/?:+$"

# RFC 3261 §19.1.4: these URI parameters, if present in one URI, must match in the other.
_MUST_MATCH = ("transport", "user", "ttl", "method", "maddr")


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return unquote(text, encoding="utf-8", errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, encoding="utf-8", errors="surrogateescape")


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    if not text:
        return params
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        params[_unescape(name).lower()] = _unescape(value) if eq else None
    return params


def check_uri(text: str) -> re.Match[str] | None:
    """Validate ``text`` as :meth:`SipUri.parse` would, without building the object; returns
    the sip/sips match (``None`` for other schemes).  Raises :class:`SipParseError`."""
    scheme, colon, rest = text.partition(":")
    low = scheme.lower()
    if colon and (low == "sip" or low == "sips"):
        m = (_SIP_RE if "@" in rest else _SIP_NOUSER_RE).fullmatch(rest)
        if m is not None:
            host = m.group("host")
            port = m.group("port")
            if host[0] != "[" and host[-1] != "-" and (port is None or int(port) <= 65535):
                return m
        SipUri.parse(text)   # raises the precise error, or passes the IPv6/port checks
        return m
    SipUri.parse(text)
    return None


class SipUri:
    """A parsed URI: ``sip:user:password@host:port;params?headers``, ``tel:+1...``, or opaque."""

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers", "opaque")

    def __init__(
        self,
        scheme: str = "sip",
        user: str | None = None,
        password: str | None = None,
        host: str = "",
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
        opaque: str | None = None,
    ) -> None:
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params: dict[str, str | None] = {} if params is None else params
        self.headers: dict[str, str] = {} if headers is None else headers
        self.opaque = opaque

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a URI (no surrounding ``<>`` or whitespace); raises :class:`SipParseError`."""
        scheme, colon, rest = text.partition(":")
        if not colon or not _SCHEME_RE.fullmatch(scheme):
            raise SipParseError(f"malformed URI {text[:80]!r}")
        low = scheme.lower()
        if low == "sip" or low == "sips":
            m = (_SIP_RE if "@" in rest else _SIP_NOUSER_RE).fullmatch(rest)
            if m is None:
                raise SipParseError(f"malformed SIP URI {text[:80]!r}")
            user, password, host, port, params, headers = m.groups()
            if not user:
                user = password = None
            if host[0] != "[" and host[-1] == "-":
                raise SipParseError(f"bad host in URI {text[:80]!r}")
            if host[0] == "[":
                try:
                    ipaddress.IPv6Address(host[1:-1])
                except ValueError:
                    raise SipParseError(f"bad IPv6 reference in URI {text[:80]!r}") from None
            port_num: int | None = None
            if port is not None:
                port_num = int(port)
                if port_num > 65535:
                    raise SipParseError(f"port out of range in URI {text[:80]!r}")
            hdrs: dict[str, str] = {}
            if headers:
                for item in headers.split("&"):
                    hn, _, hv = item.partition("=")
                    hdrs[_unescape(hn)] = _unescape(hv)
            return cls(
                low,
                None if user is None else _unescape(user),
                None if password is None else _unescape(password),
                host,
                port_num,
                _parse_params(params),
                hdrs,
            )
        if low == "tel":
            m = _TEL_RE.fullmatch(rest)
            if m is None:
                raise SipParseError(f"malformed tel URI {text[:80]!r}")
            return cls("tel", m.group("number"), params=_parse_params(m.group("params")))
        if not _OPAQUE_RE.fullmatch(rest) or not _OPAQUE_BAD.isdisjoint(rest):
            raise SipParseError(f"malformed URI {text[:80]!r}")
        return cls(low, opaque=rest)

    @property
    def is_sip(self) -> bool:
        """True for sip: and sips: URIs."""
        return self.scheme == "sip" or self.scheme == "sips"

    @property
    def host_port(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(_escape(self.user, _SAFE_USER))
                if self.password is not None:
                    parts += (":", _escape(self.password, _SAFE_PASSWORD))
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts += (":", str(self.port))
        for name, value in self.params.items():
            parts += (";", _escape(name, _SAFE_PARAM))
            if value is not None:
                parts += ("=", _escape(value, _SAFE_PARAM))
        if self.headers:
            parts.append("?")
            parts.append("&".join(
                f"{_escape(k, _SAFE_HNV)}={_escape(v, _SAFE_HNV)}" for k, v in self.headers.items()
            ))
        return "".join(parts)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        # RFC 3261 §19.1.4
        if not isinstance(other, SipUri):
            return NotImplemented
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.user != other.user or self.password != other.password:
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        a = self.params
        b = other.params
        for name in _MUST_MATCH:
            if (name in a) != (name in b):
                return False
        for name, value in a.items():
            if name in b:
                other_value = b[name]
                if (value is None) != (other_value is None):
                    return False
                if value is not None and other_value is not None and value.lower() != other_value.lower():
                    return False
        ha = {k.lower(): v for k, v in self.headers.items()}
        hb = {k.lower(): v for k, v in other.headers.items()}
        return ha == hb

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.password, self.host.lower(), self.port, self.opaque))

    def copy(self) -> SipUri:
        return SipUri(self.scheme, self.user, self.password, self.host, self.port,
                      dict(self.params), dict(self.headers), self.opaque)
