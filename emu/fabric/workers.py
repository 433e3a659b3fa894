"""Workers: each machine's part of a lab over several machines, built, read, changed and
removed by that machine's worker.

A lab over machines (Layout.machines) is built in two stages: the machines (emulated here: a
namespace each and the underlay between them; a real machine has its own), then each machine's
part (emu.fabric.render.part: its nodes' namespaces, the veths among them, its ends of the
tunnels, its nodes' batches), which needs nothing from any other part. A worker per machine
builds its part. For the lab's life its daemon keeps the lab's workers: its sampler reads each
machine's nodes through that machine's worker (Watch: one call a sample per machine, the
readings' times put on the daemon's clock), and each runtime change (routes, links, rates) is
run by the worker of the changed node's machine. At teardown each worker ends its nodes'
processes and removes their namespaces.

- "local": workers in this process, the parts built one after another;
- "ray": a Ray actor per machine, all at once. Ray is started on this machine while they are
  needed (the build; the daemon's life; the teardown) and stopped after (or, if this process is
  already a Ray driver, its cluster is used); the actors are pinned to this machine's Ray node,
  where the emulated machines are.
- a Ray cluster's machines (Layout.cluster): an actor on each machine's own Ray node, reached
  as a driver of that cluster. There the workers also start their container nodes' containers
  on their machines' Docker, start programs in their nodes (emu.fabric.programs), write the
  nodes' files (fault files, the names view) and remove the lab's containers, classes and files
  at teardown: nothing of the lab is on the coordinator's machine.

Clocks: a machine's monotonic clock is not ours. Each watch measures its offset (measure_clock,
Cristian's method: the probe with the shortest round trip) when it starts and whenever asked
(a sampling window opens); a reading's time is then ours within the bound, half that round trip.

On a cluster the lossless flow controller runs a part on each machine (Parts: objects the daemon
has a worker make and keep, over MachineView, the machine's view of the backend; a gate on
another machine set by that machine's worker, RoutedGates). On emulated machines every namespace
is on this kernel: the coordinator runs the controller, and starts programs, itself.
"""
import itertools
import logging
import os
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from emu import labfiles, procs
from emu.backends import Layout, bind, check_workers
from emu.errors import EmuError, FabricError
from emu.fabric.programs import Programs, Pump

CLOCK_PROBES = 16
ACTOR_THREADS = 8       # calls a machine's worker serves at once


