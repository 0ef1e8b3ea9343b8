"""SIP + ICE calls between two siplink agents across the kernel NATs of the NAT lab (issue 9).

Shared by ``tests/test_natlab_calls.py`` and ``bench/natlab.py``.

One *case* builds a :class:`tests.peers.natlab.NatLab` (public namespace with coturn and
Kamailio on 203.0.113.1, two private sites each a NAT namespace plus a host namespace), puts
one :class:`siplink.ua.useragent.UserAgent` in each site's host namespace (its SIP socket and its
ICE sockets are bound there with ``NetNs.entered()``; both agents share this process's
reactor), registers ``alice`` (site a) and ``bob`` (site b) with the proxy, and alice calls
``sip:bob@203.0.113.1:5080``.  The media of each call is an
:class:`siplink.media.icesession.IceMediaSession` gathering host candidates on the site's private
address, server-reflexive ones from coturn (STUN) and relayed ones from coturn (TURN,
alice/secret).  Each side plays its own tone (alice 1000 Hz, bob 440 Hz) for
``media_seconds`` after both sides are connected; then alice hangs up.

:func:`run_case` returns a :class:`CaseResult` and never leaves anything behind: agents,
sockets, TURN allocations, Kamailio, coturn and namespaces are closed in a ``finally`` (and
``CaseResult.leaks`` says what would still exist: the lab's namespaces, reactor sockets bound
to its host addresses).  Per side it has the selected pair, the time to connected (from the
offer/answer being built, so gathering included, to ICE completed; regular nomination waits
for better pairs as the agent's policy says, at most ``nomination_delay`` = 1 s) and to the
first valid pair, RTP kept that came on a valid pair before completion, checks sent, RTP
sent/received while both sides were
connected, the tone heard, SIP datagrams resent and retransmissions of answered STUN
requests; per case also coturn's allocations and permissions (from its log), what the lab's
loss rules dropped, INVITE -> 200, and how each side's call ended.  A case that cannot
connect (``expect="failed"``) waits for ICE to fail instead.  :func:`check_case` lists what
RFC 8445 predicts and the result does not show; :func:`format_table` renders the table.

Pitfall: the proxy is the only SIP path between two NATed sites (neither host is reachable
from the other without a mapping it opened first), so every case goes through Kamailio.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, task, threads

from ice.gathering import TurnServer
from ice.trace import Trace
from siplink.media.icesession import IceMediaSession, IceSessionError, PairInfo
from siplink.ua.useragent import Account, Call, UserAgent
from tests.peers.natlab import PUBLIC_IP, SIP_PORT, NatLab, Site, SiteSpec
from tests.peers.netns import list_namespaces

__all__ = ["CASES", "CASES_BY_NAME", "CaseResult", "LabCase", "SideResult", "check_case",
           "format_table", "run_case"]

TONES = {"a": 1000.0, "b": 440.0}
USERS = {"a": "alice", "b": "bob"}
TONE_TOLERANCE_HZ = 5.0
RELAY = "relay"
REFLEXIVE = ("srflx", "prflx")


@dataclass(frozen=True)
class LabCase:
    """One lab configuration and what RFC 8445 predicts for it.

    ``expect``: ``"reflexive"`` (both sides select a srflx/prflx <-> srflx/prflx pair, no
    relay), ``"relay"`` (a relayed candidate in the selected pair of both sides),
    ``"connected"`` (ICE completes on some pair: the loss case) or ``"failed"`` (no pair can
    work: ICE fails after ``failed_timeout`` and the call ends with ``ice-failed``).
    ``turn=False``: the agents get coturn as a STUN server only (no relayed candidates).
    ``turn_transport``: how both agents reach coturn for TURN, "udp", "tcp" (port 3478) or
    "tls" (5349, certificate for 203.0.113.1 from a CA the lab makes); ``sip_transport``: SIP
    to the proxy over "udp" or "tcp" (a site that drops all UDP needs "tcp").
    """

    name: str
    a: SiteSpec
    b: SiteSpec
    expect: str
    connect_timeout: float = 15.0
    turn: bool = True
    failed_timeout: float = 30.0
    turn_transport: str = "udp"
    sip_transport: str = "udp"

    @property
    def nats(self) -> str:
        return f"{_spec_text(self.a)} / {_spec_text(self.b)}"


def _spec_text(s: SiteSpec) -> str:
    kind = {"udp-blocked-except-turn": "blocked", "udp-blocked": "no-udp"}.get(s.nat, s.nat)
    return kind + (f" {s.loss:.0%} loss" if s.loss else "")


CASES: tuple[LabCase, ...] = (
    LabCase("eim-eim", SiteSpec("eim"), SiteSpec("eim"), "reflexive"),
    LabCase("eim-apdm", SiteSpec("eim"), SiteSpec("apdm"), "relay"),
    LabCase("apdm-apdm", SiteSpec("apdm"), SiteSpec("apdm"), "relay"),
    LabCase("blocked-eim", SiteSpec("udp-blocked-except-turn"), SiteSpec("eim"), "relay"),
    LabCase("loss10-eim", SiteSpec("eim", loss=0.10), SiteSpec("eim", loss=0.10), "connected",
            connect_timeout=30.0),
    LabCase("apdm-apdm-noturn", SiteSpec("apdm"), SiteSpec("apdm"), "failed", turn=False,
            failed_timeout=5.0),
    # site a drops every UDP packet leaving it (STUN to coturn times out): SIP over TCP, and
    # the relay reached over TCP or TLS is alice's only way out (RFC 8656 §3.1)
    LabCase("noudp-eim-turntcp", SiteSpec("udp-blocked"), SiteSpec("eim"), "relay",
            connect_timeout=20.0, turn_transport="tcp", sip_transport="tcp"),
    LabCase("noudp-eim-turntls", SiteSpec("udp-blocked"), SiteSpec("eim"), "relay",
            connect_timeout=20.0, turn_transport="tls", sip_transport="tcp"),
)
CASES_BY_NAME = {c.name: c for c in CASES}


@dataclass
class SideResult:
    name: str                               # "alice" (site a, caller) / "bob" (site b)
    state: str = "new"                      # the IceMediaSession's state at the end
    cause: str | None = None
    pair: PairInfo | None = None            # selected pair of component 1
    time_to_connected_ms: float | None = None
    time_to_valid_ms: float | None = None   # ... to the first valid pair (before nomination)
    kept_before_media: int = 0              # RTP on a valid pair before our ICE completed
    checks_sent: int = 0
    packets_sent: int = 0                   # RTP, while both sides were connected
    packets_received: int = 0               # (the media_seconds window)
    packets_lost: int = 0                   # RFC 3550 cumulative loss, whole call
    dropped_before_media: int = 0           # RTP that came before our ICE completed
    tone_sent_hz: float = 0.0
    tone_heard_hz: float | None = None
    sip_retransmissions: int = 0            # SIP datagrams sent again byte for byte
    stun_retransmissions: int = 0           # STUN transactions' retransmissions (checks, TURN)
    candidates: list[str] = field(default_factory=list)   # types of the local candidates
    trickle: dict[str, int] = field(default_factory=dict)  # IceMediaSession.trickle_stats
    sdp_candidates: list[str] = field(default_factory=list)  # types in our offer/answer

    @property
    def pair_text(self) -> str:
        return f"{self.pair.local_type}->{self.pair.remote_type}" if self.pair else "none"


@dataclass
class CaseResult:
    case: LabCase
    sides: dict[str, SideResult]            # "a", "b"
    setup_ms: float | None = None           # first INVITE sent -> call answered (200)
    proxy_routed: bool = False              # Kamailio's log shows the INVITE routed to bob
    caller_end: str | None = None           # why alice's call ended
    callee_end: str | None = None           # why bob's call ended ("remote-bye": the BYE came)
    leaks: list[str] = field(default_factory=list)   # namespaces or sockets left behind
    turn_allocations: int = 0               # coturn's log: ALLOCATE processed, success
    turn_permissions: int = 0               # ... CREATE_PERMISSION / CHANNEL_BIND successes
    turn_stream_connections: int = 0        # ... TCP or TLS connections from clients
    error: str | None = None                # what stopped the call, if anything
    cleanup_error: str | None = None
    wall_s: float = 0.0                     # the whole case, lab build to lab deleted
    lab_drops: dict[str, int] = field(default_factory=dict)  # site -> packets its loss
                                                             # rule dropped
    trickle: str = "half"                   # both agents' trickle mode (RFC 8838/8840)

    @property
    def a(self) -> SideResult:
        return self.sides["a"]

    @property
    def b(self) -> SideResult:
        return self.sides["b"]


def _sleep(reactor: Any, seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


async def _within(reactor: Any, d: defer.Deferred[Any], seconds: float, what: str) -> Any:
    d.addTimeout(seconds, reactor)
    try:
        return await d
    except defer.TimeoutError:
        raise TimeoutError(f"{what}: nothing in {seconds:g} s") from None


def _duplicates(trace: Trace, protocol: str) -> int:
    seen: set[bytes] = set()
    dup = 0
    for r in trace.records:
        if r.direction == "out" and r.protocol == protocol and r.raw:
            if r.raw in seen:
                dup += 1
            seen.add(r.raw)
    return dup


_SENT_RX = re.compile(r"\(sent (\d+)x\)$")


def _stun_retransmissions(trace: Trace) -> int:
    """Retransmissions of the agent's answered STUN transactions (checks, STUN server
    requests, consent): each answer's trace record says how often its request went out."""
    n = 0
    for r in trace.records:
        if r.direction == "in" and (m := _SENT_RX.search(r.summary)):
            n += int(m.group(1)) - 1
    return n


