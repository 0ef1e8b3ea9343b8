"""Declarative call tests: a TOML scenario file, a runner, and its reports.

A scenario names one or more calls and what must happen in each; the runner places them at a
rate and concurrency, checks every expectation, and reports per call (a summary table, JUnit
XML, and the call's trace for a ladder or pcap). ``siplink call`` is the same runner with one
call built from its flags. Example (``conf/scenarios/`` has complete ones)::

    [scenario]
    name = "ICE call to a local answerer"
    rate = 5.0               # calls started per second
    concurrency = 2          # calls up at once
    timeout_s = 15.0         # per call, from INVITE to the end

    [[answerers]]            # siplink UAs started by the run itself (loopback, any port)
    name = "bob"
    tone_hz = 440.0
    dtmf = "*9"              # digits bob sends once ICE connected

    [[calls]]
    name = "ice-host"
    to = "bob"               # an answerer's name, or a SIP URI: "sip:svc@${SIPP}"
    duration_s = 3.0         # stay up this long after the answer, then BYE
    dtmf = "123"             # digits we send once ICE connected
    steps = [{at_s = 1.0, action = "hold"}, {at_s = 2.0, action = "resume"}]
    [calls.expect]
    status = 200             # the final response
    within_ms = 2000         # ... within this long
    ice = true               # ICE must complete ...
    candidate = "host"       # ... on a pair whose remote candidate is of this type
    media_s = 2.0            # RTP must flow (both ways) at least this long
    max_loss_pct = 5.0
    dtmf = "*9"              # digits we must receive
    peer_dtmf = "123"        # digits a local answerer must receive
    ended_by = "caller"      # caller | callee (the callee's BYE)

``${NAME}`` in the file is replaced by ``--var NAME=VALUE`` (or the environment). Problems in
the file raise :class:`ScenarioError` naming the key and the line, as configuration errors do.

The checks (:func:`check_call`) are pure functions of a :class:`CallRecord`; the runner
(:func:`run_scenario`) is the only part that touches the reactor.
"""

from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ice.address import format_address
from ice.trace import Trace, TraceRecord
from siplink.ua.config import (
    Config,
    ConfigError,
    KeyLocator,
    build_section,
    parse_toml,
    split_hostport,
)

__all__ = [
    "AnswererSpec",
    "CallRecord",
    "CallSpec",
    "Expect",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Step",
    "check_call",
    "junit_xml",
    "load_scenario",
    "loads_scenario",
    "run_scenario",
    "summary_table",
]


class ScenarioError(ConfigError):
    """A scenario file that cannot be run; ``key`` and ``line`` say where."""


# ------------------------------------------------------------------------------ the format


@dataclass
class Step:
    at_s: float = 0.0            # seconds after the answer
    action: str = ""             # hold | resume | reinvite | dtmf | bye
    digits: str = ""             # for dtmf
    expect_status: int = 200     # for hold/resume/reinvite


@dataclass
class Expect:
    status: int = 200
    within_ms: int = 0           # 0: no limit beyond timeout_s
    ice: bool = False
    candidate: str = ""          # host | srflx | prflx | relay ("" any)
    ice_within_ms: int = 0
    media_s: float = 0.0
    max_loss_pct: float = 100.0
    dtmf: str = ""
    peer_dtmf: str = ""
    ended_by: str = ""           # caller | callee ("" either)


@dataclass
class CallSpec:
    name: str = "call"
    to: str = ""
    account: str = ""            # an account of the configuration (From, credentials, proxy)
    ice: bool = True
    duration_s: float = 2.0
    dtmf: str = ""
    hangup: str = "caller"       # caller | callee (wait for the callee's BYE)
    repeat: int = 1
    steps: list[Step] = field(default_factory=list)
    expect: Expect = field(default_factory=Expect)


@dataclass
class AnswererSpec:
    name: str = "answerer"
    listen: str = "127.0.0.1:0"
    ice: bool = True
    status: int = 200            # answer 200, or reject with this status
    ring_s: float = 0.0          # 180 Ringing, then wait this long
    tone_hz: float = 440.0
    dtmf: str = ""               # digits sent once ICE connected
    hangup_after_s: float = 0.0  # BYE from the callee this long after the answer (0: never)
    registrar: str = ""          # register here first (e.g. "sip:127.0.0.1:25060"), then
    domain: str = ""             # ... as sip:NAME@DOMAIN (default: the registrar's host)
    password: str = ""           # ... answering digest challenges with this password


@dataclass
class ScenarioHeader:
    name: str = "scenario"
    rate: float = 10.0
    concurrency: int = 1
    timeout_s: float = 20.0