class MachineWorker:
    """What runs where a machine is: builds that machine's part of a lab, reads its nodes, runs
    changes and programs in them, and removes them."""

    def __init__(self):
        self.watched: dict[int, dict] = {}      # watch id -> {node: reader}
        self.started = Programs()
        self.parts: dict[str, tuple["MachineView", object]] = {}    # key -> (the view it runs on, the part)

    def build(self, lines) -> None:
        """Run the part's lines (emu.fabric.apply.build_lines)."""
        from emu.fabric.apply import build_lines
        build_lines(lines)

    def run_change(self, tool: str, lines: list[str], netns: str) -> None:
        """A change's batch in one of the machine's namespaces (emu.fabric.apply.run_change)."""
        from emu.fabric.apply import run_change
        run_change(tool, lines, netns)

    def destroy(self, namespaces: list[str], lab: str | None = None, with_containers: bool = False) -> int:
        """End the processes in the machine's nodes and remove their namespaces (the tunnel ends
        go with them), and what lab `lab` keeps here (its containers if `with_containers`, its
        programs' classes, its nodes' files, its names view); how many processes it ended."""
        from emu.fabric import classes, containers, hosts
        from emu.fabric.apply import destroy
        from emu.fabric.render import netns_name
        if with_containers:
            containers.remove(lab)
        stopped = destroy(namespaces)
        if lab is not None:
            classes.forget(lab)
            for files in labfiles.NODE_FILES:
                shutil.rmtree(labfiles.lab_file(lab, files), ignore_errors=True)
            hosts.remove(labfiles.hosts_path(lab), netns_name(lab, "*"))
        return stopped

    def start_containers(self, wanted: list[dict]) -> dict[str, int]:
        """Its container nodes' containers, on this machine's Docker (emu.fabric.containers.start)."""
        from emu.fabric import containers
        return containers.start(wanted)

    def remove_containers(self, lab: str) -> int:
        from emu.fabric import containers
        return containers.remove(lab)

    def container_failed(self, node: str, name: str) -> str | None:
        """Why container node `node`'s container (`name`) is not running here, or None if it is."""
        from emu.fabric import containers
        try:
            containers.running(node, name)
        except FabricError as e:
            return str(e)
        return None

    def name_view(self, namespaces: list[str], text: str, path: str) -> None:
        """The lab's hosts file here, and its nodes' views of it (emu.fabric.hosts)."""
        from emu.fabric import hosts
        hosts.install(text, namespaces, Path(path))

    def put(self, path: str, text: str, mode: int = 0o644) -> None:
        put(path, text, mode)

    def remove(self, path: str) -> None:
        remove(path)

    def process(self) -> tuple[int, str]:
        """This worker's PID (its namespaces are the machine's: /proc/PID/ns) and its Python."""
        return os.getpid(), sys.executable

    def clock(self) -> float:
        return time.monotonic()

    def underlay(self, address: str) -> dict:
        """The device that has `address` here (the machine's underlay), its MTU and its speed
        (bit/s, as its driver reports it; None if it does not)."""
        from pyroute2 import IPRoute
        from pyroute2.ethtool import Ethtool
        with IPRoute() as ipr:
            found = ipr.get_addr(address=address)
            if not found:
                raise FabricError(f"no device has address {address}")
            link = ipr.get_links(found[0]["index"])[0]
        device = link.get_attr("IFLA_IFNAME")
        try:
            tool = Ethtool()
            try:
                mbits = tool.get_link_mode(device).speed
            finally:
                tool.close()
        except Exception:       # a device without ethtool's link settings
            mbits = None
        known = isinstance(mbits, int) and 0 < mbits < 10_000_000      # drivers say 0, -1 or 65535 for unknown
        return {"device": device, "mtu": link.get_attr("IFLA_MTU"), "speed_bps": mbits * 1e6 if known else None}

    def taken(self, namespaces: list[str]) -> list[str]:
        from emu.fabric.netns import netns_path
        return [ns for ns in namespaces if netns_path(ns).exists()]

    # programs in its nodes (emu.fabric.programs: Popen's face on the coordinator)
    def spawn(self, netns: str | None, argv: list[str], env: dict | None = None, in_class=None,
              container=None) -> int:
        return self.started.spawn(netns, argv, env, in_class, container)

    def output(self, pids: list[int], timeout: float) -> dict:
        return self.started.output(pids, timeout)

    def signal(self, pid: int, sig: int) -> None:
        self.started.signal(pid, sig)

    def catches(self, pid: int, sig: int) -> bool:
        return self.started.catches(pid, sig)

    def programs(self, namespaces: list[str]) -> list[tuple[int, str, list[str]]]:
        """(pid, namespace, argv) of every process in these namespaces (of its nodes)."""
        from emu.fabric.netns import pids_in
        return [(pid, ns, procs.cmdline(pid)) for pid, ns in pids_in(namespaces).items()]

    def signal_in(self, namespaces: list[str], pid: int, sig: int) -> None:
        """Signal process `pid` if it lives in one of these namespaces (stopping a lab's agents)."""
        from emu.fabric.netns import pids_in
        if pid in pids_in(namespaces):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # parts: objects a lab's daemon has run on each machine (emu.backends' run_on_machines)
    def part_start(self, made: tuple, key: str, layout: dict, plan: dict, peers: dict) -> None:
        """made: (this machine's name, make); make(lab) with lab the plan and this machine's view of
        the lab's backend (MachineView), kept as part `key`; peers: machine -> its worker."""
        machine, make = made
        from types import SimpleNamespace
        from emu.plan import LabPlan
        view = MachineView(Layout.from_dict(layout), LabPlan.from_dict(plan), machine, key, peers)
        try:
            self.parts[key] = (view, make(SimpleNamespace(name=view.plan.lab, plan=view.plan, backend=view)))
        except BaseException:
            view.close()
            raise

    def part_call(self, key: str, method: str, *args):
        return getattr(self.parts[key][1], method)(*args)

    def part_gates(self, key: str, changes: list[tuple]) -> None:
        """Gates of this machine's nodes, set in order for another machine's part: (node, port, VL, closed)."""
        gates = self.parts[key][0].gates(None).local
        for change in changes:
            gates.set(*change)

    def part_end(self, key: str) -> None:
        view, _ = self.parts.pop(key, (None, None))
        if view:
            view.close()

    def node_read(self, netns: str, what: str):
        """One reading (queues, links or tcp_retransmits: emu.fabric.reader) of one of its nodes."""
        from emu.fabric.reader import NamespaceReader
        reader = NamespaceReader(netns)
        try:
            found = getattr(reader, what)()
            return found if isinstance(found, int) else list(found)
        finally:
            reader.close()

    def watch(self, wid: int, layout: dict, nodes: list[str]) -> None:
        """Open a reader (the backend's observe face) on each of `nodes`, kept until unwatch(wid)."""
        backend = bind(replace(Layout.from_dict(layout), cluster=None))    # here, its nodes are this kernel's
        self.watched[wid] = {node: backend.reader(node) for node in nodes}

    def read(self, wid: int) -> list[tuple]:
        """(node, t, queues, links) of every node of watch `wid`; t: this machine's clock, mid-reading."""
        rows = []
        for node, reader in self.watched[wid].items():
            before = time.monotonic()
            queues, links = list(reader.queues()), list(reader.links())
            rows.append((node, (before + time.monotonic()) / 2, queues, links))
        return rows

    def unwatch(self, wid: int) -> None:
        for reader in self.watched.pop(wid, {}).values():
            reader.close()


