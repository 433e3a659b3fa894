#!/usr/bin/env python3
"""What the sampler costs: CPU share of one core against period and lab size, and the time one
sample takes (below it, the sampler falls behind). Leaf-spine labs of 16, 64 and 128 hosts,
sampled for a few seconds while one bulk flow crosses the fabric.

Run as root:  python scripts/bench_sampler.py [--seconds 4]
"""
import argparse
import time
import uuid

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.metrics.sampler import Sampler, cpu_share
from emu.terminate import clean_up_on_sigterm
from emu.topo import build

SHAPES = [(16, dict(leaves=4, spines=2, hosts_per_leaf=4)), (64, dict(leaves=8, spines=4, hosts_per_leaf=8)),
          (128, dict(leaves=16, spines=4, hosts_per_leaf=8))]
PERIODS = (0.01, 0.02, 0.05, 0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    print(f"{'hosts':>5} {'ports':>5} {'period':>7} | {'CPU of a core':>13} {'per sample':>10} {'samples':>7} "
          f"{'late':>5}")
    for hosts, shape in SHAPES:
        with Lab.up(build("leaf-spine", f"s{uuid.uuid4().hex[:6]}", scale=0.001, **shape)) as lab:
            ports = sum(len(n.ports) for n in lab.plan.nodes)
            for period in PERIODS:
                sampler = Sampler(lab.plan, period).start()
                start = time.monotonic()
                run_flows(lab, [Flow("c0", f"c{hosts - 1}")], args.seconds)
                samples = sampler.stop()
                elapsed = time.monotonic() - start
                per_sample = samples.cpu_seconds / max(1, samples.taken - 1)
                print(f"{hosts:>5} {ports:>5} {period * 1e3:>5.0f}ms | {cpu_share(samples, elapsed):>12.1%} "
                      f"{per_sample * 1e3:>8.1f}ms {samples.taken:>7} {samples.late:>5}", flush=True)


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
