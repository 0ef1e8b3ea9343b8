"""The offer/answer model (RFC 3264) with ICE (RFC 8839), one :class:`OfferAnswer` per dialog.

A sans-I/O core: it builds and checks session descriptions and reports what was agreed as
a :class:`Negotiated` value; it never touches a socket or the clock (``now`` is passed in,
only for the trace). siplink answers 488 when :meth:`OfferAnswer.create_answer` raises
:class:`SdpError`, 491 on :class:`OfferPendingError`, and 400 when an SDP does not parse.

The UA runs one audio stream: the first acceptable ``m=audio`` of an offer is accepted, every
other m-line is rejected with port 0 (RFC 3264 §6) and kept, rejected, in later offers (§8).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ice.address import Address
from ice.candidate import Candidate
from ice.trace import Direction, Trace, TraceRecord
from sdp.errors import OfferPendingError, SdpError
from sdp.ice import (
    PWD_MIN,
    UFRAG_MIN,
    RemoteCandidate,
    check_candidate,
    check_credential,
    choose_default,
    default_destination_in_candidates,
    is_trickle_placeholder,
)
from sdp.session import (
    Codec,
    Connection,
    MediaDescription,
    Origin,
    Rtcp,
    SessionDescription,
    address_type,
    parse,
)

PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")
DEFAULT_CODECS: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)
DEFAULT_PROTOS: tuple[str, ...] = ("RTP/AVP", "RTP/AVPF")

MAX_REASON = 200   # characters of an SdpError reason built from an offer's content

# Formats that do not carry the audio itself: a stream with only these is not acceptable.
AUXILIARY_FORMATS = frozenset({"telephone-event", "cn", "red", "rtx", "ulpfec", "flexfec"})

# RFC 3264 §6.1: what the answerer may say for each offered direction.
_ANSWER_DIRECTIONS = {
    "sendrecv": {"sendrecv", "sendonly", "recvonly", "inactive"},
    "sendonly": {"recvonly", "inactive"},
    "recvonly": {"sendonly", "inactive"},
    "inactive": {"inactive"},
}
_SENDS = {"sendrecv", "sendonly"}
_RECEIVES = {"sendrecv", "recvonly"}


def _direction(send: bool, recv: bool) -> str:
    return ("sendrecv" if recv else "sendonly") if send else ("recvonly" if recv else "inactive")


@dataclass(frozen=True, slots=True)
class IceParams:
    """Our ICE side for the audio stream of one offer or answer.

    ``default_candidates``: the default candidate per component (RFC 8839: it goes into c=,
    the m= port and a=rtcp); empty means chosen by :func:`sdp.ice.choose_default`. After
    nomination the controlling agent passes the selected local candidates here, only those in
    ``candidates``, and the selected remote ones in ``remote_candidates`` (RFC 8839
    ``a=remote-candidates``). A new ufrag/pwd is an ICE restart.
    """

    ufrag: str
    pwd: str
    candidates: tuple[Candidate, ...] = ()
    default_candidates: tuple[Candidate, ...] = ()
    remote_candidates: tuple[RemoteCandidate, ...] = ()
    end_of_candidates: bool = True
    lite: bool = False
    options: tuple[str, ...] = ()

    def validate(self) -> None:
        check_credential(self.ufrag, "local ice-ufrag", minimum=UFRAG_MIN)
        check_credential(self.pwd, "local ice-pwd", minimum=PWD_MIN)
        for c in self.candidates:
            check_candidate(c)
        for d in self.default_candidates:
            if d not in self.candidates:
                raise SdpError(f"default candidate {d} is not among the candidates")
        for o in self.options:
            if not o or any(ch.isspace() for ch in o):
                raise SdpError(f"bad ice-option {o!r}")


@dataclass(frozen=True, slots=True)
class RemoteIce:
    """The peer's ICE parameters for one stream, as the ICE agent needs them."""

    ufrag: str
    pwd: str
    lite: bool
    options: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool
    remote_candidates: tuple[RemoteCandidate, ...]


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """One accepted stream after a completed offer/answer exchange."""

    index: int                          # m-line index
    kind: str
    codecs: tuple[Codec, ...]           # agreed formats, with the peer's payload types
    direction: str                      # from our side: do we send / receive
    remote_rtp: Address | None  # default destination (c= and m= port)
    remote_rtcp: Address | None
    rtcp_mux: bool
    remote_ptime: float | None
    ice: RemoteIce | None               # None: no ICE on this stream (peer lacks it, mismatch)
    ice_mismatch: bool
    ice_restart: bool                   # the peer's credentials changed
    mid: str | None = None              # the stream's a=mid (RFC 5888), as the offer gave it

    @property
    def send_codec(self) -> Codec | None:
        """The first agreed codec that carries audio (not telephone-event/CN)."""
        return next((c for c in self.codecs if c.name.lower() not in AUXILIARY_FORMATS), None)

    @property
    def telephone_event(self) -> Codec | None:
        return next((c for c in self.codecs if c.name.lower() == "telephone-event"), None)


