"""One lab over several machines, emulated on this one (emu up --machines N): each machine a
namespace with an underlay address, the links between machines VXLAN tunnels. What crosses is
checked where it goes: the underlay's counters, the tunnel port's per-VL queues."""
import signal
import subprocess
import sys

import pytest
import yaml

from emu.experiments.flows import Flow, run_flows
from emu.fabric.netns import NETNS_DIR
from emu.fabric.render import UNDERLAY_PORT
from emu.metrics.mesh import tcp_mesh
from emu.qos import QosPolicy
from emu.topo import build
from emu.topo.loader import topology_from_dict
from waits import wait_until

pytestmark = pytest.mark.integration


def underlay_bytes(lab) -> dict[str, int]:
    """machine -> bytes its underlay port has sent (the tunnels' packets, headers included)."""
    from emu.fabric.netns import inside
    from pyroute2 import IPRoute
    out = {}
    for m in lab.layout.machines:
        with inside(m.netns), IPRoute() as ipr:
            (link,) = ipr.get_links(ifname=UNDERLAY_PORT)
            out[m.name] = link.get_attr("IFLA_STATS64")["tx_bytes"]
    return out


def test_a_two_zone_lab_over_two_machines_reaches_every_address_through_the_tunnels(make_lab, lab_name):
    lab = make_lab(build("two-zone", lab_name, leaves=2, spines=2, hosts_per_leaf=2, storage=2), machines=2)
    status = lab.status()
    assert [m["name"] for m in status["machines"]] == ["m0", "m1"]
    assert {n["machine"] for n in status["nodes"]} == {"m0", "m1"}
    crossing = [(l["a"], l["b"]) for l in status["links"] if l["crosses"]]
    assert crossing and len(crossing) < len(status["links"]) / 3, crossing
    before = underlay_bytes(lab)
    first = tcp_mesh(lab.hosts())
    addresses = 8 * 1 + 2 * 2                      # storage nodes answer on both of their addresses
    assert first.pairs == 8 * (addresses - 1) + 2 * (addresses - 2)
    # the first burst over fresh tunnels too: the build waits until the underlay's bridge forwards
    # (before it did, 1 build in 3 lost the SYNs through one bridge port for ~1 s: 66 retransmits)
    assert first.failures == [] and first.retransmits == 0, first.retransmits
    after = underlay_bytes(lab)
    assert all(after[m] - before[m] > 10_000 for m in after), (before, after)      # both ways, over the underlay


def port_up(lab, node: str, peer: str) -> bool:
    """The kernel's word: is node's port towards peer administratively up?"""
    from emu.fabric.netns import inside
    from pyroute2 import IPRoute
    with inside(lab.layout.netns(node)), IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=lab.plan.node(node).port_to(peer).ifname)
        return bool(link["flags"] & 1)          # IFF_UP


def ray_children(parent: int | None = None) -> list[int]:
    """The children of `parent` (this process) that run Ray (its local instance: GCS, raylet, workers)."""
    import os
    from pathlib import Path
    parent = parent or os.getpid()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
            argv = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if f"\nPPid:\t{parent}\n" in status and b"ray" in argv:
            found.append(int(proc.name))
    return found


