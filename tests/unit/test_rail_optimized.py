"""Rail-optimized fabrics: NIC i of every node on rail i's leaf, spines above; each NIC sends
from its own address through itself; the drawing lays rails out side by side in their colours."""
import pytest

from emu.errors import TopologyError
from emu.plan import make_plan
from emu.report.topology import draw, layout, rails
from emu.topo import build


def test_nic_i_of_every_node_is_on_rail_i():
    topo = build("rail-optimized", "ro", nodes=4, gpus_per_node=4, spines=2)
    assert all(topo.node(f"c{n}").attrs["gpus"] == 4 for n in range(4))
    assert all(rails(topo, f"c{n}") == ["rail0", "rail1", "rail2", "rail3"] for n in range(4))
    switches = [n for n in topo.graph if topo.node(n).forwards]
    assert sorted(switches) == ["rail0", "rail1", "rail2", "rail3", "spine0", "spine1"]
    assert sorted(topo.graph["spine0"]) == ["rail0", "rail1", "rail2", "rail3"]
    assert len(topo.links()) == 4 * 4 + 4 * 2


def test_a_rail_of_several_leaves_holds_the_nodes_in_equal_runs():
    topo = build("rail-optimized", "ro", nodes=4, gpus_per_node=2, spines=1, leaves_per_rail=2)
    assert rails(topo, "c1") == ["rail0-0", "rail1-0"] and rails(topo, "c2") == ["rail0-1", "rail1-1"]


def test_each_nic_sends_from_its_own_address_through_itself():
    plan = make_plan(build("rail-optimized", "ro", nodes=4, gpus_per_node=4, spines=2, leaves_per_rail=2))
    c0 = plan.node("c0")
    for i, port in enumerate(c0.ports):
        (rule,) = [r for r in c0.rules if r.src == port.addr]
        (default,) = [r for r in c0.routes if r.table == rule.table and r.dst == "default"]
        assert default.nexthops[0][1] == port.ifname and port.peer == f"rail{i}-0"
    # a peer on the same leaves: its NIC i is one hop away through NIC i
    c1_nic2 = plan.node("c1").ports[2].addr
    (direct,) = [r for r in c0.routes if r.dst == f"{c1_nic2}/32" and r.table == 254]
    assert direct.nexthops[0][1] == c0.ports[2].ifname


@pytest.mark.parametrize("params, key", [({"nodes": 0}, "fabric.nodes"), ({"gpus_per_node": True}, "fabric.gpus_per_node"),
                                         ({"nodes": 3, "leaves_per_rail": 2}, "fabric.leaves_per_rail")])
def test_bad_rail_parameters_are_one_line(params, key):
    with pytest.raises(TopologyError, match=key):
        build("rail-optimized", "ro", **params)


def test_the_drawing_puts_rails_side_by_side(tmp_path):
    topo = build("rail-optimized", "ro", nodes=4, gpus_per_node=4, spines=2)
    pos, zones = layout(topo)
    assert [pos[f"rail{i}"] for i in range(4)] == [(float(i), 1.0) for i in range(4)]
    assert [pos[f"c{n}"] for n in range(4)] == [(float(n), 0.0) for n in range(4)]
    draw(topo, str(tmp_path / "ro.png"))
    assert (tmp_path / "ro.png").stat().st_size > 10_000
    # dual-homed storage joins two zones: it has two leaves, but no rails
    two_zone = build("two-zone", "tz")
    assert len(rails(two_zone, "st0")) == 2 and layout(two_zone)[0]["st0"][1] == 0.0


def test_dcn_plus_puts_every_nic_of_a_node_on_its_one_leaf():
    topo = build("dcn-plus", "dcn", nodes=6, gpus_per_node=8, nodes_per_leaf=4, spines=3)
    assert [sorted(topo.graph[f"c{n}"]) for n in (0, 3, 4, 5)] == [["leaf0"], ["leaf0"], ["leaf1"], ["leaf1"]]
    assert topo.link("c0", "leaf0").rate_bps == 8 * topo.default_rate     # its 8 NICs, one bonded link
    assert sorted(topo.graph["spine2"]) == ["leaf0", "leaf1"]
    with pytest.raises(TopologyError, match="fabric.nodes_per_leaf"):
        build("dcn-plus", "dcn", nodes_per_leaf=0)


