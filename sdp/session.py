"""The typed model of a session description (RFC 8866/4566), with its ICE attributes (RFC 8839).

:func:`parse` turns SDP text into a :class:`SessionDescription` (or raises :class:`SdpError`);
:meth:`SessionDescription.serialize` writes it back (CRLF lines). The line grammar and the
writer are sdp-transform's, driven through :mod:`sdp.transform`; attributes the model does not
know are carried through verbatim, in order.

Inheritance is resolved on parse: each :class:`MediaDescription` holds its *effective*
connection, direction and ICE credentials (media level, else session level). Serialisation
writes a media-level value only where it differs from the session level.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Final

from ice.candidate import Candidate
from sdp import transform
from sdp.errors import SdpError
from sdp.ice import (
    RemoteCandidate,
    check_candidate,
    check_credential,
    format_candidate,
    format_remote_candidates,
    parse_candidate,
    parse_remote_candidates,
)

DIRECTIONS: Final = ("sendrecv", "sendonly", "recvonly", "inactive")
_U32: Final = 2**32 - 1
_U64: Final = 2**64 - 1

# RFC 3551 §6 static payload types: pt -> (encoding name, clock rate, channels)
STATIC_PAYLOAD_TYPES: Final[dict[int, tuple[str, int, int | None]]] = {
    0: ("PCMU", 8000, None), 3: ("GSM", 8000, None), 4: ("G723", 8000, None),
    5: ("DVI4", 8000, None), 6: ("DVI4", 16000, None), 7: ("LPC", 8000, None),
    8: ("PCMA", 8000, None), 9: ("G722", 8000, None), 10: ("L16", 44100, 2),
    11: ("L16", 44100, None), 12: ("QCELP", 8000, None), 13: ("CN", 8000, None),
    14: ("MPA", 90000, None), 15: ("G728", 8000, None), 16: ("DVI4", 11025, None),
    17: ("DVI4", 22050, None), 18: ("G729", 8000, None), 25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None), 28: ("nv", 90000, None), 31: ("H261", 90000, None),
    32: ("MPV", 90000, None), 33: ("MP2T", 90000, None), 34: ("H263", 90000, None),
}


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> IN <addrtype> <address>``."""

    username: str
    sess_id: str            # digits, kept as on the wire (it can exceed 64 bits)
    sess_version: int
    address: str
    addrtype: str = "IP4"


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=IN <addrtype> <address>`` (address may carry ``/ttl`` for multicast)."""

    address: str
    addrtype: str = "IP4"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    bwtype: str
    value: int


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [IN <addrtype> <address>]`` (RFC 3605)."""

    port: int
    address: str | None = None
    addrtype: str = "IP4"


@dataclass(frozen=True, slots=True)
class Codec:
    """One RTP payload format: ``a=rtpmap`` (+ ``a=fmtp``), or a static payload type.

    ``name`` is ``""`` for a dynamic payload type the SDP gave no ``a=rtpmap`` for.
    ``channels`` is ``None`` when not stated (one channel for audio).
    """

    pt: int
    name: str
    rate: int
    channels: int | None = None
    fmtp: str | None = None

    def same_format(self, other: Codec) -> bool:
        """Same encoding, clock rate and channel count (payload type and fmtp aside)."""
        return (
            self.name.lower() == other.name.lower()
            and self.rate == other.rate
            and (self.channels or 1) == (other.channels or 1)
        )

    def with_pt(self, pt: int, fmtp: str | None = None) -> Codec:
        return Codec(pt, self.name, self.rate, self.channels, fmtp if fmtp is not None else self.fmtp)


