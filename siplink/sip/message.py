"""SIP messages (RFC 3261 §7): parse from a datagram or a stream, inspect, modify, serialize.

Sans-I/O: :func:`parse_message` takes the bytes of one datagram, :class:`StreamParser` frames a
TCP/TLS byte stream by Content-Length.  Both raise (or record) only :class:`SipParseError`,
whose ``reason`` fits a 400 reason phrase and whose ``status`` says which response a UAS
should give (400, 505 for another SIP version, 513/413 for too large).

Parsing splits the header section at bytes level and validates what every message must get
right (start line, Content-Length, the single-valued headers, Via, From, To, Call-ID, CSeq,
Contact, Max-Forwards, Expires, Date); the structured values so built are cached on the
:class:`Headers` object, so ``msg.via``, ``msg.cseq``, ``msg.from_.tag`` cost nothing more.
Changing a header with ``headers.set``/``add``/``remove`` drops that cache.  Headers that
nothing validates (``Route``, ``WWW-Authenticate``...) are parsed on first access.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ice.address import Address
from ice.trace import Direction, TraceRecord
from siplink.sip.errors import SipParseError
from siplink.sip.headers import (
    _MAX_PARAMS,
    _NAME_ADDR_QUICK_RE,
    AuthenticateHeader,
    AuthorizationHeader,
    CSeq,
    NameAddr,
    Via,
    split_list,
)
from siplink.sip.uri import QUICK_SIP_URI_BASE, QUICK_URI_PARAMS, SipUri, check_uri

__all__ = [
    "COMPACT_FORMS",
    "Headers",
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "Message",
    "Request",
    "Response",
    "SipParseError",
    "StreamParser",
    "error_response",
    "make_ack",
    "make_request",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "reason_phrase",
    "trace_record",
]

# Bounds: a datagram or stream message larger than these is refused (never buffered).
MAX_HEADER_BYTES = 65_536     # the start line and header section
MAX_LINE = 16_384             # one (unfolded) header line
MAX_HEADERS = 256             # header fields per message
MAX_BODY = 1_048_576          # body octets

MAGIC_COOKIE = "z9hG4bK"

# RFC 3261 §7.3.3 and later RFCs: compact form -> full name (lower case).
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by",
    "x": "session-expires", "y": "identity", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition",
}

# Canonical spelling of well-known names, for items() and for headers we add.
_CANONICAL: dict[str, str] = {
    n.lower(): n for n in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info",
        "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
        "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires",
        "From", "Identity", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires",
        "Organization", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
        "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
        "Reject-Contact", "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route",
        "RSeq", "Server", "Session-Expires", "Subject", "Subscription-State", "Supported",
        "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
    )
}

# Headers whose value is never a comma-separated list (single-valued, free text, or a
# challenge/credentials whose params are comma-separated).
_NO_SPLIT = frozenset({
    "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
    "authentication-info", "call-id", "cseq", "content-length", "content-type", "date",
    "expires", "from", "to", "max-forwards", "min-expires", "subject", "server", "user-agent",
    "organization", "priority", "retry-after", "timestamp", "mime-version", "reply-to",
    "content-disposition", "identity", "refer-to", "referred-by", "event",
    "subscription-state", "rack", "rseq", "session-expires", "reason",
})

# RFC 3261 §7.3.1 / §20: at most one of each in a message.
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-type", "expires")

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})
# A Request-Line of the everyday shape (a subset of what _start accepts): method, the
# Request-URI (group 3: its parameters, if any), SIP/2.0.
_REQUEST_LINE_QUICK_RE = re.compile(
    rf"([A-Za-z0-9\-.!%*_+`'~]++) ({QUICK_SIP_URI_BASE}({QUICK_URI_PARAMS})) SIP/2\.0"
)
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")
_CALLID_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]+")
_MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*/[ \t]*[A-Za-z0-9\-.!%*_+`'~]+"
    r"(?:[ \t]*;[ \t]*[A-Za-z0-9\-.!%*_+`'~]+[ \t]*=[ \t]*(?:[A-Za-z0-9\-.!%*_+`'~]+|\"(?:[^\"\\]|\\.)*\"))*"
)
# RFC 3261 §20.17: rfc1123-date, always GMT.
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 412: "Conditional Request Failed",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    """The RFC's reason phrase for ``status`` (a generic one for unknown codes)."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return {1: "Progress", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}.get(
        status // 100, "Global Failure")


# Raw header name -> lower-case full name.  Filled as names are seen, bounded so that a peer
# sending random names cannot grow it forever.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 4096


