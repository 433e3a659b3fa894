#!/usr/bin/env python3
"""Traffic figures of docs/results.md: how close one TCP flow gets to its shaped rate, what the machine
carries unshaped on the same path, and the share a marked (VL1) flow keeps against 4 unmarked ones.

Run as root:  python scripts/bench_traffic.py [--runs 3]
"""
import argparse
import statistics
import uuid

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.qos import QosPolicy
from emu.terminate import clean_up_on_sigterm
from emu.topo import build


def single_flow(rate: str, seconds: float) -> float:
    topo = build("leaf-spine", f"b{uuid.uuid4().hex[:6]}", leaves=2, spines=1, hosts_per_leaf=1, rate=rate)
    with Lab.up(topo) as lab:
        return run_flows(lab, [Flow("c0", "c1")], seconds)[0]["bps"]


def marked_share(isolation: bool, cc: str | None, seconds: float) -> float:
    """1 hfreduce (VL1) flow against 4 unmarked (VL0) flows into one 200 Mbit egress."""
    topo = build("star", f"b{uuid.uuid4().hex[:6]}", hosts=6, rate="200Mbit", qos=QosPolicy(isolation=isolation))
    with Lab.up(topo) as lab:
        flows = [Flow("c1", "c0", "hfreduce", cc=cc)] + [Flow(f"c{i}", "c0", cc=cc) for i in range(2, 6)]
        results = run_flows(lab, flows, seconds)
    return results[0]["bps"] / sum(r["bps"] for r in results)


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    print(f"# one TCP flow, Mbit/s at the receiver, median (min-max) of {args.runs} runs")
    for rate, bps in (("100Mbit", 100e6), ("1Gbit", 1e9), ("100Gbit", None)):
        got = [single_flow(rate, args.seconds) / 1e6 for _ in range(args.runs)]
        label = "unshaped (100Gbit)" if bps is None else rate
        share = "" if bps is None else f"  = {statistics.median(got) * 1e6 / bps:.1%} of the rate"
        print(f"{label:<20} {spread(got, '{:.0f}')}{share}", flush=True)
    weights = QosPolicy().vlarb
    print(f"\n# share of the marked flow; weighted share {weights[1] / (weights[1] + weights[0]):.0%}, fair share 20%")
    for isolation in (True, False):
        for cc in ("cubic", "bbr"):
            got = [marked_share(isolation, cc, args.seconds) for _ in range(args.runs)]
            print(f"isolation {'on ' if isolation else 'off'} {cc:<6} {spread(got, '{:.0%}')}", flush=True)


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
