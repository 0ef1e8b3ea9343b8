"""TCP/TLS framing: StreamParser (RFC 3261 §18.3, CRLF keep-alives of RFC 5626 §3.5.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siplink.sip.message import (
    MAX_HEADER_BYTES,
    Request,
    SipParseError,
    StreamParser,
    parse_message,
)

SIP = Path(__file__).resolve().parent / "data" / "sip"
RFC = Path(__file__).resolve().parent / "data" / "rfc4475"
INVITE = (SIP / "baresip-invite-ice.msg").read_bytes()
OK = (SIP / "baresip-200-ice.msg").read_bytes()


def test_several_messages_in_one_read_with_keepalives() -> None:
    p = StreamParser()
    msgs = p.feed(b"\r\n\r\n" + INVITE + b"\r\n" + OK + INVITE)
    assert [type(m).__name__ for m in msgs] == ["Request", "Response", "Request"]
    assert msgs[0].serialize() == INVITE and msgs[1].serialize() == OK
    assert p.buffered == 0 and p.keepalives == 2


@pytest.mark.parametrize("chunk", [1, 2, 7, 100, 1000])
def test_partial_reads(chunk: int) -> None:
    stream = INVITE + OK + b"\r\n\r\n" + INVITE
    p = StreamParser()
    got = []
    for i in range(0, len(stream), chunk):
        got += p.feed(stream[i:i + chunk])
    assert [m.serialize() for m in got] == [INVITE, OK, INVITE]
    assert p.buffered == 0


def test_body_waits_for_content_length() -> None:
    head, _, body = INVITE.partition(b"\r\n\r\n")
    p = StreamParser()
    assert p.feed(head + b"\r\n\r\n" + body[:-10]) == []
    (m,) = p.feed(body[-10:])
    assert m.body == body


def test_invalid_but_framed_message_is_dropped_not_fatal() -> None:
    bad = (RFC / "mismatch01.dat").read_bytes()
    p = StreamParser()
    msgs = p.feed(bad + INVITE)
    assert len(msgs) == 1 and isinstance(msgs[0], Request)
    (err,) = p.pop_errors()
    assert "CSeq method" in err.reason and isinstance(err.partial, Request)
    assert p.feed(OK)[0].serialize() == OK           # the connection goes on


def test_framing_errors_are_fatal() -> None:
    p = StreamParser()
    no_length = INVITE.replace(b"Content-Length: 938\r\n", b"")
    with pytest.raises(SipParseError) as info:
        p.feed(no_length)
    assert "Content-Length" in info.value.reason
    with pytest.raises(SipParseError):
        p.feed(OK)                                    # refused from then on
    for name in ("ncl.dat", "mcl01.dat"):
        with pytest.raises(SipParseError):
            StreamParser().feed((RFC / name).read_bytes())


def test_messages_before_an_error_are_returned_first() -> None:
    p = StreamParser()
    msgs = p.feed(INVITE + b"NOT SIP AT ALL\r\nX: y\r\n\r\n")
    assert len(msgs) == 1
    with pytest.raises(SipParseError):
        p.feed(b"")


def test_buffer_is_bounded() -> None:
    p = StreamParser()
    with pytest.raises(SipParseError) as info:
        for _ in range(MAX_HEADER_BYTES // 1000 + 2):
            p.feed(b"X" * 1000)                       # never a complete header section
    assert info.value.status == 513
    assert p.buffered == 0


def test_clerr_over_a_stream_waits_for_the_body() -> None:
    # RFC 4475 §3.1.2.2: over TCP a too-large Content-Length means wait for more octets
    p = StreamParser()
    assert p.feed((RFC / "clerr.dat").read_bytes()) == []
    assert p.buffered > 0


def test_all_valid_torture_messages_frame_like_datagrams() -> None:
    for name in ("wsinv.dat", "esc01.dat", "mpart01.dat", "unreason.dat", "longreq.dat"):
        data = (RFC / name).read_bytes()
        (m,) = StreamParser().feed(data)
        assert m.serialize() == parse_message(data).serialize()