@dataclass(eq=True)
class MediaDescription:
    """One ``m=`` section."""

    kind: str                       # "audio", "video", "application", ...
    port: int
    proto: str                      # "RTP/AVP", "UDP/TLS/RTP/SAVPF", "DTLS/SCTP", ...
    codecs: list[Codec] = field(default_factory=list)     # RTP protos: in m= order
    formats: list[str] = field(default_factory=list)      # non-RTP protos: the m= fmt tokens
    connection: Connection | None = None                  # effective (media, else session)
    direction: str = "sendrecv"                            # effective
    rtcp: Rtcp | None = None
    rtcp_mux: bool = False
    ptime: float | None = None
    info: str | None = None
    bandwidth: list[Bandwidth] = field(default_factory=list)
    ice_ufrag: str | None = None                           # effective
    ice_pwd: str | None = None                             # effective
    ice_options: list[str] = field(default_factory=list)   # media-level only
    candidates: list[Candidate] = field(default_factory=list)
    remote_candidates: list[RemoteCandidate] = field(default_factory=list)
    end_of_candidates: bool = False
    ice_mismatch: bool = False
    mid: str | None = None                                 # a=mid (RFC 5888)
    attributes: list[str] = field(default_factory=list)    # other a= values, verbatim

    @property
    def is_rtp(self) -> bool:
        return "RTP" in self.proto.upper().split("/")

    @property
    def rejected(self) -> bool:
        return self.port == 0

    @property
    def fmt(self) -> list[str]:
        """The m= line's format list."""
        return [str(c.pt) for c in self.codecs] if self.is_rtp else list(self.formats)

    def attribute(self, name: str) -> list[str | None]:
        """Values of the carried-through attribute ``name`` (``None`` for a flag)."""
        out: list[str | None] = []
        for a in self.attributes:
            key, sep, value = a.partition(":")
            if key == name:
                out.append(value if sep else None)
        return out

    def codec(self, pt: int) -> Codec | None:
        return next((c for c in self.codecs if c.pt == pt), None)


@dataclass(eq=True)
class SessionDescription:
    origin: Origin
    name: str = ""
    connection: Connection | None = None
    timing: tuple[int, int] = (0, 0)
    info: str | None = None
    uri: str | None = None
    email: str | None = None
    phone: str | None = None
    bandwidth: list[Bandwidth] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_lite: bool = False
    ice_options: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)    # other session a= values, verbatim
    media: list[MediaDescription] = field(default_factory=list)

    def ice_options_for(self, media: MediaDescription) -> list[str]:
        """Session-level then media-level ice-options, without repeats."""
        return list(dict.fromkeys([*self.ice_options, *media.ice_options]))

    def serialize(self) -> str:
        """SDP text with CRLF line ends (sdp-transform's writer, see :mod:`sdp.transform`)."""
        return transform.write(_to_transform(self))

    def __str__(self) -> str:
        return self.serialize()


# ------------------------------------------------------------------------------------------
# parsing

def _digits(text: str | None, what: str, line: int, high: int | None = None) -> int:
    if not text or not text.isascii() or not text.isdigit():
        raise SdpError(f"bad {what}: {(text or '')[:40]!r}", line)
    if len(text) > 20:
        raise SdpError(f"{what} out of range: {text[:40]}...", line)
    value = int(text)
    if high is not None and value > high:
        raise SdpError(f"{what} out of range: {value}", line)
    return value


def _addrtype(ipver: str | None, line: int) -> str:
    if ipver not in ("4", "6"):
        raise SdpError(f"unknown address type IP{ipver}", line)
    return "IP" + ipver


def _connection(value: str, line: int) -> Connection:
    ipver, address = transform.match(transform.CONNECTION, value, line)
    if not address:
        raise SdpError("c= without address", line)
    return Connection(address, _addrtype(ipver, line))


class _MediaBuilder:
    """Collects one m= section's lines; :meth:`build` resolves codecs and inheritance."""

    __slots__ = ("media", "line", "payloads", "payload_set", "rtpmap", "fmtp", "has_connection",
                 "has_direction", "has_ufrag", "has_pwd")

    def __init__(self, media: MediaDescription, line: int, payloads: list[int]) -> None:
        self.media = media
        self.line = line
        self.payloads = payloads
        self.payload_set = frozenset(payloads)
        self.rtpmap: dict[int, tuple[str, int, int | None]] = {}
        self.fmtp: dict[int, str] = {}
        self.has_connection = False
        self.has_direction = False
        self.has_ufrag = False
        self.has_pwd = False

    def build(self, session: SessionDescription, session_direction: str | None) -> None:
        m = self.media
        if m.is_rtp:
            for pt in dict.fromkeys(self.payloads):   # a payload type listed twice: once
                name, rate, channels = self.rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(
                    pt, ("", 0, None)
                )
                m.codecs.append(Codec(pt, name, rate, channels, self.fmtp.get(pt)))
        if not self.has_connection:
            if session.connection is None and m.port != 0:
                raise SdpError(f"no c= line for m={m.kind}", self.line)
            m.connection = session.connection
        if not self.has_direction and session_direction is not None:
            m.direction = session_direction
        if not self.has_ufrag:
            m.ice_ufrag = session.ice_ufrag
        if not self.has_pwd:
            m.ice_pwd = session.ice_pwd


