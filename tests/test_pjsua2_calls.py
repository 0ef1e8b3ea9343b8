"""siplink (its CLI, as a subprocess) against pjsua2 (pjsip, the stack inside Asterisk).

Every party runs in its own network namespace on one bridge (``tests/peers/pjsua2.py``):
siplink at 198.51.100.1, pjsua2 at .2 (and a second pjsua2 at .4 for the harness self-test).
pjsua2 is the independent peer: what it logged on the wire (its level-5 log holds every SIP
message) and what its stream counters say are what the tests check, against the RFCs' words:

- a call each way completes ICE, RTP flows both ways, the BYE gets 200 (RFC 3261 §15.1.2);
- RFC 3262: a reliable 180 is PRACKed, then 2xx and BYE; in-dialog requests from one side
  carry strictly increasing CSeq numbers (RFC 3261 §12.2.1.1), BYE included;
- RFC 3264 §8.4 hold/resume by re-INVITE from either side (sendonly answered recvonly, media
  stops and comes back);
- RFC 3261 §13.2.1 / RFC 3264 §5: an INVITE without an offer (late offer) gets the offer in
  the 2xx and the answer in the ACK, and the call has media;
- RFC 4733 DTMF both ways; RFC 4028 session timers negotiated in the 2xx.

The harness self-test runs the same features pjsua2-to-pjsua2 first, so a failure in the
siplink tests is siplink's, not the harness's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.netns import Lab, NetNs, count_rtp
from tests.peers.pjsua2 import (
    Lan,
    Pjsua2,
    Pjsua2Result,
    run_siplink,
    siplink_answerer,
    siplink_config,
    wait_exit,
)

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(90)]

SL, PJ, PJ2 = "198.51.100.1", "198.51.100.2", "198.51.100.4"
SL_PORT = 5070
SL_URI = f"sip:bob@{SL}:{SL_PORT}"


class Net:
    def __init__(self, lab: Lab) -> None:
        lan = Lan(lab)
        self.sl: NetNs = lan.host("sl", SL)
        self.pj: NetNs = lan.host("pj", PJ)
        self.pj2: NetNs = lan.host("pj2", PJ2)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    with Lab() as lab:
        yield Net(lab)


def seen(pj: Pjsua2, res: Pjsua2Result | None = None, extra: str = "") -> str:
    """What pjsua2 saw, for assertion messages: its SIP ladder, its summary, errors."""
    text = f"\n--- pjsua2 ({pj.ip}) SIP as logged ---\n{pj.ladder()}\n"
    if res is not None:
        call = dict(res.calls[0]) if res.calls else {}
        call.pop("dump", None)
        text += f"--- pjsua2 summary ---\n{json.dumps(call)}\nice={json.dumps(res.ice)}\n"
        text += f"errors={res.data.get('errors')}\n"
    return text + extra


def messages(pj: Pjsua2, direction: str, what: str) -> list[str]:
    """Whole SIP messages pjsua2 sent (TX) or received (RX) whose start line has ``what``."""
    return [m.text for m in pj.sip_messages()
            if m.direction == direction and what in m.first_line]


def header(msg: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", msg, re.M | re.I)
    return m.group(1) if m else None


def bye_answered(res: Pjsua2Result, direction: str) -> list[str]:
    """Responses to BYE in pjsua2's ladder: direction "RX" when pjsua2 sent the BYE."""
    return [e.split()[1] for e in res.data["sip"] if e.startswith(direction) and e.endswith(" BYE")
            and e.split()[1].isdigit()]


def in_dialog_cseqs(pj: Pjsua2, call_id: str) -> list[tuple[int, str]]:
    """(CSeq number, method) of the requests pjsua2 received in the dialog, except ACK and
    CANCEL (which reuse the INVITE's number), in arrival order, retransmissions once."""
    out: list[tuple[int, str]] = []
    for m in pj.sip_messages():
        if m.direction != "RX" or m.first_line.startswith("SIP/"):
            continue
        if header(m.text, "Call-ID") != call_id and header(m.text, "i") != call_id:
            continue
        cseq = header(m.text, "CSeq") or ""
        num, _, method = cseq.partition(" ")
        if method in ("ACK", "CANCEL") or not num.isdigit():
            continue
        entry = (int(num), method)
        if entry not in out:
            out.append(entry)
    return out


