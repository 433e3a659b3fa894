"""The Lab: a Topology made real. up(), down(), node(name).run(...), and a state file.

    lab = Lab.up(topology)            # or: with Lab.up(topology) as lab: ...
    lab.node("c0").run(["ping", "-c1", lab.node("c1").addr])
    lab.down()

The state file (/run/emu/<lab>.json, on tmpfs like the namespaces themselves) holds the
Topology and the LabPlan as installed (runtime changes included, each also logged in the lab's
event log). It is claimed before anything is created, so `emu clean` finds a lab even if the
process that built it was killed; the kernel's ownership marks find it even if the state
file is lost. Where each node is realised is the backend's Layout, kept beside the plan; every
change, reading and program start goes through the lab's backend (emu.backends), and this
module imports none of a backend's modules.

Once built, a lab has a daemon (emu.daemon) for its whole life: the single writer of its state
and its event log, and the runner of its controllers. A Lab object anywhere else is the lab's
client: it reads the state file, and asks the daemon for every change (`@change` methods).
"""
import dataclasses
import functools
import json
import os
import subprocess
import threading
import time
from contextlib import contextmanager, nullcontext
from functools import cached_property
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from emu import backends, labfiles
from emu.backends import Backend, Layout
from emu.daemon import client as daemon
from emu.errors import EmuError, FabricError
from emu.eventlog import EventLog
from emu.labfiles import check_lab_name, events_path, state_path
from emu.plan import LabPlan, make_plan
from emu.plan.queues import at_rate
from emu.plan.routing import Route
from emu.root import require_root
from emu.topo.loader import topology_from_dict
from emu.topo.model import MAX_LAB_NAME, MAX_NODE_NAME, NAME_RE, Topology
from emu.topo.placement import place
from emu.units import format_rate

GPU_FAULTS = ("corrupt", "lost")
CHANGES: set[str] = set()        # the Lab's methods a client asks the daemon to carry out


def change(method):
    """A runtime change: carried out by the lab's writer (its daemon), asked of it by anyone else,
    whose copy of the state is then read again."""
    CHANGES.add(method.__name__)

    @functools.wraps(method)
    def carried_out(self, *args, **kwargs):
        if self.writer:
            return method(self, *args, **kwargs)
        result = daemon.request(self.name, "change", method=method.__name__,
                                args=json.loads(json.dumps(args, default=_plain)),
                                kwargs=json.loads(json.dumps(kwargs, default=_plain)))
        self.reload()
        return result
    return carried_out


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} cannot be sent to a lab's daemon")


def _write_state(lab: str, state: dict, exclusive: bool = False) -> None:
    """Exclusive: claim the name (fails if the file exists). Otherwise replace it atomically."""
    labfiles.STATE_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(state, separators=(",", ":"))     # compact: a large lab's plan is megabytes
    if exclusive:
        try:
            with open(state_path(lab), "x") as f:
                f.write(text)
        except FileExistsError:
            raise EmuError(f"lab {lab!r} is already up or being built (emu down {lab})") from None
        return
    tmp = state_path(lab).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(state_path(lab))


def layout_of(lab: str, state: dict) -> Layout:
    """The layout a state file speaks for, laid out again from its (checked) node names, never
    read from it: a tampered or stale file cannot point emu at a place outside the lab's names.
    Empty for a lab killed before its build began (nothing of it was created)."""
    nodes = [n for n in state.get("plan", {}).get("nodes", []) if isinstance(n, dict)]
    names = [n.get("name") for n in nodes]
    names = [n for n in names if isinstance(n, str) and len(n) <= MAX_NODE_NAME and NAME_RE.fullmatch(n)]
    containers = [n.get("name") for n in nodes if n.get("container")]
    layout = backends.lay_out(lab, names if state.get("claimed") else [], state.get("backend", "kernel"),
                              [n for n in containers if n in names], machines_of(state, names))
    cluster = state.get("layout", {}).get("cluster")
    if isinstance(cluster, str) and layout.machines:    # the machines are facts about other machines: as kept
        hosts = [{k: str(m.get(k)) for k in ("underlay", "device", "node")}
                 for m in state["layout"].get("machines", []) if isinstance(m, dict)]
        if len(hosts) == len(layout.machines):
            layout = layout.on_cluster(cluster, hosts)
    return layout


