#!/usr/bin/env python3
"""The lossless flow controller's reaction, measured: incast into one client of a 32-service star
(200 Gbit/s at scale 0.001, 32 KiB switch buffers), request-to-send off and on, lossless.

For each row: goodput share, switch drops (lossless violations), pauses, the controller's step
time (p50 / p99 / max: reads of every switch, decisions, gate changes), the most bytes one ingress
port was estimated to hold and so the headroom above XOFF used, against the headroom each port
has (REACTION_BUDGET at the link rate, plus a burst). Run as root:

    python scripts/bench_lossless.py [--json] [--markdown docs/results/lossless.md]
"""
import argparse

from emu.experiments.storage import incast
from emu.lab import Lab
from emu.qos.flow_control import FlowControl
from emu.plan.queues import BURST_BYTES
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
from emu.topo.loader import topology_from_dict


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--senders", default="16,32")
    ap.add_argument("--xoff", default="64K")
    ap.add_argument("--xon", default="32K")
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    senders = [int(x) for x in args.senders.split(",")]
    doc = build("star", "lossless", hosts=1, storage=max(senders), scale=0.001, buffer="32KiB").to_dict()
    topo = topology_from_dict({**doc, "flow_control": {"mode": "lossless", "xoff": args.xoff, "xon": args.xon}})
    fc: FlowControl = topo.flow_control
    rate = topo.emulated_rate(topo.links()[0])
    headroom = fc.headroom_bytes(rate, BURST_BYTES)
    table = bench.table("Lossless incast: the flow controller's reaction", [
        Column("rts", "rts"), Column("senders", "senders"), Column("share", "share", "{:.0%}"), Column("drops", "drops"),
        Column("pauses", "pauses"), Column("step_p50_ms", "step p50", "{:.2f} ms"),
        Column("step_p99_ms", "p99", "{:.1f} ms"), Column("step_max_ms", "max", "{:.1f} ms"),
        Column("peak_held", "peak held (B)"), Column("headroom_used", "headroom used", "{:.0%}")])
    with Lab.up(topo) as lab:
        for rts in (False, True):
            for n in senders:
                with lab.flow_control() as controller:
                    (row,) = incast(lab, "c0", [n], rts=rts, rounds=3)
                s = controller.summary()
                table.add(rts="on" if rts else "off", senders=n, share=row["share"], drops=row["drops"],
                          pauses=s["pauses"], step_p50_ms=s["step_p50_s"] * 1e3, step_p99_ms=s["step_p99_s"] * 1e3,
                          step_max_ms=s["step_max_s"] * 1e3, peak_held=s["peak_ingress_bytes"],
                          headroom_used=max(0, s["peak_ingress_bytes"] - fc.xoff) / headroom)
    table.note(f"{topo.summary()}; XOFF {fc.xoff} B, XON {fc.xon} B, headroom {headroom} B per ingress port; XOFF "
               f"drains in {fc.xoff * 8 / rate * 1e3:.2f} ms at {rate / 1e6:.0f} Mbit.")
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
