"""The fuzzing harness the three campaigns share: mutation engine, runner, crash files.

A campaign is a :class:`Target`: seed inputs from the test corpora, a ``run(data)`` that feeds
one input to the code under test, the typed errors that are an allowed outcome for bad input
(``SipParseError``, ``StunDecodeError``, ``SdpError``), a dictionary of tokens and a
format-aware mutation (header lines, STUN TLVs, SDP lines).  Anything else ``run`` raises -- any
other exception, or a single input running longer than ``--timeout`` -- is a *finding*: the
input is saved under ``--crash-dir`` (``<signature>-<sha1>.bin`` plus a ``.txt`` traceback) and
counted once per signature (exception type and the innermost project frame).

Two engines:

* ``atheris`` (coverage-guided libFuzzer, when the ``atheris`` package is installed): the
  project's modules are instrumented, libFuzzer keeps inputs that reach new code, and half the
  mutations are ours (format-aware), half libFuzzer's;
* ``mutate`` (no dependency): a seeded, reproducible mutation engine -- bit flips, interesting
  bytes, byte insert/delete/duplicate, splices of two inputs, dictionary tokens and the
  target's format-aware mutation, stacked 1-8 deep, over the seeds plus a bounded pool of
  mutants that parsed (so the engine goes deeper than one mutation from a seed).

Every campaign prints executions, executions per second, how many inputs parsed, and findings,
every few seconds and at the end; exit status 1 when there were findings.  Give files as
arguments to replay them (e.g. a saved crash) instead of fuzzing.

This module imports nothing of the project, so that atheris can instrument the targets'
modules when they are first imported (in ``build()``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROJECT_PACKAGES = ("siplink", "ice", "sdp")

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x09, 0x0A, 0x0D, 0x22, 0x25, 0x2C,
                     0x3A, 0x3B, 0x3C, 0x3E, 0x40, 0x5C)
INTERESTING_NUMBERS = (b"0", b"-1", b"1", b"255", b"256", b"65535", b"65536", b"2147483647",
                       b"2147483648", b"4294967295", b"4294967296", b"99999999999999999999",
                       b"1e9", b"0x10", b"00000000001", b"\xd9\xa3", b"-0", b"+1", b" 1", b"1 ")


class Timeout(Exception):
    """Raised (from a SIGALRM handler) in an input that runs longer than ``--timeout``."""


@dataclass
class Target:
    """One fuzz campaign (see the module docstring)."""

    name: str
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]
    seeds: list[bytes]
    tokens: list[bytes] = field(default_factory=list)
    mutate: Callable[[random.Random, bytes], bytes] | None = None
    max_len: int = 8192
    # set by run() when an input parsed (counted as "accepted" and kept in the pool)
    accepted: list[bool] = field(default_factory=lambda: [False])

    def accept(self) -> None:
        self.accepted[0] = True


# ----------------------------------------------------------------------------- corpora


def read_dir(path: Path, patterns: Sequence[str] = ("*",)) -> list[bytes]:
    out: list[bytes] = []
    for pattern in patterns:
        for p in sorted(path.glob(pattern)):
            if p.is_file() and p.suffix not in (".md", ".tsv"):
                out.append(p.read_bytes())
    return out


# ----------------------------------------------------------------------------- mutations


class Mutator:
    """Generic byte-level mutations plus the target's format-aware one, stacked."""

    def __init__(self, target: Target, rng: random.Random) -> None:
        self.target = target
        self.rng = rng
        self.seeds = [s for s in target.seeds if s] or [b"\x00"]

    def one(self, data: bytearray) -> bytearray:
        rng = self.rng
        n = len(data)
        op = rng.randrange(12)
        if n == 0:
            op = 4
        if op == 0:                                   # flip a bit
            i = rng.randrange(n)
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                 # set an interesting byte
            data[rng.randrange(n)] = rng.choice(INTERESTING_BYTES)
        elif op == 2:                                 # set a random byte
            data[rng.randrange(n)] = rng.randrange(256)
        elif op == 3:                                 # delete a range
            i = rng.randrange(n)
            del data[i:i + 1 + rng.randrange(min(32, n - i))]
        elif op == 4:                                 # insert random bytes
            i = rng.randrange(n + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(8)))
        elif op == 5:                                 # duplicate a range
            i = rng.randrange(n)
            j = min(n, i + 1 + rng.randrange(64))
            k = rng.randrange(n + 1)
            data[k:k] = data[i:j]
        elif op == 6:                                 # splice with another input
            other = rng.choice(self.seeds)
            i = rng.randrange(n + 1)
            j = rng.randrange(len(other) + 1)
            data[i:] = other[j:]
        elif op == 7 and self.target.tokens:          # insert a dictionary token
            i = rng.randrange(n + 1)
            data[i:i] = rng.choice(self.target.tokens)
        elif op == 8 and self.target.tokens:          # overwrite with a token
            tok = rng.choice(self.target.tokens)
            i = rng.randrange(n)
            data[i:i + len(tok)] = tok
        elif op == 9:                                 # an interesting number somewhere
            i = rng.randrange(n + 1)
            j = min(n, i + rng.randrange(8))
            data[i:j] = rng.choice(INTERESTING_NUMBERS)
        elif op == 10:                                # truncate
            del data[rng.randrange(n):]
        else:                                         # format-aware
            if self.target.mutate is not None:
                return bytearray(self.target.mutate(rng, bytes(data)))
            data[rng.randrange(n)] = rng.randrange(256)
        return data

    def mutate(self, data: bytes, max_len: int) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        depth = 1 << rng.randrange(4)                  # 1, 2, 4 or 8 stacked mutations
        for _ in range(depth):
            if self.target.mutate is not None and rng.random() < 0.5:
                buf = bytearray(self.target.mutate(rng, bytes(buf)))
            else:
                buf = self.one(buf)
        if len(buf) > max_len:
            del buf[max_len:]
        return bytes(buf)


