"""Fuzz campaign: the STUN/TURN codec and an ICE agent's and a TURN client's receive paths.

    python fuzz/fuzz_stun.py --budget 1000000 --seed 1 [--engine atheris|mutate] [--seconds N]
    python fuzz/fuzz_stun.py fuzz/crashes/stun-*.bin         # replay saved inputs

Seeds: the RFC 5769 vectors, the stun_captures (coturn, aioice: Allocate, ChannelBind, Data
indications, ChannelData...) and ICE checks signed for the fuzzed agent's own credentials.
The format-aware mutation works on the TLVs (drop, duplicate, swap, retype, resize, address
family games, new ICE attributes) and then, most of the time, repairs the header length,
re-signs MESSAGE-INTEGRITY with the agent's key and recomputes FINGERPRINT, so that mutants get
past the cheap checks into the attribute decoders and the agent's check handling.

Each input goes through ``decode`` (``StunDecodeError`` only; a decoded message must re-encode
and decode again, and ``verify``/``check_integrity``/``error_420`` must not raise), ChannelData
decoding (``ChannelDataError``), then ``Agent.receive`` on a running controlled agent and
``Allocation.receive`` on an allocating TURN client, which must raise nothing at all.
"""

from __future__ import annotations

import random
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, Target, main, read_dir  # noqa: E402

UFRAG, PWD = "fuzzufrag", "fuzzpassword0123456789xx"
PEER_UFRAG, PEER_PWD = "peerufrag", "peerpassword0123456789xx"
LOCAL = ("127.0.0.1", 40000)
REMOTE = ("127.0.0.1", 50000)
TURN_SERVER = ("127.0.0.1", 3478)

KNOWN_TYPES = [0x0001, 0x0006, 0x0008, 0x0009, 0x000A, 0x000C, 0x000D, 0x0012, 0x0013, 0x0014,
               0x0015, 0x0016, 0x0017, 0x0018, 0x0019, 0x001A, 0x001C, 0x001D, 0x001E, 0x0020,
               0x0022, 0x0024, 0x0025, 0x8002, 0x8003, 0x8022, 0x8023, 0x8028, 0x8029, 0x802A,
               0x802B, 0x802C]
MSG_TYPES = [0x0001, 0x0101, 0x0111, 0x0011, 0x0003, 0x0103, 0x0113, 0x0004, 0x0104, 0x0114,
             0x0016, 0x0017, 0x0008, 0x0108, 0x0118, 0x0009, 0x0109, 0x0119, 0x3FFF, 0x0002]
TOKENS = [b"\x21\x12\xa4\x42", b"\x80\x28\x00\x04", b"\x00\x08\x00\x14", b"\x00\x06\x00",
          b"\x00\x20\x00\x08\x00\x01", b"\x00\x20\x00\x14\x00\x02", b"\x00\x25\x00\x00",
          b"\x80\x29\x00\x08", b"\x80\x2a\x00\x08", b"\x00\x24\x00\x04", b"\x00\x09\x00\x04",
          b"\x00\x0a\x00\x02", b"\x00\x13\x00\x00", b"\x00\x0d\x00\x04", b"\x40\x00\x00\x04",
          b"\x00\x1c\x00\x20", b"\x80\x02\x00\x04", b"\x00\x1d\x00\x04", b"\xff\xff"]


def _tlvs(data: bytes) -> list[list[Any]]:
    """[type, value] per attribute, leniently (stops at the first overrun)."""
    out: list[list[Any]] = []
    pos = 20
    while pos + 4 <= len(data):
        t, n = struct.unpack_from("!HH", data, pos)
        out.append([t, data[pos + 4:pos + 4 + n]])
        pos += 4 + n + (-n & 3)
    return out


def _join(header: bytes, tlvs: list[list[Any]], pad: bytes = b"\x00") -> bytes:
    body = b"".join(struct.pack("!HH", t, len(v)) + v + pad * (-len(v) & 3) for t, v in tlvs)
    return header[:2] + struct.pack("!H", len(body)) + header[4:20] + body