def _key(name: str) -> str:
    key = _NAME_CACHE.get(name)
    if key is not None:
        return key
    if not _TOKEN_RE.fullmatch(name):
        raise SipParseError(f"invalid header name {name[:40]!r}")
    low = name.lower()
    key = COMPACT_FORMS.get(low, low)
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[name] = key
    return key


def _prime_name_cache() -> None:
    """Put the usual spellings of the well-known names (and the compact forms) in the name
    cache up front, so that the first messages take the header split's fast path too."""
    for key, canonical in _CANONICAL.items():
        for name in (canonical, key, key.upper(), "-".join(p.capitalize() for p in key.split("-"))):
            _key(name)
    for compact in COMPACT_FORMS:
        _key(compact)
        _key(compact.upper())


def _display(key: str) -> str:
    return _CANONICAL.get(key) or "-".join(p.capitalize() for p in key.split("-"))


_prime_name_cache()


class Headers:
    """An ordered multi-dict of header fields: case-insensitive, compact forms mapped to full
    names, repeated fields kept in wire order.  ``items()`` gives canonical names; the names as
    written (compact or not) are kept for serialization."""

    __slots__ = ("_items_", "_lines", "_n", "_first", "_cache")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        # (key, name as written, value); None while only the parsed lines exist
        self._items_: list[tuple[str, str, str]] | None = []
        self._lines: list[str] | None = None   # a parsed header section, start line first
        self._n = 0                            # number of header fields
        # key -> first value; rebuilt lazily after a change
        self._first: dict[str, str] | None = None
        # structured values (Via list, CSeq...) built from the current fields
        self._cache: dict[str, Any] = {}
        if items is not None:
            for name, value in items:
                self.add(name, value)

    def compact(self) -> None:
        """Drop what is rebuilt on demand (the structured values and the first-value
        index): a message kept for a whole call costs a few KiB less."""
        self._cache = {}
        if self._items_ is not None:
            self._first = None

    @classmethod
    def _from_parsed(cls, lines: list[str], first: dict[str, str]) -> Headers:
        h = cls.__new__(cls)
        h._items_ = None
        h._lines = lines
        h._n = len(lines) - 1
        h._first = first
        h._cache = {}
        return h

    @property
    def _items(self) -> list[tuple[str, str, str]]:
        items = self._items_
        if items is None:
            # built on first need from the lines parse_message already validated
            items = []
            cache = _NAME_CACHE
            lines = self._lines or [""]
            for line in lines[1:]:
                name, _, value = line.partition(":")
                key = cache.get(name) or _key(name.rstrip(" \t"))
                items.append((key, name, value.strip(" \t")))
            self._items_ = items
            self._lines = None
        return items

    @_items.setter
    def _items(self, value: list[tuple[str, str, str]]) -> None:
        self._items_ = value
        self._lines = None
        self._n = len(value)

    def _firsts(self) -> dict[str, str]:
        first = self._first
        if first is None:
            first = self._first = {k: v for k, _, v in reversed(self._items)}
        return first

    def _all(self, key: str) -> list[str]:
        """Every line of ``key`` (a lower-case full name), in order."""
        first = self._firsts()
        if len(first) == self._n:   # no header repeats
            v = first.get(key)
            return [] if v is None else [v]
        return [v for k, _, v in self._items if k == key]

    def _changed(self) -> None:
        self._n = len(self._items)
        self._first = None
        if self._cache:
            self._cache = {}

    @staticmethod
    def key(name: str) -> str:
        """The lower-case full name for ``name`` (``"i"`` -> ``"call-id"``)."""
        low = name.strip().lower()
        return COMPACT_FORMS.get(low, low)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (as a whole line, not split), or ``default``."""
        v = self._firsts().get(_NAME_CACHE.get(name) or self.key(name))
        return default if v is None else v

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; comma-separated lists split into elements."""
        key = _NAME_CACHE.get(name) or self.key(name)
        lst = self._all(key)
        if not lst:
            return []
        if key in _NO_SPLIT:
            return list(lst)
        out: list[str] = []
        for value in lst:
            out += split_list(value)
        return out

    def get_lines(self, name: str) -> list[str]:
        """Every header line of ``name`` as written (lists not split)."""
        return self._all(self.key(name))

    def add(self, name: str, value: str) -> None:
        """Append a field (after any existing ones)."""
        _check_value(value)
        key = self.key(name)
        written = name if self.key(name) != name else _display(key)
        self._items.append((key, written, value))
        self._changed()

    def insert(self, name: str, value: str) -> None:
        """Put a field before the first one of the same name (e.g. a new top Via)."""
        _check_value(value)
        key = self.key(name)
        written = name if key != name else _display(key)
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items.insert(i, (key, written, value))
                break
        else:
            self._items.append((key, written, value))
        self._changed()

    def set(self, name: str, value: str | list[str]) -> None:
        """Replace every field ``name`` with ``value`` (one field, or one per list element),
        at the position of the first one (appended when absent)."""
        values = [value] if isinstance(value, str) else list(value)
        for v in values:
            _check_value(v)
        key = self.key(name)
        written = name if key != name else _display(key)
        new: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[0] == key:
                if not placed:
                    new += [(key, written, v) for v in values]
                    placed = True
            else:
                new.append(item)
        if not placed:
            new += [(key, written, v) for v in values]
        self._items = new
        self._changed()

    def remove(self, name: str) -> None:
        """Remove every field ``name`` (no error when absent)."""
        key = self.key(name)
        self._items = [item for item in self._items if item[0] != key]
        self._changed()

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first field ``name`` (e.g. the top Via at a proxy)."""
        key = self.key(name)
        for i, item in enumerate(self._items):
            if item[0] == key:
                del self._items[i]
                self._changed()
                return item[2]
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) in self._firsts()

    def items(self) -> list[tuple[str, str]]:
        """(name, value) in wire order: well-known names (and compact forms) in their canonical
        spelling, other names as written."""
        canon = _CANONICAL
        return [(canon.get(k) or w, v) for k, w, v in self._items]

    def raw_items(self) -> list[tuple[str, str]]:
        """(name as written, value) in wire order."""
        return [(w, v) for _, w, v in self._items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        return self._n

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


def _check_value(value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError("header value must not contain CR or LF")


class _Message:
    """What requests and responses share: headers, body, version and the typed accessors."""

    __slots__ = ("headers", "body", "version")

    headers: Headers
    body: bytes
    version: str

    # --- structured accessors (cached on self.headers._cache) -------------------------------
    def _one(self, key: str) -> str:
        v = self.headers._firsts().get(key)
        if v is None:
            raise SipParseError(f"missing {_display(key)} header")
        return v

    @property
    def via(self) -> list[Via]:
        c = self.headers._cache
        v = c.get("via")
        if v is None:
            v = c["via"] = [Via.parse(x) for x in self.headers.get_all("via")]
        return v

    @property
    def call_id(self) -> str:
        first = self.headers._first
        v = (self.headers._firsts() if first is None else first).get("call-id")
        if v is None:
            raise SipParseError("missing Call-ID header")
        return v

    @property
    def cseq(self) -> CSeq:
        c = self.headers._cache
        v = c.get("cseq")
        if v is None:
            v = c["cseq"] = CSeq.parse(self._one("cseq"))
        return v

    @property
    def from_(self) -> NameAddr:
        c = self.headers._cache
        v = c.get("from")
        if v is None:
            v = c["from"] = NameAddr.parse(self._one("from"))
        return v

    @property
    def to(self) -> NameAddr:
        c = self.headers._cache
        v = c.get("to")
        if v is None:
            v = c["to"] = NameAddr.parse(self._one("to"))
        return v

    def _addr_list(self, key: str) -> list[NameAddr]:
        c = self.headers._cache
        v = c.get(key)
        if v is None:
            v = c[key] = [NameAddr.parse(x) for x in self.headers.get_all(key) if x != "*"]
        return v

    @property
    def contact(self) -> list[NameAddr]:
        """Contact addresses (empty for ``Contact: *``; see :attr:`contact_wildcard`)."""
        return self._addr_list("contact")

    @property
    def contact_wildcard(self) -> bool:
        """True for ``Contact: *`` (a REGISTER removing every binding)."""
        return self.headers.get("contact", "").strip() == "*"  # type: ignore[union-attr]

    @property
    def record_route(self) -> list[NameAddr]:
        return self._addr_list("record-route")

    @property
    def route(self) -> list[NameAddr]:
        return self._addr_list("route")

    def _int(self, key: str, limit: int) -> int | None:
        c = self.headers._cache
        if key in c:
            return c[key]
        text = self.headers._firsts().get(key)
        if text is None:
            c[key] = None
            return None
        if not text.isdigit() or not text.isascii():
            raise SipParseError(f"malformed {_display(key)}")
        n = int(text)
        if n > limit:
            raise SipParseError(f"{_display(key)} too large")
        c[key] = n
        return n

    @property
    def max_forwards(self) -> int | None:
        return self._int("max-forwards", 255)

    @property
    def expires(self) -> int | None:
        return self._int("expires", 0xFFFFFFFF)

    @property
    def content_length(self) -> int:
        """The body length (what serialize() will write)."""
        return len(self.body)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def www_authenticate(self) -> list[AuthenticateHeader]:
        return [AuthenticateHeader.parse(v) for v in self.headers.get_lines("www-authenticate")]

    @property
    def proxy_authenticate(self) -> list[AuthenticateHeader]:
        return [AuthenticateHeader.parse(v) for v in self.headers.get_lines("proxy-authenticate")]

    @property
    def authorization(self) -> list[AuthorizationHeader]:
        return [AuthorizationHeader.parse(v) for v in self.headers.get_lines("authorization")]

    @property
    def proxy_authorization(self) -> list[AuthorizationHeader]:
        return [AuthorizationHeader.parse(v) for v in self.headers.get_lines("proxy-authorization")]

    # --- serialization ----------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The message on the wire; Content-Length is recomputed from the body."""
        h = self.headers
        vias = h._cache.get("via")
        if vias is not None and any(v._text is None for v in vias):
            # a Via was changed through its setters (received/rport/branch): write them back
            h.set("via", [str(v) for v in vias])
            h._cache["via"] = vias
        body = self.body
        parts = [self.start_line(), "\r\n"]
        have_length = False
        for key, name, value in h._items:
            if key == "content-length":
                if have_length:
                    continue
                have_length = True
                value = str(len(body))
            parts += (name, ": ", value, "\r\n")
        if not have_length:
            parts.append(f"Content-Length: {len(body)}\r\n")
        parts.append("\r\n")
        return "".join(parts).encode("utf-8", "surrogateescape") + body

    def __bytes__(self) -> bytes:
        return self.serialize()

    def summary(self) -> str:
        raise NotImplementedError


