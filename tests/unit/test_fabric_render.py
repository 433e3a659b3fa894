"""The kernel plan, checked without root: marks, queues, routes, sysctls."""
import pytest

from emu.fabric.render import lab_mark, render
from emu.plan import make_plan
from emu.qos import QosPolicy
from emu.plan.queues import GSO_SEGS, MTU_FRAME, port_commands, port_queues
from emu.topo import build


def test_every_interface_carries_the_lab_mark():
    topo = build("leaf-spine", "mk", leaves=2, spines=2, hosts_per_leaf=2)
    plan = render(make_plan(topo))
    for ns in plan.namespaces:
        assert ns.netns == f"emu-mk-{ns.node}"
        devs = {l.split()[3] for l in ns.ip_lines if l.startswith("link set dev")}
        marked = {l.split()[3] for l in ns.ip_lines if f"alias {lab_mark('mk')}" in l}
        assert devs == marked and "lo" in devs


def test_vl_queues_follow_weights():
    lines = port_commands("eth0", 1_000_000_000, 65536, QosPolicy())
    rates = {l.split("classid ")[1].split()[0]: int(l.split(" rate ")[1].split("bit")[0])
             for l in lines if "parent 1:1 classid" in l}
    assert rates == {"1:10": 100_000_000, "1:11": 400_000_000, "1:12": 200_000_000, "1:13": 300_000_000}
    assert sum("bfifo limit 65536" in l for l in lines) == 4
    tos = sorted(l.split("match ip tos ")[1].split()[0] for l in lines if "u32" in l)
    assert tos == ["0x20", "0x40", "0x60"]


