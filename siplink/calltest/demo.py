"""The demo: two user agents on loopback, an ICE-negotiated call between them, checked.

``alice`` calls ``bob`` (both on 127.0.0.1, host candidates only); ICE completes, each side
plays its own tone for a few seconds, each measures the frequency it hears, each sends DTMF
digits (RFC 4733) and the other collects them; then alice hangs up.  The summary has the
SIP timeline, the selected pair of each side, the time to ICE connected, RTP packets and loss
each way, the detected tone and the received digits.

:func:`demo_call` is the logic (on a running reactor, returns the summary dict);
:func:`run_demo` runs it on the global reactor, prints the summary (text or one JSON object)
and returns the process exit code: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import json as jsonlib
import sys
from typing import IO, Any

from twisted.internet import defer, task
from twisted.logger import Logger

from ice.trace import Trace
from siplink.media.icesession import IceMediaSession, IceSessionError
from siplink.ua.useragent import Call, UserAgent

__all__ = ["check_summary", "demo_call", "run_demo"]

log = Logger(namespace="siplink.calltest.demo")

TONE_TOLERANCE_HZ = 5.0


def _sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


async def _with_timeout(reactor: Any, d: defer.Deferred[Any], seconds: float, what: str) -> Any:
    d.addTimeout(seconds, reactor)
    try:
        return await d
    except defer.TimeoutError:
        raise IceSessionError(f"{what}: no result in {seconds:g} s") from None


def _side(name: str, session: IceMediaSession, tone: float, sent_digits: str,
          heard_hz: float | None) -> dict[str, Any]:
    s = session.summary()
    media = s.get("media") or {}
    pairs = s["selected_pairs"]
    return {
        "name": name,
        "role": s["role"],
        "ice_state": s["state"],
        "selected_pair": pairs[0] if pairs else None,
        "time_to_connected_ms": s["time_to_connected_ms"],
        "checks_sent": s["checks_sent"],
        "rtp": {
            "codec": media.get("codec"),
            "packets_sent": media.get("packets_sent", 0),
            "packets_received": media.get("packets_received", 0),
            "packets_lost": media.get("packets_lost", 0),
            "jitter_ms": media.get("jitter_ms"),
            "rtt_ms": media.get("rtt_ms"),
        },
        "tone_sent_hz": tone,
        "tone_detected_hz": None if heard_hz is None else round(heard_hz, 1),
        "dtmf_sent": sent_digits,
        "dtmf_received": media.get("dtmf_received", ""),
    }


async def demo_call(reactor: Any, *, seconds: float = 3.0, host: str = "127.0.0.1",
                    caller_tone: float = 1000.0, callee_tone: float = 440.0,
                    caller_digits: str = "1234#", callee_digits: str = "*90",
                    timeout: float = 10.0) -> dict[str, Any]:
    """Run the demo call on ``reactor``; returns the summary (see :func:`check_summary`)."""
    traces = {"alice": Trace(), "bob": Trace()}
    alice = UserAgent(reactor, host=host, user="alice", trace=traces["alice"])
    bob = UserAgent(reactor, host=host, user="bob", trace=traces["bob"])
    alice.listen()
    bob.listen()
    sessions: dict[str, IceMediaSession] = {}
    incoming: list[Call] = []

    def media_for(tone: float) -> IceMediaSession:
        return IceMediaSession(reactor, local_addresses=(host,), tone=tone, rtcp_interval=1.0)

    bob.media_factory = lambda: media_for(callee_tone)

    def on_call(call: Call) -> None:
        incoming.append(call)
        assert isinstance(call.media, IceMediaSession)
        sessions["bob"] = call.media
        call.ring()
        call.answer()

    bob.on_incoming_call = on_call
    sessions["alice"] = media_for(caller_tone)
    t0 = reactor.seconds()
    heard: dict[str, float | None] = {"alice": None, "bob": None}
    error: str | None = None
    first_rtp_ms: float | None = None
    call: Call | None = None
    try:
        call = alice.call(f"sip:bob@{host}:{bob.port}", media=sessions["alice"])
        await _with_timeout(reactor, call.answered, timeout, "call answered")
        await _with_timeout(reactor, sessions["alice"].wait_connected(), timeout,
                            "alice ICE connected")
        await _with_timeout(reactor, sessions["bob"].wait_connected(), timeout,
                            "bob ICE connected")
        tone_time = max(1.0, seconds - 1.2)
        await _sleep(reactor, tone_time)
        for name in ("alice", "bob"):
            stream = sessions[name].stream
            assert stream is not None
            heard[name] = stream.detected_frequency(seconds=min(1.0, tone_time * 0.8))
        sessions["alice"].send_dtmf(caller_digits)
        sessions["bob"].send_dtmf(callee_digits)
        await _sleep(reactor, max(1.2, 0.17 * max(len(caller_digits), len(callee_digits)) + 0.4))
        st = sessions["alice"].stream.stats() if sessions["alice"].stream else None
        if st is not None and st.first_received_at is not None:
            first_rtp_ms = round((st.first_received_at - t0) * 1000, 1)
        await call.hangup()
        if incoming:
            await _with_timeout(reactor, incoming[0].ended, 5.0, "bob's call ended")
    except Exception as e:   # reported in the summary, never raised to the caller
        error = f"{type(e).__name__}: {e}"
        if call is not None:
            call.hangup()
    finally:
        await _sleep(reactor, 0.1)
        alice.close()
        bob.close()
    timeline = []
    for name, trace in traces.items():
        for r in trace.records:
            if r.direction == "out" and r.protocol == "sip":
                timeline.append({"ms": round((r.time - t0) * 1000, 1), "from": name,
                                 "to": "bob" if name == "alice" else "alice",
                                 "message": r.summary})
    timeline.sort(key=lambda x: x["ms"])
    summary: dict[str, Any] = {
        "caller": _side("alice", sessions["alice"], caller_tone, caller_digits, heard["alice"]),
        "callee": (_side("bob", sessions["bob"], callee_tone, callee_digits, heard["bob"])
                   if "bob" in sessions else None),
        "invite_to_first_rtp_ms": first_rtp_ms,
        "call_end": {"caller": call.cause if call else None,
                     "callee": incoming[0].cause if incoming else None},
        "sip_timeline": timeline,
        "error": error,
    }
    summary["errors"] = check_summary(summary)
    summary["ok"] = not summary["errors"]
    return summary


def check_summary(summary: dict[str, Any]) -> list[str]:
    """Every field the demo promises, checked: returns what is missing or wrong."""
    errors: list[str] = []
    if summary.get("error"):
        errors.append(str(summary["error"]))
    sides = {"caller": summary.get("caller"), "callee": summary.get("callee")}
    for key, side in sides.items():
        if not side:
            errors.append(f"{key}: missing")
            continue
        other = sides["callee" if key == "caller" else "caller"] or {}
        pair = side.get("selected_pair")
        if not pair or not all(pair.get(k, {}).get("type") and pair.get(k, {}).get("address")
                               for k in ("local", "remote")):
            errors.append(f"{key}: no selected pair")
        if side.get("time_to_connected_ms") is None:
            errors.append(f"{key}: no time to ICE connected")
        rtp = side.get("rtp") or {}
        for k in ("packets_sent", "packets_received"):
            if not rtp.get(k):
                errors.append(f"{key}: no RTP {k.split('_')[1]}")
        want = other.get("tone_sent_hz")
        got = side.get("tone_detected_hz")
        if got is None or want is None or abs(got - want) > TONE_TOLERANCE_HZ:
            errors.append(f"{key}: heard tone {got} Hz, the peer played {want} Hz")
        if side.get("dtmf_received") != other.get("dtmf_sent"):
            errors.append(f"{key}: DTMF received {side.get('dtmf_received')!r}, "
                          f"the peer sent {other.get('dtmf_sent')!r}")
    return errors


def _print_text(summary: dict[str, Any], out: IO[str]) -> None:
    w = out.write
    w("SIP timeline\n")
    for e in summary["sip_timeline"]:
        w(f"  {e['ms']:8.1f} ms  {e['from']:>5} -> {e['to']:<5}  {e['message']}\n")
    for key in ("caller", "callee"):
        side = summary.get(key)
        if not side:
            continue
        pair = side["selected_pair"]
        pair_text = (f"{pair['local']['type']} {pair['local']['address']} -> "
                     f"{pair['remote']['type']} {pair['remote']['address']}" if pair else "none")
        rtp = side["rtp"]
        w(f"\n{side['name']} ({key}, ICE {side['role']}, {side['ice_state']})\n")
        w(f"  selected pair      {pair_text}\n")
        w(f"  ICE connected in   {side['time_to_connected_ms']} ms "
          f"({side['checks_sent']} checks sent)\n")
        w(f"  RTP ({rtp['codec']})         sent {rtp['packets_sent']}, received "
          f"{rtp['packets_received']}, lost {rtp['packets_lost']}, jitter {rtp['jitter_ms']} ms\n")
        w(f"  tone               sent {side['tone_sent_hz']:g} Hz, "
          f"heard {side['tone_detected_hz']} Hz\n")
        w(f"  DTMF               sent {side['dtmf_sent']!r}, received "
          f"{side['dtmf_received']!r}\n")
    w(f"\nINVITE to first RTP at the caller: {summary['invite_to_first_rtp_ms']} ms\n")
    if summary["ok"]:
        w("demo OK\n")
    else:
        w("demo FAILED:\n" + "".join(f"  - {e}\n" for e in summary["errors"]))


def run_demo(*, json: bool = False, seconds: float = 3.0, host: str = "127.0.0.1",
             caller_tone: float = 1000.0, callee_tone: float = 440.0,
             caller_digits: str = "1234#", callee_digits: str = "*90",
             out: IO[str] | None = None) -> int:
    """Run the demo on the global reactor (which must not be running) and print the
    summary; 0 when every check passed, 1 otherwise."""
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    out = out or sys.stdout
    result: dict[str, Any] = {}

    def go() -> None:
        d = defer.ensureDeferred(demo_call(
            reactor, seconds=seconds, host=host, caller_tone=caller_tone,
            callee_tone=callee_tone, caller_digits=caller_digits, callee_digits=callee_digits))

        def done(summary: dict[str, Any]) -> None:
            result.update(summary)

        def failed(f: Any) -> None:
            result.update({"ok": False, "errors": [f.getErrorMessage()]})

        d.addCallbacks(done, failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    if "sip_timeline" not in result:
        out.write(jsonlib.dumps(result) + "\n" if json else
                  f"demo FAILED: {result.get('errors')}\n")
        return 1
    if json:
        out.write(jsonlib.dumps(result) + "\n")
    else:
        _print_text(result, out)
    out.flush()
    return 0 if result.get("ok") else 1
