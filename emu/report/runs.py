"""A run directory made readable: summary.json, report.md and the PNGs, from its files alone
(so `emu report RUN_DIR` reproduces them anywhere), and side-by-side comparison of runs."""
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from emu.plan import LabPlan  # noqa: E402
from emu.report import rundir  # noqa: E402
from emu.topo.loader import topology_from_dict  # noqa: E402
from emu.topo.model import natural_key  # noqa: E402
from emu.units import format_rate  # noqa: E402

CONGESTED = 0.10      # a VL queue counts as congested while its backlog is above 10% of its FIFO
PEAK_WINDOW = 0.2     # seconds over which util_max is taken
HEATMAP_ROWS = 64     # link directions a heatmap shows at most
SAMPLER_KEYS = ("period_s", "samples", "late", "cpu_seconds", "clock_bound_s")   # clock: machines on one timeline
WORKLOAD_KEYS = ("algbw", "busbw", "node_bound_algbw", "proj_algbw", "proj_busbw", "goodput_bps", "p50_ms",
                 "p99_ms", "slowdown", "share", "drops", "wrong", "verified",
                 # training jobs (emu.experiments.training)
                 "job", "nodes", "steps_done", "restarts", "lost_steps", "step_time_s", "compute_s", "comm_s",
                 "exposed_comm_s", "a2a_s", "overlap", "wall_per_step_s", "cross_zone", "queued_s", "interruptions",
                 "proj_step_time_s", "saves", "save_s", "save_bps", "load_verified",
                 "restored_steps",
                 # AICB workloads (emu.workloads.aicb)
                 "iteration_s", "collectives",
                 # programs of users' own (emu.workloads.command, emu.workloads.iperf3)
                 "retransmits", "lost_percent", "copies", "seconds",
                 # Composition-of-Experts serving (emu.workloads.coe)
                 "requests", "requests_per_s", "switches", "switch_p50_ms", "hbm_hit_rate", "storage_bytes", "hits",
                 "misses")


def series(table: pa.Table, keys: tuple) -> dict:
    """{key tuple: {"t": array, column: array ...}} from columnar samples, in time order."""
    if not table.num_rows:
        return {}
    table = table.sort_by([(k, "ascending") for k in keys] + [("t", "ascending")])
    key_columns = [table[k].to_numpy() for k in keys]
    starts = np.flatnonzero(np.r_[True, np.any([c[1:] != c[:-1] for c in key_columns], axis=0)])
    ends = np.append(starts[1:], table.num_rows)
    values = {c: table[c].to_numpy() for c in table.column_names if c not in keys}
    firsts = zip(*(c[starts].tolist() for c in key_columns))
    return {key: {c: v[a:b] for c, v in values.items()} for key, a, b in zip(firsts, starts, ends)}


def link_order(plan: LabPlan):
    """Sort key of a link direction (node, peer) so a heatmap groups like links: host uplinks, leaf
    uplinks, spine-to-spine, spine downlinks, leaf downlinks; by name within a group."""
    hosts = {n.name for n in plan.nodes if not n.forwards}
    leaves = {n.name for n in plan.nodes if n.forwards and any(p.peer in hosts for p in n.ports)}

    def layer(name):
        return 0 if name in hosts else 1 if name in leaves else 2
    group = {(0, 1): 0, (1, 2): 1, (2, 2): 2, (2, 1): 3, (1, 0): 4}

    def key(direction):
        node, peer = direction
        return group.get((layer(node), layer(peer)), 5), natural_key(node), natural_key(peer)
    return key


