"""`emu model run`: a scenario played by the flow model, left as a run directory like `emu run`'s
(scenario, topology, plan, samples, flows, events; then summary.json, report.md and plots by
report.runs), so `emu compare` sets model and emulation side by side. No root, no packets."""
import time
from pathlib import Path

import numpy as np

from cluster.collectives import bus_factor
from emu.metrics.sampler import Samples
from emu.model.paths import Fabric
from emu.model.simulate import Outcome, simulate
from emu.model.workloads import from_steps
from emu.plan import make_plan
from emu.qos.htb import MTU_FRAME
from emu.report import rundir
from emu.report.project import to_real


def model_run(scenario, out: str | None = None) -> tuple[dict, Path]:
    """Play `scenario` (a loaded Scenario) in the model; returns (summary, run directory)."""
    topo = scenario.topology
    plan = make_plan(topo)
    fabric = Fabric(topo, plan)
    workloads = from_steps(scenario, topo)          # refuses what it cannot play before anything is written
    began = time.process_time()
    outcome = simulate(fabric, workloads)
    directory = rundir.create(scenario, topo, plan, out)
    flows, events = _records(fabric, workloads, outcome)
    end = max(scenario.duration, outcome.end)
    events = [{"t": 0.0, "type": "run", "what": "start", "scenario": scenario.name, "lab": "model"}] + events + \
             [{"t": round(end, 6), "type": "run", "what": "end"}]
    rundir.write_records(directory, _samples(fabric, outcome, scenario.sample, end, time.process_time() - began),
                         flows, events)
    from emu.report.runs import render_run
    return render_run(directory), directory


def _records(fabric: Fabric, workloads, outcome: Outcome) -> tuple[list[dict], list[dict]]:
    flows, events = [], []
    scale = fabric.plan.scale
    for w in workloads:
        mine = [f for f in outcome.flows if f.workload == w.name]
        events.append({"t": round(w.start, 6), "type": "start", "name": w.name, "kind": w.type})
        if w.type in ("allreduce", "alltoall"):
            ideal = outcome.ideal_round.get(w.name)
            spans = outcome.rounds[w.name]
            nodes = ",".join(sorted({f.src for f in mine}))
            for start, end in spans:
                flows.append(_flow(w.name, nodes, nodes, w.traffic_class, w.params["size"], start, end, ideal))
            took = float(np.mean([end - start for start, end in spans])) if spans else 0.0
            algbw = w.params["size"] / took / 1e9 if took else 0.0       # GB/s, as bench_collective
            busbw = algbw * bus_factor(w.params["algo"], w.params["ranks"])
            figures = {"algo": w.params["algo"], "algbw": algbw, "busbw": busbw,
                       "proj_algbw": to_real(algbw, scale), "proj_busbw": to_real(busbw, scale),
                       "slowdown": took / ideal if ideal else None}
        else:
            by_client = _by_host(mine, "dst" if w.type == "storage-read" else "src")
            goodput = 0.0
            for host, group in by_client.items():
                start, end = min(f.start for f in group), max(f.end for f in group)
                nbytes = sum(f.bytes for f in group)
                other = group[0].dst if w.type == "bulk" else "storage"
                src, dst = (other, host) if w.type == "storage-read" else (host, other)
                ideal = nbytes * 8 / _bottleneck_bps(fabric, group[0]) if w.type == "bulk" \
                    else nbytes * 8 / fabric.plan.nic_bps(host)
                flows.append(_flow(w.name, src, dst, w.traffic_class, nbytes, start, end, ideal))
                goodput += nbytes * 8 / (end - start) if end > start else 0.0
            figures = {"goodput_bps": goodput}
            if w.type == "bulk":
                figures.update(bytes=int(flows[-1]["bytes"]), slowdown=flows[-1]["slowdown"])
        last = max((f.end for f in mine), default=w.start)
        events.append({"t": round(last, 6), "type": "end", "name": w.name, "kind": w.type, "outcome": "ok",
                       "figures": figures})
    return flows, events


def _by_host(records, key: str) -> dict:
    out = {}
    for f in records:
        out.setdefault(getattr(f, key), []).append(f)
    return out


def _bottleneck_bps(fabric: Fabric, flow) -> float:
    return min(min(fabric.rate_bps[i] for i in path) for path, _ in fabric.routes(flow.src, flow.dst))


def _flow(workload, src, dst, traffic_class, nbytes, start, end, ideal) -> dict:
    return {"workload": workload, "src": src, "dst": dst, "class": traffic_class, "bytes": int(nbytes),
            "start": float(start), "end": float(end), "ideal": float(ideal) if ideal else None,
            "slowdown": float((end - start) / ideal) if ideal else None}


def _samples(fabric: Fabric, outcome: Outcome, period: float, end: float, cpu_seconds: float) -> Samples:
    """The sampler's records, read off the model's counters (piecewise linear between events)."""
    at = np.arange(0.0, end + period / 2, period)
    times = np.array(outcome.times)
    wire = np.array(outcome.wire)               # events x ports x VLs
    wire = np.concatenate([wire, wire[-1:]]) if times[-1] < end else wire
    times = np.append(times, end) if times[-1] < end else times
    port = fabric.port
    samples = Samples(period=period, taken=len(at), cpu_seconds=cpu_seconds)
    tx = {}
    for i, (node, ifname) in enumerate(fabric.ports):
        per_vl = [np.interp(at, times, wire[:, i, j]) for j in range(len(outcome.vls))]
        tx[(node, ifname)] = sum(per_vl)
        peer = port[(node, ifname)].peer
        for vl, series in zip(outcome.vls, per_vl):
            for t, b in zip(at, series):
                samples.queue_rows.append((float(t), node, ifname, peer, vl, int(b), int(b // MTU_FRAME), 0, 0, 0, 0.0))
    for node, ifname in fabric.ports:
        p = port[(node, ifname)]
        rx = tx[(p.peer, p.peer_ifname)]
        for t, b, r in zip(at, tx[(node, ifname)], rx):
            samples.iface_rows.append((float(t), node, ifname, p.peer, int(b), int(b // MTU_FRAME), int(r),
                                       int(r // MTU_FRAME), 0, 0))
    return samples
