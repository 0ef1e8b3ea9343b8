#!/usr/bin/env python3
"""SIP call-rate and memory benchmark: SIPp's uac against our UAS, side by side with SIPp's uas.

For each call rate, SIPp's built-in ``uac`` places ``rate * --seconds`` calls (INVITE, 200,
ACK, BYE, 200) against:

* ``siplink answer`` (one Python process, one core), and
* ``sipp -sn uas`` (the reference peer, C++),

and the table shows successful and failed calls. The result is the highest rate with zero
failed calls for each, and their ratio. Then both UASs hold ``--concurrent`` established calls
(SIPp uac with a long call duration) and the resident memory growth per call is measured
from /proc/PID/status.

Usage: python bench/bench_sip_calls.py [--rates 100,200,...] [--seconds 5] [--concurrent 1000]
       [--budget SECONDS]   (stop stepping rates when the budget is spent)
       python bench/bench_sip_calls.py --steady RATE [--seconds 120] [--concurrent 0]
         (one rate held steady, e.g. 120 s: what the overload guard and lingering
          transactions do over time, which 5 s steps cannot show; --concurrent 0 skips the
          memory measurement)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.peers.process import PeerProcess, free_port, require_binary  # noqa: E402
from tests.peers.sipp import SippUas, read_stats  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_siplink(port: int) -> PeerProcess:
    proc = PeerProcess([sys.executable, "-m", "siplink", "answer", "--quiet", "--media", "static",
                        "--listen", f"127.0.0.1:{port}"], ready="listening on", name="siplink-answer",
                       cwd=ROOT)
    proc.start()
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(proc.pid, {0})      # one core
        except OSError:
            pass
    return proc


def start_sipp_uas() -> tuple[SippUas, int]:
    uas = SippUas("uas")
    uas.start()
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(uas.proc.pid, {0})
        except OSError:
            pass
    return uas, uas.port


def run_sipp_uac(port: int, calls: int, rate: int, limit: int, duration_ms: int,
                 timeout: float) -> dict[str, str]:
    sipp = require_binary("sipp")
    work = Path(tempfile.mkdtemp(prefix="bench-uac-"))
    stf = work / "uac.csv"
    media = free_port(span=4)
    argv = [sipp, f"127.0.0.1:{port}", "-sn", "uac", "-i", "127.0.0.1",
            "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(media),
            "-cp", str(free_port()), "-m", str(calls), "-r", str(rate), "-l", str(limit),
            "-d", str(duration_ms), "-nostdin", "-trace_stat", "-stf", str(stf), "-fd", "1",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-recv_timeout", "10000"]
    if hasattr(os, "sched_setaffinity"):
        argv = ["taskset", "-c", "1", *argv] if os.cpu_count() and os.cpu_count() > 1 else argv
    subprocess.run(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, timeout=timeout + 60)
    return read_stats(stf)


def step(port: int, rate: int, seconds: float, pid: int
         ) -> tuple[int, int, float, float, int]:
    """(successful, failed, achieved calls/s, UAS CPU use in % of one core, retransmissions)."""
    calls = max(50, int(rate * seconds))
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    stats = run_sipp_uac(port, calls, rate, limit=max(100, rate * 2), duration_ms=0,
                         timeout=seconds + 30)
    cpu = (cpu_seconds(pid) - cpu0) / max(1e-6, time.monotonic() - t0) * 100
    ok = int(stats.get("SuccessfulCall(C)", "0") or 0)
    failed = int(stats.get("FailedCall(C)", "0") or 0)
    failed += calls - ok - failed           # calls never completed count as failed
    achieved = float(stats.get("CallRate(C)", "0") or 0)
    retrans = int(stats.get("Retransmissions(C)", "0") or 0)
    return ok, failed, achieved, cpu, retrans


def passed(result: tuple[int, int, float, float, int], rate: int) -> bool:
    """Zero failed calls and the rate really sustained (SIPp slows down, rather than fail,
    when the UAS answers late: 90% of the target is required)."""
    return result[1] == 0 and result[2] >= 0.9 * rate


def concurrent_memory(pid: int, port: int, n: int) -> tuple[float, int]:
    """(KiB of RSS per established call, calls up) with ``n`` calls up at once, measured on
    a fresh UAS process so earlier load does not hide the growth."""
    idle = rss_kib(pid)
    rate = 250
    hold_ms = int(n / rate * 1000) + 6000
    p = subprocess.Popen([sys.executable, __file__, "--_uac-hold", str(port), str(n), str(rate),
                          str(hold_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(n / rate + 3.0)              # all calls set up, none hung up yet
    peak = rss_kib(pid)
    p.wait(timeout=hold_ms / 1000 + 60)
    return (peak - idle) / n, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="100,200,300,500,700,800,1000,1200,1500,2000")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of calls per rate")
    ap.add_argument("--concurrent", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=600.0, help="stop after this many seconds")
    ap.add_argument("--steady", type=int, default=None, metavar="RATE",
                    help="hold one rate for --seconds (default 120) instead of stepping")
    ap.add_argument("--_uac-hold", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._uac_hold:
        port, n, rate, hold = (int(x) for x in args._uac_hold)
        run_sipp_uac(port, n, rate, limit=n + 10, duration_ms=hold, timeout=hold / 1000 + 60)
        return 0

    t0 = time.monotonic()
    rates = [int(r) for r in args.rates.split(",")]
    if args.steady is not None:
        rates = [args.steady]
        if "--seconds" not in sys.argv:
            args.seconds = 120.0
        args.budget = max(args.budget, 3 * args.seconds + 120)
    ours_port = free_port()
    ours = start_siplink(ours_port)
    ref, ref_port = start_sipp_uas()
    rows = []
    best = {"siplink": 0, "sipp": 0}
    try:
        for rate in rates:
            if time.monotonic() - t0 > args.budget:
                print(f"(budget spent; stopping before {rate} cps)")
                break
            o = step(ours_port, rate, args.seconds, ours.pid)
            s_ = step(ref_port, rate, args.seconds, ref.proc.pid)
            if passed(o, rate) and best["siplink"] == rate_prev(rates, rate, best["siplink"]):
                best["siplink"] = rate
            if passed(s_, rate) and best["sipp"] == rate_prev(rates, rate, best["sipp"]):
                best["sipp"] = rate
            rows.append((rate, o, s_))
            print(f"  {rate:5d} cps: siplink {o[0]} ok / {o[1]} failed ({o[2]:.0f} cps, "
                  f"{o[3]:.0f}% CPU, {o[4]} retrans); sipp-uas {s_[0]} ok / {s_[1]} failed "
                  f"({s_[2]:.0f} cps, {s_[3]:.0f}% CPU, {s_[4]} retrans)", flush=True)
    finally:
        ours.stop()
        ref.stop()
    mem_ours = mem_ref = 0.0
    rss_ours = rss_ref = 0
    if args.concurrent <= 0:
        return _report(args, rows, best, mem_ours, mem_ref, rss_ours, rss_ref)
    # memory: fresh processes
    ours_port = free_port()
    ours = start_siplink(ours_port)
    ref, ref_port = start_sipp_uas()
    try:
        time.sleep(0.5)
        mem_ours, _ = concurrent_memory(ours.pid, ours_port, args.concurrent)
        mem_ref, _ = concurrent_memory(ref.proc.pid, ref_port, args.concurrent)
        rss_ours, rss_ref = rss_kib(ours.pid), rss_kib(ref.proc.pid)
    finally:
        ours.stop()
        ref.stop()
    return _report(args, rows, best, mem_ours, mem_ref, rss_ours, rss_ref)


def _report(args: argparse.Namespace, rows: list, best: dict[str, int], mem_ours: float,
            mem_ref: float, rss_ours: int, rss_ref: int) -> int:
    print()
    print(f"SIP calls, SIPp uac -> UAS on 127.0.0.1, {args.seconds:g} s per rate, UAS pinned to one core")
    print(f"{'rate cps':>9} | {'siplink ok':>10} {'failed':>6} {'got cps':>7} {'CPU%':>5}"
          f" {'retr':>5} | {'sipp-uas ok':>11} {'failed':>6} {'got cps':>7} {'CPU%':>5} {'retr':>5}")
    print("-" * 94)
    for rate, o, s_ in rows:
        print(f"{rate:>9} | {o[0]:>10} {o[1]:>6} {o[2]:>7.0f} {o[3]:>5.0f} {o[4]:>5} |"
              f" {s_[0]:>11} {s_[1]:>6} {s_[2]:>7.0f} {s_[3]:>5.0f} {s_[4]:>5}")
    print("-" * 94)
    ratio = best["siplink"] / best["sipp"] if best["sipp"] else float("nan")
    print(f"highest sustained rate (>=90% of target) with zero failed calls: siplink {best['siplink']} cps, "
          f"sipp-uas {best['sipp']} cps (ratio {ratio:.2f}); goal 500 cps")
    if args.concurrent <= 0:
        return 0
    mratio = mem_ours / mem_ref if mem_ref > 0 else float("nan")
    print(f"memory per established call at {args.concurrent} concurrent: siplink {mem_ours:.2f} KiB,"
          f" sipp-uas {mem_ref:.2f} KiB (ratio {mratio:.2f}); RSS after: siplink {rss_ours} KiB,"
          f" sipp-uas {rss_ref} KiB")
    return 0


def rate_prev(rates: list[int], rate: int, best: int) -> int:
    """The rate before ``rate`` in the list (0 for the first): a rate only counts as passed
    when every lower rate passed too."""
    i = rates.index(rate)
    return rates[i - 1] if i else 0


if __name__ == "__main__":
    raise SystemExit(main())