@dataclass
class Scenario:
    scenario: ScenarioHeader = field(default_factory=ScenarioHeader)
    answerers: list[AnswererSpec] = field(default_factory=list)
    calls: list[CallSpec] = field(default_factory=list)
    path: str = ""

    @property
    def name(self) -> str:
        return self.scenario.name


_ACTIONS = ("hold", "resume", "reinvite", "dtmf", "bye")
_CANDIDATES = ("", "host", "srflx", "prflx", "relay")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DTMF = re.compile(r"^[0-9*#A-Da-d]*$")


def _comment_start(line: str) -> int:
    """Index of a TOML comment's ``#`` in ``line`` (outside strings), or len(line)."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return i
        i += 1
    return len(line)


def _substitute(text: str, variables: Mapping[str, str], path: str | None) -> str:
    """``${NAME}`` -> its value, outside comments; an unset name is an error with its line."""
    out = []
    for number, line in enumerate(text.split("\n"), 1):
        cut = _comment_start(line)

        def repl(m: re.Match[str], number: int = number) -> str:
            name = m.group(1)
            if name in variables:
                return variables[name]
            raise ScenarioError(f"variable ${{{name}}} is not set (use --var {name}=VALUE)",
                                path=path, line=number)
        out.append(_VAR.sub(repl, line[:cut]) + line[cut:])
    return "\n".join(out)


def loads_scenario(text: str, *, path: str | None = None,
                   variables: Mapping[str, str] | None = None) -> Scenario:
    """Parse and validate scenario text; raises :class:`ScenarioError`."""
    env = dict(os.environ)
    env.update(variables or {})
    text = _substitute(text, env, path)
    try:
        data, locate = parse_toml(text, path=path)
        data.pop("path", None)
        sc: Scenario = build_section(Scenario, data, "", locate, path)
    except ScenarioError:
        raise
    except ConfigError as e:
        raise ScenarioError(e.message, path=e.path, key=e.key, line=e.line) from None
    sc.path = path or ""
    _validate(sc, locate, path)
    return sc


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def _line_in_table(lines: list[str], key: str, index: int) -> int | None:
    """The line of ``key`` (``calls.expect.status``) inside the ``index``-th ``[[calls]]``
    table (its header line when the key itself is not written there)."""
    array = key.split(".")[0]
    table, _, name = key.rpartition(".")
    count = -1
    current = ""
    header_line = None
    for number, line in enumerate(lines, 1):
        h = _HEADER.match(line)
        if h:
            current = h.group(2)
            if h.group(1) == "[[" and current == array:
                count += 1
                if count > index:
                    break
                if count == index:
                    header_line = number
            if count == index and current == key:
                return number
            continue
        if count != index:
            continue
        a = _ASSIGN.match(line)
        if a and a.group(1) == name and current == table:
            return number
    return header_line


def _validate(sc: Scenario, locate: KeyLocator, path: str | None) -> None:
    def fail(key: str, message: str, index: int | None = None) -> ScenarioError:
        line = _line_in_table(locate.lines, key, index) if index is not None else None
        return ScenarioError(message, path=path, key=key, line=line or locate.line_of(key))

    if not sc.calls:
        raise fail("calls", "a scenario needs at least one [[calls]] table")
    if sc.scenario.rate <= 0:
        raise fail("scenario.rate", "must be above 0 calls per second")
    if sc.scenario.concurrency < 1:
        raise fail("scenario.concurrency", "must be at least 1")
    if sc.scenario.timeout_s <= 0:
        raise fail("scenario.timeout_s", "must be above 0")
    names = set()
    for ai, a in enumerate(sc.answerers):
        if a.name in names:
            raise fail("answerers.name", f"duplicate answerer name {a.name!r}", ai)
        names.add(a.name)
        if not 200 <= a.status <= 699:
            raise fail("answerers.status", f"must be a final status 200-699, got {a.status}", ai)
        if not _DTMF.match(a.dtmf):
            raise fail("answerers.dtmf", f"not DTMF digits: {a.dtmf!r}", ai)
    for ci, c in enumerate(sc.calls):
        if not c.to:
            raise fail("calls.to", f"call {c.name!r}: 'to' (an answerer or a SIP URI) is "
                       "required", ci)
        if c.to not in names and not c.to.lower().startswith(("sip:", "sips:")):
            raise fail("calls.to", f"call {c.name!r}: {c.to!r} is neither an answerer "
                       f"({', '.join(sorted(names)) or 'none defined'}) nor a sip: URI", ci)
        if c.hangup not in ("caller", "callee"):
            raise fail("calls.hangup", f"must be caller or callee, got {c.hangup!r}", ci)
        if c.repeat < 1:
            raise fail("calls.repeat", "must be at least 1", ci)
        if not _DTMF.match(c.dtmf):
            raise fail("calls.dtmf", f"not DTMF digits: {c.dtmf!r}", ci)
        e = c.expect
        if not 100 <= e.status <= 699:
            raise fail("calls.expect.status", f"not a SIP status: {e.status}", ci)
        if e.candidate not in _CANDIDATES:
            raise fail("calls.expect.candidate",
                       f"must be one of host, srflx, prflx, relay; got {e.candidate!r}", ci)
        if e.ended_by not in ("", "caller", "callee"):
            raise fail("calls.expect.ended_by", f"must be caller or callee, got {e.ended_by!r}", ci)
        if (e.ice or e.candidate or e.media_s or e.dtmf or e.peer_dtmf) and not c.ice:
            raise fail("calls.expect", f"call {c.name!r}: ICE/media expectations need ice = "
                       "true", ci)
        if e.media_s > c.duration_s and c.hangup == "caller":
            raise fail("calls.expect.media_s", f"call {c.name!r}: media_s ({e.media_s}) is "
                       f"longer than duration_s ({c.duration_s})", ci)
        if not 0 <= e.max_loss_pct <= 100:
            raise fail("calls.expect.max_loss_pct", "must be between 0 and 100", ci)
        for s in c.steps:
            if s.action not in _ACTIONS:
                raise fail("calls.steps", f"call {c.name!r}: unknown step action "
                           f"{s.action!r} (known: {', '.join(_ACTIONS)})", ci)
            if s.action == "dtmf" and (not s.digits or not _DTMF.match(s.digits)):
                raise fail("calls.steps", f"call {c.name!r}: a dtmf step needs digits", ci)


def load_scenario(path: str | Path, variables: Mapping[str, str] | None = None) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"cannot read: {e.strerror}", path=str(p)) from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text", path=str(p)) from None
    return loads_scenario(text, path=str(p), variables=variables)


# ------------------------------------------------------------------------------ results


@dataclass
class CallRecord:
    """What happened in one call: filled by the runner, judged by :func:`check_call`."""

    spec: CallSpec
    index: int = 0
    call_id: str = ""
    started_at: float = 0.0          # when the INVITE was sent (reactor time)
    status: int | None = None        # final response to the INVITE (408 on timeout)
    reason: str = ""
    setup_ms: float | None = None    # INVITE to the final response
    ice_state: str = ""
    ice_cause: str = ""
    ice_used: bool = True            # False: the peer answered without ICE (plain RTP)
    ice_ms: float | None = None      # INVITE to ICE connected
    local_type: str = ""
    remote_type: str = ""
    pair: str = ""
    media_window_s: float = 0.0      # how long we measured media
    rtp_received: int = 0           # in the window
    rtp_sent: int = 0
    rtp_lost: int = 0
    loss_pct: float | None = None
    ptime: float = 0.02
    dtmf_received: str = ""
    peer_dtmf_received: str | None = None   # None: the peer is not a local answerer
    steps: list[str] = field(default_factory=list)   # "hold: 200" / "hold: failed ..."
    redirects: list[str] = field(default_factory=list)   # "302 -> sip:..." per 3xx followed
    ended_by: str = ""               # caller | callee | ice | timeout | error
    end_cause: str = ""
    duration_s: float = 0.0
    error: str = ""
    failures: list[str] = field(default_factory=list)
    records: list[TraceRecord] = field(default_factory=list)   # filled at the end of the run
    media_trace: Trace | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name if self.spec.repeat == 1 else f"{self.spec.name}#{self.index + 1}"

    @property
    def ok(self) -> bool:
        return not self.failures


def check_call(r: CallRecord) -> list[str]:
    """Every expectation of ``r.spec`` that ``r`` does not meet, as readable sentences."""
    e = r.spec.expect
    out: list[str] = []
    if r.error:
        out.append(f"error: {r.error}")
    if r.status != e.status:
        got = "no final response" if r.status is None else f"{r.status} {r.reason}".strip()
        out.append(f"expected status {e.status}, got {got}")
    elif e.within_ms and (r.setup_ms is None or r.setup_ms > e.within_ms):
        out.append(f"expected status {e.status} within {e.within_ms} ms, took "
                   f"{r.setup_ms:.0f} ms" if r.setup_ms is not None else "no setup time")
    answered = r.status is not None and 200 <= r.status < 300
    if not answered:
        return out
    if (e.ice or e.candidate) and not r.ice_used:
        out.append("ICE not used: the peer answered without ICE (media is plain RTP)")
    elif r.ice_used and (e.ice or e.candidate or r.spec.ice):
        if r.ice_state != "connected" and r.ice_ms is None:
            out.append(f"ICE did not complete ({r.ice_cause or r.ice_state or 'no ICE'})")
        else:
            if e.ice_within_ms and (r.ice_ms is None or r.ice_ms > e.ice_within_ms):
                out.append(f"ICE completed in {r.ice_ms:.0f} ms, expected within "
                           f"{e.ice_within_ms} ms")
            if e.candidate and r.remote_type != e.candidate:
                out.append(f"selected pair is {r.local_type} -> {r.remote_type} "
                           f"({r.pair}), expected a {e.candidate} candidate")
    if e.media_s:
        expected = e.media_s / r.ptime
        floor = expected * (1 - e.max_loss_pct / 100) * 0.9
        if r.media_window_s + 0.05 < e.media_s:
            out.append(f"media flowed {r.media_window_s:.1f} s, expected {e.media_s:g} s")
        elif r.rtp_received < floor:
            out.append(f"RTP received {r.rtp_received} packets in {r.media_window_s:.1f} s, "
                       f"expected at least {floor:.0f}")
        if r.rtp_sent == 0:
            out.append("no RTP sent")
    if e.media_s or e.max_loss_pct < 100:
        if r.loss_pct is None:
            out.append("no RTP received, loss unknown")
        elif r.loss_pct > e.max_loss_pct:
            out.append(f"RTP loss {r.loss_pct:.1f}% above {e.max_loss_pct:g}%")
    if e.dtmf and r.dtmf_received != e.dtmf:
        out.append(f"DTMF received {r.dtmf_received!r}, expected {e.dtmf!r}")
    if e.peer_dtmf:
        if r.peer_dtmf_received is None:
            out.append("peer_dtmf needs a local answerer as the callee")
        elif r.peer_dtmf_received != e.peer_dtmf:
            out.append(f"peer received DTMF {r.peer_dtmf_received!r}, expected "
                       f"{e.peer_dtmf!r}")
    for s in r.steps:
        if "failed" in s:
            out.append(f"step {s}")
    if e.ended_by and r.ended_by != e.ended_by:
        out.append(f"expected the {e.ended_by} to end the call, ended by {r.ended_by or '?'}"
                   f" ({r.end_cause})")
    return out


@dataclass
class RunResult:
    scenario: Scenario
    records: list[CallRecord] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> list[CallRecord]:
        return [r for r in self.records if not r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.records) and not self.failed


# ------------------------------------------------------------------------------ reports


def summary_table(result: RunResult) -> str:
    """A fixed-width table, one row per call, then the totals and every failure."""
    head = ("call", "status", "setup ms", "ICE ms", "pair", "rtp rx", "loss %", "dtmf", "end",
            "result")
    rows = []
    for r in result.records:
        rows.append((
            r.name,
            "-" if r.status is None else str(r.status),
            "-" if r.setup_ms is None else f"{r.setup_ms:.0f}",
            "-" if r.ice_ms is None else f"{r.ice_ms:.0f}",
            f"{r.local_type}->{r.remote_type}" if r.remote_type else "-",
            str(r.rtp_received) if r.rtp_received or r.loss_pct is not None else "-",
            "-" if r.loss_pct is None else f"{r.loss_pct:.1f}",
            r.dtmf_received or "-",
            r.ended_by or "-",
            "ok" if r.ok else "FAIL",
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    n, bad = len(result.records), len(result.failed)
    out.append(f"{n} calls, {n - bad} passed, {bad} failed in {result.elapsed_s:.1f} s "
               f"({result.scenario.name})")
    for r in result.failed:
        for f in r.failures:
            out.append(f"FAIL {r.name}: {f}")
    return "\n".join(out) + "\n"


def junit_xml(result: RunResult) -> bytes:
    """JUnit XML: one <testsuite> for the scenario, one <testcase> per call; a failed call
    has a <failure> whose message is its first failure and whose text lists them all."""
    failures = len(result.failed)
    errors = sum(1 for r in result.records if r.error and not r.status)
    suite = ET.Element("testsuite", {
        "name": result.scenario.name, "tests": str(len(result.records)),
        "failures": str(failures - errors), "errors": str(errors), "skipped": "0",
        "time": f"{result.elapsed_s:.3f}",
    })
    for r in result.records:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"siplink.calltest.scenario.{_slug(result.scenario.name)}",
            "name": r.name, "time": f"{r.duration_s:.3f}"})
        if r.failures:
            tag = "error" if (r.error and not r.status) else "failure"
            el = ET.SubElement(case, tag, {"message": r.failures[0],
                                           "type": "CallExpectation"})
            el.text = "\n".join(r.failures)
        props = (f"call-id={r.call_id}\nstatus={r.status}\nsetup_ms={r.setup_ms}\n"
                 f"ice={r.ice_state} {r.pair}\nrtp_received={r.rtp_received} "
                 f"loss_pct={r.loss_pct}\ndtmf={r.dtmf_received}\nended_by={r.ended_by} "
                 f"({r.end_cause})\nsteps={'; '.join(r.steps)}\n")
        ET.SubElement(case, "system-out").text = props
    suites = ET.Element("testsuites", {"name": "siplink", "tests": suite.get("tests", "0"),
                                       "failures": suite.get("failures", "0"),
                                       "errors": suite.get("errors", "0")})
    suites.append(suite)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "scenario"


class Progress:
    """A one-line progress bar on a TTY (nothing otherwise)."""

    def __init__(self, total: int, out: IO[str] | None, enabled: bool) -> None:
        self.total = total
        self.out = out
        self.enabled = enabled and out is not None and total > 1
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()

    def update(self, record: CallRecord) -> None:
        self.done += 1
        self.failed += 0 if record.ok else 1
        if not self.enabled or self.out is None:
            return
        width = 30
        fill = int(width * self.done / self.total)
        el = time.monotonic() - self.started
        self.out.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                       f"failed {self.failed} {el:.0f}s")
        if self.done == self.total:
            self.out.write("\n")
        self.out.flush()


# ------------------------------------------------------------------------------ the runner


def _ua_account(config: Config, name: str) -> Any:
    """A fresh user-agent Account for the configuration's account ``name`` (or the first);
    a copy, so a command may change its fields."""
    import dataclasses

    from siplink.ua.useragent import Account

    acc: Any = config.account(name or None)
    if isinstance(acc, Account):     # one Account type for config and UA
        return dataclasses.replace(acc)
    proxy = getattr(acc, "proxy", None) or getattr(acc, "outbound_proxy", None)
    return Account(user=acc.user, domain=acc.domain, password=acc.password or None,
                   auth_user=acc.auth_user or None, display_name=acc.display_name or None,
                   proxy=proxy or None, registrar=acc.registrar or None,
                   expires=acc.expires)


class _Answerer:
    """A local auto-answering UA of the scenario, with what it saw per Call-ID."""

    def __init__(self, reactor: Any, spec: AnswererSpec, config: Config,
                 trace_factory: Callable[[], Trace]) -> None:
        from siplink.media.icesession import IceMediaSession, media_options
        from siplink.ua.useragent import StaticMedia, UserAgent

        self.spec = spec
        self.reactor = reactor
        host, port = split_hostport(spec.listen)
        self.ua = UserAgent(reactor, host=host, port=port, user=spec.name,
                            trace=trace_factory())
        self.ua.listen()
        opts = media_options(config)
        opts["tone"] = spec.tone_hz
        opts["rtcp_interval"] = 1.0
        if spec.ice:
            self.ua.media_factory = lambda: IceMediaSession(reactor, trace=trace_factory(), **opts)
        else:
            self.ua.media_factory = lambda: StaticMedia(host)
        self.sessions: dict[str, Any] = {}
        self.ua.on_incoming_call = self._on_call

    @property
    def uri(self) -> str:
        loc = self.ua.local("udp")
        return f"sip:{self.spec.name}@{format_address(loc.host, loc.port)}"

    def _on_call(self, call: Any) -> None:
        from siplink.media.icesession import IceMediaSession

        self.sessions[call.call_id] = call.media
        s = self.spec
        if s.status != 200:
            if s.ring_s > 0:
                call.ring()
                self.reactor.callLater(s.ring_s, call.reject, s.status)
            else:
                call.reject(s.status)
            return
        if s.ring_s > 0:
            call.ring()
            self.reactor.callLater(s.ring_s, call.answer)
        else:
            call.answer()
        media = call.media

        def answered(_: Any) -> None:
            if isinstance(media, IceMediaSession) and s.dtmf:
                media.wait_connected().addCallbacks(
                    lambda _s: self.reactor.callLater(0.3, _send_dtmf, media, s.dtmf),
                    lambda f: None)
            if s.hangup_after_s > 0:
                self.reactor.callLater(s.hangup_after_s, call.hangup)
        call.answered.addCallbacks(answered, lambda f: None)

    async def register(self) -> None:
        """REGISTER sip:NAME@DOMAIN at the answerer's registrar (when it has one)."""
        from siplink.core.user_agent import as_uri
        from siplink.ua.useragent import Account

        s = self.spec
        if not s.registrar:
            return
        reg = s.registrar if s.registrar.lower().startswith("sip") else f"sip:{s.registrar}"
        domain = s.domain or as_uri(reg).host
        acc = Account(s.name, domain, password=s.password or None, proxy=reg, registrar=reg)
        try:
            await self.ua.register(acc).register()
        except Exception as e:
            raise ScenarioError(f"answerer {s.name!r} could not register at {reg}: {e}",
                                key="answerers.registrar") from e

    def dtmf_received(self, call_id: str) -> str:
        media = self.sessions.get(call_id)
        stream = getattr(media, "stream", None)
        return stream.stats().dtmf_received if stream is not None else ""


