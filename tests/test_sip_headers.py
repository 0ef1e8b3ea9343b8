"""Structured header values: name-addr, Via, CSeq, auth challenges/credentials, lists."""

from __future__ import annotations

import pytest

from siplink.sip.headers import (
    AuthenticateHeader,
    AuthorizationHeader,
    CSeq,
    NameAddr,
    SipParseError,
    Via,
    parse_auth_params,
    parse_params,
    split_list,
)


@pytest.mark.parametrize("text, display, uri, params", [
    ('"Alice Liddell" <sip:alice@example.com>;tag=1234', "Alice Liddell", "sip:alice@example.com", {"tag": "1234"}),
    ("Bob <sip:bob@example.com>", "Bob", "sip:bob@example.com", {}),
    ("<sip:carol@example.com;transport=tcp>;expires=60;q=0.5", None, "sip:carol@example.com;transport=tcp",
     {"expires": "60", "q": "0.5"}),
    ("sip:dave@example.com;tag=77", None, "sip:dave@example.com", {"tag": "77"}),
    ("sip:dave@example.com ; tag = 77", None, "sip:dave@example.com", {"tag": "77"}),
    ('"" <sip:e@example.com>', "", "sip:e@example.com", {}),
    ('"a \\"quoted\\" \\\\ name" <tel:+15551234>', 'a "quoted" \\ name', "tel:+15551234", {}),
    ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com", {"tag": "323"}),
    ("<sip:[2001:db8::1]:5060>;received=[2001:db8::2]", None, "sip:[2001:db8::1]:5060",
     {"received": "[2001:db8::2]"}),
    ('<sip:a@b>;note="x;y, z"', None, "sip:a@b", {"note": '"x;y, z"'}),
])
def test_name_addr(text: str, display: str | None, uri: str, params: dict[str, str | None]) -> None:
    a = NameAddr.parse(text)
    assert a.display_name == display and str(a.uri) == uri and a.params == params
    again = NameAddr.parse(str(a))
    assert again == a and again.display_name == display


@pytest.mark.parametrize("bad, reason", [
    ('"unterminated <sip:a@b>', "unterminated quoted string"),
    ("Bell, Alexander <sip:a@b>", "invalid display name"),
    ("< sip:a@b >", "whitespace inside <>"),
    ("<sip:a@b", "missing >"),
    ("sip:a@b?x=y", "must be enclosed"),
    ("<sip:a@b>;;", "malformed parameter"),
    ("<sip:a@b> junk", "malformed parameter"),
    ("", "empty address"),
    ('"name" sip:a@b', "display name without <URI>"),
])
def test_name_addr_errors(bad: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        NameAddr.parse(bad)
    assert reason in info.value.reason


def test_name_addr_tag_and_build() -> None:
    a = NameAddr.parse("<sip:bob@example.com>")
    assert a.tag is None
    a.tag = "xyz"
    assert str(a) == "<sip:bob@example.com>;tag=xyz"
    a.tag = None
    assert str(a) == "<sip:bob@example.com>"
    b = NameAddr.parse("sip:bob@example.com")
    assert str(b) == "sip:bob@example.com"
    assert str(NameAddr.parse('"Bob Smith, Jr." <sip:bob@example.com>')) == '"Bob Smith, Jr." <sip:bob@example.com>'


def test_via() -> None:
    v = Via.parse("SIP / 2.0 / tcp  host.example.com : 5070 ; branch = z9hG4bKx ; received=192.0.2.1;rport=5071")
    assert (v.transport, v.host, v.port) == ("TCP", "host.example.com", 5070)
    assert v.branch == "z9hG4bKx" and v.received == "192.0.2.1" and v.rport == 5071
    assert v.maddr is None and v.ttl is None and not v.modified
    v.received = "192.0.2.2"
    assert v.modified and str(v) == "SIP/2.0/TCP host.example.com:5070;branch=z9hG4bKx;received=192.0.2.2;rport=5071"
    new = Via("udp", "10.0.0.1", 5060, {"branch": "z9hG4bK1", "rport": None})
    assert str(new) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport" and new.wants_rport
    for bad in ("SIP/2.0/UDP", "SIP/2.0 UDP host", "SIP/3.0/UDP host", "HTTP/2.0/UDP host",
                "SIP/2.0/UDP host;ttl=300", "SIP/2.0/UDP host;rport=x", "SIP/2.0/UDP host:99999"):
        with pytest.raises(SipParseError):
            Via.parse(bad)


def test_cseq() -> None:
    assert CSeq.parse("0009 INVITE") == CSeq(9, "INVITE")
    assert CSeq.parse("4294967295 BYE").number == 4294967295
    assert str(CSeq(3, "ACK")) == "3 ACK"
    for bad in ("4294967296 INVITE", "1", "x INVITE", "-1 INVITE", "1 IN VITE"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)


def test_challenge_and_credentials() -> None:
    c = AuthenticateHeader.parse('Digest realm="atlanta.example.com", domain="sip:ss1.example.com", '
                        'qop="auth,auth-int", nonce="f84f1cec41e6cbe5aea9c8e88d359", '
                        'opaque="", stale=FALSE, algorithm=MD5')
    assert c.scheme == "Digest"
    assert c.params == {"realm": "atlanta.example.com", "domain": "sip:ss1.example.com",
                        "qop": "auth,auth-int", "nonce": "f84f1cec41e6cbe5aea9c8e88d359",
                        "opaque": "", "stale": "FALSE", "algorithm": "MD5"}
    assert AuthenticateHeader.parse(str(c)) == c and c.get("REALM") == "atlanta.example.com"
    assert 'qop="auth,auth-int"' in str(c)
    cr = AuthorizationHeader.parse('Digest username="bob", realm="biloxi.com", nonce="dcd98b", '
                           'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
                           'response="6629fae49393a05397450978507c4ef1"')
    assert isinstance(cr, AuthorizationHeader) and cr.params["nc"] == "00000001"
    assert "qop=auth," in str(cr) and "nc=00000001" in str(cr)
    assert AuthorizationHeader.parse(str(cr)) == cr
    assert AuthenticateHeader.parse("NoOneKnowsThisScheme opaque-data=here").params == {"opaque-data": "here"}
    assert AuthenticateHeader.parse("Basic dXNlcjpwYXNz").params == {"": "dXNlcjpwYXNz"}
    for bad in ('Digest realm="x', "Digest realm=x,,", "", "Digest =x"):
        with pytest.raises(SipParseError):
            AuthenticateHeader.parse(bad)
    assert parse_auth_params('a="x\\"y", b=2') == {"a": 'x"y', "b": "2"}


def test_params_and_lists() -> None:
    assert parse_params(";a=1;B;c=\"q;\"") == {"a": "1", "b": None, "c": '"q;"'}
    assert parse_params(" ; a = 1 ") == {"a": "1"}
    with pytest.raises(SipParseError):
        parse_params(";a=1;" + ";x" * 100)
    assert split_list('a, "b, c" <sip:d>, <sip:e,f@g>,h') == ['a', '"b, c" <sip:d>', "<sip:e,f@g>", "h"]
    assert split_list("x") == ["x"] and split_list(" a ,, b ") == ["a", "b"]
