"""Structured SIP header field values (RFC 3261 §20, §25.1): Via, name-addr, CSeq, auth params.

Every ``parse`` takes one header value (already unfolded; for list headers one element of the
comma-separated list) and raises :class:`SipParseError` on malformed input.  ``__str__`` gives
back a value equivalent to the one parsed (whitespace normalised).  Parameter names are
lower-cased (they compare case-insensitively); values are kept as written, quoted values with
their quotes, so that they re-serialize unchanged.
"""

from __future__ import annotations

import re
from typing import Self

from siplink.sip.errors import SipParseError
from siplink.sip.uri import PORT_PATTERN, QUICK_SIP_URI_PATTERN, SIP_URI_PATTERN, SipUri, check_uri

__all__ = [
    "AuthenticateHeader",
    "AuthorizationHeader",
    "CSeq",
    "NameAddr",
    "SipParseError",
    "Via",
    "format_params",
    "parse_auth_params",
    "parse_params",
    "quote_string",
    "split_list",
    "unquote_string",
]

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN)
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_LWS = r"[ \t]*"
# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string
# an IPv6 address as a parameter value, bracketed (a host) or not: RFC 3261's via-received
# is IPv6address without brackets, and RFC 5118 §4.5 asks to accept both forms
_V6_VALUE = r"\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*"
_PARAM_RE = re.compile(
    rf"{_LWS};{_LWS}({_TOKEN})(?:{_LWS}={_LWS}({_TOKEN}(?![:\[])|{_V6_VALUE}|{_QUOTED}))?{_LWS}"
)
# parameters with no LWS and no quoted values: validated in one match, then split
_SIMPLE_PARAMS_RE = re.compile(rf"(?:;{_TOKEN}(?:=(?:{_TOKEN}(?![:\[])|{_V6_VALUE}))?)+")
_DISPLAY_TOKENS_RE = re.compile(rf"{_TOKEN}(?:[ \t]+{_TOKEN})*")
# the common name-addr shapes in one match: ["display" | tokens] <uri> (params follow)
_NAME_ADDR_RE = re.compile(
    rf"(?:({_QUOTED})[ \t]*|({_TOKEN}(?:[ \t]+{_TOKEN})*)[ \t]*)?<([^<>\s]+)>"
)
_VIA_RE = re.compile(
    rf"({_TOKEN}){_LWS}/{_LWS}({_TOKEN}){_LWS}/{_LWS}({_TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?)"
    rf"(?:{_LWS}:{_LWS}([0-9]{{1,5}}))?{_LWS}"
)
# fast paths: the usual shapes, validated in one match (anything else takes the general path)
_SIMPLE_PARAMS = rf"(?:;{_TOKEN}(?:=(?:{_TOKEN}|\[[0-9A-Fa-f:.]+\]))?)*"
_VIA_FAST_RE = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) "
    r"((?:[0-9]{1,3}\.){3}[0-9]{1,3}|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?)"
    rf"(?::({PORT_PATTERN}))?({_SIMPLE_PARAMS})"
)
_NAME_ADDR_FAST_RE = re.compile(
    rf'(?:"([^"\\\r\n]*)"[ \t]*|({_TOKEN}(?:[ \t]+{_TOKEN})*)[ \t]*)?<({SIP_URI_PATTERN})>({_SIMPLE_PARAMS})'
)
# quick paths: the everyday shapes, each a strict subset of the fast pattern above it, with
# the parameters captured by name where that saves splitting them.  What they match, the fast
# patterns match with the same values, so the result is the same object.  Each part ends where
# a character outside its class starts: possessive quantifiers accept the same strings and
# make a shape that does not fit fail at once.
_QTOKEN = r"[A-Za-z0-9\-.!%*_+`'~]++"
_QHOST = r"[A-Za-z0-9][A-Za-z0-9\-.]*+(?<=[A-Za-z0-9.])"
_VIA_QUICK_RE = re.compile(
    rf"SIP/2\.0/(UDP|TCP|TLS|SCTP|WS|WSS) ({_QHOST})(?::((?>{PORT_PATTERN}))(?![0-9]))?"
    rf";branch=({_QTOKEN})(?:(;rport)|;rport=((?>{PORT_PATTERN}))(?![0-9]);received=({_QTOKEN}))?"
)
_NAME_ADDR_QUICK_RE = re.compile(
    rf'(?:"([^"\\\r\n]*+)" ?|({_QTOKEN}) )?<({QUICK_SIP_URI_PATTERN})>'
    rf"(?:;tag=({_QTOKEN})|((?:;{_QTOKEN}(?:={_QTOKEN})?)++))?"
)
_CSEQ_RE = re.compile(rf"([0-9]+)[ \t]+({_TOKEN})")
_AUTH_PARAM_RE = re.compile(rf"{_LWS}({_TOKEN}){_LWS}={_LWS}({_TOKEN}|{_QUOTED}){_LWS}(?:,|$)")
_MAX_PARAMS = 64
_COMMON_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})


