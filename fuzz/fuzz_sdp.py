"""Fuzz campaign: the SDP adapter (parse, serialize, offer/answer with ICE).

    python fuzz/fuzz_sdp.py --budget 1000000 --seed 1 [--engine atheris|mutate] [--seconds N]
    python fuzz/fuzz_sdp.py fuzz/crashes/sdp-*.bin          # replay saved inputs

The oracle is the property tests' (tests/test_sdp_fuzz.py, which bench/fuzz_sdp.py runs with
hypothesis; imported here, not copied): ``parse`` raises ``SdpError`` and nothing else; what
parses serializes and parses back to the same model; and answering it (``OfferAnswer`` with
ICE) either works -- one answer m= line per offer m= line, which round-trips too -- or raises
``SdpError``.  Seeds: tests/data/sdp and the SDP bodies of the SIP corpora.  The format-aware
mutation works on lines: drop, duplicate, swap, insert one of the property tests' tricky lines
or a line of another body, change one value (numbers, addresses, tokens), LF-only line ends.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, Target, main, read_dir  # noqa: E402

TOKENS = [b"v=0", b"o=", b"s=", b"c=IN IP4 ", b"c=IN IP6 ", b"t=0 0", b"m=audio ",
          b"m=video ", b" RTP/AVP ", b" RTP/SAVPF ", b" UDP/TLS/RTP/SAVPF ", b"a=rtpmap:",
          b"a=fmtp:", b"a=candidate:", b" typ host", b" typ srflx", b" typ relay", b" raddr ",
          b" rport ", b" tcptype ", b" generation ", b"a=ice-ufrag:", b"a=ice-pwd:",
          b"a=ice-lite", b"a=ice-options:trickle", b"a=end-of-candidates", b"a=rtcp:",
          b"a=rtcp-mux", b"a=remote-candidates:", b"a=sendonly", b"a=recvonly", b"a=inactive",
          b"a=ptime:", b"b=AS:", b"a=mid:", b"a=group:BUNDLE ", b"\r\n", b"\n", b" ", b"/",
          b":", b"0.0.0.0", b"::", b"127.0.0.1", b"65535", b"65536", b"4294967296", b"\xc3\xa9",
          b"\x00", b"\xff"]

VALUES = [b"0", b"1", b"-1", b"65535", b"65536", b"4294967295", b"4294967296", b"",
          b"99999999999999999999", b"127.0.0.1", b"::1", b"0.0.0.0", b"1.2.3", b"host.invalid",
          b"x", b"udp", b"UDP", b"tcp", b"host", b"srflx", b"relay", b"prflx", b"IN", b"IP4",
          b"IP6", b"RTP/AVP", b"PCMU/8000", b"telephone-event/8000", b"\xd9\xa3", b"a" * 300]


def sdp_mutate(rng: random.Random, data: bytes, others: list[bytes], tricky: list[bytes],
               lines_pool: list[bytes]) -> bytes:
    eol = b"\r\n" if b"\r\n" in data else b"\n"
    lines = data.split(eol)
    n = len(lines)
    op = rng.randrange(9)
    i = rng.randrange(3, n) if n > 3 and rng.random() < 0.9 else rng.randrange(n)
    if op == 0 and n > 1:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[i])
    elif op == 2 and n > 1:
        j = rng.randrange(n)
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        lines.insert(i, rng.choice(tricky))
    elif op == 4:
        lines.insert(i, rng.choice(lines_pool))
    elif op == 5:                                           # one value in a line
        parts = lines[i].split(b" ")
        k = rng.randrange(len(parts))
        head, sep, _ = parts[k].partition(b":") if k == 0 and b":" in parts[k] else (b"", b"", b"")
        parts[k] = (head + sep if sep else b"") + rng.choice(VALUES)
        lines[i] = b" ".join(parts)
    elif op == 6:                                           # line type letter
        if lines[i][:2].endswith(b"="):
            lines[i] = bytes([rng.choice(b"vosicbtrzkamux?")]) + lines[i][1:]
    elif op == 7:                                           # line ends
        return (b"\n" if eol == b"\r\n" else b"\r\n").join(lines)
    else:                                                   # a media section of another body
        other = rng.choice(others).replace(b"\r\n", b"\n").split(b"\n")
        ms = [k for k, ln in enumerate(other) if ln.startswith(b"m=")]
        if ms:
            k = rng.choice(ms)
            end = next((j for j in ms if j > k), len(other))
            lines[n:n] = other[k:end]
    return eol.join(lines)


def build() -> Target:
    from sdp import SdpError
    from tests import test_sdp_fuzz as props

    def run(data: bytes) -> None:
        sd = props.check(data)
        if sd is None:
            raise SdpError("refused")       # check() swallowed the SdpError: count it typed
        target.accept()
        props.answer(sd)

    seeds = read_dir(DATA / "sdp", ("*.sdp",))
    for msg in read_dir(DATA / "sip", ("*.msg",)) + read_dir(DATA / "rfc4475", ("*.dat",)):
        body = msg.partition(b"\r\n\r\n")[2]
        if body.startswith(b"v=0"):
            seeds.append(body)
    tricky = [t.encode() for t in props.TRICKY]
    pool = [ln.encode() for ln in props.CORPUS_LINES]
    target = Target("sdp", run, (SdpError,), seeds, TOKENS,
                    lambda rng, d: sdp_mutate(rng, d, seeds, tricky, pool), max_len=8192)
    return target


if __name__ == "__main__":
    sys.exit(main("sdp", build))
