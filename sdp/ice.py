"""ICE attributes in SDP (RFC 8839) <-> :class:`ice.candidate.Candidate`.

``a=candidate``, ``a=remote-candidates``, ``a=ice-ufrag``/``a=ice-pwd`` checks, the choice of
the default candidate and ICE-mismatch detection. The line grammar comes from
:mod:`sdp.transform`; this module turns the captured strings into typed values.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ice.candidate import Candidate, CandidateType
from sdp import transform
from sdp.errors import SdpError

# RFC 8839 §5.1: ice-char = ALPHA / DIGIT / "+" / "/"
_ICE_CHARS: Final = re.compile(r"[A-Za-z0-9+/]+")
_DIGITS: Final = re.compile(r"[0-9]{1,10}")
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9_-]+)*\.?")
_TYPES: Final = {t.value: t for t in CandidateType}
_TCPTYPES: Final = frozenset({"active", "passive", "so"})

# RFC 8839 (ice-ufrag/ice-pwd grammar): ufrag 4..256 ice-chars, pwd 22..256. When *parsing* we only insist on the
# character set and the maximum (peers in the field send shorter ones); we create RFC-sized ones.
UFRAG_MIN: Final = 4
PWD_MIN: Final = 22
CREDENTIAL_MAX: Final = 256

# RFC 8840 (Trickle ICE for SIP): placeholder default destination before any candidate is known.
TRICKLE_PLACEHOLDER_PORT: Final = 9


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    """One entry of ``a=remote-candidates`` (RFC 8839 §5.2)."""

    component: int
    address: str
    port: int


def _int(text: str | None, what: str, low: int, high: int, line: int | None) -> int:
    if text is None or not _DIGITS.fullmatch(text):
        raise SdpError(f"bad {what}: {text!r}", line)
    value = int(text)
    if not low <= value <= high:
        raise SdpError(f"{what} out of range: {value}", line)
    return value


@functools.lru_cache(maxsize=1024)
def _address_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    return bool(len(text) <= 253 and _HOSTNAME.fullmatch(text)
                and not text.replace(".", "").isdigit())


def check_address(text: str, what: str, line: int | None = None) -> str:
    """An IPv4/IPv6 address or a host name (RFC 8839 connection-address); else SdpError."""
    if _address_ok(text):
        return text
    raise SdpError(f"bad {what}: {text[:60]!r}", line)


def check_credential(value: str, what: str, line: int | None = None, minimum: int = 1) -> str:
    """An ice-ufrag/ice-pwd value: ice-chars only, ``minimum``..256 long."""
    if not _ICE_CHARS.fullmatch(value) or not minimum <= len(value) <= CREDENTIAL_MAX:
        raise SdpError(f"bad {what}: {value[:60]!r}", line)
    return value


def parse_candidate(value: str, line: int | None = None) -> Candidate | None:
    """The candidate in an ``a=`` value ``candidate:...``.

    Returns ``None`` for a well-formed candidate this agent cannot use (a transport other than
    UDP/TCP or an unknown candidate type): RFC 8839 §5.1 says to ignore those; the caller keeps
    the line verbatim. Raises :class:`SdpError` when the line is malformed.
    """
    (foundation, component, transport, priority, address, port, typ, tail) = transform.match(
        transform.CANDIDATE, value, line
    )
    assert foundation is not None and transport is not None and address is not None
    assert typ is not None
    if len(foundation) > 32 or not _ICE_CHARS.fullmatch(foundation):
        raise SdpError(f"bad candidate foundation: {foundation[:40]!r}", line)
    comp = _int(component, "candidate component", 1, 256, line)
    prio = _int(priority, "candidate priority", 0, 2**32 - 1, line)
    cport = _int(port, "candidate port", 0, 65535, line)
    check_address(address, "candidate address", line)
    words = tail.split() if tail else []
    raddr: str | None = None
    rport: int | None = None
    tcptype: str | None = None
    generation: int | None = None
    extensions: list[tuple[str, str]] = []
    for name, val in zip(words[0::2], words[1::2], strict=True):
        if name == "raddr" and raddr is None:
            raddr = check_address(val, "candidate raddr", line)
        elif name == "rport" and rport is None:
            rport = _int(val, "candidate rport", 0, 65535, line)
        elif name == "tcptype" and tcptype is None:
            if val not in _TCPTYPES:
                raise SdpError(f"bad candidate tcptype: {val[:20]!r}", line)
            tcptype = val
        elif name == "generation" and generation is None:
            generation = _int(val, "candidate generation", 0, 2**32 - 1, line)
        else:
            extensions.append((name, val))
    if (raddr is None) != (rport is None):
        raise SdpError("candidate raddr without rport (or rport without raddr)", line)
    kind = _TYPES.get(typ)
    proto = transport.lower()
    if kind is None or proto not in ("udp", "tcp"):
        return None
    return Candidate(
        foundation=foundation,
        component=comp,
        transport=proto,
        priority=prio,
        address=address,
        port=cport,
        type=kind,
        related_address=raddr,
        related_port=rport,
        tcptype=tcptype,
        generation=generation,
        extensions=tuple(extensions),
    )


def format_candidate(c: Candidate) -> str:
    """The ``a=`` value for ``c`` (``candidate:...``), RFC 8839 §5.1 field order."""
    parts = [
        f"candidate:{c.foundation} {c.component} {c.transport.upper()} {c.priority}"
        f" {c.address} {c.port} typ {c.type.value}"
    ]
    if c.related_address is not None and c.related_port is not None:
        parts.append(f" raddr {c.related_address} rport {c.related_port}")
    if c.tcptype is not None:
        parts.append(f" tcptype {c.tcptype}")
    if c.generation is not None:
        parts.append(f" generation {c.generation}")
    for name, val in c.extensions:
        parts.append(f" {name} {val}")
    return "".join(parts)


def check_candidate(c: Candidate) -> None:
    """Refuse (SdpError) a candidate that would not parse back identically from SDP."""
    if not _writable(c):
        raise SdpError(f"candidate cannot be written to SDP: {c}")


@functools.lru_cache(maxsize=1024)
def _writable(c: Candidate) -> bool:
    text = format_candidate(c)
    try:
        return not any(ch in text for ch in "\r\n\x00") and parse_candidate(text) == c
    except (SdpError, TypeError, ValueError, AttributeError):
        return False


def parse_remote_candidates(value: str, line: int | None = None) -> tuple[RemoteCandidate, ...]:
    """``remote-candidates:<component> <address> <port> ...`` (RFC 8839 §5.2)."""
    (body,) = transform.match(transform.REMOTE_CANDIDATES, value, line)
    (triples,) = transform.match(transform.REMOTE_CANDIDATE_TRIPLES, body or "", line)
    words = (triples or "").split(" ")
    out = []
    for comp, addr, port in zip(words[0::3], words[1::3], words[2::3], strict=True):
        out.append(
            RemoteCandidate(
                _int(comp, "remote-candidates component", 1, 256, line),
                check_address(addr, "remote-candidates address", line),
                _int(port, "remote-candidates port", 0, 65535, line),
            )
        )
    return tuple(out)


def format_remote_candidates(items: Iterable[RemoteCandidate]) -> str:
    """The value after ``remote-candidates:``."""
    return " ".join(f"{r.component} {r.address} {r.port}" for r in items)


_DEFAULT_ORDER: Final = {
    CandidateType.RELAYED: 0,
    CandidateType.SERVER_REFLEXIVE: 1,
    CandidateType.HOST: 2,
    CandidateType.PEER_REFLEXIVE: 3,
}


def choose_default(candidates: Sequence[Candidate], component: int) -> Candidate | None:
    """RFC 8445 §5.1.4: the default candidate for ``component``.

    The one most likely to work with a peer that does not do ICE: relayed, then server
    reflexive, then host; UDP only; highest priority within a type.
    """
    usable = [c for c in candidates if c.component == component and c.transport == "udp"]
    if not usable:
        return None
    return min(usable, key=lambda c: (_DEFAULT_ORDER[c.type], -c.priority))


def default_destination_in_candidates(
    address: str | None, port: int, candidates: Sequence[Candidate], component: int
) -> bool:
    """RFC 8839 "Verifying ICE Support": is ``address:port`` one of the component's candidates?"""
    if address is None:
        return False
    host = address.split("/", 1)[0]
    return any(
        c.component == component and c.port == port and _same_address(c.address, host)
        for c in candidates
    )


def _same_address(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")


def is_trickle_placeholder(address: str | None, port: int) -> bool:
    """RFC 8840: ``c=IN IP4 0.0.0.0`` / ``IN IP6 ::`` with port 9 before any candidate."""
    if address is None or port != TRICKLE_PLACEHOLDER_PORT:
        return False
    try:
        return ipaddress.ip_address(address.split("/", 1)[0]).is_unspecified
    except ValueError:
        return False
