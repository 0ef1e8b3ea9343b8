"""Messages written by coturn and aioice (tests/data/stun_captures): decode to the expected
values, verify, and re-encode byte for byte."""

from __future__ import annotations

import hashlib

import pytest

from ice.stun import (
    Attr,
    Class,
    Method,
    check_fingerprint,
    check_integrity,
    decode,
    encode,
    long_term_key,
    short_term_key,
)
from ice.turn import decode_channel_data

COTURN_KEY = long_term_key("alice", "lab.test", "secret")
AIOICE_KEY = short_term_key("remote-password-0123456")
LOCAL, PEER, RELAYED, SERVER = (("127.0.0.1", 48479), ("127.0.0.1", 41316),
                                ("127.0.0.1", 54341), ("127.0.0.1", 41823))
SOFTWARE = "Coturn-4.6.1 'Gorst'"

CASES = {
    "binding_success": (Method.BINDING, Class.SUCCESS, None, {
        Attr.XOR_MAPPED_ADDRESS: LOCAL, Attr.MAPPED_ADDRESS: LOCAL,
        Attr.RESPONSE_ORIGIN: SERVER, Attr.SOFTWARE: SOFTWARE}),
    "allocate_401": (Method.ALLOCATE, Class.ERROR, None, {
        Attr.ERROR_CODE: (401, "Unauthorized"), Attr.NONCE: b"80bf740c4a698831",
        Attr.REALM: "lab.test", Attr.SOFTWARE: SOFTWARE}),
    "allocate_success": (Method.ALLOCATE, Class.SUCCESS, COTURN_KEY, {
        Attr.XOR_RELAYED_ADDRESS: RELAYED, Attr.XOR_MAPPED_ADDRESS: LOCAL, Attr.LIFETIME: 600,
        Attr.SOFTWARE: SOFTWARE}),
    "refresh_success": (Method.REFRESH, Class.SUCCESS, COTURN_KEY, {
        Attr.LIFETIME: 900, Attr.SOFTWARE: SOFTWARE}),
    "create_permission_success": (Method.CREATE_PERMISSION, Class.SUCCESS, COTURN_KEY, {
        Attr.SOFTWARE: SOFTWARE}),
    "data_indication": (Method.DATA, Class.INDICATION, None, {
        Attr.DATA: b"pong via data indication", Attr.XOR_PEER_ADDRESS: PEER,
        Attr.SOFTWARE: SOFTWARE}),
    "channel_bind_success": (Method.CHANNEL_BIND, Class.SUCCESS, COTURN_KEY, {
        Attr.SOFTWARE: SOFTWARE}),
    "refresh_release_success": (Method.REFRESH, Class.SUCCESS, COTURN_KEY, {
        Attr.LIFETIME: 0, Attr.SOFTWARE: SOFTWARE}),
    "aioice_binding_request": (Method.BINDING, Class.REQUEST, AIOICE_KEY, {
        Attr.USERNAME: "rmt1:lcl1", Attr.PRIORITY: 1853824767,
        Attr.ICE_CONTROLLING: 0x0102030405060708, Attr.USE_CANDIDATE: True}),
    "aioice_binding_success_ipv6": (Method.BINDING, Class.SUCCESS, AIOICE_KEY, {
        Attr.XOR_MAPPED_ADDRESS: ("2001:db8::77", 50123)}),
    "aioice_binding_error_487": (Method.BINDING, Class.ERROR, AIOICE_KEY, {
        Attr.ERROR_CODE: (487, "Role Conflict")}),
}


@pytest.fixture(scope="module")
def captures(corpus_dir):
    return {p.stem: p.read_bytes() for p in (corpus_dir / "stun_captures").glob("*.bin")}


def test_index_lists_every_capture(captures, corpus_dir):
    index = (corpus_dir / "stun_captures" / "INDEX.md").read_text()
    assert set(captures) == set(CASES) | {"channel_data"}
    assert all(f"{name}.bin" in index for name in captures)


@pytest.mark.parametrize("name", sorted(CASES))
def test_capture_decodes_verifies_and_reencodes(captures, name):
    method, cls, key, expected = CASES[name]
    raw = captures[name]
    msg = decode(raw)
    assert (msg.method, msg.cls) == (method, cls)
    got = {k: v for k, v in msg.attributes.items()
           if k not in (Attr.MESSAGE_INTEGRITY, Attr.FINGERPRINT)}
    assert got == expected
    assert check_fingerprint(raw)
    if key is not None:
        assert check_integrity(raw, key)
        assert not check_integrity(raw, hashlib.md5(b"alice:lab.test:wrong").digest())
    else:
        assert Attr.MESSAGE_INTEGRITY not in msg
    assert encode(msg, key=key) == raw


def test_coturn_channel_data(captures):
    assert decode_channel_data(captures["channel_data"]) == (0x4000, b"pong via channel")
