"""Media interop with a real user agent: baresip calls a test answerer whose SDP points at
our MediaStream (plain RTP on loopback, no ICE: that is the lead's integration test).

baresip sends its sine tone (ausine, 440 Hz) as PCMU; we send a 1000 Hz tone and RFC 4733
DTMF back. Checked independently on both sides: we detect baresip's tone, baresip's own
recording of what it decoded (sndfile) carries our tone, baresip reports our DTMF keys, and
its packet counters match ours.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import tempfile
import time
import wave
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor, task

from ice.trace import Trace
from siplink.media.driver import RtpProtocol
from siplink.media.rtp import decode_rtcp, is_rtcp
from siplink.media.stream import MediaStream, RemoteReport
from siplink.media.tone import ToneGenerator, detect_frequency
from tests.peers.process import PeerProcess, free_port, require_binary
from tests.test_digest_sipp_invite import parse

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]

CONFIG = """poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip}
audio_player\t\taubridge,nil
audio_source\t\tausine,440
audio_alert\t\taubridge,nil
ausrc_srate\t\t48000
ausrc_channels\t\t2
rtp_ports\t\t{rtp_min}-{rtp_max}
rtcp_mux\t\tyes
rtp_stats\t\tyes
dns_server\t\t127.0.0.1:{dns}
net_interface\t\t127.0.0.1
module_path\t\t/usr/lib/baresip/modules
module\t\t\tcons.so
module\t\t\tg711.so
module\t\t\tausine.so
module\t\t\taubridge.so
module\t\t\tsndfile.so
snd_path\t\t{dir}
module_tmp\t\taccount.so
module_app\t\tmenu.so
cons_listen\t\t127.0.0.1:{cons}
statmode_default\toff
"""


class LossyRtpProtocol(RtpProtocol):
    """Drops every 20th PCMU packet from the peer before the stream sees it."""

    dropped: list[int]

    def datagramReceived(self, datagram: bytes, addr) -> None:
        if not hasattr(self, "dropped"):
            self.dropped = []
        if len(datagram) > 12 and datagram[1] & 0x7F == 0:
            seq = int.from_bytes(datagram[2:4], "big")
            if seq % 20 == 7:
                self.dropped.append(seq)
                return
        super().datagramReceived(datagram, addr)


class Answerer(protocol.DatagramProtocol):
    """Answers baresip's INVITE with our media address, BYE with 200; notes the offer."""

    def __init__(self, stream: MediaStream, media_port: int) -> None:
        self.stream = stream
        self.media_port = media_port
        self.methods: list[str] = []
        self.offer = b""
        self.errors: list[str] = []

    def datagramReceived(self, data: bytes, addr) -> None:
        try:
            self._handle(data, addr)
        except Exception as e:
            self.errors.append(repr(e))

    def _handle(self, data: bytes, addr) -> None:
        if data.startswith(b"SIP/2.0"):
            return
        method, _, h, body = parse(data)
        self.methods.append(method)
        if method == "ACK":
            return
        extra: list[str] = []
        answer = b""
        if method == "INVITE":
            self.offer = body
            ip = re.search(rb"^c=IN IP4 (\S+)", body, re.M)
            port = re.search(rb"^m=audio (\d+)", body, re.M)
            assert ip and port and ip.group(1) == b"127.0.0.1", body
            self.stream.set_remote(("127.0.0.1", int(port.group(1))))
            answer = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                      f"m=audio {self.media_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                      "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
                      "a=rtcp-mux\r\na=sendrecv\r\n").encode()
            here = self.transport.getHost().port
            extra = [f"Contact: <sip:test@127.0.0.1:{here}>", "Content-Type: application/sdp"]
        to = h["to"][0] + ("" if "tag=" in h["to"][0] else ";tag=ans1")
        lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for v in h["via"]), f"From: {h['from'][0]}",
                 f"To: {to}", f"Call-ID: {h['call-id'][0]}", f"CSeq: {h['cseq'][0]}", *extra,
                 f"Content-Length: {len(answer)}", "", ""]
        self.transport.write("\r\n".join(lines).encode() + answer, addr)