def _lab_drops(lab: NatLab) -> dict[str, int]:
    """Packets each site's loss rule (iptables ``statistic`` DROP in FORWARD) dropped."""
    out: dict[str, int] = {}
    for name, site in lab.sites.items():
        if not site.loss:
            continue
        listing = site.nat.run(["iptables", "-w", "-L", "FORWARD", "-v", "-x", "-n"]).stdout
        out[name] = sum(int(line.split()[0]) for line in listing.splitlines()
                        if "statistic" in line and "DROP" in line)
    return out


async def run_case(reactor: Any, case: LabCase, *, media_seconds: float = 2.0,
                   trickle: str = "half") -> CaseResult:
    """Build the lab, make the call, measure, tear everything down (see module docstring).
    ``trickle``: both agents' ``IceMediaSession(trickle=...)`` (off, half or full)."""
    started = time.monotonic()
    result = CaseResult(case, {k: SideResult(USERS[k], tone_sent_hz=TONES[k]) for k in "ab"},
                        trickle=trickle)
    lab = NatLab(case.a, case.b, turn_tls=case.turn_transport == "tls")
    uas: dict[str, UserAgent] = {}
    sessions: dict[str, IceMediaSession] = {}
    sip_traces = {k: Trace() for k in "ab"}
    incoming: list[Call] = []
    call: Call | None = None
    names: list[str] = []
    try:
        await threads.deferToThread(lab.build)
        names = lab.namespaces()
        proxy = await threads.deferToThread(lab.start_proxy)
        turn = lab.turn
        assert turn is not None, "the NAT lab started without coturn"
        tls = case.turn_transport == "tls"
        turn_port = turn.tls_port if tls and turn.tls_port is not None else turn.addr[1]
        turn_servers = ([TurnServer(turn.addr[0], turn_port, turn.user, turn.password,
                                    case.turn_transport, str(lab.turn_ca) if tls else "")]
                        if case.turn else [])
        domain = f"{PUBLIC_IP}:{SIP_PORT}"

        def session(k: str, site: Site, ua: UserAgent) -> IceMediaSession:
            s = IceMediaSession(reactor, local_addresses=(site.host_ip,),
                                stun_servers=[turn.addr], turn_servers=turn_servers,
                                tone=TONES[k], rtcp_interval=1.0,
                                failed_timeout=case.failed_timeout,
                                bind_context=site.host.entered, trickle=trickle)
            sessions[k] = s
            return s

        accounts: dict[str, Account] = {}
        for k, site in (("a", lab.a), ("b", lab.b)):
            ua = UserAgent(reactor, host=site.host_ip, user=USERS[k], trace=sip_traces[k],
                           transport=case.sip_transport, bind_context=site.host.entered)
            uas[k] = ua
            with site.host.entered():
                ua.listen()
            accounts[k] = Account(USERS[k], domain, proxy=domain, expires=300,
                                  transport=case.sip_transport)
        b_ua = uas["b"]
        b_ua.media_factory = lambda: session("b", lab.b, b_ua)

        def on_call(c: Call) -> None:
            incoming.append(c)
            if isinstance(c.media, IceMediaSession):
                c.media.attach(c)
            c.answer()

        b_ua.on_incoming_call = on_call
        sites = {"a": lab.a, "b": lab.b}
        for k in "ab":
            # SIP over TCP connects when the first request goes out: in the site's namespace
            with sites[k].host.entered():
                registered = defer.ensureDeferred(uas[k].register(accounts[k]).register())
            await _within(reactor, registered, 20.0, f"{USERS[k]} REGISTER")

        sa = session("a", lab.a, uas["a"])
        t0 = reactor.seconds()
        with lab.a.host.entered():
            call = uas["a"].call(f"sip:bob@{domain}", account=accounts["a"], media=sa)
        sa.attach(call)
        await _within(reactor, call.answered, case.connect_timeout, "call answered")
        sent = [r.time for r in sip_traces["a"].records
                if r.direction == "out" and r.protocol == "sip" and r.summary.startswith("INVITE")]
        result.setup_ms = round((reactor.seconds() - (sent[0] if sent else t0)) * 1000, 1)
        result.proxy_routed = "ROUTED INVITE to sip:bob@" in proxy.log()
        if case.expect == "failed":
            await _expect_ice_failure(reactor, case, result, sessions)
            _collect(result, sessions, 1.0)
            await _within(reactor, call.ended, 5.0, "alice's call ended")
        else:
            await _within(reactor, sa.wait_connected(), case.connect_timeout,
                          "alice ICE connected")
            await _within(reactor, sessions["b"].wait_connected(), case.connect_timeout,
                          "bob ICE connected")
            base = _counters(sessions)
            await _sleep(reactor, media_seconds)
            _collect(result, sessions, min(1.0, media_seconds * 0.6), base)
            await _within(reactor, call.hangup(), 10.0, "BYE answered")
        result.caller_end = call.cause
        call = None
        await _within(reactor, incoming[0].ended, 5.0, "bob's call ended")
        result.callee_end = incoming[0].cause
        result.lab_drops = await threads.deferToThread(_lab_drops, lab)
        tlog = turn.log()
        result.turn_allocations = len(re.findall(r"ALLOCATE processed, success", tlog))
        result.turn_permissions = len(re.findall(
            r"(?:CREATE_PERMISSION|CHANNEL_BIND) processed, success", tlog))
        result.turn_stream_connections = len(re.findall(r"tcp or tls connected to: ", tlog))
    except Exception as e:  # reported in the result; check_case turns it into a failure
        result.error = f"{type(e).__name__}: {e}"
        _collect(result, sessions, 1.0)
    finally:
        try:
            await _teardown(reactor, uas, sessions, call, lab)
        except Exception as e:
            result.cleanup_error = f"{type(e).__name__}: {e}"
        result.leaks = _leaks(reactor, names, [s.host_ip for s in lab.sites.values()])
        for k in "ab":
            result.sides[k].sip_retransmissions = _duplicates(sip_traces[k], "sip")
        result.wall_s = round(time.monotonic() - started, 2)
    return result


