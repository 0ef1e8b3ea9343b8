"""SDP benchmark: our parse and parse+answer path beside raw ``sdp_transform.parse``, same run.

    python bench/bench_sdp.py [--repeat 5] [--number 0]

For each corpus SDP (tests/data/sdp) it times, in microseconds per call (best of --repeat):
  sdp_transform.parse        the library alone (its defects included)
  sdp_transform parse+write  the library's round trip
  sdp.parse                  our typed, checked model
  sdp.parse+serialize        our round trip
  parse+answer+serialize     an INVITE offer to the 200 OK answer body (OfferAnswer, ICE on)
Ratios are ours / sdp_transform.parse (lower is faster).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROFILES = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF")


def best_us(fn: Callable[[], object], repeat: int, number: int) -> float:
    timer = timeit.Timer(fn)
    if number <= 0:
        number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SDP parse/answer benchmark vs sdp_transform")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=0, help="calls per timing (0 = auto)")
    args = parser.parse_args(argv)

    import sdp_transform

    from ice.candidate import Candidate, CandidateType
    from sdp import IceParams, OfferAnswer, parse

    ice = IceParams("bnch", "benchpassword012345678x", (
        Candidate("h", 1, "udp", 2130706431, "127.0.0.1", 40000, CandidateType.HOST),
        Candidate("h", 2, "udp", 2130706430, "127.0.0.1", 40001, CandidateType.HOST),
    ))

    def answer(text: str) -> str:
        oa = OfferAnswer("127.0.0.1", protos=PROFILES, session_id="1", session_version=1)
        return oa.create_answer(text, ice).serialize()

    files = sorted((ROOT / "tests" / "data" / "sdp").glob("*.sdp"))
    header = (f"{'SDP':28} {'lines':>5} {'st.parse':>9} {'st.p+w':>9} {'parse':>9} "
              f"{'ratio':>6} {'p+ser':>9} {'ratio':>6} {'p+answer':>9} {'ratio':>6}")
    print("times in µs per call, best of", args.repeat)
    print(header)
    print("-" * len(header))
    totals = [0.0] * 5
    for path in files:
        text = path.read_bytes().decode()
        lines = len(text.splitlines())
        row = [
            best_us(lambda t=text: sdp_transform.parse(t), args.repeat, args.number),
            best_us(lambda t=text: sdp_transform.write(sdp_transform.parse(t)), args.repeat,
                    args.number),
            best_us(lambda t=text: parse(t), args.repeat, args.number),
            best_us(lambda t=text: parse(t).serialize(), args.repeat, args.number),
            best_us(lambda t=text: answer(t), args.repeat, args.number),
        ]
        totals = [t + r for t, r in zip(totals, row, strict=True)]
        base = row[0]
        print(f"{path.name[:28]:28} {lines:5d} {row[0]:9.1f} {row[1]:9.1f} {row[2]:9.1f} "
              f"{row[2] / base:6.2f} {row[3]:9.1f} {row[3] / base:6.2f} {row[4]:9.1f} "
              f"{row[4] / base:6.2f}")
    print("-" * len(header))
    base = totals[0]
    print(f"{'total':28} {'':5} {totals[0]:9.1f} {totals[1]:9.1f} {totals[2]:9.1f} "
          f"{totals[2] / base:6.2f} {totals[3]:9.1f} {totals[3] / base:6.2f} {totals[4]:9.1f} "
          f"{totals[4] / base:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
