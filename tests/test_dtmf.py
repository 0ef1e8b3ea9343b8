"""RFC 4733 telephone-events: payload, the packet series of a key press, receiver de-duplication."""

from __future__ import annotations

import pytest

from siplink.media.dtmf import (
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_of,
    event_of,
    event_series,
)


def test_event_codes():
    assert [event_of(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert event_of("a") == 12 and digit_of(11) == "#" and digit_of(16) is None
    for bad in ("x", "", "12"):
        with pytest.raises(DtmfError):
            event_of(bad)


def test_payload_layout():
    # RFC 4733 §2.3: event (8) | E (1) R (1) volume (6) | duration (16)
    raw = TelephoneEvent(event=11, end=True, volume=10, duration=800).encode()
    assert raw == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.decode(raw) == TelephoneEvent(11, True, 10, 800)
    assert TelephoneEvent.decode(bytes([5, 0x40 | 7, 0, 160])) == TelephoneEvent(5, False, 7, 160)
    with pytest.raises(DtmfError):
        TelephoneEvent.decode(b"\x01\x02")


def test_series_of_one_key_press():
    ticks = event_series("5", duration=800, packet_samples=160, volume=10)
    # 100 ms at 20 ms: durations 160..640 without E, then 800 with E three times
    assert [t.event.duration for t in ticks] == [160, 320, 480, 640, 800, 800, 800]
    assert [t.event.end for t in ticks] == [False] * 4 + [True] * 3
    assert [t.marker for t in ticks] == [True] + [False] * 6
    assert {t.event.event for t in ticks} == {5} and {t.event.volume for t in ticks} == {10}


def test_series_shorter_than_one_packet():
    ticks = event_series("1", duration=100, packet_samples=160)
    assert [(t.event.duration, t.event.end, t.marker) for t in ticks] == [
        (100, True, True), (100, True, False), (100, True, False)]


def test_sender_timestamps_and_gap():
    s = DtmfSender(packet_samples=160, duration=800, gap=320)
    s.send("12")
    out = []
    ts = 1000
    while s.busy:
        out.append(s.tick(ts))
        ts += 160
    sent = [o for o in out if o is not None]
    assert len(sent) == 14
    # every packet of one event carries its first tick's timestamp
    assert {o[1] for o in sent[:7]} == {1000} and {o[1] for o in sent[7:]} == {1000 + 9 * 160}
    assert out[7] is None and out[8] is None   # 40 ms of audio between digits
    with pytest.raises(DtmfError):
        s.send("1x")


def test_receiver_dedups_redundant_end_packets():
    r = DtmfReceiver()
    got = []
    for ts, digit in ((0, "1"), (2000, "2"), (4000, "3"), (6000, "#")):
        for t in event_series(digit):
            got += r.receive(ts, t.event.encode(), ssrc=9)
    assert "".join(d.digit for d in got) == "123#"
    assert [d.duration for d in got] == [800] * 4
    # a late retransmission of an old end packet is not a new digit
    assert r.receive(2000, event_series("2")[-1].event.encode(), ssrc=9) == []


def test_receiver_reports_event_whose_end_was_lost():
    r = DtmfReceiver()
    for t in event_series("7")[:3]:           # only the first three packets arrive
        assert r.receive(100, t.event.encode()) == []
    got = r.receive(900, event_series("8")[0].event.encode())
    assert [d.digit for d in got] == ["7"]
    got = [d.digit for t in event_series("8") for d in r.receive(900, t.event.encode())]
    assert got == ["8"]
    assert r.flush() == []
    r.receive(5000, event_series("9")[0].event.encode())
    assert [d.digit for d in r.flush()] == ["9"]


def test_receiver_same_digit_twice_is_two_digits():
    r = DtmfReceiver()
    got = [d.digit for ts in (0, 1600) for t in event_series("4")
           for d in r.receive(ts, t.event.encode())]
    assert got == ["4", "4"]