def _finish(rng: random.Random, data: bytes, key: bytes) -> bytes:
    """Repair length, MESSAGE-INTEGRITY and FINGERPRINT -- mostly."""
    if len(data) < 20:
        return data
    header, tlvs = data[:20], _tlvs(data)
    sign = rng.random() < 0.4
    fp = any(t == 0x8028 for t, _ in tlvs) or rng.random() < 0.3
    tlvs = [[t, v] for t, v in tlvs if not ((sign and t == 0x0008) or (fp and t == 0x8028))]
    if rng.random() < 0.1:
        return _join(header, tlvs)[:len(data)]          # keep some broken lengths
    out = _join(header, tlvs)
    if sign:
        import hashlib
        import hmac
        out = out[:2] + struct.pack("!H", len(out) - 20 + 24) + out[4:]
        out += b"\x00\x08\x00\x14" + hmac.new(key, out, hashlib.sha1).digest()
    if fp:
        out = out[:2] + struct.pack("!H", len(out) - 20 + 8) + out[4:]
        out += b"\x80\x28\x00\x04" + struct.pack(
            "!I", (zlib.crc32(out) ^ 0x5354554E) & 0xFFFFFFFF)
    return out


def stun_mutate(rng: random.Random, data: bytes, others: list[bytes], key: bytes) -> bytes:
    if len(data) < 20 or rng.random() < 0.03:
        data = rng.choice(others)
    header = bytearray(data[:20])
    tlvs = _tlvs(data)
    n = len(tlvs)
    op = rng.randrange(12)
    if op == 0:                                          # message type
        header[0:2] = struct.pack("!H", rng.choice(MSG_TYPES) if rng.random() < 0.8
                                  else rng.randrange(0x4000))
    elif op == 1 and n:                                  # drop an attribute
        del tlvs[rng.randrange(n)]
    elif op == 2 and n:                                  # duplicate one
        tlvs.insert(rng.randrange(n + 1), list(tlvs[rng.randrange(n)]))
    elif op == 3 and n > 1:                              # swap two
        i, j = rng.randrange(n), rng.randrange(n)
        tlvs[i], tlvs[j] = tlvs[j], tlvs[i]
    elif op == 4 and n:                                  # retype
        tlvs[rng.randrange(n)][0] = (rng.choice(KNOWN_TYPES) if rng.random() < 0.7
                                     else rng.randrange(0x10000))
    elif op == 5 and n:                                  # resize the value
        i = rng.randrange(n)
        v = tlvs[i][1]
        k = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 12, 16, 19, 20, 21, 32, 33, 64, 513])
        tlvs[i][1] = (v + bytes(rng.randrange(256) for _ in range(k)))[:k]
    elif op == 6:                                        # an address attribute
        fam = rng.choice([0, 1, 2, 3, 0xFF])
        size = rng.choice([4, 8, 20, 7, 9, 19, 21])
        value = bytes([0, fam]) + bytes(rng.randrange(256) for _ in range(size - 2))
        tlvs.insert(rng.randrange(n + 1), [rng.choice([0x0001, 0x0020, 0x0012, 0x0016, 0x802B,
                                                       0x802C, 0x8023]), value])
    elif op == 7:                                        # ICE attributes
        ice_attrs: list[list[Any]] = [
            [0x0006, f"{UFRAG}:{PEER_UFRAG}".encode()], [0x0006, UFRAG.encode()],
            [0x0006, b":" * rng.randrange(4)], [0x0006, b"\xff\xfe" * rng.randrange(1, 300)],
            [0x0024, struct.pack("!I", rng.randrange(1 << 32))], [0x0025, b""],
            [0x8029, struct.pack("!Q", rng.randrange(1 << 64))],
            [0x802A, struct.pack("!Q", rng.randrange(1 << 64))],
            [0x0009, bytes([0, 0, rng.randrange(8), rng.randrange(256)]) + b"Role Conflict"],
            [0x000A, bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 6])))],
            [0x000C, struct.pack("!HH", rng.randrange(0x10000), 0)],
            [0x000D, struct.pack("!I", rng.randrange(1 << 32))],
            [0x0013, bytes(rng.randrange(256) for _ in range(rng.randrange(40)))],
            [0x8002, bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 4, 8, 9])))],
        ]
        tlvs.insert(rng.randrange(n + 1), rng.choice(ice_attrs))
    elif op == 8:                                        # an attribute from another message
        other_tlvs = _tlvs(rng.choice(others))
        if other_tlvs:
            tlvs.insert(rng.randrange(n + 1), list(rng.choice(other_tlvs)))
    elif op == 9:                                        # transaction id of another message
        header[8:20] = rng.choice(others)[8:20]
    elif op == 10:                                       # ChannelData instead
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        ch = rng.choice([0x4000, 0x4FFF, 0x5000, 0x3FFF, rng.randrange(0x10000)])
        length = rng.choice([len(payload), len(payload) + 1, 0, 0xFFFF])
        return struct.pack("!HH", ch, length) + payload
    else:                                                # cookie / first bits
        header[rng.choice([0, 4, 5, 6, 7])] ^= 1 << rng.randrange(8)
    return _finish(rng, _join(bytes(header), tlvs), key)


