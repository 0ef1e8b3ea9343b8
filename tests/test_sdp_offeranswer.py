"""RFC 3264 offer/answer with ICE (RFC 8839): sdp.offeranswer.OfferAnswer."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ice.candidate import Candidate, CandidateType
from ice.trace import Trace
from sdp import (
    PCMU,
    TELEPHONE_EVENT,
    IceParams,
    OfferAnswer,
    OfferPendingError,
    SdpError,
    SessionDescription,
    parse,
)
from sdp.ice import RemoteCandidate

DATA = Path(__file__).resolve().parent / "data"
ALL_PROFILES = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF")


def cand(foundation, component, address, port, typ=CandidateType.HOST, prio=None, **kw):
    prio = prio if prio is not None else {CandidateType.HOST: 2130706431,
                                          CandidateType.SERVER_REFLEXIVE: 1694498815,
                                          CandidateType.RELAYED: 16777215}[typ] - component + 1
    return Candidate(foundation, component, "udp", prio, address, port, typ, **kw)


HOST1 = cand("h1", 1, "127.0.0.1", 40000)
HOST2 = cand("h1", 2, "127.0.0.1", 40001)
SRFLX1 = cand("s1", 1, "127.0.0.2", 50000, CandidateType.SERVER_REFLEXIVE,
              related_address="127.0.0.1", related_port=40000)
SRFLX2 = cand("s1", 2, "127.0.0.2", 50001, CandidateType.SERVER_REFLEXIVE,
              related_address="127.0.0.1", related_port=40001)
RELAY1 = cand("r1", 1, "127.0.0.3", 60000, CandidateType.RELAYED,
              related_address="127.0.0.2", related_port=50000)
RELAY2 = cand("r1", 2, "127.0.0.3", 60001, CandidateType.RELAYED,
              related_address="127.0.0.2", related_port=50001)
ALICE_ICE = IceParams("alic", "alicepassword0123456789", (HOST1, HOST2, SRFLX1, SRFLX2, RELAY1,
                                                          RELAY2))
BOB_HOST1 = cand("b1", 1, "127.0.0.9", 41000)
BOB_HOST2 = cand("b1", 2, "127.0.0.9", 41001)
BOB_ICE = IceParams("bob1", "bobpassword01234567890x", (BOB_HOST1, BOB_HOST2))


def corpus(name):
    return (DATA / "sdp" / name).read_bytes()


def check_answer(offer: SessionDescription, answer: SessionDescription, codecs=(PCMU,)) -> int:
    """Independent check of RFC 3264 §6 / RFC 8839 rules; returns the accepted m-line index."""
    assert len(answer.media) == len(offer.media)
    accepted = []
    for i, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        assert (am.kind, am.proto) == (om.kind, om.proto)
        if om.port == 0 or am.port == 0:
            assert am.port == 0 and not am.candidates
            continue
        accepted.append(i)
        offered = {c.pt: c for c in om.codecs}
        for c in am.codecs:                       # the offerer's payload types and formats
            assert c.pt in offered and c.same_format(offered[c.pt])
        assert any(c.name.lower() not in ("telephone-event", "cn") for c in am.codecs)
        allowed = {"sendrecv": {"sendrecv", "sendonly", "recvonly", "inactive"},
                   "sendonly": {"recvonly", "inactive"}, "recvonly": {"sendonly", "inactive"},
                   "inactive": {"inactive"}}[om.direction]
        assert am.direction in allowed
        if am.rtcp_mux:
            assert om.rtcp_mux
        if am.ice_ufrag is not None:
            assert om.ice_ufrag is not None and not am.ice_mismatch
            # RFC 8839: the default destination is one of our candidates
            assert any(c.component == 1 and (c.address, c.port) == (am.connection.address, am.port)
                       for c in am.candidates)
            if am.rtcp is not None:
                assert any(c.component == 2 and (c.address, c.port) == (am.rtcp.address,
                                                                          am.rtcp.port)
                           for c in am.candidates)
        else:
            assert not am.candidates
    assert len(accepted) == 1
    return accepted[0]


# --- offers ------------------------------------------------------------------------------------

def test_initial_offer_puts_default_candidate_in_c_m_and_rtcp():
    oa = OfferAnswer("127.0.0.1", session_id="1234", session_version=7)
    offer = oa.create_offer(ALICE_ICE)
    sd = parse(offer.serialize())
    assert sd == offer
    assert sd.origin.sess_id == "1234" and sd.origin.sess_version == 7
    (m,) = sd.media
    assert (m.kind, m.proto, m.direction) == ("audio", "RTP/AVP", "sendrecv")
    assert [(c.pt, c.name) for c in m.codecs] == [(0, "PCMU"), (8, "PCMA"),
                                                  (101, "telephone-event")]
    assert m.codecs[2].fmtp == "0-16" and m.ptime == 20 and m.rtcp_mux
    # RFC 8445 §5.1.4 / RFC 8839: relayed candidate is the default; RTCP default in a=rtcp
    assert (m.connection.address, m.port) == ("127.0.0.3", 60000)
    assert (m.rtcp.address, m.rtcp.port) == ("127.0.0.3", 60001)
    assert (m.ice_ufrag, m.ice_pwd) == ("alic", "alicepassword0123456789")
    assert m.candidates == list(ALICE_ICE.candidates)
    assert m.end_of_candidates and not sd.ice_lite


def test_offer_without_ice_uses_configured_port_and_needs_one():
    offer = OfferAnswer("127.0.0.1", port=30000).create_offer()
    m = offer.media[0]
    assert (m.connection.address, m.port, m.ice_ufrag, m.candidates) == ("127.0.0.1", 30000,
                                                                         None, [])
    with pytest.raises(SdpError, match="port"):
        OfferAnswer("127.0.0.1").create_offer()


def test_trickle_offer_without_candidates_uses_placeholder():
    ice = IceParams("tric", "tricklepassword01234567", (), end_of_candidates=False,
                    options=("trickle", "ice2"))
    sd = parse(OfferAnswer("127.0.0.1").create_offer(ice).serialize())
    m = sd.media[0]
    assert (m.connection.address, m.port) == ("0.0.0.0", 9)
    assert sd.ice_options == ["trickle", "ice2"] and not m.end_of_candidates


def test_ice_lite_and_explicit_default():
    ice = IceParams("lite", "litepassword01234567890", (HOST1, SRFLX1), default_candidates=(HOST1,),
                    lite=True)
    sd = parse(OfferAnswer("127.0.0.1").create_offer(ice).serialize())
    assert sd.ice_lite and (sd.media[0].connection.address, sd.media[0].port) == ("127.0.0.1",
                                                                                  40000)


@pytest.mark.parametrize("ice", [
    IceParams("abc", "alicepassword0123456789", (HOST1,)),                    # ufrag < 4
    IceParams("alic", "short", (HOST1,)),                                     # pwd < 22
    IceParams("alic", "alicepassword0123456789", (HOST1,), default_candidates=(RELAY1,)),
    IceParams("alic", "alicepassword0123456789", (cand("bad foundation!", 1, "1.2.3.4", 5),)),
])
def test_bad_local_ice_params_refused(ice):
    with pytest.raises(SdpError):
        OfferAnswer("127.0.0.1").create_offer(ice)


# --- answers -----------------------------------------------------------------------------------

def test_answer_to_baresip_offer_captured_on_the_wire():
    bob = OfferAnswer("127.0.0.1", trace=Trace())
    answer = bob.create_answer(corpus("baresip-offer-ice-relay.sdp"), BOB_ICE, now=1.5)
    sd = parse(answer.serialize())
    offer = parse(corpus("baresip-offer-ice-relay.sdp"))
    assert check_answer(offer, sd) == 0
    m = sd.media[0]
    assert [(c.pt, c.name, c.fmtp) for c in m.codecs] == [(0, "PCMU", None),
                                                         (101, "telephone-event", "0-15")]
    assert not m.rtcp_mux                         # baresip did not offer it
    assert (m.connection.address, m.port) == ("127.0.0.9", 41000)
    assert (m.rtcp.address, m.rtcp.port) == ("127.0.0.9", 41001)
    assert m.ice_ufrag == "bob1" and not m.ice_mismatch
    n = bob.negotiated.audio
    assert n.direction == "sendrecv" and n.send_codec.name == "PCMU"
    assert n.telephone_event.pt == 101
    assert n.remote_rtp == ("127.0.0.1", 25900) and n.remote_rtcp == ("127.0.0.1", 25914)
    assert not n.rtcp_mux and n.remote_ptime == 20
    assert (n.ice.ufrag, n.ice.pwd) == ("Rnb88aC", "25LlLBY7NzIuQCzaK4A2K93jcZKrVs5")
    assert len(n.ice.candidates) == 6 and not n.ice.lite and not n.ice_restart
    records = list(bob.trace)
    assert [r.direction for r in records] == ["in", "out"]
    assert all(r.protocol == "sdp" and r.time == 1.5 for r in records)
    assert "Rnb88aC" in records[0].detail and "bob1" in records[1].detail


@pytest.mark.parametrize("path", sorted((DATA / "sdp").glob("*.sdp")) + sorted(
    (DATA / "sip").glob("*.msg")), ids=lambda p: p.name)
def test_every_corpus_offer_gets_a_valid_answer(path):
    raw = path.read_bytes()
    if path.suffix == ".msg":
        raw = raw.split(b"\r\n\r\n", 1)[1]
    offer = parse(raw)
    # profiles the media layer would have to provide (SRTP/DTLS) are accepted here so the
    # offer/answer and ICE rules are exercised on every corpus SDP
    oa = OfferAnswer("127.0.0.1", protos=ALL_PROFILES)
    answer = parse(oa.create_answer(raw, BOB_ICE).serialize())
    index = check_answer(offer, answer)
    assert offer.media[index].kind == "audio"
    n = oa.negotiated.audio
    assert n is not None and n.index == index and n.send_codec is not None
    if path.name == "sdp-transform-hacky.sdp":
        # its default destination 0.0.0.0:1 is none of its candidates: RFC 8839 ice-mismatch
        assert answer.media[index].ice_mismatch and n.ice is None and n.ice_mismatch
    else:
        assert n.ice is not None and n.ice.ufrag == offer.media[index].ice_ufrag
        assert answer.media[index].ice_ufrag == "bob1"


@pytest.mark.parametrize("name, reasons", [
    ("sdp-transform-jssip.sdp", ["m=audio: transport RTP/SAVPF not supported"]),
    ("webrtc-sdp-chrome-41.sdp", ["m=audio: transport UDP/TLS/RTP/SAVPF not supported",
                                  "m=video: media type not supported"]),
])
def test_default_profiles_reject_srtp_offers_with_reason(name, reasons):
    with pytest.raises(SdpError) as info:
        OfferAnswer("127.0.0.1", port=4000).create_answer(corpus(name))
    assert info.value.reason == "no acceptable media: " + "; ".join(reasons)


def test_no_common_codec_is_refused_with_reason():
    offer = ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
             "m=audio 5000 RTP/AVP 18 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    with pytest.raises(SdpError, match="no common audio codec.*G729/8000"):
        OfferAnswer("127.0.0.1", port=4000).create_answer(offer)


def test_rejection_reason_stays_short_for_huge_offers():
    pts = " ".join(str(96 + i % 32) for i in range(3000))
    offer = ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
             + "".join(f"m=video {5000 + 2 * i} RTP/AVP {pts}\r\n" for i in range(20))
             + f"m=audio 4000 RTP/AVP {pts}\r\n"
             + "".join(f"a=rtpmap:{96 + i} x{i}/8000\r\n" for i in range(32)))
    with pytest.raises(SdpError) as info:
        OfferAnswer("127.0.0.1", port=4000).create_answer(offer)
    assert len(info.value.reason) <= 230 and info.value.reason.endswith("...")


def test_answer_keeps_offerer_payload_types_and_only_matching_telephone_event():
    sd = parse(OfferAnswer("127.0.0.1", protos=ALL_PROFILES).create_answer(
        corpus("sdp-transform-jsep.sdp"), BOB_ICE).serialize())
    audio, video = sd.media
    assert [(c.pt, c.name, c.rate) for c in audio.codecs] == [
        (0, "PCMU", 8000), (8, "PCMA", 8000), (97, "telephone-event", 8000)]
    assert video.port == 0 and video.proto == "UDP/TLS/RTP/SAVPF"


def test_answer_with_rtcp_mux_drops_component_two():
    sd = OfferAnswer("127.0.0.1", protos=ALL_PROFILES).create_answer(
        corpus("sdp-transform-icelite.sdp"), BOB_ICE)
    m = sd.media[0]
    assert m.rtcp_mux and m.rtcp is None and [c.component for c in m.candidates] == [1]


def test_answer_without_ice_when_offer_has_none():
    offer = ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
             "m=audio 5000 RTP/AVP 0\r\n")
    oa = OfferAnswer("127.0.0.1", port=4000)
    sd = parse(oa.create_answer(offer, BOB_ICE).serialize())
    m = sd.media[0]
    assert m.ice_ufrag is None and not m.candidates and not m.ice_mismatch
    # the default candidates are the media address for a peer without ICE
    assert (m.connection.address, m.port) == ("127.0.0.9", 41000)
    assert (m.rtcp.address, m.rtcp.port) == ("127.0.0.9", 41001)
    assert oa.negotiated.audio.ice is None and oa.negotiated.audio.remote_rtp == ("1.2.3.4", 5000)
    sd = OfferAnswer("127.0.0.1", port=4000).create_answer(offer)
    assert (sd.media[0].connection.address, sd.media[0].port) == ("127.0.0.1", 4000)


def test_ice_mismatch_when_default_destination_was_rewritten():
    offer = parse(corpus("baresip-offer-ice-relay.sdp"))
    offer.media[0].port = 30000          # as a SIP ALG would rewrite it
    oa = OfferAnswer("127.0.0.1", port=4000)
    sd = parse(oa.create_answer(offer, BOB_ICE).serialize())
    m = sd.media[0]
    assert m.ice_mismatch and m.ice_ufrag is None and not m.candidates
    assert oa.negotiated.audio.ice is None and oa.negotiated.audio.ice_mismatch
    # a rewritten RTCP default is a mismatch too
    offer = parse(corpus("baresip-offer-ice-relay.sdp"))
    offer.media[0].rtcp = offer.media[0].rtcp.__class__(30001, "127.0.0.1")
    assert OfferAnswer("127.0.0.1", port=4000).create_answer(offer, BOB_ICE).media[0].ice_mismatch


def test_offerer_learns_ice_mismatch_from_the_answer():
    alice = OfferAnswer("127.0.0.1", port=4000)
    alice.create_offer(ALICE_ICE)
    answer = ("v=0\r\no=- 5 5 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n"
              "m=audio 7000 RTP/AVP 0\r\na=ice-mismatch\r\n")
    n = alice.receive_answer(answer).audio
    assert n.ice is None and n.ice_mismatch and n.remote_rtp == ("127.0.0.9", 7000)


# --- full exchanges between two of our own cores ------------------------------------------

def pair():
    alice = OfferAnswer("127.0.0.1", session_id="100", session_version=1)
    bob = OfferAnswer("127.0.0.9", session_id="200", session_version=1)
    offer = alice.create_offer(ALICE_ICE)
    answer = bob.create_answer(offer.serialize(), BOB_ICE)
    alice.receive_answer(answer.serialize())
    return alice, bob


def test_two_cores_negotiate_ice_both_ways():
    alice, bob = pair()
    a, b = alice.negotiated.audio, bob.negotiated.audio
    assert (a.ice.ufrag, a.ice.pwd) == (BOB_ICE.ufrag, BOB_ICE.pwd)
    assert (b.ice.ufrag, b.ice.pwd) == (ALICE_ICE.ufrag, ALICE_ICE.pwd)
    assert set(b.ice.candidates) == set(ALICE_ICE.candidates)
    assert set(a.ice.candidates) == {BOB_HOST1}         # rtcp-mux agreed: component 1 only
    assert a.rtcp_mux and b.rtcp_mux and a.direction == b.direction == "sendrecv"
    assert a.remote_rtp == ("127.0.0.9", 41000) and b.remote_rtp == ("127.0.0.3", 60000)
    assert [c.pt for c in a.codecs] == [c.pt for c in b.codecs] == [0, 8, 101]
    assert alice.pending_offer is None


def test_hold_resume_and_versions():
    alice, bob = pair()
    v0 = alice.local.origin.sess_version
    # unchanged re-offer (session refresh): same version (RFC 3264 §8)
    same = alice.create_offer(ALICE_ICE)
    assert same.origin.sess_version == v0
    bob.create_answer(same, BOB_ICE)
    alice.receive_answer(bob.local)
    hold = alice.create_offer(ALICE_ICE, hold=True)
    assert hold.origin.sess_version == v0 + 1 and hold.media[0].direction == "sendonly"
    answer = bob.create_answer(hold.serialize(), BOB_ICE)
    assert answer.media[0].direction == "recvonly"
    assert answer.origin.sess_version == 2                       # bob's answer changed too
    assert alice.receive_answer(answer).audio.direction == "sendonly"
    assert bob.negotiated.audio.direction == "recvonly"
    # bob holds as well: both on hold -> inactive
    held_back = bob.create_offer(BOB_ICE, hold=True)
    assert held_back.media[0].direction == "sendonly"
    answer = alice.create_answer(held_back, ALICE_ICE)
    assert answer.media[0].direction == "inactive"
    assert bob.receive_answer(answer).audio.direction == "inactive"
    # alice resumes; bob still holds
    resume = alice.create_offer(ALICE_ICE, hold=False)
    assert resume.media[0].direction == "sendrecv"
    assert resume.origin.sess_version > hold.origin.sess_version
    answer = bob.create_answer(resume, BOB_ICE)
    assert answer.media[0].direction == "sendonly"
    assert alice.receive_answer(answer).audio.direction == "recvonly"


def test_ice_restart_needs_new_credentials_on_both_sides():
    alice, bob = pair()
    restart = IceParams("alc2", "alicepassword9876543210", ALICE_ICE.candidates)
    offer = alice.create_offer(restart)
    assert offer.origin.sess_version == alice.local.origin.sess_version + 1
    assert bob.is_ice_restart(offer)
    assert not bob.is_ice_restart(alice.local)
    with pytest.raises(SdpError, match="ICE restart"):
        bob.create_answer(offer, BOB_ICE)
    new_bob = IceParams("bob2", "bobpassword09876543210x", BOB_ICE.candidates)
    answer = bob.create_answer(offer, new_bob)
    assert bob.negotiated.audio.ice_restart and bob.negotiated.audio.ice.ufrag == "alc2"
    n = alice.receive_answer(answer).audio
    assert n.ice_restart and n.ice.ufrag == "bob2"


def test_controlling_agent_updated_offer_after_nomination():
    alice, bob = pair()
    updated = IceParams(ALICE_ICE.ufrag, ALICE_ICE.pwd, (SRFLX1,), default_candidates=(SRFLX1,),
                        remote_candidates=(RemoteCandidate(1, "127.0.0.9", 41000),))
    offer = alice.create_offer(updated)
    text = offer.serialize()
    assert "a=remote-candidates:1 127.0.0.9 41000\r\n" in text
    m = parse(text).media[0]
    assert (m.connection.address, m.port) == ("127.0.0.2", 50000) and m.rtcp is None
    assert not bob.is_ice_restart(text)
    bob.create_answer(text, BOB_ICE)
    b = bob.negotiated.audio
    assert b.ice.remote_candidates == (RemoteCandidate(1, "127.0.0.9", 41000),)
    assert b.remote_rtp == ("127.0.0.2", 50000) and not b.ice_restart and not b.ice_mismatch


def test_rejected_streams_stay_in_later_offers():
    bob = OfferAnswer("127.0.0.9", protos=ALL_PROFILES)
    bob.create_answer(corpus("sdp-transform-normal.sdp"), BOB_ICE)
    reoffer = parse(bob.create_offer(BOB_ICE, hold=True).serialize())
    assert [(m.kind, m.port) for m in reoffer.media] == [("audio", 41000), ("video", 0)]
    assert reoffer.media[0].proto == "RTP/SAVPF"


# --- answers that do not answer the offer ------------------------------------------------

def offer_and_answer():
    alice = OfferAnswer("127.0.0.1", port=4000)
    offer = alice.create_offer()
    answer = OfferAnswer("127.0.0.9", port=5000).create_answer(offer)
    return alice, offer, answer


@pytest.mark.parametrize("mangle, reason", [
    (lambda a: a.media.append(a.media[0]), "m-lines"),
    (lambda a: setattr(a.media[0], "kind", "video"), "m-line 0"),
    (lambda a: setattr(a.media[0], "proto", "RTP/SAVP"), "m-line 0"),
    (lambda a: setattr(a.media[0], "port", 0), "rejected the audio"),
    (lambda a: setattr(a.media[0], "codecs", [TELEPHONE_EVENT]), "no audio codec"),
    (lambda a: setattr(a.media[0], "codecs", [a.media[0].codecs[0].__class__(3, "GSM", 8000)]),
     "no audio codec"),
])
def test_bad_answers_refused(mangle, reason):
    alice, offer, answer = offer_and_answer()
    mangle(answer)
    with pytest.raises(SdpError, match=reason):
        alice.receive_answer(answer.serialize())
    assert alice.pending_offer is None and alice.negotiated is None


def test_answer_direction_must_fit_the_offer():
    alice = OfferAnswer("127.0.0.1", port=4000)
    offer = alice.create_offer(hold=True)                      # sendonly
    answer = OfferAnswer("127.0.0.9", port=5000).create_answer(offer)
    answer.media[0].direction = "sendonly"
    with pytest.raises(SdpError, match="direction"):
        alice.receive_answer(answer)


def test_answer_without_offer_and_glare():
    alice, offer, answer = offer_and_answer()
    alice.receive_answer(answer)
    with pytest.raises(SdpError, match="no offer is outstanding"):
        alice.receive_answer(answer)
    alice.create_offer()
    with pytest.raises(OfferPendingError):
        alice.create_offer()
    with pytest.raises(OfferPendingError):                      # glare: SIP answers 491
        alice.create_answer(answer)
    alice.cancel_offer()
    assert alice.create_answer(answer) is not None


def test_reoffer_may_not_remove_m_lines():
    bob = OfferAnswer("127.0.0.9", protos=ALL_PROFILES)
    bob.create_answer(corpus("sdp-transform-normal.sdp"), BOB_ICE)
    fewer = parse(corpus("sdp-transform-normal.sdp"))
    del fewer.media[1]
    with pytest.raises(SdpError, match="removes m-lines"):
        bob.create_answer(fewer, BOB_ICE)


def test_unparseable_offer_is_sdp_error():
    with pytest.raises(SdpError):
        OfferAnswer("127.0.0.1", port=4000).create_answer(b"v=0\r\ngarbage\r\n")


def test_refused_answer_is_traced():
    alice, offer, answer = offer_and_answer()
    answer.media[0].port = 0
    with pytest.raises(SdpError):
        alice.receive_answer(answer, now=3.0)
    last = list(alice.trace)[-1]
    assert last.direction == "event" and last.time == 3.0
    assert "answer refused: answer rejected the audio stream" in last.summary


def test_ipv6_offer_and_answer():
    v6 = Candidate("6", 1, "udp", 2130706431, "::1", 42000, CandidateType.HOST)
    alice = OfferAnswer("::1", session_id="9")
    text = alice.create_offer(IceParams("ipv6", "ipv6password0123456789", (v6,))).serialize()
    assert "o=- 9 " in text and " IN IP6 ::1\r\n" in text and "c=IN IP6 ::1\r\n" in text
    bob = OfferAnswer("::1", port=43000)
    answer = bob.create_answer(text)
    assert bob.negotiated.audio.remote_rtp == ("::1", 42000)
    assert alice.receive_answer(answer.serialize()).audio.remote_rtp == ("::1", 43000)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alice", "bob"]),
                          st.sampled_from(["refresh", "hold", "resume", "restart"])),
                min_size=1, max_size=12))
def test_random_reoffer_sequences_keep_rfc3264_invariants(steps):
    """Whoever re-offers, whatever the change: versions go up by one exactly when the
    description changed, directions agree on both sides, credentials follow restarts."""
    alice, bob = pair()
    ice = {"alice": ALICE_ICE, "bob": BOB_ICE}
    held = {"alice": False, "bob": False}
    for n, (who, action) in enumerate(steps):
        offerer, answerer = (alice, bob) if who == "alice" else (bob, alice)
        other = "bob" if who == "alice" else "alice"
        before = offerer.local.origin.sess_version
        previous = offerer.local
        if action == "restart":
            ice[who] = IceParams(f"r{n:03d}", f"restartpassword{n:07d}", ice[who].candidates)
        hold = {"hold": True, "resume": False}.get(action)
        if hold is not None:
            held[who] = hold
        offer = offerer.create_offer(ice[who], hold=hold)
        changed = offer.media != previous.media or offer.ice_options != previous.ice_options
        assert offer.origin.sess_version == before + (1 if changed else 0)
        if answerer.is_ice_restart(offer):
            ice[other] = IceParams(f"a{n:03d}", f"answerpassword0{n:07d}", ice[other].candidates)
        answer = answerer.create_answer(offer.serialize(), ice[other])
        got = offerer.receive_answer(answer.serialize()).audio
        mine = answerer.negotiated.audio
        assert got.direction == {(True, True): "sendrecv", (True, False): "sendonly",
                                 (False, True): "recvonly", (False, False): "inactive"}[
            (not held[other], not held[who])]
        assert mine.direction == {"sendrecv": "sendrecv", "sendonly": "recvonly",
                                  "recvonly": "sendonly", "inactive": "inactive"}[got.direction]
        assert got.ice.ufrag == ice[other].ufrag and mine.ice.ufrag == ice[who].ufrag
        assert got.ice_restart == (action == "restart") == mine.ice_restart


def test_failed_exchanges_leave_hold_state_alone():
    alice, bob = pair()
    unacceptable = ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                    "m=audio 5000 RTP/AVP 18\r\nm=audio 5002 RTP/AVP 0\r\n")
    with pytest.raises(SdpError):
        bob.create_answer(unacceptable[: unacceptable.index("m=audio 5002")], BOB_ICE, hold=True)
    assert not bob.held
    offer = alice.create_offer(ALICE_ICE, hold=True)
    alice.cancel_offer()                     # e.g. the re-INVITE got 491
    assert alice.held                        # the offer went out; the caller retries it
    assert alice.local.media[0].direction == "sendrecv"   # the session in force is unchanged
    assert offer.media[0].direction == "sendonly"
