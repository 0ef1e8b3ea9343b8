"""``siplink register``: register an account's contact at its registrar (or remove it).

The account comes from the configuration (``--account NAME``, else the first); ``--user``,
``--domain``, ``--password`` and ``--registrar`` override its fields, so no file is needed
for a quick check. Digest challenges (401/407) are answered with the account's password.
Prints the granted expiry and the registrar's view of our bindings.

``--stay S`` keeps the process up S seconds (refreshing the binding as it goes), then removes
the binding; ``--unregister`` removes the binding of this contact (same ``--listen`` address
as when it was registered) at once.

Exit codes: 0 registered (or unregistered), 1 the registrar refused (403, 404...),
2 bad flag/config or no registrar, 3 no response.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "register", help="register an account at its registrar (or --unregister)",
        description="REGISTER the account's contact (digest auth answered), print the "
                    "granted expiry; exit 0 registered, 1 refused, 2 bad usage, 3 no response.")
    p.add_argument("--account", metavar="NAME", help="configuration account (default: first)")
    p.add_argument("--user", help="override the account's user")
    p.add_argument("--domain", help="override the account's domain (the realm, the AOR host)")
    p.add_argument("--password", help="override the account's password")
    p.add_argument("--registrar", metavar="URI",
                   help="override the registrar, e.g. sip:127.0.0.1:25060")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="local SIP address, so our Contact (overrides sip.listen)")
    p.add_argument("--expires", type=int, default=None, metavar="S",
                   help="expiry to ask for (default: the account's, 3600)")
    p.add_argument("--unregister", action="store_true",
                   help="remove this contact's binding (Expires: 0) instead")
    p.add_argument("--stay", type=float, default=0.0, metavar="S",
                   help="stay registered S seconds (refreshing), then unregister")
    p.add_argument("--timeout", type=float, default=32.0, metavar="S",
                   help="give up after S seconds without a final response")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="print the SIP/STUN trace to stderr (-vv whole messages, -vvv RTP); "
                        "same as siplink -v")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import defer

    from siplink.calltest.scenario import ScenarioError, _ua_account
    from siplink.cli import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, load_config
    from siplink.cli.commands.call import react, trace_factory
    from siplink.ua.config import ConfigError, override, split_hostport
    from siplink.ua.useragent import SipError, UserAgent

    config = load_config(args)
    override(config, "sip.listen", args.listen)
    if args.expires is not None and args.expires < 0 or args.stay < 0:
        print("siplink register: --expires and --stay must not be negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        acc = _ua_account(config, args.account or "")
        host, port = split_hostport(config.sip.listen)
    except (ConfigError, ScenarioError) as e:
        print(f"siplink register: {e}", file=sys.stderr)
        return EXIT_USAGE
    for field in ("user", "domain", "password", "registrar"):
        value = getattr(args, field)
        if value is not None:
            setattr(acc, field, value)
    if args.expires is not None:
        acc.expires = args.expires
    if not acc.registrar and not acc.proxy:
        print("siplink register: the account has no registrar (set accounts.registrar or "
              "--registrar)", file=sys.stderr)
        return EXIT_USAGE
    if acc.registrar and not acc.proxy:
        acc.proxy = acc.registrar   # send the REGISTER to the registrar's address
    verbose = max(args.verbose, 1 if config.logging.trace else 0)
    result = {"code": EXIT_FAILED}

    async def main(reactor: Any) -> None:
        ua = UserAgent.from_config(reactor, config.sip, user=acc.user,
                                   trace=trace_factory(verbose)())
        try:
            ua.listen()
        except Exception as e:  # noqa: BLE001 - CannotListenError and friends
            print(f"siplink register: cannot listen on {config.sip.listen}: {e}",
                  file=sys.stderr)
            result["code"] = EXIT_USAGE
            return
        reg = ua.register(acc)
        try:
            if args.unregister:
                d = defer.ensureDeferred(reg.unregister())
                d.addTimeout(args.timeout, reactor)
                resp = await d
                ok = 200 <= resp.status < 300
                print(f"unregistered {acc.aor} ({reg.contact}): {resp.status} {resp.reason}"
                      if ok else f"siplink register: unregister refused: {resp.status} "
                      f"{resp.reason}")
                result["code"] = EXIT_OK if ok else EXIT_FAILED
                return
            dreg = defer.ensureDeferred(reg.register())
            dreg.addTimeout(args.timeout, reactor)
            granted = await dreg
            print(f"registered {acc.aor} at {reg.registrar_uri} for {granted} s, "
                  f"contact {reg.contact}")
            last = reg.last_response
            if last is not None:
                for c in last.contact:
                    print(f"  binding {c}")
            result["code"] = EXIT_OK
            if args.stay > 0:
                from twisted.internet import task

                await task.deferLater(reactor, args.stay, lambda: None)
                d = defer.ensureDeferred(reg.unregister())
                d.addTimeout(args.timeout, reactor)
                resp = await d
                print(f"unregistered {acc.aor}: {resp.status} {resp.reason}")
        except SipError as e:
            if e.timed_out:
                print(f"siplink register: no response from {reg.registrar_uri}",
                      file=sys.stderr)
                result["code"] = EXIT_TIMEOUT
            else:
                print(f"siplink register: {acc.aor} refused: {e.status} {e.reason}",
                      file=sys.stderr)
                result["code"] = EXIT_FAILED
        except defer.TimeoutError:
            print(f"siplink register: no response from {reg.registrar_uri}", file=sys.stderr)
            result["code"] = EXIT_TIMEOUT
        finally:
            reg.close()
            ua.close()

    err = react(main)
    if err is not None:
        print(f"siplink register: {err}", file=sys.stderr)
        return EXIT_FAILED
    return result["code"]
