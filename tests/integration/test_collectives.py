"""Every allreduce algorithm on a real lab: exact results and bandwidth near the model's bound."""
import json
import subprocess
import sys

import pytest

from emu.experiments.collectives import ALGOS, bench_collective
from emu.topo import build

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(make_lab, lab_name):
    return make_lab(build("leaf-spine", lab_name, leaves=2, spines=1, hosts_per_leaf=1, scale=0.001))


@pytest.mark.parametrize("algo", ALGOS + ("alltoall",))
def test_collective_on_a_lab(lab, algo):
    rows = bench_collective(lab, algo, sizes=[256 * 1024], dtype="bf16", iters=2)
    (row,) = rows
    assert row["wrong"] == 0
    assert row["gpus"] == 16 and row["count"] == 128 * 1024
    # Two nodes on two cores: the run gets within reach of its own bound (busiest resource or link).
    assert 0.3 <= row["efficiency"] <= 1.05, row
    assert row["proj_busbw"] == pytest.approx(row["busbw"] / 0.001)


def test_hfreduce_beats_nccl_ring_on_pcie_nodes(lab):
    """The paper's point (Figure 7a): on PCIe A100 nodes HFReduce outruns NCCL's ring."""
    size = 512 * 1024
    hf = bench_collective(lab, "hfreduce", sizes=[size], iters=2)[0]
    ring = bench_collective(lab, "ring", sizes=[size], iters=2)[0]
    assert hf["wrong"] == ring["wrong"] == 0
    assert hf["algbw"] > 1.3 * ring["algbw"]


def test_cli_json_rows(lab):
    done = subprocess.run([sys.executable, "-m", "emu.cli", "bench", "allreduce", "--lab", lab.name,
                           "--algo", "tree", "--sizes", "64K:128K", "--iters", "1", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["size"] for r in rows] == [65536, 131072]
    assert set(rows[0]) == {"size", "count", "type", "redop", "time_us", "algbw", "busbw",
                            "proj_algbw", "proj_busbw", "wrong"}
    assert all(r["wrong"] == 0 and r["algbw"] > 0 for r in rows)
