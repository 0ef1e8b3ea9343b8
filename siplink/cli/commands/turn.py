"""``siplink turn HOST[:PORT] --user U --password P [--peer ADDR:PORT]``: allocate a TURN
relay, print it, refresh it, optionally send a test datagram through it, release it.  The
server is reached over UDP, TCP or TLS (``--transport``, or a ``turn:``/``turns:`` URI)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ice.address import Address, format_address
from siplink.cli.commands.stun import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    UsageError,
    parse_hostport,
    run_in_reactor,
)

TEST_PAYLOAD = b"siplink turn test"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "turn", help="allocate a TURN relay, print it, refresh and release it",
        description="Allocate a relayed address on a TURN server (RFC 8656, long-term "
                    "credentials; to the server over UDP, TCP or TLS), print it, refresh it "
                    "and release it. With --peer, also send a test datagram through the "
                    "relay and report any reply.",
    )
    p.add_argument("server", metavar="HOST[:PORT]", nargs="?", default=None,
                   help="TURN server (port 3478, 5349 for TLS), or a TURN URI "
                        "(turn:HOST:PORT?transport=tcp, turns:HOST:PORT); default: the first "
                        "[[ice.turn_servers]] of the configuration, with its credentials")
    p.add_argument("--transport", choices=("udp", "tcp", "tls"), default=None,
                   help="how to reach the server (default udp, or what the URI says); the "
                        "relay to the peer is UDP in every case")
    p.add_argument("--tls-ca", default=None, metavar="FILE",
                   help="with TLS: trust the CA certificates of this PEM file (default: the "
                        "system's, or the server's tls_ca in the configuration)")
    p.add_argument("--user", "-u", default=None, help="long-term credential user name")
    p.add_argument("--password", "-w", default=None, help="long-term credential password")
    p.add_argument("--peer", metavar="ADDR:PORT", default=None,
                   help="send a test datagram to this peer through the relay")
    p.add_argument("--channel", action="store_true",
                   help="with --peer: bind a channel and send ChannelData "
                        "(default: permission + Send indication)")
    p.add_argument("--expect-reply", action="store_true",
                   help="with --peer: fail unless the peer answers through the relay")
    p.add_argument("--wait", type=float, default=1.0, metavar="SECONDS",
                   help="with --peer: how long to wait for the peer's reply (default 1)")
    p.add_argument("--family", choices=("4", "6"), default=None,
                   help="ask for an IPv4 or IPv6 relayed address (REQUESTED-ADDRESS-FAMILY)")
    p.add_argument("--lifetime", type=int, default=None, metavar="SECONDS",
                   help="requested allocation lifetime")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="give up on each step after this long without an answer (default 5)")
    p.add_argument("--bind", default=None, metavar="ADDR",
                   help="local address to send from (default: any)")
    p.set_defaults(func=run)


def _fmt(addr: Address | None) -> str:
    if addr is None:
        return "(none)"
    return format_address(addr[0], addr[1])


def run(args: argparse.Namespace) -> int:
    text, user, password = args.server, args.user, args.password
    tls_ca = args.tls_ca
    if text is None or user is None or password is None:
        from siplink.cli import load_config

        turns = load_config(args).ice.turn_servers
        if turns:
            if text is None:
                text = turns[0].uri
                user = user if user is not None else turns[0].username or None
                password = password if password is not None else turns[0].password or None
                tls_ca = tls_ca if tls_ca is not None else turns[0].tls_ca
    if text is None:
        print("siplink turn: no server given and no [[ice.turn_servers]] in the configuration",
              file=sys.stderr)
        return EXIT_USAGE
    if user is None or password is None:
        print("siplink turn: --user and --password are required (or username/password in "
              "the configuration's [[ice.turn_servers]])", file=sys.stderr)
        return EXIT_USAGE
    try:
        transport, server = _server(text, args.transport)
        peer = parse_hostport(args.peer, 0) if args.peer else None
    except UsageError as e:
        print(f"siplink turn: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.tls_ca is not None and transport != "tls":
        print(f"siplink turn: --tls-ca is for TLS (turns: or --transport tls), not "
              f"{transport}", file=sys.stderr)
        return EXIT_USAGE
    if peer is not None and peer[1] == 0:
        print("siplink turn: --peer needs ADDR:PORT", file=sys.stderr)
        return EXIT_USAGE
    verbose = getattr(args, "verbose", 0)

    async def main(reactor: Any) -> int:
        from twisted.internet import defer

        from ice.drivers.turn import TurnClientProtocol, TurnError
        from ice.drivers.turn_stream import TurnStreamClient
        from ice.trace import Trace
        from ice.turn import Allocation

        trace = Trace() if verbose else None
        allocation = Allocation(server, user, password, lifetime=args.lifetime,
                                family=int(args.family) if args.family else None, trace=trace,
                                transport=transport)
        where = _fmt(server)
        stream: TurnStreamClient | None = None
        port: Any = None
        if allocation.reliable:
            stream = TurnStreamClient(allocation, reactor, bind=args.bind, tls_ca=tls_ca or "",
                                      connect_timeout=args.timeout)
            proto: TurnClientProtocol = stream
            try:
                local = await stream.connect()
            except TurnError as e:
                print(f"siplink turn: {e.reason}", file=sys.stderr)
                return EXIT_TIMEOUT if "timeout" in e.reason.lower() else EXIT_FAILED
            print(f"connected over {transport.upper()} from {_fmt(local)} to {where}")
        else:
            proto = TurnClientProtocol(allocation, reactor)
            bind = args.bind or ("::" if ":" in server[0] else "0.0.0.0")
            try:
                port = reactor.listenUDP(0, proto, interface=bind)
            except Exception as e:  # noqa: BLE001 - CannotListenError and friends
                print(f"siplink turn: cannot bind {bind}: {e}", file=sys.stderr)
                return EXIT_USAGE
            host = port.getHost()
            allocation.local = (host.host, host.port)     # named in the trace records

        async def step(d: defer.Deferred[Any], what: str) -> Any:
            d.addTimeout(args.timeout, reactor)
            return await d

        code = EXIT_OK
        allocated = False
        try:
            ok = await step(proto.allocate(), "allocate")
            allocated = True
            print(f"relayed address: {_fmt(ok.relayed)}")
            print(f"mapped address: {_fmt(ok.mapped)}")
            print(f"lifetime: {ok.lifetime} s")
            refreshed = await step(proto.refresh(), "refresh")
            print(f"refreshed: lifetime {refreshed.lifetime} s")
            if peer is not None:
                if args.channel:
                    bound = await step(proto.bind_channel(peer), "channel-bind")
                    print(f"channel 0x{bound.channel:04x} bound to {_fmt(peer)}")
                else:
                    await step(proto.create_permission(peer), "create-permission")
                    print(f"permission created for {peer[0]}")
                reply = proto.receive_from(peer)
                proto.send_to(peer, TEST_PAYLOAD)
                how = "ChannelData" if args.channel else "Send indication"
                print(f"sent {len(TEST_PAYLOAD)} bytes to {_fmt(peer)} ({how})")
                reply.addTimeout(args.wait, reactor)
                try:
                    event = await reply
                    print(f"reply from {_fmt(event.peer)}: {len(event.data)} bytes "
                          f"{event.data[:64]!r}")
                except defer.TimeoutError:
                    print(f"no reply from {_fmt(peer)} within {args.wait:g} s")
                    if args.expect_reply:
                        code = EXIT_FAILED
        except defer.TimeoutError:
            print(f"siplink turn: no answer from {where} within {args.timeout:g} s",
                  file=sys.stderr)
            code = EXIT_TIMEOUT
        except TurnError as e:
            if e.code is None and stream is not None and stream.stream.lost is not None:
                print(f"siplink turn: {e.during}: {e.reason}", file=sys.stderr)
                code = EXIT_FAILED
            elif e.code is None:
                print(f"siplink turn: {e.during}: no answer from {where}", file=sys.stderr)
                code = EXIT_TIMEOUT
            elif e.code == 0:
                print(f"siplink turn: {e.during}: {e.reason}", file=sys.stderr)
                code = EXIT_FAILED
            else:
                print(f"siplink turn: {e.during} failed: {e.code} {e.reason}", file=sys.stderr)
                code = EXIT_FAILED
        try:
            if allocated:
                released = proto.release()
                released.addTimeout(args.timeout, reactor)
                try:
                    await released
                    print("released")
                except defer.TimeoutError:
                    print(f"siplink turn: release: no answer from {where}", file=sys.stderr)
                    code = code or EXIT_TIMEOUT
        finally:
            if stream is not None:
                await stream.close()
            else:
                await port.stopListening()
            if trace is not None:
                for rec in trace:
                    print(f"{rec.time:.3f} {rec.direction:5} {rec.summary}", file=sys.stderr)
        return code

    return run_in_reactor(main)


def _server(text: str, transport: str | None) -> tuple[str, tuple[str, int]]:
    """(transport, server address) from HOST[:PORT] or a TURN URI and ``--transport``.  Over
    UDP the host is resolved here; over TCP/TLS it is kept as written (TLS checks the
    certificate against it; the connection resolves it)."""
    from ice.gathering import GatheringError, parse_server_uri, parse_turn_uri

    try:
        if text.lower().startswith(("turn:", "turns:")):
            uri = parse_turn_uri(text)
            if transport is not None and transport != uri.transport:
                raise UsageError(f"--transport {transport} contradicts {text!r} "
                                 f"({uri.transport})")
            transport, host, port = uri.transport, uri.host, uri.port
        else:
            transport = transport or "udp"
            # bare HOST[:PORT]: the default port of turns: (5349) for TLS, else 3478
            _scheme, host, port = parse_server_uri(
                ("turns:" if transport == "tls" else "turn:") + text)
    except GatheringError as e:
        raise UsageError(str(e)) from None
    if transport == "udp":
        return transport, parse_hostport(format_address(host, port))
    return transport, (host, port)
