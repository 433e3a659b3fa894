"""Composition-of-Experts serving in a lab: a router and a DGX H100 serving node over a switch,
a storage node for the expert no memory of the node holds. The HBM's hits and misses are the
LRU's for a fixed trace, exactly; the switches take what the profile says; the expert read from
storage crosses the switch in the storage class."""
import pytest

from cluster import coe, hardware
from emu.experiments.runner import run_scenario
from emu.experiments.scenario import load_scenario
from emu.metrics.counters import vl_bytes
from emu.plan.queues import TCP_PAYLOAD_SHARE
from emu.topo.loader import topology_from_dict

pytestmark = pytest.mark.integration

TRACE = (0, 1, 0, 2, 1, 3, 0, 3)       # LRU of 2: miss miss hit miss miss miss(storage) miss hit
SCALE = 0.01


@pytest.mark.heavy
def test_hits_and_misses_are_the_lrus_and_a_stored_expert_crosses_the_fabric(run_lab_name, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("".join(f"{i * 0.001},{e},4\n" for i, e in enumerate(TRACE)))
    topology = {"name": run_lab_name, "scale": SCALE, "defaults": {"rate": "200Gbit"},
                "nodes": {"r0": {"kind": "compute"}, "c0": {"kind": "compute", "hardware": "dgx-h100"},
                          "st0": {"kind": "storage"}, "sw0": {"kind": "switch"}},
                "links": [{"endpoints": [n, "sw0"]} for n in ("r0", "c0", "st0")]}
    scenario = {"name": "coe-lru", "topology": topology, "duration": "1s",
                "workloads": [{"name": "coe", "type": "coe", "router": "r0", "servers": ["c0"], "experts": 4,
                               "expert_params": "1B", "requests": str(trace), "hbm_experts": 2, "tier_experts": 3,
                               "duration": "1s"}]}
    summary, _ = run_scenario(load_scenario(scenario), str(tmp_path / "run"), lab_name=run_lab_name)
    (w,) = summary["workloads"]
    assert w["outcome"] == "ok", w
    assert coe.replay([coe.Request(0, e, 4) for e in TRACE], 2) == (2, 6)
    assert (w["requests"], w["hits"], w["misses"], w["switches"]) == (8, 2, 6, 6)
    assert w["hbm_hit_rate"] == pytest.approx(2 / 8)
    assert w["storage_bytes"] == 2e9                # one miss of expert 3, the one the node holds nowhere
    # a switch from host memory: 2 GB over the 4 PCIe switch uplinks (the storage one is longer)
    p = hardware.load("dgx-h100")
    uplinks = p.root_complex_bandwidth * p.accelerators // p.accelerators_per_root_complex
    assert w["switch_p50_ms"] == pytest.approx(2e9 / uplinks * 1e3, rel=0.15)


def test_the_stored_expert_is_written_then_read_over_the_switch_in_the_storage_class(make_lab, lab_name, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("0,1,2\n0.001,0,2\n")
    topo = topology_from_dict({"name": lab_name, "scale": SCALE, "defaults": {"rate": "200Gbit"},
                               "nodes": {"r0": {"kind": "compute"}, "c0": {"kind": "compute", "hardware": "dgx-h100"},
                                         "st0": {"kind": "storage"}, "sw0": {"kind": "switch"}},
                               "links": [{"endpoints": [n, "sw0"]} for n in ("r0", "c0", "st0")]}, "coe.yaml")
    lab = make_lab(topo)
    policy = lab.topology.qos
    storage_vl = policy.vl_of_sl(policy.sl_of("storage"))

    def sent():
        return sum(vl_bytes(lab, "sw0", f"swp{i}").get(storage_vl, 0) for i in range(3))
    before = sent()
    scenario = {"name": "coe-storage", "topology": lab.topology.to_dict(), "duration": "1s",
                "workloads": [{"name": "coe", "type": "coe", "router": "r0", "servers": ["c0"], "experts": 2,
                               "expert_params": "1B", "requests": str(trace), "tier_experts": 1, "duration": "1s"}]}
    summary, _ = run_scenario(load_scenario(scenario), str(tmp_path / "run"), lab_name=lab.name)
    (w,) = summary["workloads"]
    assert w["outcome"] == "ok" and w["storage_bytes"] == 2e9, w
    # the expert's 2 GB at scale 0.01, written to storage at the start and read back on the miss
    assert (sent() - before) * TCP_PAYLOAD_SHARE == pytest.approx(2 * 2e9 * SCALE, rel=0.10)


def test_each_nodes_agents_emulate_the_hardware_its_profile_names(make_lab, lab_name):
    """The validator's host-memory check on a DGX H100 node and a default node: each agent's node
    model runs host memory at its own profile's rate (the real copies add their own time, so the
    rate measured is below the model's), and the DGX H100's copies beat the default node's model."""
    from emu.experiments.validate import host_memory_rows
    topo = topology_from_dict({"name": lab_name, "scale": 0.001, "defaults": {"rate": "200Gbit"},
                               "nodes": {"c0": {"kind": "compute", "hardware": "dgx-h100"}, "c1": {"kind": "compute"},
                                         "sw0": {"kind": "switch"}},
                               "links": [{"endpoints": [n, "sw0"]} for n in ("c0", "c1")]}, "hw.yaml")
    lab = make_lab(topo)
    rows = {r["node"]: r for r in host_memory_rows(lab, ["c0", "c1"])}
    for node, profile in (("c0", "dgx-h100"), ("c1", hardware.DEFAULT)):
        expected = hardware.load(profile).host_memory_bandwidth * 8 * 0.001
        assert rows[node]["expected"] == pytest.approx(expected)
        assert rows[node]["measured"] <= expected * 1.02
    assert rows["c0"]["measured"] > 1.4 * rows["c1"]["expected"]      # 614 against 320 GB/s
