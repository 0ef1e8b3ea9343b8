"""``siplink demo``: for now, parse a built-in INVITE with an SDP offer and print its
structure (a later issue replaces this with a demo call on loopback)."""

from __future__ import annotations

import argparse
from typing import Any

DEMO_INVITE = (
    b"INVITE sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK74bf9;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@127.0.0.1>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: 3848276298220188511@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@127.0.0.1:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
DEMO_SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"a=ice-ufrag:8hhY\r\n"
    b"a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"a=candidate:1 1 UDP 2130706431 127.0.0.1 49170 typ host\r\n"
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="demo: parse a built-in INVITE with SDP and print it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from siplink.commands.parse import _print_text, describe
    from siplink.message import Request, make_response, new_tag, parse_message

    # build the datagram the codec's way (Content-Length from the body), then parse it back
    invite = parse_message(DEMO_INVITE)
    invite.body = DEMO_SDP
    wire = invite.serialize()
    msg = parse_message(wire)
    _print_text("built-in INVITE", describe(msg))
    print("  body:")
    for line in msg.body.decode().splitlines():
        print(f"    {line}")
    if not isinstance(msg, Request):
        return 1
    ringing = make_response(msg, 180, to_tag=new_tag())
    print(f"\nanswer built from it:\n{ringing.serialize().decode()}", end="")
    return 0
