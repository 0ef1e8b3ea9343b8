"""The trickle-ice-sdpfrag body of RFC 8840 INFO requests (sdp/trickle.py)."""

from __future__ import annotations

import pytest

from ice.candidate import CandidateType
from sdp import SdpError
from sdp.trickle import FragmentMedia, format_fragment, parse_fragment

# RFC 8840 §4.4 / §9.1 shape: credentials at the session level, an m= line per stream with
# port 9 and its mid, the candidates, end-of-candidates
RFC_STYLE = (
    b"a=ice-options:trickle\r\n"
    b"a=group:BUNDLE foo bar\r\n"
    b"a=ice-ufrag:Ufr4\r\n"
    b"a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n"
    b"m=audio 9 RTP/AVP 0\r\n"
    b"a=mid:foo\r\n"
    b"a=candidate:1 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998\r\n"
    b"a=end-of-candidates\r\n"
    b"m=video 9 RTP/AVP 31\r\n"
    b"a=mid:bar\r\n"
    b"a=candidate:1 1 UDP 1694498815 192.0.2.3 45665 typ srflx raddr 10.0.1.1 rport 8999\r\n"
)

# what pjsip 2.15 sends: a whole-description prologue, m= port 0, credentials per stream
PJSIP_STYLE = (
    b"v=0\r\no=- 4005282802 4005282802 IN IP4 0.0.0.0\r\ns=pjmedia\r\nt=0 0\r\n"
    b"a=ice-options:trickle\r\nm=audio 0 RTP/AVP 0\r\na=mid:1\r\n"
    b"a=ice-ufrag:5dbd9548\r\na=ice-pwd:0b243a254def589e31fafcd4\r\n"
    b"a=candidate:Rc6336403 1 UDP 16777215 198.51.100.3 49192 typ relay raddr 198.51.100.2 "
    b"rport 4020\r\n"
    b"a=end-of-candidates\r\n"
)


def test_rfc_style_fragment() -> None:
    f = parse_fragment(RFC_STYLE)
    assert (f.ufrag, f.pwd, f.options) == ("Ufr4", "asd88fgpdd777uzjYhagZg", ("trickle",))
    assert [m.mid for m in f.media] == ["foo", "bar"]
    audio = f.section("foo", 5)
    assert audio is not None and audio.kind == "audio"
    assert [c.port for c in audio.candidates] == [45664]
    assert audio.candidates[0].type is CandidateType.SERVER_REFLEXIVE
    assert f.complete(audio)
    video = f.section("bar", 0)
    assert video is not None and not f.complete(video)
    assert f.section("nope", 0) is None          # sections with a mid match by mid only


def test_pjsip_style_fragment() -> None:
    f = parse_fragment(PJSIP_STYLE)
    sec = f.section("1", 0)
    assert sec is not None
    assert f.credentials(sec) == ("5dbd9548", "0b243a254def589e31fafcd4")
    assert sec.candidates[0].type is CandidateType.RELAYED and f.complete(sec)


def test_session_level_end_and_position_match() -> None:
    f = parse_fragment(b"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
                       b"a=end-of-candidates\r\nm=audio 9 RTP/AVP 0\r\n")
    sec = f.section(None, 0)
    assert sec is not None and sec.mid is None and f.complete(sec)


def test_unknown_candidate_transport_is_skipped() -> None:
    f = parse_fragment(b"m=audio 9 RTP/AVP 0\r\na=mid:0\r\n"
                       b"a=candidate:1 1 SCTP 1 192.0.2.1 5000 typ host\r\n")
    assert f.media[0].candidates == ()


@pytest.mark.parametrize("body, what", [
    (b"a=mid:0\r\n", "before any m= line"),
    (b"a=candidate:1 1 UDP 1 192.0.2.1 5000 typ host\r\n", "before any m= line"),
    (b"m=audio 9 RTP/AVP 0\r\na=candidate:garbage\r\n", "candidate"),
    (b"m=audio 9 RTP/AVP 0\r\nx=1\r\n", "unexpected x= line"),
    (b"hello\r\n", "not an SDP line"),
    (b"a=ice-ufrag:bad ufrag\r\n", "ice-ufrag"),
    (b"m=audio 9 RTP/AVP 0\r\na=end-of-candidates:now\r\n", "takes no value"),
    (b"\xff\xfe", "UTF-8"),
    (b"m=audio 9 RTP/AVP 0\r\n" + b"a=candidate:1 1 UDP 1 192.0.2.1 5000 typ host\r\n" * 65,
     "more than 64 candidates"),
    (b"a=x:" + b"y" * 40000, "too large"),
])
def test_malformed_fragments(body: bytes, what: str) -> None:
    with pytest.raises(SdpError, match=what):
        parse_fragment(body)


def test_format_round_trip() -> None:
    f = parse_fragment(RFC_STYLE)
    out = format_fragment("Ufr4", "asd88fgpdd777uzjYhagZg", f.media, proto="RTP/AVP", fmt="0")
    text = out.decode()
    assert text.startswith("a=ice-options:trickle\r\na=ice-ufrag:Ufr4\r\n")
    assert "m=audio 9 RTP/AVP 0\r\na=mid:foo\r\n" in text
    again = parse_fragment(out)
    assert [(m.mid, m.candidates, m.end_of_candidates) for m in again.media] == \
        [(m.mid, m.candidates, m.end_of_candidates) for m in f.media]


def test_format_refuses_what_would_not_parse() -> None:
    with pytest.raises(SdpError):
        format_fragment("bad ufrag", "asd88fgpdd777uzjYhagZg", [])
    with pytest.raises(SdpError):
        format_fragment("Ufr4", "asd88fgpdd777uzjYhagZg",
                        [FragmentMedia(0, "audio", "has space", (), True)])
