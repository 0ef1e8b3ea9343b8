from ice.candidate import (
    Candidate,
    CandidateType,
    candidate_priority,
    compute_foundation,
    pair_priority,
)


def test_priority_formula_rfc8445():
    # host, max local preference, RTP component
    assert candidate_priority(126, 65535, 1) == (126 << 24) + (65535 << 8) + 255 == 2130706431
    assert candidate_priority(0, 0, 2) == 254


def test_pair_priority_symmetric_tiebreak():
    a, b = 2130706431, 1694498815
    assert pair_priority(a, b) == (b << 32) + 2 * a + 1
    assert pair_priority(b, a) == (b << 32) + 2 * a
    assert pair_priority(a, b) > pair_priority(b, a)


def test_foundation_groups_by_type_base_server_transport():
    f1 = compute_foundation(CandidateType.HOST, "10.0.0.1")
    assert f1 == compute_foundation(CandidateType.HOST, "10.0.0.1")
    assert f1 != compute_foundation(CandidateType.HOST, "10.0.0.2")
    assert f1 != compute_foundation(CandidateType.SERVER_REFLEXIVE, "10.0.0.1", server="s:3478")
    assert f1 != compute_foundation(CandidateType.HOST, "10.0.0.1", transport="tcp")
    assert len(f1) <= 32 and f1.isalnum()


def test_candidate_str():
    c = Candidate("1", 1, "udp", 100, "127.0.0.1", 4000, CandidateType.HOST)
    assert "host udp 127.0.0.1:4000" in str(c)
