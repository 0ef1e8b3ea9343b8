"""Messages produced by aioice (an independent STUN implementation) decode byte for byte,
and what we encode aioice parses and verifies."""

from __future__ import annotations

import pytest
from aioice import stun as astun

from ice.stun import Attr, Class, Message, Method, check_integrity, decode, encode

KEY = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("0123456789abcdef01234567")

_CLASS = {Class.REQUEST: astun.Class.REQUEST, Class.INDICATION: astun.Class.INDICATION,
          Class.SUCCESS: astun.Class.RESPONSE, Class.ERROR: astun.Class.ERROR}

CASES = [
    (Method.BINDING, Class.REQUEST, [
        ("USERNAME", Attr.USERNAME, "abcd:efgh"),
        ("PRIORITY", Attr.PRIORITY, 1853824767),
        ("ICE-CONTROLLING", Attr.ICE_CONTROLLING, 0x1234567890ABCDEF),
        ("USE-CANDIDATE", Attr.USE_CANDIDATE, None),
    ]),
    (Method.BINDING, Class.SUCCESS, [
        ("XOR-MAPPED-ADDRESS", Attr.XOR_MAPPED_ADDRESS, ("192.0.2.33", 40000)),
        ("MAPPED-ADDRESS", Attr.MAPPED_ADDRESS, ("2001:db8::5", 1)),
        ("SOFTWARE", Attr.SOFTWARE, "aioice"),
    ]),
    (Method.BINDING, Class.ERROR, [
        ("ERROR-CODE", Attr.ERROR_CODE, (487, "Role Conflict")),
    ]),
    (Method.ALLOCATE, Class.REQUEST, [
        ("REQUESTED-TRANSPORT", Attr.REQUESTED_TRANSPORT, 0x11000000),
        ("LIFETIME", Attr.LIFETIME, 600),
        ("USERNAME", Attr.USERNAME, "alice"),
        ("REALM", Attr.REALM, "lab.test"),
        ("NONCE", Attr.NONCE, b"obMatJos2AAABadc"),
    ]),
    (Method.ALLOCATE, Class.SUCCESS, [
        ("XOR-RELAYED-ADDRESS", Attr.XOR_RELAYED_ADDRESS, ("127.0.0.1", 50001)),
        ("XOR-MAPPED-ADDRESS", Attr.XOR_MAPPED_ADDRESS, ("::1", 40000)),
        ("LIFETIME", Attr.LIFETIME, 600),
    ]),
    (Method.CHANNEL_BIND, Class.REQUEST, [
        ("CHANNEL-NUMBER", Attr.CHANNEL_NUMBER, 0x4000),
        ("XOR-PEER-ADDRESS", Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 9999)),
    ]),
    (Method.SEND, Class.INDICATION, [
        ("XOR-PEER-ADDRESS", Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 9999)),
        ("DATA", Attr.DATA, b"hello, relay!"),
    ]),
]


def _ours_value(attr: Attr, aio_value: object) -> object:
    if attr == Attr.USE_CANDIDATE:
        return True
    if attr == Attr.REQUESTED_TRANSPORT:
        return int(aio_value) >> 24  # aioice packs the whole 32-bit field
    return aio_value


@pytest.mark.parametrize("method,cls,attrs", CASES, ids=lambda c: getattr(c, "name", ""))
@pytest.mark.parametrize("with_key", [False, True])
def test_aioice_bytes_decode_and_reencode_identically(method, cls, attrs, with_key):
    msg = astun.Message(astun.Method(int(method)), _CLASS[cls], TID,
                        {name: val for name, _, val in attrs})
    if with_key:
        msg.add_message_integrity(KEY)
    else:
        msg.add_fingerprint()
    raw = bytes(msg)
    ours = decode(raw)
    assert (ours.method, ours.cls, ours.transaction_id) == (method, cls, TID)
    expected = {a: _ours_value(a, val) for _, a, val in attrs}
    got = {k: x for k, x in ours.attributes.items()
           if k not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)}
    assert got == expected
    assert encode(ours, key=KEY if with_key else None) == raw
    if with_key:
        assert check_integrity(raw, KEY)


@pytest.mark.parametrize("method,cls,attrs",
                         CASES, ids=lambda c: getattr(c, "name", ""))
def test_our_bytes_parse_and_verify_in_aioice(method, cls, attrs):
    msg = Message(method, cls, TID, {a: _ours_value(a, val) for _, a, val in attrs})
    raw = encode(msg, key=KEY)
    parsed = astun.parse_message(raw)
    assert parsed.check_message_integrity(KEY)
    assert parsed.transaction_id == TID
    for name, _, val in attrs:
        assert parsed.attributes[name] == val
    assert "FINGERPRINT" in parsed.attributes


def test_channel_number_wire_form_matches_rfc():
    # RFC 8656 §18.1: 16-bit number followed by 16 bits RFFU = 0
    raw = encode(Message(Method.CHANNEL_BIND, Class.REQUEST, TID,
                         {Attr.CHANNEL_NUMBER: 0x4ABC}), fingerprint=False)
    assert raw[20:] == bytes.fromhex("000c0004 4abc0000")
    assert decode(raw)[Attr.CHANNEL_NUMBER] == 0x4ABC
