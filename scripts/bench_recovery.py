#!/usr/bin/env python3
"""Work lost against the checkpoint period: a VGG16 job under the scheduler on fire-flyer-mini
(4 nodes, one zone) loses a node (every agent on za-c1 killed) at --kill seconds; it restarts on
the other zone from its newest complete checkpoint. For each period: steps lost, the work they
were (steps lost x step time), and the bound (one period plus the save in flight when the node
died). The paper: checkpoints every 5 minutes, so at most 5 minutes lost.
Run as root:  python scripts/bench_recovery.py
"""
import argparse
from pathlib import Path

from emu.experiments.runner import run
from emu.terminate import clean_up_on_sigterm
from emu.topo.loader import load_topology

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--periods", default="1,2,4,8", help="checkpoint periods, seconds")
    ap.add_argument("--kill", type=float, default=20.0, help="when za-c1 dies, seconds into the run")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--out", default="runs/recovery")
    args = ap.parse_args()
    topo = load_topology(str(ROOT / "topologies" / "fire-flyer-mini.yaml"))
    print(f"# VGG16 on 4 nodes of {topo.summary()}; za-c1 killed at {args.kill:g} s")
    print(f"{'period':>6} {'restored':>8} {'lost':>5} {'lost work':>9} {'bound':>7} {'save':>6} {'job':>7}")
    for period in (float(p) for p in args.periods.split(",")):
        scenario = {"name": f"recovery-{period:g}s", "topology": topo.to_dict(), "duration": f"{args.kill + 1:g}s", "sample": "200ms",
                    "scheduler": {"policy": "zone-aware"},
                    "jobs": [{"name": "job", "nodes": 4, "model": "vgg16", "steps": args.steps, "submit": "0s",
                              "checkpoint": {"period": f"{period:g}s"}}],
                    "faults": [{"type": "kill", "node": "za-c1", "start": f"{args.kill:g}s"}]}
        summary, _ = run(scenario, f"{args.out}/{period:g}s", lab="recovery")
        job = summary["workloads"][0]
        if job["outcome"] != "ok":
            print(f"{period:>5g}s failed: {job.get('error')}")
            continue
        lost_s = job["lost_steps"] * job["step_time_s"]
        print(f"{period:>5g}s {str(job['restored_steps']):>8} {job['lost_steps']:>5} {lost_s:>8.1f}s "
              f"{period + job['save_s']:>6.1f}s {job['save_s']:>5.1f}s {job['end_s']:>6.1f}s", flush=True)


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
