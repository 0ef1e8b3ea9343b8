from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _peer_files_under_basetemp(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Peer logs and work directories (tempfile.mkdtemp/mkstemp in tests and launchers) go
    under pytest's basetemp, which pytest prunes to the last 3 runs, so repeated runs on one
    machine do not fill /tmp."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("peers"))
    yield
    tempfile.tempdir = previous


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
