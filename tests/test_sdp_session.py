"""The SDP model on SDPs written by other stacks (tests/data/sdp, tests/data/sip)."""

from pathlib import Path

import pytest

from ice.candidate import Candidate, CandidateType
from sdp import Codec, Connection, MediaDescription, Origin, Rtcp, SessionDescription, parse
from sdp.ice import RemoteCandidate

DATA = Path(__file__).resolve().parent / "data"
SDP_FILES = sorted((DATA / "sdp").glob("*.sdp"))
SIP_FILES = sorted((DATA / "sip").glob("*.msg"))


def sip_body(path: Path) -> bytes:
    raw = path.read_bytes()
    head, body = raw.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    assert len(body) == length
    return body


def test_corpus_is_present():
    assert len(SDP_FILES) == 8 and len(SIP_FILES) == 2


@pytest.mark.parametrize("path", SDP_FILES + SIP_FILES, ids=lambda p: p.name)
def test_every_corpus_sdp_parses_and_round_trips(path):
    text = sip_body(path) if path.suffix == ".msg" else path.read_bytes()
    sd = parse(text)
    assert sd.media, "every corpus SDP has media"
    for m in sd.media:
        assert m.port == 0 or m.connection is not None
        if m.is_rtp:
            assert m.codecs and all(c.name for c in m.codecs)
        # every a=candidate line of this m-section was modelled (none dropped)
    lines = text.decode().replace("\r\n", "\n").split("\n")
    assert sum(len(m.candidates) for m in sd.media) == sum(
        1 for line in lines if line.startswith("a=candidate:"))
    out = sd.serialize()
    assert parse(out) == sd
    assert parse(parse(out).serialize()) == sd


def test_baresip_invite_offer_model(corpus_dir):
    sd = parse(sip_body(corpus_dir / "sip" / "baresip-invite-ice.msg"))
    assert sd == parse((corpus_dir / "sdp" / "baresip-offer-ice-relay.sdp").read_bytes())
    assert sd.origin == Origin("-", "3848830000", 1370729481, "127.0.0.1", "IP4")
    assert sd.name == "-"
    assert sd.connection == Connection("127.0.0.1")
    assert (sd.ice_ufrag, sd.ice_pwd) == ("Rnb88aC", "25LlLBY7NzIuQCzaK4A2K93jcZKrVs5")
    assert sd.attributes == ["tool:baresip 1.0.0"]
    (m,) = sd.media
    assert (m.kind, m.port, m.proto, m.direction) == ("audio", 25900, "RTP/AVP", "sendrecv")
    assert m.codecs == [Codec(0, "PCMU", 8000), Codec(101, "telephone-event", 8000, None, "0-15")]
    assert m.rtcp == Rtcp(25914, "127.0.0.1", "IP4")
    assert not m.rtcp_mux and m.ptime == 20
    assert (m.ice_ufrag, m.ice_pwd) == (sd.ice_ufrag, sd.ice_pwd)   # inherited
    assert m.attributes == ["label:1", "rtcp-rsize", "ssrc:47849656 cname:sip:alice@127.0.0.1:25100",
                            "minptime:20"]
    assert len(m.candidates) == 6
    relay = m.candidates[2]
    assert relay == Candidate("7f000002", 1, "udp", 255, "127.0.0.1", 25900,
                              CandidateType.RELAYED, "198.51.100.1", 25136)
    # RFC 8839: the default destination (c=, m= port, a=rtcp) is the relayed candidate
    assert (m.connection.address, m.port) == relay.transport_address
    assert m.rtcp.port == m.candidates[4].port and m.candidates[4].component == 2


def test_icelite_session_level(corpus_dir):
    sd = parse((corpus_dir / "sdp" / "sdp-transform-icelite.sdp").read_bytes())
    assert sd.ice_lite
    (m,) = sd.media
    assert m.rtcp_mux
    assert (m.ice_ufrag, m.ice_pwd) == ("nXET", "d0iwx/Qam8JnuvL+wkcXee")
    assert [c.foundation for c in m.candidates] == ["X", "X"]
    assert [c.pt for c in m.codecs] == [8, 0, 101]
    assert "setup:actpass" in m.attributes


def test_normal_session_credentials_inherited_and_extensions(corpus_dir):
    sd = parse((corpus_dir / "sdp" / "sdp-transform-normal.sdp").read_bytes())
    assert sd.name == ""
    assert sd.ice_ufrag == "F7gI" and all(m.ice_ufrag == "F7gI" for m in sd.media)
    assert all(m.ice_pwd == "x9cml/YzichV2+XlhiMu8g" for m in sd.media)
    audio, video = sd.media
    srflx = audio.candidates[2]
    assert srflx.transport == "udp" and srflx.generation == 0
    assert srflx.extensions == (("network-id", "3"), ("network-cost", "10"))
    assert video.codecs[0].fmtp.startswith("profile-level-id=4d0028;")
    assert video.codecs[1] == Codec(98, "VP8", 90000, None, "minptime=10; useinbandfec=1")
    assert all(m.connection == Connection("203.0.113.1") for m in sd.media)