def summarise(run: dict) -> tuple[dict, dict]:
    """(summary, the series the plots need), from rundir.read()."""
    plan = LabPlan.from_dict(run["plan"])
    rate = {(n.name, p.ifname): p.rate_bps for n in plan.nodes for p in n.ports}
    fc = plan.flow_control
    # "congested": backlog above 10% of the depth where a port starts losing (lossy) or pausing (lossless)
    fifo = {(n.name, p.ifname): min(p.queues[0].limit_bytes, fc.xoff) if fc.lossless else p.queues[0].limit_bytes
            for n in plan.nodes for p in n.ports}
    ports = series(run["ports"], ("node", "port", "peer"))
    queues = series(run["samples"], ("node", "port", "peer", "vl"))
    vls_of = defaultdict(list)
    for (node, port, _, vl), q in queues.items():
        vls_of[(node, port)].append((vl, q))
    links, util, backlog = [], {}, {}
    for (node, port, peer), s in ports.items():
        dt = np.diff(s["t"])
        busy = np.diff(s["tx_bytes"]) * 8 / np.where(dt > 0, dt, np.inf) / rate[(node, port)]
        util[(node, peer)] = (s["t"][1:], busy)
        # util_max over windows of at least PEAK_WINDOW: a single interval's rate carries the
        # scheduling jitter of the sampling thread on a loaded machine (+-10% at 50 ms here)
        k = max(1, int(round(PEAK_WINDOW / np.median(dt)))) if len(dt) else 1
        peak = ((s["tx_bytes"][k:] - s["tx_bytes"][:-k]) * 8 / np.maximum(s["t"][k:] - s["t"][:-k], 1e-9)
                / rate[(node, port)]) if len(dt) >= k else busy
        span = s["t"][-1] - s["t"][0]
        vls = vls_of[(node, port)]
        depth = np.max([q["backlog_bytes"] for _, q in vls], axis=0) if vls else np.zeros(len(s["t"]))
        backlog[(node, peer)] = (s["t"], depth)
        congested = np.mean(depth > CONGESTED * fifo[(node, port)]) if len(depth) else 0.0
        links.append({"node": node, "peer": peer, "port": port,
                      "util_mean": float((s["tx_bytes"][-1] - s["tx_bytes"][0]) * 8 / span / rate[(node, port)])
                      if span > 0 else 0.0,
                      "util_max": float(peak.max()) if len(peak) else 0.0,
                      "drops": int(sum(q["drops"][-1] - q["drops"][0] for _, q in vls)),
                      "backlog_max_bytes": int(depth.max()) if len(depth) else 0,
                      "pause_s": float(sum(q["paused_s"][-1] - q["paused_s"][0] for _, q in vls if "paused_s" in q)),
                      "congested_share": float(congested)})
    in_order = link_order(plan)
    links.sort(key=lambda l: in_order((l["node"], l["peer"])))
    drops_by_vl = defaultdict(int)
    for (_, _, _, vl), q in queues.items():
        drops_by_vl[int(vl)] += int(q["drops"][-1] - q["drops"][0])
    workloads = []
    for e in run["events"]:
        if e["type"] == "end":
            figures = {k: v for k, v in e.get("figures", {}).items() if k in WORKLOAD_KEYS}
            flows = [f["slowdown"] for f in run["flows"] if f["workload"] == e["name"] and f["slowdown"]]
            if flows and "slowdown" not in figures:
                figures["slowdown"] = float(np.median(flows))
            workloads.append({"name": e["name"], "type": e["kind"], "outcome": e["outcome"], "end_s": e["t"],
                              **figures, **({"error": e["error"]} if "error" in e else {})})
    sampler = next((e for e in run["events"] if e["type"] == "sampler"), {})
    controller = next((e for e in run["events"] if e["type"] == "flow-control"), {})
    scheduler = next(({k: v for k, v in e.items() if k not in ("t", "type")}
                      for e in run["events"] if e["type"] == "scheduler"), None)
    switches = {n.name for n in plan.nodes if n.forwards}
    fabric_drops = sum(l["drops"] for l in links if l["node"] in switches)
    flow_control = {"mode": fc.mode, "fabric_drops": fabric_drops,
                    "pause_s": sum(l["pause_s"] for l in links),
                    "pauses": sum(1 for e in run["events"] if e["type"] == "pause"),
                    **({"lossless_violations": fabric_drops, "xoff": fc.xoff, "xon": fc.xon,
                        "controller": {k: v for k, v in controller.items() if k not in ("t", "type")}}
                       if fc.lossless else {})}
    summary = {"scenario": run["scenario"].get("name"), "workloads": workloads, "links": links,
               "drops_by_vl": dict(sorted(drops_by_vl.items())), "flow_control": flow_control,
               **({"scheduler": scheduler} if scheduler else {}),
               "faults": [e for e in run["events"] if e["type"] == "fault"],
               "sampler": {k: sampler.get(k) for k in SAMPLER_KEYS}}
    return summary, {"util": util, "backlog": backlog, "queues": queues, "plan": plan}


