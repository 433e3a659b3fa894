#!/usr/bin/env python3
"""Our collectives against a library nobody on this project wrote: Open MPI's allreduce.

On fire-flyer-mini's 8 compute nodes (200 Gbit/s ports at 1/1000: 200 Mbit/s links), at each size
(bytes per rank, float32) and dilation 1, in the lab's nccl class:
- Open MPI's MPI_Allreduce through mpi4py (scripts/mpi_allreduce.py under emu mpirun, one rank a
  node): its default algorithm choice, and its ring forced (coll_tuned_allreduce_algorithm 4);
- our ring and HFReduce (the agents: 8 emulated GPUs a node, the node model's PCIe and memory
  copies), and our ring with the node model 1000x faster (host-memory buffers, as MPI's);
- the flow model's ring: with the node model, and on the network alone.
busbw is nccl-tests' (algbw x 2(n-1)/n, n the ranks). "of bound": Open MPI and the flow model's
network-only ring against the link's TCP payload rate (a ring's busbw bound); our agents against
their own bound in the run (their busiest modelled resource or link, from the bytes they moved).
Open MPI moves host memory while our agents model GPU copies: compare each as a share of its own
bound. Run as root:

    python scripts/bench_mpi.py [--sizes 1M,4M,16M,64M] [--iters 2] [--markdown docs/results/mpi.md]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from cluster.collectives import bus_factor
from cluster.node import NodeParams
from emu.experiments.collectives import bench_collective
from emu.experiments.mpirun import mpirun
from emu.lab import Lab
from emu.model.paths import Fabric
from emu.model.simulate import simulate
from emu.model.workloads import Workload, collective, collective_flows
from emu.plan.queues import TCP_PAYLOAD_SHARE
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import load_topology
from emu.units import parse_size

ROOT = Path(__file__).parents[1]
PROGRAM = ROOT / "scripts" / "mpi_allreduce.py"
MPI_RING = (("coll_tuned_use_dynamic_rules", "1"), ("coll_tuned_allreduce_algorithm", "4"))
NODE_OFF = 1000.0           # the node model this many times faster: only the network remains


def open_mpi(lab, sizes: list[int], iters: int, mca=()) -> dict[int, float]:
    """size -> seconds per allreduce (slowest rank's mean), every result checked exact."""
    argv = [sys.executable, str(PROGRAM), "--sizes", ",".join(map(str, sizes)), "--iters", str(iters)]
    with mpirun(lab, argv, traffic_class="nccl", mca=mca, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True) as proc:
        out, err = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"emu mpirun failed ({proc.returncode}): {err.strip()[-400:]}")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if any(r["wrong"] for r in rows):
        raise SystemExit(f"Open MPI's allreduce gave wrong sums: {rows}")
    return {r["size"]: r["time_us"] / 1e6 for r in rows}


def model_ring(lab, nodes: list[str], size: int, node_model: bool) -> float:
    """The flow model's seconds for one ring allreduce of `size` bytes a GPU (with the node model,
    8 GPUs a node) or a rank (network alone, one rank a node)."""
    fabric = Fabric(lab.topology, lab.plan)
    if node_model:
        work = collective("ring", "ring", nodes, size, NodeParams(gpus=lab.topology.node(nodes[0]).attrs["gpus"]))
    else:
        work = Workload("ring", "allreduce", "nccl", 0.0, [collective_flows("ring", nodes, size, 1)])
    (start, end), = simulate(fabric, [work]).rounds["ring"]
    return end - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,4M,16M,64M", help="bytes per rank (a GPU's buffer for our agents)")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--topology", default=str(ROOT / "topologies" / "fire-flyer-mini.yaml"))
    add_options(ap)
    args = ap.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    bench = Bench(args)
    pct = "{:.0%}"
    table = bench.table("Allreduce, float32, 8 nodes: Open MPI beside our collectives and the flow model "
                        "(busbw in lab MB/s, and of its bound)", [
        Column("size", "bytes a rank"),
        Column("mpi", "Open MPI default", "{:.2f}"), Column("mpi_b", "of bound", pct),
        Column("mpi_ring", "Open MPI ring", "{:.2f}"), Column("mpi_ring_b", "of bound", pct),
        Column("ring", "our ring", "{:.2f}"), Column("ring_b", "of own bound", pct),
        Column("ring_host", "our ring, node model off", "{:.2f}"), Column("ring_host_b", "of own bound", pct),
        Column("hfreduce", "HFReduce", "{:.2f}"), Column("hfreduce_b", "of own bound", pct),
        Column("model", "model ring", "{:.2f}"), Column("model_net", "model ring, network alone", "{:.2f}"),
        Column("model_net_b", "of bound", pct)])
    topo = load_topology(args.topology, "bmpi")
    with Lab.up(topo) as lab:
        nodes = [n.name for n in lab.nodes("compute")]
        n = len(nodes)
        link_MBps = lab.plan.slowest_bps(nodes) / 8 * TCP_PAYLOAD_SHARE / 1e6
        mpi = open_mpi(lab, sizes, args.iters)
        mpi_ring = open_mpi(lab, sizes, args.iters, MPI_RING)
        ours = {"ring": bench_collective(lab, "ring", nodes, sizes, iters=args.iters),
                "ring_host": bench_collective(lab, "ring", nodes, sizes, iters=args.iters, node_speed=NODE_OFF),
                "hfreduce": bench_collective(lab, "hfreduce", nodes, sizes, iters=args.iters)}
        for i, size in enumerate(sizes):
            row = {"size": size}
            for key, seconds in (("mpi", mpi[size]), ("mpi_ring", mpi_ring[size])):
                row[key] = size / seconds * bus_factor("ring", n) / 1e6
                row[f"{key}_b"] = row[key] / link_MBps
            for key, rows in ours.items():
                row[key], row[f"{key}_b"] = rows[i]["busbw"] * 1e3, rows[i]["efficiency"]
            ranks = ours["ring"][i]["gpus"]
            row["model"] = size / model_ring(lab, nodes, size, True) * bus_factor("ring", ranks) / 1e6
            row["model_net"] = size / model_ring(lab, nodes, size, False) * bus_factor("ring", n) / 1e6
            row["model_net_b"] = row["model_net"] / link_MBps
            table.add(**row)
    table.note(f"{args.topology.split('/')[-1]}: {n} compute nodes, 1 rank (Open MPI) or 8 GPUs (ours) a node, "
               f"links {lab.plan.slowest_bps(nodes) / 1e6:g} Mbit/s (TCP payload {link_MBps:.2f} MB/s), "
               f"dilation 1, mean of {args.iters} iterations after 1 warm-up; Open MPI {mpi_version()} through "
               f"mpi4py, TCP transport; its ring: coll_tuned_allreduce_algorithm 4")
    bench.close()


def mpi_version() -> str:
    done = subprocess.run(["mpirun", "--version"], capture_output=True, text=True)
    return done.stdout.split("\n")[0].split()[-1] if done.returncode == 0 else "?"


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