@pytest.mark.heavy
def test_ray_workers_build_each_machines_part_read_it_for_the_daemon_and_leave_no_ray_behind(make_lab, lab_name):
    pytest.importorskip("ray", reason="Ray workers need Ray (pip install -e '.[sweep]')")
    lab = make_lab(build("two-zone", lab_name, leaves=2, spines=1, hosts_per_leaf=2), machines=2, workers="ray")
    assert lab.status()["workers"] == "ray" and len(lab.layout.machines) == 2
    assert ray_children() == []                     # Ray was started for the build and stopped after it
    result = tcp_mesh(lab.hosts())
    assert result.pairs == 8 * 11 + 2 * 10 and result.failures == []        # 8 hosts, 2 storage nodes of 2 NICs
    # the daemon's sampler reads each machine through that machine's Ray worker
    daemon = lab.status()["daemon"]
    wait_until(lambda: all(m["reads"] >= 2 for m in lab.status()["daemon"]["sampler"]["machines"].values()),
               60, "two samples through each machine's worker")
    machines = lab.status()["daemon"]["sampler"]["machines"]
    assert set(machines) == {"m0", "m1"} and ray_children(daemon["pid"]) != []
    for clock in machines.values():      # one kernel's monotonic clock: the true offset is 0
        assert abs(clock["clock_offset_s"]) <= clock["clock_bound_s"] < 0.05, clock
    # a change is run by the worker of each end's machine: a crossing link down, seen on both ends' ports
    a, b = next((l["a"], l["b"]) for l in lab.status()["links"] if l["crosses"])
    lab.set_link(a, b, up=False)
    assert not port_up(lab, a, b) and not port_up(lab, b, a)
    assert all(m["changes"] >= 1 for m in lab.status()["daemon"]["sampler"]["machines"].values())
    lab.set_link(a, b, up=True)
    assert port_up(lab, a, b) and port_up(lab, b, a)
    lab.down()          # each machine's worker removes its nodes: Ray started for that, and stopped
    assert ray_children(daemon["pid"]) == [] and ray_children() == []
    assert not [p for p in NETNS_DIR.iterdir() if p.name.startswith(f"emu-{lab_name}-")]


def across(name: str, senders: int = 5) -> dict:
    """Hosts h1.. on switch s0 (machine 0) and h0 on switch s1 (machine 1): s0's port to s1 is the
    one link that crosses, and the bottleneck of every flow into h0."""
    nodes = {"s0": {"kind": "switch", "machine": 0}, "s1": {"kind": "switch", "machine": 1},
             "h0": {"kind": "compute", "machine": 1},
             **{f"h{i}": {"kind": "compute", "machine": 0} for i in range(1, senders + 1)}}
    links = [["s0", "s1"], ["h0", "s1"]] + [[f"h{i}", "s0"] for i in range(1, senders + 1)]
    return {"name": name, "defaults": {"rate": "200Mbit"}, "routing": {"mode": "static"}, "nodes": nodes,
            "links": [{"endpoints": e} for e in links]}


def marked_share(lab) -> float:
    """1 hfreduce-marked flow against 4 unmarked ones into h0: the marked VL's share of the bytes
    s0's port to s1 sent (its per-VL queues' counters)."""
    from emu.metrics.counters import vl_bytes
    port = lab.plan.node("s0").port_to("s1").ifname
    before = vl_bytes(lab, "s0", port)
    run_flows(lab, [Flow("h1", "h0", "hfreduce", cc="cubic")] + [Flow(f"h{i}", "h0", cc="cubic")
                                                                  for i in range(2, 6)], seconds=3)
    moved = {vl: b - before.get(vl, 0) for vl, b in vl_bytes(lab, "s0", port).items()}
    q = QosPolicy()
    return moved[q.vl_of_sl(q.sl_of("hfreduce"))] / sum(moved.values())


@pytest.mark.heavy
def test_across_machines_a_flow_gets_its_shaped_rate_and_the_vls_their_shares_as_within_one(make_lab, lab_name):
    doc = across(lab_name)
    within = make_lab(topology_from_dict(doc, "test", lab_name + "w"))
    spread = make_lab(topology_from_dict(doc, "test", lab_name), machines=2)
    assert [l["crosses"] for l in spread.status()["links"]].count(True) == 1
    rate = {lab.name: run_flows(lab, [Flow("h1", "h0")], seconds=2)[0]["bps"] for lab in (within, spread)}
    got, base = rate[spread.name], rate[within.name]
    assert got <= 1.02 * 200e6, f"{got / 1e6:.1f} Mbit/s across a 200 Mbit link: the shaper lets too much through"
    assert got >= 0.90 * min(200e6, base), f"{got / 1e6:.1f} Mbit/s across, {base / 1e6:.1f} within"
    share = {lab.name: marked_share(lab) for lab in (within, spread)}
    q = QosPolicy()
    weighted = q.vlarb[1] / (q.vlarb[1] + q.vlarb[0])
    assert share[spread.name] >= 0.8 * weighted, f"the marked VL got {share[spread.name]:.0%} across"
    assert abs(share[spread.name] - share[within.name]) <= 0.05, f"the marked VL's share, across and within: {share}"


