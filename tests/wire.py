"""Raw SIP on the wire, for tests that play the other side of a ``siplink`` process.

Independent of siplink's code on purpose: a tiny parser (start line, headers with compact
forms, body by Content-Length), request/response builders with fresh branch/tag/Call-ID,
blocking UDP and TCP sockets with timeouts, and launchers for ``siplink answer`` and
``siplink call`` as subprocesses (``python -m siplink``, no siplink module imported), so these
tests survive moves inside the package. The RFC sections the tests check are cited there.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.process import PeerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# RFC 3261 §7.3.3 compact forms
COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
           "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
           "v": "via"}


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)   # RFC 3261 §8.1.1.7 magic cookie


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id() -> str:
    return secrets.token_hex(10) + "@wire.test"


# ----------------------------------------------------------------------------- parsing


def split_list(value: str) -> list[str]:
    """A comma-separated header value split outside quotes and <...> (RFC 3261 §7.3.1)."""
    out, cur, quote, angle = [], "", False, False
    for ch in value:
        if ch == '"' and not angle:
            quote = not quote
        elif ch == "<" and not quote:
            angle = True
        elif ch == ">" and not quote:
            angle = False
        if ch == "," and not quote and not angle:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def param(value: str, name: str) -> str | None:
    """Parameter ``name`` of a header value (after any <uri>), or None; a flag gives ''."""
    tail = value.rsplit(">", 1)[1] if ">" in value else value
    for part in tail.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def uri_of(value: str) -> str:
    """The URI of a name-addr / addr-spec header value (Contact, To, From, Route)."""
    m = re.search(r"<([^>]*)>", value)
    return m.group(1) if m else value.split(";")[0].strip()


@dataclass(repr=False)
class SipMessage:
    start: str
    headers: list[tuple[str, str]]     # (lower-case full name, value) in wire order
    body: bytes
    raw: bytes
    source: tuple[str, int] | None = None
    when: float = 0.0

    # start line
    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        assert self.is_response, self.start
        return int(self.start.split(" ", 2)[1])

    @property
    def reason(self) -> str:
        return self.start.split(" ", 2)[2] if self.start.count(" ") >= 2 else ""

    @property
    def method(self) -> str:
        assert not self.is_response, self.start
        return self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        return self.start.split(" ")[1]

    # headers
    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (comma lists split), in order."""
        name = COMPACT.get(name.lower(), name.lower())
        out: list[str] = []
        for k, v in self.headers:
            if k == name:
                out.extend(split_list(v) if name not in ("www-authenticate", "authorization",
                                                         "proxy-authenticate", "date")
                           else [v])
        return out

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def has(self, name: str) -> bool:
        name = COMPACT.get(name.lower(), name.lower())
        return any(k == name for k, _ in self.headers)

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(f"no {name} header in:\n{self.text()}")
        return v

    def tokens(self, name: str) -> set[str]:
        """Lower-case tokens of a list header (Allow, Supported, Require, Accept...)."""
        return {v.split(";")[0].strip().lower() for v in self.all(name)}

    def tag(self, name: str) -> str | None:
        v = self.get(name)
        return None if v is None else param(v, "tag")

    @property
    def to_tag(self) -> str | None:
        return self.tag("to")

    @property
    def from_tag(self) -> str | None:
        return self.tag("from")

    @property
    def call_id(self) -> str:
        return self["call-id"]

    @property
    def cseq(self) -> tuple[int, str]:
        num, method = self["cseq"].split()
        return int(num), method

    @property
    def branch(self) -> str | None:
        return param(self["via"], "branch")

    def text(self) -> str:
        return self.raw.decode(errors="replace")

    def __str__(self) -> str:
        return self.start

    def __repr__(self) -> str:
        return f"<SipMessage {self.start!r}>"


def parse(data: bytes, source: tuple[str, int] | None = None) -> SipMessage:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ValueError(f"empty message: {data!r}")
    start = lines[0].strip()
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:      # folded line (§7.3.1)
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
            continue
        k, _, v = line.partition(":")
        k = k.strip().lower()
        headers.append((COMPACT.get(k, k), v.strip()))
    msg = SipMessage(start, headers, body, data, source, time.monotonic())
    length = msg.get("content-length")
    if length is not None and length.strip().isdigit():
        msg.body = body[: int(length)]
    return msg


