"""AICB workloads beyond the format: SimAI's parallel groups, seen from whole nodes; the order an
iteration runs in; files written from emu's models; the scenario type's checks; the flow model
playing a file, up to SimAI's 9,216-GPU example on the whole Fire-Flyer 2 network."""
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cluster.aicb import dump, from_model, iteration, load, parse, timeline
from cluster.models import model
from cluster.node import NodeParams
from cluster.parallel import KINDS, groups, member_params, node_groups, pp_peers
from emu.errors import EmuError
from emu.experiments.scenario import load_scenario
from emu.model.paths import Fabric
from emu.model.run import from_steps, model_run
from emu.plan import make_plan
from emu.topo import build

DATA = Path(__file__).parents[1] / "data"
MOE = DATA / "aicb" / "moe-8nodes.txt"


def test_groups_as_simais_mock_nccl_group_places_them():
    # 8 GPUs, TP 2, EP 2: SimAI's MockNcclGroup gives these (DP stride T*P; EP over consecutive TP groups)
    assert groups("tp", 8, 2, 1, 2) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert groups("dp", 8, 2, 1, 2) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert groups("ep", 8, 2, 1, 2) == [[0, 2], [1, 3], [4, 6], [5, 7]]
    assert sorted(groups("dp_ep", 8, 2, 1, 2)) == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert sorted(map(sorted, groups("dp", 16, 2, 2, 1))) == [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14],
                                                             [3, 7, 11, 15]]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 4]), st.integers(1, 6))
def test_every_kind_of_group_partitions_the_gpus(tp, pp, ep, replicas):
    gpus = tp * pp * ep * replicas
    for kind in KINDS:
        found = groups(kind, gpus, tp, pp, ep)
        assert sorted(r for g in found for r in g) == list(range(gpus)), kind
        assert {len(g) for g in found} == {{"tp": tp, "dp": ep * replicas, "ep": ep, "dp_ep": replicas}[kind]}


def test_groups_from_whole_nodes():
    g = node_groups("dp", 64, 8, 2, 2, 8)     # DP stride 16: the even nodes, the odd ones
    assert g.sets == ((0, 2, 4, 6), (1, 3, 5, 7)) and (g.members, g.instances) == (1, 8)
    assert node_groups("ep", 64, 8, 2, 2, 8).sets == ((0, 1), (2, 3), (4, 5), (6, 7))
    assert node_groups("tp", 64, 8, 2, 2, 8).sets == tuple((n,) for n in range(8))
    assert pp_peers(64, 8, 2, 8) == Counter({(0, 1): 8, (2, 3): 8, (4, 5): 8, (6, 7): 8})
    # SimAI's 9,216-GPU example on 8-GPU nodes: EP groups of 16 ranks at stride 2 span 4 nodes
    ep = node_groups("ep", 9216, 2, 12, 16, 8)
    assert (len(ep.sets[0]), ep.members, ep.instances) == (4, 4, 2)


def test_groups_that_touch_nodes_unevenly_are_refused():
    with pytest.raises(ValueError, match="members on a node"):
        node_groups("tp", 12, 3, 1, 1, 4)        # TP groups of 3 across 4-GPU nodes


def test_a_members_hardware_stands_for_its_instances():
    node = NodeParams(gpus=8)
    one = member_params(node, 1)                 # a DP group's one member a node: 8 instances
    assert one.gpus == 1 and one.pcie_bps == 8 * node.pcie_bps and one.root_complex_bps == 4 * node.root_complex_bps
    assert one.gpu_nic_p2p_bps == node.gpu_nic_p2p_bps and one.host_mem_bps == node.host_mem_bps
    assert member_params(node, 8) == node


def test_an_iteration_runs_in_simais_order():
    w = load(MOE)
    ops = [(s.op, s.layer, s.phase) for s in iteration(w)]
    forward = [("compute", i, "fwd") for i in range(4)]
    assert [o for o in ops if o[2] == "fwd" and o[0] == "compute"] == forward
    assert ops.index(("pp", -1, "fwd")) > ops.index(("compute", 3, "fwd"))        # after the forward pass
    backward = [(o[1], o[2]) for o in ops if o[0] == "compute" and o[2] != "fwd"]
    assert backward == [(i, p) for i in (3, 2, 1, 0) for p in ("ig", "wg")]
    wg = [s for s in iteration(w) if s.op == "comm" and s.phase == "wg"]
    assert [s.layer for s in wg] == [3, 2, 1, 0] and not any(s.blocking for s in wg)


def test_activation_recomputation_replays_the_forward_from_the_checkpoint():
    text = MOE.read_text().replace("checkpoints: 0 checkpoint_initiates: 0",
                                   "checkpoints: 1 1 checkpoint_initiates: 1 3")
    ops = [(s.op, s.layer, s.phase) for s in iteration(parse(text))]
    at = ops.index(("compute", 3, "ig"))
    assert ops[at - 4:at] == [("compute", 1, "fwd"), ("comm", 1, "fwd"), ("compute", 2, "fwd"), ("comm", 2, "fwd")]


def test_the_timeline_overlaps_weight_gradients_and_nothing_else():
    w = parse("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 ep: 1 pp: 1 vpp: 1 ga: 1 all_gpus: 4 "
              "checkpoints: 0 checkpoint_initiates: 0\n2\n"
              "a -1 10 NONE 0 10 NONE 0 10 ALLREDUCE 100 1\nb -1 10 NONE 0 10 NONE 0 10 ALLREDUCE 100 1\n")
    # compute 60 ns; b's gradients (30 ns) start at 40 and run behind a's backward, a's (30) after them
    assert timeline(iteration(w), lambda s: 30e-9) == pytest.approx(
        {"iteration_s": 100e-9, "compute_s": 60e-9, "comm_s": 60e-9})
    assert timeline(iteration(w), lambda s: 5e-9)["iteration_s"] == pytest.approx(65e-9)