def parse(text: str | bytes) -> SessionDescription:
    """Parse SDP (CRLF or LF lines). Raises :class:`SdpError`, and only that."""
    try:
        return _parse(text)
    except SdpError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # Defence in depth: nothing else may escape the core (design: one typed error).
        raise SdpError(f"malformed SDP ({type(exc).__name__})") from None


def _parse(text: str | bytes) -> SessionDescription:
    lines = transform.split_lines(text)
    if len(lines) < 3:
        raise SdpError("SDP needs at least v=, o=, s= and t= lines")
    # RFC 8866 §5: v=, o=, s= come first, in that order.
    for (number, letter, _), want in zip(lines, "vos", strict=False):
        if letter != want:
            raise SdpError(f"expected {want}= line, found {letter}=", number)
    number, _, value = lines[0]
    (version,) = transform.match(transform.VERSION, value, number)
    if version != "0":
        raise SdpError(f"unsupported SDP version {version!r}", number)
    number, _, value = lines[1]
    (username, sess_id, sess_version, nettype, ipver, oaddr) = transform.match(
        transform.ORIGIN, value, number
    )
    if not username or not oaddr:
        raise SdpError("malformed o=", number)
    if nettype != "IN":
        raise SdpError(f"unknown network type {nettype!r}", number)
    origin = Origin(
        username,
        _check_sess_id(sess_id, number),
        _digits(sess_version, "o= session version", number, _U64),
        oaddr,
        _addrtype(ipver, number),
    )
    name = lines[2][2]
    session = SessionDescription(origin=origin, name=name if name.strip() else "")
    session_direction: str | None = None
    seen_timing = False
    builders: list[_MediaBuilder] = []
    current: _MediaBuilder | None = None

    for number, letter, value in lines[3:]:
        if letter == "m":
            if not seen_timing:
                raise SdpError("missing t= line before m=", number)
            if len(builders) >= transform.MAX_MEDIA:
                raise SdpError("too many m= lines", number)
            current = _media_line(value, number)
            builders.append(current)
        elif letter == "a":
            if current is None:
                session_direction = _session_attribute(session, value, number, session_direction)
            else:
                _media_attribute(current, value, number)
        elif current is not None:
            _media_field(current, letter, value, number)
        elif letter in "vos":
            raise SdpError(f"repeated {letter}= line", number)
        elif letter == "t":
            start, stop = transform.match(transform.TIMING, value, number)
            if not seen_timing:
                session.timing = (_digits(start, "t= start", number, _U64),
                                  _digits(stop, "t= stop", number, _U64))
            seen_timing = True
        elif letter == "c":
            if session.connection is not None:
                raise SdpError("repeated session c= line", number)
            session.connection = _connection(value, number)
        elif letter == "b":
            session.bandwidth.append(_bandwidth(value, number))
        elif letter == "i":
            session.info = value
        elif letter == "u":
            session.uri = value
        elif letter == "e":
            session.email = value
        elif letter == "p":
            session.phone = value
        # r=, z= (repeat times, time zones) and k= (obsolete keys): accepted, not modelled.
    if not seen_timing:
        raise SdpError("missing t= line")
    for b in builders:
        b.build(session, session_direction)
        session.media.append(b.media)
    return session


def _check_sess_id(text: str | None, line: int) -> str:
    if not text or not text.isascii() or not text.isdigit():
        raise SdpError(f"bad o= session id: {text!r}", line)
    return text


def _bandwidth(value: str, line: int) -> Bandwidth:
    bwtype, limit = transform.match(transform.BANDWIDTH, value, line)
    assert bwtype is not None
    return Bandwidth(bwtype, _digits(limit, "b= value", line, _U64))


def _media_line(value: str, line: int) -> _MediaBuilder:
    kind, port, proto, fmts = transform.match(transform.MEDIA, value, line)
    if not kind or not proto:
        raise SdpError("malformed m= line", line)
    media = MediaDescription(kind=kind, port=_digits(port, "m= port", line, 65535), proto=proto)
    tokens = fmts.split(" ") if fmts else []
    if not tokens:
        raise SdpError("m= line without formats", line)
    if any(t.split() != [t] for t in tokens):
        raise SdpError("malformed m= format list", line)
    payloads: list[int] = []
    if media.is_rtp:
        payloads = [_digits(t, "payload type", line, 127) for t in tokens]   # W5
    else:
        media.formats = tokens
    return _MediaBuilder(media, line, payloads)


