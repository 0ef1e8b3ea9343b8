"""HTTP Digest access authentication as SIP uses it (RFC 3261 §22.4, RFC 7616, RFC 8760).

Client side: :func:`parse_challenge` reads a ``WWW-Authenticate`` / ``Proxy-Authenticate``
value, :func:`build_authorization` computes an ``Authorization`` / ``Proxy-Authorization``
value, and :class:`DigestClient` keeps the nonce count per nonce across requests.

Server side: :class:`DigestServer` issues challenges whose nonce is an HMAC-signed timestamp
(so the server keeps no state per challenge), verifies credentials, and rejects stale nonces
(answering with ``stale=true``), replayed nonce counts and a wrong realm or URI.

Algorithms: MD5, MD5-sess, SHA-256, SHA-256-sess (and SHA-512-256 when hashlib offers it);
qop ``auth`` and ``auth-int``; no qop (the RFC 2069 legacy form).

This module is sans-I/O: it never reads the clock (``now`` is passed in) and never logs a
password or a hash derived from one.

Header values are split into scheme and auth-params by the SIP codec's parser
(:class:`siplink.sip.headers.AuthenticateHeader`); this module interprets the Digest parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.logger import Logger

from ice.trace import Trace, TraceRecord
from siplink.sip.errors import SipParseError
from siplink.sip.headers import AuthenticateHeader

log = Logger()

__all__ = [
    "ALGORITHMS",
    "AuthDecision",
    "AuthResult",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "build_authorization",
    "choose_challenges",
    "digest_response",
    "parse_challenge",
    "parse_credentials",
]


class DigestError(ValueError):
    """A challenge or credentials header that cannot be parsed or used."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _octets(text: str) -> bytes:
    """UTF-8 of any str, even one carrying lone surrogates from a lenient decoder."""
    return text.encode("utf-8", "surrogatepass")


def _hasher(name: str) -> Callable[[bytes], str]:
    def h(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return h


ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": _hasher("md5"),
    "SHA-256": _hasher("sha256"),
}
try:  # RFC 7616 names it; OpenSSL builds differ
    hashlib.new("sha512_256", b"")
    ALGORITHMS["SHA-512-256"] = _hasher("sha512_256")
except ValueError:  # pragma: no cover - depends on the OpenSSL build
    pass

# Bounds: a header is at most this long, and has at most this many parameters.
_MAX_HEADER = 8192
_MAX_PARAMS = 64


def _base_algorithm(algorithm: str) -> tuple[Callable[[bytes], str], bool]:
    """(hash function, is-session-variant) for an algorithm token, case-insensitively."""
    name = algorithm.upper()
    sess = name.endswith("-SESS")
    if sess:
        name = name[: -len("-SESS")]
    try:
        return ALGORITHMS[name], sess
    except KeyError:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}") from None


# ---------------------------------------------------------------------------- parsing

