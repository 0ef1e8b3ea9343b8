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


def _ours_msg() -> stun.Message:
    return stun.Message(stun.Method.BINDING, stun.Class.REQUEST, TID, {
        stun.Attr.USERNAME: USERNAME, stun.Attr.PRIORITY: PRIORITY,
        stun.Attr.ICE_CONTROLLING: TIEBREAKER})


def _aioice_msg() -> astun.Message:
    return astun.Message(astun.Method.BINDING, astun.Class.REQUEST, TID, {
        "USERNAME": USERNAME, "PRIORITY": PRIORITY, "ICE-CONTROLLING": TIEBREAKER})


def siplink_encode() -> None:
    stun.encode(_ours_msg(), key=KEY)


def aioice_encode() -> None:
    msg = _aioice_msg()
    msg.add_message_integrity(KEY)
    bytes(msg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    # the two produce the same bytes for the same message: compare like with like
    a = _aioice_msg()
    a.add_message_integrity(KEY)
    wire = stun.encode(_ours_msg(), key=KEY)
    assert bytes(a) == wire, "encoders disagree"

    def siplink_decode() -> None:
        stun.decode(wire)
        stun.check_integrity(wire, KEY)

    def aioice_decode() -> None:
        astun.parse_message(wire).check_message_integrity(KEY)

    workloads = [
        ("encode (MI + FP)", siplink_encode, aioice_encode),
        ("decode + verify MI", siplink_decode, aioice_decode),
        ("encode + decode + verify", siplink_round, aioice_round),
    ]
    print(f"STUN Binding request ({len(wire)} bytes: USERNAME, PRIORITY, ICE-CONTROLLING, "
          f"MESSAGE-INTEGRITY, FINGERPRINT)")
    print(f"best of {args.repeats} x {args.seconds:g} s each, interleaved, "
          f"Python {sys.version.split()[0]}")
    print(f"{'workload':<27}{'siplink /s':>12}{'aioice /s':>12}{'siplink us':>12}"
          f"{'aioice us':>11}{'ratio':>8}")
    ratio = 0.0
    for name, ours, theirs in workloads:
        best_ours = best_theirs = 0.0
        for _ in range(args.repeats):
            best_ours = max(best_ours, rate(ours, args.seconds))
            best_theirs = max(best_theirs, rate(theirs, args.seconds))
        ratio = best_ours / best_theirs
        print(f"{name:<27}{best_ours:>12,.0f}{best_theirs:>12,.0f}{1e6 / best_ours:>12.2f}"
              f"{1e6 / best_theirs:>11.2f}{ratio:>7.2f}x")
    print(f"goal: encode + decode >= 1.5x aioice: {'met' if ratio >= 1.5 else 'NOT met'} "
          f"({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
