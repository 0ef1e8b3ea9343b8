"""Fuzz campaign: the SIP message codec and a user agent's whole receive path.

    python fuzz/fuzz_sip.py --budget 1000000 --seed 1 [--engine atheris|mutate] [--seconds N]
    python fuzz/fuzz_sip.py fuzz/crashes/sip-*.bin          # replay saved inputs

Seeds: the 49 RFC 4475 torture messages, baresip's INVITE/200 captures (tests/data) and a few
messages our own builders write (REGISTER with credentials, 401 with challenges, CANCEL, ACK).
Each input goes through

1. ``parse_message`` -- the only allowed error is ``SipParseError`` (with a 4xx/5xx status and a
   printable reason); for a refused input ``error_response`` must build its answer without
   raising; an accepted message has every structured accessor read (each may only raise
   ``SipParseError``), is serialized and must parse again;
2. ``StreamParser`` in 1-300 octet reads (framing errors: ``SipParseError`` only; its buffer
   never holds more than was fed), and the transaction layer's ``reject_malformed`` for what
   it refused;
3. a :class:`~siplink.ua.useragent.UserAgent` on a fake clock and a fake UDP port (no socket, no
   traffic): ``TransactionLayer.receive`` then the UA's event handling, which must raise
   nothing at all; the fake port refuses what Twisted's UDP ``write`` refuses (hostnames,
   ports out of range), so a response the UA cannot address shows up as a finding too.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, Target, main, read_dir  # noqa: E402

TOKENS = [
    b"SIP/2.0", b"SIP/2.0/UDP ", b"SIP/2.0/TCP ", b"SIP/2.0/TLS ", b"INVITE", b"ACK", b"BYE",
    b"CANCEL", b"OPTIONS", b"REGISTER", b"PRACK", b"UPDATE", b"INFO", b"Via: ", b"v: ",
    b";branch=z9hG4bK", b";branch=", b";rport", b";rport=", b";received=", b";maddr=", b";ttl=",
    b";tag=", b";transport=tcp", b";lr", b";method=INVITE", b"?", b"<sip:", b"sip:", b"sips:",
    b"tel:", b"@", b":5060", b":0", b":65536", b"[::1]", b"[", b"]", b"Content-Length: ", b"l: ",
    b"Call-ID: ", b"i: ", b"CSeq: ", b"Max-Forwards: ", b"Contact: ", b"m: ", b"*", b"From: ",
    b"f: ", b"To: ", b"t: ", b"\r\n", b"\r\n\r\n", b"\r\n ", b"\r\n\t", b"\n", b'"', b"\\",
    b"%", b"%00", b";", b",", b"=", b"application/sdp", b"Content-Type: ", b"c: ",
    b"Expires: ", b"Require: ", b"Proxy-Require: ", b"Route: ", b"Record-Route: ",
    b"Authorization: Digest ", b"WWW-Authenticate: Digest ", b"Proxy-Authenticate: Digest ",
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT", b"Accept: ", b"Timestamp: ", b"\x00", b"\xff",
    b"\xc3\xa9", b"username=", b"realm=", b"nonce=", b"qop=auth", b"nc=00000001",
]

TRICKY_VALUES = [
    b"", b" ", b"\t", b"<sip:a@b>", b"<sip:a@b", b"sip:[::1]:5060", b"<sip:[::1>", b'"\\',
    b'"a" <sip:x@y>;tag=', b";;;", b",,,", b"*", b"%", b"%zz", b"SIP/2.0/UDP 1.2.3.4:99999",
    b"SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1;rport", b"SIP/2.0/UDP host.invalid",
    b"SIP/2.0/UDP 127.0.0.1:5060;maddr=host.invalid", b"SIP/2.0/UDP 127.0.0.1;maddr=::1",
    b"SIP/2.0/TCP h;received=1.2.3.4;rport=0", b"SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bKx",
    b"1 INVITE", b"4294967296 INVITE", b"-1 INVITE", b"1 invite", b"1", b"\xff\xfe",
    b"a" * 300, b"<" * 50, b"(" * 50, b"\\" * 50, b'"' * 51,
    b'Digest realm="x", nonce="y", qop="auth,auth-int", algorithm=SHA-256',
    b'Digest username="u", realm="r", nonce="n", uri="sip:a", response="0", nc=00000001, '
    b'cnonce="c", qop=auth', b"Digest", b"Digest ,", b'Digest a="', b"Basic dXNlcg==",
    b"<sip:a@b>;expires=4294967296", b"<sip:a@b>;q=2.0", b"<sip:a@b>, <sip:c@d>",
    b"Sat, 13 Nov 2010 23:29:00 GMT", b"Sat, 99 Foo 2010 99:99:99 GMT", b"0", b"00000000001",
    b"-0", b"256", b"70, 71", b"text/plain;a", b"application/sdp;;", b"multipart/mixed",
]

# A few messages our builders write, so the campaign starts from what we send ourselves.
OWN = [
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;rport\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:alice@127.0.0.1>\r\n"
    b"Call-ID: reg1@127.0.0.1\r\nCSeq: 2 REGISTER\r\nContact: <sip:alice@127.0.0.1:5062>;"
    b"expires=3600\r\nAuthorization: Digest username=\"alice\", realm=\"lab.test\", "
    b"nonce=\"abc\", uri=\"sip:127.0.0.1\", response=\"6629fae49393a05397450978507c4ef1\", "
    b"algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;rport=5062\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:alice@127.0.0.1>;tag=s1\r\n"
    b"Call-ID: reg1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm="
    b"\"lab.test\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256\r\nWWW-Authenticate: "
    b"Digest realm=\"lab.test\", nonce=\"abc\", qop=\"auth\", algorithm=MD5\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"OPTIONS sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch="
    b"z9hG4bKo1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=o1\r\n"
    b"To: <sip:bob@127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    b"CANCEL sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch="
    b"z9hG4bKi1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=i1\r\n"
    b"To: <sip:bob@127.0.0.1>\r\nCall-ID: i1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
    b"BYE sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch="
    b"z9hG4bKb1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=i1\r\n"
    b"To: <sip:bob@127.0.0.1>;tag=x\r\nCall-ID: i1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
]


def _split(data: bytes) -> tuple[list[bytes], bytes, bytes]:
    """(header lines incl. start line, separator, body)."""
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return data.split(b"\r\n"), b"", b""
    return data[:i].split(b"\r\n"), b"\r\n\r\n", data[i + 4:]


def sip_mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One token-aware mutation of a SIP message's lines (see the module docstring)."""
    lines, sep, body = _split(data)
    n = len(lines)
    op = rng.randrange(16)
    i = rng.randrange(n)
    line = lines[i]
    name, colon, value = line.partition(b":")
    if op == 0 and n > 1:                              # delete a header line
        del lines[rng.randrange(1, n)]
    elif op == 1:                                      # duplicate a line
        lines.insert(rng.randrange(n + 1), line)
    elif op == 2 and n > 2:                            # swap two header lines
        j = rng.randrange(1, n)
        k = rng.randrange(1, n)
        lines[j], lines[k] = lines[k], lines[j]
    elif op == 3:                                      # a line from another message
        o_lines, _, _ = _split(rng.choice(others))
        lines.insert(rng.randrange(1, n + 1), rng.choice(o_lines))
    elif op == 4 and colon and i:                      # tricky value
        lines[i] = name + b": " + rng.choice(TRICKY_VALUES)
    elif op == 5 and colon and i:                      # rename: case, compact, garbage
        choice = rng.randrange(4)
        new = (name.upper() if choice == 0 else name.lower() if choice == 1 else
               bytes([rng.choice(b"ivmlcftekrsuxyabjdo")]) if choice == 2 else
               name + rng.choice([b" ", b"\t", b"x", b"\xe9", b"", b"-"]))
        lines[i] = new + b":" + value
    elif op == 6 and i:                                # fold the line
        k = rng.randrange(len(line) + 1)
        lines[i] = line[:k] + rng.choice([b"\r\n ", b"\r\n\t", b"\r\n", b"\n "]) + line[k:]
    elif op == 7:                                      # Content-Length games
        value_b = rng.choice([str(len(body) + rng.randrange(-3, 4)).encode(),
                              b"0", b"-1", b"4294967296", b"1048577", b"", b"1 2", b"0x10"])
        idx = [k for k, ln in enumerate(lines) if ln.lower().startswith((b"content-length", b"l:"))]
        if idx:
            lines[rng.choice(idx)] = b"Content-Length: " + value_b
        else:
            lines.append(b"Content-Length: " + value_b)
    elif op == 8:                                      # start line
        parts = lines[0].split(b" ")
        k = rng.randrange(len(parts))
        parts[k] = rng.choice([b"SIP/2.0", b"SIP/3.0", b"sip/2.0", b"SIP/2.00", b"SIP/2",
                               b"INVITE", b"invite", b"ACK", b"sip:a@b", b"sips:[::1]:1",
                               b"tel:+1", b"<sip:a@b>", b"sip:a@b?x=y", b"sip:a@b;method=BYE",
                               b"999", b"1000", b"099", b"", b"\x00", b"OK", b"X" * 100])
        lines[0] = b" ".join(parts)
    elif op == 9 and colon and i:                      # parameter games
        lines[i] = line + rng.choice([b";x", b";branch=", b";rport=abc", b";received=::1",
                                      b";tag=", b";=", b";;", b";a=\"b", b";ttl=999",
                                      b";maddr=", b";expires=-1", b";q=x", b";lr=1"])
    elif op == 10:                                     # body: replace with another body
        _, _, other_body = _split(rng.choice(others))
        body = other_body
        sep = b"\r\n\r\n"
    elif op == 11:                                     # LF-only line ends
        return b"\n".join(lines) + sep.replace(b"\r\n", b"\n") + body
    elif op == 12:                                     # two messages back to back
        return data + rng.choice(others)
    elif op == 13:                                     # leading CRLFs / garbage
        return rng.choice([b"\r\n", b"\r\n\r\n", b" ", b"\x00", b"\n"]) + data
    elif op == 14 and colon and i:                     # the same header many times
        lines[i + 1:i + 1] = [line] * rng.choice([10, 100, 300])
    else:                                              # a comma list of two values
        if colon and i:
            lines[i] = line + b", " + (value.strip() or b"x")
    if rng.random() < 0.5:                             # keep Content-Length right (deeper)
        for k, ln in enumerate(lines):
            if ln.lower().startswith((b"content-length:", b"l:")):
                lines[k] = b"Content-Length: " + str(len(body)).encode()
                break
    return b"\r\n".join(lines) + (sep or (b"\r\n\r\n" if rng.random() < 0.7 else b"")) + body


