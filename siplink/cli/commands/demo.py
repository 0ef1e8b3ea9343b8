"""``siplink demo [--json] [--seconds S]``: an ICE-negotiated call between two agents on
loopback, with a tone and DTMF each way, summarised and checked (see :mod:`siplink.calltest.demo`).

Exit code 0 when every check passed (selected pair, time to connected, RTP both ways, tone
frequency, DTMF digits), 1 otherwise."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="call between two agents on loopback: ICE, tone, DTMF, summary")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--seconds", type=float, default=3.0, metavar="S",
                   help="how long media flows (default 3)")
    p.add_argument("--host", default="127.0.0.1",
                   help="loopback address both agents use (default 127.0.0.1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from siplink.calltest.demo import run_demo
    from siplink.cli import EXIT_USAGE

    if not 1.5 <= args.seconds <= 600:
        print("siplink demo: --seconds must be between 1.5 and 600")
        return EXIT_USAGE
    return run_demo(json=args.json, seconds=args.seconds, host=args.host)
