#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the real peers (Debian packages) and the
# Python dependencies, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
exec python3 -m pytest "$@"
