"""Trickle ICE in SIP (RFC 8840): the ``application/trickle-ice-sdpfrag`` body of an INFO.

An INFO of the ``trickle-ice`` Info-Package (RFC 6086) carries an SDP fragment (RFC 8840 §9,
the sdpfrag of RFC 8839 §9): the ICE credentials of the generation the candidates belong to,
then for each media stream an ``m=`` line (port 9, RFC 8840 §9.2) with its ``a=mid``, the new
``a=candidate`` lines and, when the sender has gathered everything, ``a=end-of-candidates``
(at the session level it applies to every stream)::

    a=ice-options:trickle
    a=ice-ufrag:Ufr4
    a=ice-pwd:asd88fgpdd777uzjYhagZg
    m=audio 9 RTP/AVP 0
    a=mid:1
    a=candidate:1 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998
    a=end-of-candidates

:func:`parse_fragment` turns a body into a typed :class:`SdpFragment` (:class:`SdpError` for
a malformed one: the INFO is answered 400), :func:`format_fragment` writes ours.  A sans-I/O
module like the rest of :mod:`sdp`; which stream a fragment's section is for (its mid, else
its position, RFC 8840 §4.4) and which ICE generation (its credentials) is the session's
business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ice.candidate import Candidate
from sdp import transform
from sdp.errors import SdpError
from sdp.ice import check_candidate, check_credential, format_candidate, parse_candidate

__all__ = [
    "CONTENT_TYPE",
    "INFO_PACKAGE",
    "OPTION_TAG",
    "FragmentMedia",
    "SdpFragment",
    "format_fragment",
    "parse_fragment",
]

INFO_PACKAGE = "trickle-ice"                        # RFC 8840 §10.1 (Info-Package, Recv-Info)
OPTION_TAG = "trickle-ice"                          # RFC 8840 §10.4 (Supported)
CONTENT_TYPE = "application/trickle-ice-sdpfrag"    # RFC 8840 §10.2

# Lines of a whole session description that some stacks (pjsip) put in a fragment anyway
_SESSION_LINES = frozenset("vostcbiuepkzr")

MAX_FRAGMENT = 32 * 1024      # bytes: a fragment is a few candidates, never a whole session
MAX_SECTIONS = 16             # m= sections in one fragment
MAX_CANDIDATES = 64           # candidates in one fragment, all sections together


@dataclass(frozen=True, slots=True)
class FragmentMedia:
    """One ``m=`` section of a fragment: ``index`` is its position in the fragment."""

    index: int
    kind: str
    mid: str | None
    candidates: tuple[Candidate, ...]
    end_of_candidates: bool
    ufrag: str | None = None          # media-level credentials, when given there
    pwd: str | None = None


@dataclass(frozen=True, slots=True)
class SdpFragment:
    """A parsed trickle-ice-sdpfrag: session-level credentials and options, the sections."""

    ufrag: str | None
    pwd: str | None
    options: tuple[str, ...]
    end_of_candidates: bool           # session level: every stream is complete
    media: tuple[FragmentMedia, ...]

    def section(self, mid: str | None, index: int) -> FragmentMedia | None:
        """The section for the stream with ``mid`` (else the one at ``index``, RFC 8840 §4.4:
        a peer that signals no mid identifies streams by their order)."""
        if mid is not None:
            for m in self.media:
                if m.mid == mid:
                    return m
        for m in self.media:
            if m.mid is None and m.index == index:
                return m
        return None

    def credentials(self, section: FragmentMedia) -> tuple[str | None, str | None]:
        """The ufrag/pwd that apply to ``section`` (media level, else session level)."""
        return (section.ufrag or self.ufrag, section.pwd or self.pwd)

    def complete(self, section: FragmentMedia) -> bool:
        return self.end_of_candidates or section.end_of_candidates


@dataclass
class _Section:
    index: int
    kind: str
    mid: str | None = None
    ufrag: str | None = None
    pwd: str | None = None
    end: bool = False
    candidates: list[Candidate] | None = None


def parse_fragment(body: bytes | str) -> SdpFragment:
    """The fragment in an INFO body; :class:`SdpError` (with the line) when malformed.

    Only the lines RFC 8840 §9 allows in a fragment mean something: ``a=ice-ufrag``,
    ``a=ice-pwd``, ``a=ice-options``, ``a=end-of-candidates``, ``m=``, ``a=mid`` and
    ``a=candidate``; other well-formed ``a=`` lines (``a=group``, ``a=ice-pacing``...) and
    the lines of a whole description (``v=``, ``o=``, ``s=``, ``t=``, ``c=``...: pjsip sends
    them) are ignored, anything else is an error.  Candidates this agent cannot use (unknown transport
    or type) are skipped, as in an offer (RFC 8839 §5.1)."""
    if isinstance(body, bytes):
        if len(body) > MAX_FRAGMENT:
            raise SdpError(f"fragment too large ({len(body)} bytes)")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SdpError("fragment is not UTF-8") from e
    else:
        text = body
        if len(text) > MAX_FRAGMENT:
            raise SdpError(f"fragment too large ({len(text)} characters)")
    ufrag: str | None = None
    pwd: str | None = None
    options: dict[str, None] = {}
    session_end = False
    sections: list[_Section] = []
    count = 0
    for lineno, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"not an SDP line: {line[:40]!r}", lineno)
        letter, value = line[0], line[2:]
        if letter == "m":
            if len(sections) >= MAX_SECTIONS:
                raise SdpError(f"more than {MAX_SECTIONS} m= sections", lineno)
            kind = value.split(" ", 1)[0]
            if not kind or not transform.is_token(kind):
                raise SdpError(f"malformed m= line: {value[:40]!r}", lineno)
            sections.append(_Section(len(sections), kind, candidates=[]))
            continue
        if letter in _SESSION_LINES:
            continue    # pjsip sends v=, o=, s=, t= before the fragment: nothing for us
        if letter != "a":
            raise SdpError(f"unexpected {letter}= line in a trickle-ice-sdpfrag", lineno)
        name = transform.attribute_name(value, lineno)
        arg = value[len(name) + 1:] if ":" in value else None
        sec = sections[-1] if sections else None
        if name in ("ice-ufrag", "ice-pwd"):
            cred = check_credential(arg or "", f"a={name}", lineno)
            if sec is None:
                ufrag, pwd = (cred, pwd) if name == "ice-ufrag" else (ufrag, cred)
            elif name == "ice-ufrag":
                sec.ufrag = cred
            else:
                sec.pwd = cred
        elif name == "ice-options":
            for o in (arg or "").split():
                options[o] = None
        elif name == "end-of-candidates":
            if arg is not None:
                raise SdpError("a=end-of-candidates takes no value", lineno)
            if sec is None:
                session_end = True
            else:
                sec.end = True
        elif name == "mid":
            if sec is None:
                raise SdpError("a=mid before any m= line", lineno)
            if not arg or not transform.is_token(arg):
                raise SdpError(f"malformed a=mid: {value[:40]!r}", lineno)
            sec.mid = arg
        elif name == "candidate":
            if sec is None:
                raise SdpError("a=candidate before any m= line", lineno)
            cand = parse_candidate(value, lineno)
            count += 1
            if count > MAX_CANDIDATES:
                raise SdpError(f"more than {MAX_CANDIDATES} candidates in one fragment",
                               lineno)
            if cand is not None:
                assert sec.candidates is not None
                sec.candidates.append(cand)
        # other attributes (a=group:BUNDLE, a=ice-pacing...) carry nothing for us
    return SdpFragment(
        ufrag, pwd, tuple(options), session_end,
        tuple(FragmentMedia(s.index, s.kind, s.mid, tuple(s.candidates or ()), s.end,
                            s.ufrag, s.pwd) for s in sections))


def format_fragment(ufrag: str, pwd: str, sections: Sequence[FragmentMedia],
                    *, proto: str = "RTP/AVP", fmt: str = "0") -> bytes:
    """Our fragment: the generation's credentials, then each section's ``m=`` line (port 9,
    RFC 8840 §9.2), ``a=mid``, candidates and ``a=end-of-candidates`` when complete."""
    check_credential(ufrag, "local ice-ufrag")
    check_credential(pwd, "local ice-pwd")
    lines = ["a=ice-options:trickle", f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}"]
    for s in sections:
        if not transform.is_token(s.kind):
            raise SdpError(f"bad media kind {s.kind!r}")
        lines.append(f"m={s.kind} 9 {proto} {fmt}")
        if s.mid is not None:
            if not transform.is_token(s.mid):
                raise SdpError(f"bad mid {s.mid!r}")
            lines.append(f"a=mid:{s.mid}")
        for c in s.candidates:
            check_candidate(c)
            lines.append("a=" + format_candidate(c))
        if s.end_of_candidates:
            lines.append("a=end-of-candidates")
    return ("\r\n".join(lines) + "\r\n").encode()
