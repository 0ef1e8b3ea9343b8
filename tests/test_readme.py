"""README.md must stay true: its Python example runs, its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from siplink.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_example_runs_an_ice_call() -> None:
    code = re.search(r"```python\n(.*?)```", README, re.S)
    assert code is not None
    out = subprocess.run([sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "host" in out.stdout and "127.0.0.1" in out.stdout, out.stdout


def test_every_documented_command_exists() -> None:
    documented = set(re.findall(r"^siplink (?:\[[^\]]*\] )*([a-z]+)\b", README, re.M))
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert documented - {"COMMAND"} <= set(sub.choices), documented - set(sub.choices)
    assert set(sub.choices) <= documented, f"undocumented: {set(sub.choices) - documented}"


def test_two_setup_commands_exist() -> None:
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert f"bash {script}" in README
        assert (ROOT / script).exists()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