def test_harness_pjsua2_calls_pjsua2(net: Net, tmp_path: Path) -> None:
    """The agent and launcher work: pjsua2 calls pjsua2 with every feature the siplink tests
    use (late offer, 100rel, session timer, ICE, hold/resume, DTMF both ways, BYE)."""
    callee = Pjsua2(net.pj2, PJ2, "answer", workdir=tmp_path, name="callee", options=[
        "--ring", "0.3", "--100rel", "require", "--timer", "required", "--dtmf", "45",
        "--dtmf-after", "0.6", "--duration", "0"]).start()
    caller = Pjsua2(net.pj, PJ, "call", callee.uri, workdir=tmp_path, name="caller", options=[
        "--late-offer", "--100rel", "require", "--timer", "required", "--dtmf", "123",
        "--dtmf-after", "0.3", "--hold-after", "1.8", "--resume-after", "1", "--duration", "3.8"]
    ).start()
    r, e = caller.result(30), callee.result(15)
    why = seen(caller, r) + seen(callee, e)
    c, d = r.call, e.call
    invite = messages(caller, "TX", "INVITE sip:")[0]
    assert "m=audio" not in invite and header(invite, "Content-Length") == "0", why
    ringing = messages(callee, "TX", "180 Ringing")[0]
    assert "100rel" in (header(ringing, "Require") or "") and header(ringing, "RSeq"), why
    assert "uac PRACK 200" in c["tsx"], why
    ok = messages(caller, "RX", "200 OK")[1]          # [0] is the PRACK's
    assert (header(ok, "CSeq") or "").endswith("INVITE"), why
    assert "timer" in (header(ok, "Require") or ""), why
    assert header(ok, "Session-Expires"), why
    assert c["confirmed"] and d["confirmed"], why
    assert r.ice["success"] and e.ice["success"], why
    assert r.ice["selected"]["1"]["remote_type"] == "host", why
    assert c["rtp"]["rx"] >= 100 and d["rtp"]["rx"] >= 100, why
    assert c["media_states"] == ["active", "local_hold", "active"], why
    assert "remote_hold" in d["media_states"], why
    assert c["dtmf_received"] == "45" and d["dtmf_received"] == "123", why
    assert bye_answered(r, "RX") == ["200"], why
    cseqs = in_dialog_cseqs(callee, d["call_id"])
    assert [n for n, _ in cseqs] == sorted({n for n, _ in cseqs}), why


# ------------------------------------------------------------------- basic calls, both ways


def test_pjsua2_calls_siplink_answer(net: Net, tmp_path: Path) -> None:
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    pcap = tmp_path / "sl.pcap"
    cap = net.sl.capture(pcap, iface="eth0")
    ans = siplink_answerer(net.sl, SL, SL_PORT, cfg)
    pj = Pjsua2(net.pj, PJ, "call", SL_URI, workdir=tmp_path,
                options=["--duration", "2.5"]).start()
    r = pj.result(30)
    wait_exit(ans, 5)
    cap.stop()
    why = seen(pj, r, "--- siplink answer ---\n" + ans.log()[-3000:])
    c = r.call
    assert c["confirmed"] and c["statuses"][-1] == 200, why
    assert r.ice["success"], why
    sel = r.ice["selected"]["1"]
    assert sel["remote"].startswith(SL + ":") and sel["local"].startswith(PJ + ":"), why
    assert c["rtp"]["rx"] >= 75 and c["rtp"]["rx_loss"] <= 3, why      # siplink -> pjsua2
    flows = count_rtp(pcap)
    to_sl = sum(n for (src, dst), n in flows.items()
                if src == sel["local"] and dst == sel["remote"])
    assert to_sl >= 75, f"pjsua2 -> siplink RTP on the wire: {flows}" + why
    assert re.search(r"answered ended=remote-bye .*ice=host->host", ans.log()), why
    assert bye_answered(r, "RX") == ["200"], why


