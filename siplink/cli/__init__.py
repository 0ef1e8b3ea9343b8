"""The ``siplink`` command line.

Each subcommand lives in its own module under :mod:`siplink.cli.commands` and exposes
``register(subparsers) -> None``; the module registers an ``argparse`` sub-parser whose
``func`` default takes the parsed namespace and returns the process exit code.  Command
modules must be cheap to import: heavy imports (Twisted reactor, codecs) belong inside
the function that runs the command.

Exit codes shared by every command: 0 success, 1 the operation failed (a peer answered
with an error, a check did not pass), 2 bad usage or configuration, 3 timeout / no answer.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from siplink import __version__

if TYPE_CHECKING:
    from siplink.ua.config import Config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def build_parser() -> argparse.ArgumentParser:
    import siplink.cli.commands

    parser = argparse.ArgumentParser(
        prog="siplink",
        description="SIP user agent with ICE-negotiated media: calls, tests and diagnostics.",
    )
    parser.add_argument("--version", action="version", version=f"siplink {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="print a SIP/STUN trace to stderr (repeat for more detail)",
    )
    parser.add_argument(
        "-c", "--config", metavar="FILE", default=None,
        help="TOML configuration file (see conf/siplink.toml); flags override it",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(siplink.cli.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"siplink.cli.commands.{info.name}")
        module.register(sub)
    for name in DNS_COMMANDS:       # every command that sends SIP to a name
        if name in sub.choices:
            sub.choices[name].add_argument(
                "--dns", action="append", metavar="IP[:PORT]",
                help="DNS server for RFC 3263 lookups (NAPTR, SRV, A/AAAA), repeatable; "
                     "overrides [sip] dns_servers (default: the system's)")
    return parser


# the commands that send SIP, and so locate servers by DNS (RFC 3263)
DNS_COMMANDS = ("answer", "call", "options", "register", "resolve", "test")


def load_config(args: argparse.Namespace) -> Config:
    """The configuration named by ``--config`` (defaults when none); raises ConfigError."""
    from siplink.ua.config import load

    config = load(getattr(args, "config", None))
    if getattr(args, "dns", None):
        from siplink.ua.config import dns_server

        for server in args.dns:
            dns_server(server, key="--dns")       # ConfigError names the flag
        config.sip.dns_servers = list(args.dns)
        config._explicit.add("sip.dns_servers")
    start_logging(config.logging.level)
    return config


def dns_options(config: Config) -> dict[str, Any]:
    """UserAgent keyword arguments for DNS (RFC 3263) from ``[sip]`` (and ``--dns``)."""
    from siplink.ua.config import dns_server

    servers = [dns_server(x) for x in config.sip.dns_servers]
    return {"dns_servers": servers or None, "dns_timeout": config.sip.dns_timeout_s}


_logging_started = False


def start_logging(level: str) -> None:
    """Library log messages (twisted.logger) at ``level`` and above go to stderr, once."""
    global _logging_started
    if _logging_started:
        return
    _logging_started = True
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    # zope interfaces are invisible to mypy: the observers are declared Any
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    stderr: Any = textFileLogObserver(sys.stderr)
    observer: Any = FilteringLogObserver(stderr, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False,
                                     discardBuffer=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from siplink.ua.config import ConfigError

    try:
        code: int = args.func(args)
    except ConfigError as e:
        print(f"siplink: configuration error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
