"""Results as a person reads them: rich tables and nccl-tests style text rows."""
import json
from collections import Counter

from rich.table import Table

from emu.units import format_rate

# -- labs -------------------------------------------------------------------------------


def labs_table(labs: list[dict]) -> Table | str:
    """labs: status dicts (with 'source')."""
    table = Table("lab", "nodes", "links", "scale", "routing", "state", "source")
    for st in labs:
        table.add_row(st["name"], str(len(st["nodes"])), str(len(st["links"])), f"{st['scale']:g}", st["routing"],
                      {True: "live", False: "[red]stale[/]"}.get(st.get("live"), "-"), st.get("source", ""))
    return table if labs else "no lab is up"


def status_tables(st: dict) -> list:
    ns = st.get("namespaces", {})
    live = ("live" if st.get("live", True) else
            f"[red]stale: {ns.get('present')} of {ns.get('planned')} namespaces exist (emu clean {st['name']})[/]")
    head = (f"lab [bold]{st['name']}[/] ({live}): scale {st['scale']:g}, routing {st['routing']}, "
            f"isolation {'on' if st['isolation'] else 'off'}, {st.get('flow_control', 'lossy')}")
    if st.get("backend", "kernel") != "kernel":
        of = st.get("daemon", {}).get(st["backend"], {})
        head += f", on {st['backend']}" + (f" ({len(of['connected'])} of {of['switches']} switches connected, "
                                           f"{of['entries']} entries, {of['sweeps']} sweeps of its own)" if of else "")
    d = st.get("daemon", {})
    head += (f"\ndaemon PID {d['pid']}: {', '.join(d['controllers'])}" if d.get("alive") else
             f"\n[red]{d.get('message', 'no daemon')}[/]")
    nodes = Table("node", "kind", "netns", "addresses", "health")
    for n in st["nodes"]:
        health = ("[red]failed[/] " if n.get("failed") else "") + \
            ("[red]unhealthy[/]" if n.get("unhealthy") else "") + \
            "".join(f" GPU {g} {kind}" for g, kind in sorted(n.get("faults", {}).get("gpu", {}).items())) + \
            "".join(f" SSD {d} at {f:.0%}" for d, f in sorted(n.get("faults", {}).get("ssd", {}).items())) + \
            (f" memory at {n['faults']['mem']:.0%}" if "mem" in n.get("faults", {}) else "")
        kind = n["kind"] + (f"\n[dim]{n['image']}[/]" if n.get("image") else "")
        nodes.add_row(n["name"], kind, n["netns"], " ".join(n["addrs"]), health.strip())
    failed = [n["failed"] for n in st["nodes"] if n.get("failed")]
    nodes.caption = "\n".join(failed) or None
    buffers = {frozenset((l["a"], l["b"])): l for l in st["links"]}
    ports = Table("node", "port", "address", "peer", "peer port", "emulated rate", "real rate", "buffer/VL", "state",
                  title="port map")
    for p in st["ports"]:
        link = buffers[frozenset((p["node"], p["peer"]))]
        degraded = link.get("planned_rate_bps", p["rate_bps"]) != p["rate_bps"]
        ports.add_row(p["node"], p["port"], p["addr"], p["peer"], p["peer_port"],
                      format_rate(p["rate_bps"]) + (" [red](degraded)[/]" if degraded else ""),
                      format_rate(p["real_rate_bps"]), f"{link['buffer_bytes'] // 1024} KiB",
                      "up" if p["up"] else "[red]down[/]")
    qos = Table("class", "SL", "VL", "TOS", "VL weight", "guaranteed share", "switch FIFO", title="QoS: class -> SL -> VL")
    for q in st["qos"]:
        qos.add_row(q["class"], str(q["sl"]), str(q["vl"]), f"0x{q['tos']:02x}", str(q["weight"]),
                    f"{q['guaranteed_share']:.0%}", f"{q['switch_fifo_bytes'] // 1024} KiB" if q["switch_fifo_bytes"] else "-")
    return [head, nodes, ports, qos]


