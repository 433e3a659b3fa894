#!/usr/bin/env python3
"""Paper checks with the flow model (Fire-Flyer 2, sections III and VII; no root, no lab).

On topologies/fire-flyer-2.yaml (the whole network: 1,200 compute nodes, 180 dual-homed storage
nodes, 120 switches) at its scale, projected to the real system:
- Table III's switch counts from the builders (two-zone, a three-layer fat-tree of 1,600 ports);
- 3FS's aggregate read bound (180 storage nodes x 2 NICs x 200 Gbit/s) and what the model gives
  with every compute node reading from every storage node at once (the paper measured 8 TB/s);
- HFReduce's node bounds (IV-D3): host memory (320 GB/s over 24 bytes per byte of data) and
  the root complexes both ways, from the node footprint the solver uses;
- allreduce at 9,600 GPUs (1,200 nodes of 8): a ring ordered zone by zone, and a double binary
  tree over the same order (HFReduce's and NCCL's tree), which crosses the two inter-zone links
  with many of its edges, and the tree within one zone; each with the nodes' hardware in the
  solver, beside the network alone and the node alone, and the model's wall time.
Run:  python scripts/model_paper.py
"""
import time
from pathlib import Path

from cluster.footprint import footprint, limits, node_bound
from cluster.node import HOSTMEM, NodeParams, root_complex
from emu.model.paths import Fabric
from emu.model.simulate import simulate
from emu.model.workloads import INF, Workload, collective
from emu.plan import make_plan
from emu.topo import build
from emu.topo.loader import load_topology

ROOT = Path(__file__).resolve().parents[1]
SIZE = 186 * 2**20          # the paper's allreduce buffer per GPU


def main():
    began = time.perf_counter()
    topo = load_topology(ROOT / "topologies" / "fire-flyer-2.yaml")
    fabric = Fabric(topo, make_plan(topo))
    print(f"# fire-flyer-2.yaml: {len(topo.hosts())} hosts, {len(topo.switches())} switches; plan and "
          f"fabric {time.perf_counter() - began:.1f} s; figures projected from scale {topo.scale:g}")
    three = build("three-layer", "t3", pods=4, leaves_per_pod=20, spines_per_pod=20, cores=40, hosts_per_leaf=20)
    print(f"Table III switches: two-zone {len(topo.switches())} (paper 122), three-layer 1,600 ports "
          f"{len(three.switches())} (paper 200)")
    compute = [n.name for n in topo.hosts() if n.kind == "compute"]
    storage = [n.name for n in topo.hosts() if n.kind == "storage"]

    bound = sum(p.real_rate_bps for s in storage for p in fabric.plan.node(s).ports) / 8 / 1e12
    reads = [(s, c, INF) for c in compute for s in storage]
    out, wall = timed(fabric, [Workload("reads", "storage-read", "storage", 0.0, [reads], 1.0)])
    got = sum(f.bytes for f in out.flows) / topo.scale / 1e12
    print(f"3FS reads: bound {bound:.2f} TB/s, model {got:.2f} TB/s ({len(reads):,} flows, {wall:.1f} s wall); "
          f"paper 8 TB/s")

    node = NodeParams()
    for algo in ("hfreduce", "hfreduce-nvlink"):
        fp = footprint(algo, node, 5, 2)        # a node inside both trees
        rc = max((root_complex(r) for r in range(node.gpus // node.gpus_per_root_complex)), key=fp.uses.get)
        print(f"{algo} node bounds: host memory {fp.uses[HOSTMEM]:g} bytes per byte -> "
              f"{limits(node)[HOSTMEM] / fp.uses[HOSTMEM] / 1e9:.1f} GB/s; root complex {fp.uses[rc]:g} both "
              f"ways -> {limits(node)[rc] / fp.uses[rc] / 1e9:.1f} GB/s")

    zone_a = [c for c in compute if c.startswith("za-")]
    for algo, nodes in (("ring", compute), ("hfreduce", compute), ("hfreduce", zone_a)):
        with_nodes = collective("ar", algo, nodes, SIZE, node)
        out, wall = timed(fabric, [with_nodes])
        network, _ = timed(fabric, [Workload("ar", "allreduce", with_nodes.traffic_class, 0.0, with_nodes.rounds)])
        alone, where = min(node_bound(footprint(algo, node, len(nodes), r), node) for r in range(len(nodes)))
        algbw = lambda o: SIZE / (o.end * topo.scale) / 1e9         # the model ran at the lab's rates
        print(f"allreduce {algo:<9} {8 * len(nodes):>5,} GPUs: algbw {algbw(out):.2f} GB/s (network alone "
              f"{algbw(network):.2f}, node alone {alone / 1e9:.2f}: {where}), {len(with_nodes.rounds[0]):,} flows, "
              f"{wall:.1f} s wall")


def timed(fabric, workloads):
    began = time.perf_counter()
    out = simulate(fabric, workloads, ideal=False)
    return out, time.perf_counter() - began


if __name__ == "__main__":
    main()
