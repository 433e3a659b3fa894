"""Kernel changes for the kernel backend (emu.fabric.kernel): make a laid-out LabPlan real
with namespaces, veths (VXLAN tunnels between machines), ip routes and tc queues, change it at
run time, and undo it.

Only this module changes kernel state. Every change is one batched `ip`/`tc` call per
namespace. A build that fails half way destroys what it made before the error reaches
the caller. Cleanup finds a lab's namespaces by their names and the ownership mark on
their interfaces together (see render.lab_mark).
"""
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from pyroute2 import IPRoute

from emu.backends import Layout
from emu.errors import FabricError
from emu.fabric import netns
from emu.fabric.batch import run_batch, run_batches
from emu.fabric.render import (MARK_PREFIX, UNDERLAY_PORT, FabricLines, emulated_machines, netns_name, part,
                               render, underlay_netns)
from emu.plan import LabPlan
from emu.root import require_root


def build(lab_plan: LabPlan, layout: Layout, progress=None, pids: dict[str, int] | None = None,
          workers=None) -> None:
    """Make the plan real. progress(done, total), if given, hears of each step (one per namespace
    for sysctls, one per batch), so a caller can show a large build advancing. pids: the running
    containers of container nodes (emu.fabric.containers), whose namespaces theirs become.
    workers (emu.fabric.workers), for a lab over machines: each machine's part is built by its
    machine's worker, after the emulated machines are made here (a Ray cluster's machines are
    there already: then nothing is made here, and a failed build is undone by the workers)."""
    require_root()
    whole = render(lab_plan, layout, pids)
    taken = [n for n in whole.netns_names() if netns.netns_path(n).exists()] if layout.cluster is None else []
    if taken:
        raise FabricError(f"lab {whole.lab!r} cannot be built: namespace {taken[0]} already exists")
    by_workers = workers is not None and bool(layout.machines)
    machines = emulated_machines(whole.lab, layout) if by_workers and layout.cluster is None else FabricLines(
        whole.lab, [], [])
    parts = {m.name: part(lab_plan, layout, m.name, pids) for m in layout.machines} if by_workers else {}
    total = steps(machines) + sum(map(steps, parts.values())) if by_workers else steps(whole)
    done = 0

    def step(count: int = 1):
        nonlocal done
        done += count
        if progress:
            progress(done, total)
    try:
        if by_workers:
            build_lines(machines, step)
            if layout.cluster is None:
                wait_for_underlay(whole.lab, layout)
            workers.build(parts, on_done=lambda machine: step(steps(parts[machine])))
        else:
            build_lines(whole, step)
    except BaseException:
        if layout.cluster is None:
            destroy(whole.netns_names())
        else:
            workers.destroy({m: [ns.netns for ns in p.namespaces] for m, p in parts.items()})
        raise


UNDERLAY_WAIT = 5.0     # seconds; the kernel's link watcher takes up to ~1 s
BR_STATE_FORWARDING = 3     # a bridge port's state (linux/if_bridge.h)


def wait_for_underlay(lab: str, layout: Layout, bound: float = UNDERLAY_WAIT) -> None:
    """Until the kernel's link watcher has seen a new link's carrier (up to a second after the
    link comes up, later than a port with a qdisc of its own), a bridge port drops what it is
    given: a first burst over fresh tunnels lost its SYNs for ~1 s. Wait until every machine's
    underlay port is up and the bridge forwards on each."""
    bridge, deadline = underlay_netns(lab), time.monotonic() + bound
    waiting = {(m.netns, UNDERLAY_PORT) for m in layout.machines} | {(bridge, m.name) for m in layout.machines}
    while waiting := {(ns, port) for ns, port in waiting if not _forwards(ns, port, bridged=ns == bridge)}:
        if time.monotonic() > deadline:
            ns, port = min(waiting)
            raise FabricError(f"lab {lab!r}: the underlay's port {port} in {ns} is not up {bound:g} s "
                              "after it was made")
        time.sleep(0.01)


def _forwards(ns: str, ifname: str, bridged: bool) -> bool:
    """The kernel's word: the port is up, and (a bridge's port) forwarding."""
    with netns.inside(ns), IPRoute() as ipr:
        if not bridged:
            return ipr.get_links(ifname=ifname)[0].get_attr("IFLA_OPERSTATE") == "UP"
        return any(link.get_attr("IFLA_IFNAME") == ifname
                   and link.get_nested("IFLA_PROTINFO", "IFLA_BRPORT_STATE") == BR_STATE_FORWARDING
                   for link in ipr.get_links(family=socket.AF_BRIDGE))


def steps(lines: FabricLines) -> int:
    """The progress steps building `lines` takes (build_lines)."""
    return 1 + 3 * len(lines.namespaces) + 2 * len(lines.machines)


def build_lines(lines: FabricLines, step=lambda count=1: None) -> None:
    """Run a lab's (or one machine's part's) lines: the root batch, the sysctls, the machines'
    batches (tunnel ends), then each node's ip and tc batches; step() after each."""
    run_batch("ip", lines.create_lines)
    step()
    for ns in lines.machines + lines.namespaces:
        if ns.sysctls:      # a real machine's tunnel ends have none (its own settings are not ours)
            netns.write_sysctls(ns.netns, ns.sysctls)
        step()
    run_batches([("ip", m.ip_lines, m.netns) for m in lines.machines], on_done=step)
    jobs = [("ip", ns.ip_lines, ns.netns) for ns in lines.namespaces]
    jobs += [("tc", ns.tc_lines, ns.netns) for ns in lines.namespaces]
    run_batches(jobs, on_done=step)


def run_change(tool: str, lines: list[str], ns: str) -> None:
    """A runtime change (emu.fabric.render's routes_change, link_change, ...) in namespace `ns`."""
    run_batch(tool, lines, ns)


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
    names = [e.name for e in sorted(netns.NETNS_DIR.iterdir()) if e.name.startswith(prefix)]
    # Read from threads of their own: while a thread is inside another lab's namespace, a
    # teardown of that lab must not find this process there (it looks at main threads) and end it.
    with ThreadPoolExecutor(4) as pool:
        marks = list(pool.map(namespace_mark, names))
    labs: dict[str, list[str]] = {}
    for name, lab in zip(names, marks):
        if lab is not None and name.startswith(netns_name(lab, "")) and only in (None, lab):
            labs.setdefault(lab, []).append(name)
    return labs



