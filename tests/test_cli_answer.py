"""`siplink answer` answers with ICE by default: `siplink call` and it agree on a host pair."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.peers.process import PeerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_call_to_answer_negotiates_ice_and_media_flows() -> None:
    port = free_port()
    answer = PeerProcess([sys.executable, "-m", "siplink", "answer", "--listen",
                          f"127.0.0.1:{port}", "--calls", "1", "--tone", "440"],
                         ready="listening on", cwd=ROOT, name="siplink-answer")
    answer.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "siplink", "call", f"sip:bob@127.0.0.1:{port}",
             "--duration", "2", "--expect-ice", "host", "--expect-media", "1", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        result = json.loads(out.stdout)
        assert result["ice"]["used"] is True and result["ice"]["state"] == "connected"
        assert result["ice"]["local_type"] == "host" and result["ice"]["remote_type"] == "host"
        assert result["rtp"]["received"] >= 40 and result["rtp"]["sent"] >= 40
        assert answer.proc is not None and answer.proc.wait(15) == 0
        line = answer.wait_for(r"call \S+ from sip:\S+ answered ended=\S+ duration=\S+ (ice=\S+)")
        assert line.group(1) == "ice=host->host", answer.log()
    finally:
        answer.stop()


def test_answer_static_media_for_signalling_load() -> None:
    port = free_port()
    answer = PeerProcess([sys.executable, "-m", "siplink", "answer", "--listen",
                          f"127.0.0.1:{port}", "--calls", "1", "--media", "static"],
                         ready="listening on", cwd=ROOT, name="siplink-answer")
    answer.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "siplink", "call", f"sip:bob@127.0.0.1:{port}",
             "--duration", "0.5", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        result = json.loads(out.stdout)
        assert result["status"] == 200 and result["ice"]["used"] is False, out.stdout
        assert answer.proc is not None and answer.proc.wait(15) == 0
        assert re.search(r"answered ended=\S+ duration=\S+\n", answer.log()), answer.log()
    finally:
        answer.stop()
