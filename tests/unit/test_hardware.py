"""Node hardware profiles: each loads with a source for every figure, bad figures are refused in
one line, the default is today's NodeParams, and the node model's expert switch takes what the
profile's figures say it must."""
import time

import pytest
import yaml

from agents.coe import decode, switch
from agents.gpu import NodeModel
from cluster import coe, hardware
from cluster.footprint import footprint
from cluster.node import NodeParams
from emu.errors import TopologyError
from emu.topo.loader import topology_from_dict


@pytest.mark.parametrize("name", hardware.names())
def test_every_profile_loads_with_a_source_for_every_figure(name):
    p = hardware.load(name)
    assert set(p.sources) == set(p.figures) and all(p.sources.values())
    assert NodeParams.from_profile(p).gpus == p.accelerators


def test_the_shipped_profiles_and_the_default():
    assert {"ff2-a100-pcie", "dgx-a100", "dgx-h100", "sn40l-node"} <= set(hardware.names())
    assert NodeParams.from_profile(hardware.load()) == NodeParams()
    assert footprint("hfreduce", NodeParams.from_profile(hardware.load()), 4, 1) == footprint("hfreduce", NodeParams(),
                                                                                               4, 1)
    sn40l = hardware.load("sn40l-node")
    assert sn40l.capacity_tier == ("local", 8 * 1.5e12) and sn40l.sram_capacity == 520e6
    assert hardware.load("dgx-h100").capacity_tier == ("host", 2048e9)


def write(tmp_path, change):
    doc = yaml.safe_load((hardware.DIR / "dgx-h100.yaml").read_text())
    change(doc)
    path = tmp_path / "dgx-h100.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("change,key,why", [
    (lambda d: d["figures"].pop("hbm_bandwidth"), "figures.hbm_bandwidth", "missing"),
    (lambda d: d["figures"].update(hbm_bandwidth="3.35 TB"), "figures.hbm_bandwidth", "not a rate"),
    (lambda d: d["figures"].update(hbm_capacity="80 GB/s"), "figures.hbm_capacity", "not a size"),
    (lambda d: d["figures"].update(hbm_capacity="0 GB"), "figures.hbm_capacity", "above zero"),
    (lambda d: d["figures"].update(accelerators=0), "figures.accelerators", "at least 1"),
    (lambda d: d["figures"].update(nics=3), "figures.nics", "one NIC or one per accelerator"),
    (lambda d: d["figures"].update(hbm_speed="1 TB/s"), "figures.hbm_speed", "unknown figure"),
    (lambda d: d["sources"].pop("pcie_bandwidth"), "sources.pcie_bandwidth", "needs its source"),
    (lambda d: (d["figures"].update(local_memory_capacity="1 TB"), d["sources"].update(local_memory_capacity="x")),
     "figures.local_memory_bandwidth", "both"),
    (lambda d: d.update(name="other"), "name", "the file's name"),
])
def test_a_bad_figure_is_refused_in_one_line_naming_file_and_key(tmp_path, change, key, why):
    path = write(tmp_path, change)
    with pytest.raises(hardware.ProfileError) as e:
        hardware.load_file(path)
    assert str(e.value).startswith(f"{path}: {key}: ") and why in str(e.value) and "\n" not in str(e.value)


def test_a_topology_naming_no_profile_is_refused():
    doc = {"name": "hw", "nodes": {"c0": {"kind": "compute", "hardware": "dgx-h200"}, "c1": {"kind": "compute"},
                                   "s0": {"kind": "switch"}},
           "links": [{"endpoints": ["c0", "s0"]}, {"endpoints": ["c1", "s0"]}]}
    with pytest.raises(TopologyError, match=r"nodes\.c0\.hardware: no hardware profile 'dgx-h200' \(one of"):
        topology_from_dict(doc, "hw.yaml")
    doc["nodes"]["c0"]["hardware"] = "sn40l-node"
    topo = topology_from_dict(doc, "hw.yaml")
    assert topo.hardware("c0").name == "sn40l-node" and topo.hardware("c1").name == hardware.DEFAULT


def test_the_lru_counts_hits_and_evicts_the_least_recently_used():
    lru = coe.Lru(2)
    seen = [lru.touch(e) for e in (0, 1, 0, 2, 1, 3, 0, 3)]
    assert seen == [(False, None), (False, None), (True, None), (False, 1), (False, 0), (False, 2), (False, 1),
                    (True, None)]
    assert coe.replay([coe.Request(0.0, e, 1) for e in (0, 1, 0, 2, 1, 3, 0, 3)], 2) == (2, 6)


def test_where_a_node_keeps_150_experts_of_7b():
    nbytes = coe.expert_bytes("7B", "bf16")
    assert nbytes == 14e9
    sn40l = coe.holding(hardware.load("sn40l-node"), 0, 1, 150, nbytes)
    assert (sn40l.hbm_slots, sn40l.tier, len(sn40l.held), sn40l.stored) == (36, "local", 150, ())
    h100 = coe.holding(hardware.load("dgx-h100"), 0, 1, 150, nbytes)
    assert (h100.hbm_slots, h100.tier, len(h100.held), h100.stored) == (45, "host", 146, (146, 147, 148, 149))
    two = [coe.holding(hardware.load("dgx-h100"), i, 2, 6, nbytes) for i in range(2)]
    assert [h.held for h in two] == [(0, 2, 4), (1, 3, 5)]


def timed(model, copies) -> float:
    began = time.monotonic()
    for c in copies:
        c.wait()
    return time.monotonic() - began


@pytest.mark.parametrize("name", ["dgx-h100", "dgx-a100", "sn40l-node"])
def test_an_expert_switch_in_the_node_model_takes_what_the_profile_says(name):
    """A DGX's miss: every GPU's share over its PCIe link, two GPUs to a switch uplink, from host
    memory: the expert over the uplinks' total (or host memory, if slower). SN40L's: each
    socket's share from its own DDR. Both within 10%, each run at a scale that makes it 0.25 s."""
    p, nbytes = hardware.load(name), 14e9
    if name == "sn40l-node":
        bound, tier = p.local_memory_bandwidth * p.accelerators, "local"
    else:
        uplinks = p.accelerators // p.accelerators_per_root_complex
        bound = min(p.pcie_bandwidth * p.accelerators, p.root_complex_bandwidth * uplinks, p.host_memory_bandwidth)
        tier = "host"
    for expected, start in ((nbytes / bound, lambda m: switch(m, nbytes, tier)),
                            (4 * nbytes / (p.hbm_bandwidth * p.accelerators), lambda m: decode(m, nbytes, 4))):
        scale = expected / 0.25
        model = NodeModel(NodeParams.from_profile(p).scaled(scale))
        assert timed(model, start(model)) * scale == pytest.approx(expected, rel=0.10)


def test_a_trace_file_is_read_in_time_order_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("# t,expert,tokens\n0.5,1,8\n0.1,0,4\n")
    assert coe.read_trace(path, 2) == [coe.Request(0.1, 0, 4), coe.Request(0.5, 1, 8)]
    path.write_text("0.1,0,4\n0.2,7,4\n")
    with pytest.raises(ValueError, match=r"trace.csv: request 2: t >= 0, expert in 0..1"):
        coe.read_trace(path, 2)
    path.write_text("0.1,zero,4\n")
    with pytest.raises(ValueError, match=r"request 1: must be t,expert,tokens"):
        coe.read_trace(path, 2)
