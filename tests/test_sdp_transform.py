"""Regression tests for the sdp-transform 1.1.0 defects that sdp/transform.py neutralises.

Each ``test_defect_*`` fails if the defect reaches our model. ``test_pinned_library_*`` shows
the defect is still there in the pinned library (so the workaround is still needed; if one
fails after an upgrade, re-check the workaround and the pin).
"""

from importlib.metadata import version

import pytest
import sdp_transform

from ice.candidate import CandidateType
from sdp import SdpError, parse
from sdp.session import MediaDescription, Origin, SessionDescription
from sdp.transform import PINNED_VERSION

BASE = (
    "v=0\r\n"
    "o=- 1 1 IN IP4 192.0.2.1\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.1\r\n"
    "t=0 0\r\n"
)


def sdp_with(media_attrs: str, session_attrs: str = "", m: str = "m=audio 4000 RTP/AVP 0\r\n") -> str:
    return BASE + session_attrs + m + media_attrs


def test_pinned_version_is_the_verified_one():
    assert version("sdp-transform") == PINNED_VERSION == "1.1.0"


# --- W1: numeric coercion ----------------------------------------------------------------------

@pytest.mark.parametrize("token", ["0012", "1e5", "NaN", "0000", "12", "inf"])
def test_defect_numeric_coercion_ufrag_pwd_stay_strings(token):
    pwd = token * 6
    sd = parse(sdp_with(f"a=ice-ufrag:{token}\r\na=ice-pwd:{pwd}\r\n"))
    assert sd.media[0].ice_ufrag == token
    assert sd.media[0].ice_pwd == pwd
    # and they survive serialisation
    again = parse(sd.serialize())
    assert again.media[0].ice_ufrag == token and again == sd


def test_defect_numeric_coercion_session_level_and_foundation():
    sd = parse(sdp_with(
        "a=candidate:0012 1 UDP 2113667327 192.0.2.1 4000 typ host\r\n",
        session_attrs="a=ice-ufrag:0012\r\na=ice-pwd:1e5xxxxxxxxxxxxxxxxxxxxx\r\n",
    ))
    assert sd.ice_ufrag == "0012" and sd.media[0].ice_ufrag == "0012"
    assert sd.ice_pwd == "1e5xxxxxxxxxxxxxxxxxxxxx"
    assert sd.media[0].candidates[0].foundation == "0012"


def test_defect_numeric_coercion_origin_session_id_and_fmtp():
    text = sdp_with("a=fmtp:0 0012\r\na=x-token:1e5\r\n").replace("o=- 1 1", "o=- 0042 7")
    sd = parse(text)
    assert sd.origin.sess_id == "0042"
    assert sd.origin.sess_version == 7
    assert sd.media[0].codecs[0].fmtp == "0012"
    assert sd.media[0].attributes == ["x-token:1e5"]


def test_pinned_library_coerces_ufrag():
    raw = sdp_transform.parse(sdp_with("a=ice-ufrag:0012\r\na=ice-pwd:NaN\r\n"))
    assert raw["media"][0]["iceUfrag"] == 12
    assert raw["media"][0]["icePwd"] != raw["media"][0]["icePwd"]  # nan


# --- W2: tcptype -------------------------------------------------------------------------------

def test_defect_tcptype_kept_with_following_extensions():
    sd = parse(sdp_with(
        "a=candidate:2 1 TCP 2124414975 10.0.1.1 8998 typ host tcptype passive generation 3"
        " network-id 7\r\n"
        "a=candidate:5 1 TCP 1684013055 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998"
        " tcptype so\r\n"
    ))
    c, d = sd.media[0].candidates
    assert (c.transport, c.tcptype, c.generation, c.extensions) == (
        "tcp", "passive", 3, (("network-id", "7"),))
    assert d.type is CandidateType.SERVER_REFLEXIVE and d.tcptype == "so"
    assert (d.related_address, d.related_port) == ("10.0.1.1", 8998)
    text = sd.serialize()
    assert "tcptype passive generation 3 network-id 7" in text
    assert "tcpfield" not in text
    assert parse(text) == sd