def plan_tables(plan) -> list:
    """A LabPlan in brief: per node its ports, routes and rules; the VL layout of one port."""
    head = (f"plan of lab [bold]{plan.lab}[/]: {len(plan.nodes)} nodes, {len(plan.links)} links, scale "
            f"{plan.scale:g}, routing {plan.routing}")
    nodes = Table("node", "kind", "ports (addr -> peer, rate)", "routes", "rules")
    for n in plan.nodes:
        ports = ", ".join(f"{p.ifname} {p.addr} -> {p.peer} {format_rate(p.rate_bps)}" for p in n.ports)
        nodes.add_row(n.name, n.kind, ports, str(len(n.routes)), str(len(n.rules)))
    out = [head, nodes]
    first = next((p for n in plan.nodes if n.forwards for p in n.ports), None)
    if first is not None:
        steer = {vl: [f"0x{tos:02x}" for tos, v in plan.filters if v == vl] for vl in {q.vl for q in first.queues}}
        queues = Table("VL", "rate", "ceil", "quantum", "burst", "FIFO", "TOS steered here",
                       title=f"VL queues of a {format_rate(first.rate_bps)} port (switch ports; host ports "
                             f"keep deeper FIFOs)")
        for q in first.queues:
            queues.add_row(str(q.vl), format_rate(q.rate_bps), format_rate(q.ceil_bps), str(q.quantum),
                           f"{q.burst_bytes} B", f"{q.limit_bytes} B",
                           "default" if q.vl == plan.default_vl else " ".join(steer[q.vl]))
        out.append(queues)
    return out


def checks_table(checks: list[tuple[str, str, bool]], title: str) -> Table:
    table = Table("check", "result", "ok", title=title)
    for name, result, ok in checks:
        table.add_row(name, result, "[green]yes[/]" if ok else "[red]NO[/]")
    return table


# -- collectives (nccl-tests columns) -----------------------------------------------------

NCCL_TYPES = {"fp32": "float", "fp16": "half", "bf16": "bfloat16", "fp8": "f8e4m3"}    # as nccl-tests prints them


def collective_header(name: str, lab: str, scale: float, dilation: float, real_sizes: bool) -> str:
    given = "the real system's sizes" if real_sizes else "the lab's sizes (--sizes)"
    return "\n".join([
        f"# {name} on lab {lab}: {given}, run at rates x{scale:g} and data x{scale * dilation:g} "
        f"(scale {scale:g} x dilation {dilation:g}: emulated time runs {dilation:g}x slower than the real system's)",
        "# every column is projected to the real system: size / (scale x dilation), time / dilation, GB/s / scale;",
        "# bound = the busbw of the run's busiest modelled resource or link, %bound = how close it came",
        "#",
        f"# {'size':>12} {'count':>12} {'type':>8} {'redop':>6} {'root':>6} {'time':>10} {'algbw':>7} {'busbw':>7} "
        f"{'#wrong':>6} {'bound':>7} {'%bound':>6}",
        f"# {'(B)':>12} {'(elements)':>12} {'':>8} {'':>6} {'':>6} {'(us)':>10} {'(GB/s)':>7} {'(GB/s)':>7} "
        f"{'':>6} {'(GB/s)':>7} {'':>6}"])


def collective_row(r: dict) -> str:
    return (f"  {r['proj_size']:>12} {r['proj_count']:>12} {NCCL_TYPES.get(r['type'], r['type']):>8} "
            f"{r['redop']:>6} {r['root']:>6} {r['proj_time_us']:>10.1f} {r['proj_algbw']:>7.2f} "
            f"{r['proj_busbw']:>7.2f} {r['wrong']:>6} {r['proj_bound_busbw']:>7.2f} {r['efficiency']:>6.0%}")


def collective_footer(rows: list[dict]) -> str:
    wrong = sum(r["wrong"] for r in rows)
    avg = sum(r["proj_busbw"] for r in rows) / len(rows) if rows else 0.0
    return (f"# Out of bounds values : {wrong} {'OK' if not wrong else 'FAILED'}\n"
            f"# Avg bus bandwidth    : {avg:g}")


# -- storage ---------------------------------------------------------------------------

INCAST_KEYS = ("senders", "rts", "goodput_bps", "proj_goodput_bps", "share", "p50_ms", "p99_ms", "drops")


def incast_line(r: dict) -> str:
    return (f"senders {r['senders']:>3}: goodput {format_rate(r['goodput_bps'])}, share {r['share']:.0%}, "
            f"drops {r['drops']}")


