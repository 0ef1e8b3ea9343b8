import subprocess
import sys

from siplink import __version__
from siplink.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert __version__ in capsys.readouterr().out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "siplink", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "usage: siplink" in out.stdout


def test_no_command_is_usage_error():
    assert main([]) == 2
