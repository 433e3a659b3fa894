"""Traffic classes for any program, without its cooperation (the kernel backend's).

A program started in a class joins a cgroup of its lab's for that class's TOS (cgroup v2:
<cgroup2 mount>/emu/<lab>/tos-0xNN), before it execs, so everything it and its children do
is in it. Each node that runs such a program gets, once, an nftables rule per TOS in its
namespace's output hook: every packet of a socket made in that cgroup leaves with that DSCP,
whatever the program set (the kernel fixes the IP checksum). The node's own egress queues and
every switch then classify it by TOS as any of our agents' packets. TCP answers come back in the
same class: hosts reflect a SYN's TOS into the accepted socket (net/ipv4/tcp_reflect_tos).

Why nftables and cgroups: `socket cgroupv2` matches the socket's cgroup with no per-packet
lookup of ours, the DSCP rewrite is the kernel's, and the rule is text; a BPF tc program at the
host's egress could do the same from bpf_skb_cgroup_id, as bytecode we would write and keep.
"""
import functools
import shutil
import subprocess
import time
from pathlib import Path

from emu.errors import FabricError
from emu.labfiles import lab_file
from emu.fabric.netns import inside

CGROUP_BASE = Path("/sys/fs/cgroup")     # where nft looks a cgroupv2 path up
TABLE = "emu_classes"


def cgroup2_root() -> Path:
    """The cgroup v2 mount (/sys/fs/cgroup on a pure v2 machine, /sys/fs/cgroup/unified on a hybrid one)."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    raise FabricError("traffic classes need cgroup v2, and no cgroup2 file system is mounted")


def lab_cgroups(lab: str) -> Path:
    return cgroup2_root() / "emu" / lab


def cgroup(lab: str, tos: int) -> Path:
    """The class's cgroup, made if missing."""
    path = lab_cgroups(lab) / f"tos-{tos:#04x}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def rule_lines(path: Path, tos: int) -> list[str]:
    """nft lines (pure): the table and chain if missing, and the rule for one class's cgroup."""
    relative = path.relative_to(CGROUP_BASE)
    level = len(path.relative_to(cgroup2_root()).parts)
    return [f"add table ip {TABLE}",
            f"add chain ip {TABLE} out {{ type filter hook output priority mangle; policy accept; }}",
            f'add rule ip {TABLE} out socket cgroupv2 level {level} "{relative}" ip dscp set {tos >> 2}']


def install(netns: str, path: Path, tos: int) -> None:
    """The node's rule for one class (callers do this once a node and class)."""
    with inside(netns):
        done = subprocess.run(["nft", "-f", "-"], input="\n".join(rule_lines(path, tos)) + "\n",
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise FabricError(f"nft failed in {netns}: {' / '.join(done.stderr.split(chr(10))[:2])[:300]}")


def entering(lab: str, node: str, netns: str, tos: int):
    """What starts a program of `node` in class `tos`: wrap(argv) for netns.popen. The node's rule
    for the class is installed the first time (a marker file in the lab's files says it is there)."""
    group = cgroup(lab, tos)
    marker = lab_file(lab, ".classes") / f"{node}.tos-{tos:#04x}"
    if not marker.exists():
        install(netns, group, tos)
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
    return functools.partial(joined, group)


def forget(lab: str) -> None:
    """The lab's class cgroups and markers (on this machine)."""
    remove(lab)
    shutil.rmtree(lab_file(lab, ".classes"), ignore_errors=True)


def joined(path: Path, argv: list[str]) -> list[str]:
    """argv started through a shell that first moves itself into the cgroup, then execs it: the
    program is in its class from its first packet on."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(path), *argv]


def labs() -> list[str]:
    """Labs that have class cgroups."""
    try:
        base = cgroup2_root() / "emu"
    except FabricError:
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def remove(lab: str, timeout: float = 5.0) -> None:
    """The lab's class cgroups, once empty (a program killed a moment ago may still be ending)."""
    try:
        root = lab_cgroups(lab)
    except FabricError:
        return
    deadline = time.monotonic() + timeout
    for path in sorted(root.glob("tos-*")) + [root]:
        while True:
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise FabricError(f"could not remove cgroup {path}: {e.strerror}") from None
                time.sleep(0.02)
