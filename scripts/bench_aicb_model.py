#!/usr/bin/env python3
"""How long the flow model takes to play AICB files at paper size, and what it finds.

- a 1,024-GPU file `emu workload aicb` writes (gpt2-medium, TP 8, PP 2, 4 micro-batches) on a
  128-node leaf-spine (8 leaves of 16 nodes, 4 spines);
- SimAI's own 9,216-GPU MoE example (tests/data/simai/workload_analytical.txt: TP 2, EP 16, PP 12,
  1,789 layers) on the first 1,152 nodes of Fire-Flyer 2 (topologies/fire-flyer-2.yaml).
One iteration each, uncalibrated (the calibration is this machine's lab, not the cluster's);
times in the real system's seconds. No root:

    python scripts/bench_aicb_model.py [--markdown docs/results/aicb-model.md]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cluster.aicb import dump, from_model  # noqa: E402
from cluster.models import model  # noqa: E402
from emu.experiments.scenario import load_scenario  # noqa: E402
from emu.model.run import model_run  # noqa: E402
from emu.report.bench import Bench, Column, add_options  # noqa: E402
from emu.topo.loader import load_topology  # noqa: E402

FF2 = ROOT / "topologies" / "fire-flyer-2.yaml"
SIMAI = ROOT / "tests" / "data" / "simai" / "workload_analytical.txt"


def play(name: str, topology, file: Path, nodes: list[str], out: Path) -> dict:
    began = time.monotonic()
    doc = {"name": name, "topology": topology, "duration": "1s",
           "workloads": [{"name": "w", "type": "aicb", "file": str(file), "nodes": nodes, "iterations": 1}]}
    summary, _ = model_run(load_scenario(doc), str(out))
    w = summary["workloads"][0]
    return {"seconds": time.monotonic() - began, **{k: w[k] for k in ("iteration_s", "compute_s", "exposed_comm_s")},
            "collectives": len(w["collectives"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap)
    bench = Bench(ap.parse_args())
    table = bench.table("The flow model on AICB files at paper size (one iteration, uncalibrated)",
                        [Column("what", "file and fabric"), Column("gpus", "GPUs"),
                         Column("seconds", "model run", "{:.1f} s"), Column("collectives", "distinct collectives"),
                         Column("iteration_s", "iteration", "{:.3f} s"), Column("compute_s", "compute", "{:.3f} s"),
                         Column("exposed_comm_s", "exposed comm.", "{:.3f} s")])
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "gpt2-1024.txt"
        file.write_text(dump(from_model(model("gpt2-medium"), 1024, tp=8, pp=2, ga=4)))
        leaf_spine = {"name": "ls128", "scale": 0.001,
                      "fabric": {"type": "leaf-spine", "leaves": 8, "spines": 4, "hosts_per_leaf": 16}}
        table.add(what="gpt2-medium TP 8 PP 2, 128-node leaf-spine", gpus=1024,
                  **play("gpt2", leaf_spine, file, [f"c{i}" for i in range(128)], Path(tmp) / "a"))
        nodes = [n.name for n in load_topology(str(FF2)).hosts() if n.kind == "compute"][:1152]
        table.add(what="SimAI's MoE example, Fire-Flyer 2", gpus=9216,
                  **play("simai", str(FF2), SIMAI, nodes, Path(tmp) / "b"))
    table.note("Fire-Flyer 2's nodes are PCIe A100s with one NIC: every collective across nodes is held by the "
               "GPU-NIC path (9 GiB/s shared by the node's GPUs), which is why the MoE example's iteration is long.")
    bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
