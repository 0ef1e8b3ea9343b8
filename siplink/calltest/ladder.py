"""Ladder (sequence) diagrams of a call from its trace: text for a terminal, standalone HTML.

Both are views of the one trace of :class:`ice.trace.TraceRecord` s a call leaves (SIP from
the transaction layer, STUN checks and ICE state changes from the agent; the agent's TURN
exchange with its server is in the pcap export, not here). We are always the first column
(``siplink``); every remote transport address that sent or received a SIP or STUN packet
gets a column of its own, in order of first appearance. Each packet is an arrow
between our column and the peer's; ICE milestones (checks start, nominated, selected,
completed, failed) are notes in our column. RTP packets are left out (one per 20 ms would
drown the signalling); use the pcap export for them.

:func:`ladder_entries` selects and labels the records; :func:`render_text` and
:func:`render_html` draw them; :func:`call_records` cuts one call out of a shared trace.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ice.address import Address, format_address
from ice.trace import TraceRecord

__all__ = ["LadderEntry", "call_records", "ladder_entries", "render_html", "render_text"]

# ICE "event" records worth a note in the ladder (pair state churn is left out)
_MILESTONES = re.compile(r"^(gathered|checks start|nominated|selected|stream \d+ (Completed|"
                         r"Failed)|ICE connected|ICE restart|call ends|consent expired|"
                         r"learnt|role ->|relayed candidate|STUN server .* unreachable)")
_STUN_CLASS = {"request": "req", "success": "ok", "error": "err", "indication": "ind"}


@dataclass(frozen=True, slots=True)
class LadderEntry:
    time: float
    direction: str            # "in" | "out" | "event"
    protocol: str             # "sip" | "stun" | "ice"
    peer: str                 # column name of the remote side ("" for a note)
    label: str                # short text on the arrow
    detail: str               # the whole message / record, for the HTML view


def _fmt(addr: Address) -> str:
    return format_address(addr[0], addr[1])


def _stun_label(r: TraceRecord) -> str:
    """``Binding req`` / ``Binding ok`` plus USE-CANDIDATE for a nominating check."""
    try:
        from ice import stun

        msg = stun.decode(r.raw)
    except Exception:  # noqa: BLE001 - an undecodable packet still gets a label
        return r.summary.split(" from ")[0].split(" to ")[0][:40]
    name = msg.method.name.replace("_", "-").title()
    label = f"{name} {_STUN_CLASS.get(msg.cls.name.lower(), msg.cls.name.lower())}"
    err = msg.error_code
    if err is not None:
        label += f" {err[0]}"
    if msg.get(stun.Attr.USE_CANDIDATE) is not None:
        label += " USE-CAND"
    if r.summary.startswith("consent"):
        label = "consent " + label
    return label


def sip_label(r: TraceRecord) -> str:
    """``INVITE sip:bob@host`` / ``200 OK (INVITE)``: the message's own start line, with the
    CSeq method for responses; the summary when the record holds no message."""
    first = (r.detail or r.summary).split("\r\n", 1)[0].split("\n", 1)[0].strip()
    m = re.match(r"^SIP/2\.0 (\d{3} .*)$", first)
    if m:
        label = m.group(1)
        cseq = re.search(r"\nCSeq:[ \t]*\d+[ \t]+(\w+)", r.detail, re.I)
        return f"{label} ({cseq.group(1)})" if cseq else label
    m = re.match(r"^(\w+) (\S+) SIP/2\.0$", first)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    return re.sub(r" \(\d+ (\w+)\)$", r" (\1)", r.summary)


def ladder_entries(records: Iterable[TraceRecord]) -> list[LadderEntry]:
    """The records a ladder shows, labelled, in time order."""
    out: list[LadderEntry] = []
    for r in records:
        if r.direction in ("in", "out") and r.protocol in ("sip", "stun") and r.remote:
            if r.protocol == "sip":
                label = sip_label(r)
            else:
                label = _stun_label(r)
            detail = r.detail if r.protocol == "sip" else f"{r.summary}\n{r.detail}".strip()
            out.append(LadderEntry(r.time, r.direction, r.protocol, _fmt(r.remote), label,
                                   detail))
        elif r.direction == "event" and r.protocol == "ice" and _MILESTONES.match(r.summary):
            out.append(LadderEntry(r.time, "event", "ice", "", r.summary, r.detail))
    out.sort(key=lambda e: e.time)
    return out


def call_records(sip: Iterable[TraceRecord], call_id: str,
                 media: Iterable[TraceRecord] = ()) -> list[TraceRecord]:
    """The records of one call: the SIP messages carrying ``call_id`` and the call's own
    media-session trace (STUN, ICE, RTP), merged in time order."""
    needle = f"\ncall-id: {call_id.lower()}\r"
    compact = f"\ni: {call_id.lower()}\r"
    picked = [r for r in sip if r.protocol == "sip"
              and (needle in r.detail.lower() or compact in r.detail.lower())]
    picked += list(media)
    picked.sort(key=lambda r: r.time)
    return picked


def _columns(entries: Sequence[LadderEntry]) -> list[str]:
    cols: list[str] = []
    for e in entries:
        if e.peer and e.peer not in cols:
            cols.append(e.peer)
    return cols


def render_text(records: Iterable[TraceRecord], *, width: int = 24, me: str = "siplink",
                start: float | None = None, max_label: int | None = None) -> str:
    """A text ladder: one line per message, time in ms since ``start`` (first record)."""
    entries = ladder_entries(records)
    if not entries:
        return "(empty trace)\n"
    t0 = entries[0].time if start is None else start
    cols = [me] + _columns(entries)
    if max_label is None:
        longest = max((len(e.label) for e in entries if e.direction != "event"), default=10)
        width = max(width, min(longest + 6, 48))
    width = max(width, 12)
    pos = {name: i * width + width // 2 for i, name in enumerate(cols)}
    total = len(cols) * width
    lines = []
    head = [" "] * (total + width)
    for name in cols:
        label = name[:width - 2]
        at = max(0, pos[name] - len(label) // 2)
        head[at:at + len(label)] = list(label)
    lines.append(f"{'ms':>9}  " + "".join(head).rstrip())
    bars = [" "] * total
    for name in cols:
        bars[pos[name]] = "|"
    lines.append(f"{'':>9}  " + "".join(bars).rstrip())
    for e in entries:
        row = [" "] * total
        for name in cols:
            row[pos[name]] = "|"
        if e.direction == "event":
            text = f"* {e.label}"
            row_s = "".join(row[:pos[me] + 1]) + " " + text
        else:
            a, b = pos[me], pos[e.peer]
            span = b - a - 1
            label = e.label if max_label is None else e.label[:max_label]
            if len(label) > span - 2:
                label = label[:max(span - 3, 1)] + "~"
            body = f" {label} ".center(span, "-")
            if e.direction == "out":
                body = body[:-1] + ">"
            else:
                body = "<" + body[1:]
            row[a + 1:b] = list(body)
            row_s = "".join(row).rstrip()
        lines.append(f"{(e.time - t0) * 1000:9.1f}  {row_s}")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:1em}
table{border-collapse:collapse;font-size:13px}
td,th{padding:1px 4px;white-space:nowrap}
th{position:sticky;top:0;background:#fff;border-bottom:2px solid #444}
td.t{color:#666;text-align:right;font-family:monospace}
td.lane{border-left:1px solid #bbb;border-right:1px solid #bbb;min-width:11em}
td.arrow{text-align:center;font-family:monospace;cursor:pointer}
td.arrow.sip{color:#0645ad}td.arrow.stun{color:#1b7a1b}
td.note{color:#8a4b00;font-style:italic}
details pre{margin:0 0 0 2em;background:#f4f4f4;padding:4px;font-size:12px}
"""