def class_names(scenario: dict) -> dict[int, str]:
    """VL -> the traffic classes that ride in it, from the scenario's (resolved) topology."""
    qos = scenario["topology"].get("qos", {})
    sl2vl = {int(k): v for k, v in qos.get("sl2vl", {}).items()}
    names = defaultdict(list)
    for cls, sl in qos.get("classes", {}).items():
        names[sl2vl.get(sl, 0)].append(cls)
    return {vl: "+".join(c) for vl, c in names.items()}


def plot_class_throughput(data, scenario, out: Path) -> None:
    hosts = {n.name for n in data["plan"].nodes if not n.forwards}
    totals = {}
    for (node, _, _, vl), q in data["queues"].items():
        if node not in hosts or len(q["t"]) < 2:
            continue
        t = q["t"][1:]
        rate = np.diff(q["tx_bytes"]) * 8 / np.maximum(np.diff(q["t"]), 1e-9)
        if vl not in totals:
            totals[vl] = (t, np.zeros(len(t)))
        n = min(len(t), len(totals[vl][1]))
        totals[vl] = (totals[vl][0][:n], totals[vl][1][:n] + rate[:n])
    names = class_names(scenario)
    fig, ax = plt.subplots(figsize=(9, 4))
    for vl, (t, bps) in sorted(totals.items()):
        ax.plot(t, bps / 1e6, label=f"VL{vl} ({names.get(vl, '?')})")
    ax.set(xlabel="time since the run's start, s", ylabel="Mbit/s sent by hosts (emulated)",
           title="throughput per traffic class")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if totals:              # hosts that sent nothing leave no lines to name
        ax.legend(fontsize=8)
    _faults(ax, scenario)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _faults(ax, scenario) -> None:
    from emu.units import parse_duration
    for f in scenario.get("faults", []) or []:
        start = parse_duration(f.get("start", 0))
        end = start + parse_duration(f["duration"]) if f.get("duration") else None
        ax.axvspan(start, end if end else ax.get_xlim()[1], color="red", alpha=0.08)


