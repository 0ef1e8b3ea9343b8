"""The sans-I/O user-agent core in virtual time: two cores on a simulated wire (tests/core_net).

No reactor, no ``task.Clock``, no sockets: every test runs in milliseconds and is
deterministic (seeded ``random.Random``). Each checks a path of RFC 3261/3262/3264/3311/4028
on the messages the cores put on the wire.
"""

from __future__ import annotations

import pytest

from siplink.core.account import Account
from siplink.core.errors import CallState, EndCause
from siplink.core.events import (
    AnswerReceived,
    OfferRequested,
    ReofferReceived,
    RequestCompleted,
    ResolveHost,
)
from siplink.core.invite_session import InviteSession
from siplink.core.transaction import Target
from siplink.sip.digest import DigestServer
from siplink.sip.message import Request, Response
from tests.core_net import SDP, Net, Node, Wire


def pair(**bob_core: object) -> tuple[Net, Node, Node]:
    alice = Node("alice", ("127.0.0.1", 5061), seed=1)
    bob = Node("bob", ("127.0.0.1", 5062), seed=2)
    for k, v in bob_core.items():
        setattr(bob.core, k, v)
    return Net(alice, bob), alice, bob


def answer_at_once(node: Node) -> None:
    node.on_incoming = lambda s, now: node.core.answer(s, SDP, now)


def no_leaks(net: Net, *nodes: Node) -> None:
    net.run(net.now + 100)                     # every transaction timer runs out
    for n in nodes:
        left = {k: v for k, v in n.core.state_sizes().items() if v and k != "events"}
        assert not left, f"{n.name} keeps {left}"
        assert not {k: v for k, v in n.layer.state_sizes().items() if v}, n.name


def test_call_answer_and_bye() -> None:
    net, alice, bob = pair()
    answer_at_once(bob)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(1)
    assert s.state is CallState.CONFIRMED
    assert [w.label for w in net.log] == ["INVITE 1", "100 INVITE 1", "200 INVITE 1", "ACK 1"]
    incoming = bob.sessions()[0]
    assert incoming.state is CallState.CONFIRMED
    alice.core.hangup(s, net.now)
    net.run(2)
    assert s.cause is EndCause.LOCAL_BYE and incoming.cause is EndCause.REMOTE_BYE
    bye = net.sent(alice, "BYE")[0].message
    assert isinstance(bye, Request) and bye.cseq.number == 2      # §12.2.1.1
    no_leaks(net, alice, bob)


def test_the_bye_after_a_prack_has_a_higher_cseq() -> None:
    """RFC 3262 + §12.2.1.1: the PRACK used CSeq 2 in the early dialog; the BYE must be 3."""
    net, alice, bob = pair()

    def ring_reliably(s: InviteSession, now: float) -> None:
        assert s.rel100                       # our INVITE says Supported: 100rel
        bob.core.ring(s, now)
    bob.on_incoming = ring_reliably
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(0.5)
    prack = net.sent(alice, "PRACK")
    assert len(prack) == 1 and isinstance(prack[0].message, Request)
    rseq = net.sent(bob, "180")[0].message.headers.get("RSeq")
    assert prack[0].message.headers.get("RAck") == f"{rseq} 1 INVITE"
    bob.core.answer(bob.sessions()[0], SDP, net.now)
    net.run(1)
    alice.core.hangup(s, net.now)
    net.run(2)
    cseqs = [(w.message.cseq.number, w.message.method) for w in net.sent(alice)
             if isinstance(w.message, Request) and w.message.method != "ACK"]
    assert cseqs == [(1, "INVITE"), (2, "PRACK"), (3, "BYE")]
    assert [w.label for w in net.sent(bob, "200 BYE")] == ["200 BYE 3"]
    no_leaks(net, alice, bob)