def test_files_written_from_models_read_back_and_hold_megatrons_collectives():
    w = from_model(model("moe-small"), 64, tp=8, pp=2, ep=2, ga=2)
    assert parse(dump(w)) == w
    assert (w.tp, w.pp, w.ep, w.ga, w.gpus, w.pp_comm) == (8, 2, 2, 2, 64, 1024 * 1024 * 2)
    names = Counter(c.name for layer in w.layers for c in layer.comms.values() if c)
    assert names["ALLTOALL_EP"] and names["ALLREDUCE"] and names["ALLREDUCE_DP_EP"]
    assert len(w.layers) == 2 * 13                           # ga micro-batches of the first stage's 13 layers
    assert all(layer.comms["wg"] is None for layer in w.layers[:13])     # gradients after the last micro-batch
    with pytest.raises(ValueError, match="no tensor-parallel split"):
        from_model(model("vgg16"), 16, tp=2)
    with pytest.raises(ValueError, match="must divide"):
        from_model(model("moe-small"), 24, tp=8, ep=2)


def scenario(file=str(MOE), nodes=8, **extra) -> dict:
    fabric = {"type": "leaf-spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 4}
    return {"name": "aicb", "topology": {"name": "aicbunit", "scale": 0.001, "fabric": fabric},
            "duration": "1s", "workloads": [{"name": "moe", "type": "aicb", "file": file,
                                             "nodes": [f"c{i}" for i in range(nodes)], **extra}]}


@pytest.mark.parametrize("change, message", [
    ({"nodes": 4}, "has 64 GPUs; the 4 nodes named hold 32 \\(8 each\\): name 8 nodes"),
    ({"file": "/nonexistent.txt"}, "workloads\\[0\\].file: /nonexistent.txt: cannot read it"),
    ({"compute": "fast"}, "workloads\\[0\\].compute: must be as-written or a factor"),
    ({"classes": {"tp": "nccl"}}, "workloads\\[0\\].classes: must map groups"),
    ({"classes": {"dp": "gold"}}, "workloads\\[0\\].classes.dp: unknown traffic class 'gold'"),
    ({"iterations": 0}, "workloads\\[0\\].iterations: must be a positive integer"),
    ({"ecmp": "per-packet"}, "workloads\\[0\\].ecmp: must be one of per-connection, per-step, got 'per-packet'")])
def test_bad_steps_are_refused_in_one_line(change, message):
    with pytest.raises(EmuError, match=message):
        load_scenario(scenario(**change))


def test_the_model_plays_a_file(tmp_path):
    summary, _ = model_run(load_scenario(scenario(iterations=2)), str(tmp_path / "run"))
    (w,) = summary["workloads"]
    assert w["compute_s"] == pytest.approx(0.018)
    assert w["compute_s"] < w["iteration_s"] < w["compute_s"] + w["comm_s"]
    assert w["exposed_comm_s"] == pytest.approx(w["iteration_s"] - w["compute_s"])
    by = {(c["type"], c["group"], c["bytes"]): c for c in w["collectives"]}
    assert by[("alltoall", "ep", 524288)]["count"] == 2 and by[("allreduce", "tp", 262144)]["count"] == 3
    assert all(c["busbw"] > 0 for c in w["collectives"])


def test_per_step_plays_each_ring_send_as_a_round_of_its_own_hashed_anew(tmp_path):
    per_step = load_scenario(scenario(iterations=1, ecmp="per-step"))
    (stepped,) = from_steps(per_step, per_step.topology)
    (whole,) = from_steps(load_scenario(scenario(iterations=1)), per_step.topology)
    assert stepped.rehash and not whole.rehash and len(stepped.rounds) > len(whole.rounds)
    assert sum(f[2] for r in stepped.rounds for f in r) == pytest.approx(sum(f[2] for r in whole.rounds for f in r))
    # split evenly over equal paths (no hashing), k sends of 1/k take the time of the whole
    runs = [model_run(s, str(tmp_path / name))[0]["workloads"][0]
            for name, s in (("steps", per_step), ("whole", load_scenario(scenario(iterations=1))))]
    assert runs[0]["comm_s"] == pytest.approx(runs[1]["comm_s"], rel=1e-6)
    # hashed, a send of another round may take another spine
    topo = build("leaf-spine", "ecmp", leaves=2, spines=2, hosts_per_leaf=4, routing="ecmp")
    fabric = Fabric(topo, make_plan(topo), hashing=3)
    assert len({tuple(fabric.routes("c0", "c4", flow=(r, 0))[0][0]) for r in range(16)}) == 2


@pytest.mark.heavy
def test_the_model_plays_simais_9216_gpu_example_on_fire_flyer_2(tmp_path):
    from emu.topo.loader import load_topology
    ff2 = str(Path(__file__).parents[2] / "topologies" / "fire-flyer-2.yaml")
    simai = DATA / "simai" / "workload_analytical.txt"
    nodes = [n.name for n in load_topology(ff2).hosts() if n.kind == "compute"][:1152]
    doc = {"name": "simai-9216", "topology": ff2, "duration": "1s",
           "workloads": [{"name": "moe", "type": "aicb", "file": str(simai), "nodes": nodes, "iterations": 1}]}
    summary, _ = model_run(load_scenario(doc), str(tmp_path / "run"))
    (w,) = summary["workloads"]
    assert w["compute_s"] == pytest.approx(sum(sum(layer.compute.values()) for layer in load(simai).layers) * 1e-9)
    assert w["iteration_s"] > w["compute_s"] and len(w["collectives"]) == 15
