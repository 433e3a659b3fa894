#!/usr/bin/env python3
"""Table VIII replayed: a year of Fire-Flyer 2's network flash cuts (213 cuts on 101 days) onto a
checkpointed VGG16 job on four nodes of fire-flyer-mini, a day compressed into --day seconds,
each cut --cut long on a link the job uses; against the same job without cuts.
Run as root:  python scripts/replay_flash_cuts.py
"""
import argparse
import json
from pathlib import Path

from emu.experiments.replay import flash_cuts, replay_scenario
from emu.experiments.runner import run
from emu.topo.loader import load_topology

ROOT = Path(__file__).resolve().parents[1]
NODES = ["za-c0", "za-c2", "zb-c0", "zb-c2"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day", type=float, default=0.2, help="seconds of the run per day of the record")
    ap.add_argument("--cut", type=float, default=0.01, help="seconds each cut lasts")
    ap.add_argument("--out", default="runs/replay")
    args = ap.parse_args()
    topo_path = str(ROOT / "topologies" / "fire-flyer-mini.yaml")
    topo = load_topology(topo_path)
    switches = {n.name for n in topo.switches()}
    links = [[a, b] for a, b in topo.graph.edges if (a in NODES or b in NODES)
             or ({a, b} <= switches and a[:2] == b[:2])]          # the job's host links, its zones' fabric
    record = flash_cuts()
    print(f"# {sum(c for _, c in record)} cuts on {len(record)} days, {record[0][0]} .. {record[-1][0]}; one day = "
          f"{args.day:g} s (compression {86400 / args.day:,.0f}x); each cut {args.cut * 1e3:g} ms on one of "
          f"{len(links)} links of the job")
    results = {}
    for cuts in (False, True):
        doc = replay_scenario(topo_path, NODES, links, args.day, args.cut, record=record, cuts=cuts)
        summary, directory = run(doc, f"{args.out}-{'cuts' if cuts else 'baseline'}", lab="replay")
        (job,) = [w for w in summary["workloads"] if w["name"] == "job"]
        results[cuts] = job
        print(json.dumps({"cuts": cuts, "run_dir": str(directory), **{k: job.get(k) for k in (
            "outcome", "steps_done", "restarts", "lost_steps", "wall_per_step_s", "step_time_s", "end_s",
            "saves", "load_verified", "error")}}), flush=True)
    base, cut = results[False], results[True]
    if base.get("end_s") and cut.get("end_s"):
        print(f"job time {base['end_s']:.1f} s without cuts, {cut['end_s']:.1f} s with them: "
              f"{base['end_s'] / cut['end_s']:.0%} of the baseline's throughput")


if __name__ == "__main__":
    main()
