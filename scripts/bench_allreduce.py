#!/usr/bin/env python3
"""Paper check for HFReduce vs NCCL (Fire-Flyer 2, Figure 7): allreduce of 186 MiB scaled with the lab.

On leaf-spine labs of 4 and 8 compute nodes (8 PCIe A100 GPUs each, 200 Gbit/s
links, everything at `--scale`), runs every algorithm on 186 MiB * scale per GPU
and prints, projected to real scale: algbw (data size / time, what the paper
calls inter-node bandwidth), busbw (nccl-tests), the algorithm's own bound in the
same run (its busiest modelled resource or link, from the bytes it really moved)
and how close it came. Run as root:  python scripts/bench_allreduce.py
"""
import argparse
import json

from emu.experiments.collectives import ALGOS, bench_collective
from emu.lab import Lab
from emu.report.project import to_real
from emu.topo import build

PAPER = {"hfreduce": "6.3-8.1", "hfreduce-nvlink": "> 10", "ring": "1.6-4.8 (NCCL)", "tree": "1.6-4.8 (NCCL)"}
PAPER_SIZE = 186 * 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.0005,
                    help="lab scale; Python on 2 cores keeps up better with slower emulated hardware")
    ap.add_argument("--dilation", type=float, default=1.0, help="emulated time runs this many times slower")
    ap.add_argument("--nodes", default="4,8")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    size = int(PAPER_SIZE * args.scale * args.dilation) // 4 * 4
    print(f"# allreduce of {size} B per GPU (186 MiB x {args.scale:g}), fp32, GB/s projected to real scale")
    print(f"{'algo':<16} {'nodes':>5} {'algbw':>7} {'busbw':>7} {'bound':>7} {'of bound':>8}  {'bound by':<12} "
          f"{'#wrong':>6}  paper (inter-node GB/s)")
    rows = []
    for n in (int(x) for x in args.nodes.split(",")):
        topo = build("leaf-spine", f"ar{n}", leaves=max(1, n // 2), spines=2, hosts_per_leaf=2 if n > 1 else 1,
                     scale=args.scale)
        with Lab.up(topo) as lab:
            for algo in ALGOS:
                r = bench_collective(lab, algo, sizes=[size], iters=args.iters)[0]
                rows.append(r)
                print(f"{algo:<16} {n:>5} {r['proj_algbw']:>7.2f} {r['proj_busbw']:>7.2f} "
                      f"{to_real(r['bound_algbw'], args.scale):>7.2f} {r['efficiency']:>8.0%}  {r['bound_by']:<12} "
                      f"{r['wrong']:>6}  {PAPER[algo]}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
