"""Gathering helpers: address selection, server URIs, host and reflexive candidates."""

import pytest

from ice.candidate import CandidateType
from ice.gathering import (
    GatheringError,
    host_candidate,
    is_redundant,
    parse_server_uri,
    reflexive_candidate,
    select_local_addresses,
)


@pytest.mark.parametrize(("uri", "want"), [
    ("stun:127.0.0.1", ("stun", "127.0.0.1", 3478)),
    ("stun:127.0.0.1:19302", ("stun", "127.0.0.1", 19302)),
    ("turn:127.0.0.1:3479?transport=udp", ("turn", "127.0.0.1", 3479)),
    ("turns:example.test", ("turns", "example.test", 5349)),
    ("turn:[::1]:3478", ("turn", "::1", 3478)),
    ("[::1]", ("stun", "::1", 3478)),
    ("127.0.0.1:5000", ("stun", "127.0.0.1", 5000)),
])
def test_parse_server_uri(uri, want):
    assert parse_server_uri(uri) == want


@pytest.mark.parametrize("uri", ["stun:", "turn:h:99999", "turn:h:x", "turn:[::1", "[::1]x"])
def test_parse_server_uri_errors(uri):
    with pytest.raises(GatheringError):
        parse_server_uri(uri)


def test_select_local_addresses_explicit_and_filtered():
    assert select_local_addresses(["127.0.0.1", "127.0.0.2", "127.0.0.1"]) == [
        "127.0.0.1", "127.0.0.2"]
    assert select_local_addresses(["127.0.0.1", "::1"], ipv6=False) == ["127.0.0.1"]
    for bad in ("fe80::1", "224.0.0.1", "not-an-ip", "::"):
        with pytest.raises(GatheringError):
            select_local_addresses([bad])


def test_select_local_addresses_by_interface_is_loopback_only_for_lo():
    got = select_local_addresses(interfaces=["lo"])
    assert "127.0.0.1" in got and all(ip in ("127.0.0.1", "::1") for ip in got)


def test_srflx_equal_to_host_is_redundant():
    h = host_candidate(("10.0.0.1", 1000), 1, 65535)
    same = reflexive_candidate(CandidateType.SERVER_REFLEXIVE, ("10.0.0.1", 1000),
                               ("10.0.0.1", 1000), 1, 65535, "s:3478")
    other = reflexive_candidate(CandidateType.SERVER_REFLEXIVE, ("203.0.113.1", 40000),
                                ("10.0.0.1", 1000), 1, 65535, "s:3478")
    assert is_redundant(same, [h]) and not is_redundant(other, [h])
    assert other.related_address == "10.0.0.1" and other.priority < h.priority