def test_pinned_library_loses_tcptype():
    raw = sdp_transform.parse(sdp_with(
        "a=candidate:2 1 TCP 2124414975 10.0.1.1 8998 typ host tcptype passive generation 3\r\n"))
    cand = raw["media"][0]["candidates"][0]
    assert "tcptype" not in cand and "generation" not in cand


# --- W3: silent drops of malformed input ------------------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ("", "at least"),
    ("hello world\r\n" + BASE + "m=audio 4000 RTP/AVP 0\r\n", "not an SDP line"),
    (BASE.replace("v=0\r\n", "") + "m=audio 4000 RTP/AVP 0\r\n", "expected v="),
    (BASE.replace("o=- 1 1 IN IP4 192.0.2.1", "o=garbage") + "m=audio 4000 RTP/AVP 0\r\n",
     "malformed o="),
    (BASE.replace("IN IP4 192.0.2.1\r\ns", "ATM NSAP 47.0005\r\ns") + "m=audio 4000 RTP/AVP 0\r\n",
     "malformed o="),
    (BASE.replace("o=- 1 1 IN IP4", "o=- 1 1 XX IP4") + "m=audio 4000 RTP/AVP 0\r\n",
     "unknown network type"),
    (BASE.replace("c=IN IP4", "c=IN IP5") + "m=audio 4000 RTP/AVP 0\r\n", "address type"),
    (BASE + "m=audio 4000 RTP/AVP 0\r\nthis is not sdp\r\n", "not an SDP line"),
    (BASE + "m=audio 4000 RTP/AVP 0\r\nx=unknown\r\n", "not an SDP line"),
    (BASE.replace("t=0 0\r\n", "") + "m=audio 4000 RTP/AVP 0\r\n", "missing t="),
    (BASE + "m=audio abc RTP/AVP 0\r\n", "m="),
    (BASE + "m=audio 70000 RTP/AVP 0\r\n", "out of range"),
    (BASE + "m=audio 4000 RTP/AVP\r\n", "without formats"),
    (BASE + "m=audio 4000 RTP/AVP 0 PCMU\r\n", "payload type"),
    (BASE.replace("c=IN IP4 192.0.2.1\r\n", "") + "m=audio 4000 RTP/AVP 0\r\n", "no c="),
    (sdp_with("a=candidate:1 1 UDP 1 192.0.2.1 4000 typ\r\n"), "candidate"),
    (sdp_with("a=candidate:1 1 UDP notanumber 192.0.2.1 4000 typ host\r\n"), "priority"),
    (sdp_with("a=candidate:1 0 UDP 1 192.0.2.1 4000 typ host\r\n"), "component"),
    (sdp_with("a=candidate:1 1 UDP 1 192.0.2.1 99999 typ host\r\n"), "port"),
    (sdp_with("a=candidate:1 1 UDP 1 not_an@address 4000 typ host\r\n"), "address"),
    (sdp_with("a=candidate:1 1 UDP 1 192.0.2.1 4000 typ srflx raddr 10.0.0.1\r\n"), "candidate"),
    (sdp_with("a=candidate:1 1 TCP 1 192.0.2.1 4000 typ host tcptype sideways\r\n"), "tcptype"),
    (sdp_with("a=rtcp:abc\r\n"), "a=rtcp"),
    (sdp_with("a=rtcp:\r\n"), "a=rtcp port"),
    (sdp_with("a=rtpmap:0 PCMU\r\n"), "a=rtpmap"),
    (sdp_with("a=ptime:fast\r\n"), "a=ptime"),
    (sdp_with("a=ice-ufrag:\r\n"), "a=ice-ufrag"),
    (sdp_with("a=ice-ufrag:has space\r\n"), "a=ice-ufrag"),
    (sdp_with("a=remote-candidates:1 192.0.2.1\r\n"), "remote-candidates"),
    (sdp_with("a=\r\n"), "attribute name"),
    (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=\xff\r\nt=0 0\r\n", "UTF-8"),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=\x00\r\nt=0 0\r\n", "NUL"),
    ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n", "version"),
])
def test_defect_garbage_raises_sdp_error(text, reason):
    with pytest.raises(SdpError) as info:
        parse(text)
    assert reason.lower() in info.value.reason.lower()