@dataclass(frozen=True)
class Clock:
    """A machine's clock against ours: a time t of theirs is t - offset of ours, within bound."""
    offset: float = 0.0
    bound: float = 0.0


def measure_clock(theirs, probes: int = CLOCK_PROBES, ours=time.monotonic) -> Clock:
    """Their clock read by `theirs()` between two readings t0, t1 of ours: it was read at an
    instant of [t0, t1], so theirs - (t0 + t1) / 2 is the offset within (t1 - t0) / 2. The
    probe with the shortest round trip gives the tightest bound."""
    best = None
    for _ in range(probes):
        t0 = ours()
        t = theirs()
        t1 = ours()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, t - (t0 + t1) / 2)
    return Clock(offset=best[1], bound=best[0] / 2)


_WATCH_IDS = itertools.count(1)


class Watch:
    """One machine's nodes, read by its worker; `call(method, *args)` reaches the worker."""

    def __init__(self, machine: str, call, wid: int = 0):
        self.machine, self.call, self.wid = machine, call, wid
        self.clock = Clock()
        self.reads = 0

    def sync(self) -> Clock:
        self.clock = measure_clock(lambda: self.call("clock"))
        return self.clock

    def read(self) -> list[tuple]:
        """(node, t, queues, links), t on this process's monotonic clock."""
        self.reads += 1
        offset = self.clock.offset
        return [(node, t - offset, queues, links) for node, t, queues, links in self.call("read", self.wid)]

    def close(self) -> None:
        self.call("unwatch", self.wid)

    def summary(self) -> dict:
        return {"reads": self.reads, "clock_offset_s": self.clock.offset, "clock_bound_s": self.clock.bound}


class RemoteReader:
    """A node's reader (the backend's observe face) on a cluster's machine: each reading is one
    call to that machine's worker (~ms: for readings now and then; the sampler watches)."""

    def __init__(self, crew: "Workers", machine: str, netns: str):
        self.crew, self.machine, self.netns = crew, machine, netns

    def queues(self):
        return self.crew.run(self.machine, "node_read", self.netns, "queues")

    def links(self):
        return self.crew.run(self.machine, "node_read", self.netns, "links")

    def tcp_retransmits(self) -> int:
        return self.crew.run(self.machine, "node_read", self.netns, "tcp_retransmits")

    def close(self) -> None:
        pass


def call_peers(calls: list[tuple]) -> None:
    """(worker, method, args) each, from a worker, all at once: Ray actors, or workers in this process."""
    refs = []
    for peer, method, args in calls:
        remote = getattr(getattr(peer, method), "remote", None)
        if remote is None:
            getattr(peer, method)(*args)
        else:
            refs.append(remote(*args))
    if refs:
        import ray
        ray.get(refs)


class RoutedGates:
    """Gates of every node of the lab, from one machine: its own nodes' here (emu.fabric.gates),
    another machine's set by that machine's worker at flush(): one call a machine, all at once."""

    def __init__(self, local, view: "MachineView"):
        self.local, self.view = local, view
        self.pending: dict[str, list[tuple]] = {}       # machine -> its gate changes, in order

    def _machine(self, node: str) -> str:
        return self.view.layout.place(node).machine

    def prepare(self, node: str, ifname: str) -> None:
        if self._machine(node) == self.view.machine:
            self.local.prepare(node, ifname)

    def set(self, node: str, ifname: str, vl: int, closed: bool) -> None:
        machine = self._machine(node)
        if machine == self.view.machine:
            self.local.set(node, ifname, vl, closed)
        else:
            self.pending.setdefault(machine, []).append((node, ifname, vl, closed))

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        call_peers([(self.view.peers[m], "part_gates", (self.view.key, changes)) for m, changes in pending.items()])

    def close(self) -> None:
        pass        # another machine's part may still open a gate here: the view closes them at its end