class _NullPort:
    """Stands in for Twisted's UDP port: refuses what ``udp.Port.write`` refuses."""

    def __init__(self) -> None:
        self.sent = 0

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        from twisted.internet import abstract
        from twisted.internet.error import InvalidAddressError
        host, port = addr
        if not abstract.isIPAddress(host):
            raise InvalidAddressError(host, "write() only accepts IP addresses, not hostnames")
        if not 0 <= port <= 65535:
            raise OverflowError("sendto(): port must be 0-65535.")
        if port == 0:
            raise OSError(22, "Invalid argument")
        self.sent += 1


def build() -> Target:
    from twisted.internet.task import Clock

    from siplink.core.transaction import Target as SipTarget
    from siplink.core.transaction import TransactionLayer
    from siplink.sip.message import (
        SipParseError,
        StreamParser,
        error_response,
        parse_message,
    )
    from siplink.ua.useragent import UserAgent

    udp_source = SipTarget("udp", "127.0.0.1", 5099)
    tcp_source = SipTarget("tcp", "127.0.0.1", 5098)
    state: dict[str, Any] = {"n": 0}
    failures: list[BaseException] = []

    def new_ua() -> None:
        clock = Clock()
        ua = UserAgent(clock, host="127.0.0.1", port=5060)
        ua.transport.local["udp"] = SipTarget("udp", "127.0.0.1", 5060)
        ua.transport._udp["4"] = _NullPort()

        def on_event(ev: Any) -> None:   # the transport would log and swallow: keep it
            try:
                ua._on_event(ev)
            except Exception as e:
                failures.append(e)
                raise

        ua.transport.on_event = on_event

        def incoming(call: Any) -> None:    # an application that turns every call down
            call.reject(486)

        ua.on_incoming_call = incoming
        state["ua"], state["clock"] = ua, clock
        state["layer"] = TransactionLayer()

    new_ua()

    from tests.test_sip_hypothesis import exercise  # the property tests' oracle

    def run(data: bytes) -> None:
        state["n"] += 1
        if state["n"] % 5000 == 0:
            new_ua()
        ua, clock = state["ua"], state["clock"]
        err: SipParseError | None = None
        # 1. one datagram
        try:
            m = parse_message(data)
        except SipParseError as e:
            assert 400 <= e.status < 600 and e.reason.isprintable(), repr(e)
            err = e
            resp = error_response(data, e)
            if resp is not None:
                resp.serialize()
        else:
            target.accept()
            try:
                exercise(m)
            except SipParseError as e:
                raise AssertionError(f"accepted, then refused what we wrote: {e!r}") from e
        # 2. the same bytes on a stream, in random reads
        p = StreamParser()
        step = 1 + data[-1] if data else 1
        fed = 0
        try:
            for k in range(0, len(data), step):
                fed += len(data[k:k + step])
                for msg in p.feed(data[k:k + step]):
                    exercise(msg)
                assert p.buffered <= fed
        except SipParseError:
            pass
        for stream_err in p.pop_errors():
            state["layer"].reject_malformed(b"", tcp_source, stream_err, 0.0)
        state["layer"].datagrams_to_send()
        # 3. a user agent's receive path (every exception is a finding)
        ua.layer.receive(data, udp_source, clock.seconds())
        ua.transport.pump()
        if failures:
            failure = failures.pop()
            failures.clear()
            raise failure
        if state["n"] % 500 == 0:
            clock.advance(70.0)     # let transactions time out and terminate
        if err is not None:
            raise err

    seeds = read_dir(DATA / "rfc4475", ("*.dat",)) + read_dir(DATA / "sip", ("*.msg",)) + OWN
    target = Target("sip", run, (SipParseError,), seeds, TOKENS,
                    lambda rng, d: sip_mutate(rng, d, seeds), max_len=8192)
    return target


if __name__ == "__main__":
    sys.exit(main("sip", build))
