import ipaddress
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from emu.plan.routing import compute_routes
from emu.topo import build
from emu.plan.addressing import AddressPlan


def walk(topo, plan, tables, src, dst_addr, flow=0):
    """Follow the routes hop by hop from host `src` to address `dst_addr`; return the node path."""
    owner = plan.owner[dst_addr].node
    path, node = [src], src
    for _ in range(64):
        if node == owner:
            return path
        table = tables[node]
        routes = {r.dst: r for r in table.routes if r.table == 254}
        route = routes.get(f"{dst_addr}/32") or routes.get("default")
        if route is None:
            # a switch reaches a host on its own /31 without a route
            port = next((p for p in plan.ports[node] if p.peer_addr == dst_addr), None)
            assert port is not None, f"{node} has no route to {dst_addr}"
            node = port.peer
        else:
            gw, dev = route.nexthops[flow % len(route.nexthops)]
            node = plan.owner[gw].node
        path.append(node)
    raise AssertionError(f"loop from {src} to {dst_addr}: {path}")


SHAPES = [("star", {"hosts": 5}), ("leaf-spine", {"leaves": 4, "spines": 3, "hosts_per_leaf": 3}),
          ("two-zone", {"leaves": 2, "spines": 2, "hosts_per_leaf": 2, "storage": 2})]


@pytest.mark.parametrize("mode", ["static", "minhop", "ecmp"])
@pytest.mark.parametrize("kind,params", SHAPES)
def test_every_host_pair_has_a_route(kind, params, mode):
    topo = build(kind, "r", routing=mode, **params)
    plan = AddressPlan(topo)
    tables = compute_routes(topo, plan)
    for src in topo.hosts():
        for dst in topo.hosts():
            if dst is src:
                continue
            for addr in plan.addrs(dst.name):
                path = walk(topo, plan, tables, src.name, addr)
                assert path[-1] == dst.name
                # hosts never forward: only the ends of the path are hosts
                assert all(topo.node(n).forwards for n in path[1:-1])


def uplink_load(topo, tables, leaf):
    return Counter(r.nexthops[0][1] for r in tables[leaf].routes)


@settings(max_examples=25, deadline=None)
@given(leaves=st.integers(2, 6), spines=st.integers(1, 5), hosts=st.integers(1, 5))
def test_static_dmodk_spreads_destinations_within_one(leaves, spines, hosts):
    topo = build("leaf-spine", "d", leaves=leaves, spines=spines, hosts_per_leaf=hosts)
    tables = compute_routes(topo, AddressPlan(topo), "static")
    for l in range(leaves):
        load = uplink_load(topo, tables, f"leaf{l}")
        assert sum(load.values()) == (leaves - 1) * hosts
        if spines <= (leaves - 1) * hosts:
            assert len(load) == spines
        assert max(load.values()) - min(load.values(), default=0) <= 1


def test_static_sends_each_destination_down_one_spine():
    """d-mod-k in a regular fat-tree: every leaf picks the same spine for a destination."""
    topo = build("leaf-spine", "d", leaves=8, spines=4, hosts_per_leaf=8)
    plan = AddressPlan(topo)
    tables = compute_routes(topo, plan, "static")
    for dst in topo.hosts():
        spines = {walk(topo, plan, tables, src.name, plan.addrs(dst.name)[0])[2]
                  for src in topo.hosts() if plan.ports[src.name][0].peer != plan.ports[dst.name][0].peer}
        assert len(spines) == 1


def test_minhop_uses_one_uplink_and_ecmp_all():
    topo = build("leaf-spine", "m", leaves=4, spines=4, hosts_per_leaf=2)
    plan = AddressPlan(topo)
    minhop = compute_routes(topo, plan, "minhop")
    assert len(uplink_load(topo, minhop, "leaf0")) == 1
    ecmp = compute_routes(topo, plan, "ecmp")
    assert all(len(r.nexthops) == 4 for r in ecmp["leaf0"].routes)


def test_multihomed_host_answers_through_the_nic_that_owns_the_address():
    topo = build("two-zone", "z", leaves=2, spines=2, storage=1)
    plan = AddressPlan(topo)
    table = compute_routes(topo, plan)["st0"]
    by_table = {r.table: r for r in table.routes if r.dst == "default"}
    for rule, port in zip(table.rules, plan.ports["st0"]):
        assert rule.src == port.addr
        assert by_table[rule.table].nexthops == ((port.peer_addr, port.ifname),)
    # initiating towards zone b leaves through the zone-b NIC
    zb = plan.addrs("zb-c0")[0]
    route = next(r for r in table.routes if r.dst == f"{zb}/32")
    assert route.nexthops[0][1] == plan.ports["st0"][1].ifname


def test_addresses_are_point_to_point_and_unique():
    topo = build("leaf-spine", "a", leaves=4, spines=2, hosts_per_leaf=4)
    plan = AddressPlan(topo)
    addrs = [p.addr for ports in plan.ports.values() for p in ports]
    assert len(addrs) == len(set(addrs)) == 2 * len(topo.links())
    for ports in plan.ports.values():
        for p in ports:
            net = ipaddress.ip_network(f"{p.addr}/31", strict=False)
            assert ipaddress.ip_address(p.peer_addr) in net
            assert net.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
