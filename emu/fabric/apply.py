"""Make a rendered FabricPlan real in the kernel, and undo it.

Only this module changes kernel state. A build that fails half way destroys what it
made before the error reaches the caller. Cleanup finds a lab's namespaces by the
ownership mark on their interfaces (see render.lab_mark), never by name pattern.
"""
import os

from pyroute2 import IPRoute

from emu.errors import EmuError, FabricError
from emu.fabric import netns
from emu.fabric.batch import run_batch, run_batches
from emu.fabric.render import MARK_PREFIX, FabricPlan, netns_name


def require_root(action: str = "build labs") -> None:
    if os.geteuid() != 0:
        raise EmuError(f"root (CAP_NET_ADMIN) is needed to {action}: run as root or with sudo")


def build(plan: FabricPlan, progress=None) -> None:
    """Make the plan real. progress(done, total), if given, hears of each step (one per namespace
    for sysctls, one per batch), so a caller can show a large build advancing."""
    require_root()
    taken = [n for n in plan.netns_names() if netns.netns_path(n).exists()]
    if taken:
        raise FabricError(f"lab {plan.lab!r} cannot be built: namespace {taken[0]} already exists")
    total = 1 + 3 * len(plan.namespaces)
    done = 0

    def step():
        nonlocal done
        done += 1
        if progress:
            progress(done, total)
    try:
        run_batch("ip", plan.create_lines)
        step()
        for ns in plan.namespaces:
            netns.write_sysctls(ns.netns, ns.sysctls)
            step()
        jobs = [("ip", ns.ip_lines, ns.netns) for ns in plan.namespaces]
        jobs += [("tc", ns.tc_lines, ns.netns) for ns in plan.namespaces]
        run_batches(jobs, on_done=step)
    except BaseException:
        destroy(plan.netns_names())
        raise


def destroy(names) -> int:
    """Stop the processes in these namespaces, then delete the namespaces (their veths go with them)."""
    names = [n for n in names if netns.netns_path(n).exists()]
    stopped = netns.stop_processes(names)
    run_batch("ip", [f"netns del {n}" for n in names], force=True)
    left = [n for n in names if netns.netns_path(n).exists()]
    if left:
        raise FabricError(f"could not delete namespace {left[0]}")
    return stopped


def namespace_mark(name: str) -> str | None:
    """The lab named by the ownership mark inside namespace `name`, or None if it carries none."""
    try:
        with netns.inside(name), IPRoute() as ipr:
            aliases = [link.get_attr("IFLA_IFALIAS") for link in ipr.get_links()]
    except OSError:
        return None
    for alias in aliases:
        if alias and alias.startswith(MARK_PREFIX):
            return alias[len(MARK_PREFIX):].split(":")[0]
    return None


def owned_namespaces(only: str | None = None) -> dict[str, list[str]]:
    """lab -> its namespaces, read from the kernel (works with every state file lost). Only
    namespaces named like a lab's (emu-<lab>-...) are entered, and one counts only if the mark
    inside names the same lab as its name does."""
    if not netns.NETNS_DIR.is_dir():
        return {}
    prefix = netns_name(only, "") if only else netns_name("", "")[:-1]
    labs: dict[str, list[str]] = {}
    for entry in sorted(netns.NETNS_DIR.iterdir()):
        if not entry.name.startswith(prefix):
            continue
        lab = namespace_mark(entry.name)
        if lab is not None and entry.name.startswith(netns_name(lab, "")) and only in (None, lab):
            labs.setdefault(lab, []).append(entry.name)
    return labs
