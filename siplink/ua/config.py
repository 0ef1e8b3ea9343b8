"""siplink configuration: TOML (``conf/siplink.toml`` is the documented example).

The file is read with the standard library's :mod:`tomllib` and checked against typed sections.
Every problem raises :class:`ConfigError` naming the key (``ice.ta_ms``) and the line of the
file it is on, so a user can go straight to it. Command-line flags are applied on top with
:func:`override`.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, get_args, get_origin, get_type_hints

from siplink.core.account import Account


class ConfigError(ValueError):
    """A configuration file that cannot be used; ``key`` and ``line`` say where."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.key = key
        self.line = line
        where = []
        if path:
            where.append(path + (f":{line}" if line else ""))
        elif line:
            where.append(f"line {line}")
        if key:
            where.append(f"key {key!r}")
        super().__init__((", ".join(where) + ": " if where else "") + message)


@dataclass
class TurnServerConfig:
    uri: str = ""                # "turn:HOST:PORT" (UDP), "...?transport=tcp", "turns:HOST:PORT"
    username: str = ""
    password: str = ""
    tls_ca: str = ""             # turns: trust these CA certificates (PEM; empty: system's)

    def __repr__(self) -> str:
        return f"TurnServerConfig(uri={self.uri!r}, username={self.username!r})"


@dataclass
class SipConfig:
    listen: str = "127.0.0.1:0"  # HOST:PORT for our SIP socket(s); port 0 picks a free one
    transport: str = "udp"
    user_agent: str = "siplink"
    tls_verify: bool = True
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    dns_servers: list[str] = field(default_factory=list)  # "HOST:PORT"; empty: the system's
    dns_timeout_s: float = 5.0   # a lookup (NAPTR, SRV, A/AAAA) gives up after this


@dataclass
class IceConfig:
    enabled: bool = True
    ta_ms: int = 50              # RFC 8445 pacing; 20 for RFC 5245 mode
    nomination: str = "regular"  # regular | aggressive
    lite: bool = False
    policy: str = "all"          # all | relay
    addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    interfaces: list[str] = field(default_factory=list)
    max_pairs: int = 100
    failed_timeout_s: float = 30.0   # ICE fails when not completed this long after checks start
    rtcp_mux: bool = True
    trickle: str = "half"        # off | half | full: trickle ICE over SIP INFO (RFC 8840)
    stun_servers: list[str] = field(default_factory=list)
    turn_servers: list[TurnServerConfig] = field(default_factory=list)


@dataclass
class MediaConfig:
    codecs: list[str] = field(default_factory=lambda: ["PCMU", "PCMA"])
    ptime: int = 20
    dtmf: bool = True
    tone_hz: float = 440.0
    play_wav: str = ""
    record_wav: str = ""


@dataclass
class LoggingConfig:
    level: str = "warn"          # debug | info | warn | error: library messages on stderr
    trace: bool = False          # print the SIP/STUN trace (same as -v)


