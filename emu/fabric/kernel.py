"""The kernel backend (emu.backends.Backend): each node a network namespace on this machine.

Build and change through emu.fabric.apply (batched ip/tc), gates and arrival counters through
netlink and BPF (emu.fabric.gates, emu.fabric.bpf); observe through a netlink reader opened in a
node's namespace (emu.fabric.reader); run by forking inside the namespace (emu.fabric.netns),
through `ip netns exec` where the lab has a names view (emu.fabric.hosts).
"""
import functools
import shutil

from emu import labfiles
from emu.backends import LOCAL, Layout, Place
from emu.fabric import apply, classes, hosts, netns
from emu.fabric.bpf import ArrivalCounters
from emu.fabric.gates import Gates
from emu.fabric.reader import NamespaceReader
from emu.fabric.render import kernel_layout, netns_name, render


class KernelBackend:
    name = "kernel"

    def __init__(self, layout: Layout):
        self.layout = layout
        self.lab = layout.lab

    @classmethod
    def lay_out(cls, lab: str, nodes: list[str]) -> Layout:
        return kernel_layout(lab, nodes)

    def namespaces(self) -> list[str]:
        return [p.netns for p in self.layout.places.values()]

    # -- build and change
    def taken(self) -> list[str]:
        return [ns for ns in self.namespaces() if netns.netns_path(ns).exists()]

    def build(self, plan, progress=None) -> None:
        apply.build(plan, self.layout, progress)
        hosts.install(plan, self.namespaces(), labfiles.hosts_path(self.lab))

    def destroy(self) -> int:
        """The namespaces and their processes; what the lab keeps outside them goes with forget()."""
        return apply.destroy(self.namespaces())

    def describe(self, plan) -> str:
        """What build() runs: the root ip batch, then per namespace its sysctls, ip and tc batches."""
        batch = render(plan, self.layout)
        out = ["# ip -batch (root namespace)", *batch.create_lines]
        for ns in batch.namespaces:
            out += [f"# {ns.netns}: sysctls", *(f"{k} = {v}" for k, v in ns.sysctls.items()),
                    f"# {ns.netns}: ip -batch", *ns.ip_lines, f"# {ns.netns}: tc -batch", *ns.tc_lines]
        return "\n".join(out)

    def present(self) -> int:
        return len(self.taken())

    def replace_routes(self, node, old: tuple, new: tuple) -> None:
        apply.replace_routes(self.layout.netns(node.name), old, new)

    def set_link(self, node, port, up: bool) -> None:
        apply.set_link(self.layout.netns(node.name), node, port, up)

    def set_vl_rate(self, node, port, vl: int, rate_bps: int, ceil_bps: int) -> None:
        apply.set_vl_rate(self.layout.netns(node.name), port, vl, rate_bps, ceil_bps)

    def set_port_rate(self, node, port, rate_bps: int) -> None:
        apply.set_port_rate(self.layout.netns(node.name), port, rate_bps)

    def gates(self, plan) -> Gates:
        return Gates(plan, self.layout)

    def arrivals(self, plan, switches: list[str], replace: bool = False) -> ArrivalCounters:
        return ArrivalCounters(plan, self.layout, switches, replace)

    # -- observe
    def reader(self, node: str) -> NamespaceReader:
        return NamespaceReader(self.layout.netns(node))

    # -- run
    def popen(self, node: str, argv: list[str], tos: int | None = None, **kwargs):
        """tos: the program's packets leave with this TOS whatever it sets (emu.fabric.classes)."""
        wrap = None
        if tos is not None:
            group = classes.cgroup(self.lab, tos)
            self._classify(node, group, tos)
            wrap = functools.partial(classes.joined, group)
        return netns.popen(self.layout.netns(node), argv, wrap=wrap, **kwargs)

    def _classify(self, node: str, group, tos: int) -> None:
        """The node's rule for this class, once (a marker file says it is there)."""
        marker = labfiles.lab_file(self.lab, ".classes") / f"{node}.tos-{tos:#04x}"
        if not marker.exists():
            classes.install(self.layout.netns(node), group, tos)
            marker.parent.mkdir(exist_ok=True)
            marker.touch()

    def entered(self, node: str):
        return netns.inside(self.layout.netns(node))

    def processes(self) -> dict[int, str]:
        nodes = {p.netns: n for n, p in self.layout.places.items()}
        return {pid: nodes[ns] for pid, ns in netns.pids_in(nodes).items()}

    # -- labs found without their state
    @classmethod
    def owned(cls, only: str | None = None) -> dict[str, Layout]:
        """lab -> the layout of the namespaces the kernel's marks say are its."""
        return {lab: Layout(cls.name, lab, {ns[len(netns_name(lab, "")):]: Place(LOCAL, ns) for ns in names})
                for lab, names in apply.owned_namespaces(only).items()}

    @classmethod
    def forget(cls, only: str | None = None) -> None:
        """Lab `only`'s names view and traffic-class cgroups (every lab's if None: `emu clean`
        with no name, after every lab is gone), and names views whose lab left no state file
        (killed, or the machine rebooted: /etc outlives /run)."""
        for lab in [only] if only is not None else classes.labs():
            hosts.remove(labfiles.hosts_path(lab), netns_name(lab, "*"))
            classes.remove(lab)
            shutil.rmtree(labfiles.lab_file(lab, ".classes"), ignore_errors=True)
        for hosts_file in hosts.views(netns_name(only or "*", "*")):
            if hosts_file.parent == labfiles.STATE_DIR and hosts_file.suffix == ".hosts" \
                    and only in (None, hosts_file.stem):
                hosts.remove(hosts_file, netns_name(hosts_file.stem, "*"))
