"""Property tests: random and mutated SDP only ever raises SdpError, and what parses round-trips.

Kept fast for the default suite (a few hundred examples each); long runs with a time budget:
``python bench/fuzz_sdp.py --budget 600``.
"""

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ice.candidate import Candidate, CandidateType
from sdp import IceParams, OfferAnswer, SdpError, parse
from sdp.ice import format_candidate, parse_candidate

# bench/fuzz_sdp.py raises this to run many more examples per test.
SCALE = max(1, int(os.environ.get("SDP_FUZZ_SCALE", "1")))

DATA = Path(__file__).resolve().parent / "data"
CORPUS = [p.read_bytes() for p in sorted((DATA / "sdp").glob("*.sdp"))]
CORPUS_LINES = sorted({line for text in CORPUS for line in text.decode().splitlines()})

# Lines meant to hit the edges of every rule we model.
TRICKY = [
    "a=ice-ufrag:0012", "a=ice-pwd:NaN", "a=ice-options:", "a=ice-options:trickle  ice2",
    "a=candidate:1 1 UDP 1 1.2.3.4 5 typ host tcptype", "a=candidate:x 1 tcp 1 ::1 0 typ relay",
    "a=candidate:1 1 UDP 1 1.2.3.4 5 typ srflx raddr 1.2.3.4 rport", "a=candidate:",
    "a=remote-candidates:", "a=remote-candidates:1 1.2.3.4 5 2", "a=rtcp:", "a=rtcp:1 IN IP7 x",
    "a=rtcp:99999", "a=rtpmap:", "a=rtpmap:0 PCMU/", "a=rtpmap:0 PCMU/8000/", "a=rtpmap:200 x/1",
    "a=fmtp:", "a=fmtp:0", "a=fmtp:0 ", "a=ptime:", "a=ptime:.", "a=ptime:1.2.3", "a=ptime:0",
    "a=ptime:99999999999999999999", "a=sendrecv:x", "a=inactive", "a=end-of-candidates:1",
    "a=ice-lite", "a=ice-mismatch", "a=rtcp-mux", "m=audio 0 RTP/AVP 0", "m=audio 1 x y",
    "m=video 99999 RTP/AVP 96", "m=audio 5 RTP/AVP 128", "m= 5 RTP/AVP 0", "c=IN IP4 ",
    "c=IN IP6 ::", "c=IN IP4 1.2.3.4/127", "b=AS:", "b=AS:99999999999999999999999",
    "t=0", "t=99999999999999999999999 0", "o=- 1 1 IN IP4 x", "v=0", "s=", "i=", "k=clear:x",
    "z=0 0", "r=7d 1h 0 25h", "x=1", "a=", "a=:", "a=\u00e9", "m=audio 5 RTP/AVP 0 ",
    "a=candidate:1 1 UDP 4294967296 1.2.3.4 5 typ host",
    "a=candidate:\u0663 1 UDP 1 1.2.3.4 5 typ host", "m=audio \u0663 RTP/AVP 0",
]


def check(text):
    """parse -> either SdpError, or a model that serialises and parses back equal."""
    try:
        sd = parse(text)
    except SdpError as exc:
        assert exc.reason
        return None
    out = sd.serialize()
    assert parse(out) == sd
    return sd


def answer(sd):
    oa = OfferAnswer("127.0.0.1", port=4000,
                     protos=("RTP/AVP", "RTP/AVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF"))
    ice = IceParams("abcd", "abcdefghijklmnopqrstuv",
                    (Candidate("f", 1, "udp", 100, "127.0.0.1", 4000, CandidateType.HOST),))
    try:
        ans = oa.create_answer(sd, ice)
    except SdpError as exc:
        assert exc.reason
        return
    assert len(ans.media) == len(sd.media)
    assert parse(ans.serialize()) == ans


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_random_input_only_raises_sdp_error(data):
    check(data)


@st.composite
def mutated(draw):
    base = draw(st.sampled_from(CORPUS)).decode()
    lines = base.replace("\r\n", "\n").split("\n")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 5))
        last = max(0, len(lines) - 1)
        # mostly after v=/o=/s= (else nearly every example stops at the first line)
        first = 0 if draw(st.integers(0, 9)) == 0 else min(3, last)
        i = draw(st.integers(first, last))
        if op == 0 and lines:
            del lines[i]
        elif op == 1:
            lines.insert(i, draw(st.sampled_from(TRICKY)))
        elif op == 2:
            lines.insert(i, draw(st.sampled_from(CORPUS_LINES)))
        elif op == 3 and lines and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            ch = draw(st.characters(codec="utf-8"))
            lines[i] = lines[i][:j] + ch + lines[i][j + 1:]
        elif op == 4 and lines:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == 5 and lines:
            lines.insert(i, lines[i])
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    return eol.join(lines)


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_corpus_only_raises_sdp_error_and_round_trips(text):
    sd = check(text)
    if sd is not None:
        answer(sd)


@settings(max_examples=300 * SCALE, deadline=None)
@given(
    foundation=st.text("abcXYZ019+/", min_size=1, max_size=32),
    component=st.integers(1, 256),
    transport=st.sampled_from(["udp", "tcp"]),
    priority=st.integers(0, 2**32 - 1),
    address=st.one_of(st.ip_addresses().map(str), st.just("host-1.local")),
    port=st.integers(0, 65535),
    kind=st.sampled_from(list(CandidateType)),
    related=st.one_of(st.none(), st.tuples(st.ip_addresses().map(str), st.integers(0, 65535))),
    tcptype=st.one_of(st.none(), st.sampled_from(["active", "passive", "so"])),
    generation=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    extensions=st.lists(st.tuples(st.sampled_from(["network-id", "network-cost", "ufrag"]),
                                  st.text("abc123", min_size=1, max_size=8)), max_size=3),
)
def test_candidate_round_trip(foundation, component, transport, priority, address, port, kind,
                              related, tcptype, generation, extensions):
    c = Candidate(foundation, component, transport, priority, address, port, kind,
                  related[0] if related else None, related[1] if related else None,
                  tcptype, generation, tuple(extensions))
    assert parse_candidate(format_candidate(c)) == c
