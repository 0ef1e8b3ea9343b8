#!/usr/bin/env bash
# The main job, from a fresh clone: install siplink and run the demo (no configuration needed).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e . >&2
exec python3 -m siplink demo "$@"