class Request(_Message):
    """A SIP request: ``method uri version``, headers, body."""

    __slots__ = ("method", "_uri", "_uri_text")

    def __init__(self, method: str, uri: SipUri | str, headers: Headers | None = None,
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.method = method
        self._uri: SipUri | None = uri if isinstance(uri, SipUri) else SipUri.parse(uri)
        self._uri_text = ""
        self.headers = Headers() if headers is None else headers
        self.body = body
        self.version = version

    @property
    def uri(self) -> SipUri:
        """The Request-URI (built on first access from the validated text)."""
        u = self._uri
        if u is None:
            u = self._uri = SipUri.parse(self._uri_text)
        return u

    @uri.setter
    def uri(self, value: SipUri | str) -> None:
        self._uri = value if isinstance(value, SipUri) else SipUri.parse(value)

    def start_line(self) -> str:
        uri = self._uri_text if self._uri is None else str(self._uri)
        return f"{self.method} {uri} {self.version}"

    def summary(self) -> str:
        return f"{self.method} {self.uri}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(_Message):
    """A SIP response: ``version status reason``, headers, body."""

    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None,
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason
        self.headers = Headers() if headers is None else headers
        self.body = body
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def summary(self) -> str:
        return f"{self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


Message = Request | Response


# ------------------------------------------------------------------------------ parsing


# The header-section split's fast path (one ``str.split`` per line, no per-line checks) is
# used when on; tests switch it off to compare with the careful path.
_FAST_SPLIT = True


class _Folded(Exception):
    """Internal: the header section has folded lines (rare): unfold and split again."""


def _split_head(head: bytes) -> tuple[str, Headers]:
    """Start line and header fields of a header section (no final empty line)."""
    if len(head) > MAX_HEADER_BYTES:
        raise SipParseError("header section too large", 513)
    text = head.decode("utf-8", "surrogateescape")
    try:
        return _split_text(text)
    except _Folded:
        return _split_folded(text)


def _split_folded(text: str) -> tuple[str, Headers]:
    # RFC 3261 §7.3.1: a folded header line is one line (the start line cannot be folded)
    nl = text.find("\n")
    if text[nl + 1:nl + 2] in (" ", "\t"):
        raise SipParseError("whitespace at the start of a header line")
    try:
        return _split_text(text[:nl + 1] + _FOLD_RE.sub(" ", text[nl + 1:]))
    except _Folded:   # pragma: no cover - cannot happen once unfolded
        raise SipParseError("malformed folded header line") from None


def _split_text(text: str) -> tuple[str, Headers]:
    lines = text.split("\r\n")
    n = len(lines) - 1
    if n == 0:
        if "\n" in text:
            if "\r" in text:
                raise SipParseError("bare CR in header section")
            lines = text.split("\n")     # bare-LF line ends throughout (tolerated)
            n = len(lines) - 1
        elif "\r" in text:
            raise SipParseError("bare CR in header section")
    elif text.count("\n") != n or text.count("\r") != n:
        raise SipParseError("bare CR or LF in header section")
    if n > MAX_HEADERS:
        raise SipParseError("too many header fields", 513)
    cache = _NAME_CACHE
    # only the first value of each name is kept now; the full field list is built from
    # ``lines`` when something needs it (a repeated header, serialize, a change)
    first: dict[str, str] = {}
    if _FAST_SPLIT:
        # fast path: every line "known-name:value" (no folding, no new or odd name); going
        # backwards, a plain store leaves each name's first value.  Anything else (a line
        # without colon, a name not seen before) is left to the careful loop below, which
        # starts over and raises what it always raised.
        try:
            for line in lines[:0:-1]:
                name, value = line.split(":", 1)
                first[cache[name]] = value.strip(" \t")
        except (KeyError, ValueError):
            first = {}
        else:
            if len(text) > MAX_LINE and max(map(len, lines)) > MAX_LINE:
                raise SipParseError("header line too long", 513)
            h = Headers.__new__(Headers)
            h._items_ = None
            h._lines = lines
            h._n = n
            h._first = first
            h._cache = {}
            return lines[0], h
    setdefault = first.setdefault
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        key = cache.get(name)
        if key is None or not sep:
            if line[:1] in (" ", "\t"):
                raise _Folded
            if not sep:
                raise SipParseError("header line without colon")
            key = _key(name.rstrip(" \t"))
        setdefault(key, value.strip(" \t"))
    if len(text) > MAX_LINE and max(map(len, lines)) > MAX_LINE:
        raise SipParseError("header line too long", 513)
    return lines[0], Headers._from_parsed(lines, first)


def _start(start: str, headers: Headers, body: bytes) -> Message:
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError("malformed Status-Line")
        version = parts[0]
        if version != "SIP/2.0":
            raise SipParseError("unsupported SIP version", 505)
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] in "0789":
            raise SipParseError("bad status code")
        resp = Response.__new__(Response)
        resp.status = int(code)
        resp.reason = parts[2] if len(parts) == 3 else ""
        resp.headers = headers
        resp.body = body
        resp.version = version
        return resp
    m = _REQUEST_LINE_QUICK_RE.fullmatch(start)
    if m is not None:
        method, uri_text, uparams = m.groups()
        if not uparams or "method" not in uparams.lower():
            # the everyday Request-Line: what the checks below would accept unchanged
            req = Request.__new__(Request)
            req.method = method
            req._uri = None
            req._uri_text = uri_text
            req.headers = headers
            req.body = body
            req.version = "SIP/2.0"
            return req
    parts = start.split(" ")
    if len(parts) != 3:
        if len(parts) > 3 and "" in parts:
            raise SipParseError("extra whitespace in Request-Line")
        raise SipParseError("malformed Request-Line")
    method, uri_text, version = parts
    if version != "SIP/2.0":
        m = _VERSION_RE.fullmatch(version)
        if m is None:
            raise SipParseError("malformed SIP version")
        if version.upper() != "SIP/2.0":
            raise SipParseError("unsupported SIP version", 505)
        version = "SIP/2.0"
    if method not in _KNOWN_METHODS and not _TOKEN_RE.fullmatch(method):
        raise SipParseError("malformed method")
    if not uri_text:
        raise SipParseError("empty Request-URI")
    m = check_uri(uri_text)
    if m is not None:
        # RFC 3261 §19.1.1 table: no headers and no method parameter in a Request-URI
        if m.group("headers") is not None:
            raise SipParseError("headers not allowed in Request-URI")
        uparams = m.group("params")
        if uparams and "method" in uparams.lower() and "method" in SipUri.parse(uri_text).params:
            raise SipParseError("method parameter not allowed in Request-URI")
    req = Request.__new__(Request)
    req.method = method
    req._uri = None
    req._uri_text = uri_text
    req.headers = headers
    req.body = body
    req.version = version
    return req