def _send_dtmf(media: Any, digits: str) -> None:
    try:
        media.send_dtmf(digits)
    except Exception:  # noqa: BLE001 - reported through the digits the peer did not get
        pass


async def _sleep(reactor: Any, seconds: float) -> None:
    from twisted.internet import task

    if seconds > 0:
        await task.deferLater(reactor, seconds, lambda: None)


def _wait(reactor: Any, d: Any, seconds: float) -> Any:
    """A new Deferred with ``d``'s result, or failing with defer.TimeoutError after
    ``seconds``; unlike addTimeout it never cancels ``d`` (a call's own ``answered`` and
    ``ended`` must still fire for the user agent)."""
    from twisted.internet import defer
    from twisted.python.failure import Failure

    out: defer.Deferred[Any] = defer.Deferred()

    def expire() -> None:
        if not out.called:
            out.errback(defer.TimeoutError(f"no result in {seconds:g} s"))

    timer = reactor.callLater(max(seconds, 0.001), expire)

    def done(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)
        return None if isinstance(result, Failure) else result

    d.addBoth(done)
    return out


async def _bounded(reactor: Any, d: Any, seconds: float) -> Any:
    """Await ``d`` for at most ``seconds``; raises defer.TimeoutError (``d`` is cancelled)."""
    d.addTimeout(max(seconds, 0.001), reactor)
    return await d