def test_jsep_media_level_credentials_and_end_of_candidates(corpus_dir):
    sd = parse((corpus_dir / "sdp" / "sdp-transform-jsep.sdp").read_bytes())
    audio, video = sd.media
    assert sd.ice_ufrag is None
    assert (audio.ice_ufrag, video.ice_ufrag) == ("ETEn1v9DoTMB9J4r", "BGKkWnG5GmiUpdIV")
    assert audio.ice_options == ["trickle"] and audio.end_of_candidates and video.end_of_candidates
    assert video.rejected and "bundle-only" in video.attributes
    assert audio.codecs[0] == Codec(96, "opus", 48000, 2)


def test_hacky_tcp_candidates_and_odd_values(corpus_dir):
    sd = parse((corpus_dir / "sdp" / "sdp-transform-hacky.sdp").read_bytes())
    audio, video, app = sd.media
    assert [c.tcptype for c in audio.candidates] == [None, "active", "active", "passive", "so",
                                                     "active", "passive", "so"]
    assert audio.candidates[6].generation == 5
    assert audio.port == 1 and audio.ptime == 0.125
    assert video.rtcp == Rtcp(12312)
    assert not app.is_rtp and app.formats == ["5000"] and app.fmt == ["5000"]
    assert app.ice_ufrag == "pDUB98Lc+2dc5+JF"
    assert "framerate:29.97" in app.attributes
    assert app.bandwidth[0].bwtype == "AS" and app.bandwidth[0].value == 30


def test_chrome_candidates(corpus_dir):
    sd = parse((corpus_dir / "sdp" / "webrtc-sdp-chrome-41.sdp").read_bytes())
    audio, video = sd.media
    assert len(audio.candidates) == len(video.candidates) == 16
    kinds = {(c.type, c.transport) for c in audio.candidates}
    assert kinds == {(CandidateType.HOST, "udp"), (CandidateType.SERVER_REFLEXIVE, "udp"),
                     (CandidateType.HOST, "tcp"), (CandidateType.RELAYED, "udp")}


def test_static_payload_types_without_rtpmap():
    sd = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
               "m=audio 5000 RTP/AVP 0 8 18 96\r\na=fmtp:18 annexb=no\r\n")
    assert sd.media[0].codecs == [Codec(0, "PCMU", 8000), Codec(8, "PCMA", 8000),
                                  Codec(18, "G729", 8000, None, "annexb=no"), Codec(96, "", 0)]
    assert parse(sd.serialize()) == sd


def test_session_direction_inherited_and_media_overrides():
    sd = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
               "a=sendonly\r\nm=audio 5000 RTP/AVP 0\r\nm=audio 5002 RTP/AVP 0\r\na=inactive\r\n")
    assert [m.direction for m in sd.media] == ["sendonly", "inactive"]
    assert parse(sd.serialize()) == sd


def test_remote_candidates_and_ice_mismatch_attributes():
    sd = parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
               "m=audio 5000 RTP/AVP 0\r\n"
               "a=remote-candidates:1 192.0.2.7 3000 2 192.0.2.7 3001\r\n"
               "a=remote-candidates:1 2001:db8::1 3002\r\na=ice-mismatch\r\n")
    m = sd.media[0]
    assert m.remote_candidates == [RemoteCandidate(1, "192.0.2.7", 3000),
                                   RemoteCandidate(2, "192.0.2.7", 3001),
                                   RemoteCandidate(1, "2001:db8::1", 3002)]
    assert m.ice_mismatch
    assert parse(sd.serialize()) == sd


def test_ipv6_and_fqdn_candidates():
    sd = parse("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\n"
               "m=audio 5000 RTP/AVP 0\r\n"
               "a=candidate:1 1 UDP 1 2001:db8::5 5000 typ host\r\n"
               "a=candidate:2 1 UDP 1 abc-123.local 5002 typ host\r\n"
               "a=candidate:3 1 DTLS 1 192.0.2.1 5004 typ host\r\n"
               "a=candidate:4 1 UDP 1 192.0.2.1 5006 typ mystery\r\n")
    m = sd.media[0]
    assert sd.origin.addrtype == "IP6" and m.connection == Connection("2001:db8::5", "IP6")
    assert [c.address for c in m.candidates] == ["2001:db8::5", "abc-123.local"]
    # RFC 8839: candidates of an unknown transport or type are ignored, but carried through
    assert m.attributes == ["candidate:3 1 DTLS 1 192.0.2.1 5004 typ host",
                            "candidate:4 1 UDP 1 192.0.2.1 5006 typ mystery"]
    assert parse(sd.serialize()) == sd


def test_built_model_serialises_with_crlf():
    sd = SessionDescription(
        origin=Origin("alice", "42", 1, "192.0.2.1"),
        name="call",
        connection=Connection("192.0.2.1"),
        media=[MediaDescription("audio", 4000, "RTP/AVP",
                                codecs=[Codec(0, "PCMU", 8000), Codec(101, "telephone-event", 8000,
                                                                      fmtp="0-16")],
                                connection=Connection("192.0.2.1"), ptime=20)],
    )
    text = sd.serialize()
    assert text.startswith("v=0\r\no=alice 42 1 IN IP4 192.0.2.1\r\ns=call\r\nc=IN IP4 192.0.2.1")
    assert "m=audio 4000 RTP/AVP 0 101\r\n" in text
    assert "a=fmtp:101 0-16\r\n" in text and "a=ptime:20\r\n" in text
    assert text.count("c=") == 1          # media c= equal to session c= is not repeated
    assert parse(text) == sd