def test_siplink_call_to_pjsua2_with_dtmf(net: Net, tmp_path: Path) -> None:
    """siplink calls pjsua2: ICE on a host pair both agree on, RTP both ways, RFC 4733 DTMF
    each way (siplink sends 45, pjsua2 sends 789), siplink's BYE answered 200."""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    pj = Pjsua2(net.pj, PJ, "answer", workdir=tmp_path,
                options=["--duration", "0", "--dtmf", "789", "--dtmf-after", "1.0"]).start()
    out = run_siplink(net.sl, ["-c", str(cfg), "call", pj.uri, "--duration", "2.5", "--json",
                               "--expect-ice", "host", "--expect-media", "1.5", "--dtmf", "45"])
    r = pj.result(15)
    why = seen(pj, r, f"--- siplink call (exit {out.returncode}) ---\n{out.stdout}\n"
                      f"{out.stderr[-2000:]}")
    res = json.loads(out.stdout)
    c = r.call
    assert res["ok"] and res["status"] == 200, why
    assert r.ice["success"] and c["confirmed"], why
    assert res["rtp"]["received"] >= 75 and c["rtp"]["rx"] >= 75, why
    assert c["remote_rtp"] == res["ice"]["pair"].split()[2], why   # both agree on the pair
    assert bye_answered(r, "TX") == ["200"], why
    assert c["dtmf_received"] == "45", why
    assert res["dtmf_received"] == "789", why
    assert out.returncode == 0, why


# ------------------------------------------------------------------------- RFC 3262 100rel


def test_100rel_siplink_calls_pjsua2(net: Net, tmp_path: Path) -> None:
    """pjsua2 requires 100rel: reliable 180, PRACK, 200, ACK, then siplink's BYE gets 200,
    and every request siplink sends in the dialog has a higher CSeq than the one before
    (RFC 3261 §12.2.1.1; a UAS may answer a lower or equal one with 500, §12.2.2). Plain
    SDP (no ICE), so that nothing (no ICE re-INVITE) comes between the PRACK and the BYE."""
    ice = False
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    pj = Pjsua2(net.pj, PJ, "answer", workdir=tmp_path, options=[
        "--100rel", "require", "--ring", "0.3", "--duration", "0"]
        + ([] if ice else ["--no-ice"])).start()
    out = run_siplink(net.sl, ["-c", str(cfg), "call", pj.uri, "--duration", "2", "--json"]
                      + ([] if ice else ["--no-ice"]))
    r = pj.result(15)
    why = seen(pj, r, f"--- siplink call (exit {out.returncode}) ---\n{out.stdout}\n"
                      f"{out.stderr[-2000:]}")
    c = r.call
    ringing = messages(pj, "TX", "180 Ringing")
    assert ringing and "100rel" in (header(ringing[0], "Require") or ""), why
    rseq = header(ringing[0], "RSeq")
    pracks = messages(pj, "RX", "PRACK ")
    assert pracks, "siplink did not PRACK the reliable 180" + why
    invite_cseq = header(messages(pj, "RX", "INVITE sip:")[0], "CSeq")
    assert header(pracks[0], "RAck") == f"{rseq} {invite_cseq}", why     # RFC 3262 §7.2
    assert "uas PRACK 200" in c["tsx"] and c["confirmed"], why
    assert bye_answered(r, "TX") == ["200"], why
    cseqs = in_dialog_cseqs(pj, c["call_id"])
    nums = [n for n, _ in cseqs]
    assert nums == sorted(set(nums)), f"in-dialog CSeqs from siplink: {cseqs}" + why
    assert out.returncode == 0, why


def test_100rel_pjsua2_calls_siplink(net: Net, tmp_path: Path) -> None:
    """pjsua2 requires 100rel calling siplink: siplink's 180 is reliable, pjsua2's PRACK gets
    200, then the 2xx, and pjsua2's BYE gets 200."""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    ans = siplink_answerer(net.sl, SL, SL_PORT, cfg, "--ring", "0.3")
    pj = Pjsua2(net.pj, PJ, "call", SL_URI, workdir=tmp_path,
                options=["--100rel", "require", "--duration", "2"]).start()
    r = pj.result(30)
    wait_exit(ans, 5)
    why = seen(pj, r, "--- siplink answer ---\n" + ans.log()[-3000:])
    invite = messages(pj, "TX", "INVITE sip:")[0]
    assert "100rel" in (header(invite, "Require") or ""), why          # harness: asked for it
    ringing = messages(pj, "RX", "180 ")
    assert ringing and "100rel" in (header(ringing[0], "Require") or ""), why
    assert (header(ringing[0], "RSeq") or "").isdigit(), why
    c = r.call
    assert "uac PRACK 200" in c["tsx"], why
    assert c["confirmed"] and c["statuses"][-1] == 200, why
    assert bye_answered(r, "RX") == ["200"], why


