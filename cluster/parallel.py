"""Which GPUs form a training job's parallel groups, as SimAI places them (aliyun/SimAI,
MockNcclGroup's constructor), and what each group asks of whole nodes.

Ranks are node-major: node n holds GPUs n*G .. n*G + G - 1. With T the tensor-parallel size, P the
pipeline's, E the expert-parallel's and D = all / (T*P) the data-parallel's:
  tp     T consecutive ranks;
  dp     ranks i + j*T*P (j < D): the same place in every model replica;
  ep     the same place k in E consecutive TP groups (TP group g = a*E + e, e < E);
  dp_ep  the same place k and the same e, over D/E consecutive values of a. (SimAI's loop starts
         a group at each of the first all/T/(D/E) TP groups and so overlaps itself when P > 1;
         this is the partition it evidently means, and the same where it does not overlap.)
  pp     rank r sends to r + T, the next stage of its replica (stage (r // T) % P).

Emu's agents play a node's GPUs in one process, so a group's collective runs node by node: the
group's instances that touch a node all span the same nodes with the same number of members on
each (`NodeGroups`), and one collective over a buffer of `instances` x the bytes carries them
all: its segment s is instance s's data.
"""
from collections import Counter
from dataclasses import dataclass, replace

from cluster.node import NodeParams

KINDS = ("tp", "dp", "ep", "dp_ep")


def groups(kind: str, gpus: int, tp: int, pp: int, ep: int) -> list[list[int]]:
    """Every instance of `kind`'s group, as lists of ranks."""
    dp = gpus // (tp * pp)
    if kind == "tp":
        return [list(range(g * tp, (g + 1) * tp)) for g in range(gpus // tp)]
    if kind == "dp":
        return [[i + j * tp * pp for j in range(dp)] for i in range(tp * pp)]
    tp_groups = gpus // tp
    if kind == "ep":
        return [[(a * ep + e) * tp + k for e in range(ep)] for a in range(tp_groups // ep) for k in range(tp)]
    if kind == "dp_ep":
        span = dp // ep                             # members of a dp_ep group
        return [[((c * span + a) * ep + e) * tp + k for a in range(span)]
                for c in range(tp_groups // (span * ep)) for e in range(ep) for k in range(tp)]
    raise ValueError(f"no group kind {kind!r} (one of {', '.join(KINDS)})")


@dataclass(frozen=True)
class NodeGroups:
    sets: tuple[tuple[int, ...], ...]   # node indices: the nodes each instance spans, one entry per distinct set
    members: int                        # each instance's ranks on each of its nodes
    instances: int                      # instances touching each node (members x instances = GPUs a node)

    def set_of(self, node: int) -> tuple[int, ...]:
        return next(s for s in self.sets if node in s)


def node_groups(kind: str, gpus: int, tp: int, pp: int, ep: int, per_node: int) -> NodeGroups:
    """`kind`'s groups seen from whole nodes of `per_node` GPUs, or ValueError saying why they
    cannot be run node by node."""
    sets, members = set(), set()
    for ranks in groups(kind, gpus, tp, pp, ep):
        on = Counter(r // per_node for r in ranks)
        sets.add(tuple(sorted(on)))
        members.update(on.values())
    if len(members) != 1:
        raise ValueError(f"the {kind} groups have {sorted(members)} members on a node: emu's agents need "
                         "the same number on every node they touch")
    nodes = [n for s in sets for n in s]
    if len(nodes) != len(set(nodes)):
        raise ValueError(f"the {kind} groups of one node reach different sets of nodes: emu's agents need "
                         "every group touching a node to span the same nodes")
    m = members.pop()
    return NodeGroups(tuple(sorted(sets)), m, per_node // m)


def pp_peers(gpus: int, tp: int, pp: int, per_node: int) -> Counter:
    """(node, node of the next stage) -> how many ranks send there at each pipeline boundary."""
    out = Counter()
    for r in range(gpus):
        if (r // tp) % pp < pp - 1:
            out[(r // per_node, (r + tp) // per_node)] += 1
    return out


def member_params(node: NodeParams, members: int) -> NodeParams:
    """The node's hardware as one group's `members` GPUs see it when they play every instance of
    the group on the node at once (NodeGroups): each stands for `instances` real GPUs, one per
    instance, so its PCIe and NVLink links are that many links, and the root complexes the real
    GPUs hang from are shared out among the members'. Host memory and the GPU-NIC path stay the
    node's one."""
    instances = node.gpus // members
    rcs = -(-node.gpus // node.gpus_per_root_complex) / -(-members // node.gpus_per_root_complex)
    return replace(node, gpus=members, nics=1, pcie_bps=node.pcie_bps * instances,
                   nvlink_bps=node.nvlink_bps * instances, root_complex_bps=node.root_complex_bps * rcs,
                   root_complex_duplex_bps=node.root_complex_duplex_bps * rcs)
