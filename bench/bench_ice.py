#!/usr/bin/env python3
"""Time from the start of connectivity checks to a selected pair on both sides, on loopback
with host candidates: our agents (Twisted driver, real UDP sockets) beside a pair of aioice
Connections, in the same run, with 1, 4 and 16 candidates per side (127.0.0.x addresses).

aioice runs its check loop at a fixed 20 ms (not settable) and sends its nominating check at
once, unpaced.  Ours paces every check, the nominating one included (RFC 8445 §8.1.1 puts it
in the triggered-check queue), so regular nomination costs one Ta after the first success.
Ours runs at Ta = 5 ms (the RFC 8445 §14.2 floor), 20 ms (aioice's loop), 50 ms (the
default), and with aggressive nomination at 20 ms.  Prints medians over ``--rounds`` runs and
the ratio ours/aioice.

    python bench/bench_ice.py [--rounds 20] [--sizes 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def addresses(n: int, side: int) -> list[str]:
    # side A: 127.0.1.1..n, side B: 127.0.2.1..n (all on lo)
    return [f"127.0.{side}.{i}" for i in range(1, n + 1)]


# ---- aioice --------------------------------------------------------------------------------

async def aioice_once(n: int) -> float:
    import aioice
    import aioice.ice

    a_addr, b_addr = addresses(n, 1), addresses(n, 2)
    current = {"list": a_addr}
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(current["list"])
    a = aioice.Connection(ice_controlling=True, use_ipv6=False)
    await a.gather_candidates()
    current["list"] = b_addr
    b = aioice.Connection(ice_controlling=False, use_ipv6=False)
    await b.gather_candidates()
    for x, y in ((a, b), (b, a)):
        y.remote_username, y.remote_password = x.local_username, x.local_password
        for c in x.local_candidates:
            await y.add_remote_candidate(c)
        await y.add_remote_candidate(None)
    t0 = time.perf_counter()
    await asyncio.gather(a.connect(), b.connect())
    elapsed = time.perf_counter() - t0
    await asyncio.gather(a.close(), b.close())
    return elapsed


def run_aioice(sizes: list[int], rounds: int) -> dict[int, list[float]]:
    async def main() -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for n in sizes:
            out[n] = [await aioice_once(n) for _ in range(rounds)]
        return out

    return asyncio.run(main())


# ---- ours ------------------------------------------------------------------------------------

Variant = tuple[float, str]      # (Ta, nomination)


def run_ours(sizes: list[int], rounds: int, variants: list[Variant]
             ) -> dict[tuple[Variant, int], list[float]]:
    from twisted.internet import defer, reactor

    from ice.agent import Agent
    from ice.drivers.agent import TwistedAgent

    results: dict[tuple[Variant, int], list[float]] = {}

    @defer.inlineCallbacks
    def once(n: int, variant: Variant, seed: int):  # type: ignore[no-untyped-def]
        ta, nomination = variant
        a = TwistedAgent(Agent(True, ta=ta, nomination=nomination,
                               local_addresses=addresses(n, 1), rng=random.Random(seed)))
        b = TwistedAgent(Agent(False, ta=ta, local_addresses=addresses(n, 2),
                               rng=random.Random(seed + 1)))
        yield defer.gatherResults([a.gather(), b.gather()])
        for x, y in ((a, b), (b, a)):
            y.agent.set_remote_credentials(0, x.agent.local_username, x.agent.local_password)
            for c in x.agent.local_candidates(0):
                y.agent.add_remote_candidate(0, c)
        t0 = time.perf_counter()
        yield defer.gatherResults([a.start(), b.start()])
        elapsed = time.perf_counter() - t0
        yield defer.gatherResults([a.close(), b.close()])
        return elapsed

    @defer.inlineCallbacks
    def main():  # type: ignore[no-untyped-def]
        try:
            for variant in variants:
                for n in sizes:
                    key = (variant, n)
                    results[key] = []
                    for r in range(rounds):
                        t = yield once(n, variant, 1000 * r + n)
                        results[key].append(t)
        finally:
            reactor.stop()

    reactor.callWhenRunning(main)
    reactor.run()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sizes", default="1,4,16")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    theirs = run_aioice(sizes, args.rounds)
    variants: list[Variant] = [(0.005, "regular"), (0.02, "regular"), (0.05, "regular"),
                               (0.02, "aggressive")]
    ours = run_ours(sizes, args.rounds, variants)
    print(f"time from start of checks to selected pair on both sides, loopback, host "
          f"candidates, median of {args.rounds} runs, ms (ratio ours/aioice)")
    head = f"{'cands/side':>10} {'pairs':>6} {'aioice':>8}"
    for ta, nom in variants:
        head += f" {'ours Ta' + str(int(ta * 1000)) + (' aggr' if nom == 'aggressive' else ''):>20}"
    print(head)
    for n in sizes:
        ref = statistics.median(theirs[n]) * 1000
        line = f"{n:>10} {min(n * n, 100):>6} {ref:>8.1f}"
        for v in variants:
            o = statistics.median(ours[(v, n)]) * 1000
            line += f" {o:>11.1f} ({o / ref:>5.2f})"
        print(line)
    print("pairs: ours caps the check list at 100 (max_pairs); aioice checks all n*n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
