"""Network namespaces for tests: create, wire, run inside, and always delete.

Everything a test builds lives in namespaces it creates; nothing is added to the root
namespace (veth pairs are created directly inside namespaces), there is no default route out,
and ``ip_forward`` is only ever changed inside a namespace.

API
---
``Lab()`` (context manager) owns a set of namespaces and deletes all of them on exit, also when
the body raises::

    with Lab() as lab:
        a = lab.namespace("a")                 # NetNs, named  <run prefix><n>-a, lo is up
        b = lab.namespace("b")
        lab.veth(a, "v0", b, "v1", "198.51.100.1/24", "198.51.100.2/24")
        a.run(["ping", "-c1", "198.51.100.2"])  # CompletedProcess; check=True by default
        b.route_add("default", via="198.51.100.1")
        s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a socket living in namespace a
        p = a.peer([...argv...], ready="regex")          # PeerProcess running in a (unstarted)
        p.start()                                        # stopped by PID when the Lab closes

``NetNs`` methods: ``exec_argv(argv)`` (argv prefixed with ``ip netns exec NAME``), ``run(argv)``,
``ip(*args)``, ``iptables(*args, table=...)``, ``sysctl(key, value)``, ``addr_add(dev, cidr)``,
``link_up(dev)``, ``route_add(dst, via=, dev=)``, ``bridge(name, ports, cidr)``,
``socket(family, type)``, ``entered()`` (context manager: the calling thread runs inside the
namespace for the block; sockets made there stay there, e.g. ``reactor.listenUDP`` for an
in-process siplink agent), ``peer(argv, ready=, name=)``, ``pids()``, ``exists()``,
``capture(pcap, iface="lo", bpf="udp")`` (a started tshark inside; stop it before reading).
``count_rtp(pcap)`` -> ``{("ip:port", "ip:port"): packets}`` for the RTP flows in a capture.
``lab.veth(a, a_if, b, b_if, a_cidr=None, b_cidr=None)`` creates a veth pair between two of the
lab's namespaces (or inside one namespace when ``a is b``) and brings both ends up.

``netlab()`` is a generator suitable as a pytest fixture body::

    @pytest.fixture
    def lab():
        yield from netlab()

Naming and sweeping
-------------------
Every namespace is named ``RUN_PREFIX + "<n>-<tag>"`` where ``RUN_PREFIX`` is
``slab-<pid>-`` (or ``$SIPLINK_NETNS_PREFIX``), so leftovers of this run are easy to find:
``ip netns list | grep slab-``. ``sweep(prefix)`` kills the processes inside the matching
namespaces (by PID) and deletes them; it is registered with ``atexit`` for this run's prefix.
``sweep_stale()`` removes namespaces of earlier runs whose process (the pid in the name) is
dead; ``Lab()`` calls it once per process. Deleting a namespace deletes its veths.

Pitfalls: a namespace with a live process in it survives ``ip netns del`` (only the name goes),
so ``Lab.close`` stops the peers first and then SIGKILLs whatever ``ip netns pids`` still lists.
Interface names are limited to 15 characters (they only need to be unique per namespace).
Needs root.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tests.peers.process import PeerProcess, require_binary

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
RUN_PREFIX = os.environ.get("SIPLINK_NETNS_PREFIX") or f"slab-{os.getpid()}-"
_STALE_RX = re.compile(r"^slab-(\d+)-")
_counter = itertools.count(1)
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _run(argv: Sequence[str], check: bool = True, timeout: float = 20.0,
         input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                         input=input.decode() if input is not None else None)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _ns_pids(name: str) -> list[int]:
    res = _run(["ip", "netns", "pids", name], check=False)
    return [int(x) for x in res.stdout.split() if x.isdigit()]


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it when it is our own child, zombies count as dead."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _delete_ns(name: str) -> None:
    _kill_pids(_ns_pids(name))
    _run(["ip", "netns", "del", name], check=False)


def _setns(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def sweep(prefix: str = RUN_PREFIX) -> list[str]:
    """Delete every namespace whose name starts with ``prefix`` (killing its processes)."""
    gone = [n for n in list_namespaces() if n.startswith(prefix)]
    for name in gone:
        log.warning("sweeping leftover namespace %s", name)
        _delete_ns(name)
    return gone


def sweep_stale() -> list[str]:
    """Delete namespaces left by earlier runs whose owning process no longer exists."""
    gone = []
    for name in list_namespaces():
        m = _STALE_RX.match(name)
        if m and not name.startswith(RUN_PREFIX) and not Path(f"/proc/{m.group(1)}").exists():
            _delete_ns(name)
            gone.append(name)
    return gone


atexit.register(sweep, RUN_PREFIX)
_stale_swept = False


class NetNs:
    """One named network namespace (created by :class:`Lab`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.peers: list[PeerProcess] = []
        self.cleanups: list[Callable[[], None]] = []  # run by Lab.close after the peers stop

    def __repr__(self) -> str:
        return f"NetNs({self.name!r})"

    # -- commands inside -------------------------------------------------------------------
    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 20.0,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return _run(self.exec_argv(argv), check=check, timeout=timeout, input=input)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "-n", self.name, *args], check=check)

    def iptables(self, *args: str, table: str = "filter") -> subprocess.CompletedProcess[str]:
        return self.run(["iptables", "-w", "-t", table, *args])

    def sysctl(self, key: str, value: str) -> None:
        """Set a (network) sysctl of this namespace, e.g. ``net.ipv4.ip_forward``.

        Written by ``tee`` run inside the namespace (coreutils; procps may be missing), and
        read back, so a key that is not per-namespace cannot silently change the host.
        """
        if not key.startswith("net."):
            raise ValueError(f"only per-namespace net.* sysctls: {key}")
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["tee", path], input=value.encode())
        got = self.run(["cat", path]).stdout.strip()
        if got != value:
            raise RuntimeError(f"{self.name}: {key} is {got!r}, wanted {value!r}")

    def addr_add(self, dev: str, cidr: str) -> None:
        self.ip("addr", "add", cidr, "dev", dev)

    def link_up(self, dev: str) -> None:
        self.ip("link", "set", dev, "up")

    def route_add(self, dst: str, via: str | None = None, dev: str | None = None) -> None:
        args = ["route", "add", dst]
        if via:
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        self.ip(*args)

    def bridge(self, name: str, ports: Sequence[str] = (), cidr: str | None = None) -> None:
        """A bridge inside this namespace, with ``ports`` enslaved, optionally addressed."""
        self.ip("link", "add", name, "type", "bridge")
        for port in ports:
            self.ip("link", "set", port, "master", name)
        if cidr:
            self.addr_add(name, cidr)
        self.link_up(name)

    def pids(self) -> list[int]:
        return _ns_pids(self.name)

    def exists(self) -> bool:
        return (NETNS_DIR / self.name).exists()

    # -- sockets and processes inside ------------------------------------------------------
    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket created inside this namespace (it stays there; use it from any thread).

        A helper thread joins the namespace with setns(2) (network namespaces are per thread),
        creates the socket and exits; the calling thread never changes namespace.
        """
        result: list[socket.socket | BaseException] = []

        def work() -> None:
            try:
                _setns(NETNS_DIR / self.name)
                result.append(socket.socket(family, type, proto))
            except BaseException as exc:  # handed to the caller
                result.append(exc)

        t = threading.Thread(target=work, name=f"setns-{self.name}")
        t.start()
        t.join()
        out = result[0]
        if isinstance(out, BaseException):
            raise out
        return out

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with the *calling thread* inside this namespace, then switch back.

        Sockets created in the block (e.g. by Twisted's ``reactor.listenUDP``, which binds
        synchronously) stay in this namespace afterwards, so in-process agents in different
        namespaces can share one reactor. Keep the block short and synchronous: everything the
        thread does meanwhile (subprocesses included) happens inside the namespace.
        """
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(NETNS_DIR / self.name)
            try:
                yield
            finally:
                if _libc.setns(home, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace")
        finally:
            os.close(home)

    def peer(self, argv: Sequence[str], ready: str | None = None, *, name: str | None = None,
             cwd: str | Path | None = None, env: dict[str, str] | None = None,
             stdin: int | None = subprocess.DEVNULL) -> PeerProcess:
        """A :class:`PeerProcess` that runs ``argv`` inside this namespace (call ``start()``).

        ``ip netns exec`` execs the program, so the PID is the program's own. The peer is
        stopped when the lab closes (if the test has not stopped it already).
        """
        p = PeerProcess(self.exec_argv(argv), ready, cwd=cwd, env=env,
                        name=name or Path(argv[0]).name, stdin=stdin)
        self.peers.append(p)
        return p


    def capture(self, pcap: str | Path, iface: str = "lo", bpf: str = "udp") -> PeerProcess:
        """A started tshark capture of ``iface`` inside this namespace to ``pcap``.

        Stop it (``.stop()``) before reading the file; ``count_rtp(pcap)`` counts RTP flows.
        """
        tshark = require_binary("tshark")
        p = self.peer([tshark, "-n", "-i", iface, "-f", bpf, "-w", str(pcap)],
                      ready=r"Capturing on", name="tshark")
        return p.start(timeout=20)


def count_rtp(pcap: str | Path) -> dict[tuple[str, str], int]:
    """RTP packets per flow ``("ip:port", "ip:port")`` in ``pcap`` (tshark, heuristic RTP)."""
    from tests.peers.process import require_binary

    res = _run([require_binary("tshark"), "-n", "-r", str(pcap), "-o", "rtp.heuristic_rtp:TRUE",
                "-Y", "rtp && !rtcp", "-T", "fields", "-e", "ip.src", "-e", "udp.srcport",
                "-e", "ip.dst", "-e", "udp.dstport"], timeout=60)
    flows: dict[tuple[str, str], int] = {}
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            key = (f"{parts[0]}:{parts[1]}", f"{parts[2]}:{parts[3]}")
            flows[key] = flows.get(key, 0) + 1
    return flows


class Lab:
    """A set of namespaces, deleted together (with their veths and processes) on close."""

    def __init__(self, prefix: str = RUN_PREFIX) -> None:
        global _stale_swept
        self.prefix = prefix
        self.namespaces: list[NetNs] = []
        if not _stale_swept:
            _stale_swept = True
            sweep_stale()

    def namespace(self, tag: str) -> NetNs:
        name = f"{self.prefix}{next(_counter)}-{tag}"
        _run(["ip", "netns", "add", name])
        ns = NetNs(name)
        self.namespaces.append(ns)
        ns.link_up("lo")
        return ns

    def veth(self, a: NetNs, a_if: str, b: NetNs, b_if: str,
             a_cidr: str | None = None, b_cidr: str | None = None) -> None:
        """A veth pair ``a_if`` (in ``a``) <-> ``b_if`` (in ``b``), both up, optionally addressed."""
        if a is b:
            a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if)
        else:
            a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
        for ns, dev, cidr in ((a, a_if, a_cidr), (b, b_if, b_cidr)):
            if cidr:
                ns.addr_add(dev, cidr)
            ns.link_up(dev)

    def close(self) -> None:
        """Stop every peer, kill what is left inside, delete every namespace. Idempotent."""
        errors: list[str] = []
        for ns in reversed(self.namespaces):
            for p in reversed(ns.peers):
                try:
                    p.stop()
                except Exception as exc:  # keep cleaning up
                    errors.append(f"{p.name}: {exc}")
        for ns in reversed(self.namespaces):
            for fn in reversed(ns.cleanups):
                try:
                    fn()
                except Exception as exc:
                    errors.append(f"cleanup {fn!r}: {exc}")
            ns.cleanups.clear()
        for ns in reversed(self.namespaces):
            _delete_ns(ns.name)
            if ns.exists():
                errors.append(f"namespace {ns.name} still exists")
        self.namespaces.clear()
        if errors:
            raise RuntimeError("lab cleanup: " + "; ".join(errors))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def netlab() -> Iterator[Lab]:
    """Fixture body: ``yield from netlab()`` gives a Lab that is closed after the test."""
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()
