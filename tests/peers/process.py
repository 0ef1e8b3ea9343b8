"""Start a real peer program, wait until it says it is ready, stop it by PID."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

_used_ports: set[int] = set()


def require_binary(name: str) -> str:
    """Path of ``name``; fails the test (never skips) when the peer is not installed."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        pytest.fail(f"peer program {name!r} is not installed: run scripts/install-peers.sh")
    return path


def _port_is_free(port: int, host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(family, kind)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(host: str = "127.0.0.1", span: int = 1) -> int:
    """A port P such that P .. P+span-1 are free for both UDP and TCP on ``host``.

    Ports handed out in this process are not handed out again, so two peers started by one
    test do not collide even before either has bound its socket.
    """
    for _ in range(200):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        base = s.getsockname()[1]
        s.close()
        candidates = range(base, base + span)
        if base + span > 65535 or any(p in _used_ports for p in candidates):
            continue
        if all(_port_is_free(p, host) for p in candidates):
            _used_ports.update(candidates)
            return base
    raise RuntimeError("no free port range found")


class PeerProcess:
    """A peer program running in the background, its output captured to a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        ready: str | None = None,
        *,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        name: str | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = list(argv)
        self.ready = re.compile(ready) if ready else None
        self.cwd = str(cwd) if cwd else None
        self.env = env
        self.name = name or Path(self.argv[0]).name
        self.stdin = stdin
        fd, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 15.0) -> PeerProcess:
        out = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=self.stdin,
            cwd=self.cwd, env=self.env, start_new_session=True,
        )
        out.close()
        if self.ready is None:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.search(self.log()):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                    + self.log()[-4000:]
                )
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n" + self.log()[-4000:])

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the log matches ``pattern``; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: {pattern!r} not seen in {timeout}s:\n" + self.log()[-4000:])

    def wait_exit(self, timeout: float = 20.0) -> Any:
        """A Deferred firing with the exit code once the program ends by itself (stopped
        after ``timeout``), polling without blocking the reactor: for peers that talk to
        Twisted code in the same test, such as SIPp running a scenario against our UA."""
        from twisted.internet import defer, reactor, task

        @defer.inlineCallbacks
        def poll() -> Any:
            deadline = time.monotonic() + timeout
            while self.proc is not None and self.proc.poll() is None \
                    and time.monotonic() < deadline:
                yield task.deferLater(reactor, 0.05, lambda: None)
            return self.stop()

        return poll()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> PeerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
