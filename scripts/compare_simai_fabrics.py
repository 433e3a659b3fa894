#!/usr/bin/env python3
"""SimAI's Spectrum-X against DCN+ comparison, replayed in the flow model.

SimAI's tutorial (aliyun/SimAI, docs/Tutorial.md, "Spectrum-X architecture VS DCN+ architecture")
runs one AICB file on 256 H100 GPUs, 8 a node with a 400 Gbit/s NIC each: TP 8, and a weight
gradient ALLREDUCE of 16 MiB - 512 MiB in the data-parallel group (32 ranks, one a node, 8 such
groups at once). On Spectrum-X (rail-optimized, a single ToR a rail) it reports 45.65 GB/s busbw
at 512 MiB, on DCN+ single-ToR (a node's 8 NICs on one leaf of 64 NICs) 36.24.

Here, the same file (one a size) in `emu model run` on our builders of the same sizes, every port
400 Gbit/s, 64 spines, ECMP:
  rail-optimized   32 nodes, 8 rails of one leaf each (NIC i of every node on rail i's leaf)
  dcn-plus         32 nodes, 8 a leaf (4 leaves); a node's 8 NICs are one 3.2 Tbit/s link (the
                   Topology holds one link a pair), each GPU's ring a flow of its own
Each GPU's ring (its DP group) is a flow per edge over its own NIC; each flow takes one of its
equal-cost paths by a hash, as switches' per-flow ECMP does (seeds 0..N-1: which flows collide
is the hash's luck), once for the whole message (a connection an edge, as NCCL keeps them) and
once a send (`ecmp: per-step`: each of the ring's sends hashed anew, as SimAI's ns-3 backend
opens each send on a new source port). The nodes' hardware is taken out of the way (the node model 1000x faster):
the assumption that an H100 node's NVLink, PCIe Gen5 and GPU-NIC path outrun one 400 Gbit/s NIC
(emu's node model is Fire-Flyer 2's PCIe A100, whose GPU-NIC path would hold every ring to
9 GiB/s). No root:

    python scripts/compare_simai_fabrics.py [--seeds 20] [--markdown docs/results/simai-fabrics.md]
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emu.experiments.scenario import load_scenario  # noqa: E402
from emu.model.run import model_run  # noqa: E402
from emu.report.bench import Bench, Column, add_options  # noqa: E402
from emu.units import format_size  # noqa: E402

# SimAI's tutorial, busbw in GB/s: message size -> (Spectrum-X, DCN+ single-ToR)
SIMAI = {2**24: (33.095585, 23.332048), 2**25: (38.572166, 25.762846), 2**26: (42.049648, 23.677116),
         2**27: (44.036110, 35.209461), 2**28: (45.101425, 36.205692), 2**29: (45.653648, 36.242008)}
HEAD = ("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 1 pp: 1 vpp: 8 ga: 1 all_gpus: 256 "
        "checkpoints: 0 checkpoint_initiates: 0")
NODE_SPEED = 1000.0         # the node model out of the way: an H100 node's NVLink and PCIe Gen5 outrun a NIC
FABRICS = {"rail-optimized": {"type": "rail-optimized", "nodes": 32, "gpus_per_node": 8, "spines": 64},
           "dcn-plus": {"type": "dcn-plus", "nodes": 32, "gpus_per_node": 8, "nodes_per_leaf": 8, "spines": 64}}


def busbw(fabric: str, size: int, seed: int, tmp: Path, ecmp: str = "per-connection") -> float:
    """The DP allreduce's busbw (real GB/s) on `fabric` with ECMP hashed by `seed`, each ring edge
    one connection (`ecmp` per-connection) or each of the ring's sends one (per-step)."""
    file = tmp / f"simai-{size}.txt"
    file.write_text(f"{HEAD}\n1\nembedding_layer\t-1\t556000\tNONE\t0\t1\tNONE\t0\t1\tALLREDUCE\t{size}\t1\n")
    doc = {"name": "simai", "topology": {"name": fabric[:4], "scale": 0.001, "routing": {"mode": "ecmp"},
                                         "defaults": {"rate": "400Gbit"}, "fabric": FABRICS[fabric]},
           "duration": "1s", "workloads": [{"name": "w", "type": "aicb", "file": str(file), "iterations": 1,
                                            "nodes": [f"c{i}" for i in range(32)], "dilation": 1.0,
                                            "node_speed": NODE_SPEED, "ecmp": ecmp}]}
    summary, _ = model_run(load_scenario(doc), str(tmp / f"{fabric}-{size}-{seed}-{ecmp}"), hashing=seed)
    (row,) = [c for c in summary["workloads"][0]["collectives"] if c["group"] == "dp"]
    return row["busbw"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="hash seeds (which flows share an uplink)")
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    table = bench.table("Allreduce busbw (GB/s), 256 GPUs, DP group of 32: SimAI's against the flow model's",
                        [Column("size", "message"), Column("simai_rail", "SimAI Spectrum-X", "{:.2f}"),
                         Column("simai_dcn", "SimAI DCN+", "{:.2f}"), Column("simai_ratio", "SimAI ratio", "{:.2f}"),
                         Column("rail", "ours rail-optimized", "{:.2f}"), Column("dcn", "ours DCN+ (median)", "{:.2f}"),
                         Column("dcn_mean", "ours DCN+ (mean)", "{:.2f}"), Column("dcn_range", "ours DCN+ (min-max)"),
                         Column("clean", "seeds without a collision", "{:.0%}"),
                         Column("ratio", "our ratio (median)", "{:.2f}"),
                         Column("step", "ours DCN+, a connection a send (median)", "{:.2f}"),
                         Column("step_ratio", "its ratio", "{:.2f}")])
    with tempfile.TemporaryDirectory() as tmp:
        for size, (simai_rail, simai_dcn) in SIMAI.items():
            rail = busbw("rail-optimized", size, 0, Path(tmp))     # every ring edge on its rail's one leaf
            dcn = [busbw("dcn-plus", size, seed, Path(tmp)) for seed in range(args.seeds)]
            step = statistics.median(busbw("dcn-plus", size, seed, Path(tmp), "per-step") for seed in range(args.seeds))
            table.add(size=format_size(size), simai_rail=simai_rail, simai_dcn=simai_dcn,
                      simai_ratio=simai_rail / simai_dcn, rail=rail, dcn=statistics.median(dcn),
                      dcn_mean=statistics.mean(dcn), dcn_range=f"{min(dcn):.2f}-{max(dcn):.2f}",
                      clean=sum(b >= 0.999 * rail for b in dcn) / len(dcn), ratio=rail / statistics.median(dcn),
                      step=step, step_ratio=rail / step)
    table.note(f"Ours: {args.seeds} hash seeds a size. The model has rates and no latency, so its busbw does not "
               "grow with the message as SimAI's does (its per-message latency, AS_SEND_LAT, weighs at 16 MiB). "
               "'A connection a send': each of the ring's 62 sends on a connection of its own, hashed anew, as "
               "SimAI's ns-3 backend opens each send on a new source port; the model plays the 8 rings' sends "
               "in step (a round each), so a collision anywhere holds every ring for that send.")
    bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
