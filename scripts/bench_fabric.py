#!/usr/bin/env python3
"""Bring-up and teardown time of star and leaf-spine labs, beside the raw floor measured in the same run.

The floor makes the same namespaces and veth pairs with one `ip -batch`, then
gives every interface its address and brings it up with one `ip -batch` per
namespace, and deletes the namespaces with one `ip -batch`: the least any
namespace emulator must do. The lab adds ownership marks, static neighbours,
routes, sysctls and the VL queues (HTB + 4 classes + 4 bfifos + 3 u32 filters
per egress port). Run as root:  python scripts/bench_fabric.py [--repeat 3]
"""
import argparse
import statistics
import time

from emu.fabric.batch import run_batch, run_batches
from emu.fabric.render import render
from emu.lab import Lab
from emu.plan import make_plan
from emu.topo import build

SHAPES = [
    ("star", 16, dict(hosts=16)),
    ("star", 64, dict(hosts=64)),
    ("star", 128, dict(hosts=128)),
    ("leaf-spine", 16, dict(leaves=4, spines=2, hosts_per_leaf=4)),
    ("leaf-spine", 64, dict(leaves=8, spines=4, hosts_per_leaf=8)),
    ("leaf-spine", 128, dict(leaves=16, spines=4, hosts_per_leaf=8)),
]


def floor(topo) -> tuple[float, float]:
    """Seconds to create and to delete the bare namespaces and veths of `topo`."""
    plan = make_plan(topo, "bfl")
    batch = render(plan)                   # reuse only its create lines: netns add + veth pairs
    start = time.perf_counter()
    run_batch("ip", batch.create_lines)
    run_batches([("ip", ["link set dev lo up"] + [l for p in node.ports
                                                   for l in (f"addr add {p.addr}/31 dev {p.ifname}",
                                                             f"link set dev {p.ifname} up")], node.netns)
                 for node in plan.nodes])
    up = time.perf_counter() - start
    start = time.perf_counter()
    run_batch("ip", [f"netns del {n}" for n in plan.netns_names()])
    return up, time.perf_counter() - start


def lab_times(topo) -> tuple[float, float]:
    start = time.perf_counter()
    lab = Lab.up(topo)
    up = time.perf_counter() - start
    start = time.perf_counter()
    lab.down()
    return up, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per shape; the median is reported")
    args = ap.parse_args()
    print(f"{'shape':<11} {'hosts':>5} {'ns':>4} {'veths':>5} | {'floor up':>8} {'lab up':>7} {'ratio':>5} | "
          f"{'floor down':>10} {'lab down':>8}")
    for kind, hosts, params in SHAPES:
        topo = build(kind, "bench", **params)
        floors, labs = [], []
        for _ in range(args.repeat):
            floors.append(floor(topo))
            labs.append(lab_times(topo))
        f_up = statistics.median(f[0] for f in floors)
        f_down = statistics.median(f[1] for f in floors)
        l_up = statistics.median(l[0] for l in labs)
        l_down = statistics.median(l[1] for l in labs)
        print(f"{kind:<11} {hosts:>5} {len(topo.nodes()):>4} {len(topo.links()):>5} | {f_up:>7.3f}s {l_up:>6.3f}s "
              f"{l_up / f_up:>4.1f}x | {f_down:>9.3f}s {l_down:>7.3f}s", flush=True)


if __name__ == "__main__":
    main()
