"""Property tests for the SIP codec: round trips of generated messages, and hostile input
(random bytes, mutations of corpus messages) only ever raising SipParseError."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siplink.sip.message import (
    Message,
    Request,
    Response,
    SipParseError,
    StreamParser,
    make_request,
    make_response,
    parse_message,
)

DATA = Path(__file__).resolve().parent / "data"
CORPUS = [p.read_bytes() for p in sorted((DATA / "rfc4475").glob("*.dat"))] + [
    p.read_bytes() for p in sorted((DATA / "sip").glob("*.msg"))]

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                min_size=1, max_size=12)
HOST = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)
USER = st.from_regex(r"[A-Za-z0-9_.!~*'()&=+$,;?/-]{1,12}", fullmatch=True)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF,
                                       blacklist_characters="\x7f,"), max_size=40).map(str.strip)
RESERVED = {"via", "from", "to", "call-id", "cseq", "content-length", "contact", "max-forwards",
            "expires", "content-type", "date", "route", "record-route", "i", "f", "t", "v", "l",
            "m", "c", "r", "b", "e", "k", "o", "s", "u", "x", "y", "a", "j", "d"}

# SIPLINK_FUZZ_EXAMPLES=20000 for a long run; the default keeps the suite fast
FUZZ = settings(max_examples=int(os.environ.get("SIPLINK_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(TOKEN)
    uri = f"sip:{draw(USER)}@{draw(HOST)}"
    port = draw(st.none() | st.integers(1, 65535))
    if port is not None:
        uri += f":{port}"
    branch = "z9hG4bK" + draw(TOKEN)
    headers = [
        ("Via", f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS']))} {draw(HOST)};branch={branch}"),
        ("From", f'"{draw(VALUE).replace(chr(92), "").replace(chr(34), "")}" <sip:{draw(USER)}@{draw(HOST)}>;tag={draw(TOKEN)}'),
        ("To", f"<sip:{draw(USER)}@{draw(HOST)}>"),
        ("Call-ID", draw(TOKEN) + "@" + draw(HOST)),
        ("CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    extra = draw(st.lists(st.tuples(TOKEN.filter(lambda n: n.lower() not in RESERVED), VALUE),
                          max_size=8))
    headers += extra
    body = draw(st.binary(max_size=300))
    return make_request(method, uri, headers, body)


def same(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    assert a.headers.items() == b.headers.items()
    assert a.body == b.body
    if isinstance(a, Request) and isinstance(b, Request):
        assert (a.method, a.uri) == (b.method, b.uri)
    assert (a.call_id, a.cseq, a.via[0].branch, a.from_.tag) == (b.call_id, b.cseq, b.via[0].branch, b.from_.tag)


@FUZZ
@given(requests())
def test_request_round_trip(req: Request) -> None:
    wire = req.serialize()
    back = parse_message(wire)
    same(parse_message(wire), back)
    assert back.serialize() == wire
    assert isinstance(back, Request) and back.method == req.method and back.body == req.body


@FUZZ
@given(requests(), st.integers(100, 699), st.one_of(st.none(), TOKEN), st.binary(max_size=100))
def test_response_round_trip(req: Request, status: int, tag: str | None, body: bytes) -> None:
    resp = make_response(parse_message(req.serialize()), status, to_tag=tag, body=body)  # type: ignore[arg-type]
    wire = resp.serialize()
    back = parse_message(wire)
    assert isinstance(back, Response) and back.status == status and back.body == body
    assert back.serialize() == wire
    assert back.to.tag == (tag if status != 100 else None)


@FUZZ
@given(requests(), st.lists(st.integers(1, 64), min_size=1, max_size=40))
def test_stream_any_split(req: Request, cuts: list[int]) -> None:
    wire = req.serialize()
    stream = b"\r\n" + wire + wire
    p = StreamParser()
    got: list[Message] = []
    pos = 0
    for c in cuts:
        got += p.feed(stream[pos:pos + c])
        pos += c
    got += p.feed(stream[pos:])
    assert [m.serialize() for m in got] == [wire, wire]


def exercise(m: Message) -> None:
    """Touch every structured accessor; each may only raise SipParseError (digest
    credentials: DigestError). Also the oracle of fuzz/fuzz_sip.py."""
    from siplink.sip.digest import DigestError, parse_credentials

    for name in ("via", "call_id", "cseq", "from_", "to", "contact", "max_forwards", "expires",
                 "content_type", "record_route", "route", "www_authenticate", "authorization",
                 "proxy_authenticate", "proxy_authorization"):
        try:
            value = getattr(m, name)
            str(value)
        except SipParseError:
            pass
    for value in m.headers.get_all("authorization"):
        try:
            parse_credentials(value)
        except DigestError:
            pass
    if isinstance(m, Request):
        try:
            str(m.uri)
            make_response(m, 200, to_tag="x").serialize()
        except SipParseError:
            pass
    wire = m.serialize()
    parse_message(wire)          # what we accepted and wrote, we accept again


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    try:
        m = parse_message(data)
    except SipParseError as e:
        assert e.reason and 400 <= e.status < 600
        return
    exercise(m)


@FUZZ
@given(st.sampled_from(CORPUS), st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255),
                                                   st.sampled_from(["flip", "insert", "delete", "cut"])),
                                         min_size=1, max_size=6))
def test_corpus_mutations_only_raise_sip_parse_error(data: bytes, edits: list[tuple[int, int, str]]) -> None:
    buf = bytearray(data)
    for pos, byte, op in edits:
        if not buf:
            break
        i = pos % len(buf)
        if op == "flip":
            buf[i] = byte
        elif op == "insert":
            buf.insert(i, byte)
        elif op == "delete":
            del buf[i]
        else:
            del buf[i:]
    try:
        m = parse_message(bytes(buf))
    except SipParseError:
        pass
    else:
        exercise(m)
    p = StreamParser()
    try:
        for k in range(0, len(buf), 97):
            for msg in p.feed(bytes(buf[k:k + 97])):
                exercise(msg)
    except SipParseError:
        pass
    assert p.buffered <= len(buf)


@FUZZ
@given(st.sampled_from(CORPUS), st.sampled_from([b"\r\n", b":", b";", b",", b"<", b">", b'"', b"\\",
                                                 b"%", b"@", b"\x00", b" ", b"\t", b"\r\n ", b"[", b"]"]),
       st.integers(0, 4000))
def test_corpus_with_sip_metacharacters(data: bytes, meta: bytes, pos: int) -> None:
    i = pos % (len(data) + 1)
    mutated = data[:i] + meta + data[i:]
    try:
        m = parse_message(mutated)
    except SipParseError:
        return
    exercise(m)