@pytest.mark.parametrize("reinvite", [False, True], ids=["initial", "re-INVITE"])
def test_every_retransmitted_2xx_gets_the_ack_again(reinvite: bool) -> None:
    """§13.2.2.4: the UAC ACKs each 2xx retransmission; here the first ACK is lost, bob's
    2xx repeats (§13.3.1.4) and alice re-sends the same ACK, so the call never sees no-ack."""
    net, alice, bob = pair()
    answer_at_once(bob)
    s = alice.core.invite(bob.uri, SDP, net.now)
    cseq = 1
    if reinvite:
        net.run(1)
        cseq = 2
    lost: list[str] = []

    def drop(w: Wire) -> bool:
        if w.label == f"ACK {cseq}" and not lost:
            lost.append(w.label)
            return True
        return False
    net.drop = drop
    if reinvite:
        alice.core.send_reinvite(s, SDP, net.now)
        net.run(net.now + 0.05)
        ev = next(e for e in bob.events if isinstance(e, ReofferReceived))
        bob.core.answer_reoffer(ev.token, SDP, net.now)
    net.run(net.now + 3)
    acks = net.sent(alice, f"ACK {cseq}")
    oks = net.sent(bob, f"200 INVITE {cseq}")
    assert lost and len(oks) == 2 and len(acks) == 2
    assert acks[0].data == acks[1].data                       # the same ACK again
    net.run(net.now + 40)
    assert s.state is CallState.CONFIRMED and bob.sessions()[0].state is CallState.CONFIRMED


def test_late_offer_answer_comes_in_the_ack() -> None:
    """RFC 3261 §13.3.1.1 / RFC 3264: an INVITE without SDP gets our offer in the 2xx; the
    ACK's answer is reported; an ACK without one ends the session (BYE)."""
    net, alice, bob = pair()
    answer_at_once(bob)                  # bob's "answer" here is the offer (no SDP came)
    alice.core.invite(bob.uri, b"", net.now)
    net.run(1)
    incoming = bob.sessions()[0]
    ok = net.sent(bob, "200 INVITE")[0].message
    assert isinstance(ok, Response) and ok.body == SDP
    # alice's core does not make answers (its media would): its ACK has no body, so bob ends
    assert incoming.cause is EndCause.MEDIA
    assert net.sent(bob, "BYE")


def test_late_offer_ack_with_answer_is_applied() -> None:
    """The same late offer, with the answer in the ACK (made by hand here, as alice's media
    would): bob reports it (AnswerReceived) and the call stays up."""
    net, alice, bob = pair()
    answer_at_once(bob)
    net.drop = lambda w: w.label == "ACK 1" and not w.message.body
    s = alice.core.invite(bob.uri, b"", net.now)
    net.run(0.05)
    assert s.dialog is not None
    ack = s.dialog.create_request("ACK", via=alice.core.via("udp"), cseq=1, body=SDP)
    alice.layer.send_stateless(ack, Target("udp", *bob.address), net.now)
    net.run(1)
    incoming = bob.sessions()[0]
    assert any(isinstance(e, AnswerReceived) and e.sdp == SDP for e in bob.events)
    assert incoming.state is CallState.CONFIRMED and incoming.offer_in_2xx is None


def test_cancel_while_ringing() -> None:
    """§9.1: CANCEL after a provisional; the INVITE then gets 487, which is ACKed."""
    net, alice, bob = pair()
    bob.on_incoming = lambda s, now: bob.core.ring(s, now)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(0.5)
    alice.core.hangup(s, net.now)
    net.run(1)
    assert [w.label for w in net.sent(alice, "CANCEL")] == ["CANCEL 1"]
    assert s.cause is EndCause.CANCELLED and s.status == 487
    assert bob.sessions()[0].cause is EndCause.CANCELLED
    assert net.sent(alice, "ACK 1")                     # the 487's ACK (§17.1.1.3)
    no_leaks(net, alice, bob)


def test_no_cancel_before_any_provisional() -> None:
    """§9.1: a CANCEL MUST NOT be sent before a provisional; it goes once one arrives."""
    net, alice, bob = pair()
    bob.layer.auto_trying = False
    held: list[InviteSession] = []
    bob.on_incoming = lambda s, now: held.append(s)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(net.now + 0.05)
    alice.core.hangup(s, net.now)
    net.run(0.1)
    assert not net.sent(alice, "CANCEL")
    bob.core.ring(held[0], net.now)
    net.run(1)
    assert net.sent(alice, "CANCEL") and s.cause is EndCause.CANCELLED


