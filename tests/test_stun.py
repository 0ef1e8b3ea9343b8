"""STUN codec (RFC 8489): RFC 5769 vectors, every attribute, fuzzing, aioice interop."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ice import stun
from ice.stun import (
    Attr,
    Class,
    Message,
    Method,
    PasswordAlgorithm,
    StunDecodeError,
    check_fingerprint,
    check_integrity,
    decode,
    decode_verified,
    encode,
    error_420,
    is_stun,
    long_term_key,
    short_term_key,
    verify,
)

SHORT_PW = "VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


@pytest.fixture
def v(corpus_dir):
    d = corpus_dir / "rfc5769"
    return {p.stem: p.read_bytes() for p in d.glob("*.bin")}


# ---- RFC 5769 -------------------------------------------------------------------------------

def test_rfc5769_sample_request(v):
    data = v["sample_request"]
    m = decode(data)
    assert (m.method, m.cls, m.transaction_id) == (Method.BINDING, Class.REQUEST, TID)
    assert list(m.attributes) == [Attr.SOFTWARE, Attr.PRIORITY, Attr.ICE_CONTROLLED,
                                  Attr.USERNAME, Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT]
    assert m[Attr.SOFTWARE] == "STUN test client"
    assert m[Attr.PRIORITY] == 0x6E0001FF
    assert m[Attr.ICE_CONTROLLED] == 0x932FF9B151263B36
    assert m[Attr.USERNAME] == "evtj:h6vY"
    assert m[Attr.MESSAGE_INTEGRITY].hex() == "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    assert m[Attr.FINGERPRINT] == 0xE57A3BCF
    assert check_integrity(data, short_term_key(SHORT_PW))
    assert not check_integrity(data, short_term_key("wrong"))
    assert check_fingerprint(data)
    assert verify(data, short_term_key(SHORT_PW), require_fingerprint=True) is None


def test_rfc5769_ipv4_response(v):
    data = v["sample_ipv4_response"]
    m = decode(data)
    assert (m.method, m.cls) == (Method.BINDING, Class.SUCCESS)
    assert m[Attr.SOFTWARE] == "test vector"
    assert m.address(Attr.XOR_MAPPED_ADDRESS) == ("192.0.2.1", 32853)
    assert m[Attr.MESSAGE_INTEGRITY].hex() == "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    assert m[Attr.FINGERPRINT] == 0xC07D4C96
    assert check_integrity(data, short_term_key(SHORT_PW)) and check_fingerprint(data)


def test_rfc5769_ipv6_response(v):
    data = v["sample_ipv6_response"]
    m = decode(data)
    assert m.address(Attr.XOR_MAPPED_ADDRESS) == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert m[Attr.MESSAGE_INTEGRITY].hex() == "a382954e4be67bf11784c97c8292c275bfe3ed41"
    assert m[Attr.FINGERPRINT] == 0xC8FB0B4C
    assert check_integrity(data, short_term_key(SHORT_PW)) and check_fingerprint(data)


def test_rfc5769_long_term(v):
    data = v["sample_request_long_term"]
    m = decode(data)
    assert m.transaction_id.hex() == "78ad3433c6ad72c029da412e"
    assert m[Attr.USERNAME] == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert m[Attr.NONCE] == b"f//499k954d6OL34oL9FSTvy64sA"
    assert m[Attr.REALM] == "example.org"
    assert Attr.FINGERPRINT not in m
    key = long_term_key(m[Attr.USERNAME], "example.org", "The\u00adM\u00aatr\u2168")
    assert key.hex() == "e8ca7ad59d5eb0518e312911d2dab2a9"
    assert check_integrity(data, key)
    assert not check_fingerprint(data)
    # zero padding here, so re-encoding reproduces the vector byte for byte
    assert encode(m, key=key, fingerprint=False) == data


def test_rfc5769_reencode_with_zero_padding_differs_only_in_padding(v):
    # vectors 2.1-2.3 pad with spaces: the same attributes re-encoded verify with the key
    for name in ("sample_request", "sample_ipv4_response", "sample_ipv6_response"):
        m = decode(v[name])
        out = encode(m, key=short_term_key(SHORT_PW))
        assert len(out) == len(v[name])
        assert decode(out) == decode(out)
        assert check_integrity(out, short_term_key(SHORT_PW)) and check_fingerprint(out)
        assert {k: x for k, x in decode(out).attributes.items()
                if k not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)} == \
               {k: x for k, x in m.attributes.items()
                if k not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)}


def test_tampered_vector_is_dropped(v):
    data = bytearray(v["sample_request"])
    data[30] ^= 1  # inside SOFTWARE
    with pytest.raises(StunDecodeError, match="FINGERPRINT"):
        decode(bytes(data))
    assert decode_verified(bytes(data), short_term_key(SHORT_PW)) is None
    # tampered and fingerprint recomputed: integrity catches it
    m = decode(v["sample_request"])
    m.attributes[Attr.SOFTWARE] = "STUN test clienT"
    forged = encode(m, key=b"not the key")
    assert verify(forged, short_term_key(SHORT_PW)) == "MESSAGE-INTEGRITY mismatch"
    assert decode_verified(forged, short_term_key(SHORT_PW)) is None
    no_mi = encode(m)
    assert verify(no_mi, short_term_key(SHORT_PW)) == "MESSAGE-INTEGRITY missing"


# ---- every attribute round-trips --------------------------------------------------------------

ALL_VALUES: dict[Attr, object] = {
    Attr.MAPPED_ADDRESS: ("198.51.100.4", 5060),
    Attr.USERNAME: "alice:bob",
    Attr.ERROR_CODE: (438, "Stale Nonce"),
    Attr.UNKNOWN_ATTRIBUTES: (0x0031, 0x7FFF, 0x0002),
    Attr.CHANNEL_NUMBER: 0x4001,
    Attr.LIFETIME: 600,
    Attr.XOR_PEER_ADDRESS: ("2001:db8::1", 9),
    Attr.DATA: b"\x80\x00hello",
    Attr.REALM: "lab.test",
    Attr.NONCE: b"obMatJos2AAAB",
    Attr.XOR_RELAYED_ADDRESS: ("127.0.0.1", 50000),
    Attr.REQUESTED_ADDRESS_FAMILY: 0x02,
    Attr.EVEN_PORT: True,
    Attr.REQUESTED_TRANSPORT: 17,
    Attr.DONT_FRAGMENT: True,
    Attr.PASSWORD_ALGORITHM: (PasswordAlgorithm.SHA256, b""),
    Attr.USERHASH: bytes(range(32)),
    Attr.XOR_MAPPED_ADDRESS: ("203.0.113.9", 65535),
    Attr.RESERVATION_TOKEN: b"12345678",
    Attr.PRIORITY: 0x7E0000FF,
    Attr.USE_CANDIDATE: True,
    Attr.PASSWORD_ALGORITHMS: ((1, b""), (2, b""), (0x77, b"abc")),
    Attr.ALTERNATE_DOMAIN: "turn.example",
    Attr.SOFTWARE: "siplink \u00e9",
    Attr.ALTERNATE_SERVER: ("::1", 3478),
    Attr.ICE_CONTROLLED: 2**64 - 1,
    Attr.ICE_CONTROLLING: 1,
    Attr.RESPONSE_ORIGIN: ("10.0.0.1", 3478),
    Attr.OTHER_ADDRESS: ("10.0.0.2", 3479),
}


def test_every_attribute_is_covered():
    skip = {Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT}
    assert set(Attr) - skip == set(ALL_VALUES)


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("cls", list(Class))
def test_round_trip_all_attributes(method, cls):
    m = Message(method, cls, stun.new_transaction_id(), dict(ALL_VALUES))
    data = encode(m, key=b"k")
    assert is_stun(data)
    out = decode(data)
    assert (out.method, out.cls, out.transaction_id) == (method, cls, m.transaction_id)
    assert {k: x for k, x in out.attributes.items()
            if k not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)} == ALL_VALUES
    assert list(out.attributes)[-2:] == [Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT]
    assert check_integrity(data, b"k") and check_fingerprint(data)
    assert encode(out, key=b"k") == data


def test_integrity_sha256():
    m = Message(Method.BINDING, Class.REQUEST, TID, {Attr.USERNAME: "a:b"})
    data = encode(m, key=b"secret", integrity_sha256=True)
    out = decode(data)
    assert Attr.MESSAGE_INTEGRITY_SHA256 in out and Attr.MESSAGE_INTEGRITY not in out
    assert len(out[Attr.MESSAGE_INTEGRITY_SHA256]) == 32
    assert check_integrity(data, b"secret") and not check_integrity(data, b"other")
    # independent HMAC: header length covers up to the SHA256 attribute
    body = data[20:20 + 8]  # USERNAME: 4 + 3 + 1 padding
    hdr = data[:2] + (8 + 36).to_bytes(2, "big") + data[4:20]
    assert hmac.new(b"secret", hdr + body, hashlib.sha256).digest() == \
        out[Attr.MESSAGE_INTEGRITY_SHA256]


def test_without_fingerprint_or_key():
    m = Message(Method.BINDING, Class.REQUEST, TID)
    assert encode(m, fingerprint=False) == bytes.fromhex("000100002112a442") + TID
    assert len(encode(m)) == 28
    assert not check_integrity(encode(m), b"k")


def test_attributes_after_integrity_ignored_and_duplicates_first_wins():
    m = Message(Method.BINDING, Class.SUCCESS, TID, {Attr.SOFTWARE: "a"})
    data = encode(m, key=b"k", fingerprint=False)
    extra = bytes.fromhex("80220004") + b"evil" + bytes.fromhex("00240004") + b"\x00\x00\x00\x01"
    forged = data[:2] + (len(data) - 20 + len(extra)).to_bytes(2, "big") + data[4:] + extra
    out = decode(forged)
    assert out[Attr.SOFTWARE] == "a" and Attr.PRIORITY not in out
    dup = data[:2] + (len(data) - 20 + 8).to_bytes(2, "big") + data[4:20] + \
        bytes.fromhex("80220004") + b"bbbb" + data[20:]
    assert decode(dup)[Attr.SOFTWARE] == "bbbb"


# ---- unknown attributes and 420 ------------------------------------------------------------

def test_unknown_comprehension_required_gives_420():
    m = Message(Method.BINDING, Class.REQUEST, TID,
                {0x0031: b"x", 0xC001: b"opt", Attr.USERNAME: "u", 0x0040: b""})
    out = decode(encode(m))
    assert out.unknown_required == (0x0031, 0x0040)
    assert out[0xC001] == b"opt" and out[0x0031] == b"x"
    resp = error_420(out)
    assert resp is not None
    wire = decode(encode(resp))
    assert wire.cls == Class.ERROR and wire.error_code == (420, "Unknown Attribute")
    assert wire[Attr.UNKNOWN_ATTRIBUTES] == (0x0031, 0x0040)
    assert wire.transaction_id == TID
    assert error_420(decode(encode(Message(Method.BINDING, Class.REQUEST, TID,
                                           {0xC001: b"o"})))) is None


# ---- malformed input --------------------------------------------------------------------------

@pytest.mark.parametrize("data,reason", [
    (b"", "shorter"),
    (b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(11), "shorter"),
    (b"\x40\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), "first two bits"),
    (b"\x00\x01\x00\x00\x21\x12\xa4\x43" + bytes(12), "cookie"),
    (b"\x00\x01\x00\x02\x21\x12\xa4\x42" + bytes(14), "multiple of 4"),
    (b"\x00\x01\x00\x04\x21\x12\xa4\x42" + bytes(12), "does not match"),
    (b"\x00\x02\x00\x00\x21\x12\xa4\x42" + bytes(12), "unknown method"),
    (b"\x00\x01\x00\x04\x21\x12\xa4\x42" + bytes(12) + b"\x00\x06\x00\x05", "overruns"),
    (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x06\x00\x03\xff\xfe\xfd\x00",
     "bad attribute value"),
    (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x20\x00\x04\x00\x03\x00\x00",
     "XOR address"),
    (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x09\x00\x04\x00\x00\x02\x00",
     "ERROR-CODE"),
    (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x24\x00\x02\x00\x00\x00\x00",
     "32-bit"),
    (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x08\x00\x04\x00\x00\x00\x00",
     "MESSAGE-INTEGRITY"),
])
def test_malformed(data, reason):
    with pytest.raises(StunDecodeError) as e:
        decode(data)
    assert reason in e.value.reason


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_stun_decode_error(data):
    try:
        decode(data)
    except StunDecodeError:
        pass


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([int(a) for a in Attr] + [0x31, 0x8031]),
                          st.binary(max_size=24)), max_size=8),
       st.sampled_from([0x0001, 0x0111, 0x0103, 0x0016, 0x0009]))
def test_structured_garbage_only_raises_stun_decode_error(attrs, mtype):
    body = b"".join(t.to_bytes(2, "big") + len(b).to_bytes(2, "big") + b + bytes(-len(b) % 4)
                    for t, b in attrs)
    data = mtype.to_bytes(2, "big") + len(body).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + \
        bytes(12) + body
    try:
        m = decode(data)
    except StunDecodeError:
        return
    # what decodes re-encodes and decodes to the same values
    again = decode(encode(m, fingerprint=False))
    keep = {k: x for k, x in m.attributes.items()
            if k not in (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT)}
    assert {k: x for k, x in again.attributes.items() if k in keep} == keep


def test_is_stun_first_byte_rules():
    data = encode(Message(Method.BINDING, Class.REQUEST, TID))
    assert is_stun(data)
    assert not is_stun(b"\x80" + data[1:])          # RTP
    assert not is_stun(b"\x40\x00\x00\x04abcd")      # ChannelData
    assert not is_stun(data[:19])
    assert not is_stun(data[:4] + b"\x00\x00\x00\x00" + data[8:])


def test_saslprep():
    assert stun.saslprep("The\u00adM\u00aatr\u2168") == "TheMatrIX"
    assert stun.saslprep("user\u00a0name") == "user name"
    with pytest.raises(ValueError):
        stun.saslprep("a\u0007b")
    assert long_term_key("alice", "lab.test", "secret") == \
        hashlib.md5(b"alice:lab.test:secret").digest()
    assert long_term_key("alice", "lab.test", "secret", PasswordAlgorithm.SHA256) == \
        hashlib.sha256(b"alice:lab.test:secret").digest()
    assert stun.userhash("alice", "lab.test") == hashlib.sha256(b"alice:lab.test").digest()


def test_dropped_messages_are_logged(v):
    from twisted.logger import capturedLogs

    data = v["sample_request"]
    with capturedLogs() as events:
        assert decode_verified(data, b"wrong key") is None
        assert decode_verified(data[:-1], short_term_key(SHORT_PW)) is None
        assert decode_verified(data, short_term_key(SHORT_PW)) is not None
    problems = [e.get("problem") or e.get("reason") for e in events]
    assert problems == ["MESSAGE-INTEGRITY mismatch", "length does not match the datagram"]
    assert "Binding request b7e7a701" in events[0]["summary"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    (Attr.USERNAME, "u:v"), (Attr.SOFTWARE, "x"), (Attr.PRIORITY, 5),
    (Attr.MESSAGE_INTEGRITY, bytes(20)), (Attr.MESSAGE_INTEGRITY_SHA256, bytes(32)),
    (0x7001, b"abc")]), max_size=6), st.booleans())
def test_integrity_check_same_after_decode_or_on_copy(attrs, sha256):
    """check_integrity reuses decode()'s positions for the same object: same answers."""
    m = Message(Method.BINDING, Class.REQUEST, TID)
    data = encode(m, key=b"k", integrity_sha256=sha256)
    # splice raw attributes (including stray integrity ones) before the real integrity
    extra = b"".join(stun._attr_hdr.pack(t, len(stun._pack_bytes(v, TID)
                                                 if not isinstance(v, int) else b"1234"))
                     + (stun._pack_bytes(v, TID) if not isinstance(v, int) else b"1234")
                     + bytes(-len(v if not isinstance(v, int) else b"1234") % 4)
                     for t, v in attrs)
    spliced = data[:2] + (len(data) - 20 + len(extra)).to_bytes(2, "big") + data[4:20] + \
        extra + data[20:]
    for blob in (data, spliced):
        copy = bytes(bytearray(blob))
        expect = (check_integrity(copy, b"k"), verify(copy, b"k"))
        try:
            decode(blob)
        except StunDecodeError:
            continue
        assert (check_integrity(blob, b"k"), verify(blob, b"k")) == expect
    assert check_integrity(data, b"k")
