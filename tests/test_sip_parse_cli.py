"""`siplink parse` and the temporary `siplink demo`, in-process and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from siplink.cli import main

ROOT = Path(__file__).resolve().parent.parent
RFC = ROOT / "tests" / "data" / "rfc4475"
SIP = ROOT / "tests" / "data" / "sip"


def test_parse_wellformed_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(RFC / "wsinv.dat"), str(SIP / "baresip-200-ice.msg")]) == 0
    out = capsys.readouterr().out
    assert "request  INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0" in out
    assert "cseq       9 INVITE" in out
    assert "response SIP/2.0 200 Answering" in out


def test_parse_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "--json", str(RFC / "esc01.dat"), str(RFC / "unreason.dat")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["ok"] for d in doc] == [True, True]
    req = doc[0]["message"]
    assert req["method"] == "INVITE" and req["uri_parts"]["user"] == "sips:user@example.com"
    assert req["contact"][0]["uri"] == "sip:caller@host5.example.net;lr;name=value%2541"
    assert req["via"][0]["params"] == {"branch": "z9hG4bKkdjuw"}
    assert doc[1]["message"]["status"] == 200 and doc[1]["message"]["reason"].startswith("= 2**3")


def test_parse_malformed_exit_1_names_file_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(RFC / "noreason.dat"), str(RFC / "badvers.dat"), str(RFC / "insuf.dat")]) == 1
    captured = capsys.readouterr()
    assert f"{RFC / 'badvers.dat'}: 505 unsupported SIP version" in captured.err
    assert f"{RFC / 'insuf.dat'}: 400 missing Call-ID header" in captured.err
    assert "noreason.dat" in captured.out and "noreason.dat" not in captured.err


def test_parse_missing_file_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path / "nope.msg")]) == 2
    assert "nope.msg: cannot read" in capsys.readouterr().err


def test_parse_subprocess_and_stdin() -> None:
    ok = subprocess.run([sys.executable, "-m", "siplink", "parse", "--json", "-"],
                        input=(SIP / "baresip-invite-ice.msg").read_bytes(), capture_output=True,
                        cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc[0]["message"]["cseq"] == {"number": 62350, "method": "INVITE"}
    bad = subprocess.run([sys.executable, "-m", "siplink", "parse", str(RFC / "mcl01.dat")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 1 and "more than one Content-Length header" in bad.stderr


def test_parse_whole_corpus_exit_code() -> None:
    invalid = [line.split("\t")[0] for line in (RFC / "INDEX.tsv").read_text().splitlines()
               if "\tinvalid\t" in line]
    valid = sorted({p.name for p in RFC.glob("*.dat")} - set(invalid))
    assert main(["parse", *[str(RFC / n) for n in valid]]) == 0
    for n in invalid:
        assert main(["parse", str(RFC / n)]) == 1, n


def test_parse_non_utf8_header_octets_are_printed_escaped(tmp_path: Path) -> None:
    data = (SIP / "baresip-invite-ice.msg").read_bytes().replace(b"baresip v1.0.0", b"bare\xff\xfesip")
    path = tmp_path / "latin.msg"
    path.write_bytes(data)
    env = {"PYTHONIOENCODING": "utf-8:strict", "PATH": "/usr/bin:/bin"}
    for extra in ([], ["--json"]):
        r = subprocess.run([sys.executable, "-m", "siplink", "parse", *extra, str(path)],
                           capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        assert "bare\\udcff\\udcfesip" in r.stdout
