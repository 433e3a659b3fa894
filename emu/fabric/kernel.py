"""The kernel backend (emu.backends.Backend): each node a network namespace on this machine.

Build and change through emu.fabric.apply (batched ip/tc), gates and arrival counters through
netlink and BPF (emu.fabric.gates, emu.fabric.bpf); observe through a netlink reader opened in a
node's namespace (emu.fabric.reader); run by forking inside the namespace (emu.fabric.netns),
through `ip netns exec` where the lab has a names view (emu.fabric.hosts), through nsenter into a
container node's container (emu.fabric.containers).
"""
import json
import os

from emu import labfiles, procs
from emu.backends import LOCAL, Layout, Place
from emu.errors import EmuError, FabricError
from emu.fabric import apply, classes, containers, hosts, netns, workers
from emu.fabric.bpf import ArrivalCounters
from emu.fabric.gates import Gates
from emu.fabric.programs import WorkerProcess
from emu.fabric.reader import NamespaceReader
from emu.fabric.render import (UNDERLAY_MTU, kernel_layout, link_change, netns_name, port_rate_change, render,
                               routes_change, underlay_netns, vl_rate_change)


class KernelBackend:
    name = "kernel"
    controlled = False      # the kernel's routes are in place once build() returns

    def __init__(self, layout: Layout):
        self.layout = layout
        self.lab = layout.lab
        self._crew = None

    @classmethod
    def lay_out(cls, lab: str, nodes: list[str], containers=(), machines=None) -> Layout:
        return kernel_layout(lab, nodes, containers, machines)

    @classmethod
    def cluster_hosts(cls, cluster: str, count: int | None) -> list[dict]:
        """The machines of Ray cluster `cluster` a lab may span (emu.fabric.workers.cluster_hosts)."""
        return workers.cluster_hosts(cluster, count, UNDERLAY_MTU)

    def namespaces(self) -> list[str]:
        """The namespaces on this machine: the nodes'; the emulated machines' and their underlay's
        where the lab spans machines (none where they are a Ray cluster's)."""
        if self.layout.cluster:
            return []
        machines = [m.netns for m in self.layout.machines if m.netns]
        return [p.netns for p in self.layout.places.values()] + machines + (
            [underlay_netns(self.lab)] if machines else [])

    # -- build and change
    def taken(self) -> list[str]:
        if self.layout.cluster:     # asked of each machine's worker
            return [ns for found in self.crew().each("taken", workers.node_namespaces(self.layout)).values()
                    for ns in found]
        return [ns for ns in self.namespaces() if netns.netns_path(ns).exists()]

    def container_nodes(self) -> list[str]:
        return [n for n, p in self.layout.places.items() if p.container]

    def build(self, plan, progress=None) -> None:
        if self.container_nodes():       # forget() removes the containers of labs that have this file
            labfiles.lab_file(self.lab, ".containers").touch()
        pids = None
        try:
            pids = self._start_containers(plan)
            apply.build(plan, self.layout, progress, pids, self.crew() if self.layout.machines else None)
            if self.layout.cluster:     # each machine's nodes get their names view there
                try:
                    self.crew().each("name_view", workers.node_namespaces(self.layout), hosts.hosts_text(plan),
                                     str(labfiles.hosts_path(self.lab)))
                except BaseException:
                    self.crew().destroy(workers.node_namespaces(self.layout), self.lab)
                    raise
        except BaseException as e:
            if not self.container_nodes():
                raise
            # a container that ended just after it started fails the build (ip cannot attach to it): say so
            ended = next(filter(None, map(self.failed, self.container_nodes())), None) if pids else None
            self._remove_containers()
            if ended and not isinstance(e, KeyboardInterrupt | SystemExit):
                raise FabricError(ended) from e
            raise
        finally:
            self.close()
        if self.layout.cluster:
            return
        # a container has the names in its own /etc/hosts; every other node a view of the lab's file
        named = [self.layout.netns(n) for n, p in self.layout.places.items() if not p.container]
        hosts.install(hosts.hosts_text(plan), named, labfiles.hosts_path(self.lab))

    def _start_containers(self, plan) -> dict[str, int]:
        """The container nodes' containers (node -> PID), each on its machine's Docker."""
        if not self.layout.cluster:
            return containers.start(containers.specs(plan, self.layout))
        wanted = {m: containers.specs(plan, self.layout, set(nodes)) for m, nodes in self.layout.by_machine().items()}
        started = self.crew().each("start_containers", {m: specs for m, specs in wanted.items() if specs})
        return {node: pid for pids in started.values() for node, pid in pids.items()}

    def _remove_containers(self) -> None:
        if not self.layout.cluster:
            containers.remove(self.lab)
            return
        with_containers = {self.layout.place(n).machine for n in self.container_nodes()}
        self.crew().each("remove_containers", dict.fromkeys(with_containers, self.lab))

    def destroy(self) -> int:
        """The containers, the namespaces and their processes; what the lab keeps outside them
        goes with forget()."""
        if self.container_nodes() and not self.layout.cluster:
            containers.remove(self.lab)
        if not self.layout.machines:
            return apply.destroy(self.namespaces())
        # each machine's nodes (and on a cluster its containers) by its worker, then the (emulated)
        # machines and their underlay
        try:
            stopped = self.crew().destroy(workers.node_namespaces(self.layout), self.lab,
                                          bool(self.layout.cluster and self.container_nodes()))
        except EmuError:
            if self.layout.cluster:     # only its workers reach a cluster's machines
                raise
            stopped = 0                 # no Ray here any more: emulated machines are this kernel's to clear
        finally:
            self.close()
        return stopped + apply.destroy(self.namespaces())      # the machines, and whatever a worker left

    def describe(self, plan) -> str:
        """What build() runs: the root ip batch, then per namespace its sysctls, ip and tc batches."""
        batch = render(plan, self.layout)
        out = ["# ip -batch (root namespace)", *batch.create_lines]
        for ns in batch.machines + batch.namespaces:
            where = ns.netns or f"machine {ns.node[1:]}"      # a real machine's own namespace
            out += [f"# {where}: sysctls", *(f"{k} = {v}" for k, v in ns.sysctls.items()),
                    f"# {where}: ip -batch", *ns.ip_lines, f"# {where}: tc -batch", *ns.tc_lines]
        return "\n".join(out)

    def present(self) -> int:
        if self.layout.cluster:
            return len(self.taken())
        return sum(netns.netns_path(p.netns).exists() for p in self.layout.places.values())

    def replace_routes(self, node, old: tuple, new: tuple) -> None:
        self._change(node.name, *routes_change(old, new))

    def set_link(self, node, port, up: bool) -> None:
        self._change(node.name, *link_change(node, port, up))

    def set_vl_rate(self, node, port, vl: int, rate_bps: int, ceil_bps: int) -> None:
        self._change(node.name, *vl_rate_change(port, vl, rate_bps, ceil_bps))

    def set_port_rate(self, node, port, rate_bps: int) -> None:
        self._change(node.name, *port_rate_change(port, rate_bps))

    def _change(self, node: str, tool: str, lines: list[str]) -> None:
        """Run a change's batch in the node's namespace: here, or on a lab over machines by the
        worker of the node's machine (the lab's daemon, which makes every change, keeps them)."""
        place = self.layout.place(node)
        if self.layout.machines:
            self.crew().change(place.machine, tool, lines, place.netns)
        else:
            apply.run_change(tool, lines, place.netns)

    def crew(self):
        """The lab's workers (Layout.workers; on its cluster's machines if it has one), kept until close()."""
        if self._crew is None:
            self._crew = workers.lab_workers(self.layout)
        return self._crew

    def _here(self, what: str) -> None:
        """Refuse what only works with every node on this machine's kernel, for a lab on a Ray cluster."""
        if self.layout.cluster:
            raise EmuError(f"lab {self.lab!r} runs on the machines of Ray cluster {self.layout.cluster}: {what} "
                           "is not built for labs on a cluster yet (docs/limitations.md)")

    def close(self) -> None:
        """End what this object keeps for the lab's life (its workers)."""
        if self._crew is not None:
            self._crew.close()
            self._crew = None

    def control_plane(self, plan, sweep_delay: float, **options) -> None:
        return None         # the kernel routes by itself; the daemon's subnet manager changes its routes

    def run_on_machines(self, plan, makers: dict) -> workers.Parts:
        """makers: machine -> make(lab), run by that machine's worker (lab: the plan and the
        machine's view of this backend: its own nodes' readers and arrival counters, every node's
        gates); the parts are called through what this returns, and end with its close()."""
        return workers.Parts(self.crew(), self.layout, plan, makers)

    def gates(self, plan) -> Gates:
        self._here("the lossless flow controller")
        return Gates(plan, self.layout)

    def arrivals(self, plan, switches: list[str], replace: bool = False) -> ArrivalCounters:
        self._here("the lossless flow controller")
        return ArrivalCounters(plan, self.layout, switches, replace)

    # -- observe
    def reader(self, node: str) -> NamespaceReader | workers.RemoteReader:
        """On a cluster, through the worker of the node's machine (a call a reading)."""
        if self.layout.cluster:
            place = self.layout.place(node)
            return workers.RemoteReader(self.crew(), place.machine, place.netns)
        return NamespaceReader(self.layout.netns(node))

    def watch(self, nodes: list[str], kind: str = "local") -> workers.Watches:
        """By the lab's own workers (the daemon's, for the lab's life) if `kind` is theirs, else
        by workers of this process's that go with the watches."""
        if self.layout.machines and (kind == self.layout.workers or self.layout.cluster):
            return workers.Watches(self.layout, nodes, self.crew(), owned=False)
        return workers.Watches(self.layout, nodes, workers.workers("local"), owned=True)

    # -- run
    def popen(self, node: str, argv: list[str], tos: int | None = None, **kwargs):
        """tos: the program's packets leave with this TOS whatever it sets (emu.fabric.classes)."""
        place = self.layout.place(node)
        if self.layout.cluster:     # by the worker of the node's machine
            return WorkerProcess(self.crew().pump(place.machine), place.netns, argv,
                                 in_class=(self.lab, node, tos) if tos is not None else None,
                                 container=(node, place.container) if place.container else None, **kwargs)
        wrap, container = None, place.container
        if container:       # as `docker exec`: in its namespaces, with its environment (and the caller's)
            pid, env = containers.running(node, container)
            argv = containers.entering(pid) + argv
            kwargs["env"] = {**env, **kwargs.get("env", {})}
        if tos is not None:
            wrap = classes.entering(self.lab, node, place.netns, tos)
        return netns.popen(place.netns, argv, wrap=wrap, **kwargs)

    def failed(self, node: str) -> str | None:
        """Why node `node` is down, if its realisation says so (a container that ended), else None."""
        place = self.layout.place(node)
        if place.container and self.layout.cluster:
            return self.crew().run(place.machine, "container_failed", node, place.container)
        if place.container:
            try:
                containers.running(node, place.container)
            except FabricError as e:
                return str(e)
        return None

    def entered(self, node: str):
        self._here("opening sockets as a node from this process")
        return netns.inside(self.layout.netns(node))

    def processes(self) -> dict[int, str]:
        """PID -> node of every process in the lab's nodes (on this machine)."""
        self._here("listing the processes in its nodes from this process")
        nodes = {p.netns: n for n, p in self.layout.places.items()}
        return {pid: nodes[ns] for pid, ns in netns.pids_in(nodes).items()}

    def programs(self) -> list[tuple[int, str, list[str]]]:
        """(pid, node, argv) of every process in the lab's nodes; a PID is its node's machine's."""
        if not self.layout.cluster:
            return [(pid, node, procs.cmdline(pid)) for pid, node in self.processes().items()]
        nodes = {p.netns: n for n, p in self.layout.places.items()}
        found = self.crew().each("programs", workers.node_namespaces(self.layout))
        return [(pid, nodes[ns], argv) for listed in found.values() for pid, ns, argv in listed]

    def put(self, node: str, path: str, text: str, mode: int = 0o644) -> None:
        """Write `path` on the node's machine, whole (by rename: readers see the old or the new)."""
        if self.layout.cluster:
            self.crew().run(self.layout.place(node).machine, "put", path, text, mode)
        else:
            workers.put(path, text, mode)

    def remove(self, node: str, path: str) -> None:
        """Remove a file or directory of put()'s from the node's machine."""
        if self.layout.cluster:
            self.crew().run(self.layout.place(node).machine, "remove", path)
        else:
            workers.remove(path)

    def remote_entry(self, node: str, nodes: dict[str, int | None], path: str) -> list[str]:
        """On a lab on a Ray cluster: argv that, run on `node`'s machine (in any of its namespaces),
        runs a program in another node as `ARGV NODE -- PROGRAM...` (emu.fabric.remote), for the
        nodes of `nodes` (node -> the TOS of the program's class, or None); `path`: where on that
        machine the map it reads is put."""
        machine = self.layout.place(node).machine
        ray_nodes = {m.name: m.node for m in self.layout.machines}
        where = {"cluster": self.layout.cluster, "nodes": {
            n: {"machine": self.layout.place(n).machine, "ray_node": ray_nodes[self.layout.place(n).machine],
                "netns": self.layout.netns(n), "in_class": [self.lab, n, tos] if tos is not None else None,
                "container": [n, self.layout.place(n).container] if self.layout.place(n).container else None}
            for n, tos in nodes.items()}}
        self.put(node, path, json.dumps(where))
        pid, python = self.crew().run(machine, "process")
        # into the worker's own namespaces: the machine's network (the program's may be a node's) reaches Ray
        return ["nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt", "--",
                python, "-m", "emu.fabric.remote", path]

    def signal(self, node: str, pid: int, sig: int) -> None:
        """Signal process `pid` of node `node` (its machine's PID), if it still lives there."""
        place = self.layout.place(node)
        if self.layout.cluster:
            self.crew().run(place.machine, "signal_in", [place.netns], pid, sig)
        elif pid in netns.pids_in([place.netns]):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # -- labs found without their state
    @classmethod
    def owned(cls, only: str | None = None) -> dict[str, Layout]:
        """lab -> the layout of the namespaces the kernel's marks say are its."""
        return {lab: Layout(cls.name, lab, {ns[len(netns_name(lab, "")):]: Place(LOCAL, ns) for ns in names})
                for lab, names in apply.owned_namespaces(only).items()}

    @classmethod
    def forget(cls, only: str | None = None) -> None:
        """Lab `only`'s containers, names view and traffic-class cgroups (every lab's if None: `emu clean`
        with no name, after every lab is gone), and names views whose lab left no state file
        (killed, or the machine rebooted: /etc outlives /run)."""
        if only is None or labfiles.lab_file(only, ".containers").exists():    # docker asked only then
            containers.remove(only)
        for lab in [only] if only is not None else classes.labs():
            labfiles.lab_file(lab, ".containers").unlink(missing_ok=True)
            hosts.remove(labfiles.hosts_path(lab), netns_name(lab, "*"))
            classes.forget(lab)
        for hosts_file in hosts.views(netns_name(only or "*", "*")):
            if hosts_file.parent == labfiles.STATE_DIR and hosts_file.suffix == ".hosts" \
                    and only in (None, hosts_file.stem):
                hosts.remove(hosts_file, netns_name(hosts_file.stem, "*"))
