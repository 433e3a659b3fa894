"""What a traffic class forced on a program costs: one iperf3 TCP flow with and without `--class`.

Two hosts on one switch; the client runs plain, then in a class (its cgroup joined, every packet's
DSCP set by the node's nftables rule), alternating, `--repeat` times each; the median goodput of
each. At a shaped rate both should reach the shaper; on a link faster than two cores can fill, the
difference is the rule's per-packet cost. Run as root:

    python scripts/bench_classes.py [--repeat 3] [--seconds 3] [--json] [--markdown docs/results/classes.md]
"""
import argparse
import json
import statistics
import uuid

from emu.lab import Lab
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
from emu.workloads.iperf3 import serve

RATES = ("1Gbit", "100Gbit")       # shaped (the lab's usual case), and faster than the CPU can send


def goodput(lab, seconds: float, traffic_class: str | None) -> float:
    """bit/s the server received from one iperf3 TCP flow."""
    server = serve(lab.node("c1"))
    try:
        done = lab.node("c0").run(["iperf3", "-c", lab.node("c1").addr, "-t", str(seconds), "-J"],
                                  traffic_class=traffic_class, timeout=seconds + 30, check=True)
        return json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]
    finally:
        server.kill()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    table = bench.table("A forced traffic class: one TCP flow's goodput", [
        Column("rate", "link"), Column("plain", "plain", "{:.2f} Gbit/s"), Column("classed", "--class storage", "{:.2f} Gbit/s"),
        Column("ratio", "classed / plain", "{:.1%}")])
    for rate in RATES:
        with Lab.up(build("star", f"k{uuid.uuid4().hex[:6]}", hosts=2, rate=rate)) as lab:
            runs = {None: [], "storage": []}
            for _ in range(args.repeat):
                for cls in runs:
                    runs[cls].append(goodput(lab, args.seconds, cls))
            plain, classed = (statistics.median(runs[c]) for c in (None, "storage"))
            table.add(rate=rate, plain=plain / 1e9, classed=classed / 1e9, ratio=classed / plain)
    table.note(f"star of 2 hosts, iperf3 -t {args.seconds:g}, median of {args.repeat} alternating runs each; "
               "classed: `emu exec --class storage` (cgroup + nftables DSCP rule in the sending node)")
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