@dataclass(frozen=True, slots=True)
class Negotiated:
    local: SessionDescription
    remote: SessionDescription
    media: tuple[NegotiatedMedia, ...]

    @property
    def audio(self) -> NegotiatedMedia | None:
        return next((m for m in self.media if m.kind == "audio"), None)


def _as_session(sdp: SessionDescription | str | bytes) -> SessionDescription:
    return sdp if isinstance(sdp, SessionDescription) else parse(sdp)


class OfferAnswer:
    """RFC 3264 offer/answer state for one dialog (see the module docstring)."""

    def __init__(
        self,
        local_address: str,
        *,
        port: int | None = None,
        codecs: Sequence[Codec] = DEFAULT_CODECS,
        ptime: float | None = 20,
        rtcp_mux: bool = True,
        protos: Sequence[str] = DEFAULT_PROTOS,
        username: str = "-",
        session_id: str | None = None,
        session_version: int | None = None,
        session_name: str = "siplink",
        mid: str | None = None,
        trace: Trace | None = None,
    ) -> None:
        if not codecs or all(c.name.lower() in AUXILIARY_FORMATS for c in codecs):
            raise SdpError("no audio codec configured")
        if port is not None and not 0 < port <= 65535:
            raise SdpError(f"bad local media port {port}")
        self.local_address = local_address
        self.port = port
        self.codecs = tuple(codecs)
        self.ptime = ptime
        self.rtcp_mux = rtcp_mux
        self.protos = tuple(p.upper() for p in protos)
        self.username = username
        self.session_id = session_id or str(secrets.randbits(62))
        self._version = session_version if session_version is not None else secrets.randbits(31)
        self.session_name = session_name
        self.mid = mid                # our offer's a=mid (RFC 5888); answers echo the offer's
        self.trace = trace if trace is not None else Trace()
        self.held = False
        self.local: SessionDescription | None = None      # last description we sent, in force
        self.remote: SessionDescription | None = None     # last description received, in force
        self.pending_offer: SessionDescription | None = None
        self.negotiated: Negotiated | None = None
        self._audio_index: int | None = None
        self._local_ice: IceParams | None = None      # our ICE side of the session in force
        self._pending_ice: IceParams | None = None    # ... and of the outstanding offer

    # -- building ----------------------------------------------------------------------------

    def create_offer(
        self, ice: IceParams | None = None, *, hold: bool | None = None, now: float = 0.0
    ) -> SessionDescription:
        """An initial offer, or a re-offer (hold/resume, ICE restart, updated candidates).

        Re-offers keep every m-line of the session in force, in order (RFC 3264 §8); the
        origin version goes up by one whenever the description changed.
        """
        if self.pending_offer is not None:
            raise OfferPendingError("an offer is already outstanding")
        if ice is not None:
            ice.validate()
        held = self.held if hold is None else hold
        direction = self._wanted_direction(None, held)
        media: list[MediaDescription] = []
        if self.local is None or self._audio_index is None:
            media.append(self._audio(self.codecs, direction, ice, None, proto=self.protos[0]))
            audio_index = 0
        else:
            audio_index = self._audio_index
            for i, m in enumerate(self.local.media):
                if i == audio_index:
                    media.append(self._audio(self.codecs, direction, ice, None, proto=m.proto))
                else:
                    media.append(_rejected(m))
        offer, text = self._session(media, ice)
        self.held = held
        self._audio_index = audio_index
        self.pending_offer = offer
        self._pending_ice = ice
        self._record(now, "out", "SDP offer", offer, text)
        return offer

    def create_answer(
        self,
        offer: SessionDescription | str | bytes,
        ice: IceParams | None = None,
        *,
        hold: bool | None = None,
        now: float = 0.0,
    ) -> SessionDescription:
        """Answer ``offer`` (RFC 3264 §6). Raises :class:`SdpError` when nothing is acceptable.

        The accepted audio stream keeps the offerer's payload types, in the offerer's order;
        every other m-line is rejected with port 0.
        """
        if self.pending_offer is not None:
            raise OfferPendingError("offer received while our offer is outstanding")
        remote = _as_session(offer)
        self._record(now, "in", "SDP offer", remote, offer)
        if ice is not None:
            ice.validate()
        held = self.held if hold is None else hold
        if self.local is not None and len(remote.media) < len(self.local.media):
            raise SdpError("re-offer removes m-lines (RFC 3264 §8)")
        if self._audio_index is not None and self.is_ice_restart(remote) and ice is not None \
                and self._local_ice is not None and ice.ufrag == self._local_ice.ufrag:
            raise SdpError("ICE restart offered: the answer needs new local credentials")
        media: list[MediaDescription] = []
        reasons: list[str] = []
        audio_index: int | None = None
        for i, m in enumerate(remote.media):
            reason = self._unacceptable(m, audio_index is not None)
            if reason is None:
                common = self._common_codecs(m)
                if not any(c.name.lower() not in AUXILIARY_FORMATS for c in common):
                    offered = list(dict.fromkeys(
                        f"{c.name}/{c.rate}" if c.name else str(c.pt) for c in m.codecs))
                    more = ", ..." if len(offered) > 6 else ""
                    reason = f"no common audio codec (offered {', '.join(offered[:6])}{more})"
                else:
                    audio_index = i
                    direction = self._wanted_direction(m.direction, held)
                    media.append(self._audio(common, direction, ice, m, proto=m.proto))
                    continue
            if reason:
                reasons.append(f"m={m.kind}: {reason}")
            media.append(_rejected(m))
        if audio_index is None:
            detail = "; ".join(reasons) or "offer has no media"
            if len(detail) > MAX_REASON:          # it becomes a SIP reason phrase
                detail = detail[:MAX_REASON - 3] + "..."
            self._record(now, "event", f"offer not acceptable: {detail}", None)
            raise SdpError(f"no acceptable media: {detail}")
        answer, text = self._session(media, ice if media[audio_index].ice_ufrag else None)
        negotiated = self._negotiate(remote, answer, audio_index, offerer_is_remote=True)
        self.local, self.remote, self.negotiated = answer, remote, negotiated
        self.held = held
        self._audio_index = audio_index
        if media[audio_index].mid is not None:
            self.mid = media[audio_index].mid    # our re-offers keep the stream's mid
        self._local_ice = ice if media[audio_index].ice_ufrag else None
        self._record(now, "out", "SDP answer", answer, text)
        return answer

    def receive_answer(
        self, answer: SessionDescription | str | bytes, now: float = 0.0
    ) -> Negotiated:
        """Check ``answer`` against our outstanding offer (RFC 3264 §6/§7); the session in force.

        Raises :class:`SdpError` when it does not answer the offer; the outstanding offer is
        dropped either way (the previous session stays in force on error).
        """
        offer = self.pending_offer
        if offer is None:
            raise SdpError("answer received but no offer is outstanding")
        self.pending_offer = None
        try:
            remote = _as_session(answer)
        except SdpError as exc:
            self._record(now, "event", f"answer refused: {exc}", None)
            raise
        self._record(now, "in", "SDP answer", remote, answer)
        try:
            self._check_answer(offer, remote)
        except SdpError as exc:
            self._record(now, "event", f"answer refused: {exc}", None)
            raise
        if self.remote is not None and self.remote.origin.sess_id != remote.origin.sess_id:
            self._record(now, "event", "peer changed its o= session id", None)
        assert self._audio_index is not None
        negotiated = self._negotiate(offer, remote, self._audio_index, offerer_is_remote=False)
        self.local, self.remote, self.negotiated = offer, remote, negotiated
        self._local_ice = self._pending_ice if offer.media[self._audio_index].ice_ufrag else None
        self._record(now, "event", _summary(negotiated), None)
        return negotiated

    def _check_answer(self, offer: SessionDescription, remote: SessionDescription) -> None:
        """RFC 3264 §6: does ``remote`` answer ``offer``? Raises :class:`SdpError` if not."""
        if len(remote.media) != len(offer.media):
            raise SdpError(
                f"answer has {len(remote.media)} m-lines, the offer {len(offer.media)}"
            )
        for i, (om, am) in enumerate(zip(offer.media, remote.media, strict=True)):
            if om.kind != am.kind or om.proto.upper() != am.proto.upper():
                raise SdpError(f"answer m-line {i} is m={am.kind} {am.proto},"
                               f" the offer's m={om.kind} {om.proto}")
            if om.port == 0 and am.port != 0:
                raise SdpError(f"answer accepts m-line {i}, which the offer rejected")
            if am.port != 0 and am.direction not in _ANSWER_DIRECTIONS[om.direction]:
                raise SdpError(f"answer direction {am.direction} to an offered {om.direction}")
        assert self._audio_index is not None
        am = remote.media[self._audio_index]
        if am.port == 0:
            raise SdpError("answer rejected the audio stream")
        om = offer.media[self._audio_index]
        if not any(c.name.lower() not in AUXILIARY_FORMATS and any(c.same_format(o) for o in
                                                                    om.codecs)
                   for c in am.codecs):
            raise SdpError("answer has no audio codec from the offer")

    def cancel_offer(self) -> None:
        """Our offer failed (e.g. the re-INVITE got 488/491): the previous session stays."""
        self.pending_offer = None

    def is_ice_restart(self, offer: SessionDescription | str | bytes) -> bool:
        """Does ``offer`` restart ICE on the audio stream (new ufrag or pwd, RFC 8839)?"""
        remote = _as_session(offer)
        i = self._audio_index
        if self.remote is None or i is None or i >= len(remote.media) or i >= len(
            self.remote.media
        ):
            return False
        old, new = self.remote.media[i], remote.media[i]
        if not (old.ice_ufrag and new.ice_ufrag):
            return False
        return (old.ice_ufrag, old.ice_pwd) != (new.ice_ufrag, new.ice_pwd)

    # -- helpers -----------------------------------------------------------------------------

    def _wanted_direction(self, offered: str | None, held: bool) -> str:
        """Our direction. On hold we stop receiving and only send (sendonly, RFC 3264 §8.4 /
        RFC 6337); answering, never more than the reverse of the offered one (RFC 3264 §6.1)."""
        send, recv = True, not held
        if offered is not None:
            send = send and offered in _RECEIVES
            recv = recv and offered in _SENDS
        return _direction(send, recv)

    def _remote_trickles(self) -> bool:
        """The peer's description in force announced trickle ICE (RFC 8838 ice-option)."""
        if self.remote is None or self._audio_index is None \
                or self._audio_index >= len(self.remote.media):
            return False
        return "trickle" in self.remote.ice_options_for(self.remote.media[self._audio_index])

    def _unacceptable(self, m: MediaDescription, have_audio: bool) -> str | None:
        """Why this offered m-line is rejected ("" for a quietly rejected one), or None."""
        if m.port == 0:
            return ""
        if m.kind != "audio":
            return "media type not supported"
        if have_audio:
            return "only one audio stream is supported"
        if not m.is_rtp or m.proto.upper() not in self.protos:
            return f"transport {m.proto} not supported"
        return None

    def _common_codecs(self, m: MediaDescription) -> list[Codec]:
        out: list[Codec] = []
        for offered in m.codecs:
            # The offerer's payload type, name and fmtp (RFC 3264 §6.1).
            if any(c.same_format(offered) for c in self.codecs) and not any(
                o.same_format(offered) for o in out
            ):
                out.append(offered)
        return out

    def _audio(
        self,
        codecs: Sequence[Codec],
        direction: str,
        ice: IceParams | None,
        remote_m: MediaDescription | None,
        proto: str,
    ) -> MediaDescription:
        """Our audio m-line: for an offer when ``remote_m`` is None, else answering it."""
        offer = remote_m is None
        rtcp_mux = self.rtcp_mux if offer else (self.rtcp_mux and remote_m is not None
                                                and remote_m.rtcp_mux)
        use_ice = ice is not None and (offer or (remote_m is not None and remote_m.ice_ufrag
                                                 is not None and remote_m.ice_pwd is not None))
        mismatch = False
        if not offer and use_ice and remote_m is not None and _ice_mismatch(
                remote_m, trickling=self._remote_trickles()):
            use_ice, mismatch = False, True
        candidates: list[Candidate] = []
        rtp: Address | None = None
        rtcp: Rtcp | None = None
        if ice is not None:
            # The default candidates are our media address even when ICE is not used on
            # this stream (peer without ICE, or ice-mismatch): RFC 8839 fallback.
            candidates = [c for c in ice.candidates if not (rtcp_mux and not offer
                                                               and c.component != 1)]
            d1 = _default(ice, 1)
            d2 = None if (rtcp_mux and not offer) else _default(ice, 2)
            if d1 is not None:
                rtp = (d1.address, d1.port)
            elif use_ice and not ice.candidates and "trickle" in ice.options:
                rtp = ("::" if address_type(self.local_address) == "IP6" else "0.0.0.0", 9)
            if d2 is not None:
                rtcp = Rtcp(d2.port, d2.address, address_type(d2.address))
        if rtp is None:
            if self.port is None:
                raise SdpError("no local media address: give a port or ICE candidates")
            rtp = (self.local_address, self.port)
        m = MediaDescription(
            kind="audio",
            port=rtp[1],
            proto=proto,
            codecs=list(codecs),
            connection=Connection(rtp[0], address_type(rtp[0])),
            direction=direction,
            rtcp=rtcp,
            rtcp_mux=rtcp_mux,
            ptime=self.ptime,
            ice_mismatch=mismatch,
            mid=self.mid if offer else remote_m.mid if remote_m is not None else None,
        )
        if use_ice:
            assert ice is not None
            m.ice_ufrag, m.ice_pwd = ice.ufrag, ice.pwd
            m.candidates = candidates
            m.remote_candidates = list(ice.remote_candidates) if offer else []
            m.end_of_candidates = ice.end_of_candidates
        return m

    def _session(
        self, media: list[MediaDescription], ice: IceParams | None
    ) -> tuple[SessionDescription, str]:
        first = next((m for m in media if m.port != 0 and m.connection), None)
        conn = first.connection if first is not None else Connection(
            self.local_address, address_type(self.local_address))
        for m in media:
            if m.connection is None:
                m.connection = conn
        s = SessionDescription(
            origin=Origin(self.username, self.session_id, self._version, self.local_address,
                          address_type(self.local_address)),
            name=self.session_name,
            connection=conn,
            ice_lite=bool(ice and ice.lite),
            ice_options=list(ice.options) if ice else [],
            media=media,
        )
        # RFC 3264 §8: the version goes up by one when (and only when) the description changes.
        if self.local is not None:
            if _without_version(self.local) == _without_version(s):
                s.origin = replace(s.origin, sess_version=self.local.origin.sess_version)
            else:
                self._version += 1
                s.origin = replace(s.origin, sess_version=self._version)
        return s, s.serialize()   # refuse now (SdpError) what could not be written

    def _negotiate(
        self, offer: SessionDescription, answer: SessionDescription, index: int,
        offerer_is_remote: bool,
    ) -> Negotiated:
        local, remote = (answer, offer) if offerer_is_remote else (offer, answer)
        lm, rm = local.media[index], remote.media[index]
        om, am = offer.media[index], answer.media[index]
        # Formats both sides listed, with the peer's payload types (what we send with).
        codecs = tuple(c for c in rm.codecs if any(c.same_format(x) for x in lm.codecs))
        ice_used = (lm.ice_ufrag is not None and rm.ice_ufrag is not None
                    and rm.ice_pwd is not None and not am.ice_mismatch)
        rice = None
        if ice_used:
            assert rm.ice_ufrag is not None and rm.ice_pwd is not None
            rice = RemoteIce(
                ufrag=rm.ice_ufrag, pwd=rm.ice_pwd, lite=remote.ice_lite,
                options=tuple(remote.ice_options_for(rm)), candidates=tuple(rm.candidates),
                end_of_candidates=rm.end_of_candidates,
                remote_candidates=tuple(rm.remote_candidates),
            )
        restart = False
        if self.remote is not None and index < len(self.remote.media):
            old = self.remote.media[index]
            restart = bool(old.ice_ufrag and rm.ice_ufrag and
                           (old.ice_ufrag, old.ice_pwd) != (rm.ice_ufrag, rm.ice_pwd))
        mux = om.rtcp_mux and am.rtcp_mux
        raddr = rm.connection.address.split("/", 1)[0] if rm.connection else None
        rtp = (raddr, rm.port) if raddr else None
        rtcp: Address | None = None
        if rtp is not None:
            if mux:
                rtcp = rtp
            elif rm.rtcp is not None:
                rtcp = (rm.rtcp.address or rtp[0], rm.rtcp.port)
            else:
                rtcp = (rtp[0], rtp[1] + 1) if rtp[1] < 65535 else None
        nm = NegotiatedMedia(
            index=index, kind=lm.kind, codecs=codecs,
            direction=_direction(lm.direction in _SENDS and rm.direction in _RECEIVES,
                                 lm.direction in _RECEIVES and rm.direction in _SENDS),
            remote_rtp=rtp, remote_rtcp=rtcp, rtcp_mux=mux, remote_ptime=rm.ptime,
            ice=rice, ice_mismatch=am.ice_mismatch, ice_restart=restart, mid=om.mid,
        )
        return Negotiated(local=local, remote=remote, media=(nm,))

    def _record(self, now: float, direction: Direction, summary: str,
                sdp: SessionDescription | None, text: object = None) -> None:
        detail = ""
        if sdp is not None:
            if isinstance(text, str):
                detail = text
            elif isinstance(text, bytes):
                detail = text.decode("utf-8", "replace")
            else:
                detail = sdp.serialize()
            summary = f"{summary} v{sdp.origin.sess_version}: " + ", ".join(
                f"{m.kind} {m.port} {m.direction}" for m in sdp.media)
        self.trace.add(TraceRecord(now, direction, summary, detail, protocol="sdp"))


