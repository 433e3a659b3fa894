#!/usr/bin/env python3
"""Paper check, Fig. 8a's direction: VGG16 data-parallel training with HFReduce against NCCL-style
ring allreduce as the DDP backend, step time and scaling from 1 to 8 nodes.

A 2-leaf, 2-spine lab of 8 compute nodes (8 GPUs each, 200 Gbit/s at scale 0.001); each job runs
`--steps` steps (the first is not counted), batch 32 per GPU, TF32 at half of the A100's peak,
VGG16 shrunk by the default size factor (about 8 MiB of gradients per GPU). Parallel efficiency
= samples/s on n nodes / (n x samples/s on one node). Run as root:  python scripts/bench_train.py
"""
import argparse

from emu.experiments.training import train
from emu.lab import Lab
from emu.report.plots import scaling_plot
from emu.terminate import clean_up_on_sigterm
from emu.topo import build


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--nodes", default="1,2,4,8")
    ap.add_argument("--plot", default="train-scaling.png")
    args = ap.parse_args()
    counts = [int(x) for x in args.nodes.split(",")]
    topo = build("leaf-spine", "trainb", leaves=2, spines=2, hosts_per_leaf=4, scale=0.001)
    print(f"# VGG16 DDP on {topo.summary()}")
    print(f"{'backend':>9} {'nodes':>5} {'step s':>7} {'compute':>8} {'comm':>6} {'exposed':>8} {'overlap':>8} "
          f"{'samples/s':>10} {'efficiency':>10} {'real step s':>11} {'wrong':>5}")
    rows = {}
    with Lab.up(topo) as lab:
        for backend in ("hfreduce", "ring"):
            rows[backend] = []
            for n in counts:
                nodes = [f"c{i}" for i in range(0, 8, 8 // n)] if n < 8 else [f"c{i}" for i in range(8)]
                r = train(lab, "vgg16", nodes, steps=args.steps, backend=backend)
                base = rows[backend][0]["samples_per_s"] / rows[backend][0]["nodes_n"] if rows[backend] else \
                    r["samples_per_s"] / n
                r["nodes_n"], r["efficiency"] = n, r["samples_per_s"] / (n * base)
                rows[backend].append(r)
                print(f"{backend:>9} {n:>5} {r['step_time_s']:>7.2f} {r['compute_s']:>8.2f} {r['comm_s']:>6.2f} "
                      f"{r['exposed_comm_s']:>8.2f} {r['overlap']:>8.0%} {r['samples_per_s']:>10.0f} "
                      f"{r['efficiency']:>10.0%} {r['proj_step_time_s']:>11.3f} {r['wrong']:>5}", flush=True)
    scaling_plot(rows, args.plot, "VGG16 DDP, batch 32 per GPU: HFReduce vs NCCL-style ring")
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