# ----------------------------------------------------------------------------- findings


def _project_frame(tb: TracebackType | None) -> str:
    """file:line of the innermost frame in the project's packages (else the innermost one)."""
    frames = traceback.extract_tb(tb)
    for fr in reversed(frames):
        rel = os.path.relpath(fr.filename, ROOT)
        if rel.split(os.sep, 1)[0] in PROJECT_PACKAGES:
            return f"{rel}:{fr.lineno}"
    if frames:
        fr = frames[-1]
        return f"{os.path.basename(fr.filename)}:{fr.lineno}"
    return "?"


class Campaign:
    """Runs inputs through a target, classifies outcomes and keeps the statistics."""

    def __init__(self, target: Target, crash_dir: Path, timeout: float, quiet: bool = False,
                 max_findings_saved: int = 20) -> None:
        self.target = target
        self.crash_dir = crash_dir
        self.timeout = timeout
        self.quiet = quiet
        self.max_saved = max_findings_saved
        self.execs = 0
        self.typed = 0
        self.accepted = 0
        self.findings: dict[str, int] = {}          # signature -> count
        self.examples: dict[str, str] = {}          # signature -> saved file
        self.slowest = 0.0
        self.slowest_input = b""
        self.started = time.monotonic()
        self._in_input_since: float | None = None
        self._last_report = self.started

    # -- per-input timeout: one interval timer; the handler raises in a slow input
    def arm(self) -> None:
        if self.timeout <= 0:
            return
        tick = max(0.05, self.timeout / 4)

        def handler(signum: int, frame: FrameType | None) -> None:
            since = self._in_input_since
            if since is not None and time.monotonic() - since > self.timeout:
                self._in_input_since = None
                raise Timeout(f"input ran longer than {self.timeout:g} s")

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, tick, tick)

    def disarm(self) -> None:
        if self.timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)

    def execute(self, data: bytes) -> bool:
        """Run one input; True when it was accepted (parsed)."""
        t = self.target
        t.accepted[0] = False
        self.execs += 1
        t0 = time.monotonic()
        self._in_input_since = t0
        try:
            t.run(data)
        except t.allowed:
            self.typed += 1
        except (Timeout, Exception) as e:  # noqa: BLE001 - every other outcome is a finding
            self._in_input_since = None
            self.record(data, e)
        finally:
            self._in_input_since = None
        elapsed = time.monotonic() - t0
        if elapsed > self.slowest:
            self.slowest = elapsed
            self.slowest_input = data
        ok = t.accepted[0]
        if ok:
            self.accepted += 1
        return ok

    def record(self, data: bytes, exc: BaseException) -> None:
        sig = f"{type(exc).__name__}@{_project_frame(exc.__traceback__)}"
        count = self.findings.get(sig, 0)
        self.findings[sig] = count + 1
        if count:
            return
        digest = hashlib.sha1(data).hexdigest()[:12]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sig)
        path = self.crash_dir / f"{self.target.name}-{safe}-{digest}.bin"
        if len(self.examples) < self.max_saved:
            self.crash_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            path.with_suffix(".txt").write_text(f"{sig}\ninput: {data!r}\n\n{tb}")
            self.examples[sig] = str(path)
        print(f"[{self.target.name}] FINDING {sig}: {exc!r:.200} -> {path}", flush=True)

    def rate(self) -> float:
        return self.execs / max(1e-9, time.monotonic() - self.started)

    def report(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and (self.quiet or now - self._last_report < 10.0):
            return
        self._last_report = now
        print(f"[{self.target.name}] {'DONE ' if final else ''}{self.execs} execs in "
              f"{now - self.started:.0f} s, {self.rate():.0f} exec/s, accepted "
              f"{self.accepted}, typed errors {self.typed}, findings "
              f"{sum(self.findings.values())} ({len(self.findings)} distinct), slowest "
              f"input {1000 * self.slowest:.1f} ms", flush=True)

    def save_slowest(self) -> str | None:
        """Keep the slowest input (for a look at near-timeouts); its path."""
        if not self.slowest_input:
            return None
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        path = self.crash_dir / f"{self.target.name}-slowest.bin"
        path.write_bytes(self.slowest_input)
        return str(path)

    def summary(self, engine: str, seed: int) -> dict[str, Any]:
        return {"target": self.target.name, "engine": engine, "seed": seed,
                "execs": self.execs, "seconds": round(time.monotonic() - self.started, 1),
                "exec_per_s": round(self.rate()), "accepted": self.accepted,
                "typed_errors": self.typed, "findings": dict(self.findings),
                "crash_files": dict(self.examples),
                "slowest_ms": round(1000 * self.slowest, 1)}


# ----------------------------------------------------------------------------- engines


def run_mutate(target: Target, camp: Campaign, budget: int, seconds: float, seed: int,
               pool_size: int = 2048) -> None:
    rng = random.Random(seed)
    mut = Mutator(target, rng)
    seeds = mut.seeds
    pool: list[bytes] = []
    deadline = time.monotonic() + seconds
    # every seed once, as is
    for s in seeds:
        if camp.execs >= budget:
            return
        camp.execute(s)
    while camp.execs < budget:
        if not camp.execs & 255 and time.monotonic() > deadline:
            break
        base = pool[rng.randrange(len(pool))] if pool and rng.random() < 0.4 else \
            seeds[rng.randrange(len(seeds))]
        data = mut.mutate(base, target.max_len)
        if camp.execute(data) and data not in seeds:
            if len(pool) < pool_size:
                pool.append(data)
            else:
                pool[rng.randrange(pool_size)] = data
        camp.report()


def run_atheris(target: Target, camp: Campaign, budget: int, seconds: float, seed: int,
                workdir: Path, summary: Callable[[], None]) -> None:  # pragma: no cover
    import atheris

    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for s in target.seeds:
        (corpus / hashlib.sha1(s).hexdigest()).write_bytes(s)
    deadline = time.monotonic() + seconds
    mut_rng = random.Random(seed)
    mut = Mutator(target, mut_rng)

    def one_input(data: bytes) -> None:
        camp.execute(data)
        camp.report()
        if camp.execs >= budget or (not camp.execs & 255 and time.monotonic() > deadline):
            summary()
            sys.stdout.flush()
            os._exit(1 if camp.findings else 0)

    def custom_mutator(data: bytes, max_size: int, mseed: int) -> bytes:
        if mseed & 1:
            return bytes(atheris.Mutate(data, max_size))
        mut_rng.seed(mseed)
        return mut.mutate(data, max_size)

    args = [sys.argv[0], f"-seed={seed or 1}", f"-max_len={target.max_len}", "-timeout=0",
            f"-runs={budget + len(target.seeds) + 10}", f"-max_total_time={int(seconds) + 5}",
            "-print_final_stats=1", "-close_fd_mask=0", str(corpus)]
    atheris.Setup(args, one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


# ----------------------------------------------------------------------------- main


def main(name: str, build: Callable[[], Target], argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"fuzz_{name}.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="replay these inputs instead of fuzzing")
    ap.add_argument("--budget", type=int, default=100_000, help="inputs to run (default 100000)")
    ap.add_argument("--seconds", type=float, default=3600.0, help="time cap (default 3600)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--engine", choices=("auto", "atheris", "mutate"), default="auto",
                    help="atheris when installed (auto), else the built-in mutation engine")
    ap.add_argument("--timeout", type=float, default=2.0,
                    help="seconds one input may take before it is a finding (0: no limit)")
    ap.add_argument("--crash-dir", type=Path, default=ROOT / "fuzz" / "crashes",
                    help="where findings are saved (default fuzz/crashes)")
    ap.add_argument("--json", type=Path, help="write the summary here as JSON")
    ap.add_argument("--quiet", action="store_true", help="only the final summary")
    args = ap.parse_args(argv)

    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "mutate"
    if engine == "atheris" and not args.files:
        import atheris
        with atheris.instrument_imports(include=list(PROJECT_PACKAGES) + ["sdp_transform"]):
            target = build()
    else:
        target = build()

    camp = Campaign(target, args.crash_dir, args.timeout, quiet=args.quiet)

    def summary() -> None:
        camp.disarm()
        camp.report(final=True)
        s = camp.summary(engine, args.seed)
        s["slowest_input"] = camp.save_slowest()
        if args.json is not None:
            args.json.write_text(json.dumps(s, indent=2) + "\n")
        for sig, n in sorted(camp.findings.items()):
            print(f"[{name}] finding {sig}: {n} input(s), e.g. {camp.examples.get(sig, '-')}")

    if args.files:
        camp.crash_dir = Path(tempfile.mkdtemp(prefix="replay-"))
        for f in args.files:
            data = f.read_bytes()
            try:
                target.run(data)
                print(f"{f}: accepted" if target.accepted[0] else f"{f}: ok")
            except target.allowed as e:
                print(f"{f}: typed error {e!r:.200}")
            except Exception:  # noqa: BLE001 - show it
                print(f"{f}: FINDING")
                traceback.print_exc()
                camp.findings[f.name] = 1
        return 1 if camp.findings else 0

    print(f"[{name}] engine {engine}, seed {args.seed}, budget {args.budget} inputs / "
          f"{args.seconds:g} s, {len(target.seeds)} seeds, {len(target.tokens)} tokens",
          flush=True)
    camp.arm()
    try:
        if engine == "atheris":
            with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as work:
                run_atheris(target, camp, args.budget, args.seconds, args.seed, Path(work),
                            summary)
        else:
            run_mutate(target, camp, args.budget, args.seconds, args.seed)
    except KeyboardInterrupt:
        print(f"[{name}] interrupted", flush=True)
    summary()
    return 1 if camp.findings else 0