def test_the_subnet_manager_reroutes_around_a_cut_crossing_link(make_lab, lab_name):
    lab = make_lab(build("leaf-spine", lab_name, leaves=2, spines=2, hosts_per_leaf=2), machines=2)
    crossing = [(l["a"], l["b"]) for l in lab.status()["links"] if l["crosses"]]
    a, b = next(link for link in crossing if {link[0][:-1], link[1][:-1]} == {"leaf", "spine"})
    assert tcp_mesh(lab.hosts()).ok == 12
    lab.set_link(a, b, up=False)                          # the cut; no sweep yet
    cut = tcp_mesh(lab.hosts(), timeout=1)
    assert 0 < cut.ok < 12, cut
    assert lab.sweep()
    assert tcp_mesh(lab.hosts()).ok == 12


def test_clean_leaves_nothing_of_a_lab_over_machines_after_the_cli_is_sigkilled(run_lab_name, tmp_path):
    from emu import labfiles
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": run_lab_name, "fabric": {"type": "two-zone", "leaves": 2, "spines": 2,
                                                                    "hosts_per_leaf": 2}}))
    up = subprocess.Popen([sys.executable, "-m", "emu.cli", "up", str(path), "--machines", "2"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours = lambda: list(NETNS_DIR.glob(f"emu-{run_lab_name}-*"))       # noqa: E731
    try:
        # killed once its machines exist: the namespaces' marks alone must tell clean what is the lab's
        wait_until(lambda: any("@m" in p.name for p in ours()) or up.poll() is not None, 60, "the machines exist")
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert ours(), "emu up ended before its machines were made"
    done = subprocess.run([sys.executable, "-m", "emu.cli", "clean", run_lab_name], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert ours() == []
    assert not list(labfiles.STATE_DIR.glob(f"{run_lab_name}.*"))


def test_a_scenario_run_samples_both_machines(tmp_path, run_lab_name):
    import pyarrow.parquet as pq
    from emu.experiments.runner import run_scenario
    from emu.experiments.scenario import load_scenario
    (tmp_path / "topo.yaml").write_text(yaml.safe_dump(across(run_lab_name, senders=1)))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "name": "across", "topology": "topo.yaml", "duration": "3s", "sample": "100ms",
        "workloads": [{"name": "bulk", "type": "bulk", "start": "0s", "duration": "2.5s", "src": "h1", "dst": "h0"}]}))
    summary, directory = run_scenario(load_scenario(tmp_path / "s.yaml"), str(tmp_path / "run"), machines=2)
    (bulk,) = summary["workloads"]
    assert bulk["outcome"] == "ok"
    assert 0 < summary["sampler"]["clock_bound_s"] < 0.01      # the machines' clocks put on one, within this
    ports = pq.read_table(directory / "ports.parquet").to_pylist()

    def moved(node, peer, key):
        seen = sorted((r["t"], r[key]) for r in ports if r["node"] == node and r["peer"] == peer)
        return seen[-1][1] - seen[0][1]
    # the tunnel's two ends, one on each machine, saw the flow's bytes leave and arrive
    sent, received = moved("s0", "s1", "tx_bytes"), moved("s1", "s0", "rx_bytes")
    assert sent > 20_000_000 and 0.98 * sent <= received <= sent, (sent, received)


def test_lossless_flow_control_pauses_senders_on_one_machine_for_a_tunnel_port_on_it(make_lab, lab_name):
    """8 senders into c0, which is on the other machine: the congested egress is the switch's
    tunnel port, the ports the controller pauses are veths; nothing drops."""
    from emu.experiments.storage import incast
    from emu.metrics.counters import fabric_drops
    from lossless import LOSSLESS, incast_star
    lab = make_lab(incast_star(lab_name, LOSSLESS, c0={"machine": 1}), machines=2)
    assert [(l["a"], l["b"]) for l in lab.status()["links"] if l["crosses"]] == [("c0", "sw0")]
    with lab.flow_control() as fc:
        incast(lab, "c0", [8], rts=False, rounds=2)
    assert fabric_drops(lab) == 0, "lossless violations: a switch dropped"
    assert fc.summary()["peak_ingress_bytes"] > fc.summary()["xoff"] and fc.pauses, "no pause: the test proves nothing"
