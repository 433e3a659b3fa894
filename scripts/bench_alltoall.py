#!/usr/bin/env python3
"""Section IX's question: all-to-all (MoE's dispatch) on today's node against the next-generation one.

Today's node: 8 PCIe A100 GPUs behind one 200 Gbit/s NIC, reached through the root complexes
and the ~9 GiB/s GPU<->NIC peer-to-peer path, on a leaf-spine. The next-generation node (the
paper gives its 1:1 GPU:NIC ratio and the 4-plane network of 400 Gbit/s switches; the rest is
this model's assumption, stated in cluster/node.py): a 400 Gbit/s NIC per GPU under one PCIe
switch with it, NIC i on plane i mod 4 of a multi-plane network, the GPUs, PCIe links and root
complexes as today. Both run nccl-tests' all-to-all of `--size` per GPU (the real system's),
dilated like scripts/bench_allreduce.py; rows are projected to the real system: algbw, busbw,
the run's own bound and what bounds it, how close it came, and the wall time.
Run as root:  python scripts/bench_alltoall.py
"""
import argparse
import json

from bench_allreduce import FIGURES_HEADER, figures, timed_run     # the paper check's run and columns
from emu.lab import Lab
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
from emu.units import parse_size

PLANES = 4


def today(nodes: int, scale: float):
    return build("leaf-spine", f"a2t{nodes}", leaves=max(1, nodes // 2), spines=2,
                 hosts_per_leaf=2 if nodes > 1 else 1, scale=scale)


def next_gen(nodes: int, scale: float):
    # two rails a plane: radix/2 leaves' worth of ports down must hold every node's rail
    radix = max(4, 2 * nodes)
    return build("multi-plane", f"a2n{nodes}", planes=PLANES, radix=radix, nics=8, nodes=nodes, scale=scale,
                 rate="400Gbit")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.0005, help="lab scale (rates)")
    ap.add_argument("--dilation", type=float, default=300.0, help="emulated time / the real system's")
    ap.add_argument("--nodes", default="4,8")
    ap.add_argument("--size", default="186M", help="bytes per GPU, the real system's")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    size = parse_size(args.size)
    print(f"# all-to-all, {args.size} per GPU, fp32, run at rates x{args.scale:g} and data "
          f"x{args.scale * args.dilation:g} (dilation {args.dilation:g}); GB/s projected to the real system")
    print(f"{'node':<9} {'nodes':>5} {'NICs':>4} {FIGURES_HEADER}")
    rows = []
    for n in (int(x) for x in args.nodes.split(",")):
        for kind, topology in (("today", today), ("next-gen", next_gen)):
            with Lab.up(topology(n, args.scale)) as lab:
                r = timed_run(lab, "alltoall", size, args)
                r.update(node=kind, nics=len(lab.node("c0").addrs))
            rows.append(r)
            print(f"{kind:<9} {n:>5} {r['nics']:>4} {figures(r, args.scale)}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