def unquote_string(text: str) -> str:
    """The content of a quoted-string (``"a \\"b\\""`` -> ``a "b"``); other text unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" in inner:
            return re.sub(r"\\(.)", r"\1", inner, flags=re.S)
        return inner
    return text


def quote_string(text: str) -> str:
    """A quoted-string for ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str, pos: int = 0) -> dict[str, str | None]:
    """``;name=value;flag`` (with LWS around ``;`` and ``=``) from ``text[pos:]`` to its end."""
    params: dict[str, str | None] = {}
    end = len(text)
    if _SIMPLE_PARAMS_RE.fullmatch(text, pos) is not None:
        items = text[pos + 1:].split(";")
        if len(items) > _MAX_PARAMS:
            raise SipParseError("too many parameters")
        for item in items:
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
        return params
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise SipParseError(f"malformed parameter in {text[:80]!r}")
        params[m.group(1).lower()] = m.group(2)
        pos = m.end()
        if len(params) > _MAX_PARAMS:
            raise SipParseError("too many parameters")
    return params


def _valid_port(text: str | None) -> bool:
    return text is not None and text.isdigit() and text.isascii() and int(text) <= 65535


def _split_simple_params(text: str) -> dict[str, str | None]:
    """Params already validated by a ``_SIMPLE_PARAMS`` match (``;a=b;c``)."""
    if text.count(";") == 1:   # the usual ;tag=... or ;expires=...
        name, eq, value = text[1:].partition("=")
        return {name.lower(): value if eq else None}
    params: dict[str, str | None] = {}
    items = text[1:].split(";")
    if len(items) > _MAX_PARAMS:
        raise SipParseError("too many parameters")
    for item in items:
        name, eq, value = item.partition("=")
        params[name.lower()] = value if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, not inside quoted strings or ``<...>``."""
    if "," not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    out: list[str] = []
    start = 0
    in_quote = in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif in_angle:
            if c == ">":
                in_angle = False
        elif c == "<":
            in_angle = True
        elif c == ",":
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


class Via:
    """One via-parm: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    __slots__ = ("protocol", "transport", "host", "port", "params", "_text")

    def __init__(self, transport: str, host: str, port: int | None = None,
                 params: dict[str, str | None] | None = None, protocol: str = "SIP/2.0") -> None:
        self.protocol = protocol
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self.params: dict[str, str | None] = {} if params is None else params
        self._text: str | None = None

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_QUICK_RE.fullmatch(text)
        if m is not None:
            transport, host, port, branch, bare_rport, rport, received = m.groups()
            via = cls.__new__(cls)
            via.protocol = "SIP/2.0"
            via.transport = transport
            via.host = host
            via.port = None if port is None else int(port)
            if rport is not None:
                via.params = {"branch": branch, "rport": rport, "received": received}
            elif bare_rport is None:
                via.params = {"branch": branch}
            else:
                via.params = {"branch": branch, "rport": None}
            via._text = text
            return via
        m = _VIA_FAST_RE.fullmatch(text)
        if m is not None:
            transport, host, port, params = m.groups()
            pd = _split_simple_params(params) if params else {}
            if "ttl" not in pd and (pd.get("rport") is None or _valid_port(pd["rport"])):
                via = cls.__new__(cls)
                via.protocol = "SIP/2.0"
                via.transport = transport.upper()
                via.host = host
                via.port = None if port is None else int(port)
                via.params = pd
                via._text = text
                return via
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> Via:
        m = _VIA_RE.match(text)
        if m is None:
            raise SipParseError(f"malformed Via {text[:80]!r}")
        name, version, transport, host, port = m.groups()
        if name.upper() != "SIP" or version != "2.0":
            raise SipParseError(f"unsupported protocol in Via {text[:80]!r}")
        port_num = None
        if port is not None:
            port_num = int(port)
            if port_num > 65535:
                raise SipParseError("Via port out of range")
        via = cls(transport, host, port_num, parse_params(text, m.end()) if m.end() < len(text) else {})
        ttl = via.params.get("ttl")
        if ttl is not None and (not ttl.isdigit() or int(ttl) > 255):
            raise SipParseError("bad Via ttl")
        rport = via.params.get("rport")
        if rport is not None and (not rport.isdigit() or int(rport) > 65535):
            raise SipParseError("bad Via rport")
        via._text = text
        return via

    def _set(self, name: str, value: str | None) -> None:
        self.params[name] = value
        self._text = None

    @property
    def modified(self) -> bool:
        """True once a parameter was changed through a setter (``received``, ``rport``...)."""
        return self._text is None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @branch.setter
    def branch(self, value: str) -> None:
        self._set("branch", value)

    @property
    def received(self) -> str | None:
        value = self.params.get("received")   # an IPv6 address with or without brackets
        return value.strip("[]") if value else value

    @received.setter
    def received(self, value: str) -> None:
        self._set("received", value)

    @property
    def rport(self) -> int | None:
        """The rport value when the parameter has one; ``None`` for a bare ``;rport`` or none."""
        v = self.params.get("rport")
        return int(v) if v else None

    @rport.setter
    def rport(self, value: int | None) -> None:
        self._set("rport", None if value is None else str(value))

    @property
    def wants_rport(self) -> bool:
        """RFC 3581: the client asked for the source port (a bare ``;rport``)."""
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        v = self.params.get("ttl")
        return None if v is None else int(v)

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hostport}{format_params(self.params)}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.transport, self.host.lower(), self.port, self.params) == (
            other.transport, other.host.lower(), other.port, other.params)

    __hash__ = None  # type: ignore[assignment]