def incast_table(rows: list[dict], title: str) -> Table:
    table = Table("senders", "rts", "goodput", "real scale", "share of link", "p50 ms", "p99 ms", "drops", title=title)
    for r in rows:
        table.add_row(str(r["senders"]), "on" if r["rts"] else "off", format_rate(r["goodput_bps"]),
                      format_rate(r["proj_goodput_bps"]), f"{r['share']:.0%}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", str(r["drops"]))
    return table


def storage_bench_line(r: dict) -> str:
    return (f"{r['clients']} clients read from {r['storage_nodes']} storage nodes ({r['replicas']} replica(s)): "
            f"{format_rate(r['aggregate_bps'])} = {r['nic_share']:.0%} of the storage NICs' "
            f"{format_rate(r['storage_capacity_bps'])} (real scale {format_rate(r['proj_aggregate_bps'])}); "
            f"the paper: 8 of 9 TB/s (89%)")


def checkpoint_lines(r: dict) -> list[str]:
    lines = [f"save {s['name']}: {s['bytes']} B in {s['seconds']:.2f} s, {format_rate(s['bps'])} "
             f"(real scale {format_rate(s['proj_bps'])})" for s in r["saves"]]
    ld = r["load"]
    lines.append(f"load {ld['name']}: {ld['bytes']} B in {ld['seconds']:.2f} s, {format_rate(ld['bps'])} "
                 f"(real scale {format_rate(ld['proj_bps'])}), {ld['tensors']} tensors, "
                 f"{'verified' if ld['verified'] else '[red]MISMATCH[/]'}")
    return lines


def placement_tables(placement, topo) -> list[Table]:
    """Each machine's nodes by kind, and the links that cross machines (tunnels)."""
    crossing = placement.crossing(topo)
    machines = Table("machine", "nodes", "compute", "storage", "switches", "links out",
                     title=f"{topo.name} over {placement.machines} machines")
    for k in range(placement.machines):
        nodes = placement.nodes_on(k)
        kinds = Counter(topo.node(n).kind for n in nodes)
        machines.add_row(str(k), str(len(nodes)), str(kinds["compute"]), str(kinds["storage"]),
                         str(kinds["switch"]), str(sum(placement.of[a] == k or placement.of[b] == k
                                                       for a, b in crossing)))
    machines.caption = f"{len(crossing)} of {len(topo.links())} links cross machines"
    links = Table("link", "machines", title="links that cross machines")
    for a, b in crossing[:40]:
        links.add_row(f"{a} <-> {b}", f"{placement.of[a]} <-> {placement.of[b]}")
    if len(crossing) > 40:
        links.caption = f"and {len(crossing) - 40} more (--json lists all)"
    return [machines, links] if crossing else [machines]


def json_rows(rows, keys=None) -> str:
    """Rows (or one dict) as indented JSON, keeping only `keys` where given."""
    if keys is not None:
        rows = [{k: r[k] for k in keys} for r in rows] if isinstance(rows, list) else {k: rows[k] for k in keys}
    return json.dumps(rows, indent=1)


# -- scenario runs ------------------------------------------------------------------------

def _workload_figures(w: dict) -> str:
    parts = []
    if w.get("step_time_s") is not None:
        parts.append(f"{w['steps_done']} steps of {w['step_time_s']:.2f} s (compute {w['compute_s']:.2f}, exposed "
                     f"communication {w['exposed_comm_s']:.2f})")
    if w.get("restarts"):
        parts.append(f"{w['restarts']} restart(s) from step {', '.join(map(str, w.get('restored_steps', [])))}, "
                     f"{w['lost_steps']} step(s) lost")
    if w.get("saves"):
        parts.append(f"{w['saves']} checkpoints of {w['save_s']:.2f} s ({format_rate(w['save_bps'])}), "
                     f"{'verified' if w.get('load_verified') else 'NOT verified'}")
    if w.get("requests"):
        switch = f", switch p50 {w['switch_p50_ms']:.1f} ms" if w.get("switch_p50_ms") is not None else ""
        parts.append(f"{w['requests']} requests, {w['requests_per_s']:.1f}/s, p50 {w['p50_ms']:.1f} ms, HBM hits "
                     f"{w['hbm_hit_rate']:.0%} ({w['switches']} switches{switch})")
    if w.get("busbw") is not None:
        parts.append(f"busbw {w['busbw']:.4f} GB/s (real {w.get('proj_busbw', 0):.2f})")
    if w.get("goodput_bps"):
        parts.append(f"goodput {format_rate(w['goodput_bps'])}")
    if w.get("p99_ms") is not None:
        parts.append(f"p99 {w['p99_ms']:.1f} ms")
    if w.get("slowdown"):
        parts.append(f"slowdown {w['slowdown']:.2f}")
    return ", ".join(parts) or w.get("error", "")


