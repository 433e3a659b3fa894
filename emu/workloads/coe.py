"""coe: Composition-of-Experts serving (SN40L paper): a router node sends requests over the fabric
to the compute nodes that serve the experts (agents/coe.py), each with its hardware profile.

    - {type: coe, router: r0, servers: [c0], experts: 150, expert_params: 7B, requests: 20,
       skew: 1.0, tokens: 16, duration: 30s}

`requests`: real requests a second (Poisson, experts Zipf-distributed with exponent `skew`,
from `seed`), or a trace file (cluster.coe.read_trace: `t,expert,tokens` lines, real seconds).
Expert e is served by servers[e mod S]; a server's HBM holds as many experts as it takes whole
(or `hbm_experts`: HBM kept for other uses), its capacity tier (the profile's: SN40L's DDR, a
DGX's host memory) the first of its experts it has room for (or `tier_experts`), and storage the
rest (which then needs storage nodes).
The lab stretches time by 1 / scale: trace times and every figure below are the real system's.
Figures: requests, requests_per_s, p50_ms, p99_ms, switches, switch_p50_ms, hbm_hit_rate,
storage_bytes (real bytes streamed from storage).
"""
import os
import tempfile

import numpy as np

from cluster import coe
from cluster.node import DTYPES
from emu.errors import EmuError
from emu.launch import command, peer_timeout
from emu.workloads.base import WorkloadType, register

PORT = 7400              # + the step's index


def check(p, topology, where, fail) -> None:
    for key in ("experts", "tokens"):
        if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 1:
            fail(f"{where}.{key}", f"must be a positive integer, got {p[key]!r}")
    if p["dtype"] not in DTYPES:
        fail(f"{where}.dtype", f"unknown dtype {p['dtype']!r} (one of {', '.join(DTYPES)})")
    try:
        p["expert_bytes"] = coe.expert_bytes(p["expert_params"], p["dtype"])
    except ValueError as e:
        fail(f"{where}.expert_params", str(e))
    if isinstance(p["skew"], bool) or not isinstance(p["skew"], (int, float)) or p["skew"] < 0:
        fail(f"{where}.skew", f"must be a Zipf exponent of 0 or more, got {p['skew']!r}")
    if not isinstance(p["servers"], list) or not p["servers"]:
        fail(f"{where}.servers", "must be a list of compute nodes")
    if p["router"] in p["servers"]:
        fail(f"{where}.router", "must be another node than the servers")
    slots, room = p["hbm_experts"], p["tier_experts"]
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        fail(f"{where}.hbm_experts", f"must be a positive integer, got {slots!r}")
    if room is not None and (isinstance(room, bool) or not isinstance(room, int) or room < 0):
        fail(f"{where}.tier_experts", f"must be a whole number, got {room!r}")
    rate = p["requests"]
    if isinstance(rate, str):
        try:
            p["trace"] = coe.read_trace(rate, p["experts"])
        except (OSError, ValueError) as e:
            fail(f"{where}.requests", str(e))
    elif isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
        fail(f"{where}.requests", f"must be requests a second or a trace file, got {rate!r}")
    else:
        p["trace"] = None           # drawn when the step runs, for its duration
    servers = len(p["servers"])
    p["holdings"] = [coe.holding(topology.hardware(s), i, servers, p["experts"], p["expert_bytes"], slots,
                                 room) for i, s in enumerate(p["servers"])]
    for s, h in zip(p["servers"], p["holdings"]):
        if h.hbm_slots < 1:
            fail(f"{where}.expert_params", f"an expert of {p['expert_params']} does not fit {s}'s HBM "
                 f"({topology.hardware(s).name})")
    asked = {r.expert for r in p["trace"]} if p["trace"] else set(range(p["experts"]))
    if any(set(h.stored) & asked for h in p["holdings"]) and not any(n.kind == "storage" for n in topology.nodes()):
        fail(f"{where}.experts", "some experts asked for fit no server's memory and stream from storage, "
             "but the topology has no storage nodes")