class NameAddr:
    """``"Display" <uri>;params`` or ``uri;params`` (From, To, Contact, Route, Record-Route...).

    In the addr-spec form (no ``<>``) a ``;`` ends the URI: what follows are header
    parameters (RFC 3261 §20.10), and a URI with ``?`` or ``,`` must have been enclosed.
    The URI is validated when the value is parsed and built into a :class:`SipUri` on first
    access of :attr:`uri`.
    """

    __slots__ = ("display_name", "_uri", "_uri_text", "params", "bracketed")

    def __init__(self, uri: SipUri | str, display_name: str | None = None,
                 params: dict[str, str | None] | None = None, bracketed: bool = True) -> None:
        if isinstance(uri, SipUri):
            self._uri: SipUri | None = uri
            self._uri_text = ""
        else:
            self._uri = None
            self._uri_text = uri
        self.display_name = display_name
        self.params: dict[str, str | None] = {} if params is None else params
        self.bracketed = bracketed

    @property
    def uri(self) -> SipUri:
        u = self._uri
        if u is None:
            u = self._uri = SipUri.parse(self._uri_text)
        return u

    @uri.setter
    def uri(self, value: SipUri) -> None:
        self._uri = value

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        m = _NAME_ADDR_QUICK_RE.fullmatch(text)
        if m is not None:
            display, tokens, uri_text, tag, params = m.groups()
            na = cls.__new__(cls)
            na._uri = None
            na._uri_text = uri_text
            na.display_name = tokens if display is None else display
            if tag is not None:
                na.params = {"tag": tag}
            else:
                na.params = {} if params is None else _split_simple_params(params)
            na.bracketed = True
            return na
        m = _NAME_ADDR_FAST_RE.fullmatch(text)
        if m is not None:
            display, tokens, uri_text, params = m.groups()
            if "[" not in uri_text:
                na = cls.__new__(cls)
                na._uri = None
                na._uri_text = uri_text
                na.display_name = tokens if display is None else display
                na.params = _split_simple_params(params) if params else {}
                na.bracketed = True
                return na
        m = _NAME_ADDR_RE.match(text)
        if m is not None:
            quoted, tokens, uri_text = m.groups()
            check_uri(uri_text)
            end = m.end()
            params = parse_params(text, end) if end < len(text) else {}
            display = tokens if quoted is None else unquote_string(quoted)
            return cls(uri_text, display, params, True)
        return cls._parse_slow(text)

    @classmethod
    def _parse_slow(cls, text: str) -> NameAddr:
        text = text.strip(" \t")
        if not text:
            raise SipParseError("empty address")
        display: str | None = None
        first = text[0]
        if first == '"':
            m = re.match(_QUOTED, text)
            if m is None:
                raise SipParseError("unterminated quoted string in display name")
            display = unquote_string(m.group(0))
            lt = m.end()
            while lt < len(text) and text[lt] in " \t":
                lt += 1
            if lt >= len(text) or text[lt] != "<":
                raise SipParseError("display name without <URI>")
        elif first == "<":
            lt = 0
        else:
            lt = text.find("<")
            if lt > 0:
                dn = text[:lt].rstrip(" \t")
                if not _DISPLAY_TOKENS_RE.fullmatch(dn):
                    raise SipParseError("invalid display name (not a token list or quoted string)")
                display = dn
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError("missing > after URI")
            uri_text = text[lt + 1:gt]
            if not uri_text or uri_text[0] in " \t" or uri_text[-1] in " \t":
                raise SipParseError("whitespace inside <> around the URI")
            check_uri(uri_text)
            params = parse_params(text, gt + 1) if gt + 1 < len(text) else {}
            return cls(uri_text, display, params, True)
        # addr-spec form
        semi = text.find(";")
        uri_text = text if semi < 0 else text[:semi].rstrip(" \t")
        if "?" in uri_text or "," in uri_text:
            raise SipParseError("URI with ? or , must be enclosed in <>")
        if " " in uri_text or "\t" in uri_text:
            raise SipParseError("whitespace in addr-spec")
        check_uri(uri_text)
        params = parse_params(text, semi) if semi >= 0 else {}
        return cls(uri_text, None, params, False)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is None:
            self.params.pop("tag", None)
        else:
            self.params["tag"] = value

    def __str__(self) -> str:
        uri = self._uri_text if self._uri is None else str(self._uri)
        if self.display_name is not None:
            dn = self.display_name
            if not _DISPLAY_TOKENS_RE.fullmatch(dn):
                dn = quote_string(dn)
            head = f"{dn} <{uri}>"
        elif self.bracketed or ";" in uri or "?" in uri or "," in uri:
            head = f"<{uri}>"
        else:
            head = uri
        return head + format_params(self.params)

    def __repr__(self) -> str:
        return f"NameAddr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return self.uri == other.uri and self.params == other.params

    __hash__ = None  # type: ignore[assignment]


