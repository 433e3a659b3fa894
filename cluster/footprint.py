"""What one iteration of a collective asks of a compute node's hardware, per byte of data.

For each resource of the node (named by cluster.node, as the agents' node model names them) the bytes it carries per
byte of each GPU's buffer, at one rank of the job: the numbers the agents' node model charges
copy by copy, written here as totals so that a flow-level model can put the node's hardware in
the same max-min solver as the network (tests/unit/test_footprint.py holds the two together).
A root complex is three constraints: each direction at its one-way rate, both together at its
duplex rate (IV-D3's bidirectional penalty).

Today's node only (one NIC that every GPU reaches through its root complex); section IX's node
with a NIC per GPU has no footprint here.
"""
from dataclasses import dataclass, field

from cluster.dbtree import double_binary_tree
from cluster.node import HOSTMEM, P2P, NodeParams, nic_path, nvlink, pcie, root_complex

TREES = ("hfreduce", "hfreduce-nvlink", "tree")


@dataclass
class Footprint:
    sent: float                     # network bytes out of the node, per byte of data
    received: float
    uses: dict[str, float] = field(default_factory=dict)    # constraint -> bytes per byte of data


def network_share(algo: str, gpus: int, nodes: int, rank: int) -> tuple[float, float, float]:
    """(sent, received, received to be reduced) network bytes of `rank` per byte of data."""
    ranks = gpus * nodes
    if nodes < 2:
        return 0.0, 0.0, 0.0
    if algo == "ring":
        each = 2 * (ranks - 1) / ranks
        return each, each, 0.0
    if algo == "alltoall":
        each = gpus * (nodes - 1) / nodes
        return each, each, 0.0
    if algo in TREES:       # each tree carries half the data: up to the parent, down to the children
        sent = received = reduced = 0.0
        for tree in double_binary_tree(nodes):
            kids = len(tree.children[rank])
            up = tree.parent[rank] is not None
            sent += 0.5 * (up + kids)
            received += 0.5 * (up + kids)
            reduced += 0.5 * kids
        return sent, received, reduced
    raise ValueError(f"no node footprint for {algo!r}")


def footprint(algo: str, params: NodeParams, nodes: int, rank: int) -> Footprint | None:
    """`algo`'s footprint at `rank` of `nodes` nodes (None: a node with a NIC per GPU)."""
    if params.nic_per_gpu:
        return None
    g, ranks = params.gpus, params.gpus * nodes
    sent, received, reduced = network_share(algo, g, nodes, rank)
    uses: dict[str, float] = {}
    if algo.startswith("hfreduce"):
        paired = algo == "hfreduce-nvlink"
        # D2H of every source GPU and H2D of the result (with NVLink each GPU of a pair moves half)
        d2h = h2d = [0.5 if paired else 1.0] * g
        sources = g // 2 if paired else g
        # IV-D3's count: D2H writes, the add's reads and one write, H2D one read per NUMA node,
        # and each network byte once more (the NIC reads or writes it; a reduced one is read to add)
        uses[HOSTMEM] = 2 * sources + 1 + params.numa_nodes + sent + received + reduced
        if paired:      # each pair reduce-scatters and allgathers over its bridge: a byte each way, twice
            uses.update({nvlink(k): 2.0 for k in range(g // 2)})
    else:
        if algo == "ring":          # every GPU passes 2 (R-1)/R of its buffer on, to a GPU or the NIC
            d2h = h2d = [2 * (ranks - 1) / ranks] * g
        elif algo == "alltoall":    # every block but its own leaves each GPU, and as many arrive
            d2h = h2d = [(ranks - 1) / ranks] * g
        else:                       # the tree: a chain up and down the node's GPUs, GPU 0 at the NIC
            d2h = [1 + sent] + [2.0] * (g - 2) + [1.0]
            h2d = [1 + received] + [2.0] * (g - 2) + [1.0]
        uses[nic_path(P2P, "tx")], uses[nic_path(P2P, "rx")] = sent, received
    for i in range(g):
        uses[pcie(i, "d2h")], uses[pcie(i, "h2d")] = d2h[i], h2d[i]
    per_rc = params.gpus_per_root_complex
    for r in range(-(-g // per_rc)):
        mine = range(r * per_rc, min(g, (r + 1) * per_rc))
        up, down = sum(d2h[i] for i in mine), sum(h2d[i] for i in mine)
        rc = root_complex(r)
        uses[f"{rc}.up"], uses[f"{rc}.down"], uses[rc] = up, down, up + down
    return Footprint(sent, received, {k: v for k, v in uses.items() if v})


def limits(params: NodeParams) -> dict[str, float]:
    """Every constraint's rate, bytes per second (of `params`' scale): a resource with a rate both
    ways at once (a root complex) is three, NAME.up and NAME.down at its one-way rate and NAME."""
    out = {}
    for name, (rate, duplex) in params.resources().items():
        if duplex is None:
            out[name] = rate
        else:
            out.update({f"{name}.up": rate, f"{name}.down": rate, name: duplex})
    return out


def node_bound(fp: Footprint, params: NodeParams) -> tuple[float, str]:
    """Bytes of data per second the node's hardware allows alone, and the constraint that sets it."""
    rate = limits(params)
    worst = max(fp.uses, key=lambda c: fp.uses[c] / rate[c])
    return rate[worst] / fp.uses[worst], worst