async def _expect_ice_failure(reactor: Any, case: LabCase, result: CaseResult,
                              sessions: dict[str, IceMediaSession]) -> None:
    for k in "ab":
        try:
            await _within(reactor, sessions[k].wait_connected(),
                          case.failed_timeout + case.connect_timeout, f"{USERS[k]} ICE failed")
        except IceSessionError as e:
            result.sides[k].cause = e.cause
        else:
            raise AssertionError(f"{USERS[k]}: ICE connected, but no pair can work here")


def _counters(sessions: dict[str, IceMediaSession]) -> dict[str, tuple[int, int]]:
    out = {}
    for k, s in sessions.items():
        st = s.stream.stats() if s.stream is not None else None
        out[k] = (st.packets_sent, st.packets_received) if st is not None else (0, 0)
    return out


def _collect(result: CaseResult, sessions: dict[str, IceMediaSession], tone_window: float,
             base: dict[str, tuple[int, int]] | None = None) -> None:
    for k, s in sessions.items():
        side = result.sides[k]
        side.state = s.state
        side.cause = s.cause or side.cause
        side.pair = s.selected_pairs.get(1)
        ttc = s.time_to_connected
        side.time_to_connected_ms = None if ttc is None else round(ttc * 1000, 1)
        side.checks_sent = s.checks_sent
        side.stun_retransmissions = _stun_retransmissions(s.trace)
        side.dropped_before_media = s.transport.dropped_before_media
        side.kept_before_media = s.transport.kept_before_media
        fv = s.transport.agent.first_valid_at(0) if s.transport.agent is not None else None
        if fv is not None and s.started_at is not None:
            side.time_to_valid_ms = round((fv - s.started_at) * 1000, 1)
        if s.transport.agent is not None:
            side.candidates = sorted({c.type.value for c in s.transport.agent.local_candidates(0)})
        side.trickle = dict(s.trickle_stats)
        ours = next((r for r in s.trace.records if r.protocol == "sdp" and r.direction == "out"),
                    None)
        if ours is not None:
            side.sdp_candidates = sorted(set(re.findall(r"typ (\w+)", ours.detail or "")))
        if s.stream is not None:
            st = s.stream.stats()
            sent0, received0 = (base or {}).get(k, (0, 0))
            side.packets_sent = st.packets_sent - sent0
            side.packets_received = st.packets_received - received0
            side.packets_lost = st.packets_lost
            side.tone_heard_hz = s.stream.detected_frequency(seconds=tone_window)


