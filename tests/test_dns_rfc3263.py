"""Locating SIP servers by DNS (RFC 3263), checked from the RFC text.

The procedure (siplink/dns/rfc3263.py) is checked on tables of records; the whole path
(twisted.names -> the UA -> the transport) against a real DNS server, dnsmasq, started on a
free loopback port with the records of a ``.test`` zone (tests/peers/dnsmasq.py): only that
server is asked, only for names in the zone.  The SIP peers are siplink answer (subprocess) and
raw sockets (tests/wire.py).
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from siplink.dns.rfc3263 import (
    LocateError,
    NaptrRecord,
    SrvRecord,
    locate,
    order_naptr,
    order_srv,
)
from tests.peers.dnsmasq import Dnsmasq
from tests.peers.process import free_port
from tests.wire import HOST, Answerer, Caller, SipPeer, new_tag, sdp

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parent.parent


class Table:
    """Lookups from a dict of records; counts the questions."""

    def __init__(self, naptr=None, srv=None, hosts=None) -> None:  # type: ignore[no-untyped-def]
        self.n = naptr or {}
        self.s = srv or {}
        self.h = hosts or {}
        self.asked: list[str] = []

    async def naptr(self, name: str) -> list[NaptrRecord]:
        self.asked.append(f"NAPTR {name}")
        return self.n.get(name, [])

    async def srv(self, name: str) -> list[SrvRecord]:
        self.asked.append(f"SRV {name}")
        return self.s.get(name, [])

    async def addresses(self, name: str) -> list[tuple[str, str]]:
        self.asked.append(f"A {name}")
        return [(a, "AAAA" if ":" in a else "A") for a in self.h.get(name, [])]


def run(coro):  # type: ignore[no-untyped-def]
    """Drive a coroutine whose awaits never block (Table lookups) to its result."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise AssertionError("the coroutine waited")


def where(targets):  # type: ignore[no-untyped-def]
    return [(t.transport, t.address, t.port) for t in targets]


# ----------------------------------------------------------------------------- the procedure


def test_numeric_host_and_explicit_port_skip_naptr_and_srv() -> None:
    """§4.1: "If the TARGET was not a numeric IP address, but a port is present in the URI,
    the client SHOULD use UDP" (TLS for SIPS); a numeric host needs no lookup at all. §4.2:
    with a port, "the client performs an A or AAAA record lookup of the domain name"."""
    t = Table(hosts={"sip.example.test": ["192.0.2.1"]})
    assert where(run(locate("192.0.2.9", None, None, False, t, random.Random(1)))) == \
        [("udp", "192.0.2.9", 5060)]
    assert where(run(locate("192.0.2.9", None, None, True, t, random.Random(1)))) == \
        [("tls", "192.0.2.9", 5061)]
    assert t.asked == []
    assert where(run(locate("sip.example.test", 5080, None, False, t, random.Random(1)))) == \
        [("udp", "192.0.2.1", 5080)]
    assert t.asked == ["A sip.example.test"]


def test_transport_param_uses_its_srv_then_the_address() -> None:
    """§4.1 "If the URI specifies a transport protocol in the transport parameter, that
    transport protocol SHOULD be used"; §4.2: SRV of ``_sip._tcp`` ... and with no SRV
    record, A/AAAA of the name with the default port."""
    t = Table(srv={"_sip._tcp.example.test": [SrvRecord(10, 0, 5090, "s.example.test")]},
              hosts={"s.example.test": ["192.0.2.5"], "example.test": ["192.0.2.6"]})
    assert where(run(locate("example.test", None, "tcp", False, t, random.Random(1)))) == \
        [("tcp", "192.0.2.5", 5090)]
    assert where(run(locate("example.test", None, "udp", False, t, random.Random(1)))) == \
        [("udp", "192.0.2.6", 5060)]