# bound once (the parsers read their patterns from their modules at each call)
_parse_via = Via.parse
_parse_cseq = CSeq.parse
_parse_name_addr = NameAddr.parse
_callid_match = _CALLID_RE.fullmatch


def _validate(msg: Message) -> None:
    """The checks every message must pass (RFC 3261 §8.1.1, §20); caches what it parses."""
    h = msg.headers
    index = h._first
    if index is None:
        index = h._firsts()
    if len(index) != h._n:   # some header repeats: the single-valued ones must not
        for key in _SINGLE:
            if len(h._all(key)) > 1:
                raise SipParseError(f"more than one {_display(key)} header")
    unique = len(index) == h._n
    get = index.get
    call_id = get("call-id")
    if call_id is None:
        raise SipParseError("missing Call-ID header")
    cseq_v = get("cseq")
    if cseq_v is None:
        raise SipParseError("missing CSeq header")
    from_v = get("from")
    if from_v is None:
        raise SipParseError("missing From header")
    to_v = get("to")
    if to_v is None:
        raise SipParseError("missing To header")
    via_v = get("via")
    if via_v is None:
        raise SipParseError("missing Via header")
    if _callid_match(call_id) is None:
        raise SipParseError("malformed Call-ID")
    cache = h._cache
    if unique and "," not in via_v:
        vias = [_parse_via(via_v)]
    else:
        vias = []
        for line in ((via_v,) if unique else h._all("via")):
            if "," in line:
                vias += [_parse_via(v) for v in split_list(line)]
            else:
                vias.append(_parse_via(line))
        if not vias:   # "Via: ,,," is a list of no values
            raise SipParseError("empty Via header")
    cache["via"] = vias
    cseq = cache["cseq"] = _parse_cseq(cseq_v)
    cache["from"] = _parse_name_addr(from_v)
    cache["to"] = _parse_name_addr(to_v)
    contact = get("contact")
    if contact is not None:
        if unique and "," not in contact:
            if contact == "*":
                cache["contact"] = []
            elif _NAME_ADDR_QUICK_RE.fullmatch(contact) is None or contact.count(";") > _MAX_PARAMS:
                cache["contact"] = [_parse_name_addr(contact)]
            # else: a name-addr of the everyday shape, valid as it stands (NameAddr.parse
            # takes it without fail): built on first access of msg.contact
        else:
            msg.contact  # noqa: B018 - parse and cache
    mf = get("max-forwards")
    if mf is not None:
        hops = int(mf) if len(mf) < 4 and mf.isdigit() and mf.isascii() else 256
        if hops <= 255:
            cache["max-forwards"] = hops
        else:
            msg.max_forwards  # noqa: B018 - raises the precise error
    if "expires" in index:
        msg.expires  # noqa: B018
    ctype = get("content-type")
    if ctype is not None and ctype != "application/sdp" and not _MEDIA_TYPE_RE.fullmatch(ctype):
        raise SipParseError("malformed Content-Type")
    date = get("date")
    if date is not None and not _DATE_RE.fullmatch(date):
        raise SipParseError("malformed Date (must be an RFC 1123 date in GMT)")
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise SipParseError("CSeq method does not match Request-Line method")


