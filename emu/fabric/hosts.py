"""Node names inside a lab: `getent hosts c4` in any node answers with c4's address.

One hosts file per lab (beside its state file) lists every node's addresses: its name on its first
port's address, NAME-IFNAME on each port's. Each node's /etc/netns/NETNS/hosts links to it, and
programs start through `ip netns exec`, which gives each program a mount namespace of its own
with that file over /etc/hosts (the convention iproute2 set; users' own `ip netns exec` gets it too).
Only links that point at this lab's file are ever removed.
"""
import os
from pathlib import Path

ETC_NETNS = Path("/etc/netns")


def entries(plan) -> list[tuple[str, list[str]]]:
    """(address, its names) for every port of the lab (a container node's /etc/hosts has them too)."""
    return [(port.addr, ([node.name] if i == 0 else []) + [f"{node.name}-{port.ifname}"])
            for node in plan.nodes for i, port in enumerate(node.ports)]


def hosts_text(plan) -> str:
    lines = ["127.0.0.1\tlocalhost"] + [f"{addr}\t{' '.join(names)}" for addr, names in entries(plan)]
    return "\n".join(lines) + "\n"


def install(text: str, namespaces: list[str], hosts_file: Path) -> None:
    """Write the lab's hosts file (hosts_text) and link the /etc/netns entry of each of its
    namespaces (on this machine) to it."""
    tmp = hosts_file.with_suffix(f".{os.getpid()}.tmp")     # machines may share a filesystem
    tmp.write_text(text)
    tmp.replace(hosts_file)
    for name in namespaces:
        link = ETC_NETNS / name / "hosts"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(hosts_file)


def names_view(netns: str) -> bool:
    """Whether namespace `netns` has a hosts view of its lab's (then programs start through ip netns exec)."""
    return (ETC_NETNS / netns / "hosts").is_symlink()


def views(pattern: str) -> dict[Path, list[Path]]:
    """Hosts files -> the /etc/netns links to them, among namespaces named like `pattern` (a glob)."""
    found: dict[Path, list[Path]] = {}
    for link in ETC_NETNS.glob(f"{pattern}/hosts") if ETC_NETNS.is_dir() else []:
        if link.is_symlink():
            found.setdefault(Path(link.readlink()), []).append(link)
    return found


def remove(hosts_file: Path, pattern: str) -> None:
    """Remove the links to `hosts_file` among namespaces named like `pattern` (and their
    directories when left empty), then the file."""
    for link in views(pattern).get(hosts_file, []):
        link.unlink(missing_ok=True)
        try:
            link.parent.rmdir()
        except OSError:             # someone else's file beside ours keeps the directory
            pass
    hosts_file.unlink(missing_ok=True)
