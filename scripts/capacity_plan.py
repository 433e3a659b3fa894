#!/usr/bin/env python3
"""How many machines hold a lab at packet level (issue 32, part 5): what one machine carries,
measured here, against what a topology asks of it at each scale factor.

One machine's budget, measured:
- forwarding: 4 TCP flows at once, unshaped, across a leaf-spine (2 leaves of 4 hosts, 1 spine:
  each flow crosses 4 links), on one machine and over 2 emulated machines (the leaf-spine links of
  one leaf VXLAN tunnels). Budget = what the links carried per second, summed over the links
  (link-Gbit/s): every link a packet crosses costs a transmit, a queue and a receive, whoever sends.
- memory: MemAvailable before and after a 128-host leaf-spine is up, per namespace (its veths, HTB
  and VL queues, routes included); and the resident memory of one idle agent (a host's program).

What a topology asks: every host's NICs sending at their line rate times the scale factor, times
the mean number of links between two hosts (2,000 host pairs, shortest paths): the traffic of an
allreduce that keeps every NIC busy, the worst a training cluster asks. A lab at scale s runs its
links at s times their rate: time is dilated by 1/s (a step the paper times at 1 s takes 1/s s).

Machines = the larger of (asked link-Gbit/s / the budget over two machines) and (the namespaces'
memory and an agent on every host / 80% of a machine's memory). The links between machines are few (emu topo plan FILE
--machines N), so the budget over two machines, with its tunnel, is the conservative one.

Run as root:  python scripts/capacity_plan.py [--topology topologies/fire-flyer-2.yaml] [--markdown docs/results/capacity.md]
"""
import argparse
import math
import random
import statistics
import subprocess
import uuid

import networkx as nx

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.launch import command
from emu.metrics.mesh import tcp_mesh
from emu.report.bench import Bench, Column, add_flow_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build, load_topology

SCALES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
LINKS_A_FLOW = 4                # host - leaf - spine - leaf - host


def forwarding(machines: int, seconds: float) -> float:
    """link-bits/s: 4 unshaped flows leaf0 -> leaf1 at once, each bit counted on each link it crossed."""
    topo = build("leaf-spine", f"cp{uuid.uuid4().hex[:6]}", leaves=2, spines=1, hosts_per_leaf=4, rate="100Gbit")
    with Lab.up(topo, machines=machines) as lab:
        tcp_mesh(lab.hosts())
        flows = run_flows(lab, [Flow(f"c{i}", f"c{i + 4}") for i in range(4)], seconds)
    return sum(f["bps"] for f in flows) * LINKS_A_FLOW


def meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def memory() -> tuple[float, int]:
    """(bytes a namespace of a lab takes, the resident bytes of one idle traffic agent)."""
    topo = build("leaf-spine", f"cp{uuid.uuid4().hex[:6]}", leaves=16, spines=4, hosts_per_leaf=8)
    before = meminfo("MemAvailable")
    with Lab.up(topo) as lab:
        per_namespace = (before - meminfo("MemAvailable")) / len(lab.nodes())
        agent = lab.node("c0").popen(command("traffic") + ["server", "--port", "5399", "--conns", "1"],
                                     stdout=subprocess.PIPE, text=True)
        try:
            agent.stdout.readline()         # it is ready: imported and listening
            with open(f"/proc/{agent.pid}/status") as f:
                rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        finally:
            agent.kill()
            agent.wait()
    return per_namespace, rss


def asked(topo, pairs: int = 2000, seed: int = 1) -> tuple[float, float, int]:
    """(the hosts' NIC line rates summed, bits/s; the mean links between two hosts; namespaces)."""
    hosts = [n.name for n in topo.hosts()]
    nic_bps = sum(l.rate_bps for l in topo.links() if l.a in hosts or l.b in hosts)
    rng = random.Random(seed)
    lengths = [nx.shortest_path_length(topo.graph, *rng.sample(hosts, 2)) for _ in range(pairs)]
    return nic_bps, statistics.mean(lengths), len(topo.nodes())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topology", default="topologies/fire-flyer-2.yaml")
    add_flow_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    budget = bench.table(f"One machine's budget (median of {args.runs})", [
        Column("what", "what"), Column("value", "measured")])
    within, across = [], []
    for _ in range(args.runs):
        within.append(forwarding(1, args.seconds))
        across.append(forwarding(2, args.seconds))
    per_machine = statistics.median(across)
    budget.add(what="forwarding, one machine", value=f"{statistics.median(within) / 1e9:.1f} link-Gbit/s")
    budget.add(what="forwarding, over two machines (tunnels)", value=f"{per_machine / 1e9:.1f} link-Gbit/s")
    measured = [memory() for _ in range(args.runs)]
    per_ns, agent = (statistics.median(m[i] for m in measured) for i in (0, 1))
    total = meminfo("MemTotal")
    budget.add(what="memory per namespace", value=f"{per_ns / 1024:.0f} KiB")
    budget.add(what="memory per agent (a Python process, idle)", value=f"{agent / 2**20:.0f} MiB")
    budget.add(what="namespaces with an agent each, in 80% of memory", value=f"{int(0.8 * total / (per_ns + agent)):,}")
    topo = load_topology(args.topology)
    nic_bps, mean_links, namespaces = asked(topo)
    hosts = len(topo.hosts())
    plan = bench.table(f"Machines to hold {topo.name} ({namespaces:,} namespaces, {nic_bps / 1e12:.0f} Tbit/s of NICs, "
                       f"{mean_links:.2f} links between two hosts) at packet level, every NIC busy", [
                           Column("scale", "scale", "{:g}"), Column("dilation", "1 s of the cluster takes"),
                           Column("asked", "asked", "{:,.0f} link-Gbit/s"),
                           Column("by_traffic", "machines by traffic", "{:,}"),
                           Column("by_memory", "by memory (an agent a host)", "{:,}"), Column("machines", "machines", "{:,}")])
    by_memory = math.ceil((namespaces * per_ns + hosts * agent) / (0.8 * total))
    for scale in SCALES:
        need = nic_bps * scale * mean_links
        by_traffic = math.ceil(need / per_machine)
        plan.add(scale=scale, dilation=f"{1 / scale:,.0f} s", asked=need / 1e9, by_traffic=by_traffic,
                 by_memory=by_memory, machines=max(by_traffic, by_memory))
    plan.note(f"Measured on this machine (2 cores): a machine of more cores forwards more (the kernel forwards "
              f"on every core), so these are upper bounds for larger machines. Traffic is the allreduce's worst "
              f"case; a job that keeps a tenth of the NICs busy asks a tenth. The file's own scale is "
              f"{topo.scale:g}.")
    bench.close()


if __name__ == "__main__":
    main()
