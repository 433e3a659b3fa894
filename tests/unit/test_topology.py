import textwrap

import networkx as nx
import pytest

from emu.errors import TopologyError
from emu.topo import build, load_topology, topology_from_dict

EXPLICIT = {
    "name": "mini", "scale": 0.001,
    "nodes": {"c0": {"kind": "compute", "gpus": 4}, "st0": {"kind": "storage"}, "leaf0": {"kind": "switch"}},
    "links": [{"endpoints": ["c0", "leaf0"]}, {"endpoints": ["st0", "leaf0"], "rate": "400Gbit"}],
}


def test_explicit_form():
    t = topology_from_dict(EXPLICIT)
    assert t.node("c0").attrs["gpus"] == 4
    assert t.link("st0", "leaf0").rate_bps == 400 * 10**9
    assert t.emulated_rate(t.link("c0", "leaf0")) == 200 * 10**6
    assert t.link("c0", "leaf0").buffer_bytes == 128 * 1024


@pytest.mark.parametrize("kind,params,hosts,switches,links", [
    ("star", {"hosts": 16}, 16, 1, 16),
    ("star", {"hosts": 4, "storage": 2}, 6, 1, 6),
    ("leaf-spine", {"leaves": 8, "spines": 4, "hosts_per_leaf": 8}, 64, 12, 64 + 32),
    ("fat-tree", {"leaves": 4, "spines": 2, "hosts_per_leaf": 2, "storage_per_leaf": 1}, 12, 6, 12 + 8),
    ("two-zone", {"leaves": 2, "spines": 2, "hosts_per_leaf": 2, "storage": 2, "interzone_links": 1},
     10, 8, 2 * (4 + 4) + 2 * 2 + 1),
])
def test_builder_counts(kind, params, hosts, switches, links):
    t = build(kind, "b", **params)
    assert (len(t.hosts()), len(t.switches()), len(t.links())) == (hosts, switches, links)


def test_the_whole_fire_flyer_2_network():
    """Section III-B: two 800-port zones of 40-port switches (40 leaves, 20 spines each: 120 of
    Table III's 122), ~600 compute nodes per zone, 180 storage nodes with a NIC in each zone."""
    from pathlib import Path
    t = load_topology(Path(__file__).parents[2] / "topologies" / "fire-flyer-2.yaml")
    kinds = [n.kind for n in t.nodes()]
    assert (kinds.count("switch"), kinds.count("compute"), kinds.count("storage")) == (120, 1200, 180)
    for zone in ("za-", "zb-"):
        leaves = [n.name for n in t.switches() if n.name.startswith(zone + "leaf")]
        assert len(leaves) == 40
        # every leaf: 20 uplinks, and at most 20 host ports (a 40-port switch)
        assert all(sum(1 for p in t.graph[leaf] if "spine" in p) == 20 for leaf in leaves)
        assert all(sum(1 for p in t.graph[leaf] if "spine" not in p) <= 20 for leaf in leaves)


def test_table_threes_three_layer_fat_tree_of_1600_ports_has_200_switches():
    """Table III: 1,600 access points in a three-layer fat-tree of 40-port switches: 40 core and
    160 spine and leaf switches. Every switch uses all 40 ports; every leaf reaches every core."""
    t = build("three-layer", "tl", pods=4, leaves_per_pod=20, spines_per_pod=20, cores=40, hosts_per_leaf=20)
    names = [n.name for n in t.switches()]
    assert len(t.hosts()) == 1600 and len(names) == 200
    assert sum(1 for n in names if n.startswith("core")) == 40
    assert all(len(t.graph[n]) == 40 for n in names)
    assert nx.shortest_path_length(t.graph, "p0-leaf0", "p3-leaf19") == 4     # leaf, spine, core, spine, leaf


def test_a_three_layer_fat_tree_refuses_cores_that_do_not_form_groups():
    with pytest.raises(TopologyError, match="fabric.cores"):
        build("three-layer", "tl", pods=2, leaves_per_pod=4, spines_per_pod=4, cores=6)


def test_two_zone_storage_is_dual_homed():
    t = build("two-zone", "ff", leaves=2, spines=2, storage=3)
    for st in (n for n in t.hosts() if n.kind == "storage"):
        peers = sorted(t.graph[st.name])
        assert len(peers) == 2 and peers[0].startswith("za-") and peers[1].startswith("zb-")