def _media_field(b: _MediaBuilder, letter: str, value: str, line: int) -> None:
    if letter == "c":
        if b.has_connection:
            raise SdpError("repeated c= line in a media section", line)
        b.media.connection = _connection(value, line)
        b.has_connection = True
    elif letter == "b":
        b.media.bandwidth.append(_bandwidth(value, line))
    elif letter == "i":
        b.media.info = value
    elif letter == "k":
        pass  # obsolete (RFC 8866 §5.12): accepted, not modelled
    else:
        raise SdpError(f"{letter}= line not allowed in a media section", line)


def _ptime(value: str, line: int) -> float:
    (text,) = transform.match(transform.PTIME, value, line)
    try:
        ptime = float(text or "")
    except ValueError:
        raise SdpError(f"bad a=ptime: {text!r}", line) from None
    if not math.isfinite(ptime) or ptime <= 0 or ptime > 100_000:
        raise SdpError(f"a=ptime out of range: {text!r}", line)
    return ptime


def _ice_common(
    target: SessionDescription | MediaDescription, name: str, value: str, line: int
) -> bool:
    """ICE attributes allowed at both levels; True when ``name`` was one of them."""
    if name == "ice-ufrag":
        (ufrag,) = transform.match(transform.ICE_UFRAG, value, line)
        target.ice_ufrag = check_credential(ufrag or "", "a=ice-ufrag", line)
    elif name == "ice-pwd":
        (pwd,) = transform.match(transform.ICE_PWD, value, line)
        target.ice_pwd = check_credential(pwd or "", "a=ice-pwd", line)
    elif name == "ice-options":
        (options,) = transform.match(transform.ICE_OPTIONS, value, line)
        # dict.fromkeys: in order, without repeats, in linear time (hostile lists are long)
        merged = dict.fromkeys(target.ice_options)
        merged.update(dict.fromkeys((options or "").split(" ")))
        target.ice_options[:] = list(merged)
    else:
        return False
    return True


def _session_attribute(
    s: SessionDescription, value: str, line: int, direction: str | None
) -> str | None:
    name = transform.attribute_name(value, line)
    if _ice_common(s, name, value, line):
        return direction
    if name in DIRECTIONS:
        transform.match(transform.DIRECTION, value, line)
        return name
    if name == "ice-lite":
        transform.match(transform.ICE_LITE, value, line)
        s.ice_lite = True
    else:
        s.attributes.append(value)
    return direction


def _media_attribute(b: _MediaBuilder, value: str, line: int) -> None:
    m = b.media
    name = transform.attribute_name(value, line)
    if name == "candidate":
        cand = parse_candidate(value, line)
        if cand is None:
            m.attributes.append(value)          # RFC 8839: unknown transport/type, ignored
        else:
            m.candidates.append(cand)
    elif name == "rtpmap":
        pt_s, codec, rate, enc = transform.match(transform.RTPMAP, value, line)
        pt = _digits(pt_s, "a=rtpmap payload type", line, 127)
        if not codec or not rate:
            raise SdpError(f"malformed a=rtpmap: {value[:60]!r}", line)
        channels = None if enc is None else _digits(enc, "a=rtpmap channels", line, 255)
        if m.is_rtp and pt in b.payload_set and pt not in b.rtpmap:
            b.rtpmap[pt] = (codec, _digits(rate, "a=rtpmap clock rate", line, _U32), channels)
        else:
            m.attributes.append(value)
    elif name == "fmtp":
        pt_s, config = transform.match(transform.FMTP, value, line)
        pt = _digits(pt_s, "a=fmtp payload type", line, 127)
        if m.is_rtp and pt in b.payload_set and pt not in b.fmtp and config:
            b.fmtp[pt] = config
        else:
            m.attributes.append(value)
    elif name in DIRECTIONS:
        transform.match(transform.DIRECTION, value, line)
        m.direction = name
        b.has_direction = True
    elif name == "rtcp":
        port, nettype, ipver, address = transform.match(transform.RTCP, value, line)
        rport = _digits(port, "a=rtcp port", line, 65535)
        if address is None:
            m.rtcp = Rtcp(rport)
        else:
            if nettype != "IN":
                raise SdpError(f"unknown network type {nettype!r} in a=rtcp", line)
            if not address:
                raise SdpError("a=rtcp without address", line)
            m.rtcp = Rtcp(rport, address, _addrtype(ipver, line))
    elif name == "rtcp-mux":
        transform.match(transform.RTCP_MUX, value, line)
        m.rtcp_mux = True
    elif name == "ptime":
        m.ptime = _ptime(value, line)
    elif name == "ice-ufrag" or name == "ice-pwd" or name == "ice-options":
        _ice_common(m, name, value, line)
        if name == "ice-ufrag":
            b.has_ufrag = True
        elif name == "ice-pwd":
            b.has_pwd = True
    elif name == "end-of-candidates":
        transform.match(transform.END_OF_CANDIDATES, value, line)
        m.end_of_candidates = True
    elif name == "mid" and m.mid is None:
        mid = value[4:]
        if not transform.is_token(mid):
            raise SdpError(f"malformed a=mid: {value[:40]!r}", line)
        m.mid = mid
    elif name == "remote-candidates":
        m.remote_candidates.extend(parse_remote_candidates(value, line))
    elif name == "ice-mismatch":
        transform.match(transform.ICE_MISMATCH, value, line)
        m.ice_mismatch = True
    else:
        m.attributes.append(value)


