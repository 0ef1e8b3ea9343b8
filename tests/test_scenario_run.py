"""siplink.calltest.scenario.run_scenario in-process (pytest-twisted, loopback): calls are started at the
asked rate and never more than the asked concurrency are up at once."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from siplink.calltest.scenario import loads_scenario, run_scenario
from siplink.ua.config import Config

pytestmark = pytest.mark.timeout(60)

TEXT = """
[scenario]
rate = {rate}
concurrency = {concurrency}
[[answerers]]
name = "b"
ice = false
[[calls]]
name = "c"
to = "b"
ice = false
duration_s = {duration}
repeat = 6
[calls.expect]
ended_by = "caller"
"""


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    up = best = 0
    for _, d in edges:
        up += d
        best = max(best, up)
    return best


@pytest_twisted.ensureDeferred
async def test_concurrency_caps_calls_up_at_once() -> None:
    sc = loads_scenario(TEXT.format(rate=100.0, concurrency=2, duration=0.4))
    result = await run_scenario(reactor, sc, Config())
    assert result.ok, [r.failures for r in result.records]
    spans = [(r.started_at, r.started_at + r.duration_s) for r in result.records]
    assert _max_overlap(spans) == 2
    # three waves of two 0.4 s calls
    assert 1.2 <= result.elapsed_s < 3.0


@pytest_twisted.ensureDeferred
async def test_rate_spaces_the_starts() -> None:
    sc = loads_scenario(TEXT.format(rate=10.0, concurrency=6, duration=0.1))
    result = await run_scenario(reactor, sc, Config(), rate=5.0)   # the override wins
    assert result.ok, [r.failures for r in result.records]
    starts = sorted(r.started_at for r in result.records)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(0.17 <= g <= 0.35 for g in gaps), gaps
    assert len({r.call_id for r in result.records}) == 6
