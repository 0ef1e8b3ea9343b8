"""STUN messages (RFC 8489): the codec, credentials, integrity and fingerprint.

``decode(data)`` turns one datagram into a :class:`Message` or raises :class:`StunDecodeError`
(and nothing else); ``encode(msg, key=...)`` writes it back, adding MESSAGE-INTEGRITY (or
MESSAGE-INTEGRITY-SHA256) and FINGERPRINT last.  Integrity is checked on the raw bytes with
:func:`check_integrity` (never on a re-encoded copy: senders may pad with any bytes), and a
receive path calls :func:`verify` to decide whether a message may be acted on.

Attribute values are typed: transport addresses ``tuple[str, int]``, ERROR-CODE
``tuple[int, str]``, UNKNOWN-ATTRIBUTES ``tuple[int, ...]``, USERNAME/REALM/SOFTWARE ``str``,
NONCE and other opaque values ``bytes``, numbers ``int``, flags (USE-CANDIDATE, DONT-FRAGMENT)
``True``.  Unknown attributes are kept as raw ``bytes`` under their integer type.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import stringprep
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, cast

from twisted.logger import Logger

from ice.address import Address

log = Logger(namespace="ice.stun")

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
HEADER_LENGTH = 20
FINGERPRINT_XOR = 0x5354554E
DEFAULT_PORT = 3478


class StunDecodeError(ValueError):
    """A datagram that is not a well-formed STUN message; ``reason`` fits a reason phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Method(IntEnum):
    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


