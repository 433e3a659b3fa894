#!/usr/bin/env python3
"""Bring-up and teardown time of star and leaf-spine labs and the whole Fire-Flyer 2 network, beside the raw floor measured in the same run.

The floor makes the same namespaces and veth pairs with one `ip -batch`, then
gives every interface its address and brings it up with one `ip -batch` per
namespace, and deletes the namespaces with one `ip -batch`: the least any
namespace emulator must do. The lab adds ownership marks, static neighbours,
routes, sysctls and the VL queues (HTB + 4 classes + 4 bfifos + 3 u32 filters
per egress port). Deleting a namespace returns before the kernel has freed it;
its cleanup work runs afterwards and slows whatever comes next, so each
measurement first waits until the CPUs are idle again ("settle", reported for
the lab's teardown). Run as root:

    python scripts/bench_fabric.py [--repeat 3] [--big] [--json] [--markdown docs/results/bring-up.md]
"""
import argparse
import statistics
import time

from emu.fabric.batch import run_batch, run_batches
from emu.fabric.render import render
from emu.lab import Lab
from emu.plan import make_plan
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
from emu.topo.loader import load_topology

SHAPES = [
    ("star", 16, dict(hosts=16)),
    ("star", 64, dict(hosts=64)),
    ("star", 128, dict(hosts=128)),
    ("leaf-spine", 16, dict(leaves=4, spines=2, hosts_per_leaf=4)),
    ("leaf-spine", 64, dict(leaves=8, spines=4, hosts_per_leaf=8)),
    ("leaf-spine", 128, dict(leaves=16, spines=4, hosts_per_leaf=8)),
]
# --big: zones of the paper's 40-port switches (20 hosts per leaf, 20 spines at 800) and the whole cluster
BIG = [
    ("leaf-spine", 256, dict(leaves=13, spines=7, hosts_per_leaf=20)),
    ("leaf-spine", 512, dict(leaves=26, spines=13, hosts_per_leaf=20)),
    ("leaf-spine", 800, dict(leaves=40, spines=20, hosts_per_leaf=20)),
    ("fire-flyer-2", 1380, "topologies/fire-flyer-2.yaml"),
]


def floor(topo) -> tuple[float, float]:
    """Seconds to create and to delete the bare namespaces and veths of `topo`."""
    plan = make_plan(topo, "bfl")
    batch = render(plan)                   # reuse only its create lines: netns add + veth pairs
    start = time.perf_counter()
    run_batch("ip", batch.create_lines)
    run_batches([("ip", ["link set dev lo up"] + [l for p in node.ports
                                                   for l in (f"addr add {p.addr}/31 dev {p.ifname}",
                                                             f"link set dev {p.ifname} up")], ns.netns)
                 for node, ns in zip(plan.nodes, batch.namespaces)])
    up = time.perf_counter() - start
    start = time.perf_counter()
    run_batch("ip", [f"netns del {n}" for n in batch.netns_names()])
    return up, time.perf_counter() - start


def lab_times(topo) -> tuple[float, float, float]:
    """Seconds to bring the lab up, to tear it down, and for the kernel to settle after."""
    start = time.perf_counter()
    lab = Lab.up(topo)
    up = time.perf_counter() - start
    start = time.perf_counter()
    lab.down()
    down = time.perf_counter() - start
    return up, down, settle()


def settle(idle: float = 0.9, window: float = 0.5, limit: float = 120.0) -> float:
    """Seconds until the CPUs are at least `idle` idle over a `window` (the kernel's namespace
    cleanup done), at most `limit`."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = _cpu()
        time.sleep(window)
        after = _cpu()
        if (after[1] - before[1]) / max(1, after[0] - before[0]) >= idle:
            break
    return time.perf_counter() - start


def _cpu() -> tuple[int, int]:
    """(all, idle) jiffies since boot, summed over CPUs."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per shape; the median is reported")
    ap.add_argument("--big", action="store_true", help="also 256, 512 and 800 hosts and the whole Fire-Flyer 2 network")
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    table = bench.table(f"Bring-up and teardown, median of {args.repeat}", [
        Column("shape", "shape"), Column("hosts", "hosts"), Column("namespaces", "namespaces"),
        Column("veths", "veths"), Column("floor_up_s", "floor up", "{:.3f} s"), Column("up_s", "lab up", "{:.3f} s"),
        Column("ratio", "lab / floor", "{:.1f}x"), Column("floor_down_s", "floor down", "{:.3f} s"),
        Column("down_s", "lab down", "{:.3f} s"), Column("settle_s", "settle", "{:.1f} s")])
    for kind, hosts, params in SHAPES + (BIG if args.big else []):
        topo = load_topology(params, name="bench") if isinstance(params, str) else build(kind, "bench", **params)
        floors, labs = [], []
        settle()
        for _ in range(args.repeat):
            floors.append(floor(topo))
            settle()
            labs.append(lab_times(topo))
        f_up, f_down = (statistics.median(f[i] for f in floors) for i in (0, 1))
        l_up, l_down, l_settle = (statistics.median(l[i] for l in labs) for i in (0, 1, 2))
        table.add(shape=kind, hosts=hosts, namespaces=len(topo.nodes()), veths=len(topo.links()), floor_up_s=f_up,
                  up_s=l_up, ratio=l_up / f_up, floor_down_s=f_down, down_s=l_down, settle_s=l_settle)
    table.note("Floor: the same namespaces and veths by one `ip -batch`, addresses and links up by one batch per "
               "namespace. Settle: until the CPUs are idle again after the lab's teardown (the kernel frees "
               "namespaces after `down` returns).")
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
