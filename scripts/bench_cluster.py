#!/usr/bin/env python3
"""What a lab on a Ray cluster's machines costs against the same lab on one machine: bring-up,
a command in a node (`emu exec`: a Ray driver's connection, the worker's spawn and streamed
output), one flow across the machines (iperf3, 3 s), the sampler's clock bound, teardown; and a
lossless incast whose senders are on the other machine than their switch (each machine's flow
controller part pauses them through their machine's worker): drops, pauses, the controller's steps.
The cluster is the tests' (tests/raycluster.py): two machine namespaces of this machine with a
Ray node each, `emu` a driver on the head's machine that sees none of the machines' namespaces.

Run as root:  python scripts/bench_cluster.py [--runs 3] [--markdown docs/results/cluster.md]
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))     # the cluster of the tests
from lossless import write_incast                            # noqa: E402
from raycluster import ray_cluster                           # noqa: E402
from waits import wait_until                                 # noqa: E402

from emu.report.bench import Bench, Column, add_options       # noqa: E402
from emu.terminate import clean_up_on_sigterm                 # noqa: E402

RATE = "1Gbit"


def emu_here(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emu.cli", *args], capture_output=True, text=True)


def timed(run, *args) -> tuple[float, str]:
    start = time.monotonic()
    done = run(*args)
    if done.returncode != 0:
        raise SystemExit(f"emu {' '.join(args)}: {done.stderr.strip().splitlines()[-1]}")
    return time.monotonic() - start, done.stdout


def measure(emu, lab: str, topology: Path, up_args: list[str], runs: int) -> dict:
    """emu: runs `emu ARGS...` where the lab's coordinator is; one lab, brought up and down once."""
    up, out = timed(emu, "up", str(topology), "--json", *up_args)
    status = json.loads(out)
    src, dst = (next(n["name"] for n in status["nodes"] if n["kind"] == "compute" and n["machine"] == m)
                for m in (status["nodes"][0]["machine"], status["nodes"][-1]["machine"]))
    src, dst = ("c0", "c3") if src == dst else (src, dst)
    execs, flows = [], []
    for _ in range(runs):
        execs.append(timed(emu, "exec", "--lab", lab, src, "--", "true")[0])
        timed(emu, "exec", "--lab", lab, dst, "--", "iperf3", "-s", "-1", "-D", "-p", "5201")
        wait_until(lambda: ":5201 " in timed(emu, "exec", "--lab", lab, dst, "--", "ss", "-Hltn")[1], 60,
                   "the iperf3 server")
        out = timed(emu, "exec", "--lab", lab, src, "--", "iperf3", "-c", dst, "-p", "5201", "-t", "3", "-J")[1]
        flows.append(json.loads(out)["end"]["sum_received"]["bits_per_second"])
    machines = json.loads(timed(emu, "status", lab, "--json")[1])["daemon"]["sampler"].get("machines", {})
    down = timed(emu, "down", lab)[0]
    return {"up": up, "exec": statistics.median(execs), "flow": statistics.median(flows) / 1e6,
            "bound": max((m["clock_bound_s"] for m in machines.values()), default=0) * 1e6, "down": down,
            "path": f"{src} -> {dst}"}


def measure_incast(emu, lab: str, tmp: Path, up_args: list[str]) -> dict:
    """8 storage nodes (on a cluster: on machine 1, their switch sw0 and c0 on 0) send to c0 at once, lossless."""
    topology, scenario = write_incast(tmp, lab, across=bool(up_args), rounds=3)
    timed(emu, "up", str(topology), *up_args)
    try:
        summary = json.loads(timed(emu, "run", str(scenario), "--lab", lab, "--json",
                                   "--out", str(tmp / f"run-{lab}"))[1])
    finally:
        timed(emu, "down", lab)
    (incast,), fc = summary["workloads"], summary["flow_control"]
    steps = fc["controller"]
    return {"goodput": incast["goodput_bps"] / 1e6, "drops": fc["fabric_drops"], "pauses": fc["pauses"],
            "step_p50": steps["step_p50_s"] * 1e3, "step_p99": steps["step_p99_s"] * 1e3,
            "step_max": steps["step_max_s"] * 1e3, "peak": steps["peak_backlog_bytes"] / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="commands and flows measured (the median is shown)")
    add_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    table = bench.table(f"A leaf-spine (2 leaves, 2 spines, 4 hosts, {RATE} links) on one machine and on a two-machine "
                        f"Ray cluster; medians of {args.runs}", [
                            Column("where", "where"), Column("up", "emu up", "{:.1f} s"),
                            Column("exec", "emu exec (true)", "{:.2f} s"), Column("path", "flow"),
                            Column("flow", "one flow", "{:.0f} Mbit/s"),
                            Column("bound", "clock bound", "{:.0f} us"), Column("down", "emu down", "{:.1f} s")])
    lossless = bench.table("A lossless incast (8 storage nodes to one client at once, 200 Mbit/s links, 32 KiB "
                           "switch buffers, 3 rounds): the senders on the other machine than their switch", [
                               Column("where", "where"), Column("goodput", "goodput", "{:.0f} Mbit/s"),
                               Column("drops", "switch drops"), Column("pauses", "pauses"),
                               Column("step_p50", "step p50", "{:.2f} ms"), Column("step_p99", "step p99", "{:.1f} ms"),
                               Column("step_max", "step max", "{:.1f} ms"),
                               Column("peak", "deepest queue", "{:.0f} KiB")])
    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp:
        topology = Path(tmp) / "leaf-spine.yaml"
        for where in ("one machine", "Ray cluster, 2 machines"):
            lab = f"bc{tag}{len(table.rows)}"
            topology.write_text(yaml.safe_dump({"name": lab, "defaults": {"rate": RATE}, "fabric": {
                "type": "leaf-spine", "leaves": 2, "spines": 2, "hosts_per_leaf": 2}}))
            if where == "one machine":
                table.add(where=where, **measure(emu_here, lab, topology, [], args.runs))
                lossless.add(where=where, **measure_incast(emu_here, lab, Path(tmp), []))
                continue
            with ray_cluster(tag) as cluster:
                table.add(where=where, **measure(cluster.emu, lab, topology, ["--cluster", cluster.address],
                                                 args.runs))
                lossless.add(where=where, **measure_incast(cluster.emu, lab, Path(tmp), ["--cluster", cluster.address]))
    lossless.note("On one machine one controller decides for every switch; on the cluster each machine's worker runs "
                  "the controller of its own switches, and a pause of a node on another machine is one Ray call to "
                  "that machine's worker a step (all of a step's changes for a machine in one call): that call is "
                  "what the cluster's slower steps are. The headroom (2 MiB here) covers what arrives meanwhile.")
    table.note("The cluster's machines are namespaces of this one machine (2 cores for both), each with its own "
               "Ray node; emu runs as a Ray driver on the head's machine and reaches the other only through its "
               "worker. emu exec includes starting Python and emu (~0.5 s here) and, on the cluster, connecting "
               "to Ray and the worker's spawn. The flow crosses from one machine to the other through a VXLAN "
               "tunnel; on one machine it takes the same path through veths.")
    bench.close()


if __name__ == "__main__":
    main()