class Class(IntEnum):
    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class Attr(IntEnum):
    """Attribute types (IANA STUN registry: RFC 8489, RFC 8656, RFC 8445, RFC 5780)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B
    OTHER_ADDRESS = 0x802C


class PasswordAlgorithm(IntEnum):
    """RFC 8489 §18.5 password algorithms."""

    MD5 = 0x0001
    SHA256 = 0x0002


ERROR_REASONS: dict[int, str] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthenticated",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


@dataclass(eq=True)
class Message:
    """One STUN message.  ``attributes`` keeps wire order (insertion order)."""

    method: Method
    cls: Class
    transaction_id: bytes
    attributes: dict[Attr | int, object] = field(default_factory=dict)
    # comprehension-required attribute types (< 0x8000) this codec does not understand,
    # in wire order: a server answers a request carrying any with 420 (see error_420()).
    unknown_required: tuple[int, ...] = ()

    def get(self, attr: Attr | int, default: Any = None) -> Any:
        return self.attributes.get(attr, default)

    def __contains__(self, attr: object) -> bool:
        return attr in self.attributes

    def __setitem__(self, attr: Attr | int, value: object) -> None:
        self.attributes[attr] = value

    def __getitem__(self, attr: Attr | int) -> Any:
        return self.attributes[attr]

    # typed accessors, for callers that want mypy to know the value's type
    def address(self, attr: Attr) -> Address | None:
        v = self.attributes.get(attr)
        return v if isinstance(v, tuple) else None

    @property
    def error_code(self) -> tuple[int, str] | None:
        v = self.attributes.get(Attr.ERROR_CODE)
        return v if isinstance(v, tuple) else None

    def summary(self) -> str:
        """One line for a trace: ``Binding success 1a2b3c4d5e6f..``."""
        name = self.method.name.replace("_", "-").title().replace("-", "")
        kind = self.cls.name.lower()
        text = f"{name} {kind} {self.transaction_id.hex()}"
        err = self.error_code
        if err is not None:
            text += f" {err[0]} {err[1]}"
        return text


def new_transaction_id() -> bytes:
    return os.urandom(12)


# --------------------------------------------------------------------------------------------
# attribute value codecs: pack(value, transaction_id) -> bytes, unpack(bytes, tid) -> value

_u32 = struct.Struct("!I")
_u64 = struct.Struct("!Q")
_u16 = struct.Struct("!H")
_hdr = struct.Struct("!HHI12s")
_attr_hdr = struct.Struct("!HH")


def _pack_address(value: object, tid: bytes) -> bytes:
    host, port = cast(Address, value)
    if ":" in host:
        return b"\x00\x02" + _u16.pack(port) + socket.inet_pton(socket.AF_INET6, host)
    return b"\x00\x01" + _u16.pack(port) + socket.inet_aton(host)


def _unpack_address(data: bytes, tid: bytes) -> Address:
    n = len(data)
    if n == 8 and data[1] == 1:
        return socket.inet_ntoa(data[4:8]), (data[2] << 8) | data[3]
    if n == 20 and data[1] == 2:
        return socket.inet_ntop(socket.AF_INET6, data[4:20]), (data[2] << 8) | data[3]
    raise StunDecodeError("bad address attribute")


def _pack_xor_address(value: object, tid: bytes) -> bytes:
    host, port = cast(Address, value)
    xport = port ^ 0x2112
    if ":" in host:
        raw = int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
        mask = int.from_bytes(_COOKIE_BYTES + tid, "big")
        return b"\x00\x02" + _u16.pack(xport) + (raw ^ mask).to_bytes(16, "big")
    raw4 = _u32.unpack(socket.inet_aton(host))[0]
    return b"\x00\x01" + _u16.pack(xport) + _u32.pack(raw4 ^ MAGIC_COOKIE)


def _unpack_xor_address(data: bytes, tid: bytes) -> Address:
    n = len(data)
    if n == 8 and data[1] == 1:
        port = ((data[2] << 8) | data[3]) ^ 0x2112
        raw4 = _u32.unpack_from(data, 4)[0] ^ MAGIC_COOKIE
        return socket.inet_ntoa(_u32.pack(raw4)), port
    if n == 20 and data[1] == 2:
        port = ((data[2] << 8) | data[3]) ^ 0x2112
        raw = int.from_bytes(data[4:20], "big") ^ int.from_bytes(_COOKIE_BYTES + tid, "big")
        return socket.inet_ntop(socket.AF_INET6, raw.to_bytes(16, "big")), port
    raise StunDecodeError("bad XOR address attribute")


def _pack_str(value: object, tid: bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _unpack_str(data: bytes, tid: bytes) -> str:
    return data.decode("utf-8")


def _pack_bytes(value: object, tid: bytes) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)  # type: ignore[call-overload]


def _unpack_bytes(data: bytes, tid: bytes) -> bytes:
    return data


def _pack_u32(value: object, tid: bytes) -> bytes:
    return _u32.pack(value)


def _unpack_u32(data: bytes, tid: bytes) -> int:
    if len(data) != 4:
        raise StunDecodeError("bad 32-bit attribute")
    return int(_u32.unpack(data)[0])


def _pack_u64(value: object, tid: bytes) -> bytes:
    return _u64.pack(value)


def _unpack_u64(data: bytes, tid: bytes) -> int:
    if len(data) != 8:
        raise StunDecodeError("bad 64-bit attribute")
    return int(_u64.unpack(data)[0])


def _pack_flag(value: object, tid: bytes) -> bytes:
    return b""


def _unpack_flag(data: bytes, tid: bytes) -> bool:
    if data:
        raise StunDecodeError("flag attribute with a value")
    return True


def _pack_error_code(value: object, tid: bytes) -> bytes:
    code, reason = cast(tuple[int, str], value)
    return struct.pack("!HBB", 0, code // 100, code % 100) + str(reason).encode("utf-8")


def _unpack_error_code(data: bytes, tid: bytes) -> tuple[int, str]:
    if len(data) < 4:
        raise StunDecodeError("bad ERROR-CODE")
    klass, number = data[2] & 0x07, data[3]
    if not 3 <= klass <= 6 or number > 99:
        raise StunDecodeError("bad ERROR-CODE")
    return klass * 100 + number, data[4:].decode("utf-8")


def _pack_unknown_attributes(value: object, tid: bytes) -> bytes:
    types = list(value)  # type: ignore[call-overload]
    return struct.pack(f"!{len(types)}H", *types)


def _unpack_unknown_attributes(data: bytes, tid: bytes) -> tuple[int, ...]:
    if len(data) % 2:
        raise StunDecodeError("bad UNKNOWN-ATTRIBUTES")
    return struct.unpack(f"!{len(data) // 2}H", data)


def _pack_channel_number(value: object, tid: bytes) -> bytes:
    return _u16.pack(value) + b"\x00\x00"


def _unpack_channel_number(data: bytes, tid: bytes) -> int:
    if len(data) != 4:
        raise StunDecodeError("bad CHANNEL-NUMBER")
    return (data[0] << 8) | data[1]


def _pack_first_byte(value: object, tid: bytes) -> bytes:
    return bytes((int(value), 0, 0, 0))  # type: ignore[call-overload]


def _unpack_first_byte(data: bytes, tid: bytes) -> int:
    if len(data) != 4:
        raise StunDecodeError("bad 1-byte attribute")
    return data[0]


def _pack_even_port(value: object, tid: bytes) -> bytes:
    return b"\x80" if value else b"\x00"


def _unpack_even_port(data: bytes, tid: bytes) -> bool:
    if len(data) != 1:
        raise StunDecodeError("bad EVEN-PORT")
    return bool(data[0] & 0x80)


def _pack_algorithm(alg: tuple[int, bytes]) -> bytes:
    number, params = alg
    return struct.pack("!HH", number, len(params)) + params + bytes(-len(params) % 4)


def _pack_password_algorithm(value: object, tid: bytes) -> bytes:
    if isinstance(value, int):
        value = (value, b"")
    return _pack_algorithm(value)  # type: ignore[arg-type]


def _unpack_algorithms(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise StunDecodeError("bad PASSWORD-ALGORITHMS")
        number, length = _attr_hdr.unpack_from(data, pos)
        end = pos + 4 + length
        if end > len(data):
            raise StunDecodeError("bad PASSWORD-ALGORITHMS")
        out.append((number, bytes(data[pos + 4:end])))
        pos = end + (-length % 4)
    return out


def _unpack_password_algorithm(data: bytes, tid: bytes) -> tuple[int, bytes]:
    algs = _unpack_algorithms(data)
    if len(algs) != 1:
        raise StunDecodeError("bad PASSWORD-ALGORITHM")
    return algs[0]


def _pack_password_algorithms(value: object, tid: bytes) -> bytes:
    out = b""
    for alg in value:  # type: ignore[attr-defined]
        out += _pack_algorithm((alg, b"") if isinstance(alg, int) else alg)
    return out


def _unpack_password_algorithms(data: bytes, tid: bytes) -> tuple[tuple[int, bytes], ...]:
    return tuple(_unpack_algorithms(data))


_Pack = Callable[[object, bytes], bytes]
_Unpack = Callable[[bytes, bytes], object]

_CODECS: dict[int, tuple[_Pack, _Unpack]] = {
    Attr.MAPPED_ADDRESS: (_pack_address, _unpack_address),
    Attr.USERNAME: (_pack_str, _unpack_str),
    Attr.MESSAGE_INTEGRITY: (_pack_bytes, _unpack_bytes),
    Attr.ERROR_CODE: (_pack_error_code, _unpack_error_code),
    Attr.UNKNOWN_ATTRIBUTES: (_pack_unknown_attributes, _unpack_unknown_attributes),
    Attr.CHANNEL_NUMBER: (_pack_channel_number, _unpack_channel_number),
    Attr.LIFETIME: (_pack_u32, _unpack_u32),
    Attr.XOR_PEER_ADDRESS: (_pack_xor_address, _unpack_xor_address),
    Attr.DATA: (_pack_bytes, _unpack_bytes),
    Attr.REALM: (_pack_str, _unpack_str),
    Attr.NONCE: (_pack_bytes, _unpack_bytes),
    Attr.XOR_RELAYED_ADDRESS: (_pack_xor_address, _unpack_xor_address),
    Attr.REQUESTED_ADDRESS_FAMILY: (_pack_first_byte, _unpack_first_byte),
    Attr.EVEN_PORT: (_pack_even_port, _unpack_even_port),
    Attr.REQUESTED_TRANSPORT: (_pack_first_byte, _unpack_first_byte),
    Attr.DONT_FRAGMENT: (_pack_flag, _unpack_flag),
    Attr.MESSAGE_INTEGRITY_SHA256: (_pack_bytes, _unpack_bytes),
    Attr.PASSWORD_ALGORITHM: (_pack_password_algorithm, _unpack_password_algorithm),
    Attr.USERHASH: (_pack_bytes, _unpack_bytes),
    Attr.XOR_MAPPED_ADDRESS: (_pack_xor_address, _unpack_xor_address),
    Attr.RESERVATION_TOKEN: (_pack_bytes, _unpack_bytes),
    Attr.PRIORITY: (_pack_u32, _unpack_u32),
    Attr.USE_CANDIDATE: (_pack_flag, _unpack_flag),
    Attr.PASSWORD_ALGORITHMS: (_pack_password_algorithms, _unpack_password_algorithms),
    Attr.ALTERNATE_DOMAIN: (_pack_str, _unpack_str),
    Attr.SOFTWARE: (_pack_str, _unpack_str),
    Attr.ALTERNATE_SERVER: (_pack_address, _unpack_address),
    Attr.FINGERPRINT: (_pack_u32, _unpack_u32),
    Attr.ICE_CONTROLLED: (_pack_u64, _unpack_u64),
    Attr.ICE_CONTROLLING: (_pack_u64, _unpack_u64),
    Attr.RESPONSE_ORIGIN: (_pack_address, _unpack_address),
    Attr.OTHER_ADDRESS: (_pack_address, _unpack_address),
}
# int-keyed copies for the hot paths (IntEnum hashing/lookup by int works, but the
# decoder wants the Attr member back without calling Attr(...)).
_INLINE_KIND: dict[_Unpack, int] = {_unpack_u32: 1, _unpack_u64: 2, _unpack_str: 3}
_UNPACK_BY_TYPE: dict[int, tuple[Attr, _Unpack, int]] = {
    int(a): (Attr(a), codec[1], _INLINE_KIND.get(codec[1], 0)) for a, codec in _CODECS.items()
}
_PACK_BY_TYPE: dict[int, _Pack] = {int(a): codec[0] for a, codec in _CODECS.items()}

# message type <-> (method, class); RFC 8489 §5 interleaves the class bits into the method
_TYPE_OF: dict[tuple[int, int], int] = {}
_METHOD_CLASS: dict[int, tuple[Method, Class]] = {}
for _m in Method:
    for _c in Class:
        _t = ((_m & 0x000F) | ((_m & 0x0070) << 1) | ((_m & 0x0F80) << 2)
              | ((_c & 1) << 4) | ((_c & 2) << 7))
        _TYPE_OF[(int(_m), int(_c))] = _t
        _METHOD_CLASS[_t] = (_m, _c)

_tlv_u32 = struct.Struct("!HHI")
_tlv_u64 = struct.Struct("!HHQ")
_ZEROS = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")


def _tlv_text(attr: int, value: object) -> bytes:
    v = value.encode("utf-8") if isinstance(value, str) else _pack_bytes(value, b"")
    n = len(v)
    if n > 0xFFFF:
        raise ValueError(f"attribute 0x{attr:04x} too long")
    return _attr_hdr.pack(attr, n) + v + _ZEROS[-n % 4]


def _tlv_u32_pack(attr: int, value: object) -> bytes:
    return _tlv_u32.pack(attr, 4, value)


def _tlv_u64_pack(attr: int, value: object) -> bytes:
    return _tlv_u64.pack(attr, 8, value)


def _tlv_flag(attr: int, value: object) -> bytes:
    return _attr_hdr.pack(attr, 0)


# whole-TLV packers for the attributes of an ICE check (the hot path)
_TLV_BY_TYPE: dict[int, Callable[[int, object], bytes]] = {
    Attr.USERNAME: _tlv_text,
    Attr.PRIORITY: _tlv_u32_pack,
    Attr.ICE_CONTROLLING: _tlv_u64_pack,
    Attr.ICE_CONTROLLED: _tlv_u64_pack,
    Attr.USE_CANDIDATE: _tlv_flag,
    Attr.LIFETIME: _tlv_u32_pack,
    Attr.SOFTWARE: _tlv_text,
    Attr.REALM: _tlv_text,
}

_SKIP_ON_ENCODE = frozenset(
    (int(Attr.MESSAGE_INTEGRITY), int(Attr.MESSAGE_INTEGRITY_SHA256), int(Attr.FINGERPRINT))
)


# --------------------------------------------------------------------------------------------
# HMAC with the key's inner/outer pads computed once per key (an ICE agent uses a handful of
# keys for thousands of checks); equal to hmac.digest(key, data, name), about twice as fast.

_PADS: dict[tuple[bytes, str], tuple[Any, Any]] = {}
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac(key: bytes, data: bytes, name: str) -> bytes:
    pads = _PADS.get((key, name))
    if pads is None:
        k = key if len(key) <= 64 else hashlib.new(name, key).digest()
        k = k.ljust(64, b"\x00")
        pads = (hashlib.new(name, k.translate(_IPAD)), hashlib.new(name, k.translate(_OPAD)))
        if len(_PADS) >= 256:
            _PADS.clear()
        _PADS[(key, name)] = pads
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return bytes(outer.digest())


# --------------------------------------------------------------------------------------------
# encode / decode


def encode(
    msg: Message,
    *,
    key: bytes | None = None,
    fingerprint: bool = True,
    integrity_sha256: bool = False,
) -> bytes:
    """The wire form of ``msg``.

    Any MESSAGE-INTEGRITY(-SHA256)/FINGERPRINT in ``msg.attributes`` is ignored: with ``key``
    the message gets MESSAGE-INTEGRITY (HMAC-SHA1) or, with ``integrity_sha256``,
    MESSAGE-INTEGRITY-SHA256; then FINGERPRINT unless ``fingerprint`` is false.
    """
    tid = msg.transaction_id
    if len(tid) != 12:
        raise ValueError("transaction id must be 12 bytes")
    parts: list[bytes] = []
    append = parts.append
    for attr, value in msg.attributes.items():
        fast = _TLV_BY_TYPE.get(attr)
        if fast is not None:
            append(fast(attr, value))
            continue
        if attr in _SKIP_ON_ENCODE:
            continue
        pack = _PACK_BY_TYPE.get(attr)
        v = _pack_bytes(value, tid) if pack is None else pack(value, tid)
        n = len(v)
        if n > 0xFFFF:
            raise ValueError(f"attribute 0x{int(attr):04x} too long")
        append(_attr_hdr.pack(attr, n))
        append(v)
        if n & 3:
            append(_ZEROS[-n % 4])
    body = b"".join(parts)
    mtype = _TYPE_OF[(msg.method, msg.cls)]
    if key is not None:
        size = 36 if integrity_sha256 else 24
        data = _hdr.pack(mtype, len(body) + size, MAGIC_COOKIE, tid) + body
        if integrity_sha256:
            data += b"\x00\x1c\x00\x20" + _hmac(key, data, "sha256")
        else:
            data += b"\x00\x08\x00\x14" + _hmac(key, data, "sha1")
        body_len = len(data) - HEADER_LENGTH
    else:
        body_len = len(body)
        data = b""
    if fingerprint:
        if data:
            data = _hdr.pack(mtype, body_len + 8, MAGIC_COOKIE, tid) + data[HEADER_LENGTH:]
        else:
            data = _hdr.pack(mtype, body_len + 8, MAGIC_COOKIE, tid) + body
        crc = (zlib.crc32(data) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        return data + b"\x80\x28\x00\x04" + _u32.pack(crc)
    if data:
        return data
    return _hdr.pack(mtype, body_len, MAGIC_COOKIE, tid) + body


def is_stun(data: bytes) -> bool:
    """Cheap test: first two bits zero (RFC 7983 range 0..3), magic cookie, 4-byte aligned."""
    return (
        len(data) >= HEADER_LENGTH
        and data[0] < 4
        and data[4:8] == _COOKIE_BYTES
        and not data[3] & 3
    )


def decode(data: bytes) -> Message:
    """Parse one STUN message; raises :class:`StunDecodeError` and nothing else.

    A FINGERPRINT that does not match is a decode error.  Attributes after MESSAGE-INTEGRITY
    other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are ignored (RFC 8489 §14.5), as is
    anything after FINGERPRINT and any repeat of an attribute already seen.  Integrity is not
    checked here: see :func:`check_integrity` / :func:`verify`.
    """
    if type(data) is not bytes:
        try:
            data = bytes(data)
        except TypeError as e:
            raise StunDecodeError("not bytes") from e
    n = len(data)
    if n < HEADER_LENGTH:
        raise StunDecodeError("shorter than a STUN header")
    try:
        mtype, length, cookie, tid = _hdr.unpack_from(data)
    except (struct.error, TypeError) as e:
        raise StunDecodeError("not bytes") from e
    if mtype & 0xC000:
        raise StunDecodeError("first two bits are not zero")
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError("bad magic cookie")
    if length & 3:
        raise StunDecodeError("length not a multiple of 4")
    if length + HEADER_LENGTH != n:
        raise StunDecodeError("length does not match the datagram")
    mc = _METHOD_CLASS.get(mtype)
    if mc is None:
        raise StunDecodeError(f"unknown method 0x{mtype & 0x3EEF:03x}")
    attributes: dict[Attr | int, object] = {}
    unknown: list[int] = []
    pos = HEADER_LENGTH
    after_integrity = False
    mi_pos = sha_pos = -1
    get = _UNPACK_BY_TYPE.get
    u32_from = _u32.unpack_from
    u64_from = _u64.unpack_from
    unpack_header = _attr_hdr.unpack_from
    try:
        while pos < n:
            if pos + 4 > n:
                raise StunDecodeError("truncated attribute header")
            t, alen = unpack_header(data, pos)
            start = pos + 4
            end = start + alen
            pos = end + (-alen & 3)
            if pos > n:
                raise StunDecodeError(f"attribute 0x{t:04x} overruns the message")
            if t == 0x8028:  # FINGERPRINT
                if alen != 4:
                    raise StunDecodeError("bad FINGERPRINT")
                value = _u32.unpack_from(data, start)[0]
                if value != (zlib.crc32(data[:start - 4]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF:
                    raise StunDecodeError("FINGERPRINT mismatch")
                attributes[Attr.FINGERPRINT] = value
                break
            if after_integrity and t != 0x001C:
                continue
            entry = get(t)
            if entry is None:
                if t < 0x8000 and t not in unknown:
                    unknown.append(t)
                if t not in attributes:
                    attributes[t] = data[start:end]
                continue
            attr, unpack, kind = entry
            if attr in attributes:
                continue
            # the attributes of an ICE check are unpacked inline (no call, no slice)
            if kind == 1:
                if alen != 4:
                    raise StunDecodeError("bad 32-bit attribute")
                attributes[attr] = u32_from(data, start)[0]
                continue
            if kind == 2:
                if alen != 8:
                    raise StunDecodeError("bad 64-bit attribute")
                attributes[attr] = u64_from(data, start)[0]
                continue
            if kind == 3:
                attributes[attr] = data[start:end].decode()
                continue
            attributes[attr] = unpack(data[start:end], tid)
            if t == 0x0008 or t == 0x001C:
                if t == 0x0008:
                    if alen != 20:
                        raise StunDecodeError("bad MESSAGE-INTEGRITY length")
                    mi_pos = start - 4
                else:
                    if not 16 <= alen <= 32:
                        raise StunDecodeError("bad MESSAGE-INTEGRITY-SHA256 length")
                    sha_pos = start - 4
                after_integrity = True
    except StunDecodeError:
        raise
    except (ValueError, struct.error, OSError, IndexError, TypeError) as e:
        raise StunDecodeError(f"bad attribute value: {e}") from e
    global _LAST_DECODED
    _LAST_DECODED = (data, mi_pos, sha_pos)
    return Message(mc[0], mc[1], tid, attributes, tuple(unknown))


# The receive path decodes a datagram and then checks its integrity: decode() remembers where
# the integrity attributes of the last datagram it parsed are, so check_integrity() on that same
# (immutable) bytes object need not walk the attributes again.  Identity, not equality, is
# compared, and the reference held keeps the object alive, so its id cannot be reused.
_LAST_DECODED: tuple[bytes, int, int] = (b"", -1, -1)


# --------------------------------------------------------------------------------------------
# integrity, fingerprint, credentials


def _check_hmac(data: bytes, key: bytes, pos: int, digest: str) -> bool:
    alen = (data[pos + 2] << 8) | data[pos + 3]
    # the hashed header carries the length up to and including this attribute (RFC 8489 §14.5)
    header = data[:2] + _u16.pack(pos + 4 + alen - HEADER_LENGTH) + data[4:HEADER_LENGTH]
    mac = _hmac(key, header + data[HEADER_LENGTH:pos], digest)
    if digest == "sha256":
        mac = mac[:alen]
    return hmac.compare_digest(mac, data[pos + 4:pos + 4 + alen])


def check_integrity(data: bytes, key: bytes) -> bool:
    """True when every MESSAGE-INTEGRITY(-SHA256) present in raw ``data`` verifies with
    ``key`` and at least one is present."""
    last = _LAST_DECODED
    if last[0] is data:
        sha1, sha256 = last[1], last[2]
    else:
        sha1, sha256 = _integrity_positions(data)
    if sha1 < 0 and sha256 < 0:
        return False
    if sha1 >= 0 and not _check_hmac(data, key, sha1, "sha1"):
        return False
    return sha256 < 0 or _check_hmac(data, key, sha256, "sha256")


def _integrity_positions(data: bytes) -> tuple[int, int]:
    """Offsets of the MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256 that count (-1: none)."""
    n = len(data)
    pos = HEADER_LENGTH
    sha1 = sha256 = -1
    unpack = _attr_hdr.unpack_from
    while pos + 4 <= n:
        t, alen = unpack(data, pos)
        if pos + 4 + alen > n:
            break
        if t == 0x0008:
            if sha1 < 0 and sha256 < 0:
                sha1 = pos
        elif t == 0x001C:
            if sha256 < 0:
                sha256 = pos
        elif t == 0x8028:
            break
        pos += 4 + alen + (-alen % 4)
    return sha1, sha256


def check_fingerprint(data: bytes) -> bool:
    """True when raw ``data`` ends with a FINGERPRINT that matches its CRC-32."""
    if len(data) < HEADER_LENGTH + 8 or data[-8:-4] != b"\x80\x28\x00\x04":
        return False
    crc = (zlib.crc32(data[:-8]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
    return crc == _u32.unpack_from(data, len(data) - 4)[0]


def verify(
    data: bytes,
    key: bytes | None,
    *,
    require_integrity: bool = True,
    require_fingerprint: bool = False,
) -> str | None:
    """The receive path's gate: ``None`` when raw ``data`` may be acted on, else the reason
    to drop it (the caller logs it).  ``key`` None skips integrity."""
    if require_fingerprint and not check_fingerprint(data):
        return "FINGERPRINT missing or wrong"
    if key is not None and require_integrity:
        last = _LAST_DECODED
        sha1, sha256 = last[1:] if last[0] is data else _integrity_positions(data)
        if sha1 < 0 and sha256 < 0:
            return "MESSAGE-INTEGRITY missing"
        if not check_integrity(data, key):
            return "MESSAGE-INTEGRITY mismatch"
    return None


def decode_verified(
    data: bytes, key: bytes | None, *, require_fingerprint: bool = False
) -> Message | None:
    """decode + verify; logs and returns None for a message that must be dropped."""
    try:
        msg = decode(data)
    except StunDecodeError as e:
        log.debug("dropped undecodable STUN message: {reason}", reason=e.reason)
        return None
    problem = verify(data, key, require_fingerprint=require_fingerprint)
    if problem is not None:
        log.info("dropped STUN {summary}: {problem}", summary=msg.summary(), problem=problem)
        return None
    return msg


_B1 = stringprep.in_table_b1
_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
    stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
    stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
)


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep (stored strings disallowed): raises ValueError on prohibited input."""
    if text.isascii() and all(0x20 < ord(c) < 0x7F or c == " " for c in text):
        return text
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in text if not _B1(c))
    norm = unicodedata.normalize("NFKC", mapped)
    for c in norm:
        if any(check(c) for check in _PROHIBITED):
            raise ValueError(f"prohibited character U+{ord(c):04X}")
    ral = [stringprep.in_table_d1(c) for c in norm]
    if any(ral):
        if any(stringprep.in_table_d2(c) for c in norm) or not (ral[0] and ral[-1]):
            raise ValueError("bad bidirectional text")
    return norm


