"""`siplink options` and `siplink answer` driven from a shell, as users and SIPp tests do."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

from siplink.cli import main
from siplink.sip.message import Request, make_response, parse_message
from tests.peers.process import PeerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


def siplink(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siplink", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def test_options_against_answer_and_answer_prints_one_line_per_call() -> None:
    port = free_port()
    answer = PeerProcess([sys.executable, "-m", "siplink", "answer", "--listen",
                          f"127.0.0.1:{port}", "--calls", "1"], ready="listening on",
                         cwd=ROOT, name="siplink-answer")
    answer.start()
    try:
        res = siplink("options", f"sip:bob@127.0.0.1:{port}")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "SIP/2.0 200 OK"
        res = siplink("options", f"127.0.0.1:{port}", "--transport", "udp")
        assert res.returncode == 0
        # one call with the stack's own UAC, so `answer` prints its line and exits (--calls 1)
        code = subprocess.run([sys.executable, "-c", _CALL.format(port=port)], cwd=ROOT,
                              timeout=20).returncode
        assert code == 0
        assert answer.proc is not None and answer.proc.wait(10) == 0
    finally:
        answer.stop()
    lines = [ln for ln in answer.log().splitlines() if ln.startswith("call ")]
    assert len(lines) == 1 and "ended=remote-bye" in lines[0] and "answered" in lines[0]


_CALL = """
from twisted.internet import defer, task
from siplink.ua.useragent import UserAgent
async def run(reactor):
    ua = UserAgent(reactor, user="alice"); ua.listen()
    call = ua.call("sip:bob@127.0.0.1:{port}")
    await call.answered
    await call.hangup()
    await task.deferLater(reactor, 0.1, lambda: None)
    ua.close()
task.react(lambda r: defer.ensureDeferred(run(r)))
"""


def test_options_exit_codes_for_timeout_and_bad_usage() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        res = siplink("-v", "options", "--timeout", "1", f"sip:127.0.0.1:{port}")
        assert res.returncode == 3 and "no response" in res.stderr
        # -v traces every transmission: the request and its timer E retransmission(s)
        assert res.stderr.count(f"-> 127.0.0.1:{port} OPTIONS") >= 2
    finally:
        silent.close()
    assert main(["options", "sip:bad uri"]) == 2
    assert main(["options", "--bind", "nonsense", "sip:127.0.0.1:5"]) == 2
    assert main(["answer", "--listen", "no-port"]) == 2


def test_options_non_2xx_exits_1_and_420_for_unknown_require() -> None:
    responder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    responder.bind(("127.0.0.1", 0))
    responder.settimeout(10)

    def answer_404() -> None:
        data, addr = responder.recvfrom(65535)
        req = parse_message(data)
        assert isinstance(req, Request)
        responder.sendto(bytes(make_response(req, 404, to_tag="x")), addr)

    t = threading.Thread(target=answer_404)
    t.start()
    try:
        res = siplink("options", f"sip:nobody@127.0.0.1:{responder.getsockname()[1]}")
    finally:
        t.join(10)
        responder.close()
    assert res.returncode == 1 and res.stdout.strip() == "SIP/2.0 404 Not Found"

    port = free_port()
    answer = PeerProcess([sys.executable, "-m", "siplink", "answer", "--listen",
                          f"127.0.0.1:{port}"], ready="listening on", cwd=ROOT,
                         name="siplink-answer")
    answer.start()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        me = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};"
                  "branch=z9hG4bKcli;rport\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\n"
                  "Call-ID: cli1\r\nCSeq: 1 OPTIONS\r\nRequire: 100rel-not-here\r\n"
                  "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
        assert s.recv(65535).startswith(b"SIP/2.0 420 ")
        s.close()
        res = siplink("options", f"tel:+15551234@127.0.0.1:{port}")
        assert res.returncode == 2    # not a SIP URI: a usage error, nothing sent
    finally:
        answer.stop()