def render_html(records: Iterable[TraceRecord], *, title: str = "siplink call",
                me: str = "siplink") -> str:
    """A standalone HTML ladder (no scripts or external files): a table with one column per
    participant; each arrow row folds open to the whole message."""
    entries = ladder_entries(records)
    cols = [me] + _columns(entries)
    t0 = entries[0].time if entries else 0.0
    esc = html.escape
    out = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{esc(title)}</title>"
           f"<style>{_CSS}</style></head><body>\n<h1>{esc(title)}</h1>\n"
           f"<p>{len(entries)} messages and ICE events. Click an arrow for the message.</p>\n"
           "<table>\n<tr><th>ms</th>"]
    out += [f"<th>{esc(c)}</th>" for c in cols]
    out.append("</tr>\n")
    n = len(cols)
    for e in entries:
        t = f"<td class='t'>{(e.time - t0) * 1000:.1f}</td>"
        if e.direction == "event":
            out.append(f"<tr class='note'>{t}<td class='note' colspan='{n}'>* "
                       f"{esc(e.label)}</td></tr>\n")
            continue
        j = cols.index(e.peer)
        arrow = (f"&#8212;&#8212; {esc(e.label)} &#8212;&#9654;" if e.direction == "out"
                 else f"&#9664;&#8212; {esc(e.label)} &#8212;&#8212;")
        cells = [t, f"<td class='arrow {e.protocol}' colspan='{j + 1}'><details><summary>"
                 f"{arrow}</summary><pre>{esc(e.detail)}</pre></details></td>"]
        cells += ["<td class='lane'></td>"] * (n - j - 1)
        out.append(f"<tr data-dir='{e.direction}' data-proto='{e.protocol}' "
                   f"data-peer='{esc(e.peer)}'>" + "".join(cells) + "</tr>\n")
    out.append("</table>\n</body></html>\n")
    return "".join(out)