def test_a_flow_over_a_rail_leaves_by_that_nic_and_hashed_flows_take_one_path_each():
    from emu.model.paths import Fabric
    topo = build("rail-optimized", "ro", nodes=4, gpus_per_node=4, spines=2, leaves_per_rail=2, routing="ecmp")
    plan = make_plan(topo)
    even = Fabric(topo, plan)
    ((path, share),) = even.routes("c0", "c1", 2)            # same leaves: NIC 2, rail 2's leaf, the peer's NIC 2
    assert even.ports[path[0]] == ("c0", plan.node("c0").ports[2].ifname)
    assert [even.ports[i][0] for i in path] == ["c0", "rail2-0"] and share == 1.0
    assert len(even.routes("c0", "c3", 1)) == 2                 # across leaves: split over both spines
    seeds = {Fabric(topo, plan, seed).routes("c0", "c3", 1, flow=7)[0][0][1] for seed in range(16)}
    assert all(len(Fabric(topo, plan, seed).routes("c0", "c3", 1, flow=7)) == 1 for seed in range(4))
    assert len(seeds) == 2                                      # one spine a flow; the seed picks which


def test_dual_tor_gives_each_nic_a_port_on_each_of_its_rails_two_tors():
    topo = build("rail-optimized", "ro", nodes=4, gpus_per_node=2, spines=2, leaves_per_rail=2, ports_per_nic=2)
    assert rails(topo, "c0") == ["rail0-0a", "rail0-0b", "rail1-0a", "rail1-0b"]
    assert rails(topo, "c3") == ["rail0-1a", "rail0-1b", "rail1-1a", "rail1-1b"]
    assert topo.ports_per_nic("c0") == 2 and topo.nics("c0") == 2
    assert sorted(topo.graph["spine1"]) == sorted(f"rail{r}-{j}{s}" for r in range(2) for j in range(2) for s in "ab")
    with pytest.raises(TopologyError, match="fabric.ports_per_nic"):
        build("rail-optimized", "ro", ports_per_nic=3)


def test_ports_per_nic_must_pair_a_hosts_ports_into_whole_nics():
    from emu.topo import topology_from_dict
    doc = {"name": "odd", "nodes": {"c0": {"kind": "compute", "ports_per_nic": 2}, "c1": {"kind": "compute"},
                                    "s0": {"kind": "switch"}, "s1": {"kind": "switch"}, "s2": {"kind": "switch"}},
           "links": [{"endpoints": ["c0", s]} for s in ("s0", "s1", "s2")] + [{"endpoints": ["c1", "s0"]},
                                                                                {"endpoints": ["s0", "s1"]},
                                                                                {"endpoints": ["s1", "s2"]}]}
    with pytest.raises(TopologyError, match=r"nodes\.c0\.ports_per_nic.*3 ports"):
        topology_from_dict(doc)


def test_a_dual_homed_nic_splits_a_flow_over_its_sides_or_hashes_it_onto_one():
    from emu.model.paths import Fabric
    topo = build("rail-optimized", "ro", nodes=4, gpus_per_node=2, spines=2, leaves_per_rail=2, ports_per_nic=2,
                 routing="ecmp")
    plan = make_plan(topo)
    c0 = plan.node("c0").ports
    even = Fabric(topo, plan)
    ways = even.routes("c0", "c1", 1)              # same ToR pair: each side's ToR straight to the peer
    assert sorted((even.ports[p[0]][1], even.ports[p[1]][0], s) for p, s in ways) == \
        [(c0[2].ifname, "rail1-0a", 0.5), (c0[3].ifname, "rail1-0b", 0.5)]
    assert all(len(path) == 2 for path, _ in ways)
    assert sum(s for _, s in even.routes("c0", "c3", 0)) == pytest.approx(1.0)    # across runs: 2 sides x 2 spines
    assert len(even.routes("c0", "c3", 0)) == 4
    sides = {Fabric(topo, plan, seed).routes("c0", "c1", 1, flow=3)[0][0][0] for seed in range(16)}
    assert sides == {even.index[("c0", c0[2].ifname)], even.index[("c0", c0[3].ifname)]}   # one side a flow


def test_the_drawing_colours_a_dual_homed_nics_two_links_alike(tmp_path):
    topo = build("rail-optimized", "ro", nodes=2, gpus_per_node=2, spines=1, ports_per_nic=2)
    pos, _ = layout(topo)
    assert [pos[leaf][1] for leaf in ("rail0a", "rail0b", "rail1a", "rail1b")] == [1.0] * 4
    draw(topo, str(tmp_path / "dual.png"))
    assert (tmp_path / "dual.png").stat().st_size > 10_000
