"""The plan stage: deterministic, JSON round trip, rendering from a kept plan, `emu topo plan`."""
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from emu.backends import Layout, Place, lay_out
from emu.cli import main
from emu.fabric.render import render
from emu.plan import LabPlan, make_plan
from emu.topo import build, load_topology

TOPOLOGIES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml"))
SHAPES = [build("two-zone", "tz", leaves=2, spines=2, hosts_per_leaf=2, storage=2),
          build("leaf-spine", "ec", leaves=3, spines=2, hosts_per_leaf=2, routing="ecmp", scale=0.01)]


def lines(batch) -> list:
    return [batch.create_lines] + [(ns.netns, ns.ip_lines, ns.tc_lines, ns.sysctls) for ns in batch.namespaces]


@pytest.mark.parametrize("topo", SHAPES, ids=lambda t: t.name)
def test_make_plan_is_deterministic_and_round_trips_json(topo):
    plan = make_plan(topo)
    assert make_plan(topo) == plan
    text = json.dumps(plan.to_dict())
    again = LabPlan.from_dict(json.loads(text))
    assert again == plan
    assert json.dumps(again.to_dict()) == text
    assert plan.to_dict() == asdict(plan)           # the hand-made conversion is asdict's, faster


@pytest.mark.parametrize("topo", SHAPES, ids=lambda t: t.name)
def test_rendering_a_plan_loaded_from_json_gives_the_same_lines(topo):
    plan = make_plan(topo)
    kept = LabPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert lines(render(kept)) == lines(render(plan))


def test_the_plan_holds_what_the_kernel_gets():
    plan = make_plan(build("two-zone", "pz", leaves=1, spines=1, hosts_per_leaf=1, storage=1, scale=0.001))
    st = plan.node("st0")
    assert [p.peer for p in st.ports] == ["za-leaf0", "zb-leaf0"] and len(st.rules) == 2
    assert all(p.rate_bps == 200_000_000 and p.real_rate_bps == 200 * 10**9 for p in st.ports)
    assert [q.vl for q in st.ports[0].queues] == [0, 1, 2, 3]
    assert plan.filters == ((0x20, 1), (0x40, 2), (0x60, 3))
    assert plan.nic_bps("st0") == 400_000_000


def test_the_plan_says_what_the_lab_is_and_the_layout_where():
    """No kernel fact in the plan (namespaces, marks, sysctls, GSO): those are the backend's."""
    plan = make_plan(build("star", "lo", hosts=2))
    text = json.dumps(plan.to_dict())
    assert not any(word in text for word in ("netns", "emu-lo-", "sysctl", "gso", "emu:lo"))
    layout = lay_out("lo", [n.name for n in plan.nodes])
    assert layout.place("c0") == Place("local", "emu-lo-c0") and layout.backend == "kernel"
    assert Layout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout
    # a layout may put nodes elsewhere (another machine, no namespace of their own): the plan is the same
    elsewhere = Layout("kernel", "lo", {n.name: Place("m1", None) for n in plan.nodes})
    assert Layout.from_dict(elsewhere.to_dict()).place("sw0") == Place("m1", None)


@pytest.mark.heavy
@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_topo_plan_works_on_every_shipped_topology(path):
    # fire-flyer-2's JSON (32 MB) round-trips as every other's does: checked on the others, it costs
    # ~8 s under the suite's load here
    flags = ("", "--lines") if path.name == "fire-flyer-2.yaml" else ("", "--json", "--lines")
    out = {}
    for flag in flags:
        result = CliRunner().invoke(main, ["topo", "plan", str(path)] + ([flag] if flag else []))
        assert result.exit_code == 0, result.output
        out[flag] = result.output
    plan = make_plan(load_topology(path))
    if "--json" in out:
        assert LabPlan.from_dict(json.loads(out["--json"])) == plan
    assert set(render(plan).create_lines) <= set(out["--lines"].splitlines())


def test_drawing_leaves_the_topology_as_it_was(tmp_path):
    from emu.report.topology import draw
    topo = build("leaf-spine", "dr", leaves=2, spines=2, hosts_per_leaf=2)
    before = {n: dict(d) for n, d in topo.graph.nodes(data=True)}
    draw(topo, str(tmp_path / "g.png"))
    assert {n: dict(d) for n, d in topo.graph.nodes(data=True)} == before
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_diff_names_each_change_against_a_fresh_plan():
    from dataclasses import replace

    from emu.plan.diff import diff
    plan = make_plan(build("leaf-spine", "df", leaves=2, spines=2, hosts_per_leaf=1))
    assert diff(plan, make_plan(build("leaf-spine", "df", leaves=2, spines=2, hosts_per_leaf=1))) == []
    leaf = plan.node("leaf0")
    port = leaf.ports[0]
    queues = (replace(port.queues[0], rate_bps=1000),) + port.queues[1:]
    changed = plan.with_node(replace(leaf, routes=leaf.routes[1:],
                                     ports=(replace(port, up=False, queues=queues),) + leaf.ports[1:]))
    lines = diff(changed, plan)
    assert len(lines) == 3
    assert lines[0].startswith(f"leaf0: route {leaf.routes[0].dst} (table 254): none -> ")
    assert f"leaf0:{port.ifname}: down -> up" in lines
    assert any("VL0: rate/ceil 1000/" in line for line in lines)
