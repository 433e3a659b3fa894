"""The chain table and file layouts (pure functions)."""
from dataclasses import dataclass

CHUNK_SIZE = 256 * 1024         # the chunk of the files a scenario's storage workloads write and read


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


# A target's state in the cluster manager's routing information (3FS's public/local states, reduced).
SERVING, SYNCING, OFFLINE = "serving", "syncing", "offline"
_RANK = {SERVING: 0, SYNCING: 1, OFFLINE: 2}


@dataclass
class Routing:
    """The cluster manager's routing information: every chain's current order and version, and every
    target's state. Serving targets come first, then syncing ones, then offline ones: writes pass
    serving and syncing targets in order (the last one commits first), reads go to serving ones."""
    version: int
    targets: tuple[int, ...]              # target id -> storage node (as in the table)
    chains: list[list[int]]               # chain id -> target ids in their current order
    chain_versions: list[int]
    states: list[str]                     # target id -> state

    @classmethod
    def initial(cls, table: ChainTable) -> "Routing":
        return cls(1, table.targets, [list(c) for c in table.chains], [1] * len(table.chains),
                   [SERVING] * len(table.targets))

    def node_of(self, target: int) -> int:
        return self.targets[target]

    def path(self, chain: int) -> list[int]:
        """The targets a write to `chain` passes, head first."""
        return [t for t in self.chains[chain] if self.states[t] != OFFLINE]

    def readers(self, chain: int) -> list[int]:
        return [t for t in self.chains[chain] if self.states[t] == SERVING]

    def successor(self, chain: int, target: int) -> int | None:
        path = self.path(chain)
        if target not in path:
            return None
        i = path.index(target)
        return path[i + 1] if i + 1 < len(path) else None

    def chain_of_target(self, target: int) -> int:
        return next(c for c, members in enumerate(self.chains) if target in members)

    def set_state(self, target: int, state: str) -> bool:
        """Change a target's state, keep its chain ordered by state, bump the chain's version.
        Returns whether anything changed (the caller bumps the routing version once per change set)."""
        if self.states[target] == state:
            return False
        self.states[target] = state
        c = self.chain_of_target(target)
        self.chains[c].sort(key=lambda t: _RANK[self.states[t]])     # stable: order within a state kept
        self.chain_versions[c] += 1
        return True

    def to_dict(self) -> dict:
        return {"version": self.version, "targets": list(self.targets), "chains": self.chains,
                "chain_versions": self.chain_versions, "states": self.states}

    @classmethod
    def from_dict(cls, d: dict) -> "Routing":
        return cls(d["version"], tuple(d["targets"]), [list(c) for c in d["chains"]], list(d["chain_versions"]),
                   list(d["states"]))