def run_summary_table(summary: dict) -> Table:
    table = Table("workload", "type", "outcome", "figures", title=f"run of {summary['scenario']}")
    for w in summary["workloads"]:
        table.add_row(w["name"], w["type"], w["outcome"], _workload_figures(w))
    worst = max(summary["links"], key=lambda l: (l["congested_share"], l["drops"]), default=None)
    if worst:
        table.caption = (f"most congested: {worst['node']} > {worst['peer']} ({worst['congested_share']:.0%} of "
                         f"samples backlogged, {worst['drops']} drops); drops per VL {summary['drops_by_vl']}")
    fc = summary.get("flow_control", {})
    if fc.get("mode") == "lossless":
        table.caption = (table.caption or "") + (
            f"\nlossless: {fc['lossless_violations']} violations (switch drops), {fc['pauses']} pauses, "
            f"{fc['pause_s']:.2f} s paused" + (f"; controller error: {fc['controller']['error']}"
                                              if "error" in fc.get("controller", {}) else ""))
    return table


def compare_tables(workloads: list[dict], links: list[dict], names) -> list[Table]:
    work = Table("workload", *names, title="workloads")
    for row in workloads:
        work.add_row(row["workload"], *(_workload_figures(r) if r else "-" for r in row["runs"]))
    link = Table("link group", *names, title="links (mean utilisation, drops, deepest backlog)")
    for row in links:
        link.add_row(row["group"], *(f"{r['util_mean']:.0%}, {r['drops']} drops, {r['backlog_max_bytes']} B"
                                     if r else "-" for r in row["runs"]))
    return [work, link]


def validate_table(rows: list[dict], lab: str) -> Table:
    """The validator's rows; the caption names the nodes it marked."""
    table = Table("node", "check", "ok", "measured", "expected", title=f"emu validate {lab}")
    for r in rows:
        measured, expected = r["measured"], r["expected"]
        if isinstance(measured, (int, float)) and isinstance(expected, (int, float)):     # a link's bit/s
            measured, expected = f"{format_rate(measured)} ({measured / expected:.0%})", format_rate(expected)
        table.add_row(r["node"], r["check"], "yes" if r["ok"] else "[bold red]NO[/]", str(measured), str(expected))
    failed = sorted({r["node"] for r in rows if not r["ok"]})
    table.caption = f"marked unhealthy: {', '.join(failed)}" if failed else "every node passed"
    return table


def jobs_table(state: dict) -> Table:
    """`emu jobs ls`: every job the lab's scheduler knows, and its utilisation so far."""
    table = Table("job", "state", "prio", "nodes", "steps", "queued", "intr", "rest", "lost",
                  title=f"jobs on {state.get('lab', '?')}",
                  caption_justify="left")
    for r in state["jobs"]:
        where = ",".join(r["nodes"]) if r["nodes"] else f"({r['need']} wanted)"
        state_cell = r["state"] + (f": {r['error']}" if r.get("error") else "")
        table.add_row(r["job"], state_cell, str(r["priority"]), where, f"{r['steps_done']}/{r['steps']}",
                      f"{r['queued_s']:.1f} s", str(r["interruptions"]), str(r["restarts"]), str(r["lost_steps"]))
    s = state.get("summary") or {}
    daemon = f"daemon PID {state['daemon']}" if state.get("daemon") else "no daemon running"
    table.caption = daemon + (f"; utilisation {s['utilisation']:.0%} over {s['makespan_s']:.1f} s"
                              if s.get("utilisation") is not None else "")
    return table


def event_line(event: dict) -> str:
    """One event of a lab's log as a line: its time since the lab came up, its type, its fields."""
    fields = " ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}"
                      for k, v in event.items() if k not in ("t", "mono", "type"))
    return f"{event['t']:10.3f}  {event['type']:<8} {fields}"