async def _run_call(reactor: Any, ua: Any, spec: CallSpec, index: int, uri: str,
                    answerers: list[_Answerer], config: Config, timeout: float,
                    trace_factory: Callable[[], Trace]) -> CallRecord:
    from twisted.internet import defer

    from siplink.media.icesession import IceMediaSession, IceSessionError, media_options
    from siplink.ua.useragent import CallState, EndCause, SipError, StaticMedia

    rec = CallRecord(spec, index)
    loc = ua.local("udp")
    opts = media_options(config)
    rec.ptime = opts["ptime"]
    media: Any
    if spec.ice:
        # [media] play_wav / record_wav: the caller's side (with repeats, the last call's
        # recording stays)
        play = config.media.play_wav or None
        media = IceMediaSession(reactor, trace=trace_factory(),
                                tone=None if play else config.media.tone_hz, wav=play,
                                record_wav=config.media.record_wav or None,
                                rtcp_interval=1.0, **opts)
    else:
        media = StaticMedia(loc.host)
    # a named account, else the configuration's first -- but not toward the run's own
    # answerers, which its outbound proxy would not reach
    local = any(uri == a.uri for a in answerers)
    account = _ua_account(config, spec.account) if (
        spec.account or (config.accounts and not local)) else None
    t0 = rec.started_at = reactor.seconds()
    deadline = t0 + timeout
    call = ua.call(uri, account=account, media=media)
    ended_by: dict[str, str] = {}

    def on_event(ev: Any) -> None:
        if ev.state is CallState.ENDED and "by" not in ended_by:
            cause = ev.cause or ""
            ended_by["by"] = ("caller" if cause == "local-bye" else
                              "callee" if cause == "remote-bye" else
                              "ice" if cause.startswith("ice") else
                              "timeout" if cause == "timeout" else cause)
    call.subscribe(on_event)
    try:
        try:
            await _wait(reactor, call.answered, deadline - reactor.seconds())
            rec.status = call.status or 200
        except SipError as e:
            if e.timed_out:        # timer B: no final response, like our own deadline
                rec.error = e.reason
            else:
                rec.status, rec.reason = e.status, e.reason
                if e.status is not None and 200 <= e.status < 300:
                    rec.error = e.reason     # answered, yet the call failed (bad Contact)
        except defer.TimeoutError:
            rec.error = f"no final response in {timeout:g} s"
            # §9.1: give up on the INVITE: CANCEL it (once a provisional came; before that
            # the CANCEL goes out when one does, or timer B ends it)
            call.hangup()
        rec.redirects = [f"{status} -> {uri}" for status, uri in call.redirects]
        rec.setup_ms = ((reactor.seconds() - t0) * 1000) if rec.status is not None else None
        rec.call_id = call.call_id
        if rec.status is not None and 200 <= rec.status < 300 and not rec.error:
            answered_at = reactor.seconds()
            start = answered_at
            if isinstance(media, IceMediaSession):
                try:
                    await _bounded(reactor, media.wait_connected(),
                                   min(deadline - reactor.seconds(),
                                       spec.expect.ice_within_ms / 1000 + 5
                                       if spec.expect.ice_within_ms else 1e9))
                    rec.ice_ms = (media.connected_at - t0) * 1000 \
                        if media.connected_at is not None else None
                    start = reactor.seconds()
                    if spec.dtmf:
                        reactor.callLater(0.3, _send_dtmf, media, spec.dtmf)
                except (IceSessionError, defer.TimeoutError) as e:
                    rec.ice_cause = str(e) or "timeout"
            base = media.stream.stats() if getattr(media, "stream", None) else None
            await _run_steps(reactor, call, media, spec, answered_at, rec)
            if spec.hangup == "caller":    # up for duration_s, unless it ends before
                try:
                    await _wait(reactor, call.ended,
                                answered_at + spec.duration_s - reactor.seconds())
                except defer.TimeoutError:
                    pass
            else:
                try:
                    await _wait(reactor, call.ended, deadline - reactor.seconds())
                except defer.TimeoutError:
                    rec.error = f"the callee did not hang up in {timeout:g} s"
            _media_figures(rec, media, base, start, reactor.seconds())
            for a in answerers:    # by Call-ID: also when the call went through a proxy
                if call.call_id in a.sessions:
                    rec.peer_dtmf_received = a.dtmf_received(call.call_id)
            if call.state is not CallState.ENDED:
                call.hangup()
        rec.ice_state = getattr(media, "state", "")
        rec.ice_used = getattr(media, "ice_used", True)
        if not rec.ice_used:
            rec.ice_state, rec.ice_ms = "not used", None
        elif getattr(media, "connected_at", None) is not None:
            rec.ice_state = "connected"
        if isinstance(media, IceMediaSession) and rec.ice_used:
            rec.ice_cause = rec.ice_cause or (media.cause or "")
            p = media.selected_pairs.get(1)
            if p is not None:
                rec.local_type, rec.remote_type, rec.pair = p.local_type, p.remote_type, str(p)
            if rec.ice_ms is None and media.connected_at is not None:
                rec.ice_ms = (media.connected_at - t0) * 1000
    except Exception as e:  # noqa: BLE001 - one broken call must not stop the run
        rec.error = f"{type(e).__name__}: {e}"
        call.hangup()
    try:
        await _wait(reactor, call.ended, 5.0 if rec.status is not None else 0.5)
    except Exception:  # noqa: BLE001
        call.end(EndCause.ERROR)
    rec.ended_by = ended_by.get("by", "")
    if getattr(media, "state", "") == "failed":
        rec.ended_by = "ice"        # the session ended the call (ICE failure, consent lost)
    rec.end_cause = call.cause or ""
    rec.duration_s = reactor.seconds() - t0
    rec.call_id = call.call_id
    rec.media_trace = getattr(media, "trace", None)
    rec.failures = check_call(rec)
    return rec


