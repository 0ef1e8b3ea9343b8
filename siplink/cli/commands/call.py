"""``siplink call URI``: place one call, keep it up, check what happened, hang up.

The call is a one-call scenario (:mod:`siplink.calltest.scenario`) built from the flags, so its checks,
summary and views are the same as ``siplink test``'s. ICE is used unless ``--no-ice`` (or
``ice.enabled = false``): a peer that answers without ICE then fails the call.

Exit codes: 0 the call was answered and every ``--expect-*`` held, 1 rejected or an
expectation failed, 2 bad URI/flag/config, 3 no final response (timeout).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ice.trace import Trace, TraceRecord
    from siplink.calltest.scenario import CallRecord


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "call", help="place a call (ICE media), check it, hang up",
        description="Call URI, stay up --duration seconds (RTP on the ICE-selected pair, "
                    "DTMF if asked), hang up with BYE and print what happened. --expect-* "
                    "flags turn it into a check: exit 0 when all held, 1 when one did not "
                    "or the call was rejected, 2 for bad usage, 3 when nothing answered.")
    p.add_argument("uri", help="whom to call: sip:bob@127.0.0.1:5080 (or HOST:PORT)")
    p.add_argument("--account", metavar="NAME",
                   help="configuration account to call as (From, credentials, outbound proxy)")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="local SIP address (overrides sip.listen; port 0 picks one)")
    p.add_argument("--duration", type=float, default=3.0, metavar="S",
                   help="seconds to stay up after the answer (default 3)")
    p.add_argument("--dtmf", default="", metavar="DIGITS",
                   help="send these RFC 4733 digits once ICE connected")
    p.add_argument("--play", metavar="FILE.wav",
                   help="play this WAV file (overrides media.play_wav; default a tone)")
    p.add_argument("--record", metavar="FILE.wav",
                   help="write the audio received to this WAV file when the call ends")
    p.add_argument("--no-ice", action="store_true",
                   help="plain SDP without ICE (for peers such as SIPp's uas)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="S",
                   help="give up after this long without an answer / the call's end")
    p.add_argument("--expect-status", type=int, default=200, metavar="CODE",
                   help="final response expected (default 200)")
    p.add_argument("--expect-within", type=int, default=0, metavar="MS",
                   help="... within this many milliseconds")
    p.add_argument("--expect-ice", metavar="TYPE", nargs="?", const="any",
                   choices=("any", "host", "srflx", "prflx", "relay"),
                   help="ICE must complete, on a pair with a remote candidate of TYPE")
    p.add_argument("--expect-media", type=float, default=0.0, metavar="S",
                   help="RTP must flow at least S seconds")
    p.add_argument("--max-loss", type=float, default=None, metavar="PCT",
                   help="RTP loss must stay at or under PCT percent")
    p.add_argument("--expect-dtmf", default="", metavar="DIGITS",
                   help="these DTMF digits must be received from the peer")
    p.add_argument("--ladder", metavar="FILE.html", help="write the call's ladder as HTML")
    p.add_argument("--pcap", metavar="FILE", help="write the call's SIP and STUN packets")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="print the SIP/STUN trace to stderr (-vv whole messages, -vvv RTP); "
                        "same as siplink -v")
    p.set_defaults(func=run)


# ------------------------------------------------------------------ shared with `siplink test`


def _echo(record: TraceRecord, verbose: int) -> None:
    if record.protocol == "rtp" and verbose < 3:
        return
    if record.direction == "event" and verbose < 2 and record.protocol != "ice":
        return
    if record.protocol in ("ice", "sdp") and record.direction == "event" and verbose < 2 \
            and not record.summary.startswith(("selected", "nominated", "stream", "ICE",
                                               "checks", "gathered", "call ends")):
        return
    from siplink.calltest.ladder import sip_label

    arrow = {"in": "<-", "out": "->", "event": "**"}[record.direction]
    summary = sip_label(record) if record.protocol == "sip" else record.summary
    peer = f" {record.remote[0]}:{record.remote[1]}" if record.remote else ""
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(record.time)) + \
        f".{int(record.time * 1000) % 1000:03d}"
    sys.stderr.write(f"{stamp} {record.protocol or '-':4} {arrow}{peer} "
                     f"{summary}\n")
    if verbose >= 2 and record.protocol == "sip" and record.detail:
        sys.stderr.write("    " + record.detail.rstrip().replace("\r\n", "\n    ") + "\n")
    sys.stderr.flush()


def trace_factory(verbose: int) -> Callable[[], Trace]:
    """Traces that also print each record to stderr as it is added (``-v``: SIP first lines,
    STUN and ICE milestones; ``-vv``: whole SIP messages and every event; ``-vvv``: RTP)."""
    from ice.trace import Trace

    if verbose <= 0:
        return Trace

    class EchoTrace(Trace):
        def add(self, record: TraceRecord) -> None:
            super().add(record)
            _echo(record, verbose)

    return EchoTrace


def react(main: Callable[[Any], Coroutine[Any, Any, None]]) -> str | None:
    """Run ``main(reactor)`` on the global reactor; returns an error text or None."""
    from twisted.internet import defer, task

    box: dict[str, str] = {}

    async def wrapped(reactor: Any) -> None:
        try:
            await main(reactor)
        except Exception as e:  # noqa: BLE001 - reported, exit code 1
            box["error"] = f"{type(e).__name__}: {e}"

    try:
        task.react(lambda r: defer.ensureDeferred(wrapped(r)))
    except SystemExit:
        pass
    return box.get("error")


def write_views(rec: CallRecord, ladder: str | None, pcap: str | None, *, title: str) -> None:
    from siplink.calltest.ladder import render_html
    from siplink.calltest.trace_export import export_pcap

    if ladder:
        with open(ladder, "w", encoding="utf-8") as f:
            f.write(render_html(rec.records, title=title))
    if pcap:
        export_pcap(rec.records, pcap)


# ------------------------------------------------------------------ the command


def run(args: argparse.Namespace) -> int:
    import json

    from siplink.calltest.scenario import (
        CallSpec,
        Expect,
        RunResult,
        Scenario,
        ScenarioHeader,
        check_call,
        run_scenario,
    )
    from siplink.cli import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, load_config
    from siplink.sip.message import SipParseError
    from siplink.sip.uri import SipUri
    from siplink.ua.config import override

    uri = args.uri
    if not uri.lower().startswith(("sip:", "sips:")):
        uri = "sip:" + uri
    try:
        SipUri.parse(uri)
    except (SipParseError, ValueError) as e:
        print(f"siplink call: not a SIP URI: {args.uri!r} ({e})", file=sys.stderr)
        return EXIT_USAGE
    if args.duration < 0 or args.timeout <= 0:
        print("siplink call: --duration must be >= 0 and --timeout > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.no_ice and (args.expect_ice or args.expect_media or args.expect_dtmf or args.dtmf
                        or args.play or args.record):
        print("siplink call: --no-ice cannot be combined with ICE/media/DTMF options",
              file=sys.stderr)
        return EXIT_USAGE
    if args.expect_media > args.duration:
        print("siplink call: --expect-media is longer than --duration", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(args)
    override(config, "sip.listen", args.listen)
    override(config, "media.play_wav", args.play)
    override(config, "media.record_wav", args.record)
    ice = config.ice.enabled and not args.no_ice
    if config.media.play_wav and ice:
        from siplink.media.stream import MediaError, WavSource

        try:
            WavSource.from_file(config.media.play_wav)
        except (MediaError, OSError) as e:
            print(f"siplink call: cannot play {config.media.play_wav}: {e}", file=sys.stderr)
            return EXIT_USAGE
    if args.account:
        config.account(args.account)   # ConfigError (exit 2) when there is no such account
    acc = config.account(args.account) if args.account else None
    hop = (acc.proxy if acc is not None and acc.proxy else uri)
    config.follow_destination(
        SipUri.parse(hop if hop.lower().startswith(("sip:", "sips:")) else f"sip:{hop}").host)
    expect = Expect(status=args.expect_status, within_ms=args.expect_within,
                    ice=args.expect_ice is not None,
                    candidate="" if args.expect_ice in (None, "any") else args.expect_ice,
                    media_s=args.expect_media,
                    max_loss_pct=100.0 if args.max_loss is None else args.max_loss,
                    dtmf=args.expect_dtmf)
    spec = CallSpec(name="call", to=uri, account=args.account or "", ice=ice,
                    duration_s=args.duration, dtmf=args.dtmf, expect=expect)
    sc = Scenario(ScenarioHeader(name=f"call {uri}", timeout_s=args.timeout + args.duration),
                  calls=[spec])
    verbose = max(args.verbose, 1 if config.logging.trace else 0)
    box: dict[str, RunResult] = {}

    async def main(reactor: Any) -> None:
        box["r"] = await run_scenario(reactor, sc, config, trace_factory=trace_factory(verbose))

    err = react(main)
    if err is not None or not box.get("r") or not box["r"].records:
        print(f"siplink call: {err or 'no result'}", file=sys.stderr)
        return EXIT_FAILED
    rec = box["r"].records[0]
    rec.failures = check_call(rec)
    if args.ladder or args.pcap:
        write_views(rec, args.ladder, args.pcap, title=f"siplink call {uri}")
    if args.json:
        print(json.dumps({
            "uri": uri, "ok": rec.ok, "status": rec.status, "reason": rec.reason,
            "call_id": rec.call_id, "setup_ms": rec.setup_ms, "redirects": rec.redirects,
            "ice": {"used": rec.ice_used, "state": rec.ice_state, "cause": rec.ice_cause,
                    "ms": rec.ice_ms,
                    "local_type": rec.local_type, "remote_type": rec.remote_type,
                    "pair": rec.pair},
            "rtp": {"received": rec.rtp_received, "sent": rec.rtp_sent, "lost": rec.rtp_lost,
                    "loss_pct": rec.loss_pct},
            "dtmf_received": rec.dtmf_received, "ended_by": rec.ended_by,
            "end_cause": rec.end_cause, "duration_s": round(rec.duration_s, 3),
            "failures": rec.failures}))
    else:
        _print_text(rec, uri)
    if rec.ok:
        return EXIT_OK
    if rec.status is None:
        return EXIT_TIMEOUT
    return EXIT_FAILED


def _print_text(rec: CallRecord, uri: str) -> None:
    from siplink.calltest.ladder import render_text

    w = sys.stdout.write
    w(render_text(rec.records))
    status = "no final response" if rec.status is None else f"{rec.status} {rec.reason}".strip()
    setup = "" if rec.setup_ms is None else f" in {rec.setup_ms:.0f} ms"
    for hop in rec.redirects:
        w(f"redirected: {hop}\n")
    w(f"call {uri}: {status}{setup}, Call-ID {rec.call_id}\n")
    if not rec.ice_used:
        w("ICE not used: the peer answered without ICE; plain RTP to its c=/m= address\n")
    elif rec.ice_state:
        ice = f"ICE {rec.ice_state}"
        if rec.ice_ms is not None:
            ice += f" in {rec.ice_ms:.0f} ms, pair {rec.pair}"
        if rec.ice_cause:
            ice += f" ({rec.ice_cause})"
        w(ice + "\n")
    if rec.loss_pct is not None or rec.rtp_sent:
        loss = "-" if rec.loss_pct is None else f"{rec.loss_pct:.1f}%"
        w(f"RTP sent {rec.rtp_sent}, received {rec.rtp_received} in "
          f"{rec.media_window_s:.1f} s, loss {loss}\n")
    if rec.dtmf_received:
        w(f"DTMF received {rec.dtmf_received}\n")
    w(f"ended by {rec.ended_by or '?'} ({rec.end_cause})\n")
    for f in rec.failures:
        w(f"FAIL: {f}\n")
    if not rec.ice_used and any("ICE" in f for f in rec.failures):
        w("hint: the peer does not do ICE; drop --expect-ice, or call it with --no-ice\n")
    w("ok\n" if rec.ok else "FAILED\n")
