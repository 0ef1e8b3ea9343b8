"""sdp.ice: a=candidate / a=remote-candidates <-> ice.candidate objects, defaults, mismatch.

Cross-checked against aioice 0.13.0's own candidate SDP codec (an independent implementation).
"""

from pathlib import Path

import aioice
import pytest

from ice.candidate import Candidate, CandidateType
from sdp import SdpError, parse
from sdp.ice import (
    RemoteCandidate,
    check_credential,
    choose_default,
    default_destination_in_candidates,
    format_candidate,
    format_remote_candidates,
    is_trickle_placeholder,
    parse_candidate,
    parse_remote_candidates,
)

DATA = Path(__file__).resolve().parent / "data"
CORPUS_CANDIDATE_LINES = sorted({
    line[2:] for p in (DATA / "sdp").glob("*.sdp")
    for line in p.read_text().splitlines() if line.startswith("a=candidate:")
})


def test_corpus_has_many_candidates():
    assert len(CORPUS_CANDIDATE_LINES) >= 40


@pytest.mark.parametrize("value", CORPUS_CANDIDATE_LINES)
def test_corpus_candidates_agree_with_aioice(value):
    ours = parse_candidate(value)
    theirs = aioice.Candidate.from_sdp(value.split(":", 1)[1])
    assert ours is not None
    assert (ours.foundation, ours.component, ours.transport, ours.priority, ours.address,
            ours.port, ours.type.value, ours.related_address, ours.related_port, ours.tcptype,
            ours.generation) == (
        theirs.foundation, theirs.component, theirs.transport.lower(), theirs.priority,
        theirs.host, theirs.port, theirs.type, theirs.related_address, theirs.related_port,
        theirs.tcptype, theirs.generation)
    # what we write, aioice reads back the same
    again = aioice.Candidate.from_sdp(format_candidate(ours).split(":", 1)[1])
    assert again.to_sdp().lower() == theirs.to_sdp().lower()


def test_aioice_written_candidates_parse():
    c = aioice.Candidate("0012", 2, "tcp", 1518280447, "192.0.2.9", 9, "srflx",
                         related_address="10.0.0.1", related_port=9, tcptype="active",
                         generation=0)
    ours = parse_candidate("candidate:" + c.to_sdp())
    assert ours == Candidate("0012", 2, "tcp", 1518280447, "192.0.2.9", 9,
                             CandidateType.SERVER_REFLEXIVE, "10.0.0.1", 9, "active", 0)


def test_format_candidate_rfc8839_order():
    c = Candidate("abc", 1, "tcp", 5, "192.0.2.1", 9, CandidateType.SERVER_REFLEXIVE,
                  "10.0.0.1", 1000, "passive", 2, (("network-id", "1"),))
    assert format_candidate(c) == ("candidate:abc 1 TCP 5 192.0.2.1 9 typ srflx raddr 10.0.0.1"
                                   " rport 1000 tcptype passive generation 2 network-id 1")


@pytest.mark.parametrize("value", [
    "candidate:1 1 UDP 1 192.0.2.1 5 typ host extra",           # dangling extension name
    "candidate:1 1 UDP 1 192.0.2.1 5 typ host raddr 1.2.3.4",   # raddr without rport
    "candidate:" + "a" * 33 + " 1 UDP 1 192.0.2.1 5 typ host",  # foundation > 32
    "candidate:a_b 1 UDP 1 192.0.2.1 5 typ host",               # not ice-chars
    "candidate:1 257 UDP 1 192.0.2.1 5 typ host",
    "candidate:1 1 UDP 4294967296 192.0.2.1 5 typ host",
    "candidate:1 1 UDP 1 192.0.2.1 5 typ host generation x",
    "candidate:1 1 UDP 1 999.1.1.1 5 typ host",
])
def test_malformed_candidates(value):
    with pytest.raises(SdpError):
        parse_candidate(value)


def test_remote_candidates_round_trip():
    items = (RemoteCandidate(1, "192.0.2.1", 5000), RemoteCandidate(2, "2001:db8::2", 5001))
    text = format_remote_candidates(items)
    assert text == "1 192.0.2.1 5000 2 2001:db8::2 5001"
    assert parse_remote_candidates("remote-candidates:" + text) == items
    with pytest.raises(SdpError):
        parse_remote_candidates("remote-candidates:1 192.0.2.1 70000")


def test_credentials():
    assert check_credential("0012", "u", minimum=4) == "0012"
    for bad in ("", "a b", "a:b", "x" * 257):
        with pytest.raises(SdpError):
            check_credential(bad, "u")
    with pytest.raises(SdpError):
        check_credential("abc", "u", minimum=4)


def test_choose_default_prefers_relay_then_srflx_then_host_udp():
    host = Candidate("h", 1, "udp", 300, "10.0.0.1", 1, CandidateType.HOST)
    srflx = Candidate("s", 1, "udp", 200, "192.0.2.1", 2, CandidateType.SERVER_REFLEXIVE)
    relay_lo = Candidate("r", 1, "udp", 5, "192.0.2.2", 3, CandidateType.RELAYED)
    relay_hi = Candidate("r2", 1, "udp", 6, "192.0.2.2", 4, CandidateType.RELAYED)
    tcp = Candidate("t", 1, "tcp", 1, "192.0.2.3", 5, CandidateType.RELAYED, tcptype="passive")
    rtcp = Candidate("h", 2, "udp", 299, "10.0.0.1", 2, CandidateType.HOST)
    every = [host, srflx, relay_lo, relay_hi, tcp, rtcp]
    assert choose_default(every, 1) == relay_hi
    assert choose_default([host, srflx, tcp], 1) == srflx
    assert choose_default([host, tcp], 1) == host
    assert choose_default(every, 2) == rtcp
    assert choose_default([tcp], 1) is None


def test_default_destination_and_trickle_placeholder():
    c = [Candidate("h", 1, "udp", 1, "2001:db8::1", 5000, CandidateType.HOST)]
    assert default_destination_in_candidates("2001:0db8:0::1", 5000, c, 1)
    assert not default_destination_in_candidates("2001:db8::1", 5002, c, 1)
    assert not default_destination_in_candidates("2001:db8::1", 5000, c, 2)
    assert not default_destination_in_candidates(None, 5000, c, 1)
    assert is_trickle_placeholder("0.0.0.0", 9) and is_trickle_placeholder("::", 9)
    assert not is_trickle_placeholder("0.0.0.0", 10) and not is_trickle_placeholder("1.2.3.4", 9)


def test_baresip_default_candidates_match_rfc8839():
    for name in ("baresip-offer-ice-relay.sdp", "baresip-answer-ice.sdp"):
        m = parse((DATA / "sdp" / name).read_bytes()).media[0]
        assert default_destination_in_candidates(m.connection.address, m.port, m.candidates, 1)
        assert default_destination_in_candidates(m.rtcp.address, m.rtcp.port, m.candidates, 2)