async def _teardown(reactor: Any, uas: dict[str, UserAgent],
                    sessions: dict[str, IceMediaSession], call: Call | None,
                    lab: NatLab) -> None:
    try:
        if call is not None:
            call.hangup().addErrback(lambda f: None)
            await _sleep(reactor, 0.2)
        for ua in uas.values():
            ua.close()                 # ends the calls: closes their media sessions
        for s in sessions.values():
            s.close()
        # TURN allocations released (bounded by the driver's release timeout), sockets closed
        closes = [s.transport.driver.close() for s in sessions.values() if s.transport.driver is not None]
        await defer.gatherResults(closes, consumeErrors=True)
        await _sleep(reactor, 0.05)    # let the reactor drop the closed SIP ports
    finally:
        await threads.deferToThread(lab.close)


def _leaks(reactor: Any, names: list[str], host_ips: list[str]) -> list[str]:
    """Namespaces of this lab that still exist, reactor sockets still bound in its hosts."""
    left = [f"namespace {n}" for n in names if n in list_namespaces()]
    for r in list(reactor.getReaders()) + list(reactor.getWriters()):
        get_host = getattr(r, "getHost", None)
        try:
            host = get_host() if get_host is not None else None
        except Exception:
            continue
        if host is not None and getattr(host, "host", None) in host_ips:
            left.append(f"socket {host.host}:{host.port} ({type(r).__name__})")
    return left


