"""``siplink test SCENARIO.toml``: run a call-test scenario and report.

Places the scenario's calls at ``--rate`` per second with at most ``--concurrency`` up at once,
checks each call's expectations (see :mod:`siplink.calltest.scenario`), prints a summary table, and
optionally writes a JUnit XML report, an HTML ladder and a pcap of the SIP and STUN packets.
A progress bar is drawn on stderr when it is a terminal and there is more than one call.

Exit codes: 0 every call passed, 1 a call failed an expectation, 2 bad scenario, config or
flag, 3 no call got any final response (everything timed out).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "test", help="run a call-test scenario (TOML) and report",
        description="Run the calls of a scenario file and check what must happen in each "
                    "(responses and timing, ICE and the selected candidate type, media and "
                    "loss, DTMF, re-INVITE/hold steps, who hangs up). Exit 0 when every call "
                    "passed, 1 when one failed, 2 for a bad file or flag, 3 when no call got "
                    "any response.")
    p.add_argument("scenario", metavar="SCENARIO.toml", help="scenario file (conf/scenarios/)")
    p.add_argument("--rate", type=float, default=None, metavar="R",
                   help="calls started per second (overrides scenario.rate)")
    p.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="calls up at once at most (overrides scenario.concurrency)")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="value for ${NAME} in the scenario (repeatable; the environment too)")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--ladder", metavar="FILE.html",
                   help="write the ladder of the first failed call (else the first call) "
                        "as standalone HTML")
    p.add_argument("--pcap", metavar="FILE",
                   help="write the SIP and STUN packets of the same call as a pcap")
    p.add_argument("--register", action="store_true",
                   help="register the configuration's accounts (those with a registrar) first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="print the SIP/STUN trace to stderr (-vv whole messages, -vvv RTP); "
                        "same as siplink -v")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from siplink.calltest.scenario import Progress, ScenarioError, load_scenario, run_scenario
    from siplink.cli import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, load_config

    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"siplink test: --var wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return EXIT_USAGE
        variables[name] = value
    if args.rate is not None and args.rate <= 0 or \
            args.concurrency is not None and args.concurrency < 1:
        print("siplink test: --rate must be > 0 and --concurrency >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        sc = load_scenario(args.scenario, variables)
    except ScenarioError as e:
        print(f"siplink test: scenario error: {e}", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(args)
    verbose = max(args.verbose, 1 if config.logging.trace else 0)
    from siplink.cli.commands.call import trace_factory

    total = sum(c.repeat for c in sc.calls)
    progress = Progress(total, sys.stderr, sys.stderr.isatty() and not args.no_progress
                        and not verbose)
    box: dict[str, Any] = {}

    async def main(reactor: Any) -> None:
        box["result"] = await run_scenario(reactor, sc, config, rate=args.rate,
                                           concurrency=args.concurrency,
                                           trace_factory=trace_factory(verbose),
                                           on_record=progress.update,
                                           register=args.register)

    from siplink.cli.commands.call import react

    err = react(main)
    if err is not None:
        print(f"siplink test: {err}", file=sys.stderr)
        return EXIT_FAILED
    result = box["result"]
    from siplink.calltest.scenario import junit_xml, summary_table

    sys.stdout.write(summary_table(result))
    if args.junit:
        with open(args.junit, "wb") as f:
            f.write(junit_xml(result))
    if (args.ladder or args.pcap) and result.records:
        chosen = (result.failed or result.records)[0]
        from siplink.cli.commands.call import write_views

        write_views(chosen, args.ladder, args.pcap, title=f"{sc.name}: {chosen.name}")
    if result.ok:
        return EXIT_OK
    if all(r.status is None for r in result.records):
        return EXIT_TIMEOUT
    return EXIT_FAILED
