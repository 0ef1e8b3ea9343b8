"""Long fuzz run of the SDP core: the property tests of tests/test_sdp_fuzz.py, many more examples.

    python bench/fuzz_sdp.py --budget 600     # seconds; exit 1 on the first failure

Random and mutated SDP must only ever raise SdpError, and whatever parses must serialise and
parse back to the same model (and be answerable, or refused with SdpError).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Long fuzz run of the SDP core.")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds to run (default 60)")
    parser.add_argument("--scale", type=int, default=10,
                        help="examples per round, as a multiple of the unit-test count")
    args = parser.parse_args(argv)
    os.environ["SDP_FUZZ_SCALE"] = str(args.scale)

    from tests import test_sdp_fuzz as fuzz

    tests = [fuzz.test_random_input_only_raises_sdp_error,
             fuzz.test_mutated_corpus_only_raises_sdp_error_and_round_trips,
             fuzz.test_candidate_round_trip]
    deadline = time.monotonic() + args.budget
    rounds = 0
    while time.monotonic() < deadline:
        for test in tests:
            try:
                test()
            except Exception as exc:  # noqa: BLE001 - report any failure and stop
                print(f"FAILED {test.__name__}: {exc!r}")
                return 1
        rounds += 1
        print(f"round {rounds} ok (scale {args.scale}),"
              f" {max(0.0, deadline - time.monotonic()):.0f} s left", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