async def _run_steps(reactor: Any, call: Any, media: Any, spec: CallSpec, answered_at: float,
                     rec: CallRecord) -> None:
    from siplink.ua.useragent import CallState, SipError

    held: tuple[float, int] | None = None     # (when, RTP received then) once on hold

    def received() -> int:
        stream = getattr(media, "stream", None)
        return int(stream.stats().packets_received) if stream is not None else 0

    def check_held() -> None:
        # RFC 3264 §8.4: a peer put on hold (we offered sendonly) stops sending; allow what
        # was in flight (0.2 s worth) before the answer arrived
        if held is None:
            return
        took = reactor.seconds() - held[0]
        got = received() - held[1]
        if got > 0.2 / rec.ptime + 3:
            rec.steps.append(f"hold: failed (peer kept sending: {got} RTP packets in "
                             f"{took:.1f} s on hold)")

    for step in sorted(spec.steps, key=lambda s: s.at_s):
        await _sleep(reactor, answered_at + step.at_s - reactor.seconds())
        if step.action in ("resume", "bye"):
            check_held()
            held = None
        if call.state is CallState.ENDED:
            rec.steps.append(f"{step.action}: failed (call already ended: {call.cause})")
            return
        try:
            if step.action == "dtmf":
                media.send_dtmf(step.digits)
                rec.steps.append(f"dtmf {step.digits}: sent")
                continue
            if step.action == "bye":
                await call.hangup()
                rec.steps.append("bye: sent")
                return
            if step.action == "hold":
                d = call.hold()
            elif step.action == "resume":
                d = call.resume()
            else:
                d = call.reinvite()
            resp = await d
            status = getattr(resp, "status", 200)
            ok = status == step.expect_status
            if ok and step.action == "hold":
                held = (reactor.seconds(), received())
            rec.steps.append(f"{step.action}: {status}" + ("" if ok else
                             f" failed (expected {step.expect_status})"))
        except SipError as e:
            ok = e.status == step.expect_status
            rec.steps.append(f"{step.action}: {e.status}" + ("" if ok else
                             f" failed (expected {step.expect_status})"))
        except Exception as e:  # noqa: BLE001
            rec.steps.append(f"{step.action}: failed ({type(e).__name__}: {e})")
    check_held()   # still on hold at the end of the steps: measured up to now


