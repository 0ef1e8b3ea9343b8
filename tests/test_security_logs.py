"""No credentials in logs: every twisted.logger event during digest registrations (Kamailio, a
real registrar) and digest-protected incoming requests, formatted and with all its fields,
must not contain a password nor the HA1 hash derived from it.

What it proves: registering with the right password, failing with a wrong one (RFC 3261
§22.2 retry, then 401/403 reported as a failure), and a UAS refusing wrong credentials and
accepting good ones, all with a SIP trace on and every event at every level seen, never write the
secret anywhere twisted.logger sends it (the -v output, log files and the trace are views of
these events and of the trace records, also checked).
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from ice.trace import Trace
from siplink.core.account import Account
from siplink.core.errors import SipError
from siplink.sip.digest import DigestServer
from siplink.ua.useragent import UserAgent
from tests.peers.kamailio import Kamailio

KAMAILIO_PASSWORD = "secret"               # tests/data/kamailio/proxy.cfg: every user
WRONG_PASSWORD = "Wr0ng-Pa55word-7f3a"
UAS_PASSWORD = "uas-Pa55word-91c2"


def text_of(event: dict[str, Any]) -> str:
    parts = [formatEvent(event)]
    for k, v in event.items():
        if k in ("log_logger", "log_source", "log_observer", "log_publisher"):
            continue
        parts.append(f"{k}={v!r}")
    failure = event.get("log_failure")
    if failure is not None:
        parts.append(failure.getTraceback())
    return "\n".join(parts)


@pytest.fixture
def logged() -> Any:
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def secrets(user: str, realm: str, password: str) -> list[str]:
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324
    ha1_256 = hashlib.sha256(f"{user}:{realm}:{password}".encode()).hexdigest()
    return [password, ha1, ha1_256]


@pytest_twisted.ensureDeferred
async def test_no_password_in_logs_or_trace(logged: list[dict[str, Any]]) -> None:
    k = Kamailio().start()
    trace = Trace()
    ua = UserAgent(reactor, user="alice", trace=trace)
    ua.listen()
    uas = UserAgent(reactor, user="bob", trace=trace)
    uas.authenticator = DigestServer("lab.test", lambda u, r: UAS_PASSWORD if u == "alice"
                                     else None)
    uas.listen()
    try:
        good = Account("alice", k.address, password=KAMAILIO_PASSWORD, proxy=k.address)
        assert await ua.register(good).register() == 3600
        bad = Account("mallory", k.address, password=WRONG_PASSWORD, proxy=k.address)
        with pytest.raises(SipError):
            await ua.register(bad).register()
        uri = f"sip:bob@127.0.0.1:{uas.port}"
        for password, status in ((WRONG_PASSWORD, 403), (UAS_PASSWORD, 200)):
            acc = Account("alice", "lab.test", password=password)
            resp = await ua.request("OPTIONS", uri, account=acc).addTimeout(5, reactor)
            assert resp.status == status
        await ua.shutdown()
    finally:
        ua.close()
        uas.close()
        k.stop()
    texts = [text_of(e) for e in logged]
    assert any("registered sip:alice@" in t for t in texts)           # the capture works
    assert any("digest authentication refused" in t for t in texts)
    forbidden = (secrets("alice", k.address.split(":")[0], KAMAILIO_PASSWORD)
                 + secrets("mallory", k.address.split(":")[0], WRONG_PASSWORD)
                 + secrets("alice", "lab.test", WRONG_PASSWORD)
                 + secrets("alice", "lab.test", UAS_PASSWORD))
    for t in texts:
        for s in forbidden:
            assert s not in t, f"{s!r} logged in: {t[:300]}"
    records = [f"{r.summary}\n{r.detail}" for r in trace]
    assert any("Authorization: Digest" in r for r in records)         # the trace is complete
    for r in records:
        for s in forbidden:
            assert s not in r, f"{s!r} in the trace: {r[:300]}"
