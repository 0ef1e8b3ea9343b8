#!/usr/bin/env python3
"""SIP codec benchmark: siplink side by side with the pure-Python SIP parsers on PyPI.

Same work for every parser: parse one message, then read what a transaction layer needs
(method, Call-ID, CSeq number and method, top Via branch and sent-by, From tag, To tag).
Corpus: an INVITE with an ICE SDP offer and its 200 OK (captured from baresip), a REGISTER
with Authorization, a small OPTIONS.  Also: serialize rates (parse once, serialize many)
where the parser can serialize.

    python bench/bench_sip_codec.py [--seconds 0.2] [--rounds 9]

Peers (bench extras, `pip install sipmessage sippy pyVoIP`): a missing one is reported and
left out of the table.  Figures are messages per second, best of --rounds rounds; each
round times every contender once, so load from other processes hits them alike; more and
shorter rounds give every contender more chances of a round without interference.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "data" / "sip"

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Alice <sip:alice@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
    b'Authorization: Digest username="alice", realm="example.com", '
    b'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:example.com", '
    b'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, '
    b'cnonce="0a4f113b", qop=auth, nc=00000001, opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n'
    b"User-Agent: siplink-bench\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
OPTIONS = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: <sip:carol@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def corpus() -> list[tuple[str, bytes]]:
    return [
        ("INVITE+SDP", (DATA / "baresip-invite-ice.msg").read_bytes()),
        ("200 OK+SDP", (DATA / "baresip-200-ice.msg").read_bytes()),
        ("REGISTER+auth", REGISTER),
        ("OPTIONS", OPTIONS),
    ]


Fields = tuple[Any, ...]
Work = Callable[[bytes], Fields]


# ------------------------------------------------------------------------ the contenders


def siplink_work() -> tuple[Work, Callable[[bytes], Callable[[], bytes]]]:
    from siplink.sip.message import Request, parse_message

    def work(raw: bytes) -> Fields:
        m = parse_message(raw)
        cseq = m.cseq
        via = m.via[0]
        method = m.method if isinstance(m, Request) else cseq.method
        return (method, m.call_id, cseq.number, cseq.method, via.branch, via.host, via.port,
                m.from_.tag, m.to.tag)

    def serializer(raw: bytes) -> Callable[[], bytes]:
        return parse_message(raw).serialize

    return work, serializer


def sipmessage_work() -> tuple[Work, None]:
    import sipmessage

    def work(raw: bytes) -> Fields:
        m = sipmessage.Message.parse(raw)
        cseq = m.cseq
        via = m.via[0]
        method = getattr(m, "method", None) or cseq.method
        return (method, m.call_id, cseq.sequence, cseq.method, via.parameters.get("branch"),
                via.host, via.port, m.from_address.parameters.get("tag"),
                m.to_address.parameters.get("tag"))

    return work, None


def sippy_work() -> tuple[Work, Callable[[bytes], Callable[[], bytes]]]:
    from sippy.SipRequest import SipRequest
    from sippy.SipResponse import SipResponse

    def parse(raw: bytes) -> Any:
        text = raw.decode()
        if text.startswith("SIP/"):
            return SipResponse(buf=text)
        return SipRequest(buf=text)

    def work(raw: bytes) -> Fields:
        m = parse(raw)
        number, cmethod = m.getHFBody("cseq").getCSeq()
        via = m.getHFBody("via")
        host, port = via.getTAddr()
        method = m.getMethod() if isinstance(m, SipRequest) else cmethod
        return (method, str(m.getHFBody("call-id")), number, cmethod, via.getBranch(), host, port,
                m.getHFBody("from").getTag(), m.getHFBody("to").getTag())

    def serializer(raw: bytes) -> Callable[[], bytes]:
        m = parse(raw)
        return lambda: str(m).encode()

    return work, serializer


def pyvoip_work() -> tuple[Work, None]:
    import pyVoIP
    import pyVoIP.VoIP  # noqa: F401 - the package needs this import first

    def work(raw: bytes) -> Fields:
        m = pyVoIP.SIP.SIPMessage(raw)
        h = m.headers
        cseq = h["CSeq"]
        via = h["Via"][0]
        method = getattr(m, "method", None) or cseq["method"]
        return (method, h["Call-ID"], int(cseq["check"]), cseq["method"], via["branch"],
                via["address"][0], via["address"][1], h["From"]["tag"], h["To"]["tag"])

    return work, None


CONTENDERS: list[tuple[str, Callable[[], tuple[Work, Any]]]] = [
    ("siplink", siplink_work),
    ("sipmessage", sipmessage_work),
    ("sippy", sippy_work),
    ("pyVoIP", pyvoip_work),
]


# ---------------------------------------------------------------------------- measuring


class Timing:
    """One thing to time: calls per second, best over the rounds it took part in."""

    def __init__(self, fn: Callable[[], object], seconds: float, weight: int = 1) -> None:
        self.fn = fn
        self.weight = weight          # messages per call (the mixed pass handles several)
        self.best = 0.0
        n = 16
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        self.n = max(16, int(n * seconds / max(dt, 1e-6)))

    def run(self) -> None:
        fn = self.fn
        t0 = time.perf_counter()
        for _ in range(self.n):
            fn()
        dt = time.perf_counter() - t0
        self.best = max(self.best, self.n * self.weight / dt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.2, help="time per measurement (s)")
    ap.add_argument("--rounds", type=int, default=9,
                    help="rounds; each round times every contender once (interleaved, so "
                         "load from other processes hits them alike); best round counts")
    args = ap.parse_args(argv)

    msgs = corpus()
    names = [n for n, _ in msgs]
    timings: dict[tuple[str, str, str], Timing] = {}   # (kind, contender, column)
    missing: list[str] = []
    order: list[str] = []
    for name, factory in CONTENDERS:
        try:
            work, serializer = factory()
        except ImportError as e:
            missing.append(f"{name} ({e})")
            continue
        usable: list[bytes] = []
        for label, raw in msgs:
            try:
                work(raw)                  # every contender must read the same values
            except Exception as e:  # noqa: BLE001 - a peer that cannot read this message
                missing.append(f"{name} on {label}: {type(e).__name__}: {str(e)[:60]}")
                continue
            usable.append(raw)
            timings[("parse", name, label)] = Timing(
                lambda raw=raw, work=work: work(raw), args.seconds)
            if serializer is not None:
                try:
                    timings[("serialize", name, label)] = Timing(serializer(raw), args.seconds)
                except Exception:  # noqa: BLE001
                    pass
        if not usable:
            continue
        order.append(name)

        def one_pass(work: Work = work, usable: list[bytes] = usable) -> None:
            for raw in usable:
                work(raw)
        # a parser that fails on some messages is timed on the mixed corpus it can read
        timings[("parse", name, "mixed")] = Timing(one_pass, args.seconds, len(usable))

    for _ in range(args.rounds):
        for t in timings.values():
            t.run()

    def get(kind: str, name: str, col: str) -> float:
        t = timings.get((kind, name, col))
        return float("nan") if t is None else t.best

    cols = names + ["mixed"]
    print(f"Python {sys.version.split()[0]}; parse + transaction fields, messages/s "
          f"(best of {args.rounds} interleaved rounds)")
    print(f"{'parser':<12}" + "".join(f"{c:>15}" for c in cols))
    for name in order:
        print(f"{name:<12}" + "".join(f"{get('parse', name, c):>15,.0f}" for c in cols))
    peers = [n for n in order if n != "siplink"]
    if "siplink" in order and peers:
        print("\nsiplink / peer (>1 means siplink is faster)")
        for name in peers:
            print(f"{'vs ' + name:<12}" + "".join(
                f"{get('parse', 'siplink', c) / get('parse', name, c):>14.2f}x" for c in cols))
        fastest = max(peers, key=lambda n: get("parse", n, "mixed"))
        print(f"fastest peer on the mixed corpus: {fastest}; siplink is "
              f"{get('parse', 'siplink', 'mixed') / get('parse', fastest, 'mixed'):.2f}x it")
    serial = [n for n in order if any(k[0] == "serialize" and k[1] == n for k in timings)]
    if serial:
        print("\nserialize (message already parsed), messages/s")
        print(f"{'serializer':<12}" + "".join(f"{c:>15}" for c in names))
        for name in serial:
            print(f"{name:<12}" + "".join(f"{get('serialize', name, c):>15,.0f}" for c in names))
    for m in missing:
        print(f"not measured: {m}")
    if missing:
        print("(nan = the parser raised on that message; its mixed figure uses the messages it reads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