def _media_figures(rec: CallRecord, media: Any, base: Any, start: float, end: float) -> None:
    stream = getattr(media, "stream", None)
    if stream is None:
        return
    st = stream.stats()
    rx0 = base.packets_received if base is not None else 0
    lost0 = base.packets_lost if base is not None else 0
    rec.media_window_s = max(0.0, end - start)
    rec.rtp_received = st.packets_received - rx0
    rec.rtp_sent = st.packets_sent
    rec.rtp_lost = max(0, st.packets_lost - lost0)
    total = rec.rtp_received + rec.rtp_lost
    rec.loss_pct = (100.0 * rec.rtp_lost / total) if total else None
    rec.dtmf_received = st.dtmf_received


async def run_scenario(reactor: Any, sc: Scenario, config: Config, *,
                       rate: float | None = None, concurrency: int | None = None,
                       trace_factory: Callable[[], Trace] = Trace,
                       on_record: Callable[[CallRecord], None] | None = None,
                       register: bool = False) -> RunResult:
    """Run every call of ``sc`` on ``reactor``: started ``rate`` per second, at most
    ``concurrency`` at once (the scenario's values unless given); returns the records."""
    from twisted.internet import defer

    from siplink.ua.useragent import UserAgent

    rate = rate or sc.scenario.rate
    concurrency = concurrency or sc.scenario.concurrency
    t_start = reactor.seconds()
    answerers: dict[str, _Answerer] = {}
    ua = UserAgent.from_config(reactor, config.sip, user="siplink", trace=trace_factory())
    result = RunResult(sc)
    try:
        for aspec in sc.answerers:
            answerers[aspec.name] = _Answerer(reactor, aspec, config, trace_factory)
        ua.listen()
        for a in answerers.values():
            await a.register()
        if register:
            for acc_cfg in config.accounts:
                if acc_cfg.registrar:
                    acc = _ua_account(config, acc_cfg.name)
                    await ua.register(acc).register()
        sem = defer.DeferredSemaphore(concurrency)
        jobs = []
        n = 0
        for spec in sc.calls:
            for i in range(spec.repeat):
                answerer = answerers.get(spec.to)
                uri = answerer.uri if answerer is not None else spec.to
                when = t_start + n / rate
                n += 1

                async def job(spec: CallSpec = spec, i: int = i, uri: str = uri,
                              when: float = when) -> CallRecord:
                    await _sleep(reactor, when - reactor.seconds())
                    rec = await _run_call(reactor, ua, spec, i, uri, list(answerers.values()),
                                          config,
                                          sc.scenario.timeout_s, trace_factory)
                    if on_record is not None:
                        on_record(rec)
                    return rec

                jobs.append(sem.run(job))
        results = await defer.gatherResults(jobs, consumeErrors=True)
        result.records = list(results)
    finally:
        await _sleep(reactor, 0.2)
        try:
            await _bounded(reactor, defer.ensureDeferred(ua.shutdown()), 5.0)
        except Exception:  # noqa: BLE001
            ua.close()
        for a in answerers.values():
            try:
                await _bounded(reactor, defer.ensureDeferred(a.ua.shutdown()), 5.0)
            except Exception:  # noqa: BLE001
                a.ua.close()
    result.elapsed_s = reactor.seconds() - t_start
    from siplink.calltest.ladder import call_records

    for rec in result.records:   # now, so that responses to the final BYE are in
        rec.records = call_records(ua.layer.trace or [], rec.call_id, rec.media_trace or [])
    return result