# -------------------------------------------------------------------- hold / resume (3264)


def test_hold_resume_from_pjsua2(net: Net, tmp_path: Path) -> None:
    """pjsua2 re-INVITEs with sendonly, then sendrecv: siplink answers recvonly (or inactive),
    stops sending while held and sends again after the resume (RFC 3264 §8.4)."""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    ans = siplink_answerer(net.sl, SL, SL_PORT, cfg)
    pj = Pjsua2(net.pj, PJ, "call", SL_URI, workdir=tmp_path, options=[
        "--hold-after", "1", "--resume-after", "1.2", "--duration", "3.5"]).start()
    r = pj.result(30)
    wait_exit(ans, 5)
    why = seen(pj, r, "--- siplink answer ---\n" + ans.log()[-3000:])
    c = r.call
    assert c["media_states"] == ["active", "local_hold", "active"], why
    offers = [m for m in messages(pj, "TX", "INVITE sip:") if "a=sendonly" in m]
    assert offers, "harness: pjsua2 sent no sendonly offer" + why
    answers = [m for m in messages(pj, "RX", "200 OK") if (header(m, "CSeq") or "").endswith(
        "INVITE") and header(m, "CSeq") == header(offers[0], "CSeq")]
    assert answers and re.search(r"^a=(recvonly|inactive)", answers[0], re.M), why
    marks = c["rtp_marks"]
    held_rx = marks["resume"]["rx"] - marks["media2:local_hold"]["rx"]
    assert held_rx <= 10, f"siplink kept sending on hold: {held_rx} packets" + why
    assert marks["hangup"]["rx"] - marks["resume"]["rx"] >= 40, "no RTP after resume" + why
    assert "uac INVITE 200" in c["tsx"] and bye_answered(r, "RX") == ["200"], why


def test_hold_resume_from_siplink(net: Net, tmp_path: Path) -> None:
    """``siplink test`` with hold/resume steps: pjsua2 sees remote hold, stops sending, and
    sends again once resumed."""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    scenario = tmp_path / "hold.toml"
    scenario.write_text(
        '[scenario]\nname = "hold-pjsua2"\ntimeout_s = 15.0\n\n[[calls]]\nname = "hold"\n'
        'to = "sip:pj@${TARGET}"\nduration_s = 3.5\n'
        'steps = [ { at_s = 1.0, action = "hold" }, { at_s = 2.2, action = "resume" } ]\n'
        '[calls.expect]\nstatus = 200\nice = true\nmedia_s = 1.0\nended_by = "caller"\n')
    pj = Pjsua2(net.pj, PJ, "answer", workdir=tmp_path, options=["--duration", "0"]).start()
    junit = tmp_path / "junit.xml"
    out = run_siplink(net.sl, ["-c", str(cfg), "test", str(scenario), "--var",
                               f"TARGET={PJ}:5070", "--junit", str(junit), "--no-progress"])
    r = pj.result(15)
    why = seen(pj, r, f"--- siplink test (exit {out.returncode}) ---\n{out.stdout}\n"
                      f"{out.stderr[-2000:]}\n{junit.read_text() if junit.exists() else ''}")
    c = r.call
    states = c["media_states"]
    assert "remote_hold" in states and states[-1] == "active", why
    hold_offer = [m for m in messages(pj, "RX", "INVITE sip:") if "a=sendonly" in m]
    assert hold_offer, why
    held = f"media{states.index('remote_hold') + 1}:remote_hold"
    resumed = f"media{len(states)}:active"
    marks = c["rtp_marks"]
    assert marks[resumed]["tx"] - marks[held]["tx"] <= 10, "pjsua2 kept sending on hold" + why
    assert c["rtp"]["tx"] - marks[resumed]["tx"] >= 40, why
    assert c["rtp"]["rx"] - marks[resumed]["rx"] >= 40, "no RTP from siplink after resume" + why
    assert bye_answered(r, "TX") == ["200"], why
    assert out.returncode == 0, why


# ---------------------------------------------------------------------- late offer (3261)


