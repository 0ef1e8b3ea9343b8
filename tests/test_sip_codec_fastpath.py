"""The codec's quick paths (everyday shapes of a Request-Line, a Via, a name-addr, a header
section) give exactly what the general code gives: the same values, the same errors.

Each test parses with the quick paths on, then again with them switched off (their patterns
replaced by one that never matches, or the header-section fast split bypassed), and compares
everything observable.  Inputs are generated near the edges of the quick shapes (odd
characters, ports around 65535, whitespace, case, folding, bare CR/LF, repeated headers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import siplink.sip.headers as headers_mod
import siplink.sip.message as message_mod
from siplink.sip.headers import NameAddr, Via
from siplink.sip.message import Request, SipParseError, StreamParser, parse_message

DATA = Path(__file__).resolve().parent / "data"
CORPUS = [p.read_bytes() for p in sorted((DATA / "rfc4475").glob("*.dat"))] + [
    p.read_bytes() for p in sorted((DATA / "sip").glob("*.msg"))]

EXAMPLES = settings(max_examples=int(os.environ.get("SIPLINK_FUZZ_EXAMPLES", "300")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])

_NEVER = re.compile(r"(?!)")
_QUICK = [
    (headers_mod, "_VIA_QUICK_RE"),
    (headers_mod, "_NAME_ADDR_QUICK_RE"),
    (message_mod, "_REQUEST_LINE_QUICK_RE"),
    (message_mod, "_NAME_ADDR_QUICK_RE"),   # Contact: validated now, built on first access
]


@contextmanager
def quick_paths_off() -> Iterator[None]:
    saved = [(mod, name, getattr(mod, name)) for mod, name in _QUICK]
    saved_split = message_mod._FAST_SPLIT
    try:
        for mod, name in _QUICK:
            setattr(mod, name, _NEVER)
        message_mod._FAST_SPLIT = False
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)
        message_mod._FAST_SPLIT = saved_split


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except SipParseError as e:
        return ("error", e.reason, e.status)


def both(fn: Callable[[], Any]) -> tuple[Any, Any]:
    quick = outcome(fn)
    with quick_paths_off():
        careful = outcome(fn)
    return quick, careful


def name_addr_view(text: str) -> Any:
    na = NameAddr.parse(text)
    return (na.display_name, na._uri_text, na.params, list(na.params), na.bracketed, str(na),
            outcome(lambda: repr(na.uri)))


def via_view(text: str) -> Any:
    v = Via.parse(text)
    return (v.protocol, v.transport, v.host, v.port, v.params, list(v.params), str(v),
            v.modified)


def message_view(data: bytes) -> Any:
    m = parse_message(data)
    h = m.headers
    out: list[Any] = [type(m).__name__, m.version, m.body, m.serialize(), h.items(),
                      h.raw_items(), len(h)]
    if isinstance(m, Request):
        out += [m.method, m._uri_text, outcome(lambda: repr(m.uri))]
    else:
        out += [m.status, m.reason]
    for name in ("via", "cseq", "from_", "to", "contact", "record_route", "route",
                 "max_forwards", "expires", "content_type", "call_id", "authorization"):
        out.append(outcome(lambda name=name: repr(getattr(m, name))))
    for name in ("Via", "v", "i", "Call-ID", "CSeq", "Contact", "m", "X-Foo", "Route", "l"):
        out.append((h.get(name), h.get_all(name), h.get_lines(name), name in h))
    return out


def error_view(data: bytes) -> Any:
    try:
        parse_message(data)
    except SipParseError as e:
        p = e.partial
        return (e.reason, e.status, None if p is None else (p.headers.items(), p.summary()))
    return None


def stream_view(data: bytes) -> Any:
    sp = StreamParser()
    out: list[Any] = []
    try:
        for i in range(0, len(data), 37):
            out += [m.serialize() for m in sp.feed(data[i:i + 37])]
    except SipParseError as e:
        out.append(("fatal", e.reason, e.status))
    out.append([(e.reason, e.status) for e in sp.errors])
    return out


def check_message(data: bytes) -> None:
    quick, careful = both(lambda: message_view(data))
    assert quick == careful
    quick, careful = both(lambda: error_view(data))
    assert quick == careful
    quick, careful = both(lambda: stream_view(data))
    assert quick == careful


# ---------------------------------------------------------------------- generated parts

def pieces(alphabet: str, max_size: int = 6) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, max_size=max_size)


class Part(NamedTuple):
    usual: st.SearchStrategy[Any]   # what the quick paths take
    odd: st.SearchStrategy[Any]     # near misses


def mostly(part: Part) -> st.SearchStrategy[Any]:
    """The usual shape three times out of four, an odd one otherwise."""
    return st.sampled_from((True, True, True, False)).flatmap(
        lambda u: part.usual if u else part.odd)


def draw_parts(draw: st.DrawFn, *parts: Part) -> list[Any]:
    """Every part usual (the whole value takes a quick path), or exactly one part odd (a near
    miss of the quick shape), or each part usual three times out of four."""
    mode = draw(st.sampled_from(["usual", "one odd", "mixed"]))
    if mode == "usual":
        return [draw(p.usual) for p in parts]
    if mode == "one odd":
        odd = draw(st.integers(0, len(parts) - 1))
        return [draw(p.odd if i == odd else p.usual) for i, p in enumerate(parts)]
    return [draw(mostly(p)) for p in parts]


TOKENS = pieces("aZ09-.!%*_+`'~", 8)
TOKEN1 = st.text(alphabet="aZz09-.!%*_+`'~", min_size=1, max_size=8)
SCHEME = Part(st.sampled_from(["sip:", "sips:"]),
              st.sampled_from(["SIP:", "sIps:", "tel:", "http:", "sip", "sip :", "sipx:"]))
USERINFO = Part(
    st.one_of(st.just(""), st.text(alphabet="aZ09-_.!~*'()&=+$,;?/", min_size=1,
                                   max_size=8).map(lambda u: u + "@")),
    pieces("aZ0-_.%41:;?/@[]# \"<>,", 8).map(lambda u: u + "@"),
)
HOSTS = Part(
    st.one_of(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9.])?", fullmatch=True),
              st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", fullmatch=True)),
    st.one_of(st.sampled_from(["a-", "-a", "1.2.3.4.5", "[::1]", "[2001:db8::1]", "[::1",
                               "ex_ample", "", ".a", "a-.", "A-b.C."]),
              pieces("aZ09-.[]:_", 10)),
)
PORTS = Part(
    st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}")),
    st.one_of(st.sampled_from([":65536", ":99999", ":00000", ":000001", ":", ":655350", ":1a",
                               ": 5060", ":65535", ":0", ":06553"]),
              st.integers(65530, 700000).map(lambda p: f":{p}")),
)
PARAMCHARS = "aZ09-_.!~*'()/:&+$"
URI_PARAM = Part(
    st.builds(lambda n, v: f";{n}={v}" if v else f";{n}",
              st.text(alphabet=PARAMCHARS, min_size=1, max_size=6),
              st.text(alphabet=PARAMCHARS, max_size=6)),
    st.one_of(st.sampled_from([";method=INVITE", ";METHOD=BYE", ";mEthod", ";a=[::1]",
                               ";x=%41", ";=", ";", ";a=b=c", "?h=v", "?", ";transport=udp",
                               ";lr"]),
              pieces(PARAMCHARS + "=;[]%?", 8).map(lambda p: ";" + p)),
)
HEADER_PARAM = Part(
    st.one_of(TOKEN1.map(lambda t: f";tag={t}"),
              st.builds(lambda n, v: f";{n}={v}" if v else f";{n}", TOKEN1, TOKENS)),
    st.one_of(st.sampled_from([";TAG=abc", ";Tag=x", ";tag", ";tag=", ";a=\"q v\"",
                               "; tag=x", ";tag =x", ";x=[::1]", ";", ";tag=a;tag=b",
                               ";+sip.instance=\"<urn:uuid:1>\""]),
              pieces("aZ09-=;\" \t[]:,<>", 8).map(lambda p: ";" + p)),
)
DISPLAY = Part(
    st.one_of(st.just(""), TOKEN1.map(lambda t: t + " "),
              pieces("aZ 09<>;,:@.-", 8).map(lambda t: f'"{t}" ')),
    st.one_of(st.sampled_from(['"Alice"', '"A \\"b\\"" ', "Alice  ", "Alice\t", "Alice Smith ",
                               '"Al\rice" ', "A<b ", "\"unterminated ", "\xe9 ", '"\xe9" ',
                               '"a"  ', '"a"\t']),
              TOKENS.map(lambda t: t + " ")),
)
BRACKET = Part(st.just(("<", ">")),
               st.sampled_from([("", ""), ("< ", ">"), ("<", "> "), ("<", "")]))


def lists_of(part: Part, max_size: int = 3) -> Part:
    return Part(st.lists(part.usual, max_size=max_size).map("".join),
                st.lists(mostly(part), max_size=max_size).map("".join))


URI_PARAMS = lists_of(URI_PARAM)
HEADER_PARAMS = lists_of(HEADER_PARAM)


@st.composite
def uris(draw: st.DrawFn) -> str:
    return "".join(draw_parts(draw, SCHEME, USERINFO, HOSTS, PORTS, URI_PARAMS))


@st.composite
def name_addrs(draw: st.DrawFn) -> str:
    display, (lt, gt), scheme, user, host, port, params, hparams = draw_parts(
        draw, DISPLAY, BRACKET, SCHEME, USERINFO, HOSTS, PORTS, URI_PARAMS, HEADER_PARAMS)
    return f"{display}{lt}{scheme}{user}{host}{port}{params}{gt}{hparams}"


TRANSPORTS = Part(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]),
                  st.sampled_from(["udp", "Tls", "DTLS", "UDP ", "", "U-D", "wss"]))
VIA_PARAMS = Part(
    st.builds(
        lambda branch, rest: f";branch={branch}{rest}",
        TOKEN1,
        st.one_of(st.just(""), st.just(";rport"),
                  st.builds(lambda p, r: f";rport={p};received={r}", st.integers(0, 65535),
                            TOKEN1)),
    ),
    st.one_of(st.builds(lambda branch, rest: f";branch={branch}{rest}", TOKEN1, st.sampled_from([
        ";rport=65536;received=x", ";rport=00001;received=x", ";rport=1;received=[::1]",
        ";rport=1;received=", ";rport=1;received= x", ";rport=1;received=a b", ";rport;received=x",
        ";received=x;rport=1", ";rport=;received=x", ";ttl=1", ";rport=1", ";rport=1;received",
        ";rport=1;received=x;", ";rport=1;received=x;ttl=2", ";rport=1;RECEIVED=x", ";RPORT",
        ";rport=065535;received=x", ";rport=99999;received=x", ";rport=6553;received=x",
        ";rport=1;received=\"x\"", ";rport ", ";rport;", ";maddr=x", ";branch=y"])),
              st.sampled_from([";Branch=x", ";branch=", ";branch", ";branch=x y", " ;branch=x",
                               ";branch=[::1]", ";branch=\"x\"", ";branch=x\t"]),
              st.lists(
        st.one_of(
            st.sampled_from([";branch=z9hG4bK776asdhds", ";rport", ";rport=5060", ";rport=65536",
                             ";rport=00001", ";rport=", ";received=192.0.2.1", ";received=[::1]",
                             ";ttl=1", ";ttl=256", ";maddr=224.0.0.1", ";BRANCH=x", ";branch",
                             ";branch=", ";branch=a;rport", " ;branch=x", ";branch=x ",
                             ";received=a b", ";rport=1;received=x", ";rport;received=x",
                             ";rport=65535;received=x", ";rport=70000;received=x", ";Rport"]),
            st.builds(lambda n, v: f";{n}={v}" if v else f";{n}", TOKENS, TOKENS),
        ),
        max_size=4,
    ).map("".join)),
)
VIA_PROTO = Part(st.just("SIP/2.0/"),
                 st.sampled_from(["sip/2.0/", "SIP/2.1/", "SIP / 2.0 / ", "SIP/2.0 /"]))
SPACE = Part(st.just(" "), st.sampled_from(["  ", "\t", ""]))


@st.composite
def vias(draw: st.DrawFn) -> str:
    return "".join(draw_parts(draw, VIA_PROTO, TRANSPORTS, SPACE, HOSTS, PORTS, VIA_PARAMS))


METHODS = Part(st.one_of(st.sampled_from(["INVITE", "REGISTER", "OPTIONS", "ACK", "BYE"]), TOKEN1),
               st.sampled_from(["invite", "NEWMETHOD", "IN VITE", "", "INV<ITE", "\xe9"]))
VERSIONS = Part(st.just("SIP/2.0"), st.sampled_from(["sip/2.0", "SIP/2.1", "SIP/20", "SIP/2.0 ",
                                                     "", "SIP/2.00"]))

BASE = (
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    "To: Alice <sip:alice@example.com>\r\n"
    "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 2 {method}\r\n"
    "Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
    "Content-Length: 0\r\n"
)


@st.composite
def request_lines(draw: st.DrawFn) -> bytes:
    method, sep, scheme, user, host, port, params, version = draw_parts(
        draw, METHODS, SPACE, SCHEME, USERINFO, HOSTS, PORTS, URI_PARAMS, VERSIONS)
    start = f"{method}{sep}{scheme}{user}{host}{port}{params} {version}"
    return (start + "\r\n" + BASE.format(method=method) + "\r\n").encode(
        "utf-8", "surrogateescape")


def message_with(which: str, value: str) -> bytes:
    """A REGISTER whose Via, From, To or Contact is ``value``."""
    values = {
        "Via": "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
        "From": "Alice <sip:alice@example.com>;tag=1928301774",
        "To": "Alice <sip:alice@example.com>",
        "Contact": "<sip:alice@192.0.2.10:5060;transport=udp>;expires=3600",
    }
    values[which] = value
    lines = ["REGISTER sip:example.com SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in values.items()]
    lines += ["Call-ID: a84b4c76e66710", "CSeq: 2 REGISTER", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


@st.composite
def messages_with(draw: st.DrawFn) -> bytes:
    """A REGISTER whose Via, From, To or Contact is generated."""
    which = draw(st.sampled_from(["Via", "From", "To", "Contact"]))
    return message_with(which, draw(vias() if which == "Via" else name_addrs()))


# header-section edits near the fast split's edges
LINE_EDITS = st.sampled_from([
    ("Max-Forwards: 70", "Max-Forwards:70"), ("Max-Forwards: 70", "Max-Forwards : 70"),
    ("Max-Forwards: 70", "Max-Forwards:  70"), ("Max-Forwards: 70", "Max-Forwards: 70 "),
    ("Max-Forwards: 70", "Max-Forwards:\t70\t"), ("Max-Forwards: 70", "max-forwards: 70"),
    ("Max-Forwards: 70", "Max-Forwards: 70\r\n 1"), ("Max-Forwards: 70", "Max-Forwards:\r\n 70"),
    ("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"),
    ("Call-ID: ", "i: "), ("Call-ID: ", "CALL-ID: "), ("Call-ID: ", "Call-Id:"),
    ("Call-ID: a84b4c76e66710", "Call-ID: a84b4c76e66710\r\ni: other"),
    ("Via: ", "v: "), ("Via: ", "Via:  "), ("Via: ", "VIA:"),
    ("Via: SIP", "Via: SIP/2.0/UDP x;branch=z9hG4bKa\r\nv: SIP"),
    ("Via: SIP", "v: SIP/2.0/UDP x;branch=z9hG4bKa\r\nVia: SIP"),
    ("To: ", "t: "), ("To: ", "To:\t"), ("From: ", "f:"), ("From: ", "X-From: 1\r\nFrom: "),
    ("Contact: ", "m: "), ("Contact: ", "Contact: *\r\nContact: "),
    ("Content-Length: 0", "l: 0"), ("Content-Length: 0", "Content-Length: 0\r\nl: 0"),
    ("CSeq: ", "CSeq:  "), ("CSeq: ", "Cseq: "), ("\r\nTo", "\nTo"), ("\r\nTo", "\rTo"),
    ("\r\nTo", "\r\n\r\nTo"), ("\r\nTo", "\r\n To"), ("\r\nTo", "\r\n:To"),
    ("\r\nTo", "\r\nX-Odd: a: b\r\nTo"), ("\r\nTo", "\r\nX-Empty:\r\nTo"),
    ("\r\nTo", "\r\nX-Empty: \r\nTo"), ("\r\nTo", "\r\nBad Name: x\r\nTo"),
    ("\r\nTo", "\r\nX-Colon:: x\r\nTo"), ("\r\nTo", "\r\nX-Tab:\tx\r\nTo"),
    ("\r\nTo", "\r\nX-A: b \t\r\nTo"), ("\r\nTo", "\r\nSubject: re: hi\r\nTo"),
    ("\r\nTo", "\r\nx-\xe9: 1\r\nTo"), ("\r\nTo", "\r\nX-Nul: a\x00b\r\nTo"),
    ("\r\nTo", "\r\nRoute: <sip:p1>\r\nroute: <sip:p2>\r\nTo"),
    ("\r\nTo", "\r\nX-Long: " + "a" * 17000 + "\r\nTo"),
    ("\r\nTo", "".join(f"\r\nX-H{i}: {i}" for i in range(260)) + "\r\nTo"),
    ("SIP/2.0\r\n", "SIP/2.0\r\n "),
])


@st.composite
def edited_messages(draw: st.DrawFn) -> bytes:
    text = (draw(st.sampled_from(["REGISTER sip:example.com SIP/2.0\r\n",
                                  "SIP/2.0 200 OK\r\n"]))
            + BASE.format(method="REGISTER") + "\r\n")
    for old, new in draw(st.lists(LINE_EDITS, min_size=1, max_size=4)):
        text = text.replace(old, new, 1)
    return text.encode("utf-8", "surrogateescape")


# near misses, one part at a time: every odd variant of one part, the other parts usual

def one_off(usual: list[str], odd: list[list[str]]) -> list[str]:
    cases = ["".join(usual)]
    for i, variants in enumerate(odd):
        for v in variants:
            cases.append("".join(usual[:i] + [v] + usual[i + 1:]))
    return cases


ODD_HOSTS = ["a-", "-a", "a", "a.", "a.b-c.d", "1.2.3.4.5", "300.1.1.1", "[::1]",
             "[2001:db8::1]", "[::1", "ex_ample", "", ".a", "a-.", "A-b.C.", "a..b", "a b",
             "\xe9", "a%41"]
ODD_PORTS = ["", ":0", ":65535", ":65536", ":99999", ":00000", ":000001", ":", ":655350", ":1a",
             ": 5060", ":06553", ":6553", ":65530", ":065535", ":100000", ":-1", ":5060:5060"]
ODD_USERS = ["", "a@", "@", "a:b@", "a:@", "a%41@", "a%4@", "a b@", "a;b?c/d@", "a&=+$,@",
             "[a]@", "a\"@", "a<@", "a@b@", "\xe9@", "a#@"]
ODD_SCHEMES = ["sip:", "sips:", "SIP:", "sIps:", "tel:", "http:", "sip", "sip :", "sipx:",
               "sip::", ":"]
ODD_URI_PARAMS = ["", ";transport=udp", ";lr", ";method=INVITE", ";METHOD=BYE", ";mEthod",
                  ";a=[::1]", ";x=%41", ";=", ";", ";a=b=c", "?h=v", "?", "?h=v&i=w", ";a b",
                  ";a=", ";a;b;c", ";a=\"b\"", ";methods=x", ";x=method", ";maddr=1.2.3.4"]
ODD_VIA_RESTS = [
    "", ";rport", ";rport=5060;received=1.2.3.4", ";rport=65536;received=x",
    ";rport=00001;received=x", ";rport=1;received=[::1]", ";rport=1;received=",
    ";rport=1;received= x", ";rport=1;received=a b", ";rport;received=x", ";received=x;rport=1",
    ";rport=;received=x", ";ttl=1", ";ttl=256", ";rport=1", ";rport=1;received",
    ";rport=1;received=x;", ";rport=1;received=x;ttl=2", ";rport=1;RECEIVED=x", ";RPORT",
    ";rport=065535;received=x", ";rport=99999;received=x", ";rport=6553;received=x",
    ";rport=1;received=\"x\"", ";rport ", ";rport;", ";maddr=x", ";branch=y", ";rport=70000",
    ";rport=abc", ";rport=1;received=x y", " ;rport", ";rport=1 ;received=x", ";rport=1; received=x",
    ";p" * 63, ";p" * 64, ";p" * 65,
]
VIA_NEAR_MISSES = one_off(
    ["SIP/2.0/", "UDP", " ", "10.0.0.1", ":5060", ";branch=", "z9hG4bKx", ";rport"],
    [["sip/2.0/", "SIP/2.1/", "SIP / 2.0 / ", "SIP/2.0 /", "SIP/2.0//"],
     ["udp", "Tls", "DTLS", "UDP ", "", "U-D", "wss", "TCP", "TLS", "SCTP", "WS", "WSS", "X"],
     ["  ", "\t", ""], ODD_HOSTS, ODD_PORTS,
     [";Branch=", ";BRANCH=", "; branch=", ";branch =", ";branch= ", ";branch", ";x="],
     ["", "a b", "[::1]", "\"x\"", "x\t", "x;", "x=y", "\xe9"], ODD_VIA_RESTS],
)
NAME_ADDR_NEAR_MISSES = one_off(
    ['"Alice" ', "<", "sip:", "alice@", "example.com", ":5060", ";transport=udp", ">", ";tag=1a"],
    [["", "Alice ", "Alice Smith ", '"Alice"', '"A \\"b\\"" ', "Alice  ", "Alice\t", '"Al\rice" ',
      "A<b ", "\"unterminated ", "\xe9 ", '"\xe9" ', '"a"  ', '"a"\t', '"" ', "\"a\\\" ", " "],
     ["", "< ", "<<"], ODD_SCHEMES, ODD_USERS, ODD_HOSTS, ODD_PORTS, ODD_URI_PARAMS,
     ["", " >", ">>"],
     ["", ";TAG=abc", ";Tag=x", ";tag", ";tag=", ";a=\"q v\"", "; tag=x", ";tag =x", ";x=[::1]",
      ";", ";tag=a;tag=b", ";+sip.instance=\"<urn:uuid:1>\"", ";expires=3600", ";tag=a;expires=1",
      ";expires=1;tag=a", ";tag=a b", ";tag=\xe9", ";tag=a;", " ;tag=a", ";tag=a ", ";lr",
      ";q=0.5;tag=x", ",<sip:b@c>", ";p" * 63, ";p" * 64, ";p" * 65, ";p=1" * 70,
      ";tag=x" + ";p" * 64]],
)
REQUEST_LINE_NEAR_MISSES = one_off(
    ["OPTIONS", " ", "sip:", "bob@", "example.com", ":5060", ";transport=tcp", " ", "SIP/2.0"],
    [["invite", "NEWMETHOD", "IN VITE", "", "INV<ITE", "\xe9", "A-B.C!%*_+`'~", "INVITE"],
     ["  ", "\t", ""], ODD_SCHEMES, ODD_USERS, ODD_HOSTS, ODD_PORTS, ODD_URI_PARAMS,
     ["  ", "\t", ""], ["sip/2.0", "SIP/2.1", "SIP/20", "SIP/2.0 ", "", "SIP/2.00", "SIP/3.0"]],
)


@pytest.mark.parametrize("text", VIA_NEAR_MISSES)
def test_via_near_misses(text: str) -> None:
    quick, careful = both(lambda: via_view(text))
    assert quick == careful
    check_message(message_with("Via", text))


@pytest.mark.parametrize("text", NAME_ADDR_NEAR_MISSES)
def test_name_addr_near_misses(text: str) -> None:
    quick, careful = both(lambda: name_addr_view(text))
    assert quick == careful
    for name in ("From", "To", "Contact"):
        check_message(message_with(name, text))


@pytest.mark.parametrize("line", REQUEST_LINE_NEAR_MISSES)
def test_request_line_near_misses(line: str) -> None:
    method = line.split(" ", 1)[0]
    check_message((line + "\r\n" + BASE.format(method=method) + "\r\n").encode(
        "utf-8", "surrogateescape"))


# ------------------------------------------------------------------------------- tests

def test_switching_the_quick_paths_off_really_takes_the_other_path() -> None:
    raw = (b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
           + BASE.format(method="OPTIONS").encode() + b"\r\n")
    assert headers_mod._VIA_QUICK_RE.fullmatch(
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport")
    assert headers_mod._NAME_ADDR_QUICK_RE.fullmatch("Alice <sip:alice@example.com>;tag=1")
    assert message_mod._REQUEST_LINE_QUICK_RE.fullmatch("OPTIONS sip:bob@example.com SIP/2.0")
    with quick_paths_off():
        assert not headers_mod._VIA_QUICK_RE.fullmatch(
            "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport")
        assert message_mod._FAST_SPLIT is False
        careful = message_view(raw)
    assert message_view(raw) == careful


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_corpus_same_with_and_without_quick_paths(index: int) -> None:
    check_message(CORPUS[index])


def test_bench_corpus_same_with_and_without_quick_paths() -> None:
    import importlib.util
    path = Path(__file__).resolve().parent.parent / "bench" / "bench_sip_codec.py"
    spec = importlib.util.spec_from_file_location("bench_sip_codec_for_test", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for _, raw in bench.corpus():
        check_message(raw)


@EXAMPLES
@given(name_addrs())
def test_name_addr_quick_path_agrees(text: str) -> None:
    quick, careful = both(lambda: name_addr_view(text))
    assert quick == careful


@EXAMPLES
@given(vias())
def test_via_quick_path_agrees(text: str) -> None:
    quick, careful = both(lambda: via_view(text))
    assert quick == careful


@EXAMPLES
@given(request_lines())
def test_request_line_quick_path_agrees(data: bytes) -> None:
    check_message(data)


@EXAMPLES
@given(messages_with())
def test_header_values_quick_paths_agree_in_messages(data: bytes) -> None:
    check_message(data)


@EXAMPLES
@given(edited_messages())
def test_header_section_fast_split_agrees(data: bytes) -> None:
    check_message(data)


@EXAMPLES
@given(st.sampled_from(CORPUS), st.integers(0, 10_000), st.sampled_from(
    [b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\n ", b":", b";", b",", b'"', b"<", b">", b"=",
     b"@", b"[", b"]", b"%", b"\x00", b"\xff", b"a", b"Z", b"0", b"-", b"/", b": ", b"  "]))
def test_corpus_mutations_agree(base: bytes, pos: int, insert: bytes) -> None:
    pos %= len(base) + 1
    check_message(base[:pos] + insert + base[pos:])
