"""The chain table and file layouts (pure functions)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ChainTable:
    nodes: int                       # storage nodes
    targets: tuple[int, ...]         # target id -> storage node
    chains: tuple[tuple[int, ...], ...]   # chain id -> target ids, head first

    def node_of(self, target: int) -> int:
        return self.targets[target]

    def to_dict(self) -> dict:
        return {"nodes": self.nodes, "targets": list(self.targets), "chains": [list(c) for c in self.chains]}

    @classmethod
    def from_dict(cls, d: dict) -> "ChainTable":
        return cls(d["nodes"], tuple(d["targets"]), tuple(tuple(c) for c in d["chains"]))


def build_chain_table(nodes: int, targets_per_node: int, replicas: int) -> ChainTable:
    """Lay the targets out round robin over the nodes (0, 1, ..., n-1, 0, 1, ...) and cut that
    sequence into chains of `replicas` consecutive targets. Every node holds the same number of
    targets, and any `replicas` <= nodes consecutive targets sit on distinct nodes."""
    if not 1 <= replicas <= nodes:
        raise ValueError(f"replicas must be between 1 and the number of storage nodes ({nodes}), got {replicas}")
    total = nodes * targets_per_node
    if total % replicas:
        raise ValueError(f"{nodes} nodes x {targets_per_node} targets do not divide into chains of {replicas}")
    targets = tuple(t % nodes for t in range(total))
    chains = tuple(tuple(range(c * replicas, (c + 1) * replicas)) for c in range(total // replicas))
    return ChainTable(nodes, targets, chains)


@dataclass(frozen=True)
class Layout:
    chunk_size: int
    chains: tuple[int, ...]     # the file's stripe: chunk i lives on chains[i % len(chains)]
    size: int
    inode: int = 0              # the file's id: chunk keys on a target are (inode, index)

    def key(self, chunk: int) -> str:
        return f"{self.inode}/{chunk}"

    def chain_of(self, chunk: int) -> int:
        return self.chains[chunk % len(self.chains)]

    def chunks(self) -> int:
        return -(-self.size // self.chunk_size)


def file_layout(table: ChainTable, size: int, chunk_size: int, stripe: int, offset: int, inode: int = 0) -> Layout:
    """Take `stripe` consecutive chains from the table, starting at `offset` (wrapping)."""
    k = min(stripe, len(table.chains))
    return Layout(chunk_size, tuple((offset + i) % len(table.chains) for i in range(k)), size, inode)
