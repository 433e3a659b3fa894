#!/usr/bin/env python3
"""What the sampler costs: CPU share of one core against period and lab size, and the time one
sample takes (below it, the sampler falls behind). Leaf-spine labs of 16, 64 and 128 hosts,
sampled for a few seconds while one bulk flow crosses the fabric.

Run as root:  python scripts/bench_sampler.py [--seconds 4] [--json] [--markdown docs/results/sampler.md]
"""
import argparse
import time
import uuid

from emu.daemon.client import request
from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.metrics.sampler import Sampler, cpu_share
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build

SHAPES = [(16, dict(leaves=4, spines=2, hosts_per_leaf=4)), (64, dict(leaves=8, spines=4, hosts_per_leaf=8)),
          (128, dict(leaves=16, spines=4, hosts_per_leaf=8))]
PERIODS = (0.01, 0.02, 0.05, 0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    table = bench.table("What the sampler costs", [
        Column("hosts", "hosts"), Column("ports", "ports"), Column("period_ms", "period", "{:.0f} ms"),
        Column("cpu", "CPU of a core", "{:.1%}"), Column("per_sample_ms", "per sample", "{:.1f} ms"),
        Column("samples", "samples"), Column("late", "late")])
    for hosts, shape in SHAPES:
        with Lab.up(build("leaf-spine", f"s{uuid.uuid4().hex[:6]}", scale=0.001, **shape)) as lab:
            request(lab.name, "status")         # the lab's daemon has started (its start-up is not ours)
            ports = sum(len(n.ports) for n in lab.plan.nodes)
            for period in PERIODS:
                sampler = Sampler(lab, period).start()
                start = time.monotonic()
                run_flows(lab, [Flow("c0", f"c{hosts - 1}")], args.seconds)
                samples = sampler.stop()
                elapsed = time.monotonic() - start
                table.add(hosts=hosts, ports=ports, period_ms=period * 1e3, cpu=cpu_share(samples, elapsed),
                          per_sample_ms=samples.cpu_seconds / max(1, samples.taken - 1) * 1e3,
                          samples=samples.taken, late=samples.late)
    table.note(f"Leaf-spine labs sampled for {args.seconds:g} s while one bulk flow crosses the fabric; a sample "
               "that takes longer than the period falls behind (late).")
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