def test_spare_rate_is_lent_by_weight_not_by_packet():
    # HTB sends at least one packet a turn: a quantum below one GSO burst lends equally
    queues = port_queues(10**9, 65536, QosPolicy())
    assert min(q.quantum for q in queues) == GSO_SEGS * MTU_FRAME
    weights = QosPolicy().vlarb
    assert {q.vl: q.quantum * weights[0] // weights[q.vl] for q in queues} == dict.fromkeys(weights, GSO_SEGS * MTU_FRAME)


def test_isolation_off_is_one_queue():
    lines = port_commands("eth0", 10**8, 65536, QosPolicy(isolation=False))
    assert sum(" classid 1:1" in l for l in lines) == 2        # root + one VL
    assert not any("filter" in l for l in lines)


def test_scale_multiplies_every_rate():
    topo = build("star", "sc", hosts=2, rate="200Gbit", scale=0.001)
    plan = render(make_plan(topo))
    roots = [l for ns in plan.namespaces for l in ns.tc_lines if "classid 1:1 " in l]
    assert roots and all("rate 200000000bit" in l for l in roots)


def test_switches_forward_and_hosts_do_not():
    plan = render(make_plan(build("leaf-spine", "fw", leaves=2, spines=2, hosts_per_leaf=1, routing="ecmp")))
    by_node = {ns.node: ns for ns in plan.namespaces}
    assert by_node["leaf0"].sysctls["net/ipv4/ip_forward"] == "1"
    assert by_node["leaf0"].sysctls["net/ipv4/fib_multipath_hash_policy"] == "1"
    assert by_node["c0"].sysctls["net/ipv4/ip_forward"] == "0"
    assert any("nexthop via" in l for l in by_node["leaf0"].ip_lines)


def test_host_queues_do_not_drop_but_switch_queues_keep_the_buffer():
    from emu.plan import HOST_QUEUE_BYTES
    plan = render(make_plan(build("star", "hq", hosts=2, buffer="64KiB")))
    by_node = {ns.node: ns for ns in plan.namespaces}
    assert all(f"bfifo limit {64 * 1024}" in l for l in by_node["sw0"].tc_lines if "bfifo" in l)
    assert all(f"bfifo limit {HOST_QUEUE_BYTES}" in l for l in by_node["c0"].tc_lines if "bfifo" in l)


def test_a_batch_for_a_missing_namespace_is_one_line():
    from emu.errors import FabricError
    from emu.fabric.batch import run_batch
    with pytest.raises(FabricError, match="namespace emu-no-such-lab-x does not exist"):
        run_batch("ip", ["link show"], "emu-no-such-lab-x")


def spread(machines=2):
    from emu.fabric.render import kernel_layout
    from emu.topo.placement import place
    topo = build("two-zone", "mx", leaves=2, spines=2, hosts_per_leaf=2, storage=2)
    plan = make_plan(topo)
    placement = place(topo, machines)
    return topo, plan, placement, kernel_layout("mx", [n.name for n in plan.nodes], machines=placement.of)


def test_a_link_between_machines_is_a_tunnel_whose_ends_agree():
    from emu.fabric.render import UNDERLAY_MTU
    topo, plan, placement, layout = spread()
    lines = render(plan, layout)
    crossing = {frozenset(link) for link in placement.crossing(topo)}
    veths = [l for l in lines.create_lines if "type veth" in l and "@" not in l]
    assert len(veths) == len(plan.links) - len(crossing)
    tunnels = {}                                        # VNI -> (machine, node, local, remote) of its ends
    for m in lines.machines[1:]:
        assert m.netns == f"emu-mx-{m.node}" and f"alias {lab_mark('mx')}:{m.node} up" in m.ip_lines[0]
        for line in (l for l in m.ip_lines if "type vxlan" in l):
            words = line.split()
            vni, node = int(words[words.index("id") + 1]), words[words.index("netns") + 1][len("emu-mx-"):]
            assert layout.place(node).machine == m.node[1:]
            tunnels.setdefault(vni, []).append((node, words[words.index("local") + 1],
                                                words[words.index("remote") + 1]))
    assert len(tunnels) == len(crossing) and all(len(ends) == 2 for ends in tunnels.values())
    for (a, local_a, remote_a), (b, local_b, remote_b) in tunnels.values():
        assert frozenset((a, b)) in crossing and (local_a, remote_a) == (remote_b, local_b) and local_a != local_b
    # the machines' underlay ports take a tunnel's headers over a whole emulated frame
    underlay = [l for l in lines.create_lines if "@" in l and "type veth" in l]
    assert len(underlay) == 2 and all(l.count(f"mtu {UNDERLAY_MTU}") == 2 for l in underlay)


def test_one_machine_is_the_lab_as_ever():
    from emu.fabric.render import kernel_layout
    topo, plan, _, _ = spread()
    layout = kernel_layout("mx", [n.name for n in plan.nodes], machines={n.name: 0 for n in plan.nodes})
    assert layout.machines == () and render(plan, layout) == render(plan)


def test_a_state_file_gives_machines_back_only_as_small_numbers():
    from emu.backends import Layout
    from emu.lab import layout_of
    _, plan, _, layout = spread()
    state = {"claimed": True, "plan": plan.to_dict(), "layout": layout.to_dict()}
    assert Layout.from_dict(layout.to_dict()) == layout
    assert layout_of("mx", state) == layout
    state["layout"]["places"]["zb-c0"]["machine"] = "../../etc"        # tampered: the lab is taken as on one machine
    assert layout_of("mx", state).machines == ()


def test_each_machines_part_is_its_own_and_the_parts_make_the_lab():
    """What a worker builds on its machine names only that machine's namespaces; the emulated
    machines and every part together are the whole lab's lines."""
    from emu.fabric.render import emulated_machines, part
    _, plan, _, layout = spread(machines=3)
    whole = render(plan, layout)
    parts = {m.name: part(plan, layout, m.name) for m in layout.machines}
    machines = emulated_machines("mx", layout)
    for name, lines in parts.items():
        mine = {layout.netns(n) for n, p in layout.places.items() if p.machine == name}
        assert {ns.netns for ns in lines.namespaces} == mine
        assert [m.netns for m in lines.machines] == [f"emu-mx-@{name}"]
        for line in lines.create_lines + [l for m in lines.machines for l in m.ip_lines]:
            named = {w for w in line.split() if w.startswith("emu-mx-")}
            assert named <= mine | {f"emu-mx-@{name}"}, line
    assert sorted(machines.create_lines + [l for p in parts.values() for l in p.create_lines]) == \
        sorted(whole.create_lines)
    assert sorted(ns.netns for p in parts.values() for ns in p.namespaces) == sorted(ns.netns for ns in whole.namespaces)
    assert sorted(l for m in machines.machines + [m for p in parts.values() for m in p.machines] for l in m.ip_lines) \
        == sorted(l for m in whole.machines for l in m.ip_lines)
    # what each worker removes at teardown is what it built: its nodes' namespaces
    from emu.fabric.workers import node_namespaces
    assert {m: sorted(names) for m, names in node_namespaces(layout).items()} == \
        {m: sorted(ns.netns for ns in lines.namespaces) for m, lines in parts.items()}


HOSTS = [{"underlay": "192.0.2.10", "device": "eth1", "node": "a" * 56},
         {"underlay": "192.0.2.11", "device": "enp3s0", "node": "b" * 56}]


def test_on_a_ray_clusters_machines_nothing_is_emulated_and_each_tunnel_leaves_by_its_machines_device():
    """Real machines: no machine namespaces or underlay bridge; a machine's tunnel ends are made in
    its worker's own namespace (netns None) over its own device, between the machines' addresses."""
    _, plan, _, emulated = spread()
    layout = emulated.on_cluster("192.0.2.10:6379", HOSTS)
    assert layout.workers == "ray" and [(m.netns, m.underlay, m.device) for m in layout.machines] == [
        (None, "192.0.2.10", "eth1"), (None, "192.0.2.11", "enp3s0")]
    lines = render(plan, layout)
    assert not [l for l in lines.create_lines if "@" in l]          # no emulated machine, no underlay bridge
    assert [m.netns for m in lines.machines] == [None, None] and all(not m.sysctls for m in lines.machines)
    for machine, ends in zip(layout.machines, lines.machines):
        tunnels = [l.split() for l in ends.ip_lines]
        assert tunnels and all(w[w.index("local") + 1] == machine.underlay and w[-2:] == ["dev", machine.device]
                               for w in tunnels)
    # the nodes' own lines are those of emulated machines: only where the tunnels start differs
    assert [(ns.netns, ns.ip_lines, ns.tc_lines) for ns in lines.namespaces] == [
        (ns.netns, ns.ip_lines, ns.tc_lines) for ns in render(plan, emulated).namespaces]


def test_a_state_file_keeps_a_clusters_machines_and_its_places_are_laid_out_again():
    from emu.backends import Layout
    from emu.lab import layout_of
    _, plan, _, emulated = spread()
    layout = emulated.on_cluster("192.0.2.10:6379", HOSTS)
    state = {"claimed": True, "plan": plan.to_dict(), "layout": layout.to_dict()}
    assert Layout.from_dict(layout.to_dict()) == layout
    assert layout_of("mx", state) == layout
    state["layout"]["places"]["zb-c0"]["netns"] = "/etc"        # places never come from the file
    assert layout_of("mx", state) == layout


def test_a_cut_whose_crossing_links_would_fill_a_machines_underlay_is_refused():
    from emu.errors import EmuError
    from emu.lab import crossing_load, refuse_underlay_bottleneck
    topo, plan, placement, emulated = spread()
    layout = emulated.on_cluster("192.0.2.10:6379", HOSTS)
    load = crossing_load(plan, layout)
    crossing = [(a, a_if) for a, a_if, b, _ in plan.links if layout.place(a).machine != layout.place(b).machine]
    # each crossing link counts on both of its machines (two here), at its emulated rate
    assert load["m0"] == load["m1"] == sum(plan.node(a).port(i).rate_bps for a, i in crossing) > 0
    fast = [{**h, "speed_bps": 2 * load["m0"] + 1} for h in HOSTS]
    refuse_underlay_bottleneck(plan, layout, fast)                      # within half: built
    refuse_underlay_bottleneck(plan, layout, [{**h, "speed_bps": None} for h in HOSTS])   # unknown speed
    slow = [fast[0], {**HOSTS[1], "speed_bps": load["m1"]}]
    with pytest.raises(EmuError, match=r"^lab 'mx': the links that cross from machine 192\.0\.2\.11 ask for .* "
                                       r"each way, over 50% of its underlay device enp3s0's .*: the underlay would "
                                       r"be the bottleneck"):
        refuse_underlay_bottleneck(plan, layout, slow)
