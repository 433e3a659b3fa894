"""Network namespaces from this process: enter one, start a program in one, find its processes.

Python 3.11 has no os.setns, so this calls setns(2) through libc. Entering a
namespace changes only the calling thread; `inside()` always switches back.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from emu.errors import FabricError
from emu.fabric import hosts

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def inside(name: str):
    """Run the body (sockets it opens, /proc/sys it writes) in namespace `name`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns_path(name), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def write_sysctls(name: str, values: dict[str, str]) -> None:
    """Set per-namespace sysctls such as net/ipv4/ip_forward."""
    with inside(name):
        for key, value in values.items():
            Path("/proc/sys", key).write_text(value)


def popen(name: str, argv, wrap=None, **kwargs) -> subprocess.Popen:
    """Start argv inside namespace `name`: the calling thread enters it, forks (the child inherits
    the thread's namespace, so it runs there before Popen returns) and comes back. No preexec_fn,
    which Python documents as unsafe in a process with threads, as the build and experiments are.
    In a lab with a names view (emu.fabric.hosts), `ip netns exec` starts it instead. `wrap`, if
    given, makes the outermost command line (a traffic class's cgroup is joined before `ip netns
    exec` mounts a /sys of its own)."""
    if not netns_path(name).exists():
        raise FabricError(f"namespace {name} does not exist (was the lab torn down?)")
    if hosts.names_view(name):
        # the lab's names as /etc/hosts (emu.fabric.hosts): ip mounts them and execs argv; forked
        # in the namespace all the same, so the process is there before Popen returns
        if "/" not in argv[0] and shutil.which(argv[0], path=kwargs.get("env", os.environ).get("PATH")) is None:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        argv = ["ip", "netns", "exec", name, *argv]
    if wrap:
        argv = wrap(argv)
    with inside(name):
        return subprocess.Popen(argv, **kwargs)


def namespace_ids(names) -> dict[tuple[int, int], str]:
    """(st_dev, st_ino) of each named namespace, the identity /proc/PID/ns/net shares."""
    ids = {}
    for name in names:
        try:
            st = os.stat(netns_path(name))
        except FileNotFoundError:
            continue
        ids[(st.st_dev, st.st_ino)] = name
    return ids


def pids_in(names) -> dict[int, str]:
    """PID -> namespace for every process living in one of the named namespaces."""
    ids = namespace_ids(names)
    found = {}
    if not ids:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():     # never this process itself
            continue
        try:
            st = os.stat(entry / "ns" / "net")
        except OSError:
            continue
        name = ids.get((st.st_dev, st.st_ino))
        if name is not None:
            found[int(entry.name)] = name
    return found


def stop_processes(names, grace: float = 1.0) -> int:
    """End every process in the named namespaces (they are the lab's): TERM, then KILL. Returns how many."""
    pids = pids_in(names)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = {p: n for p, n in pids.items() if _alive(p)}
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    return len(pids)


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        # A zombie child of ours still answers kill(0); reap it if it is ours.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False
