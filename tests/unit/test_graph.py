"""The topology drawing as data: where each node goes, and the text forms."""
import pytest
from click.testing import CliRunner

from emu.cli import main
from emu.errors import EmuError
from emu.plan import make_plan
from emu.topo.builders import build
from emu.report.topology import dot, layout, mermaid, output_format, write


def two_zone():
    return build("two-zone", "tz", leaves=2, spines=2, hosts_per_leaf=3, storage=2, interzone_links=1)


def test_zones_side_by_side_with_storage_between_them():
    topo = two_zone()
    pos, zones = layout(topo)
    assert [z.switches[0] for z in zones] == ["za-leaf0", "zb-leaf0"]
    xs = {prefix: [x for n, (x, _) in pos.items() if n.startswith(prefix)] for prefix in ("za-", "st", "zb-")}
    assert max(xs["za-"]) < min(xs["st"]) and max(xs["st"]) < min(xs["zb-"])
    for zone in zones:
        inside = [pos[s][0] for s in zone.switches]
        assert zone.x0 <= min(inside) and max(inside) <= zone.x1


def test_layers_and_hosts_under_their_leaf():
    topo = two_zone()
    pos, _ = layout(topo)
    assert {pos[n.name][1] for n in topo.hosts()} == {0.0}
    assert {n: pos[n][1] for n in ("za-leaf1", "za-spine0", "zb-spine1")} == {"za-leaf1": 1.0, "za-spine0": 2.0,
                                                                              "zb-spine1": 2.0}
    for leaf in ("za-leaf0", "za-leaf1", "zb-leaf0", "zb-leaf1"):
        own = sorted(pos[h][0] for h in topo.graph[leaf] if h.startswith(leaf[:3]) and "leaf" not in h
                     and "spine" not in h)
        assert len(own) == 3
        assert pos[leaf][0] == pytest.approx(sum(own) / 3)          # over the middle of its hosts
        assert own == [own[0], own[0] + 1, own[0] + 2]               # side by side, nothing between
    hosts_in_order = sorted((n.name for n in topo.hosts() if n.kind == "compute"), key=lambda n: pos[n][0])
    assert hosts_in_order[:6] == [f"za-c{i}" for i in range(6)]


def test_a_link_inside_one_layer_is_an_arc_over_the_top():
    pos, _ = layout(two_zone())
    assert pos["za-spine0"][1] == pos["zb-spine0"][1]     # drawn with a curve, not through za-spine1
    assert pos["za-spine0"][0] < pos["za-spine1"][0] < pos["zb-spine0"][0]


def test_planes_and_pods():
    pos, zones = layout(build("multi-plane", "mp", planes=2, radix=4, nics=2))
    assert [z.label for z in zones] == ["p0-* (zone 1)", "p1-* (zone 2)"]
    hosts = [x for n, (x, y) in pos.items() if y == 0]
    assert zones[0].x1 < min(hosts) and max(hosts) < zones[1].x0      # every node joins both planes
    pos, zones = layout(build("three-layer", "tl"))
    assert len(zones) == 1 and {pos[f"core{i}"][1] for i in range(2)} == {3.0}


def test_text_forms_carry_every_node_link_and_port():
    topo = two_zone()
    plan = make_plan(topo, "tz")
    text = dot(topo, plan)
    assert text.count(" -- ") == len(topo.links()) and "cluster_1" in text
    a, a_if, b, b_if = plan.links[0]
    assert (f'"{a}" -- "{b}" [label="{a_if} - {b_if}"' in text) or (f'"{b}" -- "{a}" [label="{b_if} - {a_if}"' in text)
    flow = mermaid(topo)
    assert flow.count(" --- ") == len(topo.links()) and flow.count("subgraph") == 2
    assert all(f'"{n}"' in flow for n in topo.graph)


def test_picture_and_bad_outputs(tmp_path):
    topo = two_zone()
    write(topo, str(tmp_path / "g.png"), plan=make_plan(topo, "tz"))
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(EmuError, match="unknown format 'jpg'"):
        output_format(str(tmp_path / "g.jpg"))
    with pytest.raises(EmuError, match="does not exist"):
        output_format(str(tmp_path / "nowhere" / "g.png"))


def test_cli_refuses_in_one_line_and_draws_text(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["topo", "graph", "topologies/fire-flyer-mini.yaml", "-o", str(tmp_path / "x" / "g.png")])
    assert bad.exit_code == 1 and "does not exist" in bad.output and "Traceback" not in bad.output
    neither = runner.invoke(main, ["topo", "graph", "-o", str(tmp_path / "g.png")])
    assert neither.exit_code == 1 and "FILE or a running lab" in neither.output
    done = runner.invoke(main, ["topo", "graph", "topologies/fire-flyer-mini.yaml", "--ports", "-o",
                                str(tmp_path / "g.dot")])
    assert done.exit_code == 0, done.output
    assert "swp0" in (tmp_path / "g.dot").read_text()
