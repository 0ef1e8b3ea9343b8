"""``siplink parse FILE...``: parse SIP messages from files and print their structure.

Exit 0 when every file holds a well-formed SIP message, 1 when any is malformed (the file
name and the reason go to stderr), 2 when a file cannot be read.  ``-`` reads stdin.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siplink.sip.headers import NameAddr
    from siplink.sip.message import Message


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "parse", help="parse SIP messages from files and print their structure",
        description="Parse each FILE as one SIP message (as a UDP datagram would carry it) and "
                    "print its structure. Exit 0 if all are well-formed, 1 if any is malformed.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="a file holding one SIP message ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list, one object per file)")
    p.set_defaults(func=run)


def _addr(a: NameAddr) -> dict[str, Any]:
    return {"display_name": a.display_name, "uri": str(a.uri), "params": a.params}


def describe(msg: Message) -> dict[str, Any]:
    """A JSON-ready description of a parsed message."""
    from siplink.sip.message import Request

    d: dict[str, Any] = {}
    if isinstance(msg, Request):
        u = msg.uri
        d["type"] = "request"
        d["method"] = msg.method
        d["uri"] = str(u)
        d["uri_parts"] = {"scheme": u.scheme, "user": u.user, "password": u.password,
                          "host": u.host, "port": u.port, "params": u.params,
                          "headers": u.headers, "opaque": u.opaque}
    else:
        d["type"] = "response"
        d["status"] = msg.status
        d["reason"] = msg.reason
    d["version"] = msg.version
    d["via"] = [{"transport": v.transport, "host": v.host, "port": v.port, "params": v.params}
                for v in msg.via]
    d["call_id"] = msg.call_id
    d["cseq"] = {"number": msg.cseq.number, "method": msg.cseq.method}
    d["from"] = _addr(msg.from_)
    d["to"] = _addr(msg.to)
    d["contact"] = [_addr(a) for a in msg.contact]
    d["max_forwards"] = msg.max_forwards
    d["content_type"] = msg.content_type
    d["content_length"] = len(msg.body)
    d["headers"] = [[n, v] for n, v in msg.headers.items()]
    return d


def _print_text(name: str, d: dict[str, Any]) -> None:
    print(f"== {name}")
    if d["type"] == "request":
        print(f"request  {d['method']} {d['uri']} {d['version']}")
    else:
        print(f"response {d['version']} {d['status']} {d['reason']}")
    for i, v in enumerate(d["via"]):
        port = "" if v["port"] is None else f":{v['port']}"
        params = ";".join(k if val is None else f"{k}={val}" for k, val in v["params"].items())
        print(f"  via[{i}]     {v['transport']} {v['host']}{port} {params}")
    print(f"  call-id    {d['call_id']}")
    print(f"  cseq       {d['cseq']['number']} {d['cseq']['method']}")
    for key in ("from", "to"):
        a = d[key]
        print(f"  {key:<10} {a['uri']}  tag={a['params'].get('tag')}  name={a['display_name']!r}")
    for a in d["contact"]:
        print(f"  contact    {a['uri']}  {a['params'] or ''}")
    print(f"  body       {d['content_length']} bytes {d['content_type'] or ''}")
    print(f"  headers    {len(d['headers'])}")
    for n, v in d["headers"]:
        print(f"    {n}: {v}")


def run(args: argparse.Namespace) -> int:
    from siplink.sip.message import SipParseError, parse_message

    # header octets that are not UTF-8 are kept as surrogates: print them escaped, never fail
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    results: list[dict[str, Any]] = []
    failed = False
    unreadable = False
    for name in args.files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()  # noqa: SIM115
        except OSError as e:
            print(f"{name}: cannot read: {e.strerror}", file=sys.stderr)
            unreadable = True
            continue
        try:
            msg = parse_message(data)
            d = describe(msg)
        except SipParseError as e:
            print(f"{name}: {e.status} {e.reason}", file=sys.stderr)
            failed = True
            results.append({"file": name, "ok": False, "status": e.status, "reason": e.reason})
            continue
        results.append({"file": name, "ok": True, "message": d})
        if not args.json:
            _print_text(name, d)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    if unreadable:
        return 2
    return 1 if failed else 0
