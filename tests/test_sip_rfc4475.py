"""RFC 4475 (SIP torture tests): every one of the 49 messages, table-driven.

- valid / valid-legacy: parse, and the field the RFC points at has the right value;
- invalid: SipParseError with a specific reason (and status: 505 for badvers), and for the
  invalid responses no error response can be built (they are discarded);
- valid-syntax: parse, and the test records the answer the RFC prescribes, computed from the
  parsed fields the UAS layer will look at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from siplink.sip.message import (
    Message,
    Request,
    Response,
    SipParseError,
    error_response,
    parse_message,
)

DIR = Path(__file__).resolve().parent / "data" / "rfc4475"


def _index() -> list[dict[str, str]]:
    rows = []
    lines = (DIR / "INDEX.tsv").read_text().splitlines()
    header: list[str] | None = None
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        cols = line.split("\t")
        if header is None:
            header = cols
            continue
        rows.append(dict(zip(header, cols, strict=True)))
    return rows


INDEX = _index()


def load(name: str) -> bytes:
    return (DIR / name).read_bytes()


def parse_head_lines(data: bytes, name: bytes) -> list[str]:
    """Header lines called ``name`` (or its compact form), unfolded: a naive independent reader."""
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    compact = {b"via": b"v"}.get(name, name)
    out = []
    for line in head.split(b"\r\n")[1:]:
        n, _, v = line.partition(b":")
        if n.strip().lower() in (name, compact):
            out.append(v.strip().decode())
    return out


# ---------------------------------------------------------------- valid and legacy checks


def check_wsinv(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "INVITE"
    assert m.to.tag == "1918181833n" and str(m.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert m.from_.display_name == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.max_forwards == 68                      # leading zeros
    assert m.cseq.number == 9 and m.cseq.method == "INVITE"   # folded CSeq
    assert [(v.transport, v.host, v.branch) for v in m.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),             # "SIP / 2.0 / UDP" folded over lines
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (c,) = m.contact
    assert c.display_name == 'Quoted string ""'
    assert c.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.route[0].uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    assert len(m.body) == 150 and m.content_type == "application/sdp"


def check_intmeth(m: Message) -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert isinstance(m, Request) and m.method == method and m.cseq.method == method
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.from_.params["fromparam''~+*_!.-%"] == '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"'
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.via[0].branch == "z9hG4bK-.!%66*_+`'~"
    line = next(x for x in load("intmeth.dat").split(b"\r\n") if x.startswith(b"extensionHeader"))
    assert m.headers.get("extensionHeader-!.%*+_`'~") == line.split(b":", 1)[1].decode()


def check_esc01(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.uri.user == "sips:user@example.com" and m.uri.host == "example.net"
    assert m.to.uri.user == "user"
    assert m.from_.uri.user == "I have spaces"
    (c,) = m.contact
    assert c.uri.user == "caller"
    # value%41 must NOT become valueA: one level of unescaping only
    assert c.uri.params == {"lr": None, "name": "value%41"}
    assert c.uri.params["name"] != "valueA"


def check_escnull(m: Message) -> None:
    assert m.to.uri.user == "null-\x00-null"          # %00 does not truncate
    assert m.from_.uri.user == "null-\x00-null"
    assert [c.uri.user for c in m.contact] == ["\x00", "\x00\x00"]


def check_esc02(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "RE%47IST%45R"   # not REGISTER: answer 501
    assert m.method != "REGISTER"
    assert m.to.display_name == "%Z%45"
    assert m.via[0].branch == "z9hG4bK209%fzsnel234"
    assert [c.uri.user for c in m.contact] == ["alias1", "alias3"]   # C%6Fntact is not Contact
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def check_lwsdisp(m: Message) -> None:
    assert m.from_.display_name == "caller" and m.from_.uri.user == "caller"
    assert m.from_.tag == "323"


def check_longreq(m: Message) -> None:
    assert isinstance(m, Request)
    assert len(m.to.display_name or "") > 100
    assert m.from_.tag is not None and len(m.from_.tag) > 100
    assert len(m.via) == 34
    assert len(m.call_id) > 100
    assert len(m.body) == int(m.headers.get("content-length") or -1)


def check_dblreq(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "REGISTER"
    assert m.body == b""                              # the trailing INVITE octets are ignored
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def check_semiuri(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.uri.user == "user;par=u@example.net"
    assert m.uri.host == "example.com" and m.uri.params == {}
    assert m.headers.get_all("accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag",
    ]


def check_transports(m: Message) -> None:
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def check_mpart01(m: Message) -> None:
    assert m.content_type == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(m.body) == int(m.headers.get("content-length") or -1)
    assert b"\n" in m.body and m.body.endswith(b"\r\n")


def check_unreason(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 200
    assert m.reason == ("= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f"
                        "\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - "
                        "\u043f\u0440\u043e\u0441\u0442\u043e\u0435")


def check_noreason(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 100 and m.reason == ""


def check_inv2543(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "INVITE"
    assert m.via[0].branch is None                    # RFC 2543: no branch
    assert m.from_.tag is None                        # no From tag
    # no Content-Length: the body runs to the end of the datagram (serialize then adds one)
    assert m.headers.get("content-length") in (None, str(len(m.body)))
    assert "content-length" not in parse_message(load("inv2543.dat")).headers
    assert m.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert m.body.startswith(b"v=0") and m.max_forwards is None
    assert m.record_route[0].uri.params["maddr"] == "ss1.example.com"
    # RFC 3261 §20.10: without <>, ";user=phone" is a header parameter, not a URI one
    assert m.to.params == {"user": "phone"} and m.to.uri.params == {}
    assert m.from_.uri.params == {"user": "phone"}


VALID: dict[str, Callable[[Message], None]] = {
    "wsinv.dat": check_wsinv, "intmeth.dat": check_intmeth, "esc01.dat": check_esc01,
    "escnull.dat": check_escnull, "esc02.dat": check_esc02, "lwsdisp.dat": check_lwsdisp,
    "longreq.dat": check_longreq, "dblreq.dat": check_dblreq, "semiuri.dat": check_semiuri,
    "transports.dat": check_transports, "mpart01.dat": check_mpart01,
    "unreason.dat": check_unreason, "noreason.dat": check_noreason, "inv2543.dat": check_inv2543,
}

# ---------------------------------------------------------------- invalid: (status, reason)

INVALID: dict[str, tuple[int, str]] = {
    "badinv01.dat": (400, "malformed parameter"),
    "clerr.dat": (400, "Content-Length larger than the message"),
    "ncl.dat": (400, "negative Content-Length"),
    "scalar02.dat": (400, "CSeq number too large"),
    "scalarlg.dat": (400, "CSeq number too large"),
    "quotbal.dat": (400, "unterminated quoted string"),
    "ltgtruri.dat": (400, "malformed URI"),
    "lwsruri.dat": (400, "malformed Request-Line"),
    "lwsstart.dat": (400, "extra whitespace in Request-Line"),
    "trws.dat": (400, "extra whitespace in Request-Line"),
    "escruri.dat": (400, "headers not allowed in Request-URI"),
    "baddate.dat": (400, "malformed Date"),
    "regbadct.dat": (400, "must be enclosed in <>"),
    "badaspec.dat": (400, "whitespace inside <>"),
    "baddn.dat": (400, "invalid display name"),
    "badvers.dat": (505, "unsupported SIP version"),
    "mismatch01.dat": (400, "CSeq method does not match"),
    "mismatch02.dat": (400, "CSeq method does not match"),
    "bigcode.dat": (400, "bad status code"),
    "insuf.dat": (400, "missing Call-ID header"),
    "multi01.dat": (400, "more than one Call-ID header"),
    "mcl01.dat": (400, "more than one Content-Length header"),
}

# ---------------------------------------------------------------- valid-syntax: the answer


def uas_answer(m: Message) -> str:
    """The application-level answer the RFC prescribes, decided from the parsed fields only
    (what the UAS layer will do; recorded here so that layer's tests can rely on the fields)."""
    if isinstance(m, Response):
        if any(v.host == "255.255.255.255" for v in m.via):
            return "drop"
        return "accept"
    if not m.uri.is_sip and m.uri.scheme != "tel":
        return "416"
    if m.method == "REGISTER" and not m.to.uri.is_sip:
        return "400"
    require = m.headers.get_all("require") + m.headers.get_all("proxy-require")
    if require:
        return "420"
    if m.content_type is not None and m.content_type != "application/sdp" and m.body:
        return "415"
    accept = m.headers.get_all("accept")
    if m.method == "INVITE" and accept and "application/sdp" not in accept:
        return "406"
    creds = m.authorization
    if creds and creds[0].scheme.lower() != "digest":
        return "401"
    branch = m.via[0].branch or ""
    if branch == "z9hG4bK":
        return "400"                                  # a cookie with nothing after it
    if m.max_forwards == 0:
        return "483 at a proxy, 200 at the endpoint"
    return "200"


VALID_SYNTAX: dict[str, tuple[str, Callable[[Message], None] | None]] = {
    "badbranch.dat": ("400", lambda m: _eq(m.via[0].branch, "z9hG4bK")),
    "unkscm.dat": ("416", lambda m: _eq((m.uri.scheme, m.uri.opaque),   # type: ignore[union-attr]
                                        ("nobodyknowsthisscheme", "totallyopaquecontent"))),
    "novelsc.dat": ("416", lambda m: _eq(m.uri.scheme, "soap.beep")),  # type: ignore[union-attr]
    "unksm2.dat": ("400", lambda m: _eq((m.to.uri.scheme, m.from_.uri.scheme,
                                         m.contact[0].uri.scheme), ("isbn", "http", "name"))),
    "bext01.dat": ("420", lambda m: _eq(m.headers.get_all("proxy-require"),
                                        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"])),
    "invut.dat": ("415", lambda m: _eq(m.content_type, "application/unknownformat")),
    "regaut01.dat": ("401", lambda m: _eq((m.authorization[0].scheme, m.authorization[0].params),
                                          ("NoOneKnowsThisScheme", {"opaque-data": "here"}))),
    "bcast.dat": ("drop", lambda m: _eq(m.via[1].host, "255.255.255.255")),
    "zeromf.dat": ("483 at a proxy, 200 at the endpoint", lambda m: _eq(m.max_forwards, 0)),
    # unknownparam is a contact (header) param in cparam01, a URI param in cparam02
    "cparam01.dat": ("200", lambda m: _eq((m.contact[0].params, m.contact[0].uri.params),
                                          ({"unknownparam": None}, {}))),
    "cparam02.dat": ("200", lambda m: _eq((m.contact[0].params, m.contact[0].uri.params),
                                          ({}, {"unknownparam": None}))),
    "regescrt.dat": ("200", lambda m: _eq(m.contact[0].uri.headers,
                                          {"Route": "<sip:sip.example.com>"})),
    "sdp01.dat": ("406", lambda m: _eq(m.headers.get_all("accept"), ["text/nobodyKnowsThis"])),
}


def _eq(a: object, b: object) -> None:
    assert a == b, f"{a!r} != {b!r}"


# ------------------------------------------------------------------------------- tests


def test_index_covers_every_file_byte_identical() -> None:
    names = {row["file"] for row in INDEX}
    assert len(INDEX) == 49 and len(names) == 49
    assert names == {p.name for p in DIR.glob("*.dat")}
    for row in INDEX:
        data = load(row["file"])
        assert len(data) == int(row["bytes"]), row["file"]
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]


def test_table_covers_every_file_once() -> None:
    tables = [set(VALID), set(INVALID), set(VALID_SYNTAX)]
    assert sum(len(t) for t in tables) == 49
    assert set().union(*tables) == {row["file"] for row in INDEX}
    for row in INDEX:
        verdict = row["verdict"]
        if verdict in ("valid", "valid-legacy"):
            assert row["file"] in VALID
        elif verdict == "invalid":
            assert row["file"] in INVALID
        else:
            assert verdict == "valid-syntax" and row["file"] in VALID_SYNTAX


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid(name: str) -> None:
    m = parse_message(load(name))
    VALID[name](m)
    again = parse_message(m.serialize())            # and it survives a round trip
    VALID[name](again)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid(name: str) -> None:
    status, reason = INVALID[name]
    data = load(name)
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    err = info.value
    assert reason in err.reason
    assert err.status == status
    assert err.reason.isprintable() and "\r" not in err.reason
    resp = error_response(data, err)
    if data.startswith(b"SIP/"):
        assert resp is None                           # a bad response is discarded
    else:
        assert resp is not None and resp.status == status
        # the answer carries the request's Via lines (and Call-ID, CSeq... when it had them)
        assert resp.headers.get_lines("via") == parse_head_lines(data, b"via")
        wire = resp.serialize()
        assert wire.startswith(f"SIP/2.0 {status} ".encode())
        if status == 400:
            assert f" {err.reason}\r\n".encode() in wire


@pytest.mark.parametrize("name", sorted(VALID_SYNTAX))
def test_valid_syntax(name: str) -> None:
    answer, check = VALID_SYNTAX[name]
    m = parse_message(load(name))
    if check is not None:
        check(m)
    assert uas_answer(m) == answer


def test_badvers_answer_is_505() -> None:
    data = load("badvers.dat")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    resp = error_response(data, info.value)
    assert resp is not None and resp.status == 505 and resp.reason == "Version Not Supported"
    assert resp.call_id == "badvers.31417@c.example.com"
