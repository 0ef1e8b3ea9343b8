"""SIP/SIPS/tel URIs: parsing, escaping, serializing and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from siplink.sip.uri import SipParseError, SipUri, check_uri


def test_full_sip_uri() -> None:
    u = SipUri.parse("sips:alice:secretword@atlanta.example.com:5061;transport=TCP;lr?subject=project%20x&priority=urgent")
    assert u.scheme == "sips" and u.user == "alice" and u.password == "secretword"
    assert u.host == "atlanta.example.com" and u.port == 5061
    assert u.host_port == ("atlanta.example.com", 5061)
    assert u.params == {"transport": "TCP", "lr": None}
    assert u.headers == {"subject": "project x", "priority": "urgent"}
    assert str(u) == "sips:alice:secretword@atlanta.example.com:5061;transport=TCP;lr?subject=project%20x&priority=urgent"
    assert u.is_sip


def test_ipv6_and_ports() -> None:
    u = SipUri.parse("sip:[2001:db8::10]:5070")
    assert u.host == "[2001:db8::10]" and u.port == 5070 and u.user is None
    assert SipUri.parse("sip:[::1]").host_port == ("[::1]", None)
    for bad in ("sip:[2001:db8::zz]", "sip:[1:2:3]", "sip:host:65536", "sip:host:", "sip:[::1"):
        with pytest.raises(SipParseError):
            SipUri.parse(bad)


def test_escaping_is_undone_once() -> None:
    u = SipUri.parse("sip:%61lice%20smith@example.com;%6C%72;n%61me=v%61lue%25%34%31")
    assert u.user == "alice smith"
    assert u.params == {"lr": None, "name": "value%41"}
    assert str(u) == "sip:alice%20smith@example.com;lr;name=value%2541"
    assert SipUri.parse(str(u)) == u
    nul = SipUri.parse("sip:null-%00-null@example.com")
    assert nul.user == "null-\x00-null" and "%00" in str(nul)


def test_user_with_semicolons_and_password() -> None:
    u = SipUri.parse("sip:user;par=u%40example.net@example.com")
    assert u.user == "user;par=u@example.net" and u.params == {}
    u2 = SipUri.parse("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert u2.user == "+1-212-555-1212" and u2.password == "1234" and u2.params == {"user": "phone"}
    assert SipUri.parse("sip:u:@h").password == ""


def test_tel_and_other_schemes() -> None:
    t = SipUri.parse("tel:+1-201-555-0123;phone-context=example.com")
    assert t.scheme == "tel" and t.user == "+1-201-555-0123"
    assert t.params == {"phone-context": "example.com"} and not t.is_sip
    assert str(t) == "tel:+1-201-555-0123;phone-context=example.com"
    assert SipUri.parse("tel:7042;phone-context=example.com").user == "7042"
    h = SipUri.parse("http://www.example.com")
    assert (h.scheme, h.opaque, str(h)) == ("http", "//www.example.com", "http://www.example.com")
    assert SipUri.parse("SIP:a@B").scheme == "sip"


@pytest.mark.parametrize("bad", [
    "", "sip:", "sip:@host", "sip:user@", "sip:us er@host", "<sip:a@b>", "sip:a@b;;x",
    "sip:a@b?", "sip:a@-", "sip:a@b c", "1sip:a@b", "sip:a@b;p=%G1", "tel:", "tel:abc+",
    "http:<x>", "sip:a@b\x00",
])
def test_malformed(bad: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(bad)
    with pytest.raises(SipParseError):
        check_uri(bad)


# RFC 3261 §19.1.4: these are equivalent ...
EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
]
# ... and these are not.
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
]


@pytest.mark.parametrize("a, b", EQUAL)
def test_equal_per_rfc3261(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert ua == ub and ub == ua
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_different_per_rfc3261(a: str, b: str) -> None:
    assert SipUri.parse(a) != SipUri.parse(b)
    assert SipUri.parse(b) != SipUri.parse(a)


def test_copy_and_build() -> None:
    u = SipUri("sip", "bob", host="example.com", port=5062, params={"transport": "tcp"})
    assert str(u) == "sip:bob@example.com:5062;transport=tcp"
    c = u.copy()
    c.params["lr"] = None
    assert "lr" not in u.params and c == u   # lr is not a must-match param: ignored
    assert SipUri.parse(str(c)).params == {"transport": "tcp", "lr": None}
    assert repr(u) == "SipUri('sip:bob@example.com:5062;transport=tcp')"
