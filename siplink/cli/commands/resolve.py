"""``siplink resolve URI``: where a request to URI would go (RFC 3263), like ``dig`` for SIP.

Prints the ordered targets, one a line: transport, address, port, and the records each came
from (NAPTR service, SRV name and target, A or AAAA), the order a request tries them in
(§4.3 failover).  ``--json``: one object with the URI and the list.  Only the servers given
(``--dns``, ``[sip] dns_servers``) are asked, else the system's.

Exit codes: 0 targets found, 1 the name has no usable record, 2 bad URI or option, 3 the DNS
server did not answer within ``[sip] dns_timeout_s``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "resolve", help="print the servers a SIP URI resolves to (RFC 3263 NAPTR/SRV/A/AAAA)",
        description="Locate the SIP servers of a URI the way a request does (RFC 3263) and "
                    "print them in the order they are tried.")
    p.add_argument("uri", help="e.g. sip:example.test, sips:example.test, "
                               "sip:example.test;transport=tcp or sip:host.test:5080")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import defer, task

    from siplink.cli import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, dns_options, load_config
    from siplink.dns.resolver import DnsResolver
    from siplink.dns.rfc3263 import LocateError
    from siplink.sip.message import SipParseError
    from siplink.sip.uri import SipUri

    text = args.uri if args.uri.lower().startswith(("sip:", "sips:")) else "sip:" + args.uri
    try:
        uri = SipUri.parse(text)
    except SipParseError as e:
        print(f"siplink resolve: not a SIP URI: {args.uri!r} ({e.reason})", file=sys.stderr)
        return EXIT_USAGE
    dns = dns_options(load_config(args))   # a ConfigError: exit 2 (siplink.cli.main)
    result: dict[str, Any] = {"code": EXIT_FAILED}

    async def main(reactor: Any) -> None:
        resolver = DnsResolver(reactor, dns["dns_servers"], timeout=dns["dns_timeout"])
        host = uri.params.get("maddr") or uri.host
        try:
            found = await resolver.locate(host, uri.port, uri.params.get("transport"),
                                          uri.scheme == "sips")
        except LocateError as e:
            timed_out = "no answer within" in str(e)
            if args.json:
                print(json.dumps({"uri": str(uri), "targets": [], "error": str(e)}))
            else:
                print(f"siplink resolve: {e}", file=sys.stderr)
            result["code"] = EXIT_TIMEOUT if timed_out else EXIT_FAILED
            return
        if args.json:
            print(json.dumps({"uri": str(uri), "targets": [
                {"transport": t.transport, "address": t.address, "port": t.port,
                 "host": t.host, "source": t.source} for t in found]}))
        else:
            for n, t in enumerate(found, 1):
                addr = f"[{t.address}]" if ":" in t.address else t.address
                print(f"{n}. {t.transport} {addr}:{t.port}  ({t.source})")
        result["code"] = EXIT_OK

    try:
        task.react(lambda r: defer.ensureDeferred(main(r)))
    except SystemExit:
        pass
    return int(result["code"])
