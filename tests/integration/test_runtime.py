"""Changes to a running lab through the backend seam: a VL's rate, a link's state, a node's routes.
Each is checked on the wire (rates measured, counters read) and in the plan the lab keeps."""
import pytest

from emu.eventlog import read_events
from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.metrics.counters import interface_counters
from emu.metrics.mesh import tcp_mesh
from emu.plan.routing import Route
from emu.topo import build
from fabrics import both_backends

pytestmark = pytest.mark.integration


def test_a_vl_rate_change_shapes_the_running_lab(make_lab, lab_name):
    lab = make_lab(build("star", lab_name, hosts=2, rate="100Mbit"))
    before = run_flows(lab, [Flow("c0", "c1")], seconds=1.5)[0]["bps"]
    port = lab.plan.node("sw0").port_to("c1")
    lab.set_vl_rate("sw0", port.ifname, vl=0, rate_bps=10_000_000, ceil_bps=20_000_000)
    after = run_flows(lab, [Flow("c0", "c1")], seconds=2)[0]["bps"]
    assert before > 60e6, before
    assert 0.5 * 20e6 <= after <= 1.05 * 20e6, f"{after / 1e6:.1f} Mbit/s through a VL capped at 20 Mbit/s"
    kept = Lab.get(lab.name).plan.node("sw0").port(port.ifname).queues[0]     # from the state file
    assert (kept.rate_bps, kept.ceil_bps) == (10_000_000, 20_000_000)
    assert logged(lab)[-1]["type"] == "vl_rate"


@both_backends
def test_a_link_down_cuts_the_path_and_up_restores_it(make_lab, lab_name, backend):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1), backend=backend)
    assert tcp_mesh(lab.hosts()).ok == 2
    lab.set_link("leaf0", "spine0", up=False)
    assert tcp_mesh(lab.hosts(), timeout=2).ok == 0
    assert not Lab.get(lab.name).plan.node("leaf0").port_to("spine0").up
    assert [l["up"] for l in lab.status()["links"] if {l["a"], l["b"]} == {"leaf0", "spine0"}] == [False]
    lab.set_link("leaf0", "spine0", up=True)          # the planned routes over it come back
    assert tcp_mesh(lab.hosts()).ok == 2
    port = lab.plan.node("leaf0").port_to("spine0")      # and its permanent neighbour entry: no ARP
    shown = lab.node("leaf0").run(["ip", "neigh", "show", "dev", port.ifname], check=True).stdout
    assert f"{port.peer_addr} lladdr {port.peer_mac} PERMANENT" in shown, shown


def logged(lab) -> list[dict]:
    """The lab's event log, as its daemon wrote it."""
    return read_events(lab.name)[0]


def uplink_tx(lab, node):
    return {dev: c["tx_bytes"] for dev, c in interface_counters(lab, [node])[node].items()}


@both_backends
def test_replaced_routes_carry_the_traffic(make_lab, lab_name, backend):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=1, rate="100Mbit"), backend=backend)
    leaf = lab.plan.node("leaf0")
    dst = lab.node("c1").addr
    (old,) = [r for r in leaf.routes if r.dst == f"{dst}/32"]
    used = old.nexthops[0][1]
    other = next(p for p in leaf.ports if p.peer.startswith("spine") and p.ifname != used)
    routes = [Route(r.dst, ((other.peer_addr, other.ifname),)) if r is old else r for r in leaf.routes]
    lab.replace_routes("leaf0", routes)
    before = uplink_tx(lab, "leaf0")
    run_flows(lab, [Flow("c0", "c1")], seconds=1)
    after = uplink_tx(lab, "leaf0")
    moved = {dev: after[dev] - before[dev] for dev in (used, other.ifname)}
    assert moved[other.ifname] > 5_000_000 and moved[used] < 0.01 * moved[other.ifname], moved
    assert Lab.get(lab.name).plan.node("leaf0").routes == tuple(routes)


def test_status_changes_lists_what_differs_from_the_plan(make_lab, lab_name):
    import subprocess
    import sys
    lab = make_lab(build("star", lab_name, hosts=2))

    def changes():
        done = subprocess.run([sys.executable, "-m", "emu.cli", "status", lab.name, "--changes"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()
    assert changes() == f"lab {lab.name} is as planned"
    lab.set_link("sw0", "c1", up=False)
    assert sorted(changes().splitlines()) == ["c1:eth0: down -> up", "sw0:swp1: down -> up"]


@both_backends
def test_the_subnet_manager_reroutes_around_a_cut_link_and_back(make_lab, lab_name, backend):
    from emu.plan import make_plan
    from emu.plan.diff import diff
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=2), backend=backend)
    assert tcp_mesh(lab.hosts()).ok == 12
    lab.set_link("leaf0", "spine0", up=False)             # the cut; no sweep yet
    cut = tcp_mesh(lab.hosts(), timeout=1)
    assert 0 < cut.ok < 12, cut                            # d-mod-k sent some destinations over spine0
    assert lab.sweep()                       # tables over the links that are up
    assert tcp_mesh(lab.hosts()).ok == 12                  # healed
    assert lab.link_event("leaf0", "spine0", up=True, sweep_delay=0.1)
    assert tcp_mesh(lab.hosts()).ok == 12
    assert diff(lab.plan, make_plan(lab.topology, lab.name)) == []     # back to the planned tables


@both_backends
def test_emu_link_down_reroutes_after_its_sweep_delay(make_lab, lab_name, backend):
    import json
    import subprocess
    import sys
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=1), backend=backend)
    done = subprocess.run([sys.executable, "-m", "emu.cli", "link", "down", "leaf1", "spine1", "--lab", lab.name,
                           "--sweep-delay", "200ms", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    changes = json.loads(done.stdout)["route_changes"]
    assert changes and all("route" in line for line in changes)
    assert tcp_mesh(lab.hosts()).ok == 2
    assert {"routes", "sweep"} <= {e["type"] for e in logged(lab)}


@both_backends
def test_adaptive_routing_moves_load_off_a_hot_uplink(make_lab, lab_name, backend):
    """The lab's daemon runs the adaptive router: flows of any driver are moved."""
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=4, rate="100Mbit",
                         routing="adaptive"), backend=backend)
    leaf = lab.plan.node("leaf0")
    # d-mod-k puts leaf1's 1st and 3rd hosts (c4, c6) on the same spine uplink of leaf0
    via = {r.dst: r.nexthops[0][1] for r in leaf.routes}
    c4, c6 = (f"{lab.node(n).addr}/32" for n in ("c4", "c6"))
    assert via[c4] == via[c6]
    hot = via[c4]
    cold = next(p.ifname for p in leaf.ports if p.peer.startswith("spine") and p.ifname != hot)
    before = uplink_tx(lab, "leaf0")
    run_flows(lab, [Flow("c0", "c4"), Flow("c1", "c6")], 3)
    after = uplink_tx(lab, "leaf0")
    moves = [e["change"] for e in logged(lab) if e["type"] == "route" and e["by"] == "adaptive"]
    assert any("leaf0: route" in line and f"{hot} -> {cold}" in line for line in moves), moves
    assert after[cold] - before[cold] > 5_000_000, (after[cold] - before[cold])     # the cold uplink took load
    assert any(e["type"] == "routes" and e["node"] == "leaf0" for e in logged(lab))
