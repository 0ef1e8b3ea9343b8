"""Interop: SIPp's digest client (``-au``/``-ap``) against our DigestServer.

A tiny UDP responder in the test answers SIPp's REGISTER with a 401 challenge from
:class:`siplink.sip.digest.DigestServer`, then verifies the credentials SIPp computes and answers
200 (or 403 when they are wrong). SIP is parsed with a few local lines: only the headers
needed to build a response are read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from siplink.sip.digest import AuthResult, DigestServer
from tests.peers.process import PeerProcess, free_port, require_binary

SCENARIO = Path(__file__).resolve().parent.parent.parent / "shared" / "lab" / "sipp-register.xml"
# The scenario, inlined so the test also runs without ../shared (identical content).
SCENARIO_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="REGISTER with digest">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]:[remote_port]>;tag=[pid]reg[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[contact_port]>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]:[remote_port]>;tag=[pid]reg[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[contact_port]>
      Expires: 3600
      [authentication]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true"/>
</scenario>
"""


def parse_request(data: bytes) -> tuple[str, str, dict[str, list[str]]]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    method, uri, _ = lines[0].split(" ", 2)
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return method, uri, headers


class Registrar(protocol.DatagramProtocol):
    def __init__(self, server: DigestServer) -> None:
        self.server = server
        self.results: list[AuthResult] = []
        self.challenges = 0

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        method, uri, h = parse_request(data)
        now = reactor.seconds()
        extra: list[str] = []
        if "authorization" not in h:
            status = "401 Unauthorized"
            extra = [f"WWW-Authenticate: {v}" for v in self.server.challenges(now)]
            self.challenges += 1
        else:
            res = self.server.verify(h["authorization"][0], method, uri, now)
            self.results.append(res)
            if res.ok:
                status = "200 OK"
                extra = [f"Contact: {h['contact'][0]};expires=3600"]
            elif res.stale:
                status = "401 Unauthorized"
                extra = [f"WWW-Authenticate: {v}" for v in self.server.challenges(now, stale=True)]
            else:
                status = "403 Forbidden"
        to = h["to"][0] + ("" if "tag=" in h["to"][0] else ";tag=reg1")
        lines = [f"SIP/2.0 {status}", *(f"Via: {v}" for v in h["via"]),
                 f"From: {h['from'][0]}", f"To: {to}", f"Call-ID: {h['call-id'][0]}",
                 f"CSeq: {h['cseq'][0]}", *extra, "Content-Length: 0", "", ""]
        self.transport.write("\r\n".join(lines).encode(), addr)


def scenario_file() -> str:
    d = tempfile.mkdtemp(prefix="sipp-digest-")
    path = Path(d) / "register.xml"
    if SCENARIO.exists():
        shutil.copy(SCENARIO, path)
    else:
        path.write_text(SCENARIO_XML)
    return str(path)


@pytest_twisted.inlineCallbacks
def run_sipp(registrar: Registrar, user: str, password: str, calls: int):
    sipp = require_binary("sipp")
    port = free_port()
    listener = reactor.listenUDP(port, registrar, interface="127.0.0.1")
    sport, mport, cport = free_port(), free_port(span=4), free_port()
    peer = PeerProcess([
        sipp, f"127.0.0.1:{port}", "-sf", scenario_file(), "-s", user,
        "-au", user, "-ap", password,
        "-i", "127.0.0.1", "-p", str(sport), "-mi", "127.0.0.1", "-mp", str(mport),
        "-cp", str(cport), "-key", "contact_port", str(sport), "-m", str(calls), "-r", "10", "-l", "1", "-nostdin",
        "-timeout", "15", "-timeout_error", "-recv_timeout", "3000",
    ], name="sipp")
    try:
        peer.start()
        code = yield peer.wait_exit(20)
    finally:
        peer.stop()
        yield listener.stopListening()
    return code, peer.log()


@pytest.mark.peer
# SIPp 3.6.1 computes plain MD5 only (no -sess, no SHA-256), from the first challenge.
@pytest.mark.parametrize("qop", [("auth",), ("auth-int",), ()], ids=["auth", "auth-int", "rfc2069"])
@pytest_twisted.inlineCallbacks
def test_sipp_registers_with_digest(qop):
    server = DigestServer("127.0.0.1", lambda u, r: {"alice": "secret"}.get(u),
                          algorithms=("MD5",), qop=qop)
    reg = Registrar(server)
    code, log = yield run_sipp(reg, "alice", "secret", calls=3)
    assert code == 0, (reg.results, log[-3000:])
    assert reg.challenges == 3
    assert [r.ok for r in reg.results] == [True, True, True], reg.results
    assert all(r.username == "alice" for r in reg.results)


@pytest.mark.peer
@pytest_twisted.inlineCallbacks
def test_sipp_wrong_password_is_refused():
    server = DigestServer("127.0.0.1", lambda u, r: {"alice": "secret"}.get(u),
                          algorithms=("MD5",), qop=("auth",))
    reg = Registrar(server)
    code, log = yield run_sipp(reg, "alice", "not-the-password", calls=1)
    assert code != 0
    assert len(reg.results) == 1
    assert reg.results[0].reason == "wrong response"
