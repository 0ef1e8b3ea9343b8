from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The test corpora: tests/data (byte-identical copies of ../shared/corpus)."""
    return DATA


@pytest.fixture
def kamailio():  # type: ignore[no-untyped-def]
    """Kamailio as registrar + record-routing proxy with digest auth, on a free loopback port."""
    from tests.peers.kamailio import Kamailio

    k = Kamailio().start()
    yield k
    k.stop()