def test_naptr_order_preference_and_unsupported_services() -> None:
    """§4.1: NAPTR records "are sorted by order and then preference" (RFC 3403); only the
    services of transports we support; for a SIPS URI only the SIPS+ services."""
    recs = [NaptrRecord(20, 10, "S", "SIP+D2U", "", "_sip._udp.e.test"),
            NaptrRecord(10, 20, "S", "SIP+D2T", "", "_sip._tcp.e.test"),
            NaptrRecord(10, 10, "S", "SIP+D2X", "", "_sip._x.e.test"),
            NaptrRecord(10, 30, "S", "SIPS+D2T", "", "_sips._tcp.e.test"),
            NaptrRecord(5, 5, "A", "SIP+D2U", "", "weird.e.test")]
    assert [tp for tp, _ in order_naptr(recs, ("udp", "tcp", "tls"), False)] == \
        ["tcp", "tls", "udp"]
    assert [tp for tp, _ in order_naptr(recs, ("udp", "tcp", "tls"), True)] == ["tls"]
    assert [tp for tp, _ in order_naptr(recs, ("udp",), False)] == ["udp"]


def test_no_naptr_probes_srv_per_transport_then_a() -> None:
    """§4.1: "If no NAPTR records are found, the client constructs SRV queries for those
    transport protocols it supports"; none either: UDP (TLS for SIPS) to the A/AAAA
    address on the default port."""
    t = Table(srv={"_sip._tcp.e.test": [SrvRecord(1, 0, 6000, "t.e.test")]},
              hosts={"t.e.test": ["192.0.2.7"], "e.test": ["192.0.2.8"], "f.test": ["::1"]})
    assert where(run(locate("e.test", None, None, False, t, random.Random(1)))) == \
        [("tcp", "192.0.2.7", 6000)]
    assert "SRV _sip._udp.e.test" in t.asked
    assert where(run(locate("f.test", None, None, True, t, random.Random(1)))) == \
        [("tls", "::1", 5061)]
    with pytest.raises(LocateError, match="no NAPTR, SRV, A or AAAA"):
        run(locate("nothing.test", None, None, False, t, random.Random(1)))


def test_srv_priority_then_weighted_selection() -> None:
    """RFC 2782: lowest priority first; within one priority "the probability of selecting
    a record is proportional to its weight": over many draws a 3:1 weight split is seen
    about 3:1, and a weight-0 record is picked first only rarely."""
    recs = [SrvRecord(20, 0, 1, "backup"), SrvRecord(10, 75, 2, "big"),
            SrvRecord(10, 25, 3, "small"), SrvRecord(10, 0, 4, "zero")]
    rng = random.Random(7)
    firsts = {"big": 0, "small": 0, "zero": 0}
    for _ in range(4000):
        out = order_srv(recs, rng)
        assert out[-1].target == "backup" and len(out) == 4
        firsts[out[0].target] += 1
    assert 2.5 < firsts["big"] / firsts["small"] < 3.5, firsts
    assert firsts["zero"] < 80, firsts
    assert order_srv([SrvRecord(1, 0, 0, ".")], rng) == []    # "." : no service here


# ----------------------------------------------------------------------------- real DNS


