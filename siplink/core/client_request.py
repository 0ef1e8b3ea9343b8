"""One request the user agent sends, through its transactions to a final response.

:class:`ClientRequest` builds each attempt with ``build(cseq, auth_headers)``: the core sends
it again with credentials after a 401/407 (RFC 3261 §22.2, also in a dialog), with a higher
Session-Expires after a 422 (RFC 4028 §7.4, ``on_retry``), to the Contacts of a 3xx in q order
when it has a ``uri`` (RFC 3261 §8.1.3.4, §16.6 step 1 loop rule: each target once, at most
``MAX_REDIRECTS`` hops), and reports the outcome in
:class:`~siplink.core.events.RequestCompleted`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from siplink.core.account import Account
from siplink.core.errors import SipError
from siplink.core.transaction import ClientKey, Target
from siplink.sip.message import Request, Response
from siplink.sip.uri import SipUri

__all__ = ["ClientRequest", "Headers"]

Headers = list[tuple[str, str]]
# hops a request follows through 3xx responses before the last one is its outcome
MAX_REDIRECTS = 5


class ClientRequest:
    """One request we send, followed through auth challenges (and 422) to its final
    response. ``build(cseq, auth_headers)`` makes each attempt; ``hop`` is the URI whose host
    the request goes to (proxy, Route or Request-URI), ``transport`` overrides its own."""

    def __init__(self, build: Callable[[int, Headers], Request], cseq: int, hop: SipUri,
                 *, account: Account | None = None, transport: str | None = None,
                 target: Target | None = None) -> None:
        self.build = build
        self.cseq = cseq
        self.hop = hop
        self.transport = transport
        self.account = account
        self.target = target                 # once resolved (or given)
        self.preauth = False                 # send credentials for known realms up front
        self.on_provisional: Callable[[Response], None] | None = None
        self.on_final: Callable[[Response], None] | None = None
        self.on_error: Callable[[SipError], None] | None = None
        self.on_retry: Callable[[Response], bool] | None = None   # True: resend (e.g. 422)
        self.last_auth: Headers = []
        self.request: Request | None = None
        self.key: ClientKey | None = None
        self.auth_tries = 0
        self.done = False
        self.context: Any = None              # the driver's (its Deferred, for instance)
        # RFC 3261 §8.1.3.4 redirects: ``uri`` is the Request-URI of the current attempt
        # (None: the request does not follow 3xx), ``redirects`` the chain followed so far
        # as (the status that moved it on: the 3xx, or the failure of the previous Contact; the
        # Contact tried next), ``alternatives`` the Contacts of
        # the last 3xx not tried yet, in q order, ``tried`` every Request-URI used
        self.uri: str | None = None
        self.redirects: list[tuple[int, str]] = []
        self.alternatives: list[str] = []
        self.tried: set[str] = set()
        self.max_redirects = MAX_REDIRECTS
        # RFC 3261 §18.1.1: True once TCP failed for a large request: UDP it is
        self.udp_only = False
        # RFC 3263 §4.3: the other targets of the hop (tried in order when one times out,
        # fails at the transport or answers 503), and the ones given up on (target, why)
        self.next_targets: list[Target] = []
        self.failovers: list[tuple[str, str]] = []