class MachineView:
    """The lab's backend as one machine of it sees it, for what a daemon runs there (run_on_machines):
    the readings and arrival counters of its own nodes, and the gates of every node."""

    def __init__(self, layout: Layout, plan, machine: str, key: str, peers: dict):
        self.layout, self.plan, self.machine, self.key, self.peers = layout, plan, machine, key, peers
        self.local = bind(replace(layout, cluster=None))        # its own nodes are this kernel's
        self._gates: RoutedGates | None = None

    def _mine(self, node: str) -> None:
        if self.layout.place(node).machine != self.machine:
            raise FabricError(f"node {node} is not on machine {self.machine}")

    def reader(self, node: str):
        self._mine(node)
        return self.local.reader(node)

    def arrivals(self, plan, switches: list[str], replace: bool = False):
        for sw in switches:
            self._mine(sw)
        return self.local.arrivals(plan, switches, replace)

    def gates(self, plan=None) -> RoutedGates:
        if self._gates is None:
            self._gates = RoutedGates(self.local.gates(self.plan), self)
        return self._gates

    def close(self) -> None:
        if self._gates is not None:
            self._gates.local.close()


class Parts:
    """An object made on each machine of a lab over machines by its worker, called from here
    (emu.backends' run_on_machines): makers: machine -> make(lab) (lab: the plan and the
    machine's view of the backend); each machine's clock measured against ours."""

    def __init__(self, crew: "Workers", layout: Layout, plan, makers: dict):
        self.crew, self.machines = crew, list(makers)
        self.key = f"{os.getpid()}-{next(_PART_IDS)}"
        peers = crew.peers([m.name for m in layout.machines])
        self.clocks = {m: measure_clock(lambda m=m: crew.run(m, "clock")) for m in self.machines}
        crew.each("part_start", {m: (m, make) for m, make in makers.items()}, self.key, layout.to_dict(),
                  plan.to_dict(), peers)

    def offset(self, machine: str) -> float:
        return self.clocks[machine].offset

    def call(self, method: str, *args) -> dict:
        """method(*args) of every machine's part; machine -> what it returned."""
        return self.crew.each("part_call", dict.fromkeys(self.machines, self.key), method, *args)

    def call_each(self, method: str, args: dict) -> dict:
        """method(args[machine]) of each machine's part."""
        return {m: self.crew.run(m, "part_call", self.key, method, a) for m, a in args.items()}

    def close(self) -> None:
        self.crew.each("part_end", dict.fromkeys(self.machines, self.key))


_PART_IDS = itertools.count(1)


class Workers:
    """A worker per machine, made on first use and kept until close(); `run` calls one."""
    kind = ""

    def __init__(self):
        self.changes = Counter()        # machine -> the changes its worker ran
        self.pumps: dict[str, Pump] = {}    # machine -> its programs' news (emu.fabric.programs)

    def pump(self, machine: str) -> Pump:
        if machine not in self.pumps:
            self.pumps[machine] = Pump(lambda method, *args: self.run(machine, method, *args))
        return self.pumps[machine]

    def run(self, machine: str, method: str, *args):
        raise NotImplementedError

    def peers(self, machines: list[str]) -> dict:
        """machine -> its worker, as other workers call it (call_peer)."""
        raise NotImplementedError

    def change(self, machine: str, tool: str, lines: list[str], netns: str) -> None:
        """A change's batch, run by the machine's worker in one of its namespaces."""
        self.run(machine, "run_change", tool, lines, netns)
        self.changes[machine] += 1

    def build(self, parts: dict, on_done=None) -> None:
        """parts: machine -> its lines; on_done(machine) as each is built."""
        self.each("build", parts, on_done=on_done)

    def destroy(self, parts: dict[str, list[str]], lab: str | None = None, with_containers: bool = False) -> int:
        """parts: machine -> its nodes' namespaces; lab: also what the lab keeps on every machine
        (MachineWorker.destroy); how many processes were ended."""
        return sum(self.each("destroy", parts, lab, with_containers).values())

    def each(self, method: str, args: dict, *common, on_done=None) -> dict:
        """`method(args[machine], *common)` on every machine's worker; machine -> what it returned."""
        results = {}
        for machine, a in args.items():
            results[machine] = self.run(machine, method, a, *common)
            if on_done:
                on_done(machine)
        return results

    def watch(self, layout: Layout, nodes: dict[str, list[str]]) -> list[Watch]:
        """A watch per machine (nodes: machine -> its nodes to read), its clock measured."""
        wid = next(_WATCH_IDS)
        for machine, names in nodes.items():
            self.run(machine, "watch", wid, layout.to_dict(), names)
        watches = [Watch(m, lambda method, *args, m=m: self.run(m, method, *args), wid) for m in nodes]
        for w in watches:
            w.sync()
        return watches

    def close(self) -> None:
        pass


