"""Media layer micro-benchmarks: G.711 side by side with the stdlib's C audioop, RTP codec,
MediaStream packets per second (one core), tone detection, digest verification.

    python bench/bench_media.py [--seconds 0.5]

Prints one table; ratios are ours / reference (for throughput, > 1 means we are faster).
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from siplink.media import g711  # noqa: E402
from siplink.media.rtp import RtpPacket, SourceStatistics  # noqa: E402
from siplink.media.stream import MediaStream  # noqa: E402
from siplink.media.tone import ToneGenerator, detect_frequency, sine  # noqa: E402
from siplink.sip.digest import DigestClient, DigestServer  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = ap.parse_args()
    s = args.seconds
    frame = struct.pack("<160h", *(int(8000 * ((i * 37) % 101 - 50) / 50) for i in range(160)))
    ulaw = g711.ulaw_encode(frame)
    alaw = g711.alaw_encode(frame)
    rows: list[tuple[str, str, float, float | None, str]] = []

    def pair(name: str, ours: Callable[[], object], ref: Callable[[], object] | None,
             unit: str = "frames/s", ref_name: str = "audioop") -> None:
        a = rate(ours, s)
        b = rate(ref, s) if ref is not None else None
        rows.append((name, ref_name if ref else "-", a, b, unit))

    pair("PCMU encode 20 ms", lambda: g711.ulaw_encode(frame), lambda: audioop.lin2ulaw(frame, 2))
    pair("PCMU decode 20 ms", lambda: g711.ulaw_decode(ulaw), lambda: audioop.ulaw2lin(ulaw, 2))
    pair("PCMA encode 20 ms", lambda: g711.alaw_encode(frame), lambda: audioop.lin2alaw(frame, 2))
    pair("PCMA decode 20 ms", lambda: g711.alaw_decode(alaw), lambda: audioop.alaw2lin(alaw, 2))

    pkt = RtpPacket(0, 1, 160, 0x1234, ulaw, marker=True)
    raw = pkt.encode()
    pair("RTP encode", pkt.encode, None, "packets/s")
    pair("RTP decode", lambda: RtpPacket.decode(raw), None, "packets/s")
    stats = SourceStatistics(1, 8000, probation=0)
    seq = [0]

    def upd() -> None:
        seq[0] += 1
        stats.update(seq[0] & 0xFFFF, seq[0] * 160, seq[0] * 0.02)

    pair("RFC 3550 stats update", upd, None, "packets/s")

    # MediaStream: one stream sending to another, in virtual time, all work on one core
    a = MediaStream(source=ToneGenerator(440.0), remote=("127.0.0.1", 2), rng=random.Random(1))
    b = MediaStream(remote=("127.0.0.1", 1), rng=random.Random(2), max_record_seconds=1.0)
    a.start(0.0)
    b.start(0.0)
    t = [0.0]

    def step() -> None:
        t[0] += 0.02
        a.handle_timer(t[0])
        for d, _ in a.datagrams_to_send(t[0]):
            b.receive(d, t[0])

    pps = rate(step, s)
    rows.append(("MediaStream send+receive", "-", pps, None, "packets/s"))
    rows.append(("  = concurrent 50 pps streams", "-", pps / 50, None, "streams/core"))

    pcm = g711.ulaw_decode(g711.ulaw_encode(sine(440.0, 1.0)))
    pair("tone detect, 1 s of audio", lambda: detect_frequency(pcm), None, "runs/s")

    server = DigestServer("lab.test", lambda u, r: "secret", algorithms=("SHA-256",))
    client = DigestClient("alice", "secret")
    ch = server.challenge(0.0)
    nc = [0]

    def verify() -> None:
        nc[0] += 1
        auth = client.authorize(ch, "REGISTER", "sip:lab.test")
        assert server.verify(auth, "REGISTER", "sip:lab.test", 1.0).ok

    pair("digest SHA-256 build+verify", verify, None, "auths/s")

    print(f"{'measurement':34} {'reference':10} {'siplink':>14} {'reference':>14} {'ratio':>7}  unit")
    print("-" * 92)
    for name, ref_name, ours, ref, unit in rows:
        ratio = f"{ours / ref:7.2f}" if ref else "      -"
        ref_s = f"{ref:14,.0f}" if ref else f"{'-':>14}"
        print(f"{name:34} {ref_name:10} {ours:14,.0f} {ref_s} {ratio}  {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
