"""The UAS answers RFC 4475's "valid-syntax" messages as the RFC prescribes (§3.2-3.3).

The messages name hosts like example.com in their Via, so the agent's output is captured at
the transport (nothing leaves the process); the agent itself runs unmodified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor

from siplink.core.transaction import Target
from siplink.sip.message import parse_message
from siplink.ua.useragent import UserAgent

CORPUS = Path(__file__).resolve().parent / "data" / "rfc4475"
SOURCE = Target("udp", "127.0.0.1", 5099)

EXPECTED = {
    "unkscm.dat": 416,      # unknown Request-URI scheme
    "novelsc.dat": 416,
    "bext01.dat": 420,      # Require: an extension we do not support -> Unsupported
    "invut.dat": 415,       # INVITE body that is not SDP
    "sdp01.dat": 406,       # Accept excludes application/sdp
    "esc02.dat": 501,       # unknown method RE%47IST%45R
    "intmeth.dat": 501,
    "escnull.dat": 405,     # REGISTER at a UA
    "badinv01.dat": 400,
    "zeromf.dat": 200,      # Max-Forwards 0 at an endpoint: processed normally
}


@pytest.fixture
def captured() -> Any:
    ua = UserAgent(reactor, user="bob")
    ua.listen()
    out: list[tuple[bytes, Target]] = []
    ua.transport._write = lambda data, target: out.append((data, target))  # type: ignore[method-assign]
    ua.on_incoming_call = lambda call: call.answer()
    yield ua, out
    ua.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_uas_answers_as_rfc4475_prescribes(captured: Any, name: str) -> None:
    ua, out = captured
    ua.transport._input((CORPUS / name).read_bytes(), SOURCE)
    statuses = [int(d.split(b" ", 2)[1]) for d, _ in out]
    finals = [s for s in statuses if s >= 200]
    assert finals[:1] == [EXPECTED[name]], statuses
    if EXPECTED[name] == 420:
        assert parse_message(out[-1][0]).headers.get("Unsupported")
    for _, target in out:
        assert target.host == "127.0.0.1"        # received= stamped: back to the source host