def _default(ice: IceParams, component: int) -> Candidate | None:
    for c in ice.default_candidates:
        if c.component == component:
            return c
    return choose_default(ice.candidates, component)


def _ice_mismatch(m: MediaDescription, *, trickling: bool = False) -> bool:
    """RFC 8839 "Verifying ICE Support": the offer's default destination of each component
    must be one of its candidates (else a middlebox rewrote it: answer ``a=ice-mismatch``).
    ``trickling``: the session in force trickles candidates (RFC 8840), so an unspecified
    ``c=`` is no middlebox's rewrite (pjsip keeps its placeholder's 0.0.0.0 in its re-offers
    after ICE, with a real port)."""
    address = m.connection.address if m.connection else None
    if is_trickle_placeholder(address, m.port) or (trickling and _unspecified(address)):
        return False            # RFC 8840: no candidate yet, nothing to verify
    if not default_destination_in_candidates(address, m.port, m.candidates, 1):
        return True
    if m.rtcp_mux or not any(c.component == 2 for c in m.candidates):
        return False
    if m.rtcp is not None:
        return not default_destination_in_candidates(
            m.rtcp.address or address, m.rtcp.port, m.candidates, 2)
    return not default_destination_in_candidates(address, m.port + 1, m.candidates, 2)


def _unspecified(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(
            address.split("/", 1)[0]).is_unspecified
    except ValueError:
        return False


def _rejected(m: MediaDescription) -> MediaDescription:
    """The m-line rejected (RFC 3264 §6: port 0, same media type, transport and formats)."""
    return MediaDescription(
        kind=m.kind, port=0, proto=m.proto, codecs=list(m.codecs), formats=list(m.formats),
        direction="inactive",
    )


def _without_version(s: SessionDescription) -> SessionDescription:
    return replace(s, origin=replace(s.origin, sess_version=0))


def _summary(n: Negotiated) -> str:
    a = n.audio
    if a is None:
        return "negotiated: no audio"
    codec = a.send_codec.name if a.send_codec else "-"
    ice = "ice-mismatch" if a.ice_mismatch else ("ice" if a.ice else "no ice")
    return f"negotiated: audio {a.direction} {codec} {ice}" + (" (ICE restart)" if a.ice_restart
                                                                  else "")