def test_late_offer_from_pjsua2(net: Net, tmp_path: Path) -> None:
    """An INVITE without SDP: siplink must offer in its 2xx (RFC 3261 §13.2.1, RFC 3264 §5),
    pjsua2 answers in the ACK, ICE completes and RTP flows."""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    ans = siplink_answerer(net.sl, SL, SL_PORT, cfg)
    pj = Pjsua2(net.pj, PJ, "call", SL_URI, workdir=tmp_path,
                options=["--late-offer", "--duration", "2"]).start()
    r = pj.result(30)
    wait_exit(ans, 5)
    why = seen(pj, r, "--- siplink answer ---\n" + ans.log()[-3000:])
    invite = messages(pj, "TX", "INVITE sip:")[0]
    assert "m=audio" not in invite, "harness: the INVITE carried an offer" + why
    c = r.call
    assert c["confirmed"] and c["statuses"][-1] == 200, why
    ok = [m for m in messages(pj, "RX", "200 OK") if (header(m, "CSeq") or "").endswith("INVITE")]
    assert ok and "m=audio" in ok[0], "no offer in the 2xx" + why
    ack = messages(pj, "TX", "ACK sip:")
    assert ack and "m=audio" in ack[0], why
    assert r.ice["success"], why
    assert c["rtp"]["rx"] >= 50 and c["rtp"]["tx"] >= 50, why
    assert bye_answered(r, "RX") == ["200"], why


# ----------------------------------------------------------------- session timers (4028)


def test_session_timer_pjsua2_requires(net: Net, tmp_path: Path) -> None:
    """pjsua2 sends Require: timer, Session-Expires: 90: siplink's 2xx carries a
    Session-Expires no larger than asked and at least Min-SE, with a refresher, and
    Require: timer (RFC 4028 §9). (The refresh itself comes at 45 s, too slow for here.)"""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    ans = siplink_answerer(net.sl, SL, SL_PORT, cfg)
    pj = Pjsua2(net.pj, PJ, "call", SL_URI, workdir=tmp_path, options=[
        "--timer", "required", "--session-expires", "90", "--duration", "1.5"]).start()
    r = pj.result(30)
    wait_exit(ans, 5)
    why = seen(pj, r, "--- siplink answer ---\n" + ans.log()[-3000:])
    invite = messages(pj, "TX", "INVITE sip:")[0]
    assert "timer" in (header(invite, "Require") or ""), why
    c = r.call
    assert c["confirmed"], why
    ok = [m for m in messages(pj, "RX", "200 OK") if (header(m, "CSeq") or "").endswith("INVITE")]
    se = header(ok[0], "Session-Expires") or header(ok[0], "x") or ""
    m = re.match(r"(\d+)\s*(;.*)?$", se)
    assert m and 90 <= int(m.group(1)) <= 90, f"Session-Expires in 2xx: {se!r}" + why
    assert re.search(r"refresher=(uac|uas)", se), why
    assert "timer" in (header(ok[0], "Require") or ""), why
    assert bye_answered(r, "RX") == ["200"], why


def test_session_timer_siplink_calls_pjsua2_requiring(net: Net, tmp_path: Path) -> None:
    """pjsua2 as UAS with timers required: siplink's INVITE says Supported: timer, pjsua2's
    2xx sets Session-Expires with a refresher, the call runs and ends with BYE/200."""
    cfg = siplink_config(tmp_path / "sl.toml", SL)
    pj = Pjsua2(net.pj, PJ, "answer", workdir=tmp_path, options=[
        "--timer", "required", "--session-expires", "90", "--duration", "0"]).start()
    out = run_siplink(net.sl, ["-c", str(cfg), "call", pj.uri, "--duration", "1.5", "--json"])
    r = pj.result(15)
    why = seen(pj, r, f"--- siplink call (exit {out.returncode}) ---\n{out.stdout}\n"
                      f"{out.stderr[-2000:]}")
    invite = messages(pj, "RX", "INVITE sip:")[0]
    assert "timer" in (header(invite, "Supported") or header(invite, "k") or ""), why
    ok = [m for m in messages(pj, "TX", "200 OK") if (header(m, "CSeq") or "").endswith("INVITE")]
    assert ok and re.search(r"refresher=ua[cs]", header(ok[0], "Session-Expires") or ""), why
    assert r.call["confirmed"] and bye_answered(r, "TX") == ["200"], why
    assert out.returncode == 0, why
