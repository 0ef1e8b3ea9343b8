"""SIP + ICE calls between two siplink agents behind real kernel NATs (issue 9, NAT lab).

Each test builds the NAT lab (tests/peers/natlab.py: coturn and Kamailio in the public
namespace, two private sites each a NAT namespace plus a host namespace), runs one siplink
UserAgent per site host (sockets bound inside the namespaces, one shared reactor), registers
both with Kamailio, and alice (site a) calls bob (site b) through it with
IceMediaSession media (host, srflx and relayed candidates from coturn).  Both sides play a
tone for 2 s; then alice hangs up and everything is deleted (tests/natlab_support.py).

What RFC 8445 predicts, asserted per case:

- both NATs endpoint-independent: a server-reflexive (or peer-reflexive) pair on both
  sides, no relay, although relayed candidates were gathered;
- one or both NATs address-and-port-dependent (MASQUERADE --random-fully): no direct path
  exists between the sites, the selected pair goes through a TURN relay;
- site a drops all UDP except to TURN (and to the SIP proxy): alice's side is relayed;
- site a drops all UDP (SIP over TCP): alice's relay is reached over TURN/TCP, or TURN/TLS
  (RFC 8656 §3.1), and the call connects through it with media both ways;
- 10 % loss at both NATs: SIP and STUN retransmissions carry the call set-up; ICE completes
  and media flows (with loss counted by RTP);
- both NATs address-and-port-dependent and no TURN server: no pair can work, ICE fails and
  the call ends with ``ice-failed`` (and the agents clean up after a failed call);
- trickle ICE (RFC 8838/8840; every case runs with siplink's default, half trickle): the
  callee answers with its host candidate only and sends its srflx and relayed ones in INFOs
  through Kamailio; in full trickle the caller's offer has only its host candidate too; with
  trickle off every candidate is in the offer and the answer, no INFO.

Each case also checks that media flowed both ways (RTP counts and the tone each side heard),
that Kamailio routed the INVITE, and that no namespace or socket of the lab is left behind.  The table of all cases (selected pairs, time to
connected, checks sent, RTP each way, retransmissions) is printed in pytest's terminal
summary, with or without ``-s``; ``python bench/natlab.py`` prints the same table.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.natlab_support import (
    CASES_BY_NAME,
    REFLEXIVE,
    RELAY,
    CaseResult,
    check_case,
    format_table,
    run_case,
)

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(60)]


class _SummaryTable:
    """Registered as a pytest plugin: prints the NAT lab table in the terminal summary."""

    def __init__(self) -> None:
        self.results: list[CaseResult] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.write_sep("=", "NAT lab: SIP + ICE calls between two siplink agents")
        for line in format_table(self.results).splitlines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def lab_results(request: pytest.FixtureRequest) -> list[CaseResult]:
    pm = request.config.pluginmanager
    plugin = pm.get_plugin("siplink-natlab-calls")
    if plugin is None:
        plugin = _SummaryTable()
        pm.register(plugin, "siplink-natlab-calls")
    return plugin.results


async def _run(results: list[CaseResult], name: str, trickle: str = "half") -> CaseResult:
    r = await run_case(reactor, CASES_BY_NAME[name], trickle=trickle)
    results.append(r)
    problems = check_case(r)
    assert not problems, "\n" + format_table([r])
    if r.case.expect != "failed":
        for side in (r.a, r.b):
            assert side.pair is not None and side.time_to_connected_ms is not None
    return r


@pytest_twisted.ensureDeferred
async def test_both_sites_behind_eim_nats_select_a_reflexive_pair(
        lab_results: list[CaseResult]) -> None:
    r = await _run(lab_results, "eim-eim")
    for side in (r.a, r.b):
        assert side.pair is not None
        assert side.pair.local_type in REFLEXIVE and side.pair.remote_type in REFLEXIVE, \
            side.pair
        assert RELAY in side.candidates, side.candidates   # offered, but not needed
    # the reflexive addresses are the NATs' public ones
    assert r.a.pair is not None and r.a.pair.local_address[0] == "203.0.113.10"
    assert r.b.pair is not None and r.b.pair.local_address[0] == "203.0.113.20"


@pytest.mark.parametrize("mode", ["off", "half", "full"])
@pytest_twisted.ensureDeferred
async def test_trickle_modes_through_the_nats(lab_results: list[CaseResult], mode: str) -> None:
    """The srflx/relayed candidates the NATs force travel in the SDP (off) or in trickle
    INFOs through the proxy (RFC 8840 §4.4): the answerer's always in half and full mode,
    the caller's too in full mode; the call connects either way on a reflexive pair."""
    r = await _run(lab_results, "eim-eim", trickle=mode)
    for side in (r.a, r.b):
        assert side.pair is not None and side.pair.local_type in REFLEXIVE, side.pair
    trickles = {"off": (False, False), "half": (False, True), "full": (True, True)}[mode]
    for side, trickled in zip((r.a, r.b), trickles, strict=True):
        if trickled:
            assert side.sdp_candidates == ["host"], side.sdp_candidates
            assert side.trickle.get("candidates_sent", 0) >= 2, side.trickle   # srflx, relay
        else:
            assert {"host", "srflx", "relay"} <= set(side.sdp_candidates), side.sdp_candidates
            assert side.trickle.get("candidates_sent", 0) == 0, side.trickle
    assert r.a.trickle.get("candidates_received", 0) == r.b.trickle.get("candidates_sent", 0)


