"""Mutational fuzzing of the media and digest parsers, seeded from real packets.

    python bench/fuzz_media.py [--execs 200000] [--seconds 60] [--seed 1]

Targets: RTP decode, RTCP compound decode, telephone-event decode, MediaStream.receive,
Digest challenge and credentials parsing, DigestServer.verify, pcap reading. Seeds: SIPp's
G.711/RFC 2833 captures when installed, packets our own encoders produce, RFC 7616 headers.
The only allowed outcome for bad input is the target's typed error (RtpError, DtmfError,
DigestError, PcapError); anything else is a finding, printed with its input. Exit status 1
when there are findings.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from siplink.calltest.pcap import PcapError, PcapWriter, read_pcap  # noqa: E402
from siplink.media.dtmf import DtmfError, TelephoneEvent, event_series  # noqa: E402
from siplink.media.rtp import (  # noqa: E402
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtpError,
    RtpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    decode_rtcp,
    encode_rtcp,
)
from siplink.media.stream import MediaStream  # noqa: E402
from siplink.sip.digest import (  # noqa: E402
    DigestError,
    DigestServer,
    build_authorization,
    parse_challenge,
    parse_credentials,
)

SIPP_SHARE = Path("/usr/share/sip-tester")


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and b:                       # flip a bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:                     # set a byte to an interesting value
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x22, 0x2C])
        elif op == 2 and b:                     # truncate
            del b[rng.randrange(len(b)):]
        elif op == 3:                           # insert random bytes
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and len(b) > 2:            # duplicate a slice
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.randint(1, 16))
            b[i:i] = b[i:j]
        elif op == 5 and b:                     # delete a slice
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 8)]
    return bytes(b)


def seeds() -> dict[str, list[bytes]]:
    rtp = [RtpPacket(0, 1, 160, 7, b"\xff" * 160, marker=True).encode(),
           RtpPacket(101, 2, 320, 7, b"\x01\x8a\x03\x20", csrc=(1, 2), padding=4).encode()]
    dtmf = [t.event.encode() for t in event_series("#")]
    rb = ReportBlock(7, 25, -3, 70000, 42, 0x12345678, 65536)
    rtcp = [encode_rtcp([SenderReport(1, 2**63, 160, 10, 1600, (rb,)),
                         SourceDescription((SdesChunk(1, ((SDES_CNAME, b"a@b"),)),)),
                         Bye((1,), "bye")]),
            encode_rtcp([ReceiverReport(2, (rb, rb))])]
    pcaps: list[bytes] = []
    if SIPP_SHARE.exists():
        for f in sorted(SIPP_SHARE.glob("*.pcap"))[:4]:
            data = f.read_bytes()
            pcaps.append(data[:4000])
            rtp += [d.payload for d in read_pcap(data)[:5]]
    import io
    buf = io.BytesIO()
    w = PcapWriter(buf)
    w.write_udp(rtp[0], ("127.0.0.1", 1), ("127.0.0.1", 2), 1.0)
    w.write_udp(rtcp[0], ("::1", 1), ("::1", 2), 2.0)
    pcaps.append(buf.getvalue())
    chal = [b'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            b'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            b'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
            b'Digest realm="a", nonce="b", stale=TRUE, algorithm=MD5-sess, qop="auth"']
    cred = [build_authorization(parse_challenge(c.decode()), "INVITE", "sip:b@a", "u", "p",
                                body=b"x").encode() for c in chal]
    return {"rtp": rtp, "rtcp": rtcp, "dtmf": dtmf, "pcap": pcaps, "challenge": chal,
            "credentials": cred}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--execs", type=int, default=200_000, help="inputs per target, at most")
    ap.add_argument("--seconds", type=float, default=60.0, help="time per target, at most")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    s = seeds()
    server = DigestServer("a", lambda u, r: "p", algorithms=("MD5", "SHA-256"),
                          qop=("auth", "auth-int"), secret=b"k" * 32)
    real = server.challenge(0.0)
    s["credentials"].append(build_authorization(parse_challenge(real), "INVITE", "sip:b@a", "u",
                                                "p").encode())
    stream = MediaStream(rng=random.Random(1))
    stream.start(0.0)

    def text(f: Callable[[str], object]) -> Callable[[bytes], object]:
        return lambda d: f(d.decode("latin-1"))

    targets: list[tuple[str, str, Callable[[bytes], object], tuple[type[Exception], ...]]] = [
        ("RtpPacket.decode", "rtp", RtpPacket.decode, (RtpError,)),
        ("decode_rtcp", "rtcp", decode_rtcp, (RtpError,)),
        ("TelephoneEvent.decode", "dtmf", TelephoneEvent.decode, (DtmfError,)),
        ("MediaStream.receive (RTP)", "rtp", lambda d: stream.receive(d, 1.0), ()),
        ("MediaStream.receive (RTCP)", "rtcp", lambda d: stream.receive(d, 1.0), ()),
        ("parse_challenge", "challenge", text(parse_challenge), (DigestError,)),
        ("parse_credentials", "credentials", text(parse_credentials), (DigestError,)),
        ("DigestServer.verify", "credentials",
         text(lambda v: server.verify(v, "INVITE", "sip:b@a", 1.0)), ()),
        ("read_pcap", "pcap", read_pcap, (PcapError,)),
    ]
    findings = 0
    print(f"{'target':30} {'execs':>10} {'typed errors':>13} {'findings':>9} {'execs/s':>9}")
    print("-" * 76)
    for name, corpus, fn, allowed in targets:
        pool = list(s[corpus])
        n = typed = bad = 0
        t0 = time.perf_counter()
        deadline = t0 + args.seconds
        while n < args.execs and (n % 256 or time.perf_counter() < deadline):
            data = mutate(rng.choice(pool), rng)
            n += 1
            try:
                fn(data)
                if len(pool) < 2000 and rng.random() < 0.01:
                    pool.append(data)           # keep some inputs that parse, to go deeper
            except allowed:
                typed += 1
            except Exception as e:  # noqa: BLE001 - this is what we are looking for
                bad += 1
                if bad <= 3:
                    print(f"  FINDING in {name}: {type(e).__name__}: {e} input={data!r:.200}")
        findings += bad
        el = time.perf_counter() - t0
        print(f"{name:30} {n:10,} {typed:13,} {bad:9} {n / el:9,.0f}")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
