"""The paper's congestion study: four experiments (isolation, routing, incast, zones), each its
ready scenario (scenarios/NAME.yaml) played in variants, one run directory a variant, and one
table of rows with a verdict on the paper's claim.

    study/                      the experiment's directory (--out)
      <variant>/                a run directory per variant (emu report works on each)
      rows.json, table.md, NAME.png

Every figure in a row comes from its run's summary (emu.report.runs), i.e. from what the
switches' counters and the agents measured; the verdicts compare rows, nothing else.
"""
import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.dbtree import double_binary_tree
from emu.errors import EmuError
from emu.experiments.runner import run_scenario
from emu.experiments.scenario import scenario_from_dict
from emu.report import rundir
from emu.topo.loader import load_yaml

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
MODES = ("lossy", "lossless")
LOSSLESS = {"mode": "lossless", "xoff": "64K", "xon": "32K"}


@dataclass
class Variant:
    slug: str           # its run directory's name
    label: dict         # the row keys that tell variants apart
    doc: dict           # the scenario to run


def base_scenario(name: str) -> dict:
    doc = load_yaml(SCENARIOS / f"{name}.yaml")
    doc["topology"] = str((SCENARIOS / doc["topology"]).resolve())
    return doc


def topology_doc(doc: dict) -> dict:
    """The scenario's topology as a mapping (a copy of its file's, or the mapping it holds)."""
    return copy.deepcopy(doc["topology"]) if isinstance(doc["topology"], dict) else load_yaml(doc["topology"])


def variant(doc: dict, mode: str, **changes) -> dict:
    """The scenario with flow control `mode` and top-level `changes`."""
    out = copy.deepcopy(doc)
    out.update(changes)
    out["flow_control"] = LOSSLESS if mode == "lossless" else {"mode": "lossy"}
    return out


def workload(doc: dict, name: str) -> dict:
    return next(w for w in doc["workloads"] if w["name"] == name)


def figures(summary: dict, name: str) -> dict:
    return next((w for w in summary["workloads"] if w["name"] == name), {})


def fabric(summary: dict) -> dict:
    """A run's switch drops and paused time, the columns every experiment shows."""
    return {"drops": summary["flow_control"]["fabric_drops"], "pause_s": summary["flow_control"]["pause_s"]}