@pytest_twisted.ensureDeferred
async def test_one_site_behind_apdm_nat_uses_the_relay(lab_results: list[CaseResult]) -> None:
    r = await _run(lab_results, "eim-apdm")
    assert r.a.pair is not None and r.b.pair is not None
    assert RELAY in (r.a.pair.local_type, r.a.pair.remote_type), r.a.pair
    assert RELAY in (r.b.pair.local_type, r.b.pair.remote_type), r.b.pair
    assert r.a.packets_received > 50 and r.b.packets_received > 50
    assert r.turn_allocations >= 2 and r.turn_permissions >= 1, r   # coturn really relayed


@pytest_twisted.ensureDeferred
async def test_both_sites_behind_apdm_nats_use_the_relay(lab_results: list[CaseResult]) -> None:
    r = await _run(lab_results, "apdm-apdm")
    assert r.a.pair is not None and r.b.pair is not None
    assert RELAY in (r.a.pair.local_type, r.a.pair.remote_type), r.a.pair
    assert RELAY in (r.b.pair.local_type, r.b.pair.remote_type), r.b.pair
    # the relayed address is coturn's (203.0.113.1), on whichever side holds it
    relayed = [p.local_address if p.local_type == RELAY else p.remote_address
               for p in (r.a.pair, r.b.pair)]
    assert all(addr[0] == "203.0.113.1" for addr in relayed), relayed
    assert r.turn_allocations >= 2 and r.turn_permissions >= 1, r


@pytest_twisted.ensureDeferred
async def test_site_with_udp_blocked_except_turn_uses_the_relay(
        lab_results: list[CaseResult]) -> None:
    r = await _run(lab_results, "blocked-eim")
    assert r.a.pair is not None and r.b.pair is not None
    assert r.a.pair.local_type == RELAY, r.a.pair            # alice can only send to coturn
    assert r.b.pair.remote_type == RELAY, r.b.pair
    assert r.b.pair.remote_address == r.a.pair.local_address
    assert r.turn_allocations >= 2 and r.turn_permissions >= 1, r


@pytest.mark.parametrize("name", ["noudp-eim-turntcp", "noudp-eim-turntls"])
@pytest_twisted.ensureDeferred
async def test_site_without_udp_connects_through_turn_over_tcp_or_tls(
        lab_results: list[CaseResult], name: str) -> None:
    r = await _run(lab_results, name)
    assert r.a.pair is not None and r.b.pair is not None
    assert r.a.pair.local_type == RELAY, r.a.pair          # alice's only way out: the relay
    assert r.a.pair.local_address[0] == "203.0.113.1", r.a.pair
    assert r.b.pair.remote_address == r.a.pair.local_address
    assert "srflx" not in r.a.candidates, r.a.candidates  # STUN over UDP could not get out
    assert r.turn_allocations >= 2 and r.turn_permissions >= 1, r
    assert r.turn_stream_connections >= 2, r             # coturn saw the allocations on streams
    assert r.a.packets_received > 50 and r.b.packets_received > 50


@pytest_twisted.ensureDeferred
async def test_ten_percent_loss_at_both_sites_the_call_still_sets_up(
        lab_results: list[CaseResult]) -> None:
    r = await _run(lab_results, "loss10-eim")
    assert r.lab_drops.get("a", 0) > 0 and r.lab_drops.get("b", 0) > 0, r.lab_drops
    # ~19 % of RTP lost each way (two lossy NATs): RTP statistics see it on both sides
    assert r.a.packets_lost > 0 and r.b.packets_lost > 0, (r.a.packets_lost, r.b.packets_lost)
    assert r.a.state == r.b.state == "connected", (r.a.state, r.b.state)   # when measured
    assert r.callee_end == "remote-bye"         # the BYE crossed both lossy NATs


@pytest_twisted.ensureDeferred
async def test_symmetric_nats_without_turn_ice_fails_and_the_call_ends(
        lab_results: list[CaseResult]) -> None:
    r = await _run(lab_results, "apdm-apdm-noturn")
    for side in (r.a, r.b):
        assert side.pair is None and side.time_to_connected_ms is None, side
        assert "srflx" in side.candidates and RELAY not in side.candidates, side.candidates
    assert r.turn_allocations == 0      # coturn served STUN only
    # the agent whose ICE failed first ended the call (BYE); the other heard the BYE
    ends = sorted([r.caller_end or "", r.callee_end or ""])
    assert ends[0] == "ice-failed" or ends[0].startswith("ice-failed:"), ends
    assert ends[1] == "remote-bye" or ends[1].startswith("ice-failed"), ends


@pytest_twisted.ensureDeferred
async def test_a_case_that_fails_midway_still_leaves_nothing_behind() -> None:
    # ICE needs about 0.7 s here (regular nomination gives the unanswered direct pairs one
    # retransmission before settling for the relay); give it 0.3 s so the case aborts
    # (waiting for the answer or, usually, for ICE) with the call and both agents up
    case = replace(CASES_BY_NAME["apdm-apdm"], name="apdm-apdm-aborted", connect_timeout=0.3)
    r = await run_case(reactor, case)
    assert r.error is not None and "nothing in 0.3 s" in r.error, r.error
    assert r.cleanup_error is None and r.leaks == [], (r.cleanup_error, r.leaks)
    assert check_case(r) == [r.error]
