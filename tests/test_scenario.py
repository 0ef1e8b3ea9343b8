"""siplink.calltest.scenario without the network: the file format's errors (key and line), the checks
of one call record, the summary table and the JUnit XML report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from siplink.calltest.scenario import (
    CallRecord,
    CallSpec,
    Expect,
    RunResult,
    Scenario,
    ScenarioError,
    check_call,
    junit_xml,
    load_scenario,
    loads_scenario,
    summary_table,
)

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
[scenario]
name = "t"
rate = 2.0

[[answerers]]
name = "bob"

[[calls]]
name = "one"
to = "bob"
steps = [{ at_s = 1.0, action = "hold" }]
[calls.expect]
candidate = "host"
"""


def test_the_shipped_examples_load() -> None:
    ok = load_scenario(ROOT / "conf/scenarios/ice-loopback.toml")
    assert [c.name for c in ok.calls] == ["ice-host-dtmf-hold", "callee-hangs-up"]
    assert ok.calls[0].steps[1].action == "resume" and ok.calls[1].repeat == 2
    bad = load_scenario(ROOT / "conf/scenarios/must-fail.toml")
    assert bad.answerers[0].status == 486
    sipp = load_scenario(ROOT / "conf/scenarios/sipp-uas.toml", {"TARGET": "127.0.0.1:5080"})
    assert sipp.calls[0].to == "sip:service@127.0.0.1:5080" and not sipp.calls[0].ice


def test_values_and_defaults() -> None:
    sc = loads_scenario(GOOD)
    assert sc.scenario.rate == 2.0 and sc.scenario.concurrency == 1
    call = sc.calls[0]
    assert call.to == "bob" and call.ice and call.expect.status == 200
    assert call.expect.candidate == "host" and call.steps[0].at_s == 1.0


@pytest.mark.parametrize(("change", "key", "line", "words"), [
    (("rate = 2.0", "rate = -1.0"), "scenario.rate", 3, "above 0"),
    (('candidate = "host"', 'candidate = "hots"'), "calls.expect.candidate", 13, "relay"),
    (('to = "bob"', 'to = "nobody"'), "calls.to", 10, "neither an answerer"),
    (('action = "hold"', 'action = "park"'), "calls.steps", 11, "unknown step action"),
    (('name = "bob"', 'name = "bob"\nstatus = "busy"'), "answerers.status", 7,
     "must be an integer"),
    (('rate = 2.0', 'rate = 2.0\nspeed = 3'), "scenario.speed", 4, "unknown key"),
])
def test_errors_name_key_and_line(change: tuple[str, str], key: str, line: int,
                                  words: str) -> None:
    with pytest.raises(ScenarioError) as e:
        loads_scenario(GOOD.replace(*change), path="x.toml")
    assert e.value.key == key
    assert e.value.line == line
    assert words in str(e.value) and str(e.value).startswith(f"x.toml:{line}")


def test_toml_syntax_error_has_a_line() -> None:
    with pytest.raises(ScenarioError) as e:
        loads_scenario(GOOD.replace('name = "one"', 'name = "one'))
    assert e.value.line == 9


def test_variables_outside_comments() -> None:
    text = GOOD.replace('to = "bob"', 'to = "sip:svc@${TARGET}"  # ${NOT_A_VAR} in a comment')
    sc = loads_scenario(text, variables={"TARGET": "127.0.0.1:5099"})
    assert sc.calls[0].to == "sip:svc@127.0.0.1:5099"
    with pytest.raises(ScenarioError) as e:
        loads_scenario(text)
    assert e.value.line == 10 and "--var TARGET=" in str(e.value)


def test_media_expectations_need_ice() -> None:
    with pytest.raises(ScenarioError) as e:
        loads_scenario(GOOD.replace('to = "bob"', 'to = "bob"\nice = false'))
    assert e.value.key == "calls.expect"


def _answered(**kw: object) -> CallRecord:
    spec = CallSpec(name="c", to="bob", expect=Expect(ice=True, candidate="host", media_s=2.0,
                                                      max_loss_pct=5.0, dtmf="12",
                                                      ended_by="caller"))
    rec = CallRecord(spec, status=200, reason="OK", setup_ms=40.0, ice_state="connected",
                     ice_ms=80.0, local_type="host", remote_type="host",
                     pair="c1 host a -> host b", media_window_s=2.5, rtp_received=124,
                     rtp_sent=125, rtp_lost=1, loss_pct=0.8, dtmf_received="12",
                     ended_by="caller", end_cause="local-bye")
    for k, v in kw.items():
        setattr(rec, k, v)
    return rec


def test_check_call_passes_a_good_record() -> None:
    assert check_call(_answered()) == []


@pytest.mark.parametrize(("kw", "words"), [
    ({"status": 486, "reason": "Busy Here"}, "expected status 200, got 486 Busy Here"),
    ({"status": None}, "no final response"),
    ({"ice_state": "failed", "ice_ms": None, "ice_cause": "ice-failed: no pair"},
     "ICE did not complete (ice-failed: no pair)"),
    ({"remote_type": "relay"}, "expected a host candidate"),
    ({"rtp_received": 30}, "RTP received 30 packets"),
    ({"loss_pct": 12.5}, "RTP loss 12.5% above 5%"),
    ({"dtmf_received": "1"}, "DTMF received '1', expected '12'"),
    ({"ended_by": "callee", "end_cause": "remote-bye"}, "expected the caller to end the call"),
    ({"steps": ["hold: 488 failed (expected 200)"]}, "step hold: 488 failed"),
    ({"steps": ["hold: 200", "hold: failed (peer kept sending: 40 RTP packets in 0.8 s on "
                "hold)"]}, "peer kept sending: 40 RTP packets"),
])
def test_check_call_names_each_failure(kw: dict[str, object], words: str) -> None:
    failures = check_call(_answered(**kw))
    assert any(words in f for f in failures), failures


def test_junit_and_table_report_failures() -> None:
    good, bad = _answered(), _answered(status=486, reason="Busy Here")
    bad.spec = CallSpec(name="busy", to="bob")
    for r in (good, bad):
        r.failures = check_call(r)
    result = RunResult(Scenario(calls=[good.spec, bad.spec]), [good, bad], elapsed_s=1.5)
    root = ET.fromstring(junit_xml(result))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["c"].find("failure") is None
    failure = cases["busy"].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected status 200, got 486 Busy Here"
    table = summary_table(result)
    assert "2 calls, 1 passed, 1 failed" in table
    assert "FAIL busy: expected status 200, got 486 Busy Here" in table


def test_error_in_the_second_call_points_at_its_line() -> None:
    text = GOOD + '\n[[calls]]\nname = "two"\nto = "bob"\n[calls.expect]\nended_by = "me"\n'
    with pytest.raises(ScenarioError) as e:
        loads_scenario(text)
    assert (e.value.key, e.value.line) == ("calls.expect.ended_by", 19)
    assert text.splitlines()[18] == 'ended_by = "me"'
