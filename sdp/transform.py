"""The one adapter around ``sdp-transform`` (pinned to 1.1.0): its grammar in, its writer out.

No other module imports ``sdp_transform``. The line grammar (the regular expressions and the
field names of every SDP line we model) and the writer (line order, line formats) are
sdp-transform's own; this module drives them so that its measured defects never reach the model.
Each workaround has a regression test in ``tests/test_sdp_transform.py``.

W1  Numeric coercion. ``sdp_transform.parse`` passes every captured value through
    ``toIntIfInt``: ``a=ice-ufrag:0012`` becomes ``12``, ``1e5`` becomes ``100000.0`` and
    ``NaN`` becomes ``nan``. :func:`match` applies sdp-transform's grammar rules itself and
    returns the captured groups as the exact strings from the wire; the model converts the
    few numeric fields (ports, payload types, priorities) explicitly and strictly.
W2  TCP candidates. Its ``a=candidate`` rule looks for ``tcpfield`` instead of ``tcptype``, so
    ``typ host tcptype passive generation 0`` loses the tcptype and everything after it, and its
    writer would emit ``tcpfield``. :data:`CANDIDATE` replaces that one rule (RFC 8839 §5.1:
    the fixed fields, then ``raddr``/``rport``/``tcptype``/``generation``/any other extension as
    name-value pairs), and candidate lines are written verbatim (as raw attribute lines).
W3  Silent drops. Its parser never raises: lines that are not ``x=...``, a missing ``v=``, a
    bad ``o=`` or ``m=`` are dropped or leave half-filled dicts. :func:`split_lines` refuses
    anything that is not a well-formed ``<letter>=<value>`` line, and :func:`match` requires a
    rule to match the *whole* value (sdp-transform's ``re.match`` accepts any prefix, so
    ``a=rtcp:abc`` "matched" with an empty port). Every failure is an :class:`SdpError`.
W4  ``write()`` crashes. An empty port, ``a=rtcp:abc`` or a bad ``m=`` port reach ``write()``
    as ``''`` or as an empty media dict and it raises ``TypeError``/``KeyError``. Our writer
    input is built only from the typed model (ints where the writer formats ``%d``), and
    :func:`write` turns any remaining exception into :class:`SdpError`.
W5  ``payloads`` is an ``int`` for one payload type and a ``str`` for several. We never read
    it: the ``m=`` rule's format list is captured as a string and split by the model.
W6  ``a=ice-options`` keeps only its first token (``\\S*``); :data:`ICE_OPTIONS` captures the
    whole space-separated list (RFC 8839 ice-options grammar).
W7  ``b=`` knows only five bandwidth types; :data:`BANDWIDTH` accepts any token (RFC 8866
    §5.8, e.g. ``X-``) so no line is silently dropped.
W8  ``write()`` reorders lines into its own grammar order (v o s i u e p c b t r z a; then per
    m-line i c b a). That is valid SDP; compare parsed models, never bytes. Attributes we do
    not model are written verbatim, after the modelled ones, in their original order.
W9  ``a=ptime`` is written with ``%g`` (six significant digits: ``0.1234567`` comes back as
    ``0.123457``, ``0.00001`` as ``1e-05`` which its own grammar then refuses); we write ptime
    ourselves with :func:`format_ptime`, verbatim.
    Its grammar also lacks ``a=ice-mismatch`` (RFC 8839): :data:`ICE_MISMATCH` adds it.
W10 Line splitting. ``parse`` splits with ``str.splitlines``, which also breaks at U+2028,
    U+0085, form feed and other Unicode separators inside a value (``s=a\u2028b`` is cut to
    ``a``, ``a=tool:x\x85y`` to ``tool:x``). :func:`split_lines` splits at LF (and CRLF) only.
W11 Speed: ``parse`` tries up to ~60 regular expressions per ``a=`` line (about 270 µs for a
    30-line SDP here). We dispatch on the attribute name and only match the rules of the
    attributes we model; ``bench/bench_sdp.py`` measures both side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import sdp_transform
from sdp_transform.grammar import grammar as _GRAMMAR

from sdp.errors import SdpError

PINNED_VERSION: Final = "1.1.0"

# Bounds against unbounded memory/CPU on hostile input (a SIP body is at most a few KiB).
MAX_SDP_BYTES: Final = 256 * 1024
MAX_LINES: Final = 8192
MAX_MEDIA: Final = 64

_LINE_TYPES: Final = frozenset("vosiuepcbtrzkam")


@dataclass(frozen=True, slots=True)
class Rule:
    """One line rule: the compiled regular expression and what to call the line in errors."""

    what: str
    pattern: re.Pattern[str]


def _grammar_rule(letter: str, key: str, what: str) -> Rule:
    """sdp-transform's own rule for ``letter=`` lines whose ``name``/``push`` key is ``key``."""
    for obj in _GRAMMAR[letter]:
        if obj.get("name") == key or obj.get("push") == key:
            reg = obj["reg"]
            return Rule(what, reg if isinstance(reg, re.Pattern) else re.compile(reg))
    raise LookupError(f"sdp-transform grammar has no rule {letter}={key}")  # pragma: no cover


def _override(what: str, regex: str) -> Rule:
    return Rule(what, re.compile(regex))


