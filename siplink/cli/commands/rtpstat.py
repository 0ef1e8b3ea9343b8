"""``siplink rtpstat FILE.pcap``: RTP streams in a capture, with RFC 3550 loss and jitter,
DTMF digits (RFC 4733) and the tone frequency heard in G.711 audio.

Like ``tshark -z rtp,streams`` plus what a call test wants to know. Every UDP datagram that
parses as RTP (version 2, not an RTCP packet type) is counted; streams are keyed by
source, destination and SSRC. ``--port`` keeps only datagrams to or from that port.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rtpstat", help="RTP streams in a pcap: loss, jitter, DTMF digits, tone frequency",
        description="Analyse the RTP streams in a classic pcap file: packets, RFC 3550 "
                    "loss and interarrival jitter, RFC 4733 DTMF digits, and the dominant "
                    "frequency of G.711 audio.",
    )
    p.add_argument("pcap", metavar="FILE.pcap", help="classic pcap capture (not pcapng)")
    p.add_argument("--port", type=int, default=None,
                   help="only datagrams to or from this UDP port")
    p.add_argument("--dtmf-pt", type=int, default=101, metavar="PT",
                   help="payload type of telephone-event (default 101)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def analyse(data: bytes, *, port: int | None = None, dtmf_pt: int = 101) -> list[dict[str, Any]]:
    """One dict per RTP stream in the pcap bytes (raises PcapError)."""
    from siplink.calltest.pcap import read_pcap
    from siplink.media.dtmf import DtmfError, DtmfReceiver
    from siplink.media.g711 import codec_by_payload_type
    from siplink.media.rtp import RtpError, RtpPacket, SourceStatistics, is_rtcp
    from siplink.media.tone import detect_frequency

    streams: dict[tuple[Any, ...], dict[str, Any]] = {}
    for d in read_pcap(data):
        if port is not None and port not in (d.src[1], d.dst[1]):
            continue
        if len(d.payload) < 12 or d.payload[0] >> 6 != 2 or is_rtcp(d.payload):
            continue
        try:
            pkt = RtpPacket.decode(d.payload)
        except RtpError:
            continue
        key = (d.src, d.dst, pkt.ssrc)
        s = streams.get(key)
        if s is None:
            s = streams[key] = {
                "src": f"{d.src[0]}:{d.src[1]}", "dst": f"{d.dst[0]}:{d.dst[1]}",
                "ssrc": f"0x{pkt.ssrc:08x}", "payload_types": [], "packets": 0,
                "start": d.time, "end": d.time, "max_jitter_ms": 0.0,
                "_stats": SourceStatistics(pkt.ssrc, 8000, probation=0),
                "_dtmf": DtmfReceiver(), "_digits": "", "_pcm": bytearray(),
            }
        s["packets"] += 1
        s["end"] = d.time
        if pkt.payload_type not in s["payload_types"]:
            s["payload_types"].append(pkt.payload_type)
        st = s["_stats"]
        valid = st.update_seq(pkt.sequence)
        if pkt.payload_type == dtmf_pt:
            try:
                s["_digits"] += "".join(x.digit for x in
                                        s["_dtmf"].receive(pkt.timestamp, pkt.payload, pkt.ssrc))
            except DtmfError:
                pass
            continue
        if valid:
            st.update_jitter(pkt.timestamp, d.time)
            s["max_jitter_ms"] = max(s["max_jitter_ms"], st.jitter / 8.0)
        codec = codec_by_payload_type(pkt.payload_type)
        if codec is not None and len(s["_pcm"]) < 2 * 8000 * 60:
            s["_pcm"] += codec.decode(pkt.payload)
    out = []
    for s in streams.values():
        st = s.pop("_stats")
        s["_digits"] += "".join(x.digit for x in s.pop("_dtmf").flush())
        pcm = bytes(s.pop("_pcm"))
        f = detect_frequency(pcm) if pcm else None
        out.append({
            **{k: v for k, v in s.items() if not k.startswith("_")},
            "duration_s": round(s["end"] - s["start"], 3),
            "expected": st.expected, "lost": st.lost,
            "jitter_ms": round(st.jitter / 8.0, 3),
            "max_jitter_ms": round(s["max_jitter_ms"], 3),
            "dtmf": s["_digits"],
            "tone_hz": round(f, 1) if f is not None else None,
        })
        for k in ("start", "end"):
            out[-1].pop(k)
    return out


def run(args: argparse.Namespace) -> int:
    from siplink.calltest.pcap import PcapError

    try:
        with open(args.pcap, "rb") as f:
            data = f.read()
        streams = analyse(data, port=args.port, dtmf_pt=args.dtmf_pt)
    except OSError as e:
        print(f"siplink rtpstat: {e}", file=sys.stderr)
        return EXIT_USAGE
    except PcapError as e:
        print(f"siplink rtpstat: {args.pcap}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"streams": streams}, indent=2))
    else:
        print(f"{'source':22} {'destination':22} {'SSRC':10} {'PT':>6} {'pkts':>6} "
              f"{'lost':>5} {'jitter':>7} {'max':>7} {'tone Hz':>8}  DTMF")
        for s in streams:
            pts = ",".join(str(p) for p in s["payload_types"])
            tone = f"{s['tone_hz']:.1f}" if s["tone_hz"] is not None else "-"
            print(f"{s['src']:22} {s['dst']:22} {s['ssrc']:10} {pts:>6} {s['packets']:6} "
                  f"{s['lost']:5} {s['jitter_ms']:7.2f} {s['max_jitter_ms']:7.2f} {tone:>8}  "
                  f"{s['dtmf'] or '-'}")
    if not streams:
        print("siplink rtpstat: no RTP streams found", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
