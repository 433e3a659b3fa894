#!/usr/bin/env python3
"""Our collectives against a library nobody on this project wrote: Open MPI's allreduce.

On fire-flyer-mini's 8 compute nodes (200 Gbit/s ports at 1/1000: 200 Mbit/s links; two zones
joined by one spine-to-spine link), at each size (bytes per rank, float32) and dilation 1, in the
lab's nccl class, a row per implementation:
- Open MPI's MPI_Allreduce through mpi4py (scripts/mpi_allreduce.py under emu mpirun, one rank a
  node): its default algorithm choice; its ring forced (coll_tuned_allreduce_algorithm 4); that
  ring with its ranks spinning while they wait (mpi_yield_when_idle 0, Open MPI's own default;
  emu mpirun makes them yield);
- our agents: the ring over 8 emulated GPUs a node (64 ranks) with the node model's copies, the
  same with the node model 1000x faster (host memory, as MPI's), the ring over one rank a node
  with the node model off (Open MPI's layout exactly), and HFReduce;
- the flow model: our ring with the node model; a ring on the network alone; the exchanges of the
  algorithm Open MPI's default picks here, Rabenseifner's (recursive halving, then doubling), on
  the network alone: that algorithm's bound on this fabric.
Each cell: busbw in lab MB/s (nccl-tests': algbw x 2(n-1)/n, n ranks) and, in brackets, its share
of a bound: Open MPI's and the model's network-only rows of the link's TCP payload rate (a ring's
busbw bound); our agents of their own bound in the run (their busiest modelled resource or link,
from the bytes they moved); the model's node-model ring of the link too. Run as root:

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
from emu.metrics.counters import fabric_drops
from emu.model.paths import Fabric
from emu.model.simulate import simulate
from emu.model.workloads import Workload, collective, collective_flows
from emu.plan.queues import TCP_PAYLOAD_SHARE
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import load_topology
from emu.topo.loader import topology_from_dict
from emu.units import format_size, parse_size

ROOT = Path(__file__).parents[1]
PROGRAM = ROOT / "scripts" / "mpi_allreduce.py"
RING = (("coll_tuned_use_dynamic_rules", "1"), ("coll_tuned_allreduce_algorithm", "4"))
RABENSEIFNER = (("coll_tuned_use_dynamic_rules", "1"), ("coll_tuned_allreduce_algorithm", "6"))
BIG_FRAGMENTS = (("btl_tcp_max_send_size", str(4 * 2**20)), ("btl_tcp_rdma_pipeline_send_length", str(4 * 2**20)))
WHY = {"lossy": (("Open MPI, its default choice", ()), ("Open MPI, Rabenseifner forced", RABENSEIFNER),
                 ("Open MPI ring", RING), ("Open MPI ring, 4 MiB TCP fragments", RING + BIG_FRAGMENTS)),
       "lossless": (("Open MPI, its default choice", ()), ("Open MPI ring", RING))}
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


def rabenseifner(nodes: list[str], size: int) -> list[list[tuple[str, str, float]]]:
    """Open MPI's reduce-scatter by recursive halving (partners at distance 1, 2, 4, ..., each
    round half the bytes of the one before), then its allgather by doubling, the rounds reversed."""
    rounds, distance, part = [], 1, size / 2
    while distance < len(nodes):
        rounds.append([(nodes[i], nodes[i ^ distance], part) for i in range(len(nodes))])
        distance, part = distance * 2, part / 2
    return rounds + rounds[::-1]


def model_seconds(lab, work: Workload) -> float:
    spans = simulate(Fabric(lab.topology, lab.plan), [work]).rounds[work.name]
    return spans[-1][1] - spans[0][0]


def one_rank_a_node(topo):
    """The topology with one GPU a compute node: our agents in Open MPI's layout."""
    doc = topo.to_dict()
    for node in doc["nodes"].values():
        if node["kind"] == "compute":
            node["gpus"] = 1
    return topology_from_dict(doc, topo.source, f"{topo.name}1")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,4M,16M,64M", help="bytes per rank (a GPU's buffer for our agents)")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--topology", default=str(ROOT / "topologies" / "fire-flyer-mini.yaml"))
    ap.add_argument("--why-size", type=parse_size, default=16 * 2**20, help="the size of the second table")
    add_options(ap)
    args = ap.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    bench = Bench(args)
    table = bench.table("Allreduce, float32, 8 nodes: busbw in lab MB/s (of its bound)",
                        [Column("what", "implementation")] + [Column(str(s), format_size(s)) for s in sizes])
    topo = load_topology(args.topology, "bmpi")
    cells = {}

    def add(what: str, busbw: dict[int, float], share: dict[int, float]) -> None:
        cells[what] = {str(s): f"{busbw[s]:.2f} ({share[s]:.0%})" for s in sizes}
        table.add(what=what, **cells[what])

    with Lab.up(topo) as lab:
        nodes = [n.name for n in lab.nodes("compute")]
        n, gpus = len(nodes), lab.topology.node(nodes[0]).attrs["gpus"]
        link = lab.plan.slowest_bps(nodes) / 8 * TCP_PAYLOAD_SHARE / 1e6       # MB/s of payload
        for what, mca in (("Open MPI, its default choice", ()), ("Open MPI ring", RING),
                          ("Open MPI ring, ranks spinning", RING + (("mpi_yield_when_idle", "0"),))):
            seconds = open_mpi(lab, sizes, args.iters, mca)
            busbw = {s: s / seconds[s] * bus_factor("ring", n) / 1e6 for s in sizes}
            add(what, busbw, {s: busbw[s] / link for s in sizes})
        for what, algo, speed in ((f"our ring, {gpus} GPUs a node", "ring", 1.0),
                                  (f"our ring, {gpus} GPUs a node, node model off", "ring", NODE_OFF),
                                  (f"HFReduce, {gpus} GPUs a node", "hfreduce", 1.0)):
            rows = {r["size"]: r for r in bench_collective(lab, algo, nodes, sizes, iters=args.iters,
                                                           node_speed=speed)}
            add(what, {s: rows[s]["busbw"] * 1e3 for s in sizes}, {s: rows[s]["efficiency"] for s in sizes})
        node_params = NodeParams(gpus=gpus)
        models = {      # name -> (the workload of one allreduce of s bytes a rank, its ranks)
            f"model: our ring, {gpus} GPUs a node": (lambda s: collective("m", "ring", nodes, s, node_params), n * gpus),
            "model: a ring, network alone": (lambda s: Workload("m", "allreduce", "nccl", 0.0,
                                                                [collective_flows("ring", nodes, s, 1)]), n),
            "model: Rabenseifner's exchanges, network alone": (lambda s: Workload("m", "allreduce", "nccl", 0.0,
                                                                                  rabenseifner(nodes, s)), n)}
        for what, (work, ranks) in models.items():
            busbw = {s: s / model_seconds(lab, work(s)) * bus_factor("ring", ranks) / 1e6 for s in sizes}
            add(what, busbw, {s: busbw[s] / link for s in sizes})
    with Lab.up(one_rank_a_node(topo)) as lab:
        rows = {r["size"]: r for r in bench_collective(lab, "ring", nodes, sizes, iters=args.iters,
                                                       node_speed=NODE_OFF)}
        add("our ring, 1 rank a node, node model off", {s: rows[s]["busbw"] * 1e3 for s in sizes},
            {s: rows[s]["efficiency"] for s in sizes})
    table.note(f"{Path(args.topology).name}: {n} compute nodes; links {lab.plan.slowest_bps(nodes) / 1e6:g} Mbit/s "
               f"(TCP payload {link:.2f} MB/s); dilation 1; mean of {args.iters} iterations after 1 warm-up; "
               f"Open MPI {mpi_version()} through mpi4py over TCP, one rank a node, under emu mpirun (ranks yield "
               f"while they wait unless spinning); its ring: coll_tuned_allreduce_algorithm 4")
    why = bench.table(f"Why Open MPI's default trails its ring: {format_size(args.why_size)} a rank",
                      [Column("what", "implementation"), Column("fabric", "fabric"),
                       Column("busbw", "busbw (lab MB/s)", "{:.2f}"), Column("share", "of the link", "{:.0%}"),
                       Column("drops", "switch drops")])
    lossless = topology_from_dict({**topo.to_dict(), "flow_control": {"mode": "lossless"}}, topo.source, "bmpil")
    for fabric, lab_topo in (("lossy", topo), ("lossless", lossless)):
        with Lab.up(lab_topo) as lab:
            for what, mca in WHY[fabric]:
                dropped = fabric_drops(lab)
                seconds = open_mpi(lab, [args.why_size], args.iters, mca)[args.why_size]
                busbw = args.why_size / seconds * bus_factor("ring", n) / 1e6
                why.add(what=what, fabric=fabric, busbw=busbw, share=busbw / link, drops=fabric_drops(lab) - dropped)
    why.note("Rabenseifner: coll_tuned_allreduce_algorithm 6; switch drops: every switch port's, over the run; "
             "4 MiB TCP fragments: btl_tcp_max_send_size and btl_tcp_rdma_pipeline_send_length 4 MiB (Open MPI's "
             "default 128 KiB)")
    bench.close()


def mpi_version() -> str:
    done = subprocess.run(["mpirun", "--version"], capture_output=True, text=True)
    return done.stdout.split("\n")[0].split()[-1] if done.returncode == 0 else "?"


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
