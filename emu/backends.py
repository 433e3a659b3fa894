"""The backend seam: what a lab needs from whatever makes its fabric real, and where each node is.

A LabPlan says what a lab is (nodes, ports, addresses, routes, VL queues, flow control). Where
and how each node is realised (on which machine, in which network namespace, or as a VRF in a
shared one) is a Layout, which the backend computes from the plan and the Lab keeps beside it
in the state file. A backend bound to a lab's Layout has three faces:

- build and change: build the plan, destroy the lab, change a running lab (a node's routes, a
  link's state, a VL class's rate, a port's rate), and for lossless labs the VL gates the flow
  controller shuts and opens and the per-ingress arrival counters it reads (transient link state
  and instruments, not configuration: not recorded in the plan);
- observe: a reader per node (interface and per-VL queue counters: bytes, packets, drops,
  backlog; TCP retransmits), and the arrival counters above;
- run: start a program in a node, open sockets from this process as a node, list the processes
  living in the lab's nodes.

A backend may also have a control plane of its own, which the lab's daemon runs for the lab's
life (control_plane(); `controlled`: the lab forwards only once it runs).

Nothing above the seam imports a backend's modules: the Lab, controllers, metrics and launchers
reach them through this registry. Two backends: the kernel's (emu.fabric.kernel: every switch a
kernel router), and OpenFlow (emu.fabric.openflow: every switch an Open vSwitch bridge, its
tables from an os-ken controller).
"""
import importlib
import re
from dataclasses import dataclass, replace
from typing import Protocol

from emu.errors import EmuError
from emu.plan import LabPlan, NodePlan, PortPlan
from emu.topo.model import BACKEND_OPTIONS

BACKENDS = {"kernel": "emu.fabric.kernel:KernelBackend", "openflow": "emu.fabric.openflow.backend:OpenFlowBackend"}
assert set(BACKENDS) == set(BACKEND_OPTIONS), "every backend a topology may name is registered"
LOCAL = "local"          # the machine a lab runs on unless its layout says otherwise
WORKERS = ("local", "ray")      # who builds each machine's part of a lab over machines
MACHINE_NAME = re.compile(r"m(\d{1,4})")      # machine K of a lab over several is "mK"


def machine_name(index: int) -> str:
    return f"m{index}"


def machine_index(name) -> int | None:
    """K for a machine named "mK" (a small number), else None."""
    found = MACHINE_NAME.fullmatch(str(name))
    return int(found[1]) if found else None


def check_workers(kind: str) -> None:
    if kind not in WORKERS:
        raise EmuError(f"unknown workers {kind!r} (one of {', '.join(WORKERS)})")


@dataclass(frozen=True)
class Place:
    """Where one node is realised: a machine, there a network namespace (None where the backend
    needs none), and the container whose namespaces the node's are, if it runs an image."""
    machine: str = LOCAL
    netns: str | None = None
    container: str | None = None


@dataclass(frozen=True)
class Machine:
    """A machine a lab spans: its name (the nodes' Place.machine), the network namespace that stands
    for it where machines are emulated on this one (None for a real machine: its own root
    namespace), its address on the underlay that carries the tunnels between machines and the
    device that has it, and on a Ray cluster the node its worker runs on (None: this one)."""
    name: str
    netns: str | None
    underlay: str
    device: str = "ul0"
    node: str | None = None


