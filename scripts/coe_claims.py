#!/usr/bin/env python3
"""The SN40L paper's Composition-of-Experts claims (arXiv 2405.07518, abstract: model switching
15x to 31x faster, machine footprint up to 19x smaller, overall speedup 3.7x over a DGX H100 and
6.6x over a DGX A100), measured with the hardware profiles' figures as inputs and nothing fitted.

- Switching: one expert (7B parameters, bf16) copied from the node's capacity tier into HBM in
  the agents' node model (agents.coe.switch on agents.gpu.NodeModel), each accelerator its
  share: SN40L from each socket's DDR, a DGX from host memory over PCIe.
- Footprint: the nodes whose memory keeps the experts resident: SN40L in DDR (it switches from
  there fast), a DGX in HBM (switching from host memory is what is slow); for the paper's 150
  experts, and for as many as one SN40L node's DDR holds.
- Serving: the lab (root): scenarios/coe-sn40l.yaml's serving with every node kind, a burst of
  requests (all arrived at once, so each node serves at its own pace): requests a second and
  latency, real time.

Run as root:  python scripts/coe_claims.py [--requests 48] [--markdown docs/results/coe.md]
              python scripts/coe_claims.py --no-lab        (switching and footprint only, no root)
"""
import argparse
import copy
import time
from pathlib import Path

import yaml

from agents.coe import switch
from agents.gpu import NodeModel
from cluster import coe, hardware
from cluster.node import NodeParams
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm

KINDS = ("sn40l-node", "dgx-h100", "dgx-a100")
PAPER = {"dgx-h100": {"switch": 15, "speedup": 3.7, "footprint": 19}, "dgx-a100": {"switch": 31, "speedup": 6.6}}
SCENARIO = Path(__file__).parents[1] / "scenarios" / "coe-sn40l.yaml"
MODEL_SECONDS = 0.25        # how long a switch runs in the node model (its scale is chosen so)


def switch_seconds(profile, nbytes: float) -> float:
    """One switch in the node model, in real seconds (run at a scale that makes it MODEL_SECONDS)."""
    tier = profile.capacity_tier[0]
    rough = nbytes / (profile.local_memory_bandwidth * profile.accelerators if tier == "local"
                      else profile.pcie_bandwidth * profile.accelerators)
    scale = rough / MODEL_SECONDS
    model = NodeModel(NodeParams.from_profile(profile).scaled(scale))
    began = time.monotonic()
    for c in switch(model, nbytes, tier):
        c.wait()
    return (time.monotonic() - began) * scale


def switching(bench, nbytes: float) -> None:
    table = bench.table("Model switching: one 7B bf16 expert from the capacity tier into HBM (node model)",
                        [Column("node", "node"), Column("path", "path"), Column("ms", "switch", "{:.1f} ms"),
                         Column("ratio", "SN40L faster", "{:.1f}x"), Column("paper", "paper", "{}x")])
    took = {k: switch_seconds(hardware.load(k), nbytes) for k in KINDS}
    for k in KINDS:
        p = hardware.load(k)
        path = ("each socket's DDR -> HBM" if p.capacity_tier[0] == "local"
                else f"host memory -> PCIe ({p.accelerators // p.accelerators_per_root_complex} uplinks) -> HBM")
        table.add(node=k, path=path, ms=took[k] * 1e3, ratio=took[k] / took["sn40l-node"],
                  paper=PAPER.get(k, {}).get("switch"))
    table.note("The ratios carry the sn40l-node profile's DDR bandwidth (200 GB/s a socket), an assumption: "
               "the paper's own figure could not be read here. Both DGX ratios fall short of the paper's by the "
               f"same factor ({PAPER['dgx-h100']['switch'] / (took['dgx-h100'] / took['sn40l-node']):.1f} and "
               f"{PAPER['dgx-a100']['switch'] / (took['dgx-a100'] / took['sn40l-node']):.1f}): the PCIe 4 to 5 "
               "step is reproduced, the absolute gap is SN40L's DDR -> HBM rate or the DGX's effective PCIe rate.")