UNDERLAY_SHARE = 0.5    # of a machine's underlay device's speed that its crossing links may ask for, each way


def crossing_load(plan: LabPlan, layout: Layout) -> dict[str, float]:
    """machine -> the emulated rate (bit/s) of the links that cross to other machines from it:
    what its underlay carries each way when they are all busy."""
    load = dict.fromkeys((m.name for m in layout.machines), 0.0)
    for a, a_if, b, _ in plan.links:
        if layout.crosses(a, b):
            for machine in (layout.place(a).machine, layout.place(b).machine):
                load[machine] += plan.node(a).port(a_if).rate_bps
    return load


def refuse_underlay_bottleneck(plan: LabPlan, layout: Layout, hosts: list[dict]) -> None:
    """A real underlay is not free: the links that cross from a machine must fit in a share of
    its device's speed, or the underlay, not the lab, would set what crosses."""
    load = crossing_load(plan, layout)
    for machine, host in zip(layout.machines, hosts):
        speed = host.get("speed_bps")
        if speed and load[machine.name] > UNDERLAY_SHARE * speed:
            raise EmuError(f"lab {plan.lab!r}: the links that cross from machine {host['underlay']} ask for "
                           f"{format_rate(load[machine.name])} each way, over {UNDERLAY_SHARE:.0%} of its underlay "
                           f"device {host['device']}'s {format_rate(speed)}: the underlay would be the bottleneck "
                           "(fewer machines, pinned nodes or a smaller scale)")


def machines_of(state: dict, names: list[str]) -> dict[str, int] | None:
    """node -> machine index, for a lab over several machines, from a state file's layout (each
    a small number, or none is taken: the places are laid out again from them, never read)."""
    places = state.get("layout", {}).get("places", {})
    found = {n: backends.machine_index(places.get(n, {}).get("machine")) for n in names}
    return found if names and None not in found.values() else None