def test_bye_in_an_early_dialog_terminates_the_invite_with_487() -> None:
    """§15.1.2: the UAS answers a BYE in the early dialog with 200 and the INVITE with 487."""
    net, alice, bob = pair()
    bob.on_incoming = lambda s, now: bob.core.ring(s, now)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(0.5)
    early = next(iter(s.early_dialogs.values()))
    alice.core.in_dialog(s, "BYE", net.now, dialog=early)
    net.run(1)
    assert net.sent(bob, "200 BYE") and net.sent(bob, "487 INVITE")
    assert bob.sessions()[0].cause is EndCause.REMOTE_BYE
    assert s.status == 487


def test_glare_both_get_491_and_retry_after_the_14_1_intervals() -> None:
    """§14.1: each side's re-INVITE crosses the other's and gets 491; the Call-ID owner
    (alice, the UAC) retries after 2.1-4 s, bob after 0-2 s: bob's retry wins."""
    net, alice, bob = pair()
    answer_at_once(bob)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(1)
    incoming = bob.sessions()[0]
    alice.core.send_reinvite(s, SDP, net.now)
    bob.core.send_reinvite(incoming, SDP, net.now)
    t0 = net.now
    net.run(net.now + 0.05)
    net.run(net.now + 0.2)
    assert net.sent(alice, "491") and net.sent(bob, "491")
    assert s.reinvite_retry_at is not None and incoming.reinvite_retry_at is not None
    assert 2.1 <= s.reinvite_retry_at - t0 <= 4.0 + 0.05
    assert 0.0 <= incoming.reinvite_retry_at - t0 <= 2.0 + 0.05
    net.run(net.now + 2.5)
    # bob's retry timer fired: his core asks for a fresh offer (token 0)
    asks = [e for e in bob.events if isinstance(e, OfferRequested) and e.token == 0]
    assert len(asks) == 1
    bob.core.send_reinvite(incoming, SDP, net.now)
    net.run(net.now + 0.05)
    ev = next(e for e in alice.events if isinstance(e, ReofferReceived))
    alice.core.answer_reoffer(ev.token, SDP, net.now)
    net.run(net.now + 1)
    assert net.sent(alice, "200 INVITE")
    assert s.state is incoming.state is CallState.CONFIRMED


def test_reinvite_without_sdp_gets_an_offer_and_the_next_reinvite_is_not_491() -> None:
    """A re-INVITE without SDP asks for our offer (OfferRequested); once its ACK came, a
    re-INVITE with an offer is answered normally (it used to get 491 for ever)."""
    net, alice, bob = pair()
    answer_at_once(bob)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(1)
    assert s.dialog is not None
    creq = alice.core.in_dialog(s, "INVITE", net.now)
    net.run(net.now + 0.05)
    ask = next(e for e in bob.events if isinstance(e, OfferRequested) and e.token)
    bob.core.answer_reoffer(ask.token, SDP, net.now)
    net.run(net.now + 0.05)
    done = next(e for e in alice.events if isinstance(e, RequestCompleted) and e.request is creq)
    assert done.response is not None and done.response.body == SDP
    ack = s.dialog.create_request("ACK", via=alice.core.via("udp"),
                                  cseq=done.response.cseq.number, body=SDP)
    alice.layer.send_stateless(ack, Target("udp", *bob.address), net.now)
    net.run(net.now + 0.5)
    assert bob.sessions()[0].offer_in_2xx is None
    alice.core.send_reinvite(s, SDP, net.now)
    net.run(net.now + 0.05)
    assert any(isinstance(e, ReofferReceived) for e in bob.events)