def check_case(r: CaseResult) -> list[str]:
    """What the case's RFC 8445 prediction and the media checks find wrong (empty: pass)."""
    errors: list[str] = []
    if r.error:
        errors.append(r.error)
    if r.cleanup_error:
        errors.append(f"cleanup: {r.cleanup_error}")
    errors += [f"left behind: {x}" for x in r.leaks]
    if r.error:
        return errors
    if not r.proxy_routed:
        errors.append("Kamailio's log does not show the INVITE routed to bob")
    for k, spec in (("a", r.case.a), ("b", r.case.b)):
        if spec.loss and not r.lab_drops.get(k):
            errors.append(f"site {k}: its loss rule dropped nothing")
    if r.case.expect == "failed":
        return errors + _check_failed(r)
    if r.callee_end != "remote-bye":
        errors.append(f"bob's call ended with {r.callee_end!r}, not alice's BYE")
    lossy = bool(r.case.a.loss or r.case.b.loss)
    for k, other in (("a", "b"), ("b", "a")):
        me, peer = r.sides[k], r.sides[other]
        if me.time_to_connected_ms is None:
            errors.append(f"{me.name}: ICE never connected ({me.state}, {me.cause})")
        if me.pair is None:
            errors.append(f"{me.name}: no selected pair")
            continue
        if peer.pair is not None and me.pair.remote_address != peer.pair.local_address:
            errors.append(f"{me.name}: selected pair {me.pair} does not end at "
                          f"{peer.name}'s local candidate {peer.pair}")
        types = (me.pair.local_type, me.pair.remote_type)
        if r.case.expect == "reflexive" and not all(t in REFLEXIVE for t in types):
            errors.append(f"{me.name}: expected a srflx/prflx pair (EIM NATs), got {me.pair}")
        if r.case.expect == "relay" and RELAY not in types:
            errors.append(f"{me.name}: expected a relayed pair, got {me.pair}")
    if r.case.expect == "relay" and not r.turn_permissions:
        errors.append("coturn's log shows no permission or channel installed for a peer")
    if r.case.turn_transport != "udp" and not r.turn_stream_connections:
        errors.append(f"coturn's log shows no TURN/{r.case.turn_transport.upper()} connection")
    for k, other in (("a", "b"), ("b", "a")):
        me, peer = r.sides[k], r.sides[other]
        # lossless: all but the packets in flight when counted; lossy: both NATs drop
        # about 10 % each way, so about 81 % arrive (60 % is five standard deviations off)
        least = 0.6 * me.packets_sent if lossy else me.packets_sent - 3
        if me.packets_sent < 50 or peer.packets_received < least:
            errors.append(f"{me.name} -> {peer.name}: {me.packets_sent} RTP packets sent, "
                          f"{peer.packets_received} received")
        heard = peer.tone_heard_hz
        if heard is None or abs(heard - me.tone_sent_hz) > TONE_TOLERANCE_HZ:
            errors.append(f"{peer.name} heard {heard} Hz, {me.name} played "
                          f"{me.tone_sent_hz:g} Hz")
    return errors