@dataclass(frozen=True)
class Layout:
    backend: str
    lab: str
    places: dict[str, Place]           # node name -> its place
    machines: tuple[Machine, ...] = ()  # empty: the whole lab on this machine (LOCAL)
    workers: str = "local"              # over machines: who builds each machine's part (emu.fabric.workers)
    cluster: str | None = None          # the Ray cluster whose nodes are the (real) machines, by its address

    def place(self, node: str) -> Place:
        try:
            return self.places[node]
        except KeyError:
            raise EmuError(f"the layout has no node {node!r}") from None

    def by_machine(self, nodes: list[str] | None = None) -> dict[str, list[str]]:
        """machine -> its nodes (of `nodes` only, if given, in their order); every machine of the
        layout is listed, with none if it has none."""
        out: dict[str, list[str]] = {m.name: [] for m in self.machines}
        for node in self.places if nodes is None else nodes:
            out.setdefault(self.place(node).machine, []).append(node)
        return out

    def crosses(self, a: str, b: str) -> bool:
        """Whether a link between nodes a and b crosses machines (a tunnel)."""
        return self.place(a).machine != self.place(b).machine

    def netns(self, node: str) -> str | None:
        return self.place(node).netns

    def on_cluster(self, cluster: str, hosts: list[dict]) -> "Layout":
        """This layout with machine K the real machine hosts[K] ({"underlay", "device", "node"}) of
        Ray cluster `cluster`, each machine's part built by a worker there."""
        return replace(self, workers="ray", cluster=cluster, machines=tuple(
            Machine(m.name, None, h["underlay"], h["device"], h["node"]) for m, h in zip(self.machines, hosts)))

    def to_dict(self) -> dict:
        return {"backend": self.backend, "lab": self.lab,
                "places": {n: {"machine": p.machine, "netns": p.netns, **({"container": p.container} if p.container
                                                                           else {})}
                           for n, p in self.places.items()},
                **({"machines": [vars(m) for m in self.machines], "workers": self.workers} if self.machines else {}),
                **({"cluster": self.cluster} if self.cluster else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return cls(d["backend"], d["lab"], {n: Place(**p) for n, p in d["places"].items()},
                   tuple(Machine(**m) for m in d.get("machines", ())), d.get("workers", "local"), d.get("cluster"))


class Reader(Protocol):
    """One node's counters (observe face)."""

    def queues(self): ...       # (port, vl, bytes, packets, drops, backlog, overlimits) per VL FIFO

    def links(self): ...        # (ifindex, port, (rx_packets, tx_packets, rx_bytes, tx_bytes, rx_dropped, tx_dropped))

    def tcp_retransmits(self) -> int: ...

    def close(self) -> None: ...


class Watches(Protocol):
    """Many nodes' counters, each machine's read by its worker (observe face, for samplers)."""

    def read(self): ...         # (node, t, queues, links) of every node; t on this process's monotonic clock

    def sync(self) -> None: ...     # measure each machine's clock against ours again

    def clock_bound(self) -> float: ...     # seconds: every t is right within this

    def summary(self) -> dict: ...  # machine -> reads, clock offset and bound

    def close(self) -> None: ...


class VLGates(Protocol):
    def prepare(self, node: str, ifname: str) -> object: ...

    def set(self, node: str, ifname: str, vl: int, closed: bool) -> None: ...

    def flush(self) -> None: ...        # the changes set() has not made yet, made (a controller's step ends with it)

    def close(self) -> None: ...


class Arrivals(Protocol):
    def read(self, switch: str): ...     # (egress port, ingress port, SL, bytes so far)

    def detach(self) -> None: ...


class Backend(Protocol):
    name: str
    layout: Layout
    controlled: bool        # the switches forward only once control_plane() runs (Lab.up waits for the daemon)

    # -- build and change
    @classmethod
    def lay_out(cls, lab: str, nodes: list[str], containers=(), machines=None) -> Layout: ...
    # containers: nodes with an image; machines: node -> machine index, the lab over several machines

    def taken(self) -> list[str]: ...       # places of this layout something already occupies

    def describe(self, plan: LabPlan) -> str: ...   # what build() would run, for people to read

    def build(self, plan: LabPlan, progress=None) -> None: ...

    def destroy(self) -> int: ...           # the nodes and their processes (how many it ended); then forget()

    def present(self) -> int: ...           # nodes realised right now

    def replace_routes(self, node: NodePlan, old: tuple, new: tuple) -> None: ...

    def set_link(self, node: NodePlan, port: PortPlan, up: bool) -> None: ...

    def set_vl_rate(self, node: NodePlan, port: PortPlan, vl: int, rate_bps: int, ceil_bps: int) -> None: ...

    def set_port_rate(self, node: NodePlan, port: PortPlan, rate_bps: int) -> None: ...
    # changes run where the node is: on a lab over machines, by its machine's worker

    def close(self) -> None: ...            # what it keeps for the lab's life (the lab's daemon ends it)

    def control_plane(self, plan: LabPlan, sweep_delay: float, **options): ...
    # what the daemon runs for the lab's life (the topology's backend options), started and ready;
    # None, or a handle with status() -> dict and close()

    def gates(self, plan: LabPlan) -> VLGates: ...

    def arrivals(self, plan: LabPlan, switches: list[str], replace: bool = False) -> Arrivals: ...
    # replace: counters a killed controller left behind are removed first

    def run_on_machines(self, plan: LabPlan, makers: dict): ...
    # a lab over machines: machine -> make(lab), run there by its worker on the machine's view of
    # the backend (its own nodes' readers and arrivals, every node's gates); returns the parts'
    # handle here: call(method, *args), call_each(method, {machine: arg}), offset(machine), close()

    # -- observe
    def reader(self, node: str) -> Reader: ...

    def watch(self, nodes: list[str], kind: str = "local") -> Watches: ...   # by the machines' workers

    # -- run
    def popen(self, node: str, argv: list[str], tos: int | None = None, **kwargs): ...   # tos: its class, forced

    def entered(self, node: str): ...       # a context: sockets this thread opens are the node's

    def processes(self) -> dict[int, str]: ...      # PID -> node, every process in the lab's nodes (here)

    def programs(self) -> list[tuple[int, str, list[str]]]: ...    # (pid, node, argv), on every machine

    def signal(self, node: str, pid: int, sig: int) -> None: ...   # a process of programs(), where it lives

    def put(self, node: str, path: str, text: str, mode: int = 0o644) -> None: ...
    # a file on the node's machine, whole (its agents read it)

    def remove(self, node: str, path: str) -> None: ...    # a file or directory of put()'s

    def failed(self, node: str) -> str | None: ...  # why the node is down (its container ended), or None

    # -- labs found without their state (emu clean)
    @classmethod
    def owned(cls, only: str | None = None) -> dict[str, Layout]: ...

    @classmethod
    def forget(cls, only: str | None = None) -> None: ...   # what it keeps outside the nodes (of every lab gone)


def backend_type(name: str = "kernel") -> type:
    """The backend class registered as `name` (imported here only: nothing above the seam
    imports a backend's modules)."""
    if name not in BACKENDS:
        raise EmuError(f"unknown fabric backend {name!r} (one of {', '.join(BACKENDS)})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def lay_out(lab: str, nodes: list[str], name: str = "kernel", containers=(), machines=None) -> Layout:
    """The layout backend `name` gives lab `lab`'s nodes (`containers`: those that run an image;
    `machines`: node -> the index of the machine it runs on, for a lab over several)."""
    return backend_type(name).lay_out(lab, nodes, containers, machines)


def cluster_hosts(cluster: str, count: int | None, name: str = "kernel") -> list[dict]:
    """The machines (`count` of them, all if None) of the Ray cluster at `cluster` that backend
    `name` would lay a lab over: Layout.on_cluster's hosts."""
    return backend_type(name).cluster_hosts(cluster, count)


def plan_layout(plan: LabPlan, name: str = "kernel", machines=None) -> Layout:
    """The layout backend `name` gives a plan's nodes (machines: as lay_out's)."""
    return lay_out(plan.lab, [n.name for n in plan.nodes], name, [n.name for n in plan.nodes if n.container],
                   machines)


def bind(layout: Layout) -> Backend:
    """The backend of a lab laid out as `layout`, with its three faces."""
    return backend_type(layout.backend)(layout)
