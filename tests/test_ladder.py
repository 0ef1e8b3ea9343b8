"""siplink.calltest.ladder: text and HTML ladders from trace records made by the real codecs (SIP
messages from siplink.sip.message, STUN checks from ice.stun), and cutting one call out of a
trace shared by several calls."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ice import stun
from ice.trace import TraceRecord
from siplink.calltest.ladder import call_records, ladder_entries, render_html, render_text
from siplink.sip.message import make_request, make_response, trace_record

ME = ("127.0.0.1", 5070)
BOB = ("127.0.0.1", 5080)
ME_RTP = ("127.0.0.1", 40000)
BOB_RTP = ("127.0.0.1", 40002)


def _invite(call_id: str) -> bytes:
    req = make_request("INVITE", "sip:bob@127.0.0.1:5080", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + call_id),
        ("Max-Forwards", "70"), ("From", "<sip:alice@127.0.0.1>;tag=a1"),
        ("To", "<sip:bob@127.0.0.1:5080>"), ("Call-ID", call_id), ("CSeq", "1 INVITE"),
        ("Contact", "<sip:alice@127.0.0.1:5070>")])
    return req.serialize()


def _call(call_id: str, t0: float) -> list[TraceRecord]:
    from siplink.sip.message import parse_message

    inv = parse_message(_invite(call_id))
    ok = make_response(inv, 200, to_tag="b1")  # type: ignore[arg-type]
    check = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, bytes(range(12)))
    check[stun.Attr.USERNAME] = "bob1:ali1"
    check[stun.Attr.USE_CANDIDATE] = True
    raw_check = stun.encode(check)
    resp = stun.Message(stun.Method.BINDING, stun.Class.SUCCESS, bytes(range(12)))
    resp[stun.Attr.XOR_MAPPED_ADDRESS] = ME_RTP
    raw_resp = stun.encode(resp)
    return [
        trace_record(inv, "out", t0, local=ME, remote=BOB),
        trace_record(ok, "in", t0 + 0.010, local=ME, remote=BOB),
        TraceRecord(t0 + 0.011, "event", "pair s0c1 host -> host Waiting", protocol="ice"),
        TraceRecord(t0 + 0.012, "out", "check USE-CANDIDATE ...", "", ME_RTP, BOB_RTP, "stun",
                    raw_check),
        TraceRecord(t0 + 0.013, "in", "check response ...", "", ME_RTP, BOB_RTP, "stun",
                    raw_resp),
        TraceRecord(t0 + 0.014, "event", "selected s0c1 host 127.0.0.1:40000 -> host",
                    protocol="ice"),
        TraceRecord(t0 + 0.020, "out", "RTP", "", ME_RTP, BOB_RTP, "rtp", b"\x80" * 20),
    ]


def test_entries_keep_sip_stun_and_ice_milestones_only() -> None:
    entries = ladder_entries(_call("c1", 100.0))
    assert [e.label for e in entries] == [
        "INVITE sip:bob@127.0.0.1:5080", "200 OK (INVITE)", "Binding req USE-CAND",
        "Binding ok", "selected s0c1 host 127.0.0.1:40000 -> host"]
    assert [e.peer for e in entries[:4]] == ["127.0.0.1:5080"] * 2 + ["127.0.0.1:40002"] * 2


def test_text_ladder_arrows_point_the_right_way() -> None:
    text = render_text(_call("c1", 100.0))
    lines = text.splitlines()
    head = lines[0]
    me, sip, media = (head.index(n) + len(n) // 2 for n in
                      ("siplink", "127.0.0.1:5080", "127.0.0.1:40002"))
    assert me < sip < media
    invite = next(ln for ln in lines if "INVITE" in ln)
    ok = next(ln for ln in lines if "200 OK" in ln)
    check = next(ln for ln in lines if "USE-CAND" in ln)
    assert invite.index(">|") + 1 == sip
    assert "|<" in ok and ok.index("|<") == me
    assert check.index(">|") + 1 == media        # the STUN check goes to the media column
    assert re.match(r"^\s+0\.0\s", invite) and re.match(r"^\s+10\.0\s", ok)
    assert "* selected s0c1" in text and "Waiting" not in text and "RTP" not in text


def test_html_is_standalone_and_carries_the_messages() -> None:
    page = render_html(_call("c1", 100.0), title="t <1>")
    assert "<script" not in page and "http" not in page.split("<body>")[0]
    assert "t &lt;1&gt;" in page
    rows: list[dict[str, str]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "tr" and any(k == "data-dir" for k, _ in attrs):
                rows.append({k: v or "" for k, v in attrs})

    P().feed(page)
    assert [(r["data-proto"], r["data-dir"]) for r in rows] == [
        ("sip", "out"), ("sip", "in"), ("stun", "out"), ("stun", "in")]
    assert "Call-ID: c1" in page          # the whole message folds open


def test_call_records_cuts_one_call_out() -> None:
    both = _call("c1", 100.0) + _call("c2", 100.005)
    sip_only = [r for r in both if r.protocol == "sip"]
    media = [r for r in _call("c2", 100.005) if r.protocol != "sip"]
    mine = call_records(sip_only, "c2", media)
    assert [r.time for r in mine] == sorted(r.time for r in mine)
    sip = [r for r in mine if r.protocol == "sip"]
    assert len(sip) == 2 and all("Call-ID: c2" in r.detail for r in sip)
    assert len(mine) == len(media) + 2
    assert render_text([]) == "(empty trace)\n"


def test_sip_label_comes_from_the_message_itself() -> None:
    from siplink.calltest.ladder import sip_label

    ack = _invite("c3").replace(b"INVITE sip:", b"ACK sip:", 1).replace(b"1 INVITE", b"1 ACK")
    # the transaction layer summarises the ACK of a non-2xx with its INVITE
    r = TraceRecord(1.0, "out", "INVITE sip:bob@127.0.0.1:5080", ack.decode(), ME, BOB, "sip",
                    ack)
    assert sip_label(r) == "ACK sip:bob@127.0.0.1:5080"