def test_sdp_error_names_the_line():
    with pytest.raises(SdpError) as info:
        parse(sdp_with("a=sendrecv\r\na=rtcp:abc\r\n"))
    assert info.value.line == 8
    assert "line 8" in str(info.value)


def test_pinned_library_drops_garbage_silently():
    raw = sdp_transform.parse("hello\r\no=garbage\r\nm=audio abc RTP/AVP 0\r\na=rtcp:abc\r\n")
    media = raw["media"][0]                # the bad m= left a dict without type or port
    assert "type" not in media and "port" not in media
    assert media["rtcp"] == {"port": ""}
    assert "origin" not in raw and "version" not in raw


# --- W4: write() crash cases -------------------------------------------------------------------

def test_defect_write_crash_inputs_never_reach_write():
    for text in (sdp_with("a=rtcp:abc\r\n"), BASE + "m=audio  RTP/AVP 0\r\n",
                 BASE + "m=audio x RTP/AVP 0\r\n"):
        with pytest.raises(SdpError):
            parse(text)


def test_pinned_library_write_crashes_on_its_own_parse():
    for text in (sdp_with("a=rtcp:abc\r\n"), BASE + "m=audio x RTP/AVP 0\r\n"):
        with pytest.raises((TypeError, KeyError)):
            sdp_transform.write(sdp_transform.parse(text))


@pytest.mark.parametrize("change", [
    lambda m: setattr(m, "port", -1),
    lambda m: setattr(m, "port", "4000"),
    lambda m: setattr(m, "port", 65536),
    lambda m: setattr(m, "direction", "sideways"),
    lambda m: setattr(m, "kind", "au dio"),
    lambda m: setattr(m, "ptime", float("nan")),
    lambda m: setattr(m, "ice_ufrag", "bad ufrag"),
    lambda m: setattr(m, "attributes", ["ok", "bad\r\nline"]),
    lambda m: setattr(m, "codecs", []),
])
def test_defect_bad_models_give_sdp_error_not_type_error(change):
    sd = parse(sdp_with("a=sendrecv\r\n"))
    change(sd.media[0])
    with pytest.raises(SdpError):
        sd.serialize()


def test_bad_origin_model_gives_sdp_error():
    sd = SessionDescription(origin=Origin("-", "x1", 1, "192.0.2.1"),
                            media=[MediaDescription("audio", 4000, "RTP/AVP")])
    with pytest.raises(SdpError):
        sd.serialize()


# --- W5: payloads int/str ----------------------------------------------------------------------

@pytest.mark.parametrize("fmts, pts", [("0", [0]), ("0 8 101", [0, 8, 101]), ("8", [8])])
def test_defect_payloads_type_normalised(fmts, pts):
    sd = parse(BASE + f"m=audio 4000 RTP/AVP {fmts}\r\na=rtpmap:101 telephone-event/8000\r\n")
    assert [c.pt for c in sd.media[0].codecs] == pts
    assert all(isinstance(c.pt, int) for c in sd.media[0].codecs)
    assert sd.media[0].fmt == [str(p) for p in pts]


def test_pinned_library_payloads_type_varies():
    one = sdp_transform.parse(BASE + "m=audio 4000 RTP/AVP 0\r\n")["media"][0]["payloads"]
    many = sdp_transform.parse(BASE + "m=audio 4000 RTP/AVP 0 8\r\n")["media"][0]["payloads"]
    assert isinstance(one, int) and isinstance(many, str)


# --- W6, W7, W9: ice-options, bandwidth types, ptime precision ------------------------------

