#!/usr/bin/env python3
"""Call set-up latency with ICE: time from INVITE sent to the first RTP packet received.

Two siplink UserAgents on loopback (one process, one reactor) with IceMediaSession media,
host candidates only.  Each call: alice sends the INVITE (offer with candidates), bob
gathers and answers and starts checks as controlled, alice starts checks as controlling on the
answer, ICE completes, each side starts RTP on the selected pair; the latency is measured at
alice from the INVITE's trace record to the first RTP packet her MediaStream accepted (both
``reactor.seconds()``).  Calls run one after the other; p50/p95/max are printed (and JSON
with --json).  Goal: p50 < 50 ms.

Usage: python bench/bench_call_latency.py [--calls 100] [--nomination regular|aggressive]
       [--ta 0.02] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, task  # noqa: E402

from ice.trace import Trace  # noqa: E402
from siplink.media.icesession import IceMediaSession  # noqa: E402
from siplink.ua.useragent import Call, UserAgent  # noqa: E402


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


async def one_call(reactor: Any, a: UserAgent, b: UserAgent, trace: Trace,
                   opts: dict[str, Any]) -> dict[str, float]:
    sa = IceMediaSession(reactor, record=False, **opts)
    mark = len(trace.records)
    call = a.call(f"sip:bob@127.0.0.1:{b.port}", media=sa)
    sa.attach(call)
    stream = await sa.wait_connected()
    while stream.stats().first_received_at is None:
        await task.deferLater(reactor, 0.001, lambda: None)
    first_rtp = stream.stats().first_received_at
    invite_at = next(r.time for r in trace.records[mark:]
                     if r.direction == "out" and r.summary.startswith("INVITE"))
    assert first_rtp is not None
    out = {"invite_to_first_rtp": first_rtp - invite_at,
           "invite_to_connected": (sa.connected_at or 0) - invite_at,
           "checks": float(sa.checks_sent)}
    await call.hangup()
    await task.deferLater(reactor, 0.01, lambda: None)
    return out


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    trace = Trace(limit=10_000_000)
    a = UserAgent(reactor, user="alice", trace=trace)
    b = UserAgent(reactor, user="bob")
    a.listen()
    b.listen()
    opts = {"ta": args.ta, "nomination": args.nomination}
    b.media_factory = lambda: IceMediaSession(reactor, record=False, **opts)
    answered: list[Call] = []
    b.on_incoming_call = lambda call: (answered.append(call), call.answer())
    results = []
    try:
        for _ in range(args.warmup):
            await one_call(reactor, a, b, trace, opts)
        for _ in range(args.calls):
            results.append(await one_call(reactor, a, b, trace, opts))
    finally:
        a.close()
        b.close()
    lat = [r["invite_to_first_rtp"] * 1000 for r in results]
    con = [r["invite_to_connected"] * 1000 for r in results]
    return {
        "calls": len(results), "nomination": args.nomination, "ta_ms": args.ta * 1000,
        "invite_to_first_rtp_ms": {"p50": round(percentile(lat, 50), 2),
                                   "p95": round(percentile(lat, 95), 2),
                                   "min": round(min(lat), 2), "max": round(max(lat), 2),
                                   "mean": round(statistics.fmean(lat), 2)},
        "invite_to_ice_connected_ms": {"p50": round(percentile(con, 50), 2),
                                       "p95": round(percentile(con, 95), 2)},
        "checks_per_call_mean": round(statistics.fmean(r["checks"] for r in results), 2),
        "goal_p50_under_50ms": percentile(lat, 50) < 50,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--nomination", choices=("regular", "aggressive"), default="regular")
    ap.add_argument("--ta", type=float, default=0.02, help="check pacing, seconds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {}

    def go(reactor: Any) -> defer.Deferred[None]:
        d = defer.ensureDeferred(run(reactor, args))
        d.addCallback(out.update)
        return d

    from twisted.internet import reactor as _r
    reactor: Any = _r
    failure: list[str] = []

    def start() -> None:
        d = go(reactor)
        d.addErrback(lambda f: failure.append(f.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if failure:
        print(failure[0], file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out))
    else:
        l1 = out["invite_to_first_rtp_ms"]
        print(f"{out['calls']} calls, loopback, host candidates, {out['nomination']} nomination,"
              f" Ta {out['ta_ms']:g} ms")
        print(f"INVITE sent -> first RTP received: p50 {l1['p50']} ms, p95 {l1['p95']} ms "
              f"(min {l1['min']}, max {l1['max']}, mean {l1['mean']})")
        l2 = out["invite_to_ice_connected_ms"]
        print(f"INVITE sent -> ICE connected (caller): p50 {l2['p50']} ms, p95 {l2['p95']} ms; "
              f"{out['checks_per_call_mean']} checks per call")
        print("goal p50 < 50 ms: " + ("met" if out["goal_p50_under_50ms"] else "NOT met"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