def write(tmp_path, text):
    path = tmp_path / "topo.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text,key,reason", [
    ("name: x\nnodes: {a: {kind: router}}\nlinks: []\n", "nodes.a.kind", "unknown kind"),
    ("name: x\ncolour: red\nnodes: {}\nlinks: []\n", "colour", "unknown key"),
    ("name: x\nnodes: {a: {kind: compute}, s: {kind: switch}}\nlinks: [{endpoints: [a, s], rate: 10Gbps}]\n",
     "links[0].rate", "bad rate"),
    ("name: x\nnodes: {a: {kind: compute}, s: {kind: switch}}\nlinks: [{endpoints: [a, z]}]\n",
     "links[0].endpoints", "unknown node 'z'"),
    ("name: x\nnodes: {a: {kind: compute}, b: {kind: compute}, s: {kind: switch}, t: {kind: switch}}\n"
     "links: [{endpoints: [a, s]}, {endpoints: [b, t]}]\n", "links", "disconnected"),
    ("name: averyveryverylongname\nnodes: {a: {kind: compute}, s: {kind: switch}}\nlinks: [{endpoints: [a, s]}]\n",
     "name", "too long"),
    ("name: x\nnodes: {a: {kind: compute}, s: {kind: switch}}\nlinks: [{endpoints: [a, s]}, {endpoints: [s, a]}]\n",
     "links[1].endpoints", "duplicate link"),
    ("name: x\nnodes: {a: {kind: compute, gpus: 0}, s: {kind: switch}}\nlinks: [{endpoints: [a, s]}]\n",
     "nodes.a.gpus", "positive integer"),
    ("name: x\nnodes: {a: {kind: compute, colour: red}, s: {kind: switch}}\nlinks: [{endpoints: [a, s]}]\n",
     "nodes.a.colour", "unknown key"),
    ("name: x\nfabric: {type: leaf-spine, leafs: 2}\n", "fabric.leafs", "unknown parameter"),
    ("name: x\nfabric: {type: torus}\n", "fabric.type", "unknown fabric type"),
    ("name: x\nrouting: {mode: ospf}\nfabric: {type: star}\n", "routing.mode", "unknown mode"),
    ("name: x\nqos: {vlarb: {0: 10}}\nfabric: {type: star}\n", "qos.vlarb", "VL 1"),
    ("name: x\nscale: 2\nfabric: {type: star}\n", "scale", "(0, 1]"),
    ("name: x\nnodes: {a: {kind: compute}, b: {kind: compute}}\nlinks: [{endpoints: [a, b]}]\n",
     "links", "hosts connect to switches"),
    ("name: [x\n", "line 2", "not valid YAML"),
])
def test_bad_input_names_file_key_reason(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as e:
        load_topology(path)
    assert e.value.source == str(path)
    assert e.value.key == key
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{path}: {key}: ")


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "nope.yaml")


def test_shipped_topologies_load():
    from pathlib import Path
    files = sorted((Path(__file__).parents[2] / "topologies").glob("*.yaml"))
    assert files
    for f in files:
        assert load_topology(f).name


def test_roundtrip_through_dict():
    t = build("two-zone", "ff", leaves=2, spines=2, storage=2)
    again = topology_from_dict(t.to_dict())
    assert [(l.a, l.b, l.rate_bps, l.buffer_bytes) for l in again.links()] == \
           [(l.a, l.b, l.rate_bps, l.buffer_bytes) for l in t.links()]
    assert again.qos == t.qos


def test_leaf_spine_puts_storage_on_leaves_of_its_own():
    topo = build("leaf-spine", "sl", leaves=4, spines=2, hosts_per_leaf=3, storage_leaves=1)
    on = {leaf: sorted(topo.node(h).kind for h in topo.graph[leaf] if not topo.node(h).forwards)
          for leaf in ("leaf0", "leaf3")}
    assert on == {"leaf0": ["compute"] * 3, "leaf3": ["storage"] * 3}
    assert [n.name for n in topo.hosts() if n.kind == "storage"] == ["st0", "st1", "st2"]
    assert build("fat-tree", "ft", storage_leaves=1).to_dict()["nodes"] == \
        build("leaf-spine", "ft", storage_leaves=1).to_dict()["nodes"]       # one builder, two names
    with pytest.raises(TopologyError, match="storage_leaves: must be at most leaves"):
        build("leaf-spine", "sl", leaves=2, storage_leaves=3)
