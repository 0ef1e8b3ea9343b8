"""The baresip fixture (tests/peers/baresip.py) proven: two real baresips call each other with ICE
inside a namespace; the call is established, ICE completes on both sides, and RTP flows both
ways, counted by baresip and independently by tshark capturing inside the namespace, and the
received audio is the caller's tone. With
coturn in the same namespace baresip gathers srflx candidates (equal to the host ones, so
eliminated) and, with TURN, relay candidates whose checks succeed. Behind the NAT lab's NATs
it offers real srflx candidates, relays through the firewall, and calls through the lab's
Kamailio. This is the peer the issue 7 ICE-call tests will run siplink against.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.baresip import Baresip, recorded_wavs, wav_tone_hz
from tests.peers.natlab import PUBLIC_IP, SIP_PORT, NatLab
from tests.peers.netns import Lab, NetNs, count_rtp
from tests.peers.turn_in_ns import CoturnInNs

pytestmark = [pytest.mark.netns, pytest.mark.peer, pytest.mark.timeout(90)]
IP = "198.51.100.1"


@pytest.fixture
def ns() -> Iterator[NetNs]:
    """One namespace with a veth pair, 198.51.100.1/24 on v0 (the lab notes' recipe)."""
    with Lab() as lab:
        n = lab.namespace("bs")
        lab.veth(n, "v0", n, "v1", f"{IP}/24")
        yield n


def _call(a: Baresip, b: Baresip, seconds: float = 2.0) -> None:
    b.mark()
    a.dial(b.uri)
    assert a.wait_established() == b.uri
    assert b.wait_established() == a.uri
    assert a.call_states() == ["ESTABLISHED"]
    a.wait_ice_complete()
    b.wait_ice_complete()
    a.wait_rtp_incoming()
    b.wait_rtp_incoming()
    time.sleep(seconds)
    a.hangup()


def _assert_rtp_both_ways(a: Baresip, b: Baresip, minimum: int) -> None:
    for side in (a, b):
        stats = side.wait_rtp_stats()
        assert stats.tx_packets >= minimum and stats.rx_packets >= minimum, (side.user, stats)


def test_two_baresips_call_each_other_with_ice_host_candidates(ns: NetNs, tmp_path: Path) -> None:
    pcap = tmp_path / "call.pcap"
    cap = ns.capture(pcap, "lo")
    a = Baresip(ns, IP, 25200, user="alice", interface="v0", tone=1000).start()
    b = Baresip(ns, IP, 25300, user="bob", interface="v0", record_dir=tmp_path).start()
    _call(a, b)
    # The nominated pair is host/host: media goes to the peer's host candidate.
    a_rtp, _ = a.wait_media_connected()
    b_rtp, _ = b.wait_media_connected()
    assert a_rtp.startswith(f"{IP}:") and b_rtp.startswith(f"{IP}:")
    assert ("host", IP, int(a_rtp.split(":")[1]), 1) in b.candidates()
    assert ("host", IP, int(b_rtp.split(":")[1]), 1) in a.candidates()
    _assert_rtp_both_ways(a, b, 50)  # 50 packets/s for >= 2 s
    cap.stop()
    flows = count_rtp(pcap)
    a_local = f"{IP}:{b_rtp.split(':')[1]}"  # where b sends = a's RTP address
    b_local = f"{IP}:{a_rtp.split(':')[1]}"
    assert flows.get((a_local, b_local), 0) >= 50, flows
    assert flows.get((b_local, a_local), 0) >= 50, flows
    # What bob decoded is alice's 1000 Hz tone; what he sent is his own 440 Hz.
    wavs = recorded_wavs(tmp_path)
    assert abs(wav_tone_hz(wavs["dec"]) - 1000) < 20
    assert abs(wav_tone_hz(wavs["enc"]) - 440) < 10


def test_baresip_with_coturn_in_the_namespace_gathers_and_checks_a_relay(ns: NetNs) -> None:
    CoturnInNs(ns, IP).start()
    a = Baresip(ns, IP, 25200, user="alice", interface="v0", stun=f"stun:{IP}:3478").start()
    b = Baresip(ns, IP, 25300, user="bob", interface="v0", turn=f"turn:{IP}:3478").start()
    _call(a, b, seconds=1.0)
    # Without a NAT the srflx address equals the host address: gathered, then eliminated.
    a.wait_for(r"ice: srflx gathering for comp 1 complete")
    a.wait_for(r"redundant candidates eliminated: 2")
    relays = sorted((c for c in b.candidates() if c[0] == "relay"), key=lambda c: c[3])
    assert [c[3] for c in relays] == [1, 2] and all(c[1] == IP for c in relays), b.candidates()
    # Checks through coturn succeed (a valid pair on b's relay), but the host pair has the
    # higher priority and carries the media, as RFC 8445 predicts.
    valid = b.valid_pairs()
    assert any(p[2:4] == ("relay", f"{IP}:{relays[0][2]}") for p in valid), valid
    assert b.selected_pairs()[-1][0] == "host" and b.selected_pairs()[-1][2] == "host"
    _assert_rtp_both_ways(a, b, 25)


def test_baresip_behind_the_nat_lab_gets_srflx_and_relay_and_calls_out() -> None:
    """baresip in each NATed site host calls a baresip on the public side (SIP port 5080, which
    the firewalled site lets out): behind the EIM NAT it offers a real srflx candidate and the
    public side sends media to the NAT's address; behind the UDP firewall only its TURN relay
    works, and media flows both ways through coturn."""
    with NatLab("eim", "udp-blocked-except-turn") as lab:
        assert lab.turn is not None
        pub = Baresip(lab.public, PUBLIC_IP, SIP_PORT, user="pub", interface="pub").start()
        a = Baresip(lab.a.host, lab.a.host_ip, 25200, user="a", interface="eth0",
                    stun=lab.turn.stun_uri).start()
        b = Baresip(lab.b.host, lab.b.host_ip, 25200, user="b", interface="eth0",
                    turn=lab.turn.uri).start()

        _call(a, pub, seconds=1.0)
        assert ("host", lab.a.host_ip) in {c[:2] for c in a.candidates()}
        srflx = [c for c in a.candidates() if c[0] == "srflx" and c[3] == 1]
        assert srflx and srflx[0][1] == lab.a.wan_ip, a.candidates()
        # The public side sends media to the NAT's public address, never to 192.0.2.x.
        pub_rtp, _ = pub.wait_media_connected()
        assert pub_rtp.split(":")[0] == lab.a.wan_ip
        _assert_rtp_both_ways(a, pub, 25)

        _call(b, pub, seconds=1.0)
        relay = [c for c in b.candidates() if c[0] == "relay" and c[3] == 1]
        assert relay and relay[0][1] == PUBLIC_IP, b.candidates()
        assert b.selected_pairs()[-1][0] == "relay", b.valid_pairs()
        pub_rtp, _ = pub.wait_media_connected()
        assert pub_rtp == f"{PUBLIC_IP}:{relay[0][2]}"  # pub sends to b's relay
        _assert_rtp_both_ways(b, pub, 25)


def test_baresips_behind_two_nats_register_and_call_through_the_lab_proxy() -> None:
    """The NAT lab's Kamailio (public side) registers both NATed baresips at their NAT
    addresses and routes the INVITE there; ICE pairs the two server-reflexive candidates
    (hole punching through both EIM NATs) and media flows both ways."""
    with NatLab("eim", "eim") as lab:
        assert lab.turn is not None
        proxy = lab.start_proxy()
        registrar = f"{PUBLIC_IP}:{SIP_PORT}"
        a, b = (Baresip(site.host, site.host_ip, 25200, user=site.name, interface="eth0",
                        stun=lab.turn.stun_uri, registrar=registrar).start()
                for site in (lab.a, lab.b))
        a.wait_registered()
        b.wait_registered()
        for site in (lab.a, lab.b):
            proxy.process.wait_for(rf"REGISTERED sip:{site.name}@{registrar} .*"
                                   rf"received={site.wan_ip}:25200")
        _call(a, b, seconds=1.0)
        assert a.uri == f"sip:a@{registrar}"
        assert "ROUTED INVITE to sip:b" in proxy.log()
        lt, la, rt, ra = a.selected_pairs()[-1]
        assert (lt, la.split(":")[0], rt, ra.split(":")[0]) == (
            "srflx", lab.a.wan_ip, "srflx", lab.b.wan_ip)
        _assert_rtp_both_ways(a, b, 25)


def test_baresip_is_stopped_and_namespace_removed_with_the_lab() -> None:
    with Lab() as lab:
        n = lab.namespace("bs")
        lab.veth(n, "v0", n, "v1", f"{IP}/24")
        b = Baresip(n, IP, 25200, user="bob", interface="v0").start()
        pid = b.process.pid
        assert n.pids() == [pid]
    assert not n.exists()
    assert not Path(f"/proc/{pid}").exists()