def run(run, step, index: int) -> dict:
    p, lab = step.params, run.lab
    scale, port = lab.topology.scale, PORT + index
    servers, holdings = p["servers"], p["holdings"]
    trace = p["trace"] or coe.zipf_trace(p["experts"], p["requests"], step.duration * scale, p["skew"], p["tokens"],
                                         p["seed"])
    asked = {r.expert for r in trace}
    needs_storage = any(set(h.stored) & asked for h in holdings)
    cluster = run.storage() if needs_storage else None
    timeout = peer_timeout(lab, int(p["expert_bytes"] * scale))
    fd, path = tempfile.mkstemp(prefix=f"coe-{lab.name}-", suffix=".csv")
    os.close(fd)
    try:
        coe.trace_file(path, trace)
        with lab.launch() as agents:
            programs = []
            for s, h in zip(servers, holdings):
                stored = sorted(set(h.stored) & asked)
                argv = command("coe") + [
                    "serve", "--port", str(port), "--hardware", lab.topology.hardware(s).name, "--scale", repr(scale),
                    "--expert-bytes", repr(float(p["expert_bytes"])), "--hbm-slots", str(h.hbm_slots),
                    "--tier", h.tier, "--held", ",".join(map(str, h.held)), "--tos", str(lab.tos(p["class"])),
                    "--timeout", f"{timeout:.1f}", "--tag", f"{step.name}"]
                if stored:
                    argv += ["--stored", ",".join(map(str, stored)), "--storage-tos", str(lab.tos("storage"))]
                    argv += cluster.client_args(s)
                programs.append((s, argv))
            started = list(zip(servers, agents.start_all(programs, ready=True)))
            router = agents.start(p["router"], command("coe") + [
                "route", "--servers", ",".join(f"{lab.node(s).addr}:{port}" for s in servers), "--trace", path,
                "--experts", str(p["experts"]), "--scale", repr(scale), "--seconds", repr(step.duration),
                "--tos", str(lab.tos(p["class"])), "--timeout", f"{timeout:.1f}"])
            outcomes, ended = agents.gather([(p["router"], router)] + started,
                                            timeout=step.duration + backstop(lab, p, trace) + 10 * timeout + 60)
            errors = agents.own_errors(outcomes, ended)
            if errors:
                raise EmuError(f"workloads.{step.name}: {errors[0]}")
    finally:
        os.unlink(path)
    answers = outcomes[0][0][0]["answers"]
    served = [records[0] for records, _ in outcomes[1:]]
    for a in answers:
        s = servers[coe.server_of(a["expert"], len(servers))]
        ideal = trace[a["id"]].tokens * p["expert_bytes"] / (lab.topology.hardware(s).hbm_bandwidth
                                                            * lab.topology.hardware(s).accelerators * scale)
        run.flow(p["router"], s, p["class"], 0, a["sent"], a["back"], ideal, step.name)
    return figures(answers, served, scale, p["expert_bytes"])


def backstop(lab, p, trace) -> float:
    """Lab seconds the trace takes at most if every request misses and streams from storage, twice
    over: the wait for an answer that never comes."""
    scale, nbytes, worst = lab.topology.scale, p["expert_bytes"], 0.0
    for s in p["servers"]:
        f = lab.topology.hardware(s)
        slowest = min(f.pcie_bandwidth, f.root_complex_bandwidth / f.accelerators_per_root_complex,
                      f.get("local_memory_bandwidth", f.pcie_bandwidth)) * f.accelerators
        worst = max(worst, nbytes / slowest + nbytes / f.host_memory_bandwidth)
    wire = nbytes * scale * 8 / lab.plan.slowest_bps()
    hbm = min(lab.topology.hardware(s).hbm_bandwidth * lab.topology.hardware(s).accelerators for s in p["servers"])
    decode = sum(r.tokens for r in trace) * nbytes / hbm
    return 2 * (len(trace) * (worst / scale + wire) + decode / scale)


def figures(answers: list[dict], served: list[dict], scale: float, expert_bytes: int) -> dict:
    """The summary's figures at real scale (lab seconds x scale)."""
    latency = np.array([a["back"] - a["sent"] for a in answers]) * scale
    switches = [a["switch_s"] * scale for a in answers if a["source"] != coe.HBM]
    span = (max(a["back"] for a in answers) - min(a["sent"] for a in answers)) * scale if answers else 0.0
    stored = sum(a["source"] == coe.STORAGE for a in answers)
    return {"requests": len(answers), "requests_per_s": len(answers) / span if span else 0.0,
            "p50_ms": float(np.percentile(latency, 50)) * 1e3 if len(latency) else None,
            "p99_ms": float(np.percentile(latency, 99)) * 1e3 if len(latency) else None,
            "switches": len(switches), "switch_p50_ms": float(np.median(switches)) * 1e3 if switches else None,
            "hbm_hit_rate": (len(answers) - len(switches)) / len(answers) if answers else None,
            "storage_bytes": stored * expert_bytes,
            "hits": sum(s["hits"] for s in served), "misses": sum(s["misses"] for s in served)}


register(WorkloadType("coe", frozenset({"experts", "router", "servers", "duration"}),
                      {"expert_params": "7B", "dtype": "bf16", "requests": 10, "skew": 1.0, "tokens": 16,
                       "seed": 0, "hbm_experts": None, "tier_experts": None, "class": "other"},
                      run, {"router": None, "servers": "compute"}, check, paths=("requests",)))