def _content_length(headers: Headers) -> int | None:
    first = headers._firsts()
    text = first.get("content-length")
    if text is None:
        return None
    if len(first) != headers._n and len(headers._all("content-length")) > 1:
        raise SipParseError("more than one Content-Length header")
    if text.isdigit() and text.isascii():
        if len(text) <= 10:
            n = int(text)
            if n <= MAX_BODY:
                return n
        raise SipParseError("body too large", 413)
    if text.startswith("-"):
        raise SipParseError("negative Content-Length")
    raise SipParseError("malformed Content-Length")


def _find_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """(end of header section, start of body), or (-1, -1) when not complete yet."""
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        return end, end + 4
    end = data.find(b"\n\n", start)
    if end >= 0:
        return end, end + 2
    return -1, -1


def _find_end_datagram(data: bytes, start: int) -> tuple[int, int]:
    end, body_start = _find_end(data, start)
    if end < 0 and data.endswith(b"\r\n") and len(data) - 2 > start:
        # the datagram ends right after the last header line: no empty line, no body
        return len(data) - 2, len(data)
    return end, body_start


def parse_message(data: bytes) -> Message:
    """Parse one SIP message from a datagram; raises :class:`SipParseError` only.

    Leading CRLFs are skipped (RFC 3261 §7.5).  The body is ``Content-Length`` octets; octets
    after it are ignored (RFC 3261 §18.3); without Content-Length the body runs to the end of
    the datagram.  A Content-Length larger than what follows is an error.
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SipParseError("not bytes")
        data = bytes(data)
    if len(data) > MAX_HEADER_BYTES + MAX_BODY:
        raise SipParseError("message too large", 513)
    pos = 0
    if data[:2] == b"\r\n":
        while data.startswith(b"\r\n", pos):
            pos += 2
    end = data.find(b"\r\n\r\n", pos)
    if end >= 0:
        body_start = end + 4
    else:
        end, body_start = _find_end_datagram(data, pos)
        if end < 0:
            raise SipParseError("no empty line after the header section")
    try:
        if end - pos > MAX_HEADER_BYTES:
            raise SipParseError("header section too large", 513)
        text = data[pos:end].decode("utf-8", "surrogateescape")
        try:
            start, headers = _split_text(text)
        except _Folded:
            start, headers = _split_folded(text)
        first = headers._first
        if first is None:   # pragma: no cover - a freshly split header section has it
            first = headers._firsts()
        clen = first.get("content-length")
        if clen is None:
            body = data[body_start:]
        else:
            if len(clen) < 7 and clen.isdigit() and clen.isascii() and len(first) == headers._n:
                length = int(clen)   # the usual case of what _content_length checks
            else:
                length = _content_length(headers) or 0   # not None: there is one
            if body_start + length > len(data):
                raise SipParseError("Content-Length larger than the message")
            body = data[body_start:body_start + length]
        msg = _start(start, headers, body)
        _validate(msg)
        return msg
    except SipParseError as e:
        if e.partial is None:
            e.partial = _partial(data[pos:end])
        raise
    except (ValueError, UnicodeError, OverflowError) as e:   # pragma: no cover - safety net
        raise SipParseError(f"malformed message ({type(e).__name__})") from e


_FIELD_START = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*:")


def _partial(head: bytes, lenient: bool = True) -> Message | None:
    """The message as far as its start line and header split go, for error responses; when
    some header line cannot be split (a bad name, no colon), from the lines that can."""
    try:
        start, headers = _split_head(head)
        if start.startswith("SIP/"):
            return Response(0, "", headers)
        method, _, rest = start.partition(" ")
        if not method:
            return None
        req = Request.__new__(Request)
        req.method = method
        req._uri = SipUri("sip", host="invalid")
        req._uri_text = ""
        req.headers = headers
        req.body = b""
        req.version = "SIP/2.0"
        return req
    except (SipParseError, ValueError):
        if not lenient:
            return None
    lines = head.split(b"\n")
    kept = [lines[0]] + [ln for ln in lines[1:] if _FIELD_START.match(ln)]
    return _partial(b"\n".join(kept), False) if len(kept) < len(lines) else None


class StreamParser:
    """Frames SIP messages on a TCP/TLS byte stream by Content-Length (RFC 3261 §18.3).

    ``feed`` returns the complete messages received so far; CRLF keep-alives (RFC 5626 §3.5.1)
    between messages are skipped.  A framing error (a header section larger than
    ``MAX_HEADER_BYTES``, a missing or bad Content-Length) is fatal for the connection:
    ``feed`` raises :class:`SipParseError` (after returning the messages that came before it
    in the same read) and the parser refuses further input.  A well-framed message that fails
    validation is not fatal: it is dropped and its error kept in :attr:`errors` (the caller
    may answer 400 from ``error.partial``).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[Message | SipParseError, int, int] | None = None
        self._error: SipParseError | None = None
        self.errors: list[SipParseError] = []
        self.keepalives = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def pop_errors(self) -> list[SipParseError]:
        errors, self.errors = self.errors, []
        return errors

    def feed(self, data: bytes) -> list[Message]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[Message] = []
        try:
            self._drain(out)
        except SipParseError as e:
            self._error = e
            self._buf = bytearray()
            if not out:
                raise
        return out

    def _drain(self, out: list[Message]) -> None:
        buf = self._buf
        while True:
            if self._pending is None:
                i = 0
                n = len(buf)
                while i < n and buf[i] in (13, 10):
                    i += 1
                if i:
                    self.keepalives += 1
                    del buf[:i]
                if not buf:
                    return
                end, body_start = _find_end(buf)
                if end < 0:
                    if len(buf) > MAX_HEADER_BYTES:
                        raise SipParseError("header section too large", 513)
                    return
                head = bytes(buf[:end])
                start, headers = _split_head(head)
                length = _content_length(headers)
                if length is None:
                    raise SipParseError("missing Content-Length on a stream transport")
                msg: Message | SipParseError
                try:
                    msg = _start(start, headers, b"")
                except SipParseError as e:
                    e.partial = _partial(head)
                    msg = e
                self._pending = (msg, body_start, length)
            msg, body_start, length = self._pending
            if len(buf) < body_start + length:
                return
            body = bytes(buf[body_start:body_start + length])
            del buf[:body_start + length]
            self._pending = None
            if isinstance(msg, SipParseError):
                self._record(msg)
                continue
            msg.body = body
            try:
                _validate(msg)
            except SipParseError as e:
                e.partial = msg
                self._record(e)
                continue
            out.append(msg)

    def _record(self, err: SipParseError) -> None:
        if len(self.errors) < 100:
            self.errors.append(err)