# ------------------------------------------------------------------------------------------
# serialising (W4: only typed values reach sdp_transform.write)

def _check_int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SdpError(f"cannot write SDP: bad {what} {value!r}")
    return value


def _check_text(value: object, what: str, allow_space: bool = False, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise SdpError(f"cannot write SDP: bad {what} {value!r}")
    bad = "\r\n\x00" if allow_space else "\r\n\x00 \t"
    if any(ch in value for ch in bad):
        raise SdpError(f"cannot write SDP: bad {what} {value[:40]!r}")
    return value


def _ipver(addrtype: str) -> int:
    if addrtype not in ("IP4", "IP6"):
        raise SdpError(f"cannot write SDP: bad address type {addrtype!r}")
    return int(addrtype[2])


def _conn_dict(c: Connection) -> dict[str, Any]:
    return {"version": _ipver(c.addrtype), "ip": _check_text(c.address, "connection address")}


def _bw_list(items: list[Bandwidth]) -> list[dict[str, Any]]:
    out = []
    for b in items:
        transform.match(transform.BANDWIDTH, f"{b.bwtype}:{b.value}")
        out.append({"type": b.bwtype, "limit": b.value})
    return out


def _to_transform(s: SessionDescription) -> dict[str, Any]:
    o = s.origin
    sess_id = _check_text(o.sess_id, "o= session id")
    if not sess_id.isascii() or not sess_id.isdigit():
        raise SdpError(f"cannot write SDP: bad o= session id {sess_id!r}")
    d: dict[str, Any] = {
        "version": 0,
        "origin": {
            "username": _check_text(o.username, "o= username"),
            "sessionId": sess_id,
            "sessionVersion": _check_int(o.sess_version, "o= version", 0, 2**64 - 1),
            "netType": "IN",
            "ipVer": _ipver(o.addrtype),
            "address": _check_text(o.address, "o= address"),
        },
        # RFC 8866 §5.3: "s= " (one space) when there is no meaningful name.
        "name": _check_text(s.name, "s= name", allow_space=True, allow_empty=True) or " ",
        "timing": {
            "start": _check_int(s.timing[0], "t= start", 0, 2**64 - 1),
            "stop": _check_int(s.timing[1], "t= stop", 0, 2**64 - 1),
        },
    }
    for key, val in (("description", s.info), ("uri", s.uri), ("email", s.email),
                     ("phone", s.phone)):
        if val is not None:
            d[key] = _check_text(val, key, allow_space=True, allow_empty=True)
    if s.connection is not None:
        d["connection"] = _conn_dict(s.connection)
    if s.bandwidth:
        d["bandwidth"] = _bw_list(s.bandwidth)
    if s.ice_ufrag is not None:
        d["iceUfrag"] = check_credential(s.ice_ufrag, "ice-ufrag")
    if s.ice_pwd is not None:
        d["icePwd"] = check_credential(s.ice_pwd, "ice-pwd")
    if s.ice_lite:
        d["icelite"] = "ice-lite"
    if s.ice_options:
        d["iceOptions"] = " ".join(_check_text(x, "ice-option") for x in s.ice_options)
    if s.attributes:
        d["invalid"] = [{"value": _attr(a)} for a in s.attributes]
    d["media"] = [_media_dict(s, m) for m in s.media]
    return d


def _attr(value: str) -> str:
    _check_text(value, "attribute", allow_space=True)
    transform.attribute_name(value)
    return value


def _media_dict(s: SessionDescription, m: MediaDescription) -> dict[str, Any]:
    _check_text(m.kind, "media type")
    _check_text(m.proto, "media proto")
    fmt = m.fmt
    if not fmt:
        raise SdpError(f"cannot write SDP: m={m.kind} without formats")
    for f in fmt:
        _check_text(f, "m= format")
    _check_int(m.port, "m= port", 0, 65535)
    transform.match(transform.MEDIA, f"{m.kind} {m.port} {m.proto} {' '.join(fmt)}")
    d: dict[str, Any] = {
        "type": m.kind,
        "port": _check_int(m.port, "m= port", 0, 65535),
        "protocol": m.proto,
        "payloads": " ".join(fmt),
        "rtp": [],
        "fmtp": [],
    }
    if m.is_rtp:
        for c in m.codecs:
            _check_int(c.pt, "payload type", 0, 127)
            if c.name:
                entry: dict[str, Any] = {
                    "payload": c.pt,
                    "codec": _check_text(c.name, "codec name"),
                    "rate": _check_int(c.rate, "clock rate", 1, 2**32 - 1),
                }
                if c.channels is not None:
                    entry["encoding"] = _check_int(c.channels, "channels", 1, 255)
                transform.match(transform.RTPMAP, f"rtpmap:{c.pt} {c.name}/{c.rate}")
                d["rtp"].append(entry)
            if c.fmtp is not None:
                d["fmtp"].append(
                    {"payload": c.pt, "config": _check_text(c.fmtp, "fmtp", allow_space=True)}
                )
    if m.info is not None:
        d["description"] = _check_text(m.info, "i=", allow_space=True, allow_empty=True)
    if m.connection is not None and m.connection != s.connection:
        d["connection"] = _conn_dict(m.connection)
    elif m.connection is None and s.connection is None and m.port != 0:
        raise SdpError(f"cannot write SDP: no connection address for m={m.kind}")
    if m.bandwidth:
        d["bandwidth"] = _bw_list(m.bandwidth)
    if m.direction not in DIRECTIONS:
        raise SdpError(f"cannot write SDP: bad direction {m.direction!r}")
    d["direction"] = m.direction
    if m.rtcp is not None:
        r = m.rtcp
        d["rtcp"] = {"port": _check_int(r.port, "a=rtcp port", 0, 65535)}
        if r.address is not None:
            d["rtcp"].update(netType="IN", ipVer=_ipver(r.addrtype),
                             address=_check_text(r.address, "a=rtcp address"))
    if m.rtcp_mux:
        d["rtcpMux"] = "rtcp-mux"
    if m.ptime is not None:
        if not isinstance(m.ptime, (int, float)) or not math.isfinite(m.ptime) \
                or not 0 < m.ptime <= 100_000:
            raise SdpError(f"cannot write SDP: bad ptime {m.ptime!r}")
    if m.ice_ufrag is not None and m.ice_ufrag != s.ice_ufrag:
        d["iceUfrag"] = check_credential(m.ice_ufrag, "ice-ufrag")
    if m.ice_pwd is not None and m.ice_pwd != s.ice_pwd:
        d["icePwd"] = check_credential(m.ice_pwd, "ice-pwd")
    if m.ice_options:
        d["iceOptions"] = " ".join(_check_text(x, "ice-option") for x in m.ice_options)
    if m.remote_candidates:
        for r2 in m.remote_candidates:
            _check_int(r2.component, "remote-candidates component", 1, 256)
            _check_int(r2.port, "remote-candidates port", 0, 65535)
            _check_text(r2.address, "remote-candidates address")
        d["remoteCandidates"] = format_remote_candidates(m.remote_candidates)
    # Attributes we format ourselves go verbatim through sdp-transform's "invalid" bucket
    # (W2: its candidate writer emits "tcpfield"); candidates last, then end-of-candidates.
    raw = [_attr(a) for a in m.attributes]
    if m.ptime is not None:
        raw.insert(0, "ptime:" + transform.format_ptime(m.ptime))   # W9
    if m.mid is not None:
        if not transform.is_token(m.mid):
            raise SdpError(f"cannot write SDP: bad mid {m.mid!r}")
        raw.insert(0, "mid:" + m.mid)
    for c2 in m.candidates:
        check_candidate(c2)
        raw.append(format_candidate(c2))
    if m.end_of_candidates:
        raw.append("end-of-candidates")
    if m.ice_mismatch:
        raw.append("ice-mismatch")
    if raw:
        d["invalid"] = [{"value": v} for v in raw]
    return d


def address_type(address: str) -> str:
    """``IP6`` for an IPv6 literal, else ``IP4`` (IPv4 literal or a host name)."""
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"
