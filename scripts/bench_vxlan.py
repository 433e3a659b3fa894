#!/usr/bin/env python3
"""What a link that crosses machines costs: one TCP flow (3 s) across a leaf-spine of two leaves and
one spine, built on one machine (every link a veth pair) and over 2 emulated machines (emu up
--machines 2: the leaf0-spine0 link a VXLAN tunnel between the machines' namespaces), unshaped
and shaped. The two labs are measured in turn, so a slow moment of the machine hits both.

Run as root:  python scripts/bench_vxlan.py [--runs 3] [--markdown docs/results/vxlan.md]
"""
import argparse
import statistics
import uuid

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.metrics.mesh import tcp_mesh
from emu.report.bench import Bench, Column, add_flow_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build


def flow(rate: str, machines: int, seconds: float) -> tuple[float, int]:
    """bits/s and retransmits of one flow c0 -> c1."""
    topo = build("leaf-spine", f"vx{uuid.uuid4().hex[:6]}", leaves=2, spines=1, hosts_per_leaf=1, rate=rate)
    with Lab.up(topo, machines=machines) as lab:
        crossing = [(l["a"], l["b"]) for l in lab.status()["links"] if l["crosses"]]
        assert len(crossing) == (machines > 1), crossing
        tcp_mesh(lab.hosts())           # the first packets' path set up before the clock starts
        before = lab.node("c0").tcp_retransmits()
        (result,) = run_flows(lab, [Flow("c0", "c1")], seconds)
        return result["bps"], lab.node("c0").tcp_retransmits() - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flow_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    table = bench.table(f"One TCP flow, {args.seconds:g} s, median of {args.runs}: on one machine against over two "
                        "(the spine link a VXLAN tunnel)", [
                            Column("shaped", "links at"), Column("within", "one machine", "{:.2f} Gbit/s"),
                            Column("across", "two machines", "{:.2f} Gbit/s"),
                            Column("ratio", "two / one", "{:.0%}"), Column("spread", "run by run"),
                            Column("retrans_within", "retransmits (one)"), Column("retrans", "retransmits (two)")])
    for rate in ("100Gbit", "2Gbit", "200Mbit"):
        within, across = [], []
        for _ in range(args.runs):
            within.append(flow(rate, 1, args.seconds))
            across.append(flow(rate, 2, args.seconds))
        w, a = (statistics.median(b for b, _ in runs) for runs in (within, across))
        ratios = [b / x for (x, _), (b, _) in zip(within, across)]
        table.add(shaped="unshaped (100Gbit)" if rate == "100Gbit" else rate, within=w / 1e9, across=a / 1e9,
                  ratio=a / w, spread=f"{min(ratios):.0%}-{max(ratios):.0%}",
                  retrans_within=int(statistics.median(r for _, r in within)),
                  retrans=int(statistics.median(r for _, r in across)))
    table.note("Unshaped, the figure is what this machine's 2 cores carry through each path (the tunnel adds its "
               "encapsulation, an underlay port and a bridge to the path's work), and one flow's rate moves from "
               "run to run (the spread: each run over two machines against the run on one just before it). Shaped "
               "to a lab link's rate, both carry the rate: the tunnel is not where a lab's queues build. Retransmits: the sender's, in the flow's seconds "
               "(a shaped port's queue drops when TCP overruns it, on either lab).")
    bench.close()


if __name__ == "__main__":
    main()
