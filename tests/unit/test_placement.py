"""Where a lab's nodes run when it spans several machines (emu.topo.placement): whole zones when
they balance, pinned nodes where pinned, every node once, and the links that cross."""
import pytest
from click.testing import CliRunner

from emu.cli import main
from emu.errors import TopologyError
from emu.plan import make_plan
from emu.topo import build, load_topology
from emu.topo.loader import topology_from_dict
from emu.topo.placement import place

MINI = "topologies/fire-flyer-mini.yaml"


def test_the_two_zones_go_to_two_machines_and_only_their_joins_cross():
    topo = load_topology(MINI)
    p = place(topo, 2)
    assert {n for n in p.of if n.startswith("za-")} <= set(p.nodes_on(p.of["za-c0"]))
    assert {n for n in p.of if n.startswith("zb-")} <= set(p.nodes_on(p.of["zb-c0"]))
    assert p.of["za-c0"] != p.of["zb-c0"]
    # the spines' link between the zones, and each dual-homed storage node's NIC in the other zone
    assert sorted(p.crossing(topo)) == [("st0", "zb-leaf0"), ("st1", "zb-leaf1"), ("za-spine0", "zb-spine0")]


@pytest.mark.parametrize("fabric,machines", [("leaf-spine", 3), ("leaf-spine", 4), ("three-layer", 2), ("star", 1)])
def test_every_node_is_placed_once_and_no_machine_is_empty(fabric, machines):
    topo = build(fabric, "pl")
    p = place(topo, machines)
    assert set(p.of) == set(topo.graph.nodes) and set(p.of.values()) == set(range(machines))
    sizes = [len(p.nodes_on(k)) for k in range(machines)]
    assert max(sizes) <= 2 * len(topo.graph) / machines + 2, sizes


def test_a_pinned_node_stays_and_a_pin_beyond_the_machines_is_refused():
    doc = load_topology(MINI).to_dict()
    doc["nodes"]["za-c0"]["machine"] = 1
    topo = topology_from_dict(doc, "t.yaml")
    assert topo.node("za-c0").attrs["machine"] == 1
    assert place(topo, 2).of["za-c0"] == 1
    with pytest.raises(TopologyError, match=r"nodes\.za-c0\.machine: machine 1 is not among the 1 \(0\.\.0\)"):
        place(topo, 1)
    assert make_plan(topo).to_dict()["nodes"] == make_plan(load_topology(MINI)).to_dict()["nodes"]


def test_topo_plan_shows_the_machines_and_the_crossing_links():
    out = CliRunner().invoke(main, ["topo", "plan", MINI, "--machines", "2"])
    assert out.exit_code == 0, out.output
    assert "3 of 21 links cross machines" in out.output and "za-spine0 <-> zb-spine0" in out.output
    bad = CliRunner().invoke(main, ["topo", "plan", MINI, "--machines", "0"])
    assert bad.exit_code == 1 and "machines: must be a positive number of machines" in bad.output
