#!/usr/bin/env python3
"""What a lab's daemon costs and how fast its flow controller reacts: fire-flyer-mini in lossless
mode (and lossy, for the daemon without a flow controller), idle for a while, then bursts of
incast separated by idle gaps, each row from the daemon's own figures.

Idle: the daemon's CPU share of one core (/proc), with nothing crossing the lab. Reaction: the
gap before each of the controller's busy steps; bytes that arrived in it waited at most that long
for a decision: while traffic flows the controller steps every PERIOD (2 ms), and the first step
after an idle stretch comes at most IDLE_PERIOD (10 ms) after the bytes that woke it.

Run as root:  python scripts/bench_daemon.py [--idle 10] [--bursts 5] [--json] [--markdown docs/results/daemon.md]
"""
import argparse
import os
import time
import uuid

from emu.daemon.client import daemon_pid, request
from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.metrics.counters import fabric_drops
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import load_topology
from emu.topo.loader import topology_from_dict

TOPOLOGY = "topologies/fire-flyer-mini.yaml"
BURST_S, GAP_S = 1.0, 1.0


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of an idle lab measured")
    ap.add_argument("--bursts", type=int, default=5, help="incast bursts, each after an idle gap")
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    table = bench.table("A lab's daemon: idle cost and the flow controller's reaction", [
        Column("mode", "mode"), Column("controllers", "controllers"), Column("idle_cpu", "idle CPU of a core", "{:.1%}"),
        Column("wakes", "wakes"), Column("woke_max_ms", "gap woke max", "{:.1f} ms"),
        Column("busy_p99_ms", "gap busy p99", "{:.1f} ms"), Column("busy_max_ms", "busy max", "{:.1f} ms"),
        Column("step_p99_ms", "step p99", "{:.2f} ms"), Column("pauses", "pauses"), Column("drops", "drops")])
    base = load_topology(TOPOLOGY).to_dict()
    for mode in ("lossless", "lossy"):
        name = f"d{uuid.uuid4().hex[:6]}"
        with Lab.up(topology_from_dict({**base, "flow_control": {"mode": mode}}, TOPOLOGY, name)) as lab:
            status = request(lab.name, "status")      # waits until the daemon listens
            pid = daemon_pid(lab.name)
            time.sleep(1.0)                            # past its start-up
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(args.idle)
            idle = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            receiver, *senders = [n.name for n in lab.nodes("compute")]
            with lab.flow_control() as fc:
                for _ in range(args.bursts):
                    time.sleep(GAP_S)
                    run_flows(lab, [Flow(s, receiver) for s in senders], BURST_S)
            figures = fc.summary() if fc else {}
            ms = {k: figures[k] * 1e3 for k in ("gap_woke_max_s", "gap_busy_p99_s", "gap_busy_max_s", "step_p99_s")
                  if k in figures}
            table.add(mode=mode, controllers=", ".join(status["controllers"]), idle_cpu=idle,
                      wakes=figures.get("wakes"), woke_max_ms=ms.get("gap_woke_max_s"),
                      busy_p99_ms=ms.get("gap_busy_p99_s"), busy_max_ms=ms.get("gap_busy_max_s"),
                      step_p99_ms=ms.get("step_p99_s"), pauses=figures.get("pauses"), drops=fabric_drops(lab))
    table.note(f"{TOPOLOGY} ({load_topology(TOPOLOGY).summary().rsplit(', ', 1)[0]}, each flow-control mode); idle for {args.idle:g} s, then {args.bursts} "
               f"bursts of {BURST_S:g} s, 7 compute nodes into one, each after {GAP_S:g} s idle. A gap is the time "
               "between two controller steps: bytes arriving in it wait at most that long for a decision.")
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
