"""The fuzz campaigns (fuzz/*.py) stay runnable and clean: a short seeded run of each in the
default suite, the harness's crash handling, and the campaigns' past findings as regressions.

What it proves: each campaign builds its target from the corpora and runs 2000 mutated inputs
with the built-in engine without a finding (the million-input runs are scripts, see
fuzz/README.md); a target that raises an unexpected exception is reported with a saved crash
file and traceback, and an allowed typed error is not; the inputs behind the bugs the campaigns
found (now fixed) give the typed error or parse.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import common  # noqa: E402
import fuzz_sdp  # noqa: E402
import fuzz_sip  # noqa: E402
import fuzz_stun  # noqa: E402

CAMPAIGNS = {"sip": fuzz_sip.build, "stun": fuzz_stun.build, "sdp": fuzz_sdp.build}

# inputs of past findings (fixed): each must now be a typed error or accepted
REGRESSIONS = {
    "sip": [  # 'Via: ,,,' was accepted: IndexError in the transaction layer
        b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: ,,,\r\nFrom: <sip:b@h>;tag=1\r\nTo: <sip:a@h>"
        b"\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        # a 400 addressed to a Via hostname escaped the transport's pump
        b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP host4.example.com:5060;branch="
        b"z9hG4bKx\r\nFrom: <sip:b@h>;tag=1\r\nTo: < sip:a@h >\r\nCall-ID: x\r\n"
        b"CSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
    ],
    "sdp": [  # a payload type twice on m=: rtpmap written twice, no round trip
        b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 5000 RTP/AVP 0 8 0\r\na=rtpmap:0 PCMU/8000\r\n",
    ],
    "stun": [],
}


@pytest.mark.parametrize("name", sorted(CAMPAIGNS))
def test_short_campaign_has_no_findings(name: str, tmp_path: Path) -> None:
    target = CAMPAIGNS[name]()
    assert len(target.seeds) >= 10
    camp = common.Campaign(target, tmp_path, timeout=0, quiet=True)
    common.run_mutate(target, camp, budget=2000, seconds=60, seed=7)
    assert camp.execs == 2000
    assert camp.findings == {}, camp.examples
    assert camp.accepted > 0 and camp.typed > 0      # both outcomes were reached
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", sorted(CAMPAIGNS))
def test_past_findings_stay_fixed(name: str, tmp_path: Path) -> None:
    target = CAMPAIGNS[name]()
    camp = common.Campaign(target, tmp_path, timeout=0, quiet=True)
    for data in REGRESSIONS[name]:
        camp.execute(data)
    assert camp.findings == {}, camp.examples


def test_unexpected_exception_is_a_saved_finding(tmp_path: Path) -> None:
    def run(data: bytes) -> None:
        if data.startswith(b"x"):
            raise ValueError("typed")
        if b"boom" in data:
            raise KeyError("not allowed")

    target = common.Target("demo", run, (ValueError,), [b"x1", b"a boom"])
    camp = common.Campaign(target, tmp_path, timeout=0, quiet=True)
    camp.execute(b"x1")
    camp.execute(b"a boom")
    camp.execute(b"b boom")
    assert camp.typed == 1
    ((sig, count),) = camp.findings.items()
    assert sig.startswith("KeyError@") and count == 2
    saved = sorted(tmp_path.iterdir())
    assert [p.suffix for p in saved] == [".bin", ".txt"]
    assert saved[0].read_bytes() == b"a boom"
    assert "KeyError" in saved[1].read_text()


def test_slow_input_is_a_finding(tmp_path: Path) -> None:
    import time

    def run(data: bytes) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:     # stands in for a regex gone exponential
            pass

    target = common.Target("slow", run, (ValueError,), [b"a"])
    camp = common.Campaign(target, tmp_path, timeout=0.3, quiet=True)
    camp.arm()
    try:
        t0 = time.monotonic()
        camp.execute(b"a")
        assert time.monotonic() - t0 < 2
    finally:
        camp.disarm()
    assert list(camp.findings) and next(iter(camp.findings)).startswith("Timeout@")


def test_mutations_are_reproducible() -> None:
    import random

    def outputs(seed: int) -> list[Any]:
        target = fuzz_stun.build()
        m = common.Mutator(target, random.Random(seed))
        return [m.mutate(s, 1500) for s in target.seeds for _ in range(5)]

    assert outputs(3) == outputs(3) != outputs(4)
