"""A scenario's workloads as the model sees them: rounds of flows between hosts.

A round's flows start together; the next round starts when the last of them ends (a
collective's iterations, each ending at a barrier). An endless flow (bytes = inf) runs until
its workload's deadline. A collective also loads its nodes' hardware (PCIe links, root
complexes, host memory, the GPU-NIC path: cluster.footprint): each byte a node sends or
receives for it uses those resources in proportion, so they are constraints of the same
solver as the network's ports, shared by every workload on the node.
"""
from dataclasses import dataclass, field

from cluster.chains import CHUNK_SIZE
from cluster.collectives import ALLTOALL, TRAFFIC_CLASS
from cluster.dbtree import double_binary_tree
from cluster.footprint import footprint
from cluster.node import SSD_BPS, NodeParams
from emu.errors import EmuError

INF = float("inf")


@dataclass
class Workload:
    name: str
    type: str
    traffic_class: str
    start: float
    rounds: list[list[tuple[str, str, float]]]      # (src, dst, bytes) per flow
    deadline: float | None = None                   # endless flows stop here
    params: dict = field(default_factory=dict)
    cap: float = INF                                # each flow's ceiling, bytes/s (a node's or a service's)
    gap: float = 0.0                                # seconds a round ends after its last flow (software's share)
    # node -> {hardware constraint: bytes it carries per byte the node sends or receives}
    node_use: dict[str, dict[str, float]] = field(default_factory=dict)


def collective_flows(algo: str, nodes: list[str], size: int, gpus: int) -> list[tuple[str, str, float]]:
    """One iteration's node-to-node bytes of `algo` over `nodes` (`size` bytes per GPU)."""
    n, ranks = len(nodes), len(nodes) * gpus
    if n < 2:
        return []
    if algo == "ring":           # every GPU sends 2 (R-1)/R of its buffer; one ring edge per node pair
        return [(nodes[i], nodes[(i + 1) % n], 2 * (ranks - 1) / ranks * size) for i in range(n)]
    if algo in ("tree", "hfreduce", "hfreduce-nvlink"):      # each tree carries half up and half down
        flows = []
        for tree in double_binary_tree(n):
            for child, parent in enumerate(tree.parent):
                if parent is not None:
                    flows += [(nodes[child], nodes[parent], size / 2), (nodes[parent], nodes[child], size / 2)]
        return flows
    if algo == ALLTOALL:         # each GPU's buffer in one block per GPU of the job
        return [(a, b, gpus * gpus * size / ranks) for a in nodes for b in nodes if a != b]
    raise EmuError(f"the model has no traffic pattern for {algo!r} yet (it has ring, tree, hfreduce, "
                   f"hfreduce-nvlink, alltoall)")


def collective(name: str, algo: str, nodes: list[str], size: int, params: NodeParams, start: float = 0.0,
               iters: int = 1, kind: str = "allreduce") -> Workload:
    """`iters` rounds of `algo` over `nodes` (`size` bytes per GPU), loading the nodes' hardware."""
    use = {}
    for rank, node in enumerate(nodes):
        fp = footprint(algo, params, len(nodes), rank)
        if fp is not None and fp.sent + fp.received:
            use[node] = {c: v / (fp.sent + fp.received) for c, v in fp.uses.items()}
    flows = collective_flows(algo, nodes, size, params.gpus)
    return Workload(name, kind, TRAFFIC_CLASS[algo], start, [flows] * iters, node_use=use,
                    params={"algo": algo, "size": size, "nodes": list(nodes), "ranks": len(nodes) * params.gpus})


def from_steps(scenario, topo) -> list[Workload]:
    """The scenario's workloads, or one line naming the first the model cannot play."""
    if scenario.faults or scenario.jobs:
        raise EmuError(f"{scenario.source}: the model plays workloads only, not faults or scheduled jobs")
    storage = [n.name for n in topo.hosts() if n.kind == "storage"]
    out = []
    for step in scenario.workloads:
        p, make = step.params, BUILDERS.get(step.type)
        if make is None:
            raise EmuError(f"{scenario.source}: workloads.{step.name}: the model cannot play {step.type!r} yet "
                           f"(it plays {', '.join(BUILDERS)})")
        out.append(make(step, p, topo, storage))
    return out


def _collective(step, p, topo, storage):
    algo = p["algo"] if step.type == "allreduce" else ALLTOALL
    first = p["nodes"][0]
    try:
        params = NodeParams(gpus=topo.node(first).attrs["gpus"], nics=topo.graph.degree(first))
    except ValueError as e:
        raise EmuError(f"workloads.{step.name}: {e}") from None
    return collective(step.name, algo, p["nodes"], p["size"], params, step.start, p["iters"], step.type)


def _bulk(step, p, topo, storage):
    return Workload(step.name, step.type, p["class"], step.start, [[(p["src"], p["dst"], INF)]],
                    step.start + step.duration)


def _storage_read(step, p, topo, storage):
    """Every client reads the one file of `size` bytes, striped over every storage node, in
    batches until the deadline: one round a batch, the file's bytes from every storage node to
    every client. Before a batch's data moves its chunks are read from the SSDs; every client
    asks for the same chunk at once, so an SSD serves it to one client after another, and a
    batch waits (clients + 1) / 2 chunk reads on average: the gap after each round. (The
    software's time per batch is the calibration's.)"""
    clients = p["clients"]
    flows = [(s, c, p["size"] / len(storage)) for c in clients for s in storage]
    ssd_wait = (len(clients) + 1) / 2 * CHUNK_SIZE / (SSD_BPS * topo.scale)
    # enough rounds to reach the deadline even if the network took no time
    rounds = int(step.duration / ssd_wait) + 1
    return Workload(step.name, step.type, "storage", step.start, [flows] * rounds, step.start + step.duration,
                    gap=ssd_wait)


def _storage_write(step, p, topo, storage):
    """Each client writes `size`, striped over every storage node (one replica, as `emu run`'s
    shared storage keeps it)."""
    flows = [(c, s, p["size"] / len(storage)) for c in p["clients"] for s in storage]
    return Workload(step.name, step.type, "storage", step.start, [flows])


BUILDERS = {"allreduce": _collective, "alltoall": _collective, "bulk": _bulk, "storage-read": _storage_read,
            "storage-write": _storage_write}