def _check_failed(r: CaseResult) -> list[str]:
    # whichever agent's ICE fails first ends the call with a BYE; the other learns it so
    errors = []
    ends = {"alice": r.caller_end or "", "bob": r.callee_end or ""}
    if not any(e.startswith("ice-failed") for e in ends.values()):
        errors.append(f"no call ended with ice-failed: {ends}")
    for name, end in ends.items():
        if not (end.startswith("ice-failed") or end == "remote-bye"):
            errors.append(f"{name}'s call ended with {end!r}")
    for side in r.sides.values():
        if not (side.cause or "").startswith(("ice-failed", "call ended (remote-bye)")):
            errors.append(f"{side.name}: ICE ended with {side.cause!r}")
        if side.pair is not None or side.time_to_connected_ms is not None:
            errors.append(f"{side.name}: a pair was selected ({side.pair})")
        if RELAY in side.candidates:
            errors.append(f"{side.name}: gathered a relayed candidate without TURN")
        if side.packets_received:
            errors.append(f"{side.name}: {side.packets_received} RTP packets played")
    if r.turn_allocations:
        errors.append(f"coturn allocated {r.turn_allocations} relays without TURN configured")
    return errors


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def format_table(results: Sequence[CaseResult]) -> str:
    """The summary table: one line per case."""
    head = ("case", "NATs (a / b)", "alice pair", "bob pair", "valid ms a/b", "ICE ms a/b",
            "checks a/b", "early RTP", "RTP a->b", "RTP b->a", "tone a/b Hz", "rtx sip/stun", "NAT drops", "TURN",
            "setup ms", "call end a/b", "ok")
    rows = [head]
    for r in results:
        a, b = r.a, r.b
        ok = "ok" if not check_case(r) else "FAIL"
        rows.append((
            r.case.name, r.case.nats, a.pair_text, b.pair_text,
            f"{_ms(a.time_to_valid_ms)}/{_ms(b.time_to_valid_ms)}",
            f"{_ms(a.time_to_connected_ms)}/{_ms(b.time_to_connected_ms)}",
            f"{a.checks_sent}/{b.checks_sent}",
            f"{a.kept_before_media}/{b.kept_before_media}",
            f"{a.packets_sent}/{b.packets_received}",
            f"{b.packets_sent}/{a.packets_received}",
            f"{_ms(a.tone_heard_hz)}/{_ms(b.tone_heard_hz)}",
            f"{a.sip_retransmissions + b.sip_retransmissions}/"
            f"{a.stun_retransmissions + b.stun_retransmissions}",
            "/".join(str(r.lab_drops.get(k, 0)) for k in "ab") if r.lab_drops else "-",
            f"{r.turn_allocations}/{r.turn_permissions}",
            _ms(r.setup_ms),
            "/".join((e or "-").split(":")[0] for e in (r.caller_end, r.callee_end)), ok,
        ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = ["valid / ICE ms: offer or answer built -> first valid pair / ICE completed; "
             "early RTP: packets kept that came on a valid pair before our side completed;",
             "RTP x->y: packets x sent / y received while both were connected; tone a/b: "
             "what alice / bob heard (bob plays 440, alice 1000);",
             "rtx: SIP datagrams resent / retransmissions of answered STUN requests; "
             "NAT drops: packets the loss rules dropped at site a / b; TURN: coturn's "
             "allocations / permissions+channels;",
             "setup: INVITE -> 200; call end: why alice's / bob's call ended"]
    for r in results:
        for e in check_case(r):
            notes.append(f"{r.case.name}: {e}")
    return "\n".join(lines + notes)