def test_session_timer_refreshes_and_expires() -> None:
    """RFC 4028: the refresher (alice, UAC) sends UPDATE at half the interval; when its
    refreshes stop, bob ends the session at interval - min(32, interval/3) with a BYE."""
    net, alice, bob = pair()
    alice.core.session_expires = 90
    answer_at_once(bob)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(1)
    assert s.session_timer is not None and s.session_timer.refresher == "uac"
    net.run(47)
    assert [round(w.time) for w in net.sent(alice, "UPDATE")] == [45]   # answered at ~0
    s.set_timer("session-refresh", None)          # alice's refreshes stop
    net.run(47 + 61)
    incoming = bob.sessions()[0]
    assert incoming.cause is EndCause.SESSION_EXPIRED
    assert s.cause is EndCause.REMOTE_BYE


def test_422_is_retried_with_min_se() -> None:
    net, alice, bob = pair(min_se=120)
    alice.core.session_expires = 90
    answer_at_once(bob)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(1)
    assert [w.label for w in net.sent(bob) if w.label[0].isdigit()][:3] == \
        ["100 INVITE 1", "422 INVITE 1", "100 INVITE 2"]
    assert s.state is CallState.CONFIRMED and s.invite is not None
    assert s.invite.headers.get("Session-Expires") == "120"


def test_digest_challenge_is_answered_with_the_accounts_credentials() -> None:
    net, alice, bob = pair()
    bob.core.authenticator = DigestServer("lab.test", lambda u, r: "secret" if u == "alice"
                                          else None)
    answer_at_once(bob)
    acc = Account(user="alice", domain="lab.test", password="secret")
    s = alice.core.invite(bob.uri, SDP, net.now, account=acc)
    net.run(1)
    statuses = [w.label for w in net.sent(bob) if w.label[0].isdigit()]
    assert "401 INVITE 1" in statuses and "200 INVITE 2" in statuses
    assert s.state is CallState.CONFIRMED


def test_host_names_wait_for_the_driver_and_fail_cleanly() -> None:
    net, alice, bob = pair()
    net.names = {"bob.test": "127.0.0.1"}
    answer_at_once(bob)
    s = alice.core.invite("sip:bob@bob.test:5062", SDP, net.now)
    assert not net.log
    net.run(1)
    assert any(isinstance(e, ResolveHost) and e.name == "bob.test" for e in alice.events)
    assert s.state is CallState.CONFIRMED
    nope = alice.core.invite("sip:bob@nowhere.test", SDP, net.now)
    net.run(2)
    assert nope.state is CallState.ENDED and nope.cause is EndCause.TRANSPORT
    assert "nowhere.test" in nope.reason


def test_no_answer_timer() -> None:
    net, alice, bob = pair(no_answer_timeout=5.0)
    bob.on_incoming = lambda s, now: bob.core.ring(s, now)
    s = alice.core.invite(bob.uri, SDP, net.now)
    net.run(6)
    assert net.sent(bob, "480 INVITE")
    assert s.cause is EndCause.REJECTED and s.status == 480
    assert bob.sessions()[0].cause is EndCause.TIMEOUT


def test_timer_b_ends_the_call_without_a_status() -> None:
    """A silent peer: timer B (64*T1) ends the INVITE; no final response, cause timeout."""
    alice = Node("alice", ("127.0.0.1", 5061))
    net = Net(alice)
    s = alice.core.invite("sip:nobody@127.0.0.1:5999", SDP, net.now)
    net.run(40)
    assert s.cause is EndCause.TIMEOUT and s.status is None
    # timer A doubles from T1 (§17.1.1.2); timer B gives up at 64*T1 = 32 s
    assert [w.time for w in net.sent(alice, "INVITE")] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    ended = next(e for e in alice.events if getattr(e, "state", None) is CallState.ENDED)
    assert ended is not None
    no_leaks(net, alice)


def test_same_seed_same_wire() -> None:
    """Deterministic: the same seeds give byte-identical messages."""
    runs = []
    for _ in range(2):
        net, alice, bob = pair()
        answer_at_once(bob)
        s = alice.core.invite(bob.uri, SDP, net.now)
        net.run(1)
        alice.core.hangup(s, net.now)
        net.run(2)
        runs.append([w.data for w in net.log])
    assert runs[0] == runs[1]
