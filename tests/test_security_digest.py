"""Digest authentication of incoming requests (``UserAgent.authenticator``), on loopback.

What each test proves (bob requires credentials with a :class:`DigestServer`, realm lab.test,
user alice):

* alice's UA answers bob's 401 with her account's credentials and gets 200; a wrong password
  gets 403, and bob's application never sees an unauthenticated request;
* an Authorization header replayed in a new request (same nonce, same nonce count) is refused
  with a fresh 401 challenge, never accepted;
* credentials computed for a nonce that has since expired are refused with 401 and
  ``stale=true`` (the client may retry with the new nonce without asking the user), while the
  same computation on a fresh nonce is accepted.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, task

from siplink.core.account import Account
from siplink.sip.digest import DigestClient, DigestServer, parse_challenge
from siplink.sip.message import Request, Response, parse_message
from siplink.ua.useragent import UserAgent

PASSWORD = "s3cret-Pa55"
REALM = "lab.test"


class Peer(protocol.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: defer.DeferredQueue[bytes] = defer.DeferredQueue()

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.queue.put(data)


def bob_with_auth(lifetime: float = 300.0) -> tuple[UserAgent, list[Request]]:
    bob = UserAgent(reactor, user="bob")
    bob.authenticator = DigestServer(REALM, lambda user, realm: PASSWORD if user == "alice"
                                     else None, nonce_lifetime=lifetime)
    bob.listen(("udp",))
    seen: list[Request] = []
    original = bob.core._on_request

    def spy(req: Request, source: Any, key: Any) -> None:
        seen.append(req)
        original(req, source, key)

    bob.core._on_request = spy  # type: ignore[method-assign]
    return bob, seen


def options(port: int, me: int, auth: str | None = None) -> bytes:
    branch = "z9hG4bK" + random.randbytes(6).hex()
    extra = f"Authorization: {auth}\r\n" if auth else ""
    return (f"OPTIONS sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch={branch};rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:alice@{REALM}>;tag={random.randbytes(4).hex()}\r\n"
            f"To: <sip:bob@127.0.0.1>\r\nCall-ID: {random.randbytes(8).hex()}\r\n"
            f"CSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n").encode()


async def exchange(port: Any, peer: Peer, to: int, data: bytes) -> Response:
    port.write(data, ("127.0.0.1", to))
    msg = parse_message(await peer.queue.get().addTimeout(5, reactor))
    assert isinstance(msg, Response)
    return msg


@pytest.fixture
def raw() -> Any:
    peer = Peer()
    port = reactor.listenUDP(0, peer, interface="127.0.0.1")
    yield port, peer
    port.stopListening()


@pytest_twisted.ensureDeferred
async def test_account_credentials_get_200_and_a_wrong_password_403() -> None:
    bob, seen = bob_with_auth()
    alice = UserAgent(reactor, user="alice")
    alice.listen(("udp",))
    uri = f"sip:bob@127.0.0.1:{bob.port}"
    try:
        good = Account(user="alice", domain=REALM, password=PASSWORD)
        resp = await alice.request("OPTIONS", uri, account=good).addTimeout(5, reactor)
        assert resp.status == 200
        assert [bool(r.headers.get("authorization")) for r in seen] == [False, True]
        bad = Account(user="alice", domain=REALM, password="guess")
        resp = await alice.request("OPTIONS", uri, account=bad).addTimeout(5, reactor)
        assert resp.status == 403
        unknown = Account(user="mallory", domain=REALM, password=PASSWORD)
        resp = await alice.request("OPTIONS", uri, account=unknown).addTimeout(5, reactor)
        assert resp.status == 403                      # same answer: no user enumeration
        # an INVITE is challenged before it reaches the application
        calls: list[Any] = []
        bob.on_incoming_call = calls.append
        call = alice.call(uri)
        with pytest.raises(Exception) as failed:
            await call.answered.addTimeout(5, reactor)
        assert getattr(failed.value, "status", None) == 401 and not calls
    finally:
        alice.close()
        bob.close()


@pytest_twisted.ensureDeferred
async def test_replayed_authorization_is_refused(raw: Any) -> None:
    port, peer = raw
    me = port.getHost().port
    bob, seen = bob_with_auth()
    try:
        challenge = await exchange(port, peer, bob.port, options(bob.port, me))
        assert challenge.status == 401
        ch = parse_challenge(challenge.headers.get_lines("www-authenticate")[0])
        uri = f"sip:bob@127.0.0.1:{bob.port}"
        auth = DigestClient("alice", PASSWORD).authorize(ch, "OPTIONS", uri)
        first = await exchange(port, peer, bob.port, options(bob.port, me, auth))
        assert first.status == 200
        for _ in range(3):     # the same credentials in new requests: a replay
            again = await exchange(port, peer, bob.port, options(bob.port, me, auth))
            assert again.status == 401
            fresh = parse_challenge(again.headers.get_lines("www-authenticate")[0])
            assert fresh.nonce != ch.nonce
        assert sum(1 for r in seen if r.headers.get("authorization") == auth) == 4
    finally:
        bob.close()


@pytest_twisted.ensureDeferred
async def test_expired_nonce_is_refused_as_stale(raw: Any) -> None:
    port, peer = raw
    me = port.getHost().port
    bob, _ = bob_with_auth(lifetime=1.0)
    uri = f"sip:bob@127.0.0.1:{bob.port}"
    client = DigestClient("alice", PASSWORD)
    try:
        challenge = await exchange(port, peer, bob.port, options(bob.port, me))
        old = parse_challenge(challenge.headers.get_lines("www-authenticate")[0])
        assert not old.stale
        late = client.authorize(old, "OPTIONS", uri)
        await task.deferLater(reactor, 1.3, lambda: None)
        resp = await exchange(port, peer, bob.port, options(bob.port, me, late))
        assert resp.status == 401
        new = parse_challenge(resp.headers.get_lines("www-authenticate")[0])
        assert new.stale and new.nonce != old.nonce
        # the control: the same computation on the fresh nonce is accepted at once
        resp = await exchange(port, peer, bob.port,
                              options(bob.port, me, client.authorize(new, "OPTIONS", uri)))
        assert resp.status == 200
    finally:
        bob.close()