def footprint(bench, nbytes: float) -> None:
    table = bench.table("Machine footprint: nodes that keep the experts resident (SN40L in DDR, a DGX in HBM)",
                        [Column("experts", "7B experts"), *(Column(k, k) for k in KINDS),
                         Column("h100", "DGX H100 / SN40L", "{:.1f}x"), Column("a100", "DGX A100 / SN40L", "{:.1f}x")])
    sn40l = hardware.load("sn40l-node")
    most = int(sn40l.capacity_tier[1] // nbytes)
    for experts in (150, most):
        n = {k: coe.machines_to_hold(hardware.load(k), experts, nbytes,
                                     "local" if k == "sn40l-node" else coe.HBM) for k in KINDS}
        table.add(experts=experts, **n, h100=n["dgx-h100"] / n["sn40l-node"], a100=n["dgx-a100"] / n["sn40l-node"])
    h100 = hardware.load("dgx-h100")
    table.note(f"By bytes, one SN40L node's DDR ({sn40l.capacity_tier[1] / 1e12:g} TB) is "
               f"{sn40l.capacity_tier[1] / h100.hbm_total:.2f} DGX H100s' HBM ({h100.hbm_total / 1e9:g} GB each): the "
               f"paper's 'up to {PAPER['dgx-h100']['footprint']}x' is this case, the most experts one SN40L node "
               "holds. For 150 experts the gap is the smaller first row.")


def serving(bench, requests: int, seed: int) -> None:
    from emu.experiments.runner import run_scenario
    from emu.experiments.scenario import load_scenario
    import tempfile
    base = yaml.safe_load(SCENARIO.read_text())
    step = base["workloads"][0]
    table = bench.table(f"Serving: {requests} requests at once, {step['experts']} experts of "
                        f"{step['expert_params']}, Zipf {step['skew']}, {step['tokens']} tokens each (lab)",
                        [Column("node", "node"), Column("rate", "requests/s", "{:.1f}"),
                         Column("p50", "p50", "{:.0f} ms"), Column("hits", "HBM hits", "{:.0%}"),
                         Column("switch", "switch p50", "{:.1f} ms"), Column("storage", "from storage", "{:.0f} GB"),
                         Column("speedup", "SN40L speedup", "{:.2f}x"), Column("paper", "paper", "{}x")])
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "burst.csv"
        drawn = coe.zipf_trace(step["experts"], 1e6, requests / 1e6, step["skew"], step["tokens"], seed)
        coe.trace_file(trace, [coe.Request(i * 1e-6, r.expert, r.tokens) for i, r in enumerate(drawn[:requests])])
        rate = {}
        for k in KINDS:
            doc = copy.deepcopy(base)
            doc["name"] = doc["topology"]["name"] = f"coeclaims-{KINDS.index(k)}"
            doc["topology"]["nodes"]["c0"]["hardware"] = k
            doc["workloads"][0].update(requests=str(trace), duration="1s")
            summary, _ = run_scenario(load_scenario(doc, source=str(SCENARIO)), str(Path(tmp) / k))
            (w,) = summary["workloads"]
            if w["outcome"] != "ok":
                raise SystemExit(f"{k}: {w.get('error')}")
            rate[k] = w["requests_per_s"]
            table.add(node=k, rate=rate[k], p50=w["p50_ms"], hits=w["hbm_hit_rate"], switch=w["switch_p50_ms"],
                      storage=w["storage_bytes"] / 1e9, speedup=rate["sn40l-node"] / rate[k],
                      paper=PAPER.get(k, {}).get("speedup"))
    table.note("Every node starts with an empty HBM (a request's first expert always misses) and serves one request "
               "at a time; requests/s is the burst's requests over the time from the first sent to the last answered. "
               "Decoding is modelled memory-bound on both kinds (each token reads the expert from HBM at the "
               "profile's bandwidth): the paper's SN40L also gains from fused dataflow kernels (2x to 13x over an "
               "unfused baseline, its abstract), which this model does not have. What SN40L wins here is the "
               "switches alone; a DGX decodes faster (more HBM bandwidth).")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=48, help="serving: the burst's requests")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-lab", action="store_true", help="switching and footprint only (no root)")
    add_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    nbytes = coe.expert_bytes("7B", "bf16")
    switching(bench, nbytes)
    footprint(bench, nbytes)
    if not args.no_lab:
        serving(bench, args.requests, args.seed)
    bench.close()


if __name__ == "__main__":
    main()
