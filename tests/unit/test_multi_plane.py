"""Section IX's next-generation network: planes of two-layer fat-trees, one NIC per GPU."""
from collections import Counter

import pytest

from cluster.node import NodeParams
from emu.errors import TopologyError
from emu.plan import make_plan
from emu.topo import build
from emu.topo.builders import multi_plane_layout


def test_the_papers_four_planes_of_128_port_switches_hold_32768_gpus():
    switches, hosts, degree = set(), set(), Counter()
    for item in multi_plane_layout(planes=4, radix=128, nics=8):
        if item[0] == "link":
            degree.update(item[1:])
        else:
            (switches if item[0] == "switch" else hosts).add(item[1])
    assert len(hosts) * 8 == 32768                          # one NIC per GPU, 8 GPUs a node
    assert len(switches) == 4 * (128 + 64)                  # per plane: 128 leaves, 64 spines
    assert all(degree[s] == 128 for s in switches)          # every switch port used, none over
    assert all(degree[h] == 8 for h in hosts)
    assert sum(degree.values()) // 2 == 32768 + 4 * 128 * 64


def test_a_small_multi_plane_lab_routes_each_plane_on_its_own():
    topo = build("multi-plane", "mp", planes=2, radix=4, nics=4, nodes=4)
    plan = make_plan(topo)
    c0 = plan.node("c0")
    assert [p.peer for p in c0.ports] == ["p0-leaf0", "p1-leaf0", "p0-leaf2", "p1-leaf2"]   # NIC i on plane i mod 2
    # c0 reaches c1's NIC 1 (plane 1) through its own plane-1 NIC, and no switch of plane 0 knows it
    c1_nic1 = plan.node("c1").ports[1].addr
    route = next(r for r in c0.routes if r.dst == f"{c1_nic1}/32")
    assert route.nexthops[0][1] == c0.ports[1].ifname
    assert not any(r.dst == f"{c1_nic1}/32" for n in plan.nodes if n.name.startswith("p0-") for r in n.routes)
    # a GPU per NIC, and each NIC answers from its own address through itself (rails stay on their plane)
    assert all(h.attrs["gpus"] == 4 for h in topo.hosts())
    assert [(r.src, r.table) for r in c0.rules] == [(p.addr, 100 + i) for i, p in enumerate(c0.ports)]


def test_a_node_has_one_nic_or_one_per_gpu():
    assert not NodeParams().nic_per_gpu and NodeParams(gpus=4, nics=4).nic_per_gpu
    with pytest.raises(ValueError, match="one per GPU"):
        NodeParams(gpus=8, nics=4)


def test_planes_must_each_reach_every_host():
    with pytest.raises(TopologyError, match="nics"):
        build("multi-plane", "mp", planes=3, radix=4, nics=4)
    with pytest.raises(TopologyError, match="hold"):
        build("multi-plane", "mp", planes=2, radix=4, nics=2, nodes=9)
