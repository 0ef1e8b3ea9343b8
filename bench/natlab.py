#!/usr/bin/env python3
"""The NAT lab of issue 9: SIP + ICE calls between two siplink agents behind kernel NATs.

Runs the cases of ``tests/test_natlab_calls.py`` (the same code: tests/natlab_support.py)
one after the other and prints the summary table: per case the NAT kinds, the selected pair
of each side, time to ICE connected, checks sent, RTP packets each way, the tone each side
heard, SIP/STUN retransmissions, packets the lab's loss rules dropped, and INVITE -> 200.
Needs root (network namespaces), coturn and Kamailio.  Every namespace is deleted afterwards,
also on failure or Ctrl-C.

Usage: python bench/natlab.py [--case NAME ...] [--trickle off|half|full ...] [--repeat N]
                              [--media-seconds 2] [--json]

``--trickle`` (repeatable) runs every case with both agents in that trickle ICE mode (RFC
8838/8840; default half, siplink's default) and the summary compares setup time (INVITE ->
200) and time to connected per mode.
Exit code 0 when every case passed its checks, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import defer  # noqa: E402

from tests.natlab_support import (  # noqa: E402
    CASES,
    CASES_BY_NAME,
    CaseResult,
    check_case,
    format_table,
    run_case,
)


def _as_dict(r: CaseResult) -> dict[str, Any]:
    sides = {}
    for k, s in r.sides.items():
        sides[k] = {
            "name": s.name, "pair": s.pair.as_dict() if s.pair else None,
            "time_to_connected_ms": s.time_to_connected_ms,
            "time_to_valid_ms": s.time_to_valid_ms, "kept_before_media": s.kept_before_media,
            "checks_sent": s.checks_sent,
            "packets_sent": s.packets_sent, "packets_received": s.packets_received,
            "packets_lost": s.packets_lost, "tone_sent_hz": s.tone_sent_hz,
            "tone_heard_hz": s.tone_heard_hz, "sip_retransmissions": s.sip_retransmissions,
            "stun_retransmissions": s.stun_retransmissions, "candidates": s.candidates,
        }
    return {"case": r.case.name, "trickle": r.trickle, "nats": r.case.nats,
            "expect": r.case.expect,
            "sides": sides, "setup_ms": r.setup_ms, "lab_drops": r.lab_drops,
            "caller_end": r.caller_end, "callee_end": r.callee_end,
            "turn_allocations": r.turn_allocations, "turn_permissions": r.turn_permissions,
            "proxy_routed": r.proxy_routed, "leaks": r.leaks, "wall_s": r.wall_s,
            "errors": check_case(r)}


def timing_summary(results: list[CaseResult]) -> str:
    """Per case: median (and, with several runs, max) time to ICE connected of each side and
    to the first valid pair, and how often each side's selected pair was relayed."""
    lines = ["time to ICE connected (offer/answer built -> completed), per case over its runs:"]
    for name, mode in dict.fromkeys((r.case.name, r.trickle) for r in results):
        runs = [r for r in results if r.case.name == name and r.trickle == mode]
        setup = [r.setup_ms for r in runs if r.setup_ms is not None]
        parts = [f"trickle {mode}"]
        if setup:
            parts.append(f"INVITE->200 p50 {statistics.median(setup):.0f} ms")
        for k in "ab":
            ttc = [t for r in runs if (t := r.sides[k].time_to_connected_ms) is not None]
            ttv = [t for r in runs if (t := r.sides[k].time_to_valid_ms) is not None]
            relayed = sum(1 for r in runs if r.sides[k].pair is not None
                          and "relay" in r.sides[k].pair_text)
            if not ttc:
                parts.append(f"{runs[0].sides[k].name}: not connected")
                continue
            parts.append(f"{runs[0].sides[k].name} p50 {statistics.median(ttc):.0f} ms"
                         + (f" max {max(ttc):.0f}" if len(ttc) > 1 else "")
                         + (f" (1st valid p50 {statistics.median(ttv):.0f})" if ttv else "")
                         + f", relay {relayed}/{len(runs)}")
        lines.append(f"  {name} ({len(runs)} run{'s' if len(runs) > 1 else ''}): "
                     + "; ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES_BY_NAME),
                    help="run only this case (repeatable; default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="run each case N times")
    ap.add_argument("--media-seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    ap.add_argument("--trickle", action="append", choices=("off", "half", "full"),
                    help="trickle ICE mode of both agents (repeatable; default: half)")
    args = ap.parse_args(argv)
    modes = args.trickle or ["half"]
    cases = [CASES_BY_NAME[n] for n in args.case] if args.case else list(CASES)

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    results: list[CaseResult] = []
    failure: list[str] = []

    async def run_all() -> None:
        for _ in range(args.repeat):
            for case in cases:
                for mode in modes:
                    r = await run_case(reactor, case, media_seconds=args.media_seconds,
                                       trickle=mode)
                    results.append(r)
                    if not args.json:
                        verdict = "ok" if not check_case(r) else "FAIL"
                        print(f"{case.name} (trickle {mode}): {verdict} ({r.wall_s:.1f} s)",
                              file=sys.stderr)

    def go() -> None:
        d = defer.ensureDeferred(run_all())
        d.addErrback(lambda f: failure.append(f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    started = time.monotonic()
    reactor.callWhenRunning(go)
    reactor.run()
    wall = time.monotonic() - started
    if args.json:
        print(json.dumps({"cases": [_as_dict(r) for r in results], "wall_s": round(wall, 2),
                          "error": failure[0] if failure else None}))
    else:
        print(format_table(results))
        print(timing_summary(results))
        print(f"{len(results)} calls in {wall:.1f} s")
        if failure:
            print(failure[0], file=sys.stderr)
    ok = not failure and len(results) == len(cases) * args.repeat * len(modes) and \
        all(not check_case(r) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