def _split_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Scheme k=v, k="quoted", ...`` into the scheme and a dict of lower-cased keys.

    The grammar is the SIP codec's (:class:`siplink.sip.headers.AuthenticateHeader`); its
    :class:`~siplink.sip.errors.SipParseError` becomes :class:`DigestError` here.
    """
    if not isinstance(value, str):
        raise DigestError("header value is not text")
    if len(value) > _MAX_HEADER:
        raise DigestError("authentication header too long")
    try:
        parsed = AuthenticateHeader.parse(value)
    except SipParseError as e:
        raise DigestError(f"malformed authentication header: {e}") from None
    if "" in parsed.params:
        raise DigestError("authentication header has no parameters")
    if len(parsed.params) > _MAX_PARAMS:
        raise DigestError("too many authentication parameters")
    return parsed.scheme, dict(parsed.params)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed Digest challenge (``WWW-Authenticate`` or ``Proxy-Authenticate``)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()     # offered qop values, lower-case; () = RFC 2069 legacy
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False
    params: tuple[tuple[str, str], ...] = ()   # every parameter as received

    def __str__(self) -> str:
        return build_challenge(self)


def build_challenge(ch: Challenge) -> str:
    """The header value for a challenge (what a server puts in ``WWW-Authenticate``)."""
    parts = [f"realm={_quote(ch.realm)}"]
    if ch.domain is not None:
        parts.append(f"domain={_quote(ch.domain)}")
    parts.append(f"nonce={_quote(ch.nonce)}")
    if ch.opaque is not None:
        parts.append(f"opaque={_quote(ch.opaque)}")
    if ch.stale:
        parts.append("stale=TRUE")
    parts.append(f"algorithm={ch.algorithm}")
    if ch.qop:
        parts.append(f"qop={_quote(','.join(ch.qop))}")
    if ch.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Parse a ``WWW-Authenticate``/``Proxy-Authenticate`` Digest challenge."""
    scheme, p = _split_auth_header(value)
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}")
    if "realm" not in p:
        raise DigestError("challenge has no realm")
    if "nonce" not in p:
        raise DigestError("challenge has no nonce")
    algorithm = p.get("algorithm", "MD5")
    _base_algorithm(algorithm)  # refuse what we cannot compute, now
    qop = tuple(q.strip().lower() for q in p["qop"].split(",") if q.strip()) if "qop" in p else ()
    return Challenge(
        realm=p["realm"],
        nonce=p["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=p.get("opaque"),
        stale=p.get("stale", "").lower() == "true",
        domain=p.get("domain"),
        userhash=p.get("userhash", "").lower() == "true",
        params=tuple(p.items()),
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """A parsed Digest ``Authorization``/``Proxy-Authorization`` value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False

    def __repr__(self) -> str:  # the response is password-derived: keep it out of logs
        return (f"Credentials(username={self.username!r}, realm={self.realm!r}, "
                f"uri={self.uri!r}, algorithm={self.algorithm!r}, qop={self.qop!r}, nc={self.nc!r})")


def parse_credentials(value: str) -> Credentials:
    """Parse a Digest ``Authorization``/``Proxy-Authorization`` value."""
    scheme, p = _split_auth_header(value)
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}")
    for k in ("username", "realm", "nonce", "uri", "response"):
        if k not in p:
            raise DigestError(f"credentials have no {k}")
    qop = p.get("qop")
    if qop is not None:
        qop = qop.lower()
        if qop not in ("auth", "auth-int"):
            raise DigestError(f"unsupported qop {qop!r}")
        if "nc" not in p or "cnonce" not in p:
            raise DigestError("qop given without nc and cnonce")
        nc = p["nc"]
        if len(nc) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc):
            raise DigestError("nc is not 8 hex digits")
    return Credentials(
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"],
        algorithm=p.get("algorithm", "MD5"),
        qop=qop,
        nc=p.get("nc"),
        cnonce=p.get("cnonce"),
        opaque=p.get("opaque"),
        userhash=p.get("userhash", "").lower() == "true",
    )


# ---------------------------------------------------------------------------- computation


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value per RFC 7616 §3.4.1 (and RFC 2617 §3.2.2, RFC 2069 without qop)."""
    h, sess = _base_algorithm(algorithm)
    ha1 = h(_octets(f"{username}:{realm}:{password}"))
    if sess:
        if cnonce is None:
            raise DigestError("a -sess algorithm needs a cnonce")
        ha1 = h(_octets(f"{ha1}:{nonce}:{cnonce}"))
    if qop == "auth-int":
        a2 = f"{method}:{uri}:{h(body)}"
    else:
        a2 = f"{method}:{uri}"
    ha2 = h(_octets(a2))
    if qop in ("auth", "auth-int"):
        if nc is None or cnonce is None:
            raise DigestError("qop needs nc and cnonce")
        return h(_octets(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
    if qop is not None:
        raise DigestError(f"unsupported qop {qop!r}")
    return h(_octets(f"{ha1}:{nonce}:{ha2}"))


def _new_cnonce() -> str:
    return base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")


def _choose_qop(challenge: Challenge, body: bytes, prefer_auth_int: bool) -> str | None:
    if not challenge.qop:
        return None
    if prefer_auth_int and "auth-int" in challenge.qop:
        return "auth-int"
    if "auth" in challenge.qop:
        return "auth"
    if "auth-int" in challenge.qop:
        return "auth-int"
    raise DigestError(f"no supported qop in {challenge.qop!r}")


def build_authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
    qop: str | None = None,
) -> str:
    """The ``Authorization`` (or ``Proxy-Authorization``) value answering ``challenge``.

    ``qop`` forces a choice among the offered ones; by default ``auth`` is preferred, then
    ``auth-int``. ``cnonce`` is random unless given (tests pass the RFC's).
    """
    if qop is None:
        qop = _choose_qop(challenge, body, prefer_auth_int=False)
    elif challenge.qop and qop not in challenge.qop:
        raise DigestError(f"qop {qop!r} was not offered")
    elif not challenge.qop:
        raise DigestError("the challenge offers no qop")
    h, sess = _base_algorithm(challenge.algorithm)
    if not 1 <= nc <= 0xFFFFFFFF:
        raise DigestError("nonce count out of range")
    nc_s = f"{nc:08x}"
    if cnonce is None and (qop is not None or sess):
        cnonce = _new_cnonce()
    response = digest_response(
        algorithm=challenge.algorithm, username=username, realm=challenge.realm,
        password=password, method=method, uri=uri, nonce=challenge.nonce,
        qop=qop, nc=nc_s if qop else None, cnonce=cnonce, body=body,
    )
    shown_user = h(_octets(f"{username}:{challenge.realm}")) if challenge.userhash else username
    parts = [
        f"username={_quote(shown_user)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if cnonce is not None and (qop is not None or sess):
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_s}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def choose_challenges(values: list[str]) -> list[Challenge]:
    """Per realm, the first (topmost) challenge we can answer (RFC 8760 §2.4)."""
    chosen: dict[str, Challenge] = {}
    for v in values:
        try:
            ch = parse_challenge(v)
        except DigestError:
            continue
        chosen.setdefault(ch.realm, ch)
    return list(chosen.values())


class DigestClient:
    """Answers challenges for one set of credentials, counting nc per nonce (RFC 7616 §3.4)."""

    def __init__(self, username: str, password: str, *, max_nonces: int = 64) -> None:
        self.username = username
        self._password = password
        self._nc: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._max = max_nonces
        self._last: dict[str, Challenge] = {}

    def __repr__(self) -> str:
        return f"DigestClient(username={self.username!r})"

    def authorize(self, challenge: Challenge | str, method: str, uri: str, *,
                  body: bytes = b"", qop: str | None = None) -> str:
        """A header value for ``method uri`` answering ``challenge``; increments nc."""
        ch = parse_challenge(challenge) if isinstance(challenge, str) else challenge
        key = (ch.realm, ch.nonce)
        nc = self._nc.pop(key, 0) + 1
        self._nc[key] = nc
        while len(self._nc) > self._max:
            self._nc.popitem(last=False)
        self._last[ch.realm] = ch
        return build_authorization(ch, method, uri, self.username, self._password,
                                   body=body, nc=nc, qop=qop)

    def answer(self, challenges: list[str], method: str, uri: str, *,
               body: bytes = b"") -> list[str]:
        """Credentials for a 401/407: one value per realm, answering the topmost challenge
        of that realm whose algorithm we support (RFC 8760 §2.4). Unparseable or
        unsupported challenges are skipped; an empty list means none could be answered."""
        return [self.authorize(ch, method, uri, body=body)
                for ch in choose_challenges(challenges)]

    def preemptive(self, realm: str, method: str, uri: str, *, body: bytes = b"") -> str | None:
        """Credentials for a new request in ``realm`` reusing the last nonce (None if none)."""
        ch = self._last.get(realm)
        if ch is None:
            return None
        return self.authorize(ch, method, uri, body=body)

    def nonce_count(self, challenge: Challenge) -> int:
        return self._nc.get((challenge.realm, challenge.nonce), 0)


# ---------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of :meth:`DigestServer.verify`."""

    ok: bool
    reason: str                 # "ok" or why not, fit for a log line (never secret)
    username: str | None = None
    stale: bool = False         # the nonce was genuine but expired: challenge with stale=true


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """What a UAS/registrar answers, from :meth:`DigestServer.authenticate`."""

    ok: bool
    status: int                 # 0 when ok; 401/407 to (re)challenge; 403 refused
    reason: str
    username: str | None = None
    headers: tuple[tuple[str, str], ...] = ()   # header fields to add to the response


PasswordLookup = Callable[[str, str], "str | None"]


@dataclass
class _NonceState:
    expires: float
    highest_nc: int = 0
    seen_without_qop: bool = False
    cnonces: set[str] = field(default_factory=set)


class DigestServer:
    """Issues Digest challenges and verifies credentials (for a registrar or a UAS).

    ``lookup_password(username, realm)`` returns the password or None for an unknown user.
    Nonces are ``base64(timestamp || random || HMAC(secret, timestamp || random))``: the server
    can tell a genuine expired nonce (-> ``stale``) from a forged one without state. To refuse
    replays it remembers, per nonce it has seen used, the highest nc (bounded: at most
    ``max_tracked`` nonces, dropped once they expire).
    """

    def __init__(
        self,
        realm: str,
        lookup_password: PasswordLookup,
        *,
        nonce_lifetime: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        qop: tuple[str, ...] = ("auth",),
        secret: bytes | None = None,
        opaque: str | None = None,
        max_tracked: int = 10_000,
        trace: Trace | None = None,
    ) -> None:
        for a in algorithms:
            _base_algorithm(a)
        self.realm = realm
        self._lookup = lookup_password
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = algorithms
        self.qop = qop
        self._secret = secret if secret is not None else os.urandom(32)
        self.opaque = opaque
        self._max_tracked = max_tracked
        self._used: OrderedDict[str, _NonceState] = OrderedDict()
        self.trace = trace

    def __repr__(self) -> str:
        return f"DigestServer(realm={self.realm!r})"

    # -- nonces

    def make_nonce(self, now: float) -> str:
        body = struct.pack("!d", now) + os.urandom(8)
        mac = hmac.new(self._secret, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def _nonce_time(self, nonce: str) -> float | None:
        """Issue time of a nonce we signed, or None when it is not ours."""
        if len(nonce) > 64:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32:
            return None
        body, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, hmac.new(self._secret, body, hashlib.sha256).digest()[:16]):
            return None
        (issued,) = struct.unpack("!d", body[:8])
        return float(issued)

    # -- challenges

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """One ``WWW-Authenticate`` value per algorithm, most preferred first (RFC 8760 §2.4)."""
        nonce = self.make_nonce(now)
        out = [
            build_challenge(Challenge(realm=self.realm, nonce=nonce, algorithm=a, qop=self.qop,
                                      opaque=self.opaque, stale=stale))
            for a in self.algorithms
        ]
        self._record(now, "out", f"challenge realm={self.realm} stale={stale}")
        return out

    def challenge(self, now: float, *, stale: bool = False, algorithm: str | None = None) -> str:
        """One challenge value (the preferred algorithm unless ``algorithm`` is given)."""
        a = algorithm or self.algorithms[0]
        _base_algorithm(a)
        return build_challenge(Challenge(realm=self.realm, nonce=self.make_nonce(now),
                                         algorithm=a, qop=self.qop, opaque=self.opaque,
                                         stale=stale))

    # -- verification

    def verify(self, authorization: str | Credentials, method: str, uri: str, now: float,
               *, body: bytes = b"") -> AuthResult:
        """Check credentials for a request ``method`` to request-URI ``uri`` at time ``now``."""
        result = self._verify(authorization, method, uri, now, body)
        self._record(now, "in", f"verify user={result.username} -> {result.reason}")
        if not result.ok:
            log.info("digest authentication refused: {reason} (user {user})",
                     reason=result.reason, user=result.username)
        return result

    def authenticate(self, authorizations: list[str], method: str, uri: str, now: float, *,
                     body: bytes = b"", proxy: bool = False,
                     refuse_status: int = 403) -> AuthDecision:
        """Decide a request from its ``Authorization`` (or, with ``proxy``,
        ``Proxy-Authorization``) values: accept, (re)challenge, or refuse.

        No credentials for our realm, an unknown (forged or foreign) nonce or a replay get a
        fresh challenge (``stale=true`` when the nonce had expired); a wrong password and an
        unknown user get the same ``refuse_status``, so users cannot be enumerated.
        """
        status = 407 if proxy else 401
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        last: AuthResult | None = None
        for value in authorizations:
            try:
                cred = parse_credentials(value)
            except DigestError:
                continue
            if cred.realm != self.realm:
                continue  # credentials for another hop
            last = self.verify(cred, method, uri, now, body=body)
            if last.ok:
                return AuthDecision(True, 0, "ok", last.username)
        if last is not None and last.reason in ("wrong response", "unknown user"):
            return AuthDecision(False, refuse_status, "wrong credentials", last.username)
        stale = last is not None and last.stale
        headers = tuple((name, v) for v in self.challenges(now, stale=stale))
        reason = "no credentials" if last is None else last.reason
        return AuthDecision(False, status, reason, last.username if last else None, headers)

    def _verify(self, authorization: str | Credentials, method: str, uri: str, now: float,
                body: bytes) -> AuthResult:
        try:
            cred = (parse_credentials(authorization) if isinstance(authorization, str)
                    else authorization)
        except DigestError as e:
            return AuthResult(False, f"malformed credentials: {e.reason}")
        user = cred.username
        if cred.realm != self.realm:
            return AuthResult(False, "wrong realm", user)
        if cred.uri != uri:
            return AuthResult(False, "uri does not match the request", user)
        if cred.userhash:
            return AuthResult(False, "userhash not supported", user)
        if not any(cred.algorithm.upper() == a.upper() for a in self.algorithms):
            return AuthResult(False, f"algorithm {cred.algorithm} not offered", user)
        if self.opaque is not None and cred.opaque != self.opaque:
            return AuthResult(False, "opaque does not match", user)
        if self.qop and cred.qop is None:
            return AuthResult(False, "qop required", user)
        if cred.qop is not None and cred.qop not in self.qop:
            return AuthResult(False, f"qop {cred.qop} not offered", user)
        issued = self._nonce_time(cred.nonce)
        if issued is None:
            return AuthResult(False, "unknown nonce", user)
        password = self._lookup(user, self.realm)
        if password is None:
            return AuthResult(False, "unknown user", user)
        try:
            expected = digest_response(
                algorithm=cred.algorithm, username=user, realm=self.realm, password=password,
                method=method, uri=cred.uri, nonce=cred.nonce, qop=cred.qop, nc=cred.nc,
                cnonce=cred.cnonce, body=body,
            )
        except DigestError as e:
            return AuthResult(False, e.reason, user)
        if not hmac.compare_digest(expected.lower().encode(), _octets(cred.response.lower())):
            return AuthResult(False, "wrong response", user)
        # The response is right: now freshness and replay.
        if now - issued > self.nonce_lifetime or issued - now > 1.0:
            return AuthResult(False, "stale nonce", user, stale=True)
        self._expire(now)
        state = self._used.get(cred.nonce)
        if state is None:
            state = _NonceState(expires=issued + self.nonce_lifetime)
            self._used[cred.nonce] = state
            while len(self._used) > self._max_tracked:
                self._used.popitem(last=False)
        if cred.nc is not None:
            nc = int(cred.nc, 16)
            if nc <= state.highest_nc:
                return AuthResult(False, "replayed nonce count", user)
            state.highest_nc = nc
        else:
            if state.seen_without_qop:  # RFC 2069: a nonce without nc is good for one use
                return AuthResult(False, "replayed nonce", user, stale=True)
            state.seen_without_qop = True
        return AuthResult(True, "ok", user)

    def _expire(self, now: float) -> None:
        while self._used:
            nonce, state = next(iter(self._used.items()))
            if state.expires >= now:
                break
            del self._used[nonce]

    def _record(self, now: float, direction: str, summary: str) -> None:
        if self.trace is not None:
            self.trace.add(TraceRecord(time=now, direction="out" if direction == "out" else "in",
                                       summary=summary, protocol="sip"))