# ----------------------------------------------------------------------------- builders


def new_branch() -> str:
    """A Via branch with the RFC 3261 magic cookie."""
    return MAGIC_COOKIE + os.urandom(8).hex()


def new_tag() -> str:
    return os.urandom(6).hex()


def new_call_id(host: str = "") -> str:
    cid = os.urandom(12).hex()
    return f"{cid}@{host}" if host else cid


def make_request(method: str, uri: SipUri | str, headers: list[tuple[str, str]],
                 body: bytes = b"") -> Request:
    """A request with ``headers`` in the given order (Content-Length is added on serialize)."""
    return Request(method, uri, Headers(headers), body)


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", content_type: str | None = None) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6.2): Via (all, in order), From, To, Call-ID,
    CSeq copied; ``to_tag`` added to To unless it has one (never on 100 Trying)."""
    h = Headers()
    src = request.headers
    vias = src._cache.get("via")
    if vias is not None:
        for v in vias:
            h.add("Via", str(v))
    else:
        for v in src.get_lines("via"):
            h.add("Via", v)
    from_value = src.get("from")
    if from_value is not None:
        h.add("From", from_value)
    to_value = src.get("to")
    if to_value is not None:
        if to_tag is not None and status != 100:
            to = request.to
            if to.tag is None:
                to_value = f"{to_value};tag={to_tag}"
        h.add("To", to_value)
    for name in ("Call-ID", "CSeq"):
        value = src.get(name)
        if value is not None:
            h.add(name, value)
    if status == 100:
        ts = src.get("timestamp")
        if ts is not None:
            h.add("Timestamp", ts)   # RFC 3261 §8.2.6.1
    for name, value in headers or ():
        h.add(name, value)
    if content_type is not None:
        h.set("Content-Type", content_type)
    return Response(status, reason, h, body)


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response to ``invite`` (RFC 3261 §17.1.1.3): same
    Request-URI, top Via, From, Call-ID, CSeq number and Route; To from the response."""
    h = Headers()
    vias = invite.via
    if vias:
        h.add("Via", str(vias[0]))
    h.add("Max-Forwards", "70")
    for name in ("From",):
        value = invite.headers.get(name)
        if value is not None:
            h.add(name, value)
    to_value = response.headers.get("to") or invite.headers.get("to")
    if to_value is not None:
        h.add("To", to_value)
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq.number} ACK")
    for route in invite.headers.get_lines("route"):
        h.add("Route", route)
    return Request("ACK", invite.uri.copy(), h)