def test_defect_ice_options_keep_every_token():
    sd = parse(sdp_with("a=ice-options:ice2 rtp+ecn\r\n", session_attrs="a=ice-options:trickle ice2\r\n"))
    assert sd.ice_options == ["trickle", "ice2"]
    assert sd.media[0].ice_options == ["ice2", "rtp+ecn"]
    assert sd.ice_options_for(sd.media[0]) == ["trickle", "ice2", "rtp+ecn"]
    assert parse(sd.serialize()) == sd
    raw = sdp_transform.parse(sdp_with("", session_attrs="a=ice-options:trickle ice2\r\n"))
    assert raw["iceOptions"] == "trickle"


def test_defect_unknown_bandwidth_type_kept():
    sd = parse(BASE.replace("t=0", "b=X-YZ:128\r\nt=0") + "m=audio 4000 RTP/AVP 0\r\nb=TIAS:64000\r\n")
    assert [(b.bwtype, b.value) for b in sd.bandwidth] == [("X-YZ", 128)]
    assert [(b.bwtype, b.value) for b in sd.media[0].bandwidth] == [("TIAS", 64000)]
    assert parse(sd.serialize()) == sd


@pytest.mark.parametrize("ptime", ["0.1234567", "0.00001", "20", "0.125", "2.5"])
def test_defect_ptime_written_exactly(ptime):
    sd = parse(sdp_with(f"a=ptime:{ptime}\r\n"))
    assert sd.media[0].ptime == float(ptime)
    assert parse(sd.serialize()).media[0].ptime == float(ptime)


# --- W10: line splitting ------------------------------------------------------------------

def test_defect_unicode_separators_do_not_split_lines():
    text = BASE.replace("s=-", "s=a\u2028b") + "a=tool:x\x85y\x0cz\r\n"
    sd = parse(text)
    assert sd.name == "a\u2028b" and sd.attributes == ["tool:x\x85y\x0cz"]
    assert parse(sd.serialize()) == sd
    raw = sdp_transform.parse(text)
    assert raw["name"] == "a" and raw["invalid"] == [{"value": "tool:x"}]


# --- W8: reordering: compare models ------------------------------------------------------------

def test_write_reorders_but_model_round_trips(corpus_dir):
    text = (corpus_dir / "sdp" / "baresip-offer-ice-relay.sdp").read_bytes()
    sd = parse(text)
    out = sd.serialize()
    assert out != text.decode()
    assert out.endswith("\r\n") and "\n" not in out.replace("\r\n", "")
    assert parse(out) == sd


def test_lf_and_crlf_and_trailing_blank_lines_parse_alike():
    crlf = sdp_with("a=sendrecv\r\n")
    assert parse(crlf) == parse(crlf.replace("\r\n", "\n")) == parse(crlf + "\r\n\r\n")
    assert parse(crlf.encode()) == parse(crlf)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("text", [
    BASE + "m=audio " + "9" * 100_000 + " RTP/AVP 0\r\n",
    BASE.replace("o=- 1 1", "o=- 1 " + "9" * 10_000) + "m=audio 4000 RTP/AVP 0\r\n",
    BASE.replace("IN IP4 192.0.2.1\r\ns", "X" * 10_000 + " IP4 192.0.2.1\r\ns"),
    sdp_with("a=candidate:1 1 UDP 1 192.0.2.1 5 typ host" + " a" * 60_001 + "\r\n"),
    sdp_with("a=ice-options:" + " ".join(f"o{i}" for i in range(30_000)) + "\r\n"),
    sdp_with("a=rtpmap:0 PCMU/8000\r\n" * 10_000),
    BASE + "m=audio 1 RTP/AVP 0\r\n" * 100,
    "v=0\r\n" * 300_000,
], ids=["port-digits", "version-digits", "nettype", "candidate-tail", "ice-options",
        "rtpmaps", "media-lines", "too-large"])
def test_hostile_sizes_are_bounded(text):
    try:
        sd = parse(text)
    except SdpError as exc:
        assert len(exc.reason) <= SdpError.MAX_REASON
    else:
        assert parse(sd.serialize()) == sd