class LocalWorkers(Workers):
    kind = "local"

    def __init__(self):
        super().__init__()
        self.workers: dict[str, MachineWorker] = {}

    def run(self, machine: str, method: str, *args):
        return getattr(self._worker(machine), method)(*args)

    def _worker(self, machine: str) -> MachineWorker:
        if machine not in self.workers:
            self.workers[machine] = MachineWorker()
        return self.workers[machine]

    def peers(self, machines: list[str]) -> dict:
        return {m: self._worker(m) for m in machines}


class RayWorkers(Workers):
    """Workers as Ray actors. Emulated machines: on this machine's Ray node. A Ray cluster's
    machines (cluster: its address; nodes: machine -> its Ray node): on each machine's node."""
    kind = "ray"

    def __init__(self, cluster: str | None = None, nodes: dict[str, str] | None = None):
        super().__init__()
        self.cluster, self.nodes = cluster, nodes or {}
        self.ray = None             # the ray module, once this object has a Ray session
        self.started = False        # the session is ours to stop
        self.actors: dict = {}      # machine -> its worker actor
        self.lock = threading.RLock()   # programs' pumps call from threads of their own

    def _session(self):
        with self.lock:
            self._connect()
        return self.ray

    def _connect(self) -> None:
        if self.ray is None:
            ray = import_ray()
            self.started = not ray.is_initialized()
            if self.started and self.cluster:
                reachable(self.cluster)
                try:
                    ray.init(address=self.cluster, log_to_driver=False, logging_level=logging.ERROR)
                except Exception as e:      # Ray's own: ConnectionError, and others (a client address without grpc)
                    raise EmuError(f"cannot reach the Ray cluster at {self.cluster}: {e}") from None
            elif self.started:  # a Ray of this machine's own, whatever RAY_ADDRESS says: the machines are here
                ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            self.ray = ray

    def _actor(self, machine: str):
        """The machine's worker actor, pinned to its Ray node."""
        with self.lock:
            if machine not in self.actors:
                ray = self._session()
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
                node = self.nodes.get(machine) or ray.get_runtime_context().get_node_id()
                there = NodeAffinitySchedulingStrategy(node, soft=False)
                # threads: a pump waiting on its programs' news must not hold up the machine's other calls
                self.actors[machine] = ray.remote(MachineWorker).options(
                    num_cpus=0, scheduling_strategy=there, max_concurrency=ACTOR_THREADS).remote()
            return self.actors[machine]

    def peers(self, machines: list[str]) -> dict:
        return {m: self._actor(m) for m in machines}

    def hosts(self) -> list[dict]:
        """The cluster's live nodes, by address: {"underlay": address, "node": Ray node ID}."""
        alive = [n for n in self._session().nodes() if n.get("Alive")]
        return sorted(({"underlay": n["NodeManagerAddress"], "node": n["NodeID"]} for n in alive),
                      key=lambda h: tuple(int(x) if x.isdigit() else x for x in h["underlay"].split(".")))

    def run(self, machine: str, method: str, *args):
        ray = self._session()
        try:
            return ray.get(getattr(self._actor(machine), method).remote(*args))
        except ray.exceptions.RayError as e:
            raise _failed(machine, e) from None

    def each(self, method: str, args: dict, *common, on_done=None) -> dict:
        """All machines at once."""
        ray = self._session()
        pending = {getattr(self._actor(m), method).remote(a, *common): m for m, a in args.items()}
        results, failures = {}, []
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            machine = pending.pop(ready)
            try:
                results[machine] = ray.get(ready)
            except ray.exceptions.RayError as e:
                failures.append(_failed(machine, e))
            if on_done:
                on_done(machine)
        if failures:
            raise failures[0]
        return results

    def close(self) -> None:
        """End the actors, and the Ray session if this object started it."""
        if self.ray is None:
            return
        if self.ray.is_initialized():
            for actor in self.actors.values():
                self.ray.kill(actor)
            if self.started:
                self.ray.shutdown()
        self.ray, self.started, self.actors = None, False, {}


