"""The OpenFlow backend as data (no root): a plan's routes as entries and groups, the changes that
bring a switch from one table to the next, the kernel lines and OVS commands of its switches,
the topology's `backend` key, and the loading of a user's app."""
import pytest

from emu import backends
from emu.errors import EmuError, FabricError, TopologyError
from emu.fabric.openflow import flows, ovs
from emu.fabric.openflow.controller import load_app
from emu.fabric.render import render
from emu.plan import make_plan
from emu.plan.routing import Route
from emu.topo import build
from emu.topo.loader import topology_from_dict


def leaf(routing: str):
    plan = make_plan(build("leaf-spine", "of", leaves=2, spines=2, hosts_per_leaf=2, routing=routing), "of")
    return plan, plan.node("leaf0")


def test_a_switch_reaches_its_neighbours_directly_and_the_rest_by_its_routes():
    _, node = leaf("static")
    table = flows.entries(node)
    numbers = flows.port_numbers(node)
    direct = [e for e in table if e.priority == flows.CONNECTED + 32 and e.dst[0] in {p.peer_addr for p in node.ports}]
    assert len(direct) == len(node.ports)
    for route in node.routes:
        (entry,) = [e for e in table if e.dst == (route.dst.split("/")[0], "255.255.255.255") and e not in direct]
        (gw, dev), = route.nexthops
        port = node.port(dev)
        assert entry.hops == (flows.Hop(numbers[dev], port.mac, port.peer_mac),) and gw == port.peer_addr


def test_ecmp_routes_become_one_select_group_per_set_of_next_hops():
    _, node = leaf("ecmp")
    installed, ids = {}, {}
    change = flows.change(installed, ids, flows.entries(node))
    assert [gid for gid, _ in change.add_groups] == [1]         # both spines, for every remote host
    (hops,) = [h for _, h in change.add_groups]
    assert {h.port for h in hops} == {1, 2}
    assert len(change.put) == len(installed) and not change.delete and not change.delete_groups


def test_a_new_table_changes_only_what_differs_and_keeps_group_ids():
    _, node = leaf("ecmp")
    installed, ids = {}, {}
    flows.change(installed, ids, flows.entries(node))
    first = node.routes[0]
    single = Route(first.dst, first.nexthops[:1])
    change = flows.change(installed, ids, flows.entries(node, (single,) + node.routes[1:]))
    assert [e.dst[0] for e in change.put] == [first.dst.split("/")[0]] and len(change.put[0].hops) == 1
    assert not change.add_groups and not change.delete_groups and ids       # the group stays: others use it
    change = flows.change(installed, ids, flows.entries(node, ()))          # no routes: neighbours only
    assert len(change.delete) == len(node.routes) and change.delete_groups == [1] and ids == {}


def test_a_default_route_matches_everything_below_longer_prefixes():
    _, node = leaf("static")
    port = node.ports[0]
    (entry,) = [e for e in flows.entries(node, (Route("default", ((port.peer_addr, port.ifname),)),))
                if e.dst == ("0.0.0.0", "0.0.0.0")]
    assert entry.priority == flows.ROUTED < flows.CONNECTED + 32


def test_openflow_switches_route_nothing_in_the_kernel_and_classify_packet_socket_frames():
    plan, _ = leaf("static")
    layout = backends.plan_layout(plan, "openflow")
    lines = {ns.node: ns for ns in render(plan, layout).namespaces}
    switch, host = lines["leaf0"], lines["c0"]
    assert not [line for line in switch.ip_lines if line.startswith(("route", "rule"))]
    assert switch.sysctls["net/ipv4/ip_forward"] == "0"
    assert any(line.startswith("route") for line in host.ip_lines)
    filters = [line for line in switch.tc_lines if line.startswith("filter")]
    assert filters and all(" protocol all " in line for line in filters)
    assert all(" protocol ip " in line for line in host.tc_lines if line.startswith("filter"))
    kernel = {ns.node: ns for ns in render(plan, backends.plan_layout(plan)).namespaces}["leaf0"]
    assert kernel.sysctls["net/ipv4/ip_forward"] == "1" and any(line.startswith("route") for line in kernel.ip_lines)


def test_ovs_keeps_the_vl_queues_and_numbers_ports_in_plan_order():
    _, node = leaf("static")
    argv = ovs.commands("of", node, 2, "emu-of-leaf0", "/run/emu/of.openflow/ofp.sock")
    vsctl = argv[-1]
    assert vsctl[:4] == ["ip", "netns", "exec", "emu-of-leaf0"]
    assert "type=linux-noop" in vsctl and vsctl.count("qos=@keep") == len(node.ports)
    assert [a for a in vsctl if a.startswith("ofport_request=")] == [f"ofport_request={i}" for i in range(1, 5)]
    assert f"other-config:datapath-id={3:016x}" in vsctl and "fail_mode=secure" in vsctl
    link = ovs.switch_dir("of", "leaf0") / ovs.CONTROLLER_LINK
    assert argv[0] == ["ln", "-s", "/run/emu/of.openflow/ofp.sock", str(link)] and f"unix:{link}" in vsctl


