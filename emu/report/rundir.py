"""The run directory: what a scenario run leaves on disk, and how it is read back.

    scenario.yaml    the scenario as run (topology resolved inline)
    topology.yaml    the lab's topology (explicit form)
    plan.json        the LabPlan the lab was built from
    samples.parquet  per port and VL, every sample (a model run: only the VLs that carried something,
                     and a long run on a large fabric sampled less often; the sampler event
                     has the period): t, node, port, peer, vl, tx_bytes, tx_packets,
                     drops (cumulative, as read), backlog_bytes (at the read), overlimits,
                     paused_s (cumulative time the VL was paused; lossless labs)
    ports.parquet    per interface, every sample: t, node, port, peer, tx_bytes, tx_packets,
                     rx_bytes, rx_packets, tx_drops, rx_drops (cumulative)
    flows.parquet    one row per flow or iteration: workload, src, dst, class, bytes, start, end
                     (s since the run's start), ideal (s at the path's bottleneck or the run's
                     own bound), slowdown (actual / ideal)
    events.jsonl     one JSON object a line, with t (s) and type: run, start, end (with the
                     workload's figures or its error), span, fault, route (a routing change),
                     pause (node, port, vl, t to end; lossless labs), flow-control (the
                     controller's figures: pauses, step times, peak backlog)
    summary.json, report.md, *.png   written by report.runs from the files above
"""
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

# libyaml's safe dumper and loader where PyYAML has them: a paper-size topology inline is 3 s
# each way in pure Python (these files are the run's own, so the topology loader's guards are not needed)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FLOW_COLUMNS = ("workload", "src", "dst", "class", "bytes", "start", "end", "ideal", "slowdown")


def create(scenario, topology, plan, out: str | None = None) -> Path:
    """A new run directory (refused if it exists) holding the scenario, topology and plan."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    directory = Path(out) if out else Path("runs") / f"{scenario.name}-{stamp}"
    directory.mkdir(parents=True, exist_ok=False)
    (directory / "scenario.yaml").write_text(yaml.dump(scenario.doc, Dumper=_Dumper, sort_keys=False))
    (directory / "topology.yaml").write_text(yaml.dump(topology.to_dict(), Dumper=_Dumper, sort_keys=False))
    (directory / "plan.json").write_text(json.dumps(plan.to_dict()))
    return directory


def write_records(directory: Path, samples, flows: list[dict], events: list[dict]) -> None:
    pq.write_table(pa.table(samples.queues), directory / "samples.parquet")
    pq.write_table(pa.table(samples.ifaces), directory / "ports.parquet")
    pq.write_table(pa.table({c: [f[c] for f in flows] for c in FLOW_COLUMNS},
                            schema=pa.schema([("workload", pa.string()), ("src", pa.string()), ("dst", pa.string()),
                                              ("class", pa.string()), ("bytes", pa.int64()), ("start", pa.float64()),
                                              ("end", pa.float64()), ("ideal", pa.float64()),
                                              ("slowdown", pa.float64())])),
                   directory / "flows.parquet")
    meta = {"t": 0.0, "type": "sampler", "period_s": samples.period, "samples": samples.taken, "late": samples.late,
            "cpu_seconds": samples.cpu_seconds, "clock_bound_s": samples.clock_bound}
    with open(directory / "events.jsonl", "w") as f:
        for event in [meta] + sorted(events, key=lambda e: e["t"]):
            f.write(json.dumps(event) + "\n")


def events(directory) -> list[dict]:
    return [json.loads(line) for line in (Path(directory) / "events.jsonl").read_text().splitlines() if line.strip()]


def read(directory) -> dict:
    """Everything report.runs needs, from the files alone."""
    directory = Path(directory)
    return {"scenario": yaml.load((directory / "scenario.yaml").read_text(), Loader=_Loader),
            "plan": json.loads((directory / "plan.json").read_text()),
            "samples": pq.read_table(directory / "samples.parquet"),
            "ports": pq.read_table(directory / "ports.parquet"),
            "flows": pq.read_table(directory / "flows.parquet").to_pylist(),
            "events": events(directory)}
