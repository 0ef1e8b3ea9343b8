"""``siplink answer --listen HOST:PORT``: auto-answer every call until stopped.

Prints one line per call when it ends: time, Call-ID, caller, outcome and duration. Stops on
SIGINT/SIGTERM (exit 0), or after ``--calls N`` calls have ended. Media is a static SDP.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("answer", help="auto-answer incoming calls until stopped")
    p.add_argument("--listen", default="127.0.0.1:5060", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:5060)")
    p.add_argument("--transport", action="append", choices=("udp", "tcp"),
                   help="transport(s) to listen on (default udp; repeat for both)")
    p.add_argument("--ring", type=float, default=0.0, metavar="SECONDS",
                   help="send 180 Ringing and wait this long before answering")
    p.add_argument("--calls", type=int, default=0, metavar="N",
                   help="exit after N calls have ended (default: run until stopped)")
    p.add_argument("--quiet", action="store_true", help="do not print a line per call")
    p.add_argument("--stats-file", default=None, metavar="FILE",
                   help="write final counters as key=value lines to FILE on exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal

    from twisted.internet import reactor as _reactor

    from siplink.cli import EXIT_OK, EXIT_USAGE
    from siplink.commands.options import _split_hostport, stderr_trace
    from siplink.useragent import Call, CallEvent, CallState, UserAgent

    reactor: Any = _reactor
    try:
        host, port = _split_hostport(args.listen)
    except ValueError as e:
        print(f"siplink answer: {e}", file=sys.stderr)
        return EXIT_USAGE
    transports = tuple(args.transport or ("udp",))
    ua = UserAgent(reactor, host=host, port=port, transport=transports[0], user="answer",
                   trace=stderr_trace(getattr(args, "verbose", 0)))
    try:
        ua.listen(transports)
    except Exception as e:  # CannotListenError and friends
        print(f"siplink answer: cannot listen on {args.listen}: {e}", file=sys.stderr)
        return EXIT_USAGE
    ended = {"n": 0}
    out = sys.stdout

    def on_call(call: Call) -> None:
        started = reactor.seconds()
        caller = str(call.invite.from_.uri) if call.invite is not None else "?"

        def on_event(ev: CallEvent) -> None:
            if ev.state is not CallState.ENDED:
                return
            ended["n"] += 1
            if not args.quiet:
                dur = reactor.seconds() - started
                answered = "answered" if call.answered.called and call.status == 200 \
                    or call.cause in ("remote-bye", "local-bye") else "not-answered"
                out.write(f"call {call.call_id} from {caller} {answered} "
                          f"ended={ev.cause} duration={dur:.3f}s\n")
                out.flush()
            if args.calls and ended["n"] >= args.calls:
                reactor.callLater(0.1, reactor.stop)

        call.subscribe(on_event)
        if args.ring > 0:
            call.ring()
            reactor.callLater(args.ring, call.answer)
        else:
            call.answer()

    ua.on_incoming_call = on_call
    loc = ua.local(transports[0])
    print(f"listening on {loc.host}:{loc.port} ({', '.join(transports)})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run()
    ua.close()
    if args.stats_file:
        with open(args.stats_file, "w") as f:
            for k, v in ua.stats.items():
                f.write(f"{k}={v}\n")
    return EXIT_OK
