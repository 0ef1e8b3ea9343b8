"""SIP dialogs (RFC 3261 §12): early and confirmed dialogs, route sets, loose routing, CSeq.

A :class:`Dialog` is plain state: the UA core creates one from an INVITE it answers
(:meth:`Dialog.from_uas`) or from a 1xx-with-tag / 2xx it receives (:meth:`Dialog.from_uac`),
builds in-dialog requests with :meth:`Dialog.create_request` (§12.2.1.1, loose routing per
§16.12.1.1, strict-router compatibility), checks incoming in-dialog requests with
:meth:`Dialog.receive_request` (§12.2.2 CSeq ordering, target refresh) and learns the
remote target again from a 2xx to a re-INVITE (:meth:`Dialog.refresh_target`).
No I/O, no clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

from siplink.sip.message import Request, Response, make_request
from siplink.sip.uri import SipUri

__all__ = ["Dialog", "DialogId", "DialogState"]

DialogId = tuple[str, str, str]   # (Call-ID, local tag, remote tag)

TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _strip_tag(name_addr: str) -> str:
    """A From/To value without its ``tag`` parameter (the rest is kept as is)."""
    out = []
    for part in _split_params(name_addr):
        if part.strip().lower().startswith("tag="):
            continue
        out.append(part)
    return ";".join(out)


def _split_params(value: str) -> list[str]:
    """Split on ``;`` outside ``<...>`` and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, c in enumerate(value):
        if c == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and c == "<":
            depth += 1
        elif not quoted and c == ">":
            depth -= 1
        elif c == ";" and not quoted and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str                 # From value (our side), without tag
    remote_uri: str                # To value (their side), without tag
    remote_target: str             # URI from the peer's Contact
    route_set: list[str] = field(default_factory=list)   # Route values, "<uri;lr>"
    local_seq: int = 0
    remote_seq: int | None = None
    local_contact: str = ""
    secure: bool = False
    state: DialogState = DialogState.EARLY
    is_uac: bool = True

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -------------------------------------------------------------- creation
    @classmethod
    def from_uac(cls, request: Request, response: Response, local_contact: str = "") -> Dialog:
        """§12.1.2: the dialog a UAC gets from a 1xx (with To tag) or 2xx to ``request``."""
        rr = [str(r) for r in response.record_route]
        rr.reverse()
        contact = response.contact
        target = str(contact[0].uri) if contact else str(request.uri)
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_strip_tag(str(request.from_)),
            remote_uri=_strip_tag(str(response.to)),
            remote_target=target,
            route_set=rr,
            local_seq=request.cseq.number,
            local_contact=local_contact,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
            is_uac=True,
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, local_contact: str = "",
                 confirmed: bool = False, local_seq: int | None = None) -> Dialog:
        """§12.1.1: the dialog a UAS creates when it answers ``request`` with a tag."""
        contact = request.contact
        target = str(contact[0].uri) if contact else ""
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_strip_tag(str(request.to)),
            remote_uri=_strip_tag(str(request.from_)),
            remote_target=target,
            route_set=[str(r) for r in request.record_route],
            local_seq=local_seq if local_seq is not None else random.randint(1, 2**16),
            remote_seq=request.cseq.number,
            local_contact=local_contact,
            secure=request.uri.scheme == "sips",
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
            is_uac=False,
        )

    # -------------------------------------------------------------- updates
    def confirm(self, response: Response | None = None) -> None:
        """Early -> confirmed; a 2xx (UAC side) recomputes the route set and target."""
        if response is not None and self.is_uac:
            rr = [str(r) for r in response.record_route]
            rr.reverse()
            self.route_set = rr
            self.refresh_target(response)
        self.state = DialogState.CONFIRMED

    def refresh_target(self, msg: Request | Response) -> None:
        contact = msg.contact
        if contact:
            self.remote_target = str(contact[0].uri)

    def receive_request(self, request: Request) -> int | None:
        """§12.2.2: check CSeq order; refresh the target. Returns an error status or None."""
        n = request.cseq.number
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and n < self.remote_seq:
                return 500
            self.remote_seq = n
        if request.method in TARGET_REFRESH:
            self.refresh_target(request)
        return None

    # -------------------------------------------------------------- requests
    def next_hop(self) -> SipUri:
        """The URI the request goes to first: the first route (loose or strict) or the target."""
        if self.route_set:
            return SipUri.parse(_uri_of(self.route_set[0]))
        return SipUri.parse(self.remote_target)

    def create_request(self, method: str, *, via: str, body: bytes = b"",
                       content_type: str | None = None,
                       headers: list[tuple[str, str]] | None = None,
                       cseq: int | None = None) -> Request:
        """§12.2.1.1 an in-dialog request. ACK and CANCEL pass the CSeq they need."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        routes = list(self.route_set)
        ruri = self.remote_target
        if routes and ";lr" not in _uri_of(routes[0]).lower():
            # strict router (RFC 2543): it becomes the Request-URI, the target the last route
            ruri = _uri_of(routes[0])
            routes = routes[1:] + [f"<{self.remote_target}>"]
        hdrs: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
        hdrs += [("Route", r) for r in routes]
        hdrs += [
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if self.local_contact and method in TARGET_REFRESH | {"INVITE"}:
            hdrs.append(("Contact", self.local_contact))
        hdrs += headers or []
        if body:
            hdrs.append(("Content-Type", content_type or "application/sdp"))
        return make_request(method, ruri, hdrs, body)


def _uri_of(name_addr: str) -> str:
    s = name_addr.strip()
    lt = s.find("<")
    if lt >= 0:
        gt = s.find(">", lt)
        return s[lt + 1:gt]
    return _split_params(s)[0].strip()
