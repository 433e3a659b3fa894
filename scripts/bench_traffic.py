#!/usr/bin/env python3
"""Traffic figures of docs/results.md: how close one TCP flow gets to its shaped rate, what the machine
carries unshaped on the same path, and the share a marked (VL1) flow keeps against 4 unmarked ones.

Run as root:  python scripts/bench_traffic.py [--runs 3] [--json] [--markdown docs/results/traffic.md]
"""
import argparse
import statistics
import uuid

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.qos import QosPolicy
from emu.report.bench import Bench, Column, add_flow_options
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flow_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    spread = [Column("median", "median", "{:.0f}"), Column("min", "min", "{:.0f}"), Column("max", "max", "{:.0f}")]
    flows = bench.table(f"One TCP flow, Mbit/s at the receiver ({args.runs} runs)",
                        [Column("link", "link")] + spread + [Column("of_rate", "of the rate", "{:.1%}")])
    for rate, bps in (("100Mbit", 100e6), ("1Gbit", 1e9), ("100Gbit", None)):
        got = [single_flow(rate, args.seconds) / 1e6 for _ in range(args.runs)]
        flows.add(link="unshaped (100Gbit)" if bps is None else rate, median=statistics.median(got), min=min(got),
                  max=max(got), of_rate=None if bps is None else statistics.median(got) * 1e6 / bps)
    flows.note("1448 of every 1514 bytes on the wire are payload: ~95.6% of the rate is the ceiling.")
    weights = QosPolicy().vlarb
    shares = bench.table(f"Share of one marked (hfreduce, VL1) flow against 4 unmarked ones ({args.runs} runs)",
                         [Column("isolation", "isolation"), Column("cc", "cc")]
                         + [Column(c.key, c.header, "{:.0%}") for c in spread])
    for isolation in (True, False):
        for cc in ("cubic", "bbr"):
            got = [marked_share(isolation, cc, args.seconds) for _ in range(args.runs)]
            shares.add(isolation="on" if isolation else "off", cc=cc, median=statistics.median(got), min=min(got),
                       max=max(got))
    shares.note(f"Weighted share {weights[1] / (weights[1] + weights[0]):.0%}, fair share 20%.")
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
