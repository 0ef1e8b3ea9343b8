"""A pjsua2 (pjsip + pjnath) user agent driven by arguments: one call, then a JSON summary.

Run as its own process, never imported into pytest (pjsua2 owns an event loop and C state):
``tests/peers/pjsua2.py`` starts it inside a network namespace (pjnath skips loopback host
candidates). Roles::

    python pjsua2_agent.py --bind 198.51.100.2 --port 5070 call sip:bob@198.51.100.1:5070
    python pjsua2_agent.py --bind 198.51.100.2 --port 5070 answer [--ring 0.3]

Prints ``PJSUA2-READY ip:port`` once the transport and account exist, and at exit one line
``PJSUA2-RESULT {json}`` (also written to ``--result FILE``). The summary holds the calls'
SIP events (state changes, every transaction's status as ``"uac BYE 200"`` /
``"uas BYE 500"``, last status and disconnect reason), RTP counts from ``getStreamStat`` (rx/tx packets,
loss), the DTMF digits received (RFC 2833 ``onDtmfDigit``) and the media states seen (active,
local_hold, remote_hold). pjsip logs at level 5 to ``--log`` (whole SIP messages included);
the launcher reads the ICE result and the SIP ladder from that log once the process has
ended (pjsip buffers the file: it is complete only after libDestroy).

pjsua2 runs with no pjsip worker threads (``threadCnt = 0``, ``mainThreadOnly``) and is polled
with ``libHandleEvents``; audio uses the null device with a tone generator transmitting into
the call. SIGTERM ends the calls (BYE) and still prints the summary. After ``libDestroy`` the
process leaves with ``os._exit`` (SWIG destructors assert after libDestroy).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and tests/peers/pjsua2.py
# (the launcher) would shadow the pjsua2 module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
import pjsua2 as pj  # noqa: E402

STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL", pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING", pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING", pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none", pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold", pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}
TRICKLE = {"off": pj.PJ_ICE_SESS_TRICKLE_DISABLED, "half": pj.PJ_ICE_SESS_TRICKLE_HALF,
           "full": pj.PJ_ICE_SESS_TRICKLE_FULL}
PRACK = {"off": pj.PJSUA_100REL_NOT_USED, "supported": pj.PJSUA_100REL_OPTIONAL,
         "require": pj.PJSUA_100REL_MANDATORY}
TIMER = {"off": pj.PJSUA_SIP_TIMER_INACTIVE, "optional": pj.PJSUA_SIP_TIMER_OPTIONAL,
         "required": pj.PJSUA_SIP_TIMER_REQUIRED, "always": pj.PJSUA_SIP_TIMER_ALWAYS}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", required=True, help="local IP (SIP and media)")
    p.add_argument("--port", type=int, default=5070, help="SIP UDP port")
    p.add_argument("--rtp-port", type=int, default=4000, help="first media port")
    p.add_argument("--user", default="pj")
    p.add_argument("--no-ice", dest="ice", action="store_false", help="plain RTP, no ICE")
    p.add_argument("--aggressive", action="store_true", help="ICE aggressive nomination")
    p.add_argument("--trickle", choices=sorted(TRICKLE), default="off")
    p.add_argument("--stun", metavar="HOST:PORT", help="STUN server")
    p.add_argument("--turn", metavar="HOST:PORT", help="TURN server (UDP)")
    p.add_argument("--turn-user", default="alice")
    p.add_argument("--turn-password", default="secret")
    p.add_argument("--relay-only", action="store_true", help="no host candidates (iceMaxHostCands=0)")
    p.add_argument("--rtcp-mux", action="store_true")
    p.add_argument("--no-rtcp", action="store_true", help="ICE with one component (iceNoRtcp)")
    p.add_argument("--100rel", dest="rel100", choices=sorted(PRACK), default="off")
    p.add_argument("--timer", choices=sorted(TIMER), default="off", help="RFC 4028 use")
    p.add_argument("--session-expires", type=int, default=90, metavar="S")
    p.add_argument("--min-se", type=int, default=90, metavar="S")
    p.add_argument("--late-offer", action="store_true", help="INVITE without SDP")
    p.add_argument("--hold-after", type=float, default=0.0, metavar="S",
                   help="re-INVITE sendonly this long after the call is confirmed")
    p.add_argument("--resume-after", type=float, default=0.0, metavar="S",
                   help="re-INVITE sendrecv this long after the hold")
    p.add_argument("--dtmf", default="", help="RFC 2833 digits to send")
    p.add_argument("--dtmf-after", type=float, default=1.0, metavar="S",
                   help="seconds after the media is active and unchanged (an UPDATE after ICE "
                        "re-creates the stream, and digits in flight would be lost)")
    p.add_argument("--tone", type=float, default=440.0, metavar="HZ", help="0: no tone")
    p.add_argument("--ring", type=float, default=0.0, metavar="S",
                   help="answer: 180 Ringing, then 200 after this long")
    p.add_argument("--duration", type=float, default=3.0, metavar="S",
                   help="hang up this long after CONFIRMED (0: wait for the peer's BYE)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="give up after")
    p.add_argument("--log", default="pjsua2.log", help="pjsip log file (level 5)")
    p.add_argument("--result", help="also write the JSON summary here")
    p.add_argument("role", choices=("call", "answer"))
    p.add_argument("uri", nargs="?", help="whom to call (role call)")
    args = p.parse_args(argv)
    if args.role == "call" and not args.uri:
        p.error("call needs a URI")
    return args


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[AgentCall] = []
        self.stopping = False
        self.errors: list[str] = []


class AgentCall(pj.Call):
    def __init__(self, agent: Agent, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.agent = agent
        self.states: list[str] = []
        self.statuses: list[int] = []
        self.tsx: list[str] = []
        self.last_status = 0
        self.last_reason = ""
        self.call_id = ""
        self.confirmed_at: float | None = None
        self.media_active_at: float | None = None
        self.media_update_at = 0.0        # last onCallMediaState (streams may be re-created)
        self.disconnected_at: float | None = None
        self.media_states: list[str] = []
        self.media_dirs: list[int] = []
        self.transport_states: list[str] = []
        self.dtmf = ""
        self.rtp: dict[str, int] = {}          # totals over every stream of the call
        self._base: dict[str, int] = {}        # ... of the streams already gone
        self._cur: dict[str, int] = {}         # ... of the current one
        self.streams = 0
        self.remote_rtp = ""
        self.dump_text = ""
        self.tone: pj.ToneGenerator | None = None
        self.done_actions: set[str] = set()
        self.hold_at: float | None = None
        self.answer_at: float | None = None
        self.incoming_rdata = ""
        self.rtp_marks: dict[str, dict[str, int]] = {}   # RTP counters when each action ran

    # -- callbacks ---------------------------------------------------------------------------
    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 API
        try:
            ci = self.getInfo()
        except pj.Error:
            return
        name = STATE_NAMES.get(ci.state, str(ci.state))
        self.call_id = ci.callIdString
        if not self.states or self.states[-1] != name:
            self.states.append(name)
        if ci.lastStatusCode and (not self.statuses or self.statuses[-1] != ci.lastStatusCode):
            self.statuses.append(int(ci.lastStatusCode))
        self.last_status = int(ci.lastStatusCode)
        self.last_reason = ci.lastReason
        now = time.monotonic()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = now
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.snapshot()
            self.rtp_marks.setdefault("disconnected", dict(self.rtp))
            self.disconnected_at = now

    def onCallTsxState(self, prm: Any) -> None:  # noqa: N802
        e = prm.e
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = e.body.tsxState.tsx
        if tsx.statusCode < 100 or tsx.state not in (
                pj.PJSIP_TSX_STATE_PROCEEDING, pj.PJSIP_TSX_STATE_COMPLETED,
                pj.PJSIP_TSX_STATE_TERMINATED):
            return
        role = "uac" if tsx.role == pj.PJSIP_ROLE_UAC else "uas"
        entry = f"{role} {tsx.method} {tsx.statusCode}"
        if entry not in self.tsx:
            self.tsx.append(entry)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        try:
            ci = self.getInfo()
        except pj.Error:
            return
        self.media_update_at = time.monotonic()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = MEDIA_STATUS.get(mi.status, str(mi.status))
            if not self.media_states or self.media_states[-1] != status:
                self.media_states.append(status)
                self.media_dirs.append(int(mi.dir))
                self.snapshot()
                self.rtp_marks[f"media{len(self.media_states)}:{status}"] = dict(self.rtp)
            if mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                if self.media_active_at is None:
                    self.media_active_at = time.monotonic()
                self.connect_tone(mi.index)

    def onCallMediaTransportState(self, prm: Any) -> None:  # noqa: N802
        names = {pj.PJSUA_MED_TP_NULL: "null", pj.PJSUA_MED_TP_CREATING: "creating",
                 pj.PJSUA_MED_TP_IDLE: "idle", pj.PJSUA_MED_TP_INIT: "init",
                 pj.PJSUA_MED_TP_RUNNING: "running", pj.PJSUA_MED_TP_DISABLED: "disabled"}
        s = names.get(prm.state, str(prm.state))
        if prm.status != 0:
            s += f" (status {prm.status})"
        self.transport_states.append(s)

    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
        self.dtmf += prm.digit

    # -- helpers -----------------------------------------------------------------------------
    def connect_tone(self, med_idx: int) -> None:
        hz = self.agent.args.tone
        if hz <= 0:
            return
        try:
            aud = self.getAudioMedia(med_idx)
            if self.tone is None:
                self.tone = pj.ToneGenerator()
                self.tone.createToneGenerator(8000, 1)
                td = pj.ToneDesc()
                td.freq1, td.freq2, td.on_msec, td.off_msec, td.volume = int(hz), 0, 10000, 0, 0
                tv = pj.ToneDescVector()
                tv.append(td)
                self.tone.play(tv, True)
            self.tone.startTransmit(aud)
        except pj.Error as e:
            self.agent.errors.append(f"tone: {e.info()}")

    def mark(self, action: str) -> None:
        """Remember ``action`` as done, with the RTP counters at that moment."""
        self.done_actions.add(action)
        self.snapshot()
        self.rtp_marks[action] = dict(self.rtp)

    def snapshot(self) -> None:
        """Update the RTP counters of the first audio stream: pjsua re-creates the stream
        when a re-INVITE changes the media (counters restart), so the totals add up every
        stream the call had (the last one is read before it goes, in onStreamDestroyed)."""
        try:
            ci = self.getInfo()
            idx = next((m.index for m in ci.media if m.type == pj.PJMEDIA_TYPE_AUDIO), None)
            if idx is None:
                return
            st = self.getStreamStat(idx)
        except pj.Error:
            return
        rx, tx = st.rtcp.rxStat, st.rtcp.txStat
        cur = {"rx": int(rx.pkt), "tx": int(tx.pkt), "rx_loss": int(rx.loss),
               "rx_dup": int(rx.dup), "rx_bytes": int(rx.bytes)}
        if cur["rx"] < self._cur.get("rx", 0) or cur["tx"] < self._cur.get("tx", 0):
            self._fold()            # a new stream we did not see the old one go
        self._cur = cur
        self.rtp = {k: self._base.get(k, 0) + v for k, v in cur.items()}
        try:
            mti = self.getMedTransportInfo(idx)
            if mti.srcRtpName:
                self.remote_rtp = mti.srcRtpName
            self.dump_text = self.dump(True, "  ")
        except pj.Error:
            pass

    def _fold(self) -> None:
        for k, v in self._cur.items():
            self._base[k] = self._base.get(k, 0) + v
        self._cur = {}
        self.streams += 1

    def onStreamDestroyed(self, prm: Any) -> None:  # noqa: N802
        self.snapshot()
        self._fold()

    def summary(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "states": self.states, "statuses": self.statuses,
            "last_status": self.last_status, "last_reason": self.last_reason,
            "confirmed": self.confirmed_at is not None, "tsx": self.tsx,
            "media_states": self.media_states, "media_dirs": self.media_dirs,
            "transport_states": self.transport_states, "rtp": self.rtp,
            "streams": self.streams,
            "remote_rtp": self.remote_rtp, "dtmf_received": self.dtmf,
            "actions": sorted(self.done_actions), "rtp_marks": self.rtp_marks,
            "duration_s": None if self.confirmed_at is None else round(
                (self.disconnected_at or time.monotonic()) - self.confirmed_at, 3),
            "dump": self.dump_text,
        }


class AgentAccount(pj.Account):
    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        call = AgentCall(self.agent, self, prm.callId)
        self.agent.calls.append(call)
        call.incoming_rdata = prm.rdata.wholeMsg
        op = pj.CallOpParam(True)
        if self.agent.args.ring > 0:
            call.answer_at = time.monotonic() + self.agent.args.ring
        op.statusCode = 180 if self.agent.args.ring > 0 else 200
        answer(self.agent, call, op)


PJ_EPENDING = 70002


def answer(agent: Agent, call: AgentCall, op: Any) -> None:
    """call.answer; PJ_EPENDING only means pjsua answers once the media transport is ready
    (ICE gathering), which it then does by itself."""
    try:
        call.answer(op)
    except pj.Error as e:
        if e.status != PJ_EPENDING:
            agent.errors.append(f"answer {op.statusCode}: {e.info()}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    agent = Agent(args)
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2-agent"
    cfg.uaConfig.maxCalls = 4
    if args.stun:
        cfg.uaConfig.stunServer.append(args.stun)
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.msgLogging = True
    cfg.logConfig.filename = args.log
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = args.bind
    tcfg.publicAddress = args.bind
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for c in ep.codecEnum2():   # G.711 (and telephone-event, not a codec here) only
        ep.codecSetPriority(c.codecId, 200 if c.codecId.startswith(("PCMU", "PCMA")) else 0)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.bind}:{args.port}"
    nat = acfg.natConfig
    nat.iceEnabled = args.ice
    nat.iceAggressiveNomination = args.aggressive
    nat.iceTrickle = TRICKLE[args.trickle]
    nat.iceNoRtcp = args.no_rtcp
    nat.sdpNatRewriteUse = 0
    nat.contactRewriteUse = 0
    nat.viaRewriteUse = 0
    nat.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
    nat.mediaStunUse = pj.PJSUA_STUN_USE_DEFAULT if args.stun else pj.PJSUA_STUN_USE_DISABLED
    if args.relay_only:
        nat.iceMaxHostCands = 0
    if args.turn:
        nat.turnEnabled = True
        nat.turnServer = args.turn
        nat.turnUserName = args.turn_user
        nat.turnPassword = args.turn_password
        nat.turnPasswordType = 0
        nat.turnConnType = pj.PJ_TURN_TP_UDP
    acfg.mediaConfig.rtcpMuxEnabled = args.rtcp_mux
    acfg.mediaConfig.transportConfig.boundAddress = args.bind
    acfg.mediaConfig.transportConfig.publicAddress = args.bind
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acfg.callConfig.prackUse = PRACK[args.rel100]
    acfg.callConfig.timerUse = TIMER[args.timer]
    acfg.callConfig.timerSessExpiresSec = args.session_expires
    acfg.callConfig.timerMinSESec = args.min_se
    acc = AgentAccount(agent)
    acc.create(acfg, True)

    def on_term(signum: int, frame: Any) -> None:
        agent.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"PJSUA2-READY {args.bind}:{args.port}", flush=True)

    started = time.monotonic()
    if args.role == "call":
        call = AgentCall(agent, acc)
        agent.calls.append(call)
        op = pj.CallOpParam(True)
        if args.late_offer:
            op.opt.flag |= pj.PJSUA_CALL_NO_SDP_OFFER
        try:
            call.makeCall(args.uri, op)
        except pj.Error as e:
            agent.errors.append(f"makeCall: {e.info()}")
    hangup_sent_at: float | None = None
    last_snap = 0.0
    while True:
        ep.libHandleEvents(20)
        now = time.monotonic()
        if now - last_snap > 0.2:
            last_snap = now
            for c in agent.calls:
                if c.confirmed_at is not None and c.disconnected_at is None:
                    c.snapshot()
        for c in agent.calls:
            run_actions(agent, c, now)
        finished = [c for c in agent.calls if c.disconnected_at is not None]
        if agent.calls and len(finished) == len(agent.calls):
            if now - max(c.disconnected_at or now for c in finished) > 0.3:
                break   # let the last transaction (BYE's 200, ACK) go out
        timed_out = now - started > args.timeout
        if (agent.stopping or timed_out) and hangup_sent_at is None:
            if timed_out:
                agent.errors.append(f"timeout after {args.timeout}s")
            hangup_sent_at = now
            for c in agent.calls:
                if c.disconnected_at is None:
                    c.snapshot()
                    try:
                        c.hangup(pj.CallOpParam(True))
                    except pj.Error as e:
                        agent.errors.append(f"hangup: {e.info()}")
            if not agent.calls:
                break
        if hangup_sent_at is not None and now - hangup_sent_at > 3.0:
            break

    for c in agent.calls:
        c.snapshot()
    result = {"role": args.role, "address": f"{args.bind}:{args.port}",
              "calls": [c.summary() for c in agent.calls],
              "errors": agent.errors}
    text = json.dumps(result)
    if args.result:
        Path(args.result).write_text(text)
    print("PJSUA2-RESULT " + text, flush=True)
    try:
        ep.hangupAllCalls()
        ep.libHandleEvents(50)
        ep.libDestroy()
    except pj.Error:
        pass
    sys.stdout.flush()
    os._exit(0)


def run_actions(agent: Agent, c: AgentCall, now: float) -> None:
    args = agent.args
    if c.disconnected_at is not None:
        return
    try:
        if c.answer_at is not None and now >= c.answer_at and "answer" not in c.done_actions:
            c.done_actions.add("answer")
            op = pj.CallOpParam(True)
            op.statusCode = 200
            answer(agent, c, op)
        if c.confirmed_at is None:
            return
        up = now - c.confirmed_at
        if args.hold_after > 0 and up >= args.hold_after and "hold" not in c.done_actions:
            c.mark("hold")
            c.hold_at = now
            c.setHold(pj.CallOpParam(True))
        if (args.resume_after > 0 and c.hold_at is not None and now - c.hold_at >= args.resume_after
                and "resume" not in c.done_actions):
            c.mark("resume")
            op = pj.CallOpParam(True)
            op.opt.flag |= pj.PJSUA_CALL_UNHOLD
            c.reinvite(op)
        if (args.dtmf and c.media_active_at is not None and now - c.media_update_at
                >= args.dtmf_after and "dtmf" not in c.done_actions):
            c.done_actions.add("dtmf")
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            prm.digits = args.dtmf
            c.sendDtmf(prm)
        if args.duration > 0 and up >= args.duration and "hangup" not in c.done_actions:
            c.mark("hangup")
            c.hangup(pj.CallOpParam(True))
    except pj.Error as e:
        agent.errors.append(f"action: {e.info()}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
