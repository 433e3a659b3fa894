"""An AICB workload in a lab of 8 nodes: what each parallel group puts on the wire, read from the
switch's per-VL counters (each group in a class of its own), against what the file asks of it;
and the flow model's iteration against the lab's."""
from pathlib import Path

import pytest

from cluster.aicb import iteration, load, pp_bytes
from cluster.collectives import lab_size
from cluster.parallel import node_groups, pp_peers
from emu.experiments.runner import run_scenario
from emu.experiments.scenario import load_scenario
from emu.metrics.counters import vl_bytes
from emu.model.run import model_run
from emu.plan.queues import TCP_PAYLOAD_SHARE
from emu.topo import build

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

FILE = Path(__file__).parents[1] / "data" / "aicb" / "moe-8nodes.txt"
NODES = [f"c{i}" for i in range(8)]
CLASSES = {"dp": "nccl", "ep": "hfreduce", "dp_ep": "storage", "pp": "other"}
ITERATIONS, DILATION = 3, 300.0


def expected_payload(w, per_node: int, scale: float) -> dict[str, float]:
    """Bytes every node together sends an iteration, per group, from the file alone: a ring's
    node sends 2(D-1)/D (allreduce) or (D-1)/D (its phases) of its instances' data, an
    all-to-all's (s-1)/s of it to the other s-1 nodes of its set, a pipeline stage its ranks'
    micro-batches to the next stage and back."""
    out = {g: 0.0 for g in CLASSES}
    for step in iteration(w):
        if step.op == "pp":
            out["pp"] += sum(n for (a, b), n in pp_peers(w.gpus, w.tp, w.pp, per_node).items() if a != b) \
                * lab_size(pp_bytes(w), scale, DILATION, 4)
        if step.op != "comm" or step.comm.group == "tp":
            continue
        c = step.comm
        g = node_groups(c.group, w.gpus, w.tp, w.pp, w.ep, per_node)
        data = g.instances * lab_size(c.bytes, scale, DILATION, 4)
        s = len(g.sets[0])
        ranks = s * g.members
        share = {"allreduce": 2 * (ranks - 1) / ranks, "allgather": (ranks - 1) / ranks,
                 "reducescatter": (ranks - 1) / ranks, "alltoall": (s - 1) / s}[c.kind]
        out[c.group] += len(NODES) * share * data
    return out


@pytest.fixture
def lab(make_lab, lab_name):
    return make_lab(build("star", lab_name, hosts=8, scale=0.001))


def switch_vls(lab) -> dict[int, int]:
    """VL -> bytes the switch has sent towards every host."""
    total: dict[int, int] = {}
    for i, _ in enumerate(lab.status()["links"]):
        for vl, n in vl_bytes(lab, "sw0", f"swp{i}").items():
            total[vl] = total.get(vl, 0) + n
    return total


def test_each_groups_bytes_on_the_wire_match_the_file_and_the_model_its_iteration(lab, tmp_path):
    policy = lab.topology.qos
    w = load(FILE)
    scenario = {"name": "aicb-model", "topology": lab.topology.to_dict(), "duration": "1s",
                "workloads": [{"name": "moe", "type": "aicb", "file": str(FILE), "nodes": NODES,
                               "iterations": ITERATIONS, "dilation": DILATION, "classes": CLASSES}]}
    before = switch_vls(lab)
    summary, _ = run_scenario(load_scenario(scenario), str(tmp_path / "lab"), lab_name=lab.name)     # on this lab
    after = switch_vls(lab)
    expected = expected_payload(w, 8, lab.plan.scale)
    for group, traffic_class in CLASSES.items():
        vl = policy.vl_of_sl(policy.sl_of(traffic_class))
        carried = (after.get(vl, 0) - before.get(vl, 0)) * TCP_PAYLOAD_SHARE
        assert carried == pytest.approx(ITERATIONS * expected[group], rel=0.05), (group, carried, expected)

    (lab_figures,) = summary["workloads"]
    assert lab_figures["outcome"] == "ok" and lab_figures["compute_s"] == pytest.approx(0.018)   # 4 layers' compute
    assert {(c["type"], c["group"]) for c in lab_figures["collectives"]} == {
        ("allreduce", "tp"), ("allreduce", "dp"), ("alltoall", "ep"), ("allgather", "dp_ep"), ("reducescatter", "dp_ep")}
    summary, _ = model_run(load_scenario(scenario), str(tmp_path / "model"))
    model = summary["workloads"][0]
    assert model["iteration_s"] == pytest.approx(lab_figures["iteration_s"], rel=0.15), (model, lab_figures)
