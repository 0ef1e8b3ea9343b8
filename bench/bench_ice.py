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

``--pair-choice [--seeds 100]`` measures instead, in virtual time (ice.sim.simnet), how the
regular nomination policy chooses under loss: for every pair of NAT kinds where a direct
(non-relayed) pair works (found by a lossless run without TURN), seeded runs with a STUN and a
TURN server at 0, 5, 10 and 20 % loss per datagram (latency 20 ms, jitter 5 ms); it prints how
often the selected pair is relayed although a direct one exists, how many runs failed, and
the time until both sides completed (p50/p90).  ``--no-relay-wait`` runs the agent with
``relay_after_retransmission=False``.
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


# ---- pair choice under loss (simnet) -------------------------------------------------------

_EIM, _ADM, _APDM = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
NAT_KINDS: dict[str, dict[str, str] | None] = {
    "none": None, "eim": {"mapping": _EIM, "filtering": _EIM},
    "eim-apdf": {"mapping": _EIM, "filtering": _APDM},
    "adm": {"mapping": _ADM, "filtering": _ADM}, "apdm": {"mapping": _APDM, "filtering": _APDM}}
SIM_SERVER = "203.0.113.10"


def sim_once(seed: int, a_nat: str, b_nat: str, loss: float, *, turn: bool = True,
             agent_kw: dict[str, object] | None = None) -> tuple[float | None, bool]:
    """(time until both completed or None, whether the selected pair is relayed)."""
    from ice.candidate import CandidateType
    from ice.events import IceCompleted
    from ice.gathering import TurnServer as TurnConfig
    from ice.sim.simnet import Nat, SimNet, StunServer, TurnServer
    from tests.ice_support import connect, pair_on_net, run_until_done

    net = SimNet(seed=seed, latency=0.02, jitter=0.005, loss=loss)
    net.add_host(SIM_SERVER)
    stun_srv = StunServer(net, SIM_SERVER, 3478)
    TurnServer(net, SIM_SERVER, 3479)
    for realm, pub, ip, kind in (("lanA", "203.0.113.1", "10.0.0.1", a_nat),
                                 ("lanB", "203.0.113.2", "10.1.0.1", b_nat)):
        cfg = NAT_KINDS[kind]
        if cfg is None:
            net.add_host(ip)
        else:
            net.add_nat(Nat(pub, realm, mapping=cfg["mapping"], filtering=cfg["filtering"]))
            net.add_host(ip, realm)
    kw: dict[str, object] = {"stun_servers": [stun_srv.addr], **(agent_kw or {})}
    if turn:
        kw["turn_servers"] = [TurnConfig(SIM_SERVER, 3479, "alice", "secret")]
    a, b = pair_on_net(net, "10.0.0.1", "10.1.0.1", a_kw={**kw, "rng": random.Random(seed)},
                       b_kw={**kw, "rng": random.Random(seed + 7)}, start=False)
    t0 = net.now
    connect(a, b)
    run_until_done(net, a, b, limit=40)
    ta, tb = a.first(IceCompleted), b.first(IceCompleted)
    pair = a.agent.selected_pair(0, 1)
    if ta is None or tb is None or pair is None:
        return None, False
    relayed = CandidateType.RELAYED in (pair.local.type, pair.remote.type)
    return max(ta.time, tb.time) - t0, relayed


def pair_choice(seeds: int, agent_kw: dict[str, object]) -> None:
    kinds = list(NAT_KINDS)
    combos = [(x, y) for i, x in enumerate(kinds) for y in kinds[i:]]
    direct = [c for c in combos if sim_once(1, *c, 0.0, turn=False, agent_kw=agent_kw)[0]
              is not None]
    print("NAT pairs (a, b) where a direct pair works: "
          + ", ".join(f"{x}/{y}" for x, y in direct))
    print(f"{seeds} seeded runs each, STUN + TURN configured, latency 20 ms")
    print(f"{'loss':>5} {'relay chosen':>14} {'failed':>7} {'both done p50':>14} {'p90':>8}")
    for loss in (0.0, 0.05, 0.10, 0.20):
        relays = total = failed = 0
        times: list[float] = []
        for c in direct:
            for seed in range(seeds):
                t, relayed = sim_once(1000 + seed, *c, loss, agent_kw=agent_kw)
                if t is None:
                    failed += 1
                    continue
                total += 1
                relays += relayed
                times.append(t)
        times.sort()
        p90 = times[int(0.9 * len(times))] if times else float("nan")
        print(f"{loss:>5.0%} {f'{relays}/{total}':>14} {failed:>7} "
              f"{statistics.median(times) * 1000:>11.0f} ms {p90 * 1000:>5.0f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sizes", default="1,4,16")
    ap.add_argument("--pair-choice", action="store_true",
                    help="simnet: how often a relay wins where a direct pair works, under loss")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--no-relay-wait", action="store_true",
                    help="with --pair-choice: relay_after_retransmission=False")
    args = ap.parse_args()
    if args.pair_choice:
        pair_choice(args.seeds, {"relay_after_retransmission": False}
                    if args.no_relay_wait else {})
        return 0
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