def error_response(data: bytes, err: SipParseError) -> Response | None:
    """The best-effort response to a request the codec refused (``err.status`` and reason),
    or ``None`` when none can be built (a response, an ACK, no Via/Call-ID/CSeq...)."""
    partial = err.partial
    if partial is None:
        try:
            end, _ = _find_end(data)
            if end < 0:
                return None
            partial = _partial(data[:end].lstrip(b"\r\n"))
        except Exception:  # noqa: BLE001 - best effort
            return None
    if not isinstance(partial, Request) or partial.method == "ACK":
        return None
    h = Headers()
    src = partial.headers
    idx = src._firsts()
    try:
        # RFC 4475 wants a 400 even when the Via or a required header is what is wrong: copy
        # what there is (the transport falls back to the source address for a bad Via)
        vias = src.get_lines("via")
        if not vias:
            return None
        for v in vias:
            h.add("Via", v)
        for key in ("from", "to", "call-id", "cseq"):
            value = idx.get(key)
            if value is not None:
                h.add(_display(key), value)
    except (SipParseError, ValueError):
        return None
    reason = err.reason if err.status == 400 else reason_phrase(err.status)
    reason = "".join(c if c.isprintable() and c.isascii() else "?" for c in reason)[:120]
    return Response(err.status, reason, h)


def trace_record(msg: Message, direction: Direction, now: float, *,
                 local: Address | None = None, remote: Address | None = None,
                 raw: bytes | None = None) -> TraceRecord:
    """The trace record for a SIP message sent ("out") or received ("in") at ``now``."""
    wire = msg.serialize() if raw is None else raw
    summary = msg.summary()
    if isinstance(msg, Response):
        try:
            summary += f" ({msg.cseq.number} {msg.cseq.method})"
        except SipParseError:
            pass
    return TraceRecord(now, direction, summary, wire.decode("utf-8", "replace"),
                       local, remote, "sip", wire)