# --- rules taken from sdp-transform's grammar (W1: applied without coercion) -------------------
VERSION: Final = _grammar_rule("v", "version", "v=")
ORIGIN: Final = _grammar_rule("o", "origin", "o=")
CONNECTION: Final = _grammar_rule("c", "connection", "c=")
TIMING: Final = _grammar_rule("t", "timing", "t=")
MEDIA: Final = Rule("m=", re.compile(_GRAMMAR["m"][0]["reg"]))  # the m= rule has no name key
RTPMAP: Final = _grammar_rule("a", "rtp", "a=rtpmap")
FMTP: Final = _grammar_rule("a", "fmtp", "a=fmtp")
RTCP: Final = _grammar_rule("a", "rtcp", "a=rtcp")
PTIME: Final = _grammar_rule("a", "ptime", "a=ptime")
DIRECTION: Final = _grammar_rule("a", "direction", "direction attribute")
ICE_LITE: Final = _grammar_rule("a", "icelite", "a=ice-lite")
ICE_UFRAG: Final = _grammar_rule("a", "iceUfrag", "a=ice-ufrag")
ICE_PWD: Final = _grammar_rule("a", "icePwd", "a=ice-pwd")
END_OF_CANDIDATES: Final = _grammar_rule("a", "endOfCandidates", "a=end-of-candidates")
REMOTE_CANDIDATES: Final = _grammar_rule("a", "remoteCandidates", "a=remote-candidates")
RTCP_MUX: Final = _grammar_rule("a", "rtcpMux", "a=rtcp-mux")

# --- overrides of defective rules, and rules sdp-transform lacks -------------------------------
# W2: RFC 8839 §5.1 candidate-attribute; everything after "typ <type>" is name/value pairs.
CANDIDATE: Final = _override(
    "a=candidate",
    r"^candidate:(\S+) (\S+) (\S+) (\S+) (\S+) (\S+) typ (\S+)((?: \S+ \S+)*)",
)
# W6: all the ice-options tokens, not just the first.
ICE_OPTIONS: Final = _override("a=ice-options", r"^ice-options:(\S+(?: \S+)*)")
# W7: any bandwidth type token.
BANDWIDTH: Final = _override("b=", r"^([A-Za-z0-9_.+-]+):(\d+)")
# RFC 8839 a=ice-mismatch; absent from sdp-transform's grammar.
ICE_MISMATCH: Final = _override("a=ice-mismatch", r"^(ice-mismatch)")
REMOTE_CANDIDATE_TRIPLES: Final = _override(
    "a=remote-candidates", r"^(\d+ \S+ \d+(?: \d+ \S+ \d+)*)"
)

# RFC 8866 §9 att-field = token
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def match(rule: Rule, value: str, line: int | None = None) -> tuple[str | None, ...]:
    """The groups of ``rule`` matching all of ``value``, as the exact strings on the wire.

    W1 + W3: no numeric coercion, and a partial match is an error, not a half-filled field.
    """
    m = rule.pattern.fullmatch(value)
    if m is None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise SdpError(f"malformed {rule.what}: {shown!r}", line)
    return m.groups()


def split_lines(text: str | bytes) -> list[tuple[int, str, str]]:
    """``(line number, type letter, value)`` for each line (W3: anything else is refused).

    Accepts CRLF and bare LF line ends; ignores blank lines (typically a trailing one) and
    trailing spaces/tabs (seen in the field after ``m=`` and flag attributes).
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        if len(text) > MAX_SDP_BYTES:
            raise SdpError("SDP too large")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not UTF-8 (byte {exc.start})") from None
    elif not isinstance(text, str):
        raise SdpError(f"SDP must be str or bytes, not {type(text).__name__}")
    if len(text) > MAX_SDP_BYTES:
        raise SdpError("SDP too large")
    if "\x00" in text:
        raise SdpError("NUL character in SDP")
    out: list[tuple[int, str, str]] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = (raw[:-1] if raw.endswith("\r") else raw).rstrip(" \t")
        if not line.strip():
            continue
        if "\r" in line:
            raise SdpError("bare CR inside a line", number)
        if len(line) < 2 or line[1] != "=" or line[0] not in _LINE_TYPES:
            shown = line if len(line) <= 40 else line[:37] + "..."
            raise SdpError(f"not an SDP line: {shown!r}", number)
        out.append((number, line[0], line[2:]))
        if len(out) > MAX_LINES:
            raise SdpError("too many SDP lines", number)
    return out


def is_token(text: str) -> bool:
    """RFC 4566 token (m= media kind, a=mid identification-tag, attribute names)."""
    return bool(_TOKEN.fullmatch(text))


def attribute_name(value: str, line: int | None = None) -> str:
    """The att-field of an ``a=`` value (text before the first ``:``), checked to be a token."""
    name = value.split(":", 1)[0]
    if not _TOKEN.fullmatch(name):
        raise SdpError(f"malformed attribute name: {name[:40]!r}", line)
    return name


def format_ptime(ptime: float) -> str:
    """``a=ptime`` value in plain decimal notation, exact (W9): ``20``, ``0.125``, ``0.00001``."""
    if float(ptime).is_integer():
        return str(int(ptime))
    return format(Decimal(repr(float(ptime))), "f")


def write(session: dict[str, Any]) -> str:
    """``sdp_transform.write`` of a dict built from the typed model (W4, W8). CRLF lines.

    Attribute lines listed in ``invalid`` (sdp-transform's bucket for attributes it does not
    know) are written verbatim; we put every attribute we format ourselves there.
    """
    try:
        return str(sdp_transform.write(session))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SdpError(f"cannot write SDP: {exc}") from None