def _failed(machine: str, error) -> FabricError:
    """What a worker's failure says, as one line (Ray's error carries the worker's own)."""
    return FabricError(f"machine {machine}'s worker: {getattr(error, 'cause', None) or error}")


class Watches:
    """A watch per machine of `nodes` (emu.backends.Watches), by `crew` (a Workers), which
    close() also closes if `owned`."""

    def __init__(self, layout: Layout, nodes: list[str], crew: Workers, owned: bool):
        by_machine = {m: names for m, names in layout.by_machine(nodes).items() if names}
        self.crew, self.owned = crew, owned
        try:
            self.watches = crew.watch(layout, by_machine) if by_machine else []
        except BaseException:
            if owned:
                crew.close()
            raise

    def read(self):
        for watch in self.watches:
            yield from watch.read()

    def sync(self) -> None:
        for watch in self.watches:
            watch.sync()

    def clock_bound(self) -> float:
        return max((w.clock.bound for w in self.watches), default=0.0)

    def summary(self) -> dict:
        return {w.machine: {**w.summary(), "changes": self.crew.changes[w.machine]} for w in self.watches}

    def close(self) -> None:
        try:
            for watch in self.watches:
                watch.close()
        finally:
            if self.owned:
                self.crew.close()


def node_namespaces(layout: Layout) -> dict[str, list[str]]:
    """machine -> the namespaces of its nodes (what its worker removes at teardown)."""
    return {m: [layout.netns(n) for n in nodes] for m, nodes in layout.by_machine().items()}


def put(path: str, text: str, mode: int = 0o644) -> None:
    """Write a file whole: a new inode by rename, so a reader sees the old or the new."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")      # machines may share a filesystem
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.rename(target)


def remove(path: str) -> None:
    """A file or a directory and all it holds, if it is there."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


REACH_TIMEOUT = 3.0     # seconds to open a TCP connection to a cluster's head


def reachable(address: str, timeout: float = REACH_TIMEOUT) -> None:
    """EmuError unless the Ray cluster's head at HOST:PORT takes a TCP connection: Ray's own
    connect waits over two minutes for a head that is gone (`emu clean` of such a lab hung)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return          # not HOST:PORT: Ray says what it makes of it
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except OSError as e:
        raise EmuError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


def import_ray():
    try:
        import ray
    except ImportError:
        raise EmuError("Ray workers need Ray: pip install -e '.[sweep]' (or pip install ray)") from None
    return ray


def workers(kind: str) -> Workers:
    """The workers of kind `kind` (one of emu.backends.WORKERS) for emulated machines; close() them when done."""
    check_workers(kind)
    return LocalWorkers() if kind == "local" else RayWorkers()


def lab_workers(layout: Layout) -> Workers:
    """The workers of a lab over machines (Layout.workers; on its Ray cluster, if it has one)."""
    if layout.cluster:
        return RayWorkers(layout.cluster, {m.name: m.node for m in layout.machines})
    return workers(layout.workers)


def cluster_hosts(cluster: str, count: int | None, mtu: int) -> list[dict]:
    """The first `count` machines (all, if None) of the Ray cluster at `cluster`, each
    {"underlay", "device", "speed_bps", "node"}: its address, the device that has it (whose MTU
    must carry the tunnels: `mtu` or more) and that device's speed, and its Ray node."""
    crew = RayWorkers(cluster)
    try:
        hosts = crew.hosts()
        if len(hosts) < max(count or 0, 2):
            raise EmuError(f"the Ray cluster at {cluster} has {len(hosts)} live node(s); a lab over it "
                           f"needs {max(count or 0, 2)} (each node is a machine)")
        hosts = hosts[:count]
        crew.nodes = {str(k): h["node"] for k, h in enumerate(hosts)}
        for k, h in enumerate(hosts):
            found = crew.run(str(k), "underlay", h["underlay"])
            if found["mtu"] < mtu:
                raise EmuError(f"machine {h['underlay']}: its underlay device {found['device']} has MTU "
                               f"{found['mtu']}; the tunnels need {mtu} or more (ip link set {found['device']} "
                               f"mtu {mtu})")
            h["device"], h["speed_bps"] = found["device"], found["speed_bps"]
        return hosts
    finally:
        crew.close()
