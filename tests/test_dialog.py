"""RFC 3261 §12 dialogs: creation on both sides, route sets, loose/strict routing, CSeq."""

from __future__ import annotations

from siplink.core.dialog import Dialog, DialogState
from siplink.sip.message import make_request, make_response, parse_message


def invite(record_route: list[str] | None = None) -> object:
    hdrs = [("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"), ("Max-Forwards", "70"),
            ("From", '"Alice" <sip:alice@a.test>;tag=aaa'), ("To", "<sip:bob@b.test>"),
            ("Call-ID", "dlg1"), ("CSeq", "7 INVITE"), ("Contact", "<sip:alice@127.0.0.1:5070>")]
    hdrs += [("Record-Route", rr) for rr in record_route or []]
    return parse_message(bytes(make_request("INVITE", "sip:bob@b.test", hdrs)))


RR = ["<sip:p2.test;lr>", "<sip:p1.test;lr>"]   # as the UAS sees them (p2 nearest to it)


def test_uac_dialog_from_2xx_reverses_record_route_and_routes_loosely() -> None:
    req = invite(RR)
    ok = parse_message(bytes(make_response(req, 200, to_tag="bbb", headers=[
        ("Record-Route", r) for r in RR] + [("Contact", "<sip:bob@127.0.0.1:5080>")])))
    d = Dialog.from_uac(req, ok)
    assert d.state is DialogState.CONFIRMED
    assert d.id == ("dlg1", "aaa", "bbb")
    assert d.route_set == ["<sip:p1.test;lr>", "<sip:p2.test;lr>"]
    assert d.remote_target == "sip:bob@127.0.0.1:5080"
    assert str(d.next_hop()) == "sip:p1.test;lr"
    bye = parse_message(bytes(d.create_request("BYE", via="SIP/2.0/UDP h:1;branch=z9hG4bK2")))
    assert str(bye.uri) == "sip:bob@127.0.0.1:5080"
    assert [str(r.uri) for r in bye.route] == ["sip:p1.test;lr", "sip:p2.test;lr"]
    assert bye.cseq.number == 8 and bye.cseq.method == "BYE"
    assert bye.from_.tag == "aaa" and bye.to.tag == "bbb"
    assert bye.from_.display_name == "Alice"


def test_strict_router_becomes_the_request_uri() -> None:
    req = invite(["<sip:strict.test>"])
    ok = parse_message(bytes(make_response(req, 200, to_tag="b", headers=[
        ("Record-Route", "<sip:strict.test>"), ("Contact", "<sip:bob@127.0.0.1:5080>")])))
    d = Dialog.from_uac(req, ok)
    bye = parse_message(bytes(d.create_request("BYE", via="SIP/2.0/UDP h:1;branch=z9hG4bK3")))
    assert str(bye.uri) == "sip:strict.test"
    assert [str(r.uri) for r in bye.route] == ["sip:bob@127.0.0.1:5080"]


def test_early_dialog_confirmed_by_2xx_and_target_refresh() -> None:
    req = invite()
    ringing = parse_message(bytes(make_response(req, 180, to_tag="b", headers=[
        ("Contact", "<sip:bob@127.0.0.1:1111>")])))
    d = Dialog.from_uac(req, ringing)
    assert d.state is DialogState.EARLY
    ok = parse_message(bytes(make_response(req, 200, to_tag="b", headers=[
        ("Contact", "<sip:bob@127.0.0.1:2222>")])))
    d.confirm(ok)
    assert d.state is DialogState.CONFIRMED and d.remote_target == "sip:bob@127.0.0.1:2222"


def test_uas_dialog_checks_cseq_order_and_refreshes_target() -> None:
    req = invite(RR)
    d = Dialog.from_uas(req, "bbb", "<sip:bob@127.0.0.1:5080>", confirmed=True)
    assert d.id == ("dlg1", "bbb", "aaa") and d.remote_seq == 7
    assert d.route_set == RR                                   # UAS keeps the order
    d2 = Dialog.from_uac(req, parse_message(bytes(make_response(req, 200, to_tag="bbb"))))
    reinvite = parse_message(bytes(make_request("INVITE", "sip:bob@127.0.0.1:5080", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK9"), ("From", str(req.from_)),
        ("To", "<sip:bob@b.test>;tag=bbb"), ("Call-ID", "dlg1"), ("CSeq", "9 INVITE"),
        ("Contact", "<sip:alice@127.0.0.1:6000>")])))
    assert d.receive_request(reinvite) is None
    assert d.remote_target == "sip:alice@127.0.0.1:6000" and d.remote_seq == 9
    old = parse_message(bytes(make_request("INFO", "sip:bob@127.0.0.1:5080", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK8"), ("From", str(req.from_)),
        ("To", "<sip:bob@b.test>;tag=bbb"), ("Call-ID", "dlg1"), ("CSeq", "8 INFO")])))
    assert d.receive_request(old) == 500
    assert d2.local_seq == 7
