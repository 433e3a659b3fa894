"""Topology generators: star, two-layer leaf-spine (fat-tree), a three-layer fat-tree, the paper's
two-zone design and its next-generation multi-plane network (section IX), and a rail-optimized
fabric (a leaf per GPU index).

Each builder adds nodes and links to a Topology and is reachable from YAML as
`fabric: {type: NAME, ...params}` and from Python as `build(NAME, name=..., **params)`.
Hosts are numbered leaf by leaf, so destination indices are contiguous per leaf
(as LIDs are in a real subnet), which is what d-mod-k routing expects.
"""
import inspect

from emu.errors import TopologyError
from emu.topo.model import Topology


def star(topo: Topology, hosts: int = 4, storage: int = 0) -> None:
    """One switch, `hosts` compute nodes c0.. and `storage` storage nodes st0.. (an incast star)."""
    topo.add_node("sw0", "switch")
    for i in range(hosts):
        topo.add_node(f"c{i}", "compute")
        topo.add_link(f"c{i}", "sw0")
    for i in range(storage):
        topo.add_node(f"st{i}", "storage")
        topo.add_link(f"st{i}", "sw0")


def leaf_spine(topo: Topology, leaves: int = 2, spines: int = 2, hosts_per_leaf: int = 2,
               storage_per_leaf: int = 0, storage_leaves: int = 0, uplink_rate=None, prefix: str = "") -> None:
    """A two-layer fat-tree (a leaf-spine Clos; `fat-tree` is the same builder): every leaf links
    to every spine. Leaves hold `hosts_per_leaf` compute nodes and `storage_per_leaf` storage
    nodes, except the last `storage_leaves` of them, which hold `hosts_per_leaf` storage nodes
    only (storage on leaves of its own, as 3FS clusters are often cabled)."""
    if storage_leaves > leaves:
        raise TopologyError(topo.source, "fabric.storage_leaves", f"must be at most leaves ({leaves})")
    for s in range(spines):
        topo.add_node(f"{prefix}spine{s}", "switch")
    numbers = {"compute": 0, "storage": 0}
    names = {"compute": f"{prefix}c", "storage": f"{prefix}st"}

    def attach(kind: str, leaf: str, count: int) -> None:
        for _ in range(count):
            name = f"{names[kind]}{numbers[kind]}"
            topo.add_node(name, kind)
            topo.add_link(name, leaf)
            numbers[kind] += 1
    for l in range(leaves):
        leaf = f"{prefix}leaf{l}"
        topo.add_node(leaf, "switch")
        for s in range(spines):
            topo.add_link(leaf, f"{prefix}spine{s}", rate=uplink_rate)
        if l < leaves - storage_leaves:
            attach("compute", leaf, hosts_per_leaf)
            attach("storage", leaf, storage_per_leaf)
        else:
            attach("storage", leaf, hosts_per_leaf)


def two_zone(topo: Topology, leaves: int = 2, spines: int = 2, hosts_per_leaf: int = 2,
             storage: int = 2, interzone_links: int = 1) -> None:
    """Fire-Flyer 2's network (section III-B): two leaf-spine zones (za-, zb-), storage
    nodes st0.. with one NIC in each zone, and a few spine-to-spine links between zones."""
    if not 1 <= interzone_links <= spines:
        raise TopologyError(topo.source, "fabric.interzone_links", f"must be between 1 and spines ({spines})")
    for zone in ("za-", "zb-"):
        leaf_spine(topo, leaves, spines, hosts_per_leaf, prefix=zone)
    for i in range(storage):
        topo.add_node(f"st{i}", "storage")
        # Spread storage NICs over the leaves of each zone, NIC 0 in zone a, NIC 1 in zone b.
        topo.add_link(f"st{i}", f"za-leaf{i % leaves}")
        topo.add_link(f"st{i}", f"zb-leaf{i % leaves}")
    for s in range(interzone_links):
        topo.add_link(f"za-spine{s}", f"zb-spine{s}")


