"""``siplink options URI``: send an OPTIONS request and print the status line.

Exit codes: 0 on a 2xx, 1 on any other final response or when the request could not be sent
(a refused TCP connection: at once, RFC 3261 §8.1.3.1), 2 for a bad URI or option, 3 when no
response came (timer F).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("options", help="send OPTIONS to a SIP URI and print the status line")
    p.add_argument("uri", help="target, e.g. sip:bob@127.0.0.1:5060 or 127.0.0.1:5060")
    p.add_argument("--bind", default=None, metavar="HOST:PORT",
                   help="local address to send from (default: the one that routes to the target, "
                        "e.g. 127.0.0.1 or ::1, any port)")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--timeout", type=float, default=32.0,
                   help="give up after this many seconds (default 64*T1)")
    p.set_defaults(func=run)


def stderr_trace(verbose: int) -> Any:
    """A Trace that also prints each record to stderr (``-v`` summaries, ``-vv`` messages)."""
    if not verbose:
        return None
    from ice.trace import Trace, TraceRecord

    class _Printing(Trace):
        def add(self, record: TraceRecord) -> None:
            super().add(record)
            arrow = {"in": "<-", "out": "->"}.get(record.direction, "--")
            peer = f"{record.remote[0]}:{record.remote[1]}" if record.remote else ""
            print(f"{record.time:.3f} {arrow} {peer} {record.summary}", file=sys.stderr)
            if verbose > 1 and record.detail:
                print(record.detail, file=sys.stderr)

    return _Printing()


def run(args: argparse.Namespace) -> int:
    from twisted.internet import defer, task

    from siplink.cli import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, dns_options, load_config
    from siplink.sip.message import SipParseError
    from siplink.sip.uri import SipUri
    from siplink.ua.config import split_hostport
    from siplink.ua.useragent import SipError, UserAgent

    uri = args.uri
    scheme, colon, rest = uri.partition(":")
    if colon and scheme.lower() not in ("sip", "sips") and not rest.isdigit():
        print(f"siplink options: not a SIP URI: {uri!r}", file=sys.stderr)
        return EXIT_USAGE
    if not uri.lower().startswith(("sip:", "sips:")):
        uri = "sip:" + uri
    try:
        SipUri.parse(uri)
        if args.bind is None:   # the address that routes to the target (its family)
            from siplink.transport.route import source_address

            host, port = source_address(SipUri.parse(uri).host) or "127.0.0.1", 0
        else:
            host, port = split_hostport(args.bind)
    except (SipParseError, ValueError) as e:
        print(f"siplink options: {e}", file=sys.stderr)
        return EXIT_USAGE
    dns = dns_options(load_config(args))   # a ConfigError: exit 2 (siplink.cli.main)
    result = {"code": EXIT_FAILED}

    async def main(_reactor: Any) -> None:
        ua = UserAgent(_reactor, host=host, port=port, transport=args.transport,
                       trace=stderr_trace(getattr(args, "verbose", 0)), **dns)
        try:
            ua.listen()
            d = ua.request("OPTIONS", uri)
            d.addTimeout(args.timeout, _reactor)
            resp = await d
            print(f"SIP/2.0 {resp.status} {resp.reason}")
            result["code"] = EXIT_OK if 200 <= resp.status < 300 else EXIT_FAILED
        except SipError as e:
            if e.timed_out:
                print(f"siplink options: no response from {uri}", file=sys.stderr)
                result["code"] = EXIT_TIMEOUT
            else:   # the request could not be sent (a refused connection...): say why
                print(f"siplink options: {uri}: {e.reason}", file=sys.stderr)
                result["code"] = EXIT_FAILED
        except defer.TimeoutError:
            print(f"siplink options: no response from {uri}", file=sys.stderr)
            result["code"] = EXIT_TIMEOUT
        except (OSError, SipParseError, ValueError) as e:
            print(f"siplink options: {e}", file=sys.stderr)
            result["code"] = EXIT_USAGE
        finally:
            ua.close()

    try:
        task.react(lambda r: defer.ensureDeferred(main(r)))
    except SystemExit:
        pass
    return result["code"]
