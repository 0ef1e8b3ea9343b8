"""``siplink answer --listen HOST:PORT``: auto-answer every call until stopped.

Prints one line per call when it ends: Call-ID, caller, outcome, duration and what ICE did.
Stops on SIGINT/SIGTERM (exit 0), or after ``--calls N`` calls have ended.

Media is ICE by default (:class:`siplink.media.icesession.IceMediaSession`, configured from the
``[ice]`` and ``[media]`` sections of ``--config``): checks as the controlled agent, a tone on
the selected pair; an offer without ICE is answered with plain RTP (RFC 8839 fallback).
``--media static`` answers with a fixed SDP and sends no media (signalling load tests).
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
    p.add_argument("--media", choices=("ice", "static"), default="ice",
                   help="ice (default): ICE-negotiated RTP, plain RTP for offers without ICE; "
                        "static: a fixed SDP, no media (signalling load tests)")
    p.add_argument("--tone", type=float, default=None, metavar="HZ",
                   help="tone we play to callers (default: [media] tone_hz, 440)")
    p.add_argument("--ice-address", action="append", metavar="ADDR",
                   help="gather ICE candidates on this address (repeatable; default: the "
                        "listen address, or [ice] addresses when listening on a wildcard)")
    p.add_argument("--quiet", action="store_true", help="do not print a line per call")
    p.add_argument("--stats-file", default=None, metavar="FILE",
                   help="write final counters as key=value lines to FILE on exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal

    from twisted.internet import reactor as _reactor

    from siplink.cli import EXIT_OK, EXIT_USAGE, dns_options, load_config
    from siplink.cli.commands.options import stderr_trace
    from siplink.media.icesession import IceMediaSession, media_options
    from siplink.ua.config import split_hostport
    from siplink.ua.useragent import Call, CallEvent, CallState, StaticMedia, UserAgent

    reactor: Any = _reactor
    try:
        host, port = split_hostport(args.listen)
    except ValueError as e:
        print(f"siplink answer: {e}", file=sys.stderr)
        return EXIT_USAGE
    transports = tuple(args.transport or ("udp",))
    dns = dns_options(load_config(args))   # a ConfigError: exit 2 (siplink.cli.main)
    ua = UserAgent(reactor, host=host, port=port, transport=transports[0], user="answer",
                   trace=stderr_trace(getattr(args, "verbose", 0)), **dns)
    try:
        ua.listen(transports)
    except Exception as e:  # CannotListenError and friends
        print(f"siplink answer: cannot listen on {args.listen}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.media == "ice":
        config = load_config(args)
        opts = media_options(config)
        if args.ice_address:
            opts["local_addresses"], opts["interfaces"] = tuple(args.ice_address), None
        elif host not in ("0.0.0.0", "::", ""):
            opts["local_addresses"], opts["interfaces"] = (host,), None
        elif host == "::" and not (config.is_set("ice.addresses")
                                   or config.is_set("ice.interfaces")):
            # a dual-stack wildcard: candidates of both families (the loopback defaults)
            opts["local_addresses"], opts["interfaces"] = ("127.0.0.1", "::1"), None
        tone = config.media.tone_hz if args.tone is None else args.tone
        ua.media_factory = lambda: IceMediaSession(reactor, tone=tone, **opts)
    else:
        ua.media_factory = lambda: StaticMedia(host)
    ended = {"n": 0}
    out = sys.stdout

    def ice_note(call: Call) -> str:
        media = call.media
        if not isinstance(media, IceMediaSession):
            return ""
        if not media.ice_used:
            return " ice=not-used"
        pair = media.selected_pairs.get(1)
        return f" ice={pair.local_type}->{pair.remote_type}" if pair else " ice=none"

    def on_call(call: Call) -> None:
        started = reactor.seconds()
        caller = str(call.invite.from_.uri) if call.invite is not None else "?"

        def on_event(ev: CallEvent) -> None:
            if ev.state is not CallState.ENDED:
                return
            ended["n"] += 1
            if not args.quiet:
                dur = reactor.seconds() - started
                answered = "answered" if call.is_answered and call.status == 200 \
                    or call.cause in ("remote-bye", "local-bye") else "not-answered"
                out.write(f"call {call.call_id} from {caller} {answered} "
                          f"ended={ev.cause} duration={dur:.3f}s{ice_note(call)}\n")
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