def test_the_openflow_backend_is_one_machine():
    with pytest.raises(EmuError, match="one machine"):
        backends.lay_out("of", ["a", "b"], "openflow", machines={"a": 0, "b": 1})
    assert backends.lay_out("of", ["a"], "openflow").backend == "openflow"


def topo(backend, tmp_path=None):
    doc = {**build("star", "of", hosts=2).to_dict(), "backend": backend}
    return topology_from_dict(doc, str(tmp_path / "t.yaml") if tmp_path else "<test>")


def test_the_backend_key_names_a_backend_and_its_options(tmp_path):
    (tmp_path / "t.yaml").write_text("")
    (tmp_path / "app.py").write_text("")
    t = topo({"name": "openflow", "app": "app.py"}, tmp_path)
    assert (t.backend, t.backend_options) == ("openflow", {"app": str((tmp_path / "app.py").resolve())})
    assert topology_from_dict(t.to_dict()).backend_options == t.backend_options      # kept in the lab's state
    assert topo("openflow").backend == "openflow" and "backend" not in topo("kernel").to_dict()


@pytest.mark.parametrize("spec,key,why", [
    ("ovs", "backend", "unknown backend 'ovs'"),
    ({"app": "a.py"}, "backend.name", "missing"),
    ({"name": "kernel", "app": "a.py"}, "backend.app", "not an option of the kernel backend"),
    ({"name": "openflow", "app": "missing.py"}, "backend.app", "no such file"),
    ({"name": "openflow", "app": 3}, "backend.app", "must be a file"),
])
def test_a_bad_backend_key_is_one_line_naming_it(spec, key, why):
    with pytest.raises(TopologyError) as e:
        topo(spec)
    assert f": {key}: " in str(e.value) and why in str(e.value), str(e.value)


def test_an_app_file_names_one_fabric_app(tmp_path):
    from emu.fabric.openflow.app import FabricApp
    assert load_app(None) is FabricApp
    two = tmp_path / "two.py"
    two.write_text("from emu.fabric.openflow.app import FabricApp\nclass A(FabricApp): pass\nclass B(FabricApp): pass\n")
    with pytest.raises(FabricError, match="several FabricApp subclasses"):
        load_app(str(two))
    assert load_app(f"{two}:B").__name__ == "B"
    with pytest.raises(FabricError, match="no FabricApp subclass C"):
        load_app(f"{two}:C")
    with pytest.raises(FabricError, match="no such file"):
        load_app(str(tmp_path / "none.py"))


@pytest.mark.parametrize("program", ["arrival_program", "tagged_arrival_program"])
def test_the_counting_programs_jump_only_forward_and_within_them(program):
    """The verifier refuses a program whose jumps leave it; every jump to the end lands on
    `r0 = TC_ACT_OK` (checked here without root; the integration tests load them)."""
    import struct
    from emu.fabric import bpf
    code = getattr(bpf, program)(3)
    insns = [struct.unpack_from("<BBhi", code, 8 * i) for i in range(len(code) // 8)]
    assert insns[-2] == (0xb7, 0, 0, 0) and insns[-1][0] == 0x95
    for pc, (op, _, off, _) in enumerate(insns):
        if op & 0x07 == 0x05 and op != 0x85 and op != 0x95:      # a jump (not a call, not exit)
            assert 0 < off and pc + 1 + off < len(insns), (pc, off)
    if program == "tagged_arrival_program":
        assert any(op == 0x85 and imm == bpf.FN_SKB_VLAN_POP for op, _, _, imm in insns)


def test_topo_plan_lines_show_each_switchs_ovs_commands():
    """The example topology names the openflow backend: its lines are the kernel's, then the bridges'."""
    from pathlib import Path
    from click.testing import CliRunner
    from emu.cli import main
    example = Path(__file__).parents[2] / "examples" / "openflow" / "leaf-spine.yaml"
    done = CliRunner().invoke(main, ["topo", "plan", str(example), "--lines"])
    assert done.exit_code == 0, done.output
    assert [line for line in done.output.splitlines() if line.endswith(": Open vSwitch")] == [
        f"# {s}: Open vSwitch" for s in ("spine0", "spine1", "leaf0", "leaf1")]
    assert "route add" not in done.output.split("# emu-of-ecmp-leaf0: ip -batch")[1].split("#")[0]