def shorten(doc: dict) -> dict:
    """A quick version of a scenario (tests, smoke runs): half the time, a third of the iterations;
    incast from 1 and 8 senders, once, with 8 storage services."""
    from emu.units import parse_duration
    doc = copy.deepcopy(doc)
    doc["duration"] = parse_duration(doc["duration"]) / 2
    for w in doc["workloads"]:
        for key in ("start", "duration"):
            if key in w:
                w[key] = parse_duration(w[key]) / 2
        if "iters" in w:
            w["iters"] = max(3, w["iters"] // 3)
        if w["type"] == "incast":
            w["senders"], w["rounds"] = [1, 8], 1
            # as many storage services as the most senders: the others would start and sit idle
            topo = topology_doc(doc)
            topo["fabric"]["storage"] = min(topo["fabric"]["storage"], max(w["senders"]))
            doc["topology"] = topo
    return doc


# -- isolation -----------------------------------------------------------------------------

def isolation_variants(doc: dict, modes) -> list[Variant]:
    out = []
    for mode in modes:
        alone = {"isolation": "alone", "flow_control": mode}
        for name in ("allreduce", "reads"):
            out.append(Variant(f"{mode}-{name}-alone", {**alone, "workload": name},
                               variant(doc, mode, workloads=[workload(doc, name)])))
        for on in (True, False):
            qos = {**topology_doc(doc).get("qos", {}), **doc.get("qos", {}), "isolation": on}
            out.append(Variant(f"{mode}-isolation-{'on' if on else 'off'}",
                               {"isolation": "on" if on else "off", "flow_control": mode}, variant(doc, mode, qos=qos)))
    return out


def isolation_rows(results: list) -> list[dict]:
    alone = {(v.label["flow_control"], v.label["workload"]): s for v, s, _ in results if v.label["isolation"] == "alone"}
    rows = []
    for v, s, _ in results:
        if v.label["isolation"] == "alone":
            continue
        mode = v.label["flow_control"]
        ar, reads = figures(s, "allreduce"), figures(s, "reads")
        ar_alone, reads_alone = figures(alone[mode, "allreduce"], "allreduce"), figures(alone[mode, "reads"], "reads")
        rows.append({**v.label, "allreduce_busbw": ar.get("busbw"),
                     "allreduce_slowdown": ratio(ar_alone.get("busbw"), ar.get("busbw")),
                     "storage_goodput_bps": reads.get("goodput_bps"),
                     "storage_slowdown": ratio(reads_alone.get("goodput_bps"), reads.get("goodput_bps")),
                     "bulk_goodput_bps": figures(s, "bulk").get("goodput_bps"), **fabric(s)})
    return rows


def isolation_verdict(rows: list[dict]) -> list[str]:
    lines = []
    for mode in MODES:
        on = next((r for r in rows if r["flow_control"] == mode and r["isolation"] == "on"), None)
        off = next((r for r in rows if r["flow_control"] == mode and r["isolation"] == "off"), None)
        if on and off and on["allreduce_slowdown"] and off["allreduce_slowdown"]:
            held = on["allreduce_slowdown"] < off["allreduce_slowdown"]
            lines.append(f"{mode}: allreduce slowdown {on['allreduce_slowdown']:.2f} with isolation, "
                         f"{off['allreduce_slowdown']:.2f} without: {'reproduced' if held else 'NOT reproduced'}")
    return lines


# -- routing ---------------------------------------------------------------------------------

ROUTINGS = ("static", "ecmp", "adaptive")
HURT = 1.25             # a victim slowed by more than this counts as hurt
PAUSED_SHARE = 0.05     # a link paused for more than this share of the run counts as paused


def routing_variants(doc: dict, modes) -> list[Variant]:
    return [Variant(f"{mode}-{routing}", {"routing": routing, "flow_control": mode},
                    variant(doc, mode, routing={"mode": routing, **({"period": "200ms"} if routing == "adaptive"
                                                                    else {})}))
            for mode in modes for routing in ROUTINGS]


def routing_rows(results: list) -> list[dict]:
    rows = []
    for v, s, run_dir in results:
        uplinks = [l["util_mean"] for l in s["links"] if l["node"].startswith("leaf") and l["peer"].startswith("spine")]
        victims = [w["slowdown"] for w in s["workloads"] if w["name"].startswith("victim") and w.get("slowdown")]
        events = rundir.events(run_dir)
        duration = next(e["t"] for e in events if e["type"] == "run" and e.get("what") == "end")
        rows.append({**v.label,
                     "uplink_imbalance": max(uplinks) / (sum(uplinks) / len(uplinks)) if sum(uplinks) else None,
                     "congested_links": sum(1 for l in s["links"] if l["congested_share"] > 0.10),
                     "paused_links": sum(1 for l in s["links"] if l["pause_s"] > PAUSED_SHARE * duration),
                     "victim_slowdown": sum(victims) / len(victims) if victims else None,
                     "victims_hurt": sum(1 for x in victims if x > HURT),
                     "incast_goodput_bps": figures(s, "incast").get("goodput_bps"),
                     "allreduce_busbw": figures(s, "allreduce").get("busbw"),
                     "route_changes": sum(1 for e in events if e["type"] == "route"), **fabric(s)})
    return rows


def routing_verdict(rows: list[dict]) -> list[str]:
    """Spreading routes (ecmp, adaptive) against static: more victims hurt, or more links paused."""
    lines = []
    for mode in MODES:
        by = {r["routing"]: r for r in rows if r["flow_control"] == mode}
        if "static" not in by or len(by) < 2:
            continue
        static = by["static"]
        worse = [r for r in by if r != "static" and (by[r]["victims_hurt"], by[r]["paused_links"])
                 > (static["victims_hurt"], static["paused_links"])]
        figures_ = ", ".join(f"{r} {by[r]['victims_hurt']} hurt / {by[r]['paused_links']} paused" for r in by)
        lines.append(f"{mode}: victims hurt / links paused: {figures_}; spreading routes spread congestion further "
                     f"than static: {'reproduced' if len(worse) == len(by) - 1 else 'NOT reproduced'}")
    return lines


# -- incast ----------------------------------------------------------------------------------

RTS_SETTINGS = ((False, 1), (True, 1), (True, 2), (True, 4))


def incast_variants(doc: dict, modes, buffer: str | None = None) -> list[Variant]:
    out = []
    for mode in modes:
        for rts, limit in RTS_SETTINGS:
            d = variant(doc, mode)
            w = workload(d, "incast")
            w.update(rts=rts, rts_limit=limit)
            if buffer:
                topo = topology_doc(d)
                d["topology"] = {**topo, "defaults": {**topo["defaults"], "buffer": buffer}}
            slug = f"{mode}-rts-{'off' if not rts else f'on-{limit}'}"
            out.append(Variant(slug, {"flow_control": mode, "rts": "on" if rts else "off",
                                      "rts_limit": limit if rts else None}, d))
    return out


def incast_rows(results: list) -> list[dict]:
    rows = []
    for v, s, run_dir in results:
        events = rundir.events(run_dir)
        plan = json.loads((run_dir / "plan.json").read_text())
        switch_fifo = min(q["limit_bytes"] for n in plan["nodes"] if n["forwards"] for p in n["ports"]
                          for q in p["queues"])
        for e in events:
            if e["type"] == "span" and "senders" in e:
                rows.append({**v.label, "senders": e["senders"], "switch_fifo_bytes": switch_fifo, "share": e["share"],
                             "goodput_bps": e["goodput_bps"], "p99_ms": e["p99_ms"], "drops": e["drops"],
                             "run_pause_s": s["flow_control"]["pause_s"]})
    return rows


def incast_verdict(rows: list[dict]) -> list[str]:
    """The target at 16 or more senders (at the most a quick run has, said so)."""
    lines = []
    for mode in MODES:
        mine = [r for r in rows if r["flow_control"] == mode]
        if not mine:
            continue
        many = min(16, max(r["senders"] for r in mine))
        best = {}
        for r in mine:
            if r["rts"] == "on" and r["senders"] >= many:
                best[r["rts_limit"]] = min(best.get(r["rts_limit"], 1.0), r["share"])
        off = [r["share"] for r in mine if r["rts"] == "off" and r["senders"] >= many]
        if best:
            limit, share = max(best.items(), key=lambda kv: kv[1])
            lines.append(f"{mode}: with request-to-send (limit {limit}) {many}+ senders keep >= {share:.0%} of the "
                         f"client's link" + (f" (without: {min(off):.0%})" if off else "") +
                         f": target 80% {'met' if share >= 0.8 else 'NOT met'}"
                         + ("" if many >= 16 else f" (only {many} senders in this run: the target is for 16+)"))
    return lines


# -- zones -----------------------------------------------------------------------------------

def zone_placements(nodes: list[str]) -> dict[str, list[str]]:
    """A job's node lists: inside zone a, split over the zones in two halves, and interleaved."""
    za = [n for n in nodes if n.startswith("za-")]
    zb = [n for n in nodes if n.startswith("zb-")]
    half = len(za + zb) // 4
    split = za[:half] + zb[:half]
    return {"one-zone": za[:2 * half], "split": split,
            "interleaved": [n for pair in zip(za[:half], zb[:half]) for n in pair]}


def cross_edges(ranks: list[str]) -> int:
    """Tree edges across the zones in a double-binary-tree allreduce over `ranks` (both trees
    counted: each carries half the data, so two edges of one pair load the link like one flow)."""
    return sum(1 for tree in double_binary_tree(len(ranks)) for child, parent in enumerate(tree.parent)
               if parent is not None and ranks[child][:3] != ranks[parent][:3])


def zones_variants(doc: dict, modes) -> list[Variant]:
    from emu.topo.loader import load_topology
    compute = [n.name for n in load_topology(doc["topology"]).nodes() if n.kind == "compute"]
    out = []
    for mode in modes:
        for placement, nodes in zone_placements(compute).items():
            d = variant(doc, mode)
            workload(d, "job")["nodes"] = nodes
            out.append(Variant(f"{mode}-{placement}", {"placement": placement, "flow_control": mode,
                                                       "cross_edges": cross_edges(nodes)}, d))
    return out


def zones_rows(results: list) -> list[dict]:
    rows = []
    for v, s, _ in results:
        inter = [l["util_mean"] for l in s["links"] if l["node"][:3] != l["peer"][:3]
                 and "spine" in l["node"] and "spine" in l["peer"]]
        rows.append({**v.label, "busbw": figures(s, "job").get("busbw"),
                     "interzone_util": max(inter) if inter else 0.0, **fabric(s)})
    return rows


def zones_verdict(rows: list[dict]) -> list[str]:
    lines = []
    for mode in MODES:
        by = {r["placement"]: r for r in rows if r["flow_control"] == mode}
        if {"one-zone", "split", "interleaved"} <= set(by) and all(r["busbw"] for r in by.values()):
            kept = by["split"]["busbw"] / by["one-zone"]["busbw"]
            lost = by["interleaved"]["busbw"] / by["one-zone"]["busbw"]
            lines.append(f"{mode}: split over the zones ({by['split']['cross_edges']} tree edges across) keeps {kept:.0%} "
                         f"of the one-zone busbw, interleaved ({by['interleaved']['cross_edges']} edges) {lost:.0%}: "
                         f"{'reproduced' if kept >= 0.8 and lost < kept else 'NOT reproduced'}")
    return lines


# -- the driver --------------------------------------------------------------------------------

def ratio(a, b):
    return a / b if a and b else None


@dataclass
class Experiment:
    hypothesis: str
    variants: object
    rows: object
    verdict: object
    keys: tuple


EXPERIMENTS = {
    "isolation": Experiment(
        "with SL->VL isolation, an allreduce sharing links with storage reads and bulk traffic is slowed "
        "less than with one VL for all (section VI-A)",
        isolation_variants, isolation_rows, isolation_verdict,
        ("isolation", "flow_control", "allreduce_busbw", "allreduce_slowdown", "storage_goodput_bps",
         "storage_slowdown", "bulk_goodput_bps", "drops", "pause_s")),
    "routing": Experiment(
        "under storage incast, routing that spreads traffic (adaptive, ECMP) spreads congestion onto "
        "flows that share only upstream links with it, which static routing spares (section VI-B)",
        routing_variants, routing_rows, routing_verdict,
        ("routing", "flow_control", "uplink_imbalance", "congested_links", "paused_links", "victim_slowdown",
         "victims_hurt", "incast_goodput_bps", "allreduce_busbw", "route_changes", "drops", "pause_s")),
    "incast": Experiment(
        "request-to-send keeps a client's link busy under many-to-one reads through shallow buffers "
        "(section VI-B); target: 16+ senders keep >= 80% of the client's link",
        incast_variants, incast_rows, incast_verdict,
        ("flow_control", "rts", "rts_limit", "senders", "switch_fifo_bytes", "share", "goodput_bps", "p99_ms",
         "drops", "run_pause_s")),
    "zones": Experiment(
        "a job across the two zones runs nearly as fast as inside one when few node pairs talk across "
        "the few inter-zone links (section III-B)",
        zones_variants, zones_rows, zones_verdict,
        ("placement", "flow_control", "cross_edges", "busbw", "interzone_util", "drops", "pause_s")),
}


def run_experiment(name: str, modes=MODES, out: str | None = None, lab: str | None = None, quick: bool = False,
                   buffer: str | None = None, on_variant=None) -> tuple[list[dict], list[str], Path]:
    """Run every variant of experiment `name`; returns (rows, verdict lines, directory).
    on_variant(index, total, slug), if given, hears of each variant as it starts."""
    from emu.lab import Lab
    if name not in EXPERIMENTS:
        raise EmuError(f"unknown experiment {name!r} (one of {', '.join(EXPERIMENTS)})")
    exp = EXPERIMENTS[name]
    doc = base_scenario(name)
    if quick:
        doc = shorten(doc)
    variants = exp.variants(doc, modes, buffer) if name == "incast" else exp.variants(doc, modes)
    lab_name = lab or topology_doc(doc)["name"]
    if lab_name in Lab.names():
        raise EmuError(f"lab {lab_name!r} is up; experiment {name} builds and removes its own labs: "
                       f"emu down {lab_name}, or pass --lab with another name")
    directory = Path(out) if out else Path("runs") / f"exp-{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    directory.mkdir(parents=True, exist_ok=False)
    results = []
    for i, v in enumerate(variants):
        if on_variant:
            on_variant(i, len(variants), v.slug)
        scenario = scenario_from_dict(v.doc, str(SCENARIOS / f"{name}.yaml"), SCENARIOS)
        summary, run_dir = run_scenario(scenario, str(directory / v.slug), lab_name=lab_name)
        results.append((v, summary, run_dir))
    rows = exp.rows(results)
    verdict = exp.verdict(rows)
    from emu.report.study import write_study
    write_study(directory, name, exp, rows, verdict)
    return rows, verdict, directory