class CSeq:
    """``CSeq: number method`` (RFC 3261 §20.16; number below 2**31... up to 2**32-1)."""

    __slots__ = ("number", "method")

    def __init__(self, number: int, method: str) -> None:
        self.number = number
        self.method = method

    @classmethod
    def parse(cls, text: str) -> CSeq:
        number, _, method = text.partition(" ")
        if (number.isdigit() and len(number) < 10 and number.isascii()
                and method in _COMMON_METHODS):
            cseq = cls.__new__(cls)
            cseq.number = int(number)
            cseq.method = method
            return cseq
        m = _CSEQ_RE.fullmatch(text)
        if m is None:
            raise SipParseError("malformed CSeq")
        digits = m.group(1).lstrip("0") or "0"
        if len(digits) > 10 or int(digits) > 0xFFFFFFFF:
            raise SipParseError("CSeq number too large")
        return cls(int(digits), m.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"

    def __repr__(self) -> str:
        return f"CSeq({self.number}, {self.method!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CSeq):
            return NotImplemented
        return self.number == other.number and self.method == other.method

    def __hash__(self) -> int:
        return hash((self.number, self.method))


def parse_auth_params(text: str) -> dict[str, str]:
    """``name=value, name="quoted"`` -> ordered dict, names lower-cased, quotes removed."""
    params: dict[str, str] = {}
    pos = 0
    end = len(text)
    while pos < end:
        m = _AUTH_PARAM_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise SipParseError("malformed auth parameter")
        params[m.group(1).lower()] = unquote_string(m.group(2))
        pos = m.end()
        if len(params) > _MAX_PARAMS:
            raise SipParseError("too many auth parameters")
    return params


class AuthenticateHeader:
    """A WWW-Authenticate / Proxy-Authenticate value, any scheme: scheme and ordered auth params.

    The codec's view (RFC 7235 §2.1 grammar); :class:`siplink.sip.digest.Challenge` is what a
    Digest challenge means (:func:`siplink.sip.digest.parse_challenge`)."""

    __slots__ = ("scheme", "params")
    _UNQUOTED: frozenset[str] = frozenset({"algorithm", "stale"})

    def __init__(self, scheme: str, params: dict[str, str] | None = None) -> None:
        self.scheme = scheme
        self.params: dict[str, str] = {} if params is None else params

    @classmethod
    def parse(cls, text: str) -> Self:
        text = text.strip(" \t")
        m = _TOKEN_RE.match(text)
        if m is None:
            raise SipParseError("missing auth scheme")
        rest = text[m.end():]
        if rest and rest[0] not in " \t":
            raise SipParseError("malformed auth scheme")
        rest = rest.strip(" \t")
        # a scheme with a bare token68 (RFC 7235), e.g. opaque data without '='
        if rest and "=" not in rest:
            return cls(m.group(0), {"": rest})
        return cls(m.group(0), parse_auth_params(rest))

    # Names for the parameters every Digest user reads.
    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name.lower(), default)

    def __str__(self) -> str:
        unquoted = self._UNQUOTED
        parts = []
        for k, v in self.params.items():
            if k == "":
                parts.append(v)
            elif k in unquoted and _TOKEN_RE.fullmatch(v):
                parts.append(f"{k}={v}")
            else:
                parts.append(f"{k}={quote_string(v)}")
        return f"{self.scheme} {', '.join(parts)}" if parts else self.scheme

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthenticateHeader):
            return NotImplemented
        return self.scheme.lower() == other.scheme.lower() and self.params == other.params

    __hash__ = None  # type: ignore[assignment]


class AuthorizationHeader(AuthenticateHeader):
    """An Authorization / Proxy-Authorization value, any scheme (same shape as a challenge).

    Digest credentials are interpreted by :func:`siplink.sip.digest.parse_credentials`."""

    __slots__ = ()
    # RFC 3261 §25.1: in credentials qop and nc are unquoted, algorithm is a token
    _UNQUOTED = frozenset({"algorithm", "nc", "qop"})