def three_layer(topo: Topology, pods: int = 2, leaves_per_pod: int = 2, spines_per_pod: int = 2, cores: int = 2,
                hosts_per_leaf: int = 2) -> None:
    """A three-layer fat-tree (the paper's Table III alternative): in each pod every leaf links to
    every spine; spine j of every pod links to every core of core group j mod G, where the
    `cores` form G = cores / (uplinks per spine) groups and a spine has as many uplinks as its
    pod has leaves. The paper's 1,600-port case: 4 pods of 20 leaves and 20 spines, 40 cores."""
    per_group = leaves_per_pod
    if not per_group or cores % per_group or spines_per_pod % (cores // per_group or 1):
        raise TopologyError(topo.source, "fabric.cores", f"must be a multiple of leaves_per_pod ({leaves_per_pod}) "
                                                         f"whose groups divide spines_per_pod ({spines_per_pod})")
    groups = cores // per_group
    for c in range(cores):
        topo.add_node(f"core{c}", "switch")
    for p in range(pods):
        leaf_spine(topo, leaves_per_pod, spines_per_pod, hosts_per_leaf, prefix=f"p{p}-")
        for j in range(spines_per_pod):
            g = j % groups
            for c in range(g * per_group, (g + 1) * per_group):
                topo.add_link(f"p{p}-spine{j}", f"core{c}")


def multi_plane_layout(planes: int, radix: int, nics: int, nodes: int | None = None):
    """Section IX's next-generation network as a layout: `planes` two-layer fat-trees of
    `radix`-port switches (each plane: up to `radix` leaves with radix/2 ports down and radix/2 up,
    radix/2 spines), and compute nodes with `nics` NICs (one per GPU) of which NIC i is on plane
    i mod planes. A node's NICs on one plane (its rails) land on different leaves. Yields
    ("switch", name), ("compute", name) and ("link", a, b) in building order (a host's links in
    NIC order); `nodes` defaults to as many as the planes hold."""
    if planes < 1 or nics < 1 or nics % planes:
        raise ValueError(f"nics ({nics}) must be a positive multiple of planes ({planes})")
    if radix < 2 or radix % 2:
        raise ValueError(f"radix must be an even number of ports, got {radix}")
    down, rails = radix // 2, nics // planes
    capacity = radix * down // rails                 # nodes one plane's leaves hold
    nodes = capacity if nodes is None else nodes
    if not 1 <= nodes <= capacity:
        raise ValueError(f"{planes} planes of {radix}-port switches hold 1..{capacity} nodes of {nics} NICs, "
                         f"not {nodes}")
    if rails > 1 and nodes < down:
        raise ValueError(f"with {rails} NICs per plane a node needs its own leaf per rail: at least {down} nodes")
    leaves = -(-nodes * rails // down)
    for p in range(planes):
        for s in range(down):
            yield "switch", f"p{p}-spine{s}"
        for l in range(leaves):
            yield "switch", f"p{p}-leaf{l}"
            for s in range(down):
                yield "link", f"p{p}-leaf{l}", f"p{p}-spine{s}"
    for n in range(nodes):
        yield "compute", f"c{n}"
        for i in range(nics):
            plane, rail = i % planes, i // planes
            yield "link", f"c{n}", f"p{plane}-leaf{(rail * nodes + n) // down}"


def multi_plane(topo: Topology, planes: int = 2, radix: int = 4, nics: int = 2, nodes: int = 0) -> None:
    """`multi_plane_layout` as a lab (nodes 0: as many as the planes hold), of nodes with one
    GPU per NIC (1:1, as section IX's node)."""
    try:
        layout = list(multi_plane_layout(planes, radix, nics, nodes or None))
    except ValueError as e:
        raise TopologyError(topo.source, "fabric", str(e)) from None
    for item in layout:
        if item[0] == "link":
            topo.add_link(item[1], item[2])
        else:
            topo.add_node(item[1], item[0], **({"gpus": nics} if item[0] == "compute" else {}))


def rail_optimized(topo: Topology, nodes: int = 4, gpus_per_node: int = 8, spines: int = 2,
                   leaves_per_rail: int = 1, ports_per_nic: int = 1) -> None:
    """A rail-optimized fabric, as AI clusters are cabled (and AICB's workloads are studied on):
    compute nodes c0.. of `gpus_per_node` GPUs with a NIC each, NIC i of every node on rail i
    (its leaf rail{i}, or, with `leaves_per_rail` > 1, leaves rail{i}-{j} holding the nodes in
    equal runs), every leaf linked to each spine. GPUs of one index meet on their rail's leaf;
    any other pair crosses a spine. With `ports_per_nic` 2 (dual-ToR, as SimAI's templates and
    Alibaba's HPN cable it), each NIC has two ports, each on a ToR of its own in the rail
    (rail{i}a and rail{i}b): a rail holds twice the leaves, a NIC twice the rate."""
    for key, value in (("nodes", nodes), ("gpus_per_node", gpus_per_node), ("spines", spines),
                       ("leaves_per_rail", leaves_per_rail), ("ports_per_nic", ports_per_nic)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TopologyError(topo.source, f"fabric.{key}", f"must be a positive integer, got {value!r}")
    if nodes % leaves_per_rail:
        raise TopologyError(topo.source, "fabric.leaves_per_rail",
                            f"must divide nodes ({nodes}): each leaf of a rail holds as many nodes")
    if ports_per_nic > 2:
        raise TopologyError(topo.source, "fabric.ports_per_nic", f"must be 1 or 2 (dual-ToR), got {ports_per_nic}")
    per_leaf = nodes // leaves_per_rail
    sides = [""] if ports_per_nic == 1 else ["a", "b"]
    for s in range(spines):
        topo.add_node(f"spine{s}", "switch")

    def leaf(rail: int, run: int, side: str) -> str:
        return (f"rail{rail}" if leaves_per_rail == 1 else f"rail{rail}-{run}") + side
    for rail in range(gpus_per_node):
        for run in range(leaves_per_rail):
            for side in sides:
                topo.add_node(leaf(rail, run, side), "switch")
                for s in range(spines):
                    topo.add_link(leaf(rail, run, side), f"spine{s}")
    for n in range(nodes):
        topo.add_node(f"c{n}", "compute", gpus=gpus_per_node, **({"ports_per_nic": 2} if ports_per_nic == 2 else {}))
        for rail in range(gpus_per_node):       # NIC i, in NIC order: its ports are rail i's
            for side in sides:
                topo.add_link(f"c{n}", leaf(rail, n // per_leaf, side))


def dcn_plus(topo: Topology, nodes: int = 4, gpus_per_node: int = 8, nodes_per_leaf: int = 2, spines: int = 2) -> None:
    """SimAI's DCN+ single-ToR layout, the other to rail-optimized: every NIC of a node on the
    node's one leaf (`nodes_per_leaf` nodes a leaf), every leaf under every spine. The
    Topology holds one link per pair of nodes, so a node's `gpus_per_node` NICs are one link of
    that many times the rate (a bond); a flow still takes one path, hashed per flow, above it."""
    for key, value in (("nodes", nodes), ("gpus_per_node", gpus_per_node), ("nodes_per_leaf", nodes_per_leaf),
                       ("spines", spines)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TopologyError(topo.source, f"fabric.{key}", f"must be a positive integer, got {value!r}")
    for s in range(spines):
        topo.add_node(f"spine{s}", "switch")
    for leaf in range(-(-nodes // nodes_per_leaf)):
        topo.add_node(f"leaf{leaf}", "switch")
        for s in range(spines):
            topo.add_link(f"leaf{leaf}", f"spine{s}")
    for n in range(nodes):
        topo.add_node(f"c{n}", "compute", gpus=gpus_per_node)
        topo.add_link(f"c{n}", f"leaf{n // nodes_per_leaf}", rate=topo.default_rate * gpus_per_node)


BUILDERS = {"star": star, "leaf-spine": leaf_spine, "fat-tree": leaf_spine, "two-zone": two_zone,
            "three-layer": three_layer, "multi-plane": multi_plane, "rail-optimized": rail_optimized,
            "dcn-plus": dcn_plus}


def apply_builder(topo: Topology, kind: str, params: dict, key: str = "fabric") -> Topology:
    """Run builder `kind` with `params`, refusing unknown builders and parameters by key."""
    if kind not in BUILDERS:
        raise TopologyError(topo.source, f"{key}.type", f"unknown fabric type {kind!r} (one of {', '.join(BUILDERS)})")
    builder = BUILDERS[kind]
    accepted = inspect.signature(builder).parameters
    for param, value in params.items():
        if param not in accepted or param in ("topo", "prefix"):
            allowed = ", ".join(p for p in accepted if p not in ("topo", "prefix"))
            raise TopologyError(topo.source, f"{key}.{param}", f"unknown parameter for {kind} (allowed: {allowed})")
        if param != "uplink_rate" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise TopologyError(topo.source, f"{key}.{param}", f"must be a non-negative integer, got {value!r}")
    builder(topo, **params)
    return topo.validate()


def build(kind: str, name: str, **params) -> Topology:
    """Python entry point: build('leaf-spine', 'ls', leaves=8, spines=4, hosts_per_leaf=8, scale=0.01)."""
    topo_keys = {k: params.pop(k) for k in ("scale", "routing", "qos", "rate", "buffer", "backend") if k in params}
    return apply_builder(Topology(name, source=f"<{kind} builder>", **topo_keys), kind, params)