def console(port: int, cmd: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.sendto(cmd.encode() + b"\n", ("127.0.0.1", port))
    finally:
        s.close()


@pytest_twisted.inlineCallbacks
def test_pcmu_tone_and_dtmf_both_ways_with_baresip():
    baresip = require_binary("baresip")
    d = Path(tempfile.mkdtemp(prefix="siplink-media-baresip-"))
    sip = free_port(span=2)                 # baresip binds TCP on sip and sip+1 too
    rtp_min = free_port(span=8)
    cons, dns = free_port(), free_port()
    (d / "config").write_text(CONFIG.format(sip=sip, rtp_min=rtp_min, rtp_max=rtp_min + 7,
                                            dns=dns, dir=d, cons=cons))
    (d / "accounts").write_text(f"<sip:bob@127.0.0.1:{sip}>;regint=0;answermode=auto;"
                                "audio_codecs=PCMU\n")
    stream = MediaStream(source=ToneGenerator(1000.0), remote=None, rtcp_interval=1.0,
                         rng=random.Random(21), strict_source=True, trace=Trace())
    media = LossyRtpProtocol(stream)
    media_port = reactor.listenUDP(0, media, interface="127.0.0.1")
    answerer = Answerer(stream, media_port.getHost().port)
    our_sip = reactor.listenUDP(0, answerer, interface="127.0.0.1")
    peer = PeerProcess([baresip, "-f", str(d), "-v", "-s"], ready=r"baresip is ready\.",
                       name="baresip-media", stdin=None)
    try:
        peer.start()
        console(cons, f"/dial sip:test@127.0.0.1:{our_sip.getHost().port}")
        deadline = time.monotonic() + 10
        while "ACK" not in answerer.methods and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert "ACK" in answerer.methods, (answerer.errors, peer.log()[-3000:])
        yield task.deferLater(reactor, 1.0, lambda: None)
        stream.send_dtmf("12#")
        yield task.deferLater(reactor, 1.0, lambda: None)
        for key in "45*":                    # baresip's console keys send DTMF in a call
            console(cons, key)
            yield task.deferLater(reactor, 0.3, lambda: None)
        yield task.deferLater(reactor, 4.0, lambda: None)   # baresip reports every 5 s
        console(cons, "/hangup")
        deadline = time.monotonic() + 10
        while "BYE" not in answerer.methods and time.monotonic() < deadline:
            yield task.deferLater(reactor, 0.05, lambda: None)
        media.driver.stop("bye")
        peer.wait_for(r"packets:\s+\d+\s+\d+", timeout=10)
        yield task.deferLater(reactor, 0.2, lambda: None)
    finally:
        peer.stop()
        yield our_sip.stopListening()
        yield media_port.stopListening()
    log = peer.log()
    assert not answerer.errors, answerer.errors
    assert b"telephone-event" in answerer.offer
    st = stream.stats()
    # we hear baresip's 440 Hz (48 kHz stereo sine, resampled and PCMU-encoded by baresip)
    f = stream.detected_frequency()
    assert f is not None and abs(f - 440.0) < 5.0, f
    assert st.packets_received >= 100, st
    # every loss we made is counted (the last one may not be visible yet)
    assert len(media.dropped) - 1 <= st.packets_lost <= len(media.dropped), (media.dropped, st)
    assert st.packets_lost >= 5
    assert st.invalid_received == 0 and st.unexpected_received == 0, st
    # baresip heard our DTMF: one key per event, despite the three end packets each
    keys = re.findall(r"received event: '(.)' \(end=1\)", log)
    assert "".join(keys) == "12#", log[-3000:]
    # and we heard baresip's DTMF
    assert stream.digits_received == "45*", (stream.digits_received, log[-3000:])
    # baresip's own counters against ours
    tx, rx = map(int, re.findall(r"packets:\s+(\d+)\s+(\d+)", log)[-1])
    assert abs(rx - st.packets_sent) <= 3, (tx, rx, st)
    assert abs(tx - st.packets_received - len(media.dropped)) <= 3, (tx, rx, st)
    # baresip read the loss from our RTCP receiver reports (its "Transmit" column); our
    # last periodic report is at most a second (about one more drop) old
    tx_lost, _ = map(int, re.findall(r"lost:\s+(-?\d+)\s+(-?\d+)", log)[-1])
    assert st.packets_lost - 2 <= tx_lost <= st.packets_lost, (tx_lost, st)
    # ... and the interarrival jitter from them (ms), which DTMF packets do not inflate
    tx_jitter, rx_jitter = map(float, re.findall(r"jitter:\s+(\S+)\s+(\S+)", log)[-1])
    assert tx_jitter < 20.0 and abs(tx_jitter - st.jitter * 1000) < 3.0, (tx_jitter, st)
    # the other way: we read baresip's RTCP reports about our stream
    rtcp_in = [decode_rtcp(r.raw) for r in stream.trace if r.direction == "in" and is_rtcp(r.raw)]
    assert st.rtcp_received >= 2 and st.remote_packets_lost == 0, (hex(stream.ssrc), rtcp_in)
    assert st.remote_jitter is not None and abs(st.remote_jitter * 1000 - rx_jitter) < 3.0, st
    reports = [e for e in media.driver.events if isinstance(e, RemoteReport)]
    assert st.rtt is not None and st.rtt < 0.05, (reports, stream._last_sr_sent)
    # and its recording of what it decoded from us is our 1000 Hz tone
    dec = sorted(d.glob("dump-*-dec.wav"))
    assert dec, list(d.iterdir())
    with wave.open(str(dec[-1])) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1
        pcm = w.readframes(w.getnframes())
    got = detect_frequency(pcm)
    assert got is not None and abs(got - 1000.0) < 5.0, got
    shutil.rmtree(d, ignore_errors=True)
