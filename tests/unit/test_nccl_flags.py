"""nccl-tests' command line as `emu bench` takes it: names, sizes, datatypes, ops (no root, no lab)."""
import pytest
from click.testing import CliRunner

import emu.cli.bench as cli
from emu.errors import EmuError
from cluster.collectives import lab_size
from emu.experiments.nccl_flags import collective, datatypes, ops, size_series

M = 2**20


def test_test_names_as_nccl_tests_spells_them():
    assert collective("all_reduce_perf") == collective("all_reduce") == collective("allreduce") == "allreduce"
    assert collective("reduce_scatter_perf") == "reducescatter" and collective("all_gather_perf") == "allgather"
    assert collective("broadcast_perf") == "broadcast" and collective("reduce_perf") == "reduce"
    assert collective("alltoall_perf") == "alltoall" and collective("sendrecv_perf") is None


def test_sizes_step_by_factor_or_by_bytes():
    assert size_series("8M", "64M", 2) == [8 * M, 16 * M, 32 * M, 64 * M]
    assert size_series("1M", "4M", 1, "1M") == [M, 2 * M, 3 * M, 4 * M]
    assert size_series("186M", "186M") == [186 * M]
    assert size_series("8", "100", 4) == [8, 32]                      # the end need not be on the series
    for bad in (("64M", "8M", 2), ("1M", "2M", 0.5), ("1Q", "2M", 2)):
        with pytest.raises(EmuError):
            size_series(*bad)


def test_datatypes_and_ops():
    assert datatypes("float") == ["fp32"] and datatypes("half") == ["fp16"] and datatypes("bfloat16") == ["bf16"]
    assert datatypes("bf16") == ["bf16"] and datatypes("f8e4m3") == ["fp8"]
    assert datatypes("all") == ["fp32", "fp16", "bf16", "fp8"]
    assert ops("prod") == ["prod"] and ops("all") == ["sum", "prod", "max", "min"]
    with pytest.raises(EmuError, match="datatype 'double'"):
        datatypes("double")
    with pytest.raises(EmuError, match="op 'avg'"):
        ops("avg")


def test_lab_size_is_scale_times_dilation_in_whole_elements():
    assert lab_size(186 * M, 0.0005, 100, 4) == int(186 * M * 0.05) // 4 * 4
    assert lab_size(8, 0.001, 1, 2) == 2                              # never empty


@pytest.fixture
def captured(monkeypatch):
    """What the bench commands pass on, without a lab."""
    calls = []

    class FakeLab:
        name = "fake"

    monkeypatch.setattr(cli, "attach", lambda *a, **k: FakeLab())
    monkeypatch.setattr(cli, "_run_bench", lambda lab, coll, algo, **o: calls.append((coll, algo, o)))
    return calls


def test_flags_as_nccl_tests_users_type_them(captured):
    argv = ["bench", "all_reduce_perf", "--lab", "x", "-b", "8M", "-e", "186M", "-f", "2", "-n", "20", "-w", "5",
            "-d", "bfloat16", "-o", "max", "--algo", "ring"]
    result = CliRunner().invoke(cli.main, argv)
    assert result.exit_code == 0, result.output
    ((coll, algo, o),) = captured
    assert (coll, algo) == ("allreduce", ["ring"])
    assert (o["minbytes"], o["maxbytes"], o["stepfactor"], o["iters"], o["warmup"], o["dtype"], o["op"]) == \
        ("8M", "186M", 2.0, 20, 5, "bfloat16", "max")


def test_long_flags_and_root(captured):
    argv = ["bench", "broadcast_perf", "--lab", "x", "--minbytes", "1M", "--maxbytes", "4M", "--stepbytes", "1M",
            "--warmup_iters", "2", "--datatype", "all", "--root", "9"]
    result = CliRunner().invoke(cli.main, argv)
    assert result.exit_code == 0, result.output
    ((coll, algo, o),) = captured
    assert (coll, algo, o["root"], o["warmup"], o["dtype"], o["stepbytes"]) == \
        ("broadcast", ["ring-broadcast"], 9, 2, "all", "1M")


@pytest.mark.parametrize("given,chosen", [("hfreduce,ring", ["hfreduce", "ring"]), ("ring, ring", ["ring"]),
                                          ("all", ["hfreduce", "hfreduce-nvlink", "ring", "tree"])])
def test_several_algorithms_in_one_run(captured, given, chosen):
    result = CliRunner().invoke(cli.main, ["bench", "allreduce", "--lab", "x", "--algo", given])
    assert result.exit_code == 0, result.output
    assert captured[0][1] == chosen


def test_an_unknown_algorithm_is_one_line(captured):
    result = CliRunner().invoke(cli.main, ["bench", "allreduce", "--lab", "x", "--algo", "ring,nope"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "'nope'" in result.output
    assert not captured
