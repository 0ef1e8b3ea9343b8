"""Benchmark: encode + decode of an ICE connectivity-check Binding request, siplink vs aioice.

The request carries USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY and FINGERPRINT.
Each round encodes it (computing HMAC-SHA1 and CRC-32), decodes the bytes and verifies the
MESSAGE-INTEGRITY, which is what an ICE agent does per check.  Both libraries run in the same
process, interleaved over several repeats; the best repeat is reported.

    python bench/bench_stun.py [--seconds 0.5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from aioice import stun as astun  # noqa: E402

from ice import stun  # noqa: E402

KEY = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
USERNAME = "evtj:h6vY"
PRIORITY = 0x6E0001FF
TIEBREAKER = 0x932FF9B151263B36


def siplink_round() -> None:
    msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, TID, {
        stun.Attr.USERNAME: USERNAME, stun.Attr.PRIORITY: PRIORITY,
        stun.Attr.ICE_CONTROLLING: TIEBREAKER})
    data = stun.encode(msg, key=KEY)
    out = stun.decode(data)
    if not stun.check_integrity(data, KEY) or out.attributes[stun.Attr.PRIORITY] != PRIORITY:
        raise AssertionError("siplink round trip failed")


def aioice_round() -> None:
    msg = astun.Message(astun.Method.BINDING, astun.Class.REQUEST, TID, {
        "USERNAME": USERNAME, "PRIORITY": PRIORITY, "ICE-CONTROLLING": TIEBREAKER})
    msg.add_message_integrity(KEY)
    data = bytes(msg)
    out = astun.parse_message(data)
    if not out.check_message_integrity(KEY) or out.attributes["PRIORITY"] != PRIORITY:
        raise AssertionError("aioice round trip failed")


def rate(fn: Callable[[], None], seconds: float) -> float:
    n = 0
    batch = 200
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    # the two produce the same bytes for the same message: compare like with like
    a = astun.Message(astun.Method.BINDING, astun.Class.REQUEST, TID, {
        "USERNAME": USERNAME, "PRIORITY": PRIORITY, "ICE-CONTROLLING": TIEBREAKER})
    a.add_message_integrity(KEY)
    ours = stun.encode(stun.Message(stun.Method.BINDING, stun.Class.REQUEST, TID, {
        stun.Attr.USERNAME: USERNAME, stun.Attr.PRIORITY: PRIORITY,
        stun.Attr.ICE_CONTROLLING: TIEBREAKER}), key=KEY)
    assert bytes(a) == ours, "encoders disagree"

    best = {"siplink": 0.0, "aioice": 0.0}
    for _ in range(args.repeats):
        best["siplink"] = max(best["siplink"], rate(siplink_round, args.seconds))
        best["aioice"] = max(best["aioice"], rate(aioice_round, args.seconds))
    print(f"STUN Binding request ({len(ours)} bytes) encode + decode + verify, "
          f"best of {args.repeats} x {args.seconds:g} s, Python {sys.version.split()[0]}")
    print(f"{'implementation':<16}{'rounds/s':>12}{'us/round':>11}{'ratio':>8}")
    for name in ("siplink", "aioice"):
        r = best[name]
        print(f"{name:<16}{r:>12,.0f}{1e6 / r:>11.2f}{r / best['aioice']:>8.2f}")
    ratio = best["siplink"] / best["aioice"]
    print(f"siplink / aioice = {ratio:.2f}x (goal >= 1.5x): {'met' if ratio >= 1.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
