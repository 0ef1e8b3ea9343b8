"""The SIP message codec: Headers, parse_message, serialize, builders, bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from siplink.sip.headers import Via
from siplink.sip.message import (
    COMPACT_FORMS,
    MAX_BODY,
    MAX_HEADERS,
    Headers,
    Request,
    Response,
    SipParseError,
    error_response,
    make_ack,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from siplink.sip.uri import SipUri

SIP = Path(__file__).resolve().parent / "data" / "sip"

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_request_fields() -> None:
    m = parse_message(INVITE)
    assert isinstance(m, Request)
    assert m.method == "INVITE" and m.version == "SIP/2.0"
    assert m.uri.user == "bob" and m.uri.host == "biloxi.example.com"
    assert m.call_id == "3848276298220188511@atlanta.example.com"
    assert (m.cseq.number, m.cseq.method) == (1, "INVITE")
    via = m.via[0]
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP", "client.atlanta.example.com", 5060, "z9hG4bK74bf9")
    assert m.from_.display_name == "Alice" and m.from_.tag == "9fxced76sl"
    assert m.to.tag is None and m.to.uri.user == "bob"
    assert m.contact[0].uri.params == {"transport": "tcp"}
    assert m.max_forwards == 70 and m.expires is None
    assert m.content_type == "application/sdp" and m.body == b"v=0\n"
    assert m.route == [] and m.record_route == []


def test_baresip_capture_round_trip() -> None:
    for path in sorted(SIP.glob("*.msg")):
        data = path.read_bytes()
        m = parse_message(data)
        assert m.serialize() == data, path.name      # unmodified -> the same bytes
        assert bytes(m) == data
    r = parse_message((SIP / "baresip-200-ice.msg").read_bytes())
    assert isinstance(r, Response) and r.status == 200 and r.to.tag is not None


def test_compact_forms_all_map_to_full_names() -> None:
    for short in "imelftvskcourbxyajd":
        assert short in COMPACT_FORMS
    h = Headers([("i", "abc"), ("f", "<sip:a@b>;tag=1"), ("t", "<sip:c@d>"), ("v", "SIP/2.0/UDP h"),
                 ("l", "0"), ("m", "<sip:e@f>"), ("c", "text/plain"), ("k", "100rel"),
                 ("s", "hello"), ("e", "gzip"), ("o", "presence"), ("u", "refer"),
                 ("r", "<sip:x@y>"), ("b", "<sip:z@w>"), ("x", "1800"), ("y", "abc"),
                 ("a", "*;audio"), ("j", "*;video"), ("d", "proxy")])
    assert h.get("Call-ID") == "abc" and h.get("CALL-id") == "abc"
    assert h.get("from") == "<sip:a@b>;tag=1" and h.get("content-length") == "0"
    assert h.get("Session-Expires") == "1800" and h.get("request-disposition") == "proxy"
    assert h.get("accept-contact") == "*;audio" and h.get("reject-contact") == "*;video"
    assert h.get("identity") == "abc" and h.get("refer-to") == "<sip:x@y>"
    assert h.items()[0] == ("Call-ID", "abc")
    assert "CALL-ID" in h and "i" in h and "route" not in h


def test_compact_names_preserved_on_the_wire() -> None:
    data = (b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:c@d>;tag=1\r\n"
            b"t: <sip:a@b>\r\ni: x\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")
    m = parse_message(data)
    assert m.serialize() == data
    assert m.headers.items()[0] == ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")
    assert m.headers.raw_items()[0] == ("v", "SIP/2.0/UDP h;branch=z9hG4bK1")


def test_folded_lines_and_repeated_headers() -> None:
    data = (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1,\r\n"
            b"  SIP/2.0/UDP h2;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP h3;branch=z9hG4bK3\r\n"
            b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
            b"Subject: one\r\n\ttwo\r\nRoute: <sip:p1;lr>, \"A, B\" <sip:p2;lr>\r\n"
            b"Route: <sip:p,3@x;lr>\r\nContent-Length: 0\r\n\r\n")
    m = parse_message(data)
    assert [v.host for v in m.via] == ["h1", "h2", "h3"]
    assert m.headers.get("subject") == "one two"
    assert m.headers.get_all("route") == ['<sip:p1;lr>', '"A, B" <sip:p2;lr>', "<sip:p,3@x;lr>"]
    assert [r.display_name for r in m.route] == [None, "A, B", None]
    assert m.headers.get_lines("via") == ["SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2;branch=z9hG4bK2",
                                         "SIP/2.0/UDP h3;branch=z9hG4bK3"]
    assert [v.host for v in parse_message(m.serialize()).via] == ["h1", "h2", "h3"]


def test_auth_headers_are_not_split_on_commas() -> None:
    data = (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\n"
            b"CSeq: 2 REGISTER\r\n"
            b'Authorization: Digest username="a", realm="example.com", nonce="n,1", '
            b'uri="sip:example.com", response="abc", qop=auth, nc=00000001, cnonce="c"\r\n'
            b'Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nContent-Length: 0\r\n\r\n')
    m = parse_message(data)
    (cred,) = m.authorization
    assert cred.scheme == "Digest"
    assert cred.params["nonce"] == "n,1" and cred.params["qop"] == "auth"
    assert list(cred.params)[:2] == ["username", "realm"]
    assert m.headers.get_all("date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    resp = make_response(m, 401, headers=[
        ("WWW-Authenticate", 'Digest realm="example.com", nonce="abc", qop="auth", algorithm=MD5')])
    (ch,) = parse_message(resp.serialize()).www_authenticate
    assert ch.params == {"realm": "example.com", "nonce": "abc", "qop": "auth", "algorithm": "MD5"}


def test_make_response_copies_and_tags() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, Request)
    r = make_response(req, 180, to_tag="abc")
    assert (r.status, r.reason) == (180, "Ringing")
    assert r.headers.get_all("via") == req.headers.get_all("via")
    assert r.headers.get("from") == req.headers.get("from")
    assert r.to.tag == "abc" and r.call_id == req.call_id and r.cseq == req.cseq
    assert make_response(req, 100, to_tag="abc").to.tag is None     # never on 100
    assert make_response(req, 486, "Busy", to_tag="t1").reason == "Busy"
    assert make_response(req, 499).reason == "Client Error"
    ok = make_response(req, 200, to_tag="t2", body=b"v=0\r\n", content_type="application/sdp",
                       headers=[("Contact", "<sip:bob@192.0.2.4>")])
    back = parse_message(ok.serialize())
    assert isinstance(back, Response) and back.body == b"v=0\r\n"
    assert back.headers.get("content-length") == "5" and back.content_type == "application/sdp"
    assert back.contact[0].uri.host == "192.0.2.4"
    # a To that already has a tag keeps it
    req2 = parse_message(INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>",
                                        b"To: Bob <sip:bob@biloxi.example.com>;tag=old"))
    assert isinstance(req2, Request)
    assert make_response(req2, 200, to_tag="new").to.tag == "old"


def test_make_response_uses_stamped_via() -> None:
    req = parse_message(INVITE.replace(b"branch=z9hG4bK74bf9", b"branch=z9hG4bK74bf9;rport"))
    assert isinstance(req, Request)
    req.via[0].received = "192.0.2.9"
    req.via[0].rport = 40000
    r = parse_message(make_response(req, 200, to_tag="x").serialize())
    assert r.via[0].received == "192.0.2.9" and r.via[0].rport == 40000
    # and serializing the request itself writes the stamped Via back
    assert parse_message(req.serialize()).via[0].received == "192.0.2.9"


def test_make_request_and_builders() -> None:
    branch = new_branch()
    assert branch.startswith("z9hG4bK") and len(branch) > 10 and branch != new_branch()
    assert new_tag() != new_tag()
    assert new_call_id("example.com").endswith("@example.com")
    req = make_request("OPTIONS", "sip:bob@example.com", [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"),
        ("From", f"<sip:alice@example.com>;tag={new_tag()}"),
        ("To", "<sip:bob@example.com>"), ("Call-ID", new_call_id()), ("CSeq", "1 OPTIONS"),
        ("Max-Forwards", "70")])
    wire = req.serialize()
    assert wire.startswith(b"OPTIONS sip:bob@example.com SIP/2.0\r\n")
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    back = parse_message(wire)
    assert isinstance(back, Request) and back.via[0].branch == branch
    req2 = make_request("MESSAGE", SipUri("sip", "bob", host="example.com", port=5070), [
        ("Via", "SIP/2.0/UDP h;branch=z9hG4bK2"), ("From", "<sip:a@b>;tag=1"), ("To", "<sip:c@d>"),
        ("Call-ID", "c"), ("CSeq", "2 MESSAGE"), ("Content-Type", "text/plain")], b"hello")
    back2 = parse_message(req2.serialize())
    assert back2.body == b"hello" and str(back2.uri) == "sip:bob@example.com:5070"  # type: ignore[union-attr]


def test_make_ack() -> None:
    invite = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n",
                                          b"Max-Forwards: 70\r\nRoute: <sip:p1.example.com;lr>\r\n"))
    assert isinstance(invite, Request)
    resp = parse_message(make_response(invite, 486, to_tag="zz").serialize())
    assert isinstance(resp, Response)
    ack = parse_message(make_ack(invite, resp).serialize())
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == invite.uri and ack.via[0].branch == invite.via[0].branch
    assert ack.cseq.number == 1 and ack.cseq.method == "ACK"
    assert ack.to.tag == "zz" and ack.from_.tag == invite.from_.tag
    assert [str(r.uri) for r in ack.route] == ["sip:p1.example.com;lr"]


def test_mutation_then_serialize() -> None:
    m = parse_message(INVITE)
    assert m.max_forwards == 70
    m.headers.set("Max-Forwards", "69")
    assert m.max_forwards == 69                      # cache dropped on change
    m.headers.insert("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
    assert [v.host for v in m.via] == ["proxy.example.com", "client.atlanta.example.com"]
    m.headers.add("Record-Route", "<sip:proxy.example.com;lr>")
    m.headers.remove("Contact")
    m.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    back = parse_message(m.serialize())
    assert back.max_forwards == 69 and len(back.via) == 2 and back.contact == []
    assert back.headers.get("content-length") == str(len(m.body)) and back.body == m.body
    assert back.record_route[0].uri.host == "proxy.example.com"
    assert m.headers.pop_first("via") == "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1"
    assert len(m.via) == 1
    with pytest.raises(ValueError):
        m.headers.set("Subject", "evil\r\nInjected: yes")
    assert isinstance(m, Request)
    m.uri = "sip:carol@chicago.example.com"  # type: ignore[assignment]
    assert parse_message(m.serialize()).uri.user == "carol"  # type: ignore[union-attr]


def test_leading_crlf_and_trailing_octets_ignored() -> None:
    m = parse_message(b"\r\n\r\n" + INVITE + b"garbage after the body")
    assert m.body == b"v=0\n"


def test_bare_lf_tolerated() -> None:
    m = parse_message(INVITE.replace(b"\r\n", b"\n"))
    assert m.call_id == "3848276298220188511@atlanta.example.com" and m.body == b"v=0\n"


def test_contact_star() -> None:
    data = (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\n"
            b"CSeq: 3 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")
    m = parse_message(data)
    assert m.contact == [] and m.contact_wildcard and m.expires == 0


@pytest.mark.parametrize("data, status, reason", [
    (b"", 400, "no empty line"),
    (b"INVITE sip:a@b SIP/2.0\r\n", 400, "missing Call-ID"),
    (b"garbage\r\n\r\n", 400, "malformed Request-Line"),
    (b"SIP/2.0 99 Too Small\r\n\r\n", 400, "bad status code"),
    (b"SIP/3.0 200 OK\r\n\r\n", 505, "unsupported SIP version"),
    (INVITE.replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n", 1), 505, "unsupported SIP version"),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 99999999999"), 413, "body too large"),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: four"), 400, "malformed Content-Length"),
    (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400, "Max-Forwards too large"),
    (INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), 400, "invalid header name"),
    (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards 70"), 400, "header line without colon"),
    (INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: INVITE"), 400, "malformed CSeq"),
    (INVITE.replace(b"Call-ID: 3848", b"Call-ID: 38 48"), 400, "malformed Call-ID"),
    (INVITE.replace(b"application/sdp", b"sdp"), 400, "malformed Content-Type"),
    (INVITE.replace(b"SIP/2.0/TCP", b"SIP/2.0/TCP/X"), 400, "malformed Via"),
    (INVITE.replace(b"<sip:alice@client", b"<sip:alice@@client"), 400, "malformed SIP URI"),
    (INVITE.replace(b"sip:bob@biloxi.example.com SIP", b"sip:bob@biloxi.example.com;method=BYE SIP"),
     400, "method parameter"),
    (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\r0"), 400, "bare CR or LF"),
    (INVITE.replace(b"SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9", b",,,"),
     400, "empty Via header"),
    (INVITE.replace(b"Max-Forwards: 70", b"X-A: 1\nX-B: 2"), 400, "bare CR or LF"),
    (INVITE.replace(b"com SIP/2.0\r\n", b"com\r\n SIP/2.0\r\n", 1), 400, "whitespace at the start"),
])
def test_malformed(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status
    assert reason in info.value.reason


def test_bounds() -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 5))
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"Max-Forwards: 70\r\n", many))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"X-Long: " + b"a" * 70_000))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(b"A" * (MAX_BODY + 70_000))
    assert info.value.status == 513


def test_error_response_for_bad_request() -> None:
    data = INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    resp = error_response(data, info.value)
    assert resp is not None and resp.status == 400
    assert resp.reason == "CSeq method does not match Request-Line method"
    assert resp.call_id == "3848276298220188511@atlanta.example.com"
    ack = INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 BYE")
    with pytest.raises(SipParseError) as info:
        parse_message(ack)
    assert error_response(ack, info.value) is None     # never answer an ACK
    assert error_response(b"\x00\x01", SipParseError("x")) is None


def test_via_helpers() -> None:
    v = Via.parse("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKx;rport;maddr=224.2.0.1;ttl=16")
    assert v.host == "[2001:db8::1]" and v.port == 5060 and v.sent_by == ("[2001:db8::1]", 5060)
    assert v.wants_rport and v.rport is None and v.maddr == "224.2.0.1" and v.ttl == 16
    assert str(v) == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKx;rport;maddr=224.2.0.1;ttl=16"


def test_trace_record() -> None:
    from siplink.sip.message import trace_record

    req = parse_message(INVITE)
    rec = trace_record(req, "in", 12.5, local=("127.0.0.1", 5060), remote=("127.0.0.1", 5062), raw=INVITE)
    assert (rec.time, rec.direction, rec.protocol, rec.raw) == (12.5, "in", "sip", INVITE)
    assert rec.summary == "INVITE sip:bob@biloxi.example.com" and rec.remote == ("127.0.0.1", 5062)
    assert isinstance(req, Request)
    out = trace_record(make_response(req, 180, to_tag="t"), "out", 13.0)
    assert out.summary == "180 Ringing (1 INVITE)" and out.raw.startswith(b"SIP/2.0 180 Ringing\r\n")


def test_largest_body_accepted() -> None:
    body = b"x" * MAX_BODY
    m = parse_message(INVITE.replace(b"Content-Length: 4", b"Content-Length: %d" % MAX_BODY)[:-4] + body)
    assert len(m.body) == MAX_BODY
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"Content-Length: 4", b"Content-Length: %d" % (MAX_BODY + 1))[:-4]
                      + body + b"y")
    assert info.value.status == 413
