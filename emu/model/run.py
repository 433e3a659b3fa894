"""`emu model run`: a scenario played by the flow model, left as a run directory like `emu run`'s
(scenario, topology, plan, samples, flows, events; then summary.json, report.md and plots by
report.runs), so `emu compare` sets model and emulation side by side. No root, no packets."""
import time
from pathlib import Path

import numpy as np

from cluster.collectives import bus_factor
from emu.errors import EmuError
from emu.metrics.sampler import Samples
from emu.model.calibration import Calibration
from emu.model.paths import Fabric
from emu.model.simulate import Outcome, simulate
from emu.model.workloads import Workload
from emu.plan import make_plan
from emu.plan.queues import MTU_FRAME
from emu.report import rundir
from emu.report.project import to_real
from emu.workloads import TYPES

MAX_PORT_ROWS = 1_000_000   # a model run's interface samples at most (ports x samples)
MIN_SAMPLES = 100


def model_run(scenario, out: str | None = None, calibration: Calibration | None = None,
              hashing: int | None = None) -> tuple[dict, Path]:
    """Play `scenario` (a loaded Scenario) in the model, `calibration`'s fitted costs added if
    given, each flow on one of its equal-cost paths by a hash seeded `hashing` if given (else
    split evenly over them); returns (summary, run directory)."""
    topo = scenario.topology
    plan = make_plan(topo)
    fabric = Fabric(topo, plan, hashing)
    workloads = from_steps(scenario, topo)          # refuses what it cannot play before anything is written
    if calibration:
        calibration.apply(workloads, fabric)
    began = time.process_time()
    outcome = simulate(fabric, workloads, efficiency=calibration.tcp_efficiency if calibration else 1.0)
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
        if w.summarise:
            spans = outcome.rounds[w.name]
            figures = w.summarise(spans)
            nodes = ",".join(w.params["nodes"])
            flows += [_flow(w.name, nodes, nodes, w.traffic_class, 0, start, end, None) for start, end in spans]
        elif w.type in ("allreduce", "alltoall"):
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
    """The sampler's records, read off the model's counters (piecewise linear between events), as
    columns: every port's interface counters, and the per-VL counters of the (port, VL) pairs that
    carried something (an idle VL's rows would be all zeros; at paper scale they are millions).
    A long run on a large fabric is sampled less often than the scenario asks (at most
    MAX_PORT_ROWS interface rows, at least MIN_SAMPLES samples); the sampler event says how often."""
    period = max(period, end / max(MIN_SAMPLES, MAX_PORT_ROWS // len(fabric.ports)))
    at = np.arange(0.0, end + period / 2, period)
    times = np.array(outcome.times)
    wire = np.array(outcome.wire)               # events x ports x VLs
    if times[-1] < end:
        times, wire = np.append(times, end), np.concatenate([wire, wire[-1:]])
    sent = _interpolate(at, times, wire)        # samples x ports x VLs
    nodes = np.array([node for node, _ in fabric.ports])
    ifnames = np.array([ifname for _, ifname in fabric.ports])
    ends = [fabric.port[p] for p in fabric.ports]
    peers = np.array([p.peer for p in ends])
    n = len(at)
    port_idx, vl_idx = np.nonzero(sent[-1] > 0)
    nbytes = sent[:, port_idx, vl_idx].T.ravel().astype(np.int64)    # pair-major, time within
    zeros = np.zeros(len(nbytes), np.int64)
    queues = {"t": np.tile(at, len(port_idx)), "node": np.repeat(nodes[port_idx], n),
              "port": np.repeat(ifnames[port_idx], n), "peer": np.repeat(peers[port_idx], n),
              "vl": np.repeat(np.array(outcome.vls, np.int64)[vl_idx], n), "tx_bytes": nbytes,
              "tx_packets": nbytes // MTU_FRAME, "drops": zeros, "backlog_bytes": zeros, "overlimits": zeros,
              "paused_s": np.zeros(len(nbytes))}
    tx = sent.sum(axis=2)                        # samples x ports
    index = {p: i for i, p in enumerate(fabric.ports)}
    rx = tx[:, [index[(p.peer, p.peer_ifname)] for p in ends]]
    tx, rx = tx.T.ravel().astype(np.int64), rx.T.ravel().astype(np.int64)
    zeros = np.zeros(len(tx), np.int64)
    ifaces = {"t": np.tile(at, len(ends)), "node": np.repeat(nodes, n), "port": np.repeat(ifnames, n),
              "peer": np.repeat(peers, n), "tx_bytes": tx, "tx_packets": tx // MTU_FRAME, "rx_bytes": rx,
              "rx_packets": rx // MTU_FRAME, "tx_drops": zeros, "rx_drops": zeros}
    return Samples(period=period, taken=n, cpu_seconds=cpu_seconds, columns=(queues, ifaces))


def _interpolate(at: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values (len(times) x ...) read at `at`, linear between the times (np.interp over axis 0)."""
    right = np.clip(np.searchsorted(times, at, side="right"), 1, len(times) - 1)
    left = right - 1
    span = times[right] - times[left]
    frac = np.clip(np.where(span > 0, (at - times[left]) / np.where(span > 0, span, 1), 1.0), 0.0, 1.0)
    frac = frac.reshape((-1,) + (1,) * (values.ndim - 1))
    return values[left] + (values[right] - values[left]) * frac


def from_steps(scenario, topo) -> list[Workload]:
    """The scenario's workloads as the model plays them (each type's builder in emu.workloads), or
    one line naming the first the model cannot play."""
    if scenario.faults or scenario.jobs:
        raise EmuError(f"{scenario.source}: the model plays workloads only, not faults or scheduled jobs")
    storage = [n.name for n in topo.hosts() if n.kind == "storage"]
    playable = [t.name for t in TYPES.values() if t.model]
    out = []
    for step in scenario.workloads:
        build = TYPES[step.type].model
        if build is None:
            raise EmuError(f"{scenario.source}: workloads.{step.name}: the model cannot play {step.type!r} yet "
                           f"(it plays {', '.join(playable)})")
        out.append(build(step, step.params, topo, storage))
    return out