def short_term_key(password: str) -> bytes:
    """RFC 8489 §9.1.1: the key is the (OpaqueString-prepared) password itself."""
    return password.encode("utf-8")


def long_term_key(
    username: str,
    realm: str,
    password: str,
    algorithm: PasswordAlgorithm = PasswordAlgorithm.MD5,
) -> bytes:
    """RFC 8489 §9.2.2: MD5 (or SHA-256) of ``username ":" realm ":" SASLprep(password)``."""
    material = f"{username}:{realm}:{saslprep(password)}".encode()
    if algorithm == PasswordAlgorithm.SHA256:
        return hashlib.sha256(material).digest()
    return hashlib.md5(material).digest()  # noqa: S324 - mandated by the RFC


def userhash(username: str, realm: str) -> bytes:
    """RFC 8489 §14.4 USERHASH: SHA-256(username ":" realm)."""
    return hashlib.sha256(f"{username}:{realm}".encode()).digest()


# --------------------------------------------------------------------------------------------
# responses a server (or an ICE agent answering checks) builds


def error_response(request: Message, code: int, reason: str | None = None) -> Message:
    """An error response to ``request`` with ERROR-CODE ``code``."""
    return Message(
        request.method, Class.ERROR, request.transaction_id,
        {Attr.ERROR_CODE: (code, reason or ERROR_REASONS.get(code, "Error"))},
    )


def error_420(request: Message) -> Message | None:
    """RFC 8489 §6.3.1: the 420 answer (with UNKNOWN-ATTRIBUTES) a request with unknown
    comprehension-required attributes must get, or None when it has none."""
    if not request.unknown_required or request.cls != Class.REQUEST:
        return None
    resp = error_response(request, 420)
    resp.attributes[Attr.UNKNOWN_ATTRIBUTES] = request.unknown_required
    return resp


def success_response(request: Message, attributes: Iterable[tuple[Attr | int, object]] = ()
                     ) -> Message:
    return Message(request.method, Class.SUCCESS, request.transaction_id, dict(attributes))