@dataclass
class Config:
    sip: SipConfig = field(default_factory=SipConfig)
    accounts: list[Account] = field(default_factory=list)
    ice: IceConfig = field(default_factory=IceConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # the dotted keys the file or a flag set (the others hold their defaults)
    _explicit: set[str] = field(default_factory=set, repr=False, compare=False)

    def is_set(self, dotted: str) -> bool:
        """Whether ``dotted`` (``"sip.listen"``) was written in the file or given as a flag."""
        return dotted in self._explicit

    def follow_destination(self, host: str) -> None:
        """Defaults that fit a numeric destination ``host``: when ``sip.listen`` was not
        set, listen on the local address that routes to it (``[::1]`` for ``::1``, the
        interface's address for a non-loopback IPv6 or IPv4 host), and offer ICE candidates
        on that address too unless ``ice.addresses``/``ice.interfaces`` were set. An IPv4
        loopback destination keeps the defaults."""
        from ice.address import format_address
        from siplink.transport.route import source_address

        if self.is_set("sip.listen"):
            return
        local = source_address(host)
        if local is None or local == "127.0.0.1":
            return
        self.sip.listen = format_address(local, 0)
        if not (self.is_set("ice.addresses") or self.is_set("ice.interfaces")):
            self.ice.addresses = [local]

    def account(self, name: str | None = None) -> Account:
        """The named account, or the first one, or a default local identity."""
        if name is None:
            return self.accounts[0] if self.accounts else Account()
        for acc in self.accounts:
            if acc.name == name:
                return acc
        raise ConfigError(f"no account named {name!r}", key="accounts")


# Values a key may take, beyond its type.
_CHOICES: dict[str, tuple[str, ...]] = {
    "sip.transport": ("udp", "tcp", "tls"),
    "accounts.transport": ("", "udp", "tcp", "tls"),
    "ice.nomination": ("regular", "aggressive"),
    "ice.policy": ("all", "relay"),
    "ice.trickle": ("off", "half", "full"),
    "logging.level": ("debug", "info", "warn", "error"),
}
_CODECS = ("PCMU", "PCMA")
# Keys a user may expect that do nothing yet: refused with the reason, never ignored.
_NOT_YET: dict[str, str] = {}


class KeyLocator:
    """Finds the line a dotted key is written on, for error messages."""

    _header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?")
    _assign = re.compile(r"^\s*([A-Za-z0-9_\-\"]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line_of(self, dotted: str) -> int | None:
        parts = dotted.split(".")
        table, key = ".".join(parts[:-1]), parts[-1]
        current = ""
        for number, line in enumerate(self.lines, 1):
            header = self._header.match(line)
            if header:
                current = header.group(1).replace('"', "").replace(" ", "")
                if current == dotted:
                    return number
                continue
            assign = self._assign.match(line)
            if assign and assign.group(1).strip('"') == key and current == table:
                return number
        # Dotted keys written inline (``ice.ta_ms = 20`` at top level) or inline tables.
        for number, line in enumerate(self.lines, 1):
            if re.match(rf"^\s*{re.escape(dotted)}\s*=", line):
                return number
        return None


def _check(value: Any, hint: Any, key: str, locate: KeyLocator, path: str | None) -> Any:
    def fail(message: str) -> ConfigError:
        return ConfigError(message, path=path, key=key, line=locate.line_of(key))

    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise fail(f"must be a table, not {type(value).__name__}")
        return build_section(hint, value, key, locate, path)
    origin = get_origin(hint)
    if origin is UnionType:  # ``str | None``: TOML has no null, so check the other member
        (hint,) = [a for a in get_args(hint) if a is not NoneType]
        return _check(value, hint, key, locate, path)
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise fail(f"must be a list, not {type(value).__name__}")
        return [_check(v, item, key, locate, path) for v in value]
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"must be a number, not {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"must be an integer, not {value!r}")
        if value < 0:
            raise fail(f"must not be negative, got {value}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise fail(f"must be true or false, not {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise fail(f"must be a string, not {value!r}")
        choices = _CHOICES.get(key)
        if choices and value not in choices:
            raise fail(f"must be one of {', '.join(choices)}; got {value!r}")
        return value
    raise fail(f"unsupported type {hint!r}")  # pragma: no cover - schema error


def build_section(cls: type, table: dict[str, Any], prefix: str, locate: KeyLocator,
                  path: str | None) -> Any:
    """A dataclass ``cls`` from a TOML table, every value checked against its type hint."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    kwargs: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if key in _NOT_YET:
            raise ConfigError(_NOT_YET[key], path=path, key=key, line=locate.line_of(key))
        if name not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"unknown key (known here: {known})", path=path, key=key,
                              line=locate.line_of(key))
        kwargs[name] = _check(value, hints[name], key, locate, path)
    return cls(**kwargs)


def dns_server(text: str, *, key: str | None = "sip.dns_servers") -> tuple[str, int]:
    """A DNS server ``HOST[:PORT]`` (``[v6]:PORT``; port 53 when absent) as (host, port)."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "53"
    elif t.count(":") == 1:
        host, port = t.split(":")
    else:
        host, port = t, "53"
    import ipaddress
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"a DNS server is an IP address[:port], not {text!r}",
                          key=key) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"bad DNS server port in {text!r}", key=key)
    return host, int(port)


def _validate(config: Config, locate: KeyLocator, path: str | None) -> None:
    for dns in config.sip.dns_servers:
        try:
            dns_server(dns)
        except ConfigError as e:
            raise ConfigError(e.message, path=path, key="sip.dns_servers",
                              line=locate.line_of("sip.dns_servers")) from None
    if not 0 < config.sip.dns_timeout_s <= 60:
        raise ConfigError("must be more than 0 and at most 60 seconds", path=path,
                          key="sip.dns_timeout_s", line=locate.line_of("sip.dns_timeout_s"))
    for codec in config.media.codecs:
        if codec.upper() not in _CODECS:
            raise ConfigError(f"unknown codec {codec!r} (supported: {', '.join(_CODECS)})",
                              path=path, key="media.codecs", line=locate.line_of("media.codecs"))
    if config.media.ptime not in (10, 20, 30, 40, 60):
        raise ConfigError("ptime must be 10, 20, 30, 40 or 60 ms", path=path, key="media.ptime",
                          line=locate.line_of("media.ptime"))
    if not 5 <= config.ice.ta_ms <= 1000:  # RFC 8445 §14.2: never below 5 ms
        raise ConfigError("Ta must be between 5 and 1000 ms", path=path, key="ice.ta_ms",
                          line=locate.line_of("ice.ta_ms"))
    if config.ice.policy == "relay" and not config.ice.turn_servers:
        raise ConfigError("policy 'relay' needs at least one [[ice.turn_servers]]", path=path,
                          key="ice.policy", line=locate.line_of("ice.policy"))
    for turn in config.ice.turn_servers:
        from ice.gathering import GatheringError, parse_turn_uri

        if not turn.uri.startswith(("turn:", "turns:")):
            raise ConfigError(f"TURN server uri must start with turn: ({turn.uri!r})", path=path,
                              key="ice.turn_servers.uri",
                              line=locate.line_of("ice.turn_servers.uri"))
        try:
            server = parse_turn_uri(turn.uri)
        except GatheringError as e:
            raise ConfigError(str(e), path=path, key="ice.turn_servers.uri",
                              line=locate.line_of("ice.turn_servers.uri")) from None
        if turn.tls_ca and server.transport != "tls":
            raise ConfigError(f"tls_ca is for turns: servers only ({turn.uri!r})", path=path,
                              key="ice.turn_servers.tls_ca",
                              line=locate.line_of("ice.turn_servers.tls_ca"))
    seen: set[str] = set()
    for acc in config.accounts:
        if acc.name in seen:
            raise ConfigError(f"duplicate account name {acc.name!r}", path=path,
                              key="accounts.name", line=locate.line_of("accounts.name"))
        seen.add(acc.name)


def parse_toml(text: str, *, path: str | None = None) -> tuple[dict[str, Any], KeyLocator]:
    """TOML text as a dict, with a locator for error lines; raises :class:`ConfigError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"not valid TOML: {e}", path=path,
                          line=int(m.group(1)) if m else None) from None
    return data, KeyLocator(text)


def loads(text: str, *, path: str | None = None) -> Config:
    """Parse configuration text; raises :class:`ConfigError`."""
    data, locate = parse_toml(text, path=path)
    config: Config = build_section(Config, data, "", locate, path)
    config._explicit = {f"{name}.{key}" for name, table in data.items()
                        if isinstance(table, dict) for key in table}
    _validate(config, locate, path)
    return config


def load(path: str | Path | None) -> Config:
    """Load a configuration file; ``None`` gives the defaults (no file needed)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", path=str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", path=str(p)) from None
    return loads(text, path=str(p))


def split_hostport(text: str, *, key: str | None = None) -> tuple[str, int]:
    """A listen address ``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``; raises
    :class:`ConfigError` (a ValueError) naming ``key`` when given."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected HOST:PORT, got {text!r}", key=key)
    return host.strip("[]"), int(port)


def override(config: Config, dotted: str, value: Any) -> None:
    """Apply one command-line override, e.g. ``override(cfg, "ice.ta_ms", 20)``.

    ``None`` means the flag was not given and leaves the file's value alone.
    """
    if value is None:
        return
    section_name, _, name = dotted.partition(".")
    section = getattr(config, section_name)
    hints = get_type_hints(type(section))
    if name not in hints:
        raise ConfigError("unknown key", key=dotted)
    setattr(section, name, _check(value, hints[name], dotted, KeyLocator(""), None))
    config._explicit.add(dotted)