def frame(buffer: bytearray) -> bytes | None:
    """Take one message off a stream buffer (RFC 3261 §18.3: Content-Length frames it)."""
    while buffer[:2] == b"\r\n":                     # keep-alive CRLFs
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode(errors="replace")
    m = re.search(r"^(?:content-length|l)\s*:\s*(\d+)", head, re.I | re.M)
    total = end + 4 + (int(m.group(1)) if m else 0)
    if len(buffer) < total:
        return None
    data = bytes(buffer[:total])
    del buffer[:total]
    return data


# ----------------------------------------------------------------------------- building


def render(start: str, headers: Sequence[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [start] + [f"{k}: {v}" for k, v in headers
                       if k.lower() not in ("content-length", "l")]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def response(req: SipMessage, status: int, reason: str = "", *, to_tag: str | None = None,
             headers: Sequence[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    """A response to ``req`` by RFC 3261 §8.2.6.2: Via, From, Call-ID, CSeq copied; To copied
    with ``to_tag`` added when the request had none."""
    to = req["to"]
    if to_tag and param(to, "tag") is None:
        to = f"{to};tag={to_tag}"
    hdrs: list[tuple[str, str]] = [("Via", v) for v in req.all("via")]
    hdrs += [("From", req["from"]), ("To", to), ("Call-ID", req.call_id),
             ("CSeq", req["cseq"])]
    hdrs += list(headers)
    if body and not any(k.lower() == "content-type" for k, _ in hdrs):
        hdrs.append(("Content-Type", "application/sdp"))
    return render(f"SIP/2.0 {status} {reason or REASONS.get(status, 'Whatever')}", hdrs, body)


REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
           400: "Bad Request", 481: "Call/Transaction Does Not Exist", 486: "Busy Here",
           487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error"}


def hostport(host: str, port: int) -> str:
    """``host:port`` with an IPv6 reference in brackets (RFC 3261 §25.1, RFC 5118)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def sdp(host: str = HOST, port: int = 40100, *, version: int = 1, ice: str = "",
        direction: str = "sendrecv", media: bool = True) -> bytes:
    """A plain audio SDP (PCMU); ``ice`` is extra attribute lines (already ``a=...\\r\\n``)."""
    family = "IP6" if ":" in host else "IP4"   # RFC 4566 §5.7
    text = (f"v=0\r\no=wire 4242 {version} IN {family} {host}\r\ns=-\r\n"
            f"c=IN {family} {host}\r\nt=0 0\r\n")
    if media:
        text += (f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{ice}"
                 f"a={direction}\r\n")
    return text.encode()


@dataclass
class Leg:
    """Our side of one dialog when the test is the UAC (RFC 3261 §12.2.1): Call-ID, our
    From tag, our CSeq, and once known the remote tag and target."""

    peer: SipPeer
    target: tuple[str, int]
    ruri: str
    call_id: str = field(default_factory=new_call_id)
    from_tag: str = field(default_factory=new_tag)
    cseq: int = 1
    to_tag: str | None = None
    remote_target: str | None = None
    user: str = "bob"

    def request(self, method: str, *, uri: str | None = None, cseq: int | None = None,
                branch: str | None = None, to_tag: str | None = None,
                headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                content_type: str | None = "application/sdp", contact: bool = True,
                in_dialog: bool | None = None) -> bytes:
        """A request on this leg; a new CSeq for anything but ACK/CANCEL unless given."""
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                self.cseq += 1
            cseq = self.cseq
        tag = to_tag if to_tag is not None else self.to_tag
        if in_dialog is False:
            tag = None
        ruri = uri or (self.remote_target if (in_dialog or tag) and self.remote_target
                       else self.ruri)
        to = f"<{self.ruri}>" + (f";tag={tag}" if tag else "")
        hdrs = [("Via", self.peer.via(branch or new_branch())), ("Max-Forwards", "70"),
                ("From", f"<sip:wire@{self.peer.hostref}>;tag={self.from_tag}"), ("To", to),
                ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}")]
        if contact and method not in ("ACK", "CANCEL", "BYE"):
            hdrs.append(("Contact", self.peer.contact()))
        hdrs += list(headers)
        if body and content_type and not any(k.lower() in ("content-type", "c")
                                             for k, _ in hdrs):
            hdrs.append(("Content-Type", content_type))
        return render(f"{method} {ruri} SIP/2.0", hdrs, body)

    def send(self, method: str, **kw: object) -> SipMessage:
        """Build a request (see :meth:`request`), send it to the target, return it parsed."""
        data = self.request(method, **kw)  # type: ignore[arg-type]
        self.peer.send(data, self.target)
        return parse(data)

    def send_ack(self, resp: SipMessage, invite: SipMessage, *, body: bytes = b"") -> bytes:
        data = self.ack(resp, invite, body=body)
        self.peer.send(data, self.target)
        return data

    def learn(self, resp: SipMessage) -> None:
        """Remote tag and target from a dialog-creating response (§12.1.2)."""
        if resp.to_tag:
            self.to_tag = resp.to_tag
        if resp.get("contact"):
            self.remote_target = uri_of(resp["contact"])

    def ack(self, resp: SipMessage, invite: SipMessage, *, body: bytes = b"") -> bytes:
        """ACK for ``resp`` to ``invite``: §17.1.1.3 for a non-2xx (the INVITE's branch, To
        of the response), §13.2.2.4 for a 2xx (new branch, remote target, INVITE's CSeq)."""
        num = invite.cseq[0]
        if resp.status >= 300:
            hdrs = [("Via", invite["via"]), ("Max-Forwards", "70"), ("From", invite["from"]),
                    ("To", resp["to"]), ("Call-ID", invite.call_id), ("CSeq", f"{num} ACK")]
            return render(f"ACK {invite.uri} SIP/2.0", hdrs)
        self.learn(resp)
        return self.request("ACK", cseq=num, body=body, in_dialog=True)


# ----------------------------------------------------------------------------- sockets


class SipPeer:
    """One SIP socket of the test: UDP (bound on a free loopback port) or a TCP connection
    to ``connect``, or a TCP listener (``listen=True``) that accepts one connection."""

    def __init__(self, transport: str = "udp", *, connect: tuple[str, int] | None = None,
                 listen: bool = False, host: str = HOST) -> None:
        self.transport = transport
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.backlog: list[SipMessage] = []
        self.seen: list[SipMessage] = []          # every message received, in order
        self.sent: list[bytes] = []
        self._buf = bytearray()
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self.peer_addr: tuple[str, int] | None = connect
        if transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind((host, 0))
        elif listen:
            self._listener = socket.socket(family, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, 0))
            self._listener.listen(4)
            self.sock = self._listener
        else:
            assert connect is not None
            self.sock = socket.create_connection(connect, timeout=5)
            self._conn = self.sock
        self.port = self.sock.getsockname()[1]

    # addresses
    @property
    def hostref(self) -> str:
        """Our host as a URI or Via writes it (an IPv6 reference in brackets)."""
        return f"[{self.host}]" if ":" in self.host else self.host

    def via(self, branch: str) -> str:
        return (f"SIP/2.0/{self.transport.upper()} {hostport(self.host, self.port)}"
                f";branch={branch};rport")

    def contact(self, user: str = "wire") -> str:
        tp = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"<sip:{user}@{hostport(self.host, self.port)}{tp}>"

    @property
    def uri(self) -> str:
        tp = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:wire@{hostport(self.host, self.port)}{tp}"

    # I/O
    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        self.sent.append(data)
        if self.transport == "udp":
            dest = to or self.peer_addr
            assert dest is not None, "no destination"
            self.sock.sendto(data, dest)
        else:
            conn = self._conn
            assert conn is not None, "no TCP connection yet"
            conn.sendall(data)

    def reply(self, req: SipMessage, status: int, reason: str = "", **kw: object) -> bytes:
        """Send a response to ``req`` where §18.2.2 says (the source of a UDP request with
        rport, the same connection for TCP); returns the bytes sent."""
        data = response(req, status, reason, **kw)  # type: ignore[arg-type]
        self.send(data, req.source)
        return data

    def _read(self, timeout: float) -> SipMessage | None:
        if self.transport != "udp":
            data = frame(self._buf)
            if data is not None:
                return self._keep(parse(data, self.peer_addr))
        socks = [s for s in (self._conn, self._listener if self._conn is None else None,
                             self.sock if self.transport == "udp" else None) if s]
        ready, _, _ = select.select(socks, [], [], max(timeout, 0))
        if not ready:
            return None
        s = ready[0]
        if self.transport == "udp":
            data, addr = s.recvfrom(65535)
            if not data.strip():
                return None
            return self._keep(parse(data, addr))
        if s is self._listener:
            self._conn, self.peer_addr = self._listener.accept()
            return None
        chunk = s.recv(65535)
        if not chunk:
            raise AssertionError("the TCP connection was closed by siplink")
        self._buf += chunk
        data = frame(self._buf)
        return self._keep(parse(data, self.peer_addr)) if data is not None else None

    def _keep(self, msg: SipMessage) -> SipMessage:
        self.seen.append(msg)
        return msg

    def recv(self, match: Callable[[SipMessage], bool] | None = None,
             timeout: float = 5.0, what: str = "a message") -> SipMessage:
        """The next message (from the backlog first) for which ``match`` holds; others wait
        in the backlog. AssertionError naming ``what`` after ``timeout`` seconds."""
        match = match or (lambda m: True)
        for i, m in enumerate(self.backlog):
            if match(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {what} within {timeout}s; received meanwhile:\n"
                    + "\n".join(f"  {m.start} ({m.get('cseq')})" for m in self.backlog))
            msg = self._read(left)
            if msg is None:
                continue
            if match(msg):
                return msg
            self.backlog.append(msg)

    def collect(self, match: Callable[[SipMessage], bool], duration: float
                ) -> list[SipMessage]:
        """Every matching message received within ``duration`` seconds (backlog first)."""
        out = [m for m in self.backlog if match(m)]
        self.backlog = [m for m in self.backlog if not match(m)]
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            msg = self._read(left)
            if msg is None:
                continue
            (out if match(msg) else self.backlog).append(msg)
        return out

    def response_to(self, method: str, cseq: int | None = None, *, final: bool = True,
                    status: int | None = None, call_id: str | None = None,
                    timeout: float = 5.0) -> SipMessage:
        """The next response to ``method`` (final unless ``final=False``)."""
        def ok(m: SipMessage) -> bool:
            return (m.is_response and m.cseq[1] == method
                    and (cseq is None or m.cseq[0] == cseq)
                    and (call_id is None or m.call_id == call_id)
                    and (status is None or m.status == status)
                    and (not final or m.status >= 200))
        what = f"{'final ' if final else ''}{status or ''} response to {method}"
        return self.recv(ok, timeout, what)

    def request_in(self, method: str, *, call_id: str | None = None, timeout: float = 5.0
                   ) -> SipMessage:
        return self.recv(lambda m: not m.is_response and m.method == method
                         and (call_id is None or m.call_id == call_id), timeout,
                         f"{method} request")

    def close(self) -> None:
        for s in (self._conn, self._listener, self.sock):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def __enter__(self) -> SipPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- siplink


def siplink_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "siplink", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return env


class Answerer(PeerProcess):
    """``siplink -v answer --listen 127.0.0.1:PORT --media static ...`` (the UAS under test);
    its stdout and stderr (the -v trace, any traceback) go to one log."""

    def __init__(self, *extra: str, media: str = "static", transports: Iterable[str] = ("udp",),
                 config: str | None = None, host: str = HOST) -> None:
        self.host = host
        self.port = free_port(host)
        argv = siplink_argv("-v", *(("-c", config) if config else ()), "answer",
                            "--listen", hostport(host, self.port), "--media", media, *extra)
        for t in transports:
            argv += ["--transport", t]
        super().__init__(argv, ready="listening on", cwd=ROOT, env=_env(),
                         name="siplink-answer")
        self.addr = (host, self.port)

    def uri(self, user: str = "bob", transport: str = "udp") -> str:
        tp = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{user}@{hostport(self.host, self.port)}{tp}"


def answerers(**defaults: object) -> Iterator[Callable[..., Answerer]]:
    """The body of an ``answerer`` fixture: yields ``start(*flags, **kw)``, which starts a
    ``siplink answer`` (``defaults`` overridden by ``kw``); every one started is stopped
    (by PID) afterwards."""
    started: list[Answerer] = []

    def start(*extra: str, **kw: object) -> Answerer:
        a = Answerer(*extra, **{**defaults, **kw})  # type: ignore[arg-type]
        a.start()
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


class Caller:
    """``siplink call URI ...`` running in the background (the UAC under test)."""

    def __init__(self, *args: str, command: str = "call", before: Sequence[str] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="siplink-call-"))
        self.out_path, self.err_path = self.dir / "stdout", self.dir / "stderr"
        self.argv = siplink_argv(*before, command, *args)   # before: -v, -c FILE
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=_env(), start_new_session=True,
                                     stdout=open(self.out_path, "wb"),  # noqa: SIM115
                                     stderr=open(self.err_path, "wb"))  # noqa: SIM115
        self.returncode: int | None = None

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{' '.join(self.argv)} still running after {timeout}s:\n"
                                 + self.out + self.err) from None
        return self.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, 9)
                except ProcessLookupError:
                    pass
                self.proc.wait()

    def log(self) -> str:
        return f"exit {self.proc.poll()}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"