def siplink(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siplink", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def answerer() -> Iterator[Answerer]:
    a = Answerer(transports=("udp", "tcp"))
    a.start()
    yield a
    a.stop()


def test_resolve_prints_the_ordered_targets(tmp_path: Path) -> None:
    """``siplink resolve`` shows what §4 gives, in order, with the records each came from;
    exit 1 for a name without records, 3 when the DNS server never answers (within
    ``[sip] dns_timeout_s``), never a traceback."""
    with Dnsmasq(naptr=[("example.test", 10, 10, "SIP+D2T", "_sip._tcp.example.test"),
                        ("example.test", 20, 10, "SIP+D2U", "_sip._udp.example.test")],
                 srv=[("_sip._tcp.example.test", "sip1.example.test", 5072, 10, 60),
                      ("_sip._udp.example.test", "sip2.example.test", 5071, 20, 60),
                      ("_sip._udp.example.test", "sip1.example.test", 5070, 10, 60)],
                 hosts=[("sip1.example.test", "127.0.0.1", "::1"),
                        ("sip2.example.test", "127.0.0.2")]) as dns:
        r = siplink("resolve", "sip:example.test", "--dns", dns.server)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert [line.split("  (")[0] for line in lines] == [
            "1. tcp 127.0.0.1:5072", "2. tcp [::1]:5072", "3. udp 127.0.0.1:5070",
            "4. udp [::1]:5070", "5. udp 127.0.0.2:5071"], r.stdout
        assert "NAPTR SIP+D2T -> SRV _sip._tcp.example.test -> sip1.example.test A" in lines[0]
        r = siplink("resolve", "sip:example.test;transport=udp", "--dns", dns.server, "--json")
        import json
        data = json.loads(r.stdout)
        assert [(t["transport"], t["port"]) for t in data["targets"]] == \
            [("udp", 5070), ("udp", 5070), ("udp", 5071)], r.stdout
        r = siplink("resolve", "sip:nothing.example.test", "--dns", dns.server)
        assert r.returncode == 1 and "no NAPTR, SRV, A or AAAA" in r.stderr, r
        assert all(".test" in q for q in dns.queries()), dns.queries()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text("[sip]\ndns_timeout_s = 1.0\n")
        t0 = time.monotonic()
        r = siplink("-c", str(cfg), "resolve", "sip:example.test", "--dns",
                    f"{HOST}:{silent.getsockname()[1]}")
        assert r.returncode == 3 and "no answer within 1 s" in r.stderr, r
        assert time.monotonic() - t0 < 10
        assert "Traceback" not in r.stderr
    finally:
        silent.close()


def test_options_to_a_domain_follows_naptr_srv_and_fails_over(answerer: Answerer) -> None:
    """§4.1/§4.2: a request to ``sip:example.test`` goes where NAPTR -> SRV -> A say (here
    TCP first by NAPTR order).  §4.3: "If a failure occurs ... the client SHOULD create a
    new request, identical to the previous, but with a different value of the Via branch ID
    ... to the next element": the first SRV target (priority 10) refuses the TCP connection,
    the request goes on to the second (priority 20), siplink answer, and gets 200."""
    dead = free_port(HOST)
    with Dnsmasq(naptr=[("example.test", 10, 10, "SIP+D2T", "_sip._tcp.example.test")],
                 srv=[("_sip._tcp.example.test", "dead.example.test", dead, 10, 0),
                      ("_sip._tcp.example.test", "live.example.test", answerer.port, 20, 0)],
                 hosts=[("dead.example.test", HOST), ("live.example.test", HOST)]) as dns:
        r = siplink("-v", "options", "sip:example.test", "--dns", dns.server,
                    "--timeout", "10")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("SIP/2.0 200"), r.stdout
        assert f"{HOST}:{answerer.port} OPTIONS" in r.stderr, r.stderr
        log = answerer.log()
        assert "OPTIONS sip:example.test" in log, log


def test_503_moves_the_request_to_the_next_target(answerer: Answerer) -> None:
    """§4.3: "if a 503 (Service Unavailable) response is received ... the client SHOULD
    try the next element": the UDP SRV target of priority 10 answers 503, the next one
    (siplink answer) 200; the retry is a new transaction (new branch)."""
    with SipPeer("udp") as busy, \
            Dnsmasq(srv=[("_sip._udp.example.test", "busy.example.test", busy.port, 10, 0),
                         ("_sip._udp.example.test", "live.example.test", answerer.port, 20,
                          0)],
                    hosts=[("busy.example.test", HOST), ("live.example.test", HOST)]) as dns:
        proc = subprocess.Popen([sys.executable, "-m", "siplink", "options",
                                 "sip:example.test;transport=udp", "--dns", dns.server,
                                 "--timeout", "10"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            req = busy.request_in("OPTIONS", timeout=10)
            busy.reply(req, 503, "Service Unavailable", to_tag=new_tag())
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
        assert proc.returncode == 0 and out.startswith("SIP/2.0 200"), out + err
        assert "OPTIONS sip:example.test" in answerer.log()


def test_in_dialog_requests_go_to_a_contact_named_by_dns(tmp_path: Path) -> None:
    """RFC 3263 §4 applies to every request, also in a dialog: the 2xx's Contact (the remote
    target, RFC 3261 §12.1.2) names a host of the zone; the ACK and the BYE reach the address
    its A record gives (the test's socket), with the Request-URI still the name."""
    with SipPeer("udp") as uas, \
            Dnsmasq(hosts=[("uas.example.test", HOST)]) as dns:
        c = Caller(f"sip:bob@{HOST}:{uas.port}", "--no-ice", "--listen", f"{HOST}:0",
                   "--duration", "0.5", "--timeout", "10", "--dns", dns.server)
        try:
            inv = uas.request_in("INVITE", timeout=10)
            tag = new_tag()
            contact = f"<sip:bob@uas.example.test:{uas.port}>"
            uas.reply(inv, 200, to_tag=tag, headers=[("Contact", contact)],
                      body=sdp(port=uas.port + 2))
            ack = uas.request_in("ACK", timeout=10)
            assert ack.uri == f"sip:bob@uas.example.test:{uas.port}", ack.text()
            bye = uas.request_in("BYE", timeout=10)
            assert bye.uri == f"sip:bob@uas.example.test:{uas.port}", bye.text()
            uas.reply(bye, 200)
            assert c.wait(20) == 0, c.log()
        finally:
            c.stop()
        assert any("uas.example.test" in q for q in dns.queries()), dns.queries()


@pytest_twisted.ensureDeferred
async def test_a_silent_dns_server_delays_only_the_requests_that_wait_on_it(
        answerer: Answerer) -> None:
    """The lookups are asynchronous (twisted.names): while a request waits on a DNS server
    that never answers, a request to a numeric address goes out and completes; the waiting
    one fails after the DNS timeout with a clear error (SipError naming the lookup)."""
    from siplink.core.errors import SipError
    from siplink.ua.useragent import UserAgent

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    ua = UserAgent(reactor, host=HOST, dns_servers=[silent.getsockname()],
                   dns_timeout=1.5)
    ua.listen()
    try:
        t0 = reactor.seconds()
        errors: list[BaseException] = []
        named = ua.request("OPTIONS", "sip:example.test")
        named.addErrback(lambda f: errors.append(f.value))
        numeric = await ua.request("OPTIONS", f"sip:bob@{HOST}:{answerer.port}")
        assert numeric.status == 200
        assert reactor.seconds() - t0 < 1.0          # not held behind the silent lookup
        await named
        assert len(errors) == 1 and isinstance(errors[0], SipError), errors
        assert "no answer within 1.5 s" in errors[0].reason, errors[0].reason
        assert 1.4 <= reactor.seconds() - t0 < 5
    finally:
        ua.close()
        silent.close()
        await defer.succeed(None)


@pytest_twisted.ensureDeferred
async def test_answers_are_cached_for_their_ttl(answerer: Answerer) -> None:
    """Answers are kept for their TTL (60 s here): a second request to the same name asks
    the server again for none of the records it had.  (Names and types without records
    come back REFUSED from dnsmasq, with no SOA: RFC 2308 gives them no TTL to be kept
    for, so they are asked again.)"""
    from siplink.ua.useragent import UserAgent

    with Dnsmasq(srv=[("_sip._udp.example.test", "live.example.test", answerer.port, 10, 0)],
                 hosts=[("live.example.test", HOST)], ttl=60) as dns:
        ua = UserAgent(reactor, host=HOST, dns_servers=[dns.addr])
        ua.listen()
        try:
            r1 = await ua.request("OPTIONS", "sip:example.test")
            r2 = await ua.request("OPTIONS", "sip:example.test")
            assert (r1.status, r2.status) == (200, 200)
            asked = dns.queries()
            for q in ("query[SRV] _sip._udp.example.test", "query[A] live.example.test"):
                assert sum(q in line for line in asked) == 1, asked
        finally:
            ua.close()


@pytest.mark.parametrize("cert_name, ok", [("example.test", True),
                                           ("sips1.example.test", False)],
                         ids=["domain", "srv-target"])
@pytest_twisted.ensureDeferred
async def test_tls_via_srv_checks_the_certificate_against_the_uri_domain(
        cert_name: str, ok: bool) -> None:
    """RFC 5922 §4 (and RFC 3263 §4.2): ``sips:example.test`` located through SRV
    ``_sips._tcp.example.test`` -> ``sips1.example.test``: the server must prove the URI's
    domain, ``example.test``; a certificate for the SRV target only does not (an attacker
    who can forge the SRV answer could point it at a host of their own)."""
    from twisted.internet import ssl

    from tests.test_security_tls import alice, bob_on_tls, self_signed

    cert = self_signed(cert_name)
    bob, seen = bob_on_tls(cert)
    tls_port = bob.port
    with Dnsmasq(srv=[("_sips._tcp.example.test", "sips1.example.test", tls_port, 10, 0)],
                 hosts=[("sips1.example.test", HOST)]) as dns:
        a = alice()
        a.dns_servers = [dns.addr]
        a.transport.tls_trust_root = ssl.Certificate(cert.original)
        try:
            d = a.request("OPTIONS", "sips:example.test")
            d.addTimeout(10 if ok else 3, reactor)
            if ok:
                resp = await d
                assert resp.status == 200 and [r.method for r in seen] == ["OPTIONS"]
            else:
                with pytest.raises(Exception):  # noqa: B017 - the TLS refusal
                    await d
                assert seen == []
        finally:
            a.close()
            bob.close()


class FakeDns:
    """A DNS server of our own for answers dnsmasq will not give: a CNAME loop, a malformed
    message.  Answers on a loopback UDP port, in a thread."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def server(self) -> str:
        return f"{HOST}:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        from twisted.names import dns

        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(2048)
            except OSError:
                continue
            q = dns.Message()
            q.fromStr(data)
            name = q.queries[0].name.name.decode()
            if name.startswith("garbage"):
                self.sock.sendto(data[:2] + b"\x81\x80\xff\xff" + b"junk", addr)
                continue
            r = dns.Message(id=q.id, answer=1, auth=1, rCode=dns.OK)
            r.queries = q.queries
            if name.startswith("loop"):
                r.answers = [
                    dns.RRHeader(b"loop1.test", dns.CNAME, payload=dns.Record_CNAME(b"loop2.test")),
                    dns.RRHeader(b"loop2.test", dns.CNAME, payload=dns.Record_CNAME(b"loop1.test"))]
            self.sock.sendto(r.toStr(), addr)

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_bad_dns_answers_give_clear_errors_or_the_next_target(tmp_path: Path) -> None:
    """Issue 13 "bad input": an SRV target of ``.`` (RFC 2782: "the service is decidedly
    not available at this domain") is skipped, a NAPTR with a regexp and no replacement is
    not a SIP server record (RFC 3263 §4.1 uses replacement only), a CNAME loop and a
    malformed answer end in an error naming the lookup, each within the DNS timeout, with
    exit 1 or 3 and never a traceback."""
    with Dnsmasq(srv=[("_sip._udp.nosvc.test", ".", 0, 0, 0)],
                 naptr=[("rx.test", 10, 10, "E2U+sip", "")],
                 hosts=[("nosvc.test", "127.0.0.9")]) as dns:
        r = siplink("resolve", "sip:nosvc.test;transport=udp", "--dns", dns.server)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("1. udp 127.0.0.9:5060  (A)"), r.stdout   # no "." target
        r = siplink("resolve", "sip:rx.test", "--dns", dns.server)
        assert r.returncode == 1 and "no NAPTR, SRV, A or AAAA" in r.stderr, r
    fake = FakeDns()
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text("[sip]\ndns_timeout_s = 2.0\n")
        for uri in ("sip:loop1.test:5060", "sip:garbage.test:5060"):
            t0 = time.monotonic()
            r = siplink("-c", str(cfg), "resolve", uri, "--dns", fake.server)
            assert r.returncode in (1, 3), (uri, r)
            assert "siplink resolve: " in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert time.monotonic() - t0 < 15
    finally:
        fake.close()
