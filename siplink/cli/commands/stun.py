"""``siplink stun HOST[:PORT]``: send a STUN Binding request, print the server-reflexive
address (like coturn's turnutils_stunclient)."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
DEFAULT_PORT = 3478


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stun", help="send a STUN Binding request and print the server-reflexive address",
        description="Send a STUN Binding request (RFC 8489) over UDP and print the "
                    "server-reflexive (XOR-MAPPED) address the server saw.",
    )
    p.add_argument("server", metavar="HOST[:PORT]", nargs="?", default=None,
                   help=f"STUN server (port {DEFAULT_PORT}); default: the first of "
                        "ice.stun_servers in the configuration")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="give up after this long without an answer (default 5)")
    p.add_argument("--bind", default=None, metavar="ADDR",
                   help="local address to send from (default: any)")
    p.set_defaults(func=run)


class UsageError(Exception):
    pass


def parse_hostport(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address, resolved to
    a numeric address; raises UsageError."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"bad address {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise UsageError(f"bad address {text!r}: no host")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UsageError(f"bad port in {text!r}")
        port = int(port_text)
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve {host!r}: {e.strerror}") from e
    addr = info[0][4]
    return str(addr[0]), int(addr[1])


def run_in_reactor(main: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    """Run ``main(reactor)`` to completion on the Twisted reactor; its result is the exit
    code.  (The reactor cannot be restarted: one command per process.)"""
    from twisted.internet import defer
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    result = {"code": EXIT_FAILED}

    def start() -> None:
        d = defer.ensureDeferred(main(reactor))

        def done(code: object) -> None:
            if isinstance(code, int):
                result["code"] = code
            else:
                print(f"siplink: internal error: {code}", file=sys.stderr)
            reactor.stop()

        d.addBoth(done)

    reactor.callWhenRunning(start)
    reactor.run()
    return result["code"]


def run(args: argparse.Namespace) -> int:
    text = args.server
    if text is None:
        from siplink.cli import load_config

        servers = load_config(args).ice.stun_servers
        if not servers:
            print("siplink stun: no server given and no ice.stun_servers in the configuration",
                  file=sys.stderr)
            return EXIT_USAGE
        text = servers[0]
    try:
        server = parse_hostport(text.removeprefix("stun:"))
    except UsageError as e:
        print(f"siplink stun: {e}", file=sys.stderr)
        return EXIT_USAGE
    verbose = getattr(args, "verbose", 0)

    async def main(reactor: Any) -> int:
        from twisted.internet import defer

        from ice.drivers.stun import BindingClient, StunBadReply, StunErrorResponse, StunTimeout
        from ice.stun import Attr

        client = BindingClient(reactor, server)
        bind = args.bind or ("::" if ":" in server[0] else "0.0.0.0")
        try:
            port = reactor.listenUDP(0, client, interface=bind)
        except Exception as e:  # noqa: BLE001 - CannotListenError and friends
            print(f"siplink stun: cannot bind {bind}: {e}", file=sys.stderr)
            return EXIT_USAGE
        where = f"{server[0]}:{server[1]}"
        try:
            d = client.request()
            d.addTimeout(args.timeout, reactor)
            try:
                resp = await d
            except (defer.TimeoutError, StunTimeout):
                print(f"siplink stun: no answer from {where} within {args.timeout:g} s",
                      file=sys.stderr)
                return EXIT_TIMEOUT
            except StunErrorResponse as e:
                print(f"siplink stun: {where} answered with error {e.code} {e.reason}",
                      file=sys.stderr)
                return EXIT_FAILED
            except StunBadReply as e:
                print(f"siplink stun: bad reply from {where}: {e}", file=sys.stderr)
                return EXIT_FAILED
        finally:
            await port.stopListening()
        mapped = resp.address(Attr.XOR_MAPPED_ADDRESS) or resp.address(Attr.MAPPED_ADDRESS)
        assert mapped is not None
        if verbose:
            print(f"response: {resp.summary()}", file=sys.stderr)
            software = resp.get(Attr.SOFTWARE)
            if software:
                print(f"server software: {software}", file=sys.stderr)
        host = f"[{mapped[0]}]" if ":" in mapped[0] else mapped[0]
        print(f"mapped address: {host}:{mapped[1]}")
        return EXIT_OK

    return run_in_reactor(main)