def plot_heatmap(by_link: dict, order, out: Path, title: str, label: str, scale: float = 1.0,
                 vmax: float | None = None) -> None:
    directions = sorted(by_link, key=order)
    if not directions:
        return
    if len(directions) > HEATMAP_ROWS:      # a paper-size fabric: a row each would be a picture no one reads
        busiest = set(sorted(directions, key=lambda d: -float(np.mean(by_link[d][1])))[:HEATMAP_ROWS])
        title += f" (the {HEATMAP_ROWS} busiest of {len(directions)}; every link in summary.json)"
        directions = [d for d in directions if d in busiest]
    t = max((by_link[d][0] for d in directions), key=len)
    grid = np.zeros((len(directions), len(t)))
    for i, d in enumerate(directions):
        v = by_link[d][1]
        grid[i, :len(v)] = v[:len(t)] * scale
    fig, ax = plt.subplots(figsize=(10, max(3, 0.18 * len(directions) + 1.5)))
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="inferno_r", vmin=0, vmax=vmax,
                      extent=(t[0], t[-1], len(directions) - 0.5, -0.5))
    ax.set_yticks(range(len(directions)), [f"{a}>{b}" for a, b in directions], fontsize=6)
    ax.set(xlabel="time since the run's start, s", title=title)
    fig.colorbar(image, ax=ax, label=label)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_slowdown_cdf(flows: list[dict], out: Path) -> None:
    by_workload = defaultdict(list)
    for f in flows:
        if f["slowdown"]:
            by_workload[f["workload"]].append(f["slowdown"])
    if not by_workload:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in sorted(by_workload.items()):
        v = np.sort(values)
        ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=f"{name} ({len(v)})")
    ax.set(xscale="log", xlabel="slowdown (completion time / ideal)", ylabel="fraction of flows or iterations",
           title="flow completion slowdown", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def report_md(summary: dict, directory: Path) -> str:
    lines = [f"# Run of scenario `{summary['scenario']}`", "", f"Directory: `{directory}`", "", "## Workloads", "",
             "| workload | type | outcome | algbw GB/s | busbw GB/s | goodput | p50 ms | p99 ms | slowdown |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for w in summary["workloads"]:
        def num(k, fmt):
            return fmt.format(w[k]) if w.get(k) is not None else ""
        lines.append(f"| {w['name']} | {w['type']} | {w['outcome']}{': ' + w['error'] if 'error' in w else ''} | "
                     f"{num('algbw', '{:.4f}')} | {num('busbw', '{:.4f}')} | "
                     f"{format_rate(w['goodput_bps']) if w.get('goodput_bps') else ''} | {num('p50_ms', '{:.1f}')} | "
                     f"{num('p99_ms', '{:.1f}')} | {num('slowdown', '{:.2f}')} |")
    worst = sorted(summary["links"], key=lambda l: (l["congested_share"], l["drops"]), reverse=True)[:10]
    lines += ["", f"## Most congested links (share of samples with a VL backlog above {CONGESTED:.0%} of its FIFO)",
              "", "| link | congested | drops | backlog max | util mean | util max |", "|---|---:|---:|---:|---:|---:|"]
    for l in worst:
        lines.append(f"| {l['node']} > {l['peer']} | {l['congested_share']:.0%} | {l['drops']} | "
                     f"{l['backlog_max_bytes']} B | {l['util_mean']:.0%} | {l['util_max']:.0%} |")
    fc = summary.get("flow_control", {"mode": "lossy"})
    if fc["mode"] == "lossless":
        c = fc.get("controller", {})
        lines += ["", "## Flow control: lossless", "",
                  f"XOFF {fc['xoff']} B, XON {fc['xon']} B. **Lossless violations (switch drops): "
                  f"{fc['lossless_violations']}.** {fc['pauses']} pauses, {fc['pause_s']:.2f} s paused over all "
                  f"ports. Controller: every {c.get('period_s', 0) * 1e3:.1f} ms, a step took "
                  f"{c.get('step_p50_s', 0) * 1e3:.2f} ms (p50) / {c.get('step_p99_s', 0) * 1e3:.2f} ms (p99) / "
                  f"{c.get('step_max_s', 0) * 1e3:.1f} ms (max); peak switch backlog "
                  f"{c.get('peak_backlog_bytes', 0)} B." + (f" Controller error: {c['error']}" if "error" in c else "")]
    lines += ["", "## Drops per VL", "", "| VL | drops |", "|---:|---:|"]
    lines += [f"| {vl} | {n} |" for vl, n in summary["drops_by_vl"].items()]
    if summary["faults"]:
        lines += ["", "## Faults", ""] + [f"- t = {f['t']:.2f} s: {f['fault']} {f.get('link') or f.get('node') or ''}"
                                           + (f" ({f['error']})" if "error" in f else "") for f in summary["faults"]]
    s = summary["sampler"]
    lines += ["", f"Sampler: every {s['period_s']} s, {s['samples']} samples, {s['late']} late, "
                  f"{s['cpu_seconds']:.2f} s of CPU.", "",
              "![class throughput](class_throughput.png)", "", "![utilisation](utilisation.png)", "",
              "![backlog](backlog.png)", "", "![slowdown](slowdown_cdf.png)", "", "![topology](topology.png)", ""]
    return "\n".join(lines)


def render_run(directory) -> dict:
    """Write summary.json, report.md and the PNGs of a run directory; returns the summary."""
    directory = Path(directory)
    run = rundir.read(directory)
    summary, data = summarise(run)
    order = link_order(data["plan"])
    plot_class_throughput(data, run["scenario"], directory / "class_throughput.png")
    plot_heatmap(data["util"], order, directory / "utilisation.png", "link utilisation (egress, per direction)",
                 "share of the link rate", vmax=1.0)
    plot_heatmap(data["backlog"], order, directory / "backlog.png", "queue backlog (deepest VL, per egress)",
                 "KiB", scale=1 / 1024)
    plot_slowdown_cdf(run["flows"], directory / "slowdown_cdf.png")
    topo = topology_from_dict(run["scenario"]["topology"], str(directory / "scenario.yaml"))
    from emu.report.topology import draw
    draw(topo, str(directory / "topology.png"), {(l["node"], l["peer"]): l["util_mean"] for l in summary["links"]},
         title=f"{summary['scenario']}: links coloured by mean utilisation")
    (directory / "summary.json").write_text(json.dumps(summary, indent=1))
    (directory / "report.md").write_text(report_md(summary, directory))
    return summary


def compare(directories: list) -> tuple[list[dict], list[dict]]:
    """(workload rows, link-group rows) of several runs side by side."""
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in directories]
    workloads = defaultdict(dict)
    for i, s in enumerate(summaries):
        for w in s["workloads"]:
            workloads[w["name"]][i] = w
    groups = defaultdict(dict)
    for i, s in enumerate(summaries):
        for l in s["links"]:
            g = groups[(l["node"].rstrip("0123456789"), l["peer"].rstrip("0123456789"))].setdefault(
                i, {"util_mean": [], "drops": 0, "backlog_max_bytes": 0})
            g["util_mean"].append(l["util_mean"])
            g["drops"] += l["drops"]
            g["backlog_max_bytes"] = max(g["backlog_max_bytes"], l["backlog_max_bytes"])
    work_rows = [{"workload": name, "runs": [by_run.get(i, {}) for i in range(len(summaries))]}
                 for name, by_run in workloads.items()]
    link_rows = [{"group": f"{a}* > {b}*", "runs": [
        {"util_mean": float(np.mean(v["util_mean"])), "drops": v["drops"], "backlog_max_bytes": v["backlog_max_bytes"]}
        if (v := by_run.get(i)) else {} for i in range(len(summaries))]} for (a, b), by_run in sorted(groups.items())]
    return work_rows, link_rows


def compare_plot(directories: list, out: Path) -> None:
    """Overlaid: every run's host throughput per traffic class over time, one panel per class."""
    runs = [rundir.read(d) for d in directories]
    per_run = []
    for run in runs:
        _, data = summarise(run)
        hosts = {n.name for n in data["plan"].nodes if not n.forwards}
        totals = defaultdict(lambda: None)
        for (node, _, _, vl), q in data["queues"].items():
            if node in hosts and len(q["t"]) > 1:
                rate = np.diff(q["tx_bytes"]) * 8 / np.maximum(np.diff(q["t"]), 1e-9)
                prev = totals[vl]
                n = len(rate) if prev is None else min(len(rate), len(prev[1]))
                totals[vl] = (q["t"][1:][:n], rate[:n] + (0 if prev is None else prev[1][:n]))
        per_run.append((class_names(run["scenario"]), dict(totals)))
    vls = sorted({vl for _, totals in per_run for vl in totals})
    fig, axes = plt.subplots(len(vls), 1, figsize=(9, 2.4 * len(vls)), sharex=True, squeeze=False)
    for ax, vl in zip(axes[:, 0], vls):
        for d, (names, totals) in zip(directories, per_run):
            if vl in totals:
                ax.plot(totals[vl][0], totals[vl][1] / 1e6, label=Path(d).name)
        ax.set(ylabel="Mbit/s", title=f"VL{vl} ({per_run[0][0].get(vl, '?')})")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("time since the run's start, s")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
