"""The audio of one call: :class:`AudioChannel` (a MediaStream on its MediaDriver).

It is told what the offer/answer negotiated (:meth:`AudioChannel.negotiate`: codec,
telephone-event, direction) and where to send (:meth:`AudioChannel.start` /
:meth:`AudioChannel.set_remote`: the selected pair's remote addresses, or the plain-RTP
peer's c=/m= and a=rtcp), and plays a tone, a WAV file or silence, records what it receives
(written to ``record_wav`` when it stops) and sends/receives RFC 4733 DTMF.  Its datagrams go
out through the ``send(data, addr, rtcp)`` callable it is given; received RTP/RTCP comes in
through :meth:`AudioChannel.datagram_received`.  It never sees SDP text, ICE or the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ice.address import Address
from ice.trace import Trace
from sdp.offeranswer import NegotiatedMedia
from siplink.media.driver import MediaDriver
from siplink.media.g711 import CODECS, PCMU, G711Codec
from siplink.media.stream import MediaEvent, MediaStream, PcmSource

__all__ = ["AudioChannel", "codec_for"]

log = Logger(namespace="siplink.media.audio_channel")


def codec_for(audio: NegotiatedMedia) -> G711Codec:
    """The G.711 codec we send with: the negotiated send codec, PCMU otherwise."""
    sc = audio.send_codec
    for c in CODECS:
        if sc is not None and c.name.lower() == sc.name.lower():
            return c
    return PCMU


class AudioChannel:
    """One RTP audio stream of a call (module docstring)."""

    def __init__(self, reactor: Any, *, send: Callable[[bytes, Address, bool], None],
                 source: PcmSource | None = None, ptime: float = 0.020,
                 rtcp_interval: float = 5.0, record: bool = True,
                 record_wav: str | None = None, trace: Trace | None = None) -> None:
        self.reactor = reactor
        self._send = send
        self.source = source
        self.ptime = ptime
        self.rtcp_interval = rtcp_interval
        self.record = record
        self.record_wav = record_wav
        self.trace = trace
        self.audio: NegotiatedMedia | None = None   # the last negotiated audio stream
        self.stream: MediaStream | None = None
        self.media: MediaDriver | None = None
        self.media_events: list[MediaEvent] = []
        self._stopped = False

    @property
    def started(self) -> bool:
        return self.stream is not None

    def negotiate(self, audio: NegotiatedMedia) -> None:
        """What the latest offer/answer agreed: kept for :meth:`start`; the direction
        (hold by either side) applies at once to a running stream."""
        self.audio = audio
        self._apply_direction()

    def start(self, remote: Address, remote_rtcp: Address | None) -> bool:
        """Start media to ``remote`` (RTCP to ``remote_rtcp``, else muxed); False when
        nothing was negotiated yet."""
        audio = self.audio
        if audio is None:
            return False
        te = audio.telephone_event
        self.stream = MediaStream(
            codec=codec_for(audio), ptime=self.ptime, source=self.source,
            remote=remote, remote_rtcp=remote_rtcp,
            dtmf_payload_type=te.pt if te is not None else None,
            rtcp_interval=self.rtcp_interval, record=self.record, trace=self.trace)
        self.media = MediaDriver(self.stream, self._send_datagram, self.reactor,
                                 on_event=self._on_media_event)
        self.media.start()
        self._apply_direction()
        return True

    def set_remote(self, remote: Address, remote_rtcp: Address | None) -> None:
        if self.stream is not None:
            self.stream.set_remote(remote, remote_rtcp)

    def datagram_received(self, data: bytes, remote: Address) -> None:
        """RTP or RTCP for this stream (demultiplexed by the transport)."""
        if self.media is not None:
            self.media.datagram_received(data, remote)

    def send_dtmf(self, digits: str) -> None:
        assert self.stream is not None
        self.stream.send_dtmf(digits)

    def stop(self) -> None:
        """The call ended: RTCP BYE, then the recording is written to ``record_wav``."""
        if self._stopped:
            return
        self._stopped = True
        if self.media is not None:
            self.media.stop("call ended")
        if self.stream is not None and self.record_wav:
            try:
                self.stream.write_wav(self.record_wav)
            except OSError as e:
                log.warn("cannot write {path}: {e}", path=self.record_wav, e=e)

    def _apply_direction(self) -> None:
        if self.stream is not None and self.audio is not None:
            self.stream.set_sending(self.audio.direction in ("sendrecv", "sendonly"))

    def _send_datagram(self, data: bytes, addr: Address) -> None:
        s = self.stream
        rtcp = (s is not None and s.remote_rtcp is not None and addr == s.remote_rtcp
                and s.remote_rtcp != s.remote)
        self._send(data, addr, rtcp)

    def _on_media_event(self, ev: MediaEvent) -> None:
        if len(self.media_events) < 10_000:
            self.media_events.append(ev)
