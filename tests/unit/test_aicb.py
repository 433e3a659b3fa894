"""AICB workload files read as SimAI reads them: SimAI's own example files, the tutorial's, round
trips, and one-line refusals naming the line and the field."""
from collections import Counter
from pathlib import Path

import pytest

from cluster.aicb import Comm, FormatError, dump, load, parse

DATA = Path(__file__).parents[1] / "data" / "simai"
TUTORIAL_256 = """HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 1 pp: 1 vpp: 8 ga: 1 all_gpus: 256 checkpoints: 0 checkpoint_initiates: 0
1
embedding_layer     -1 556000         NONE 0        1      NONE   0      1 ALLREDUCE   536870912      1
"""


def test_simais_micro_allreduce():
    w = load(DATA / "microAllReduce.txt")
    assert (w.policy, w.tp, w.ep, w.pp, w.vpp, w.ga, w.gpus, w.dp) == ("HYBRID_TRANSFORMER_FWD_IN_BCKWD", 8, 1, 1, 8,
                                                                        1, 8, 1)
    assert [layer.comms["fwd"] for layer in w.layers] == [Comm("allreduce", "tp", 16777216, "ALLREDUCE"),
                                                         Comm("allreduce", "tp", 67108864, "ALLREDUCE")]
    assert w.layers[0].compute == {"fwd": 556000, "ig": 1, "wg": 1} and w.layers[0].comms["wg"] is None


def test_simais_9216_gpu_moe_workload():
    w = load(DATA / "workload_analytical.txt")
    assert (w.tp, w.ep, w.pp, w.vpp, w.ga, w.gpus, w.pp_comm, w.dp) == (2, 16, 12, 8, 24, 9216, 50331648, 384)
    assert len(w.layers) == 1789
    by_name = {layer.name: layer for layer in w.layers[:10]}
    assert by_name["grad_gather"].comms["wg"] == Comm("allgather", "dp", 2807758848, "ALLGATHER")
    assert by_name["moe_grad_norm1"].comms["wg"] == Comm("allgather", "dp_ep", 19327352832, "ALLGATHER_DP_EP")
    column = by_name["attention_column"]
    assert column.comms["fwd"] == Comm("allgather", "tp", 50331648, "ALLGATHER")
    assert column.comms["ig"] == Comm("reducescatter", "tp", 0, "REDUCESCATTER")
    assert column.compute == {"fwd": 1750840, "ig": 875420, "wg": 875420} and column.update == 100
    count = Counter((phase, c.name, c.group) for layer in w.layers for phase, c in layer.comms.items() if c)
    # the MoE layers' dispatch and combine: 384 of each, in the TP group and in the EP group
    assert count[("fwd", "ALLTOALL", "tp")] == count[("fwd", "ALLTOALL_EP", "ep")] == 384
    assert count[("ig", "ALLTOALL", "tp")] == count[("ig", "ALLTOALL_EP", "ep")] == 384
    assert sum(count.values()) == 3540


@pytest.mark.parametrize("name", ["microAllReduce.txt", "workload_analytical.txt"])
def test_what_is_written_reads_back_the_same(name):
    w = load(DATA / name)
    assert parse(dump(w)) == w


def test_the_tutorials_weight_gradient_allreduce_is_the_dp_groups():
    w = parse(TUTORIAL_256)
    assert w.dp == 32 and w.layers[0].comms["wg"] == Comm("allreduce", "dp", 536870912, "ALLREDUCE")


def test_simais_reading_of_allreduce_alltoall_is_kept():
    w = parse(TUTORIAL_256.replace("ALLREDUCE   536870912", "ALLREDUCEALLTOALL_EP 64"))
    assert w.layers[0].comms["wg"] == Comm("allreduce", None, 64, "ALLREDUCEALLTOALL_EP")


HEAD = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 1 pp: 1 vpp: 8 ga: 1 all_gpus: 256 checkpoints: 0 checkpoint_initiates: 0"
ROW = "l0 -1 5 NONE 0 1 NONE 0 1 ALLREDUCE 64 1"


@pytest.mark.parametrize("text, where", [
    ("", "line 1: policy: empty"),
    ("DATA\n1\n" + ROW, "line 1: policy: 'DATA': emu reads"),
    (HEAD.replace("ga: 1 ", "") + "\n1\n" + ROW, "line 1: ga: missing or 0"),
    (HEAD.replace("ep: 1", "ep: x") + "\n1\n" + ROW, "line 1: ep: 'x' is not an integer"),
    (HEAD.replace("all_gpus: 256", "all_gpus: 100") + "\n1\n" + ROW, "line 1: all_gpus: 100 is not a multiple"),
    (HEAD.replace("ep: 1", "ep: 3") + "\n1\n" + ROW, "line 1: ep: 3 does not divide the data-parallel group"),
    (HEAD.replace("pp: 1", "pp: 2") + "\n1\n" + ROW, "line 1: pp_comm: needed with pp > 1"),
    (HEAD + " pp_comm 64\n1\n" + ROW, "line 1: pp_comm: given with pp 1"),
    (HEAD.replace("checkpoints: 0", "checkpoints: 1 7") + "\n1\n" + ROW, "line 1: checkpoints: layer 7 does not exist"),
    (HEAD + " tp: 2\n1\n" + ROW, "line 1: tp: unknown key"),
    (HEAD + "\n", "line 2: layers: missing"),
    (HEAD + "\ntwo\n" + ROW, "line 2: layers: 'two' is not an integer"),
    (HEAD + "\n2\n" + ROW, "line 4: layers: line 2 says 2 layers, the file has 1"),
    (HEAD + "\n1\n" + ROW + "\n" + ROW, "line 4: layers: line 2 says 1 layers, the file has 2"),
    (HEAD + "\n1\n" + ROW.replace(" 1", "", 1), "line 3: row: 11 fields, a layer has 12"),
    (HEAD + "\n1\n" + ROW.replace("ALLREDUCE", "BROADCAST"), "line 3: wg_comm: 'BROADCAST' is not a collective"),
    (HEAD + "\n1\n" + ROW.replace("ALLREDUCE", "ALLREDUCE_TP"), "line 3: wg_comm: 'ALLREDUCE_TP' is not a collective"),
    (HEAD + "\n1\n" + ROW.replace(" 64", " -64"), "line 3: wg_bytes: -64 is negative"),
    (HEAD + "\n1\n" + ROW.replace(" 5 ", " 5.5 "), "line 3: fwd_compute: '5.5' is not an integer"),
])
def test_a_malformed_file_is_refused_in_one_line(text, where):
    with pytest.raises(FormatError) as e:
        parse(text, "w.txt")
    assert str(e.value).startswith(f"w.txt: {where}"), str(e.value)
    assert "\n" not in str(e.value)


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(FormatError, match="nope.txt: cannot read it"):
        load(tmp_path / "nope.txt")
