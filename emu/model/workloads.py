"""A scenario's workloads as the model sees them: rounds of flows between hosts.

A round's flows start together; the next round starts when the last of them ends (a
collective's iterations, each ending at a barrier). An endless flow (bytes = inf) runs until
its workload's deadline. A collective also loads its nodes' hardware (PCIe links, root
complexes, host memory, the GPU-NIC path: cluster.footprint): each byte a node sends or
receives for it uses those resources in proportion, so they are constraints of the same
solver as the network's ports, shared by every workload on the node.
"""
from dataclasses import dataclass, field
from typing import Callable

from cluster.collectives import ALLGATHER, ALLTOALL, REDUCESCATTER, TRAFFIC_CLASS
from cluster.dbtree import double_binary_tree
from cluster.footprint import footprint
from cluster.node import NodeParams
from emu.errors import EmuError

INF = float("inf")


@dataclass
class Workload:
    name: str
    type: str
    traffic_class: str
    start: float
    rounds: list[list[tuple]]                       # (src, dst, bytes) per flow, or (src, dst, bytes, rail)
    deadline: float | None = None                   # endless flows stop here
    params: dict = field(default_factory=dict)
    cap: float = INF                                # each flow's ceiling, bytes/s (a node's or a service's)
    gap: float = 0.0                                # seconds a round ends after its last flow (software's share)
    # node -> {hardware constraint: bytes it carries per byte the node sends or receives}
    node_use: dict[str, dict[str, float]] = field(default_factory=dict)
    round_use: list[dict] | None = None             # node_use round by round, where rounds differ
    summarise: Callable | None = None               # its rounds' (start, end) -> its figures (else its type's)
    rehash: bool = False                            # each round on connections of its own: hashed anew

    def use_of(self, round_index: int) -> dict[str, dict[str, float]]:
        return self.round_use[round_index] if self.round_use else self.node_use


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
    if algo in (ALLGATHER, REDUCESCATTER):      # one of the ring's two phases
        return [(nodes[i], nodes[(i + 1) % n], (ranks - 1) / ranks * size) for i in range(n)]
    if algo == ALLTOALL:         # each GPU's buffer in one block per GPU of the job
        return [(a, b, gpus * gpus * size / ranks) for a in nodes for b in nodes if a != b]
    raise EmuError(f"the model has no traffic pattern for {algo!r} yet (it has ring, tree, hfreduce, "
                   f"hfreduce-nvlink, allgather, reducescatter, alltoall)")


def hardware_use(algo: str, nodes: list[str], params: NodeParams) -> dict[str, dict[str, float]]:
    """node -> {constraint: bytes it carries per byte the node sends or receives} for `algo`."""
    use = {}
    for rank, node in enumerate(nodes):
        fp = footprint(algo, params, len(nodes), rank)
        if fp is not None and fp.sent + fp.received:
            use[node] = {c: v / (fp.sent + fp.received) for c, v in fp.uses.items()}
    return use


def collective(name: str, algo: str, nodes: list[str], size: int, params: NodeParams, start: float = 0.0,
               iters: int = 1, kind: str = "allreduce") -> Workload:
    """`iters` rounds of `algo` over `nodes` (`size` bytes per GPU), loading the nodes' hardware."""
    use = hardware_use(algo, nodes, params)
    flows = collective_flows(algo, nodes, size, params.gpus)
    return Workload(name, kind, TRAFFIC_CLASS[algo], start, [flows] * iters, node_use=use,
                    params={"algo": algo, "size": size, "nodes": list(nodes), "ranks": len(nodes) * params.gpus,
                            "gpus": params.gpus})