def build() -> Target:
    from ice import stun
    from ice.agent import Agent
    from ice.candidate import Candidate, CandidateType
    from ice.turn import Allocation, ChannelDataError, decode_channel_data

    key = stun.short_term_key(PWD)
    state: dict[str, Any] = {"n": 0, "now": 0.0}

    def new_agent() -> None:
        agent = Agent(False, local_username=UFRAG, local_password=PWD, rng=random.Random(7))
        agent.add_host_socket(0, 1, LOCAL)
        agent.gather(0.0)
        agent.set_remote_credentials(0, PEER_UFRAG, PEER_PWD)
        agent.add_remote_candidate(0, Candidate("1", 1, "udp", 2130706431, REMOTE[0],
                                                REMOTE[1], CandidateType.HOST))
        agent.start_checks(0.0)
        alloc = Allocation(TURN_SERVER, "alice", "secret")
        alloc.allocate(0.0)
        state["agent"], state["alloc"], state["now"] = agent, alloc, 0.0

    new_agent()

    def run(data: bytes) -> None:
        state["n"] += 1
        if state["n"] % 20000 == 0:
            new_agent()
        agent, alloc = state["agent"], state["alloc"]
        state["now"] += 0.001
        now = state["now"]
        err: Exception | None = None
        try:
            msg = stun.decode(data)
        except stun.StunDecodeError as e:
            assert e.reason, repr(e)
            err = e
        else:
            target.accept()
            msg.summary()
            stun.check_integrity(data, key)
            stun.verify(data, key, require_fingerprint=True)
            stun.error_420(msg)
            again = stun.decode(stun.encode(msg, key=key))
            assert again.method == msg.method and again.cls == msg.cls
        if data[:1] and 0x40 <= data[0] <= 0x4F:
            try:
                decode_channel_data(data)
            except ChannelDataError:
                pass
        # the receive paths: nothing may escape
        agent.receive(data, LOCAL, REMOTE, now)
        agent.datagrams_to_send(now)
        while agent.next_event() is not None:
            pass
        if state["n"] % 64 == 0:
            agent.handle_timer(now)
            agent.datagrams_to_send(now)
        alloc.receive(data, TURN_SERVER, now)
        alloc.datagrams_to_send(now)
        while alloc.next_event() is not None:
            pass
        if err is not None:
            raise err

    seeds = read_dir(DATA / "rfc5769", ("*.bin",)) + read_dir(DATA / "stun_captures", ("*.bin",))
    # checks for our agent, as a peer would send them
    tid = bytes(range(12))
    check = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, tid, {
        stun.Attr.USERNAME: f"{UFRAG}:{PEER_UFRAG}", stun.Attr.PRIORITY: 1845501695,
        stun.Attr.ICE_CONTROLLING: 0x1234567890, stun.Attr.USE_CANDIDATE: True})
    seeds.append(stun.encode(check, key=key))
    check2 = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, tid, {
        stun.Attr.USERNAME: f"{UFRAG}:{PEER_UFRAG}", stun.Attr.PRIORITY: 1845501695,
        stun.Attr.ICE_CONTROLLED: 0xFFFFFFFFFFFFFFFF})
    seeds.append(stun.encode(check2, key=key, integrity_sha256=True))
    ok = stun.Message(stun.Method.BINDING, stun.Class.SUCCESS, tid,
                      {stun.Attr.XOR_MAPPED_ADDRESS: ("::1", 9)})
    seeds.append(stun.encode(ok, key=stun.short_term_key(PEER_PWD)))
    target = Target("stun", run, (stun.StunDecodeError,), seeds, TOKENS,
                    lambda rng, d: stun_mutate(rng, d, seeds, key), max_len=1500)
    return target


if __name__ == "__main__":
    sys.exit(main("stun", build))