@dataclass(frozen=True)
class NodeHandle:
    """A node of a running lab: where it lives (its namespace, if its backend gives it one) and
    how to run programs in it."""
    name: str
    kind: str
    netns: str | None
    addrs: tuple[str, ...]
    forwards: bool = False
    backend: Backend | None = field(default=None, repr=False, compare=False)
    # called before a program starts here: the lab's control plane must run before its traffic does
    before_run: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    classes: dict[str, int] = field(default_factory=dict, repr=False, compare=False)   # traffic class -> TOS

    @property
    def addr(self) -> str:
        """The node's first address (its only one unless it is multi-homed)."""
        return self.addrs[0]

    def popen(self, argv, traffic_class: str | None = None, **kwargs) -> subprocess.Popen:
        """Start argv in the node; keyword arguments go to subprocess.Popen. With `traffic_class`,
        every packet of the program (and its children) leaves in that class, whatever it sets."""
        require_root("run programs in lab nodes")
        if traffic_class is not None and traffic_class not in self.classes:
            raise EmuError(f"the lab has no traffic class {traffic_class!r} (one of {', '.join(self.classes)})")
        if self.before_run:
            self.before_run()
        tos = {"tos": self.classes[traffic_class]} if traffic_class is not None else {}
        return self.backend.popen(self.name, list(argv), **tos, **kwargs)

    def entered(self):
        """A context in which the sockets this thread opens are the node's."""
        return self.backend.entered(self.name)

    def tcp_retransmits(self) -> int:
        """TCP segments the node has retransmitted so far."""
        reader = self.backend.reader(self.name)
        try:
            return reader.tcp_retransmits()
        finally:
            reader.close()

    def run(self, argv, timeout: float | None = None, check: bool = False,
            **kwargs) -> subprocess.CompletedProcess:
        """Run argv in the node to completion with its output captured (text)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc = self.popen(argv, **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            done.check_returncode()
        return done


class Lab:
    def __init__(self, state: dict, writer: bool = False):
        """writer: this object keeps the state file and the event log (the lab's daemon does)."""
        self.state = state
        self.name: str = state["name"]
        self.writer = writer
        self.log = EventLog(self.name, state.get("created", time.time())) if writer else None
        self._topology: Topology | None = None
        self._plan: LabPlan | None = None
        self._ready = writer             # the daemon is known to run (in the daemon: itself)
        self.layout = Layout.from_dict(state["layout"])
        self.backend: Backend = backends.bind(self.layout)
        # Set by a scenario run, which checked for stale agents once and then starts several
        # launchers at once (each would take the others' agents for stale ones).
        self.concurrent_runs = False
        self._batched = 0          # > 0 inside batch(): changes are written to the state file once, at its end
        self._dirty = False
        # Runtime changes come from several threads in a run (faults, the subnet manager, adaptive
        # routing): one at a time, each change and each batch whole.
        self._changing = threading.RLock()

    # -- lifecycle ------------------------------------------------------------------

    @classmethod
    def up(cls, topology: Topology, name: str | None = None, progress=None, machines: int | None = None,
           workers: str = "local", cluster: str | None = None, backend: str | None = None) -> "Lab":
        """Build the lab in the kernel. Raises (having undone everything) on failure.
        progress(done, total) hears of each build step (the kernel backend's: fabric.apply.build).
        machines: over this many machines (emu.topo.placement), emulated on this one, each machine's
        part built by its worker (workers: "local" or "ray", emu.fabric.workers). cluster: over the
        machines of the Ray cluster at this address instead (`machines` of them; all if None), a
        Ray worker on each. backend: the topology's `backend` if None (emu.backends)."""
        require_root()
        name = name or topology.name
        if name != topology.name or backend not in (None, topology.backend):
            doc = topology.to_dict()
            if backend not in (None, topology.backend):
                doc["backend"] = backend
            topology = topology_from_dict(doc, topology.source, name)
        plan = make_plan(topology, name)
        backends.check_workers(workers)
        if cluster:
            hosts = backends.cluster_hosts(cluster, machines, topology.backend)
            machines = len(hosts)
        machines = machines or 1
        layout = backends.plan_layout(plan, topology.backend,
                                      machines=place(topology, machines).of if machines != 1 else None)
        if cluster:
            layout = layout.on_cluster(cluster, hosts)
            refuse_underlay_bottleneck(plan, layout, hosts)
        elif layout.machines:
            layout = replace(layout, workers=workers)
        state = {
            "name": name, "pid": os.getpid(), "created": time.time(), "source": topology.source,
            "claimed": False, "backend": layout.backend, "topology": topology.to_dict(), "plan": plan.to_dict(),
            "layout": layout.to_dict(),
        }
        # Claim the name first (two `up` of one name: one wins, the other touches nothing), then make
        # sure no place of ours-to-be is taken, and only then mark the state as the places' owner:
        # `emu clean` never deletes a namespace that someone else made under our names.
        _write_state(name, {k: state[k] for k in ("name", "pid", "created", "claimed")}, exclusive=True)
        fabric = backends.bind(layout)
        try:
            taken = fabric.taken()
            if taken:
                raise FabricError(f"lab {name!r} cannot be built: namespace {taken[0]} already exists and is "
                                  f"not this lab's")
            state["claimed"] = True
            _write_state(name, state)
            lab = cls(state)
            fabric.build(plan, progress)
            try:
                daemon.start(name)          # from here on the daemon writes the state; we ask it
                if fabric.controlled:       # its control plane gives the switches their tables
                    try:
                        lab.ready()
                    except EmuError:
                        said = daemon.last_said(name) or "no word"
                        daemon.log_path(name).unlink(missing_ok=True)     # (its last line is the error)
                        raise EmuError(said.removeprefix(f"emu daemon {name}: ")) from None
            except BaseException:
                daemon.stop(name)
                fabric.destroy()
                raise
        except BaseException:
            daemon.stop(name)
            fabric.forget(name)
            state_path(name).unlink(missing_ok=True)
            raise
        lab._topology, lab._plan = topology, plan
        return lab

    @classmethod
    def get(cls, name: str | None = None) -> "Lab":
        """Attach to a running lab; with one lab up, the name may be left out."""
        if name is None:
            names = cls.names()
            if len(names) != 1:
                raise EmuError("no lab is up" if not names else
                               f"{len(names)} labs are up ({', '.join(names)}): name one")
            name = names[0]
        try:
            state = json.loads(state_path(name).read_text())
        except FileNotFoundError:
            raise EmuError(f"no lab named {name!r} is up (see 'emu ls')") from None
        except ValueError:
            state = None
        if not isinstance(state, dict) or not {"name", "topology", "plan", "layout"} <= state.keys():
            raise EmuError(f"the state file of lab {name!r} is damaged or from an older emu ({state_path(name)}): "
                           f"emu clean {name}")
        return cls(state)

    def reload(self) -> None:
        """Read the state again (the daemon has changed it)."""
        self.state = json.loads(state_path(self.name).read_text())
        self._plan = None

    @staticmethod
    def names() -> list[str]:
        if not labfiles.STATE_DIR.is_dir():
            return []
        return sorted(p.stem for p in labfiles.STATE_DIR.glob("*.json") if len(p.stem) <= MAX_LAB_NAME
                      and NAME_RE.fullmatch(p.stem))

    def down(self) -> None:
        require_root("tear labs down")
        daemon.stop(self.name)      # its jobs' agents and its controllers first, then the nodes
        backends.bind(layout_of(self.name, self.state)).destroy()
        _remove_files(self.name)

    def launch(self):
        """A Launcher for agent processes in this lab's nodes (`with lab.launch() as agents:`)."""
        from emu.launch import Launcher
        return Launcher(self, check_stale=not self.concurrent_runs)

    def flow_control(self):
        """A window on a lossless lab's flow controller, which its daemon runs for the lab's whole
        life: its pauses and figures while the window is open (emu.daemon.client.FlowWindow);
        nothing on a lossy lab."""
        if not self.plan.flow_control.lossless:
            return nullcontext()
        return daemon.FlowWindow(self.name)

    def sampling(self, period: float):
        """A window on the lab's always-on sampler: every port and VL read at least every `period`
        while open, its rows whole once closed (emu.daemon.client.SampleWindow)."""
        return daemon.SampleWindow(self.name, period)

    # -- changes to the running lab (through the backend, recorded in the kept plan) ---------

    @change
    def replace_routes(self, node: str, routes: list[Route]) -> None:
        """Make `routes` the node's whole routing table (rules unchanged)."""
        routes = [r if isinstance(r, Route) else Route.from_dict(r)
                  for r in routes]         # as a client sends them
        with self.batch():
            n = self.plan.node(node)
            self.backend.replace_routes(n, n.routes, tuple(routes))
            self._record(replace(n, routes=tuple(routes)), "routes", node=node, routes=len(routes))

    @change
    def set_link(self, a: str, b: str, up: bool) -> None:
        """Take the link a <-> b down (both ends; the kernel drops the routes over it) or up again
        (the planned routes over it come back)."""
        with self.batch():
            for end, peer in ((a, b), (b, a)):
                self._set_link_end(end, peer, up)

    def _set_link_end(self, end: str, peer: str, up: bool) -> None:
        n = self.plan.node(end)
        port = n.port_to(peer)
        self.backend.set_link(n, port, up)
        self._record(replace(n, ports=tuple(replace(p, up=up) if p is port else p for p in n.ports)),
                     "link", node=end, ifname=port.ifname, up=up)

    @change
    def set_vl_rate(self, node: str, ifname: str, vl: int, rate_bps: int, ceil_bps: int | None = None) -> None:
        """Change a VL's guaranteed rate (and ceiling, default: the port rate) on one egress port."""
        n = self.plan.node(node)
        port = n.port(ifname)
        ceil = port.rate_bps if ceil_bps is None else ceil_bps
        if not any(q.vl == vl for q in port.queues):
            raise EmuError(f"{node}:{ifname} has no queue for VL {vl}")
        with self.batch():
            self.backend.set_vl_rate(n, port, vl, rate_bps, ceil)
            queues = tuple(replace(q, rate_bps=rate_bps, ceil_bps=ceil) if q.vl == vl else q for q in port.queues)
            self._record(replace(n, ports=tuple(replace(p, queues=queues) if p is port else p for p in n.ports)),
                         "vl_rate", node=node, ifname=ifname, vl=vl, rate_bps=rate_bps, ceil_bps=ceil)

    @change
    def set_link_rate(self, a: str, b: str, rate_bps: int) -> None:
        """Run the link a <-> b at `rate_bps`, both directions (`emu fault link`: a degraded link)."""
        planned = self.planned
        with self.batch():
            for end, peer in ((a, b), (b, a)):
                n = self.plan.node(end)
                port = n.port_to(peer)
                as_planned = replace(port, queues=planned.node(end).port_to(peer).queues)     # guarantees as planned
                self.backend.set_port_rate(n, as_planned, rate_bps)
                changed = replace(port, rate_bps=rate_bps, queues=at_rate(as_planned.queues, rate_bps))
                self._record(replace(n, ports=tuple(changed if p is port else p for p in n.ports)),
                             "link_rate", node=end, ifname=port.ifname, rate_bps=rate_bps)

    @change
    def set_gpu_fault(self, node: str, gpu: int, kind: str | None = "corrupt") -> None:
        """Inject a fault into GPU `gpu` of `node`: `corrupt` (a region of its memory reads back
        other bytes than written, an Xid memory error), `lost` (it stops answering, Xid 79), None
        (healthy again)."""
        if self.node(node).kind != "compute":
            raise EmuError(f"{node} is a {self.node(node).kind} node; GPU faults are on compute nodes")
        gpus = self.topology.node(node).attrs["gpus"]
        if not 0 <= gpu < gpus:
            raise EmuError(f"{node} has GPUs 0..{gpus - 1}, not {gpu}")
        if kind not in GPU_FAULTS + (None,):
            raise EmuError(f"unknown GPU fault {kind!r} (one of {', '.join(GPU_FAULTS)})")
        self._set_fault(node, "gpu", gpu, kind)

    @change
    def set_ssd_fault(self, node: str, ssd: int, factor: float | None) -> None:
        """Slow SSD `ssd` of storage node `node` to `factor` of its rate (None: healthy again)."""
        if self.node(node).kind != "storage":
            raise EmuError(f"{node} is a {self.node(node).kind} node; SSD faults are on storage nodes")
        ssds = self.topology.node(node).attrs["ssds"]
        if not 0 <= ssd < ssds:
            raise EmuError(f"{node} has SSDs 0..{ssds - 1}, not {ssd}")
        if factor is not None and not 0 < factor <= 1:
            raise EmuError(f"an SSD keeps a share of its rate in (0, 1], not {factor:g}")
        self._set_fault(node, "ssd", ssd, factor)

    @change
    def set_mem_fault(self, node: str, factor: float | None) -> None:
        """Compute node `node`'s host memory keeps `factor` of its modelled rate (None: healthy)."""
        if self.node(node).kind != "compute":
            raise EmuError(f"{node} is a {self.node(node).kind} node; host memory is modelled on compute nodes")
        if factor is not None and not 0 < factor <= 1:
            raise EmuError(f"host memory keeps a share of its rate in (0, 1], not {factor:g}")
        self._set_fault(node, "mem", None, factor)

    def _set_fault(self, node: str, part: str, index: int | None, fault) -> None:
        """Record a node's fault (`part`, and `index` for parts with several: GPUs, SSDs) and rewrite
        its fault file: its agents (running ones too) see it within agents.faults.RECHECK."""
        with self._changing:
            faults = self.faults(node)
            if index is None:
                faults.pop(part, None) if fault is None else faults.update({part: fault})
            elif fault is None:
                faults.get(part, {}).pop(str(index), None)
            else:
                faults.setdefault(part, {})[str(index)] = fault
            self.state.setdefault("faults", {})[node] = faults
            self._save()
            self.log.append("fault", part=part, node=node, **({"index": index} if index is not None else {}),
                            fault=fault)
            self._write_faults(node, faults)

    def faults(self, node: str) -> dict:
        """`node`'s injected faults: {"gpu": {index: kind}, "ssd": {index: rate factor}, "mem": rate factor}."""
        return json.loads(json.dumps(self.state.get("faults", {}).get(node, {})))     # a copy

    def faults_file(self, node: str) -> Path:
        """The file that tells `node`'s agents its faults (agents.faults reads it)."""
        return labfiles.lab_file(self.name, ".faults") / f"{node}.json"

    def _write_faults(self, node: str, faults: dict) -> None:
        """On the node's machine, where its agents read it."""
        self.backend.put(node, str(self.faults_file(node)), json.dumps(faults))

    @change
    def clear_faults(self) -> list[str]:
        """Undo every injected fault: links back at their planned rates, GPUs healthy; returns what
        was cleared, one line each."""
        cleared = []
        with self.batch():
            for a, _, b, _ in self.plan.links:
                now, planned = self.plan.node(a).port_to(b).rate_bps, self.planned_rate(a, b)
                if now != planned:
                    self.set_link_rate(a, b, planned)
                    cleared.append(f"link {a} <-> {b}: back to {planned} bit/s")
        for node, faults in sorted(self.state.pop("faults", {}).items()):
            cleared += [f"{node} GPU {g}: healthy (was {kind})" for g, kind in sorted(faults.get("gpu", {}).items())]
            cleared += [f"{node} SSD {d}: healthy (was at {f:.0%})" for d, f in sorted(faults.get("ssd", {}).items())]
            cleared += [f"{node} host memory: healthy (was at {faults['mem']:.0%})"] if "mem" in faults else []
            self._write_faults(node, {})
        self._save()
        return cleared

    @change
    def mark_unhealthy(self, checked: list[str], failed: list[str]) -> None:
        """The validator's verdict on `checked` nodes: `failed` ones are marked, the rest cleared
        (the scheduler marks the nodes a job lost, checking none)."""
        with self._changing:
            marked = (set(self.state.get("unhealthy", [])) - set(checked)) | set(failed)
            self.state["unhealthy"] = sorted(marked)
            self._save()
            self.log.append("health", checked=sorted(checked), failed=sorted(failed))

    def unhealthy(self) -> list[str]:
        return list(self.state.get("unhealthy", []))

    @change
    def sweep(self) -> list[str]:
        """The subnet manager's sweep: switch tables computed over the links that are up; returns
        the route changes."""
        from emu.control import subnet_manager
        changes = subnet_manager.sweep(self)
        self.log.append("sweep", changes=changes)
        return changes

    @change
    def link_event(self, a: str, b: str, up: bool, sweep_delay: float | None = None) -> list[str]:
        """Take the link a <-> b down or up; with `sweep_delay`, the subnet manager sweeps that many
        seconds later (lab time: nothing reroutes by itself meanwhile) and the route changes are
        returned. The daemon serves the wait in the asking connection's thread."""
        self.set_link(a, b, up)
        if sweep_delay is None:
            return []
        time.sleep(sweep_delay)
        return self.sweep()

    def planned_rate(self, a: str, b: str) -> int:
        """The emulated rate the topology gives the link a <-> b (whatever it runs at now)."""
        return self.topology.emulated_rate(self.topology.link(a, b))

    @contextmanager
    def batch(self):
        """Several runtime changes, one state-file write (a sweep changes many switches, and the
        kept plan of a large lab is megabytes), and no other thread's changes in between."""
        with self._changing:
            self._batched += 1
            try:
                yield self
            finally:
                self._batched -= 1
                if not self._batched and self._dirty:
                    self._save()

    def _record(self, changed, change: str, **what) -> None:
        """Keep `changed` (a NodePlan) as installed and log the change."""
        self._plan = self.plan.with_node(changed)
        self.log.append(change, **what)
        self._dirty = True
        if not self._batched:
            self._save()

    def _save(self) -> None:
        self.state["plan"] = self.plan.to_dict()
        _write_state(self.name, self.state)
        self._dirty = False

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # -- reading --------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            self._topology = topology_from_dict(self.state["topology"], self.state.get("source", "<state>"))
        return self._topology

    @property
    def plan(self) -> LabPlan:
        """What is installed: the plan the lab was built from, with every runtime change since."""
        if self._plan is None:
            self._plan = LabPlan.from_dict(self.state["plan"])
        return self._plan

    @cached_property
    def planned(self) -> LabPlan:
        """The plan as the topology makes it, no runtime change applied (what faults are undone to)."""
        return make_plan(self.topology, self.name)

    def node(self, name: str) -> NodeHandle:
        try:
            n = self.plan.node(name)
        except KeyError:
            raise EmuError(f"lab {self.name!r} has no node {name!r}") from None
        return NodeHandle(n.name, n.kind, self.layout.netns(n.name), tuple(n.addrs), n.forwards, self.backend,
                          self.ready, self.class_tos)

    def ready(self) -> None:
        """Wait until the lab's daemon runs its controllers (it starts in the background of
        Lab.up, in about 0.3 s): no program of the lab runs unflow-controlled or unsampled. One
        line naming `emu daemon LAB --restart` if it is gone."""
        if not self._ready:
            daemon.request(self.name, "status")
            self._ready = True

    def nodes(self, kind: str | None = None) -> list[NodeHandle]:
        return [self.node(n.name) for n in self.plan.nodes if kind in (None, n.kind)]

    def hosts(self) -> list[NodeHandle]:
        return [n for n in self.nodes() if not n.forwards]

    @cached_property
    def class_tos(self) -> dict[str, int]:
        """Traffic class -> the TOS its packets carry (the lab's QoS policy)."""
        return {name: self.topology.qos.tos_of(name) for name in self.topology.qos.classes}

    def tos(self, traffic_class: str) -> int:
        """TOS byte for a traffic class of this lab's QoS policy."""
        return self.topology.qos.tos_of(traffic_class)

    def status(self, ask_machines: bool = True) -> dict:
        """ask_machines: on a lab on a Ray cluster whose daemon does not answer, ask the cluster what
        is realised (a Ray connection, which waits long where the cluster does not answer); if
        false, that is left unknown (None): `emu ls`."""
        plan = self.plan
        links = []
        for a, a_if, b, _ in plan.links:
            port = plan.node(a).port(a_if)
            links.append({"a": a, "b": b, "rate_bps": port.rate_bps, "planned_rate_bps": self.planned_rate(a, b),
                          "real_rate_bps": port.real_rate_bps,
                          "buffer_bytes": self.topology.link(a, b).buffer_bytes, "up": port.up,
                          "crosses": self.layout.crosses(a, b)})
        ports = [{"node": n.name, "port": p.ifname, "addr": p.addr, "peer": p.peer, "peer_port": p.peer_ifname,
                  "rate_bps": p.rate_bps, "real_rate_bps": p.real_rate_bps, "up": p.up}
                 for n in plan.nodes for p in n.ports]
        running = daemon.status(self.name)
        unknown = self.layout.cluster and not ask_machines and "present" not in running
        present = running["present"] if "present" in running else None if unknown else self.backend.present()
        failed = running.get("failed", {}) if not unknown else {n.name: None for n in plan.nodes if n.container}
        return {
            "name": self.name, "backend": self.layout.backend, "scale": plan.scale, "routing": plan.routing,
            "isolation": self.topology.qos.isolation, "flow_control": plan.flow_control.mode,
            # a state file outlives its namespaces when a host reboots or someone deletes them by hand
            "live": present == len(plan.nodes) if present is not None else None,
            "namespaces": {"present": present, "planned": len(plan.nodes)},
            "nodes": [{"name": n.name, "kind": n.kind, "netns": n.netns, "machine": self.layout.place(n.name).machine,
                       "addrs": list(n.addrs),
                       "faults": self.faults(n.name), "unhealthy": n.name in self.unhealthy(),
                       **self._container_status(n.name, failed)}
                      for n in self.nodes()],
            **({"workers": self.layout.workers} if self.layout.machines else {}),
            **({"cluster": self.layout.cluster} if self.layout.cluster else {}),
            "machines": [{"name": m.name, "underlay": m.underlay, "netns": m.netns,
                          **({"device": m.device, "ray_node": m.node} if self.layout.cluster else {}),
                          "nodes": sum(p.machine == m.name for p in self.layout.places.values())}
                         for m in self.layout.machines],
            "links": links,
            "ports": ports,
            "qos": self.qos_table(),
            "daemon": {k: v for k, v in running.items() if k not in ("present", "failed")},
        }

    def _container_status(self, node: str, known: dict) -> dict:
        """A container node's image, and why it failed if its container no longer runs (`known`:
        node -> that, as the daemon found it)."""
        container = self.plan.node(node).container
        if container is None:
            return {}
        return {"image": container.image, "failed": known[node] if node in known else self.backend.failed(node)}

    def qos_table(self) -> list[dict]:
        """Per traffic class: its SL, the VL it rides, the TOS hosts mark it with, the VL's weight,
        its guaranteed share of a port and the FIFO each switch port gives that VL."""
        qos, plan = self.topology.qos, self.plan
        fifo = {q.vl: q.limit_bytes for n in plan.nodes if n.forwards for p in n.ports[:1] for q in p.queues}
        weights = qos.weights()
        total = sum(weights.values())
        rows = []
        for name, sl in qos.classes.items():
            vl = qos.vl_of_sl(sl)
            rows.append({"class": name, "sl": sl, "vl": vl, "tos": qos.tos_of(name), "weight": weights[vl],
                         "guaranteed_share": weights[vl] / total, "switch_fifo_bytes": fifo.get(vl)})
        return rows


def clean(only: str | None = None, on_failure=None, forget: bool = False) -> dict[str, int]:
    """Remove every lab (or only lab `only`): those with state files and those only the kernel's
    marks still know. A namespace goes only if its name and its mark both say it is the lab's,
    or if the lab's own state file claimed it before it was created. Cleaning every lab, one
    whose removal fails (a lab on a Ray cluster that does not answer from here) keeps its state
    file for another try, on_failure(name, error) hears of it, and the others are still removed
    (without on_failure, the error ends the clean). forget: a lab on a Ray cluster that does not
    answer loses its files here all the same (what its machines hold stays there)."""
    require_root("clean labs up")
    if only is not None:
        check_lab_name(only)
    # daemons first (they end their agents and leave no gate shut), those of labs whose state file
    # is gone too: a daemon is found by its own PID file
    with_daemons = [n for n in sorted(set(Lab.names()) | set(daemon.labs())) if only in (None, n)]
    for name in with_daemons:
        daemon.stop(name)
    removed: dict[str, int] = {}
    for kind in backends.BACKENDS:
        for lab, layout in backends.backend_type(kind).owned(only).items():
            backends.bind(layout).destroy()
            removed[lab] = len(layout.places)
    failed = set()
    for name in Lab.names():
        if only not in (None, name):
            continue
        try:
            fabric = backends.bind(layout_of(name, json.loads(state_path(name).read_text())))
        except (OSError, ValueError, AttributeError, EmuError):
            fabric = backends.bind(backends.lay_out(name, []))
        try:
            # Namespaces created in the instant before their marks were set are known only here.
            removed[name] = removed.get(name, 0) + fabric.present()
            fabric.destroy()
        except EmuError as e:
            if forget and fabric.layout.cluster:
                removed[name] = 0       # its files go below
                continue
            if fabric.layout.cluster:
                e = EmuError(f"{e} (emu clean {name} --forget removes its files here, leaving whatever its "
                             f"machines hold)")
            if only is not None or on_failure is None:
                raise e from None
            failed.add(name)
            removed.pop(name, None)
            on_failure(name, e)
    for name in with_daemons:       # labs known by their daemon's files alone, too
        if name not in failed:
            removed.setdefault(name, 0)
    for name in removed:            # their files (also of labs found by their marks or daemons alone)
        _remove_files(name)
    if not failed:      # what backends keep outside the nodes, of labs that left no state (not a failed lab's)
        for kind in backends.BACKENDS:
            backends.backend_type(kind).forget(only)
    return removed


def _remove_files(name: str) -> None:
    """A lab's state file, event log, nodes' fault files, MPI runs' files, and what its backend keeps
    beside them."""
    import shutil
    for files in labfiles.NODE_FILES:
        shutil.rmtree(labfiles.lab_file(name, files), ignore_errors=True)
    for kind in backends.BACKENDS:
        backends.backend_type(kind).forget(name)
    for path in (events_path(name), daemon.log_path(name), state_path(name)):
        path.unlink(missing_ok=True)
