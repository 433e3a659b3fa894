#!/usr/bin/env python3
"""The price of the OpenFlow backend against the kernel's, on the same labs: bring-up, one TCP
flow's rate and the machine's CPU per Gbit/s carried, and the largest leaf-spine at scale 0.001
whose cross-leaf flows still carry within 10% of what the kernel backend carries (and at scale 0.0001). The two
backends are measured in turn, so a slow moment of the machine hits both.

Run as root:  python scripts/bench_openflow.py [--runs 3] [--markdown docs/results/openflow.md]
"""
import os
import statistics
import time
import uuid
from pathlib import Path

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.labfiles import STATE_DIR
from emu.metrics.mesh import tcp_mesh
from emu.report.bench import Bench, Column, add_flow_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build

BACKENDS = ("kernel", "openflow")
TICK = os.sysconf("SC_CLK_TCK")
# (leaves, hosts per leaf), two spines, growing until OpenFlow falls more than 10% behind
SIZES = [(2, 1), (2, 2), (4, 2), (4, 4), (4, 8)]
SCALES = (0.001, 0.0001)        # the scale, and the one at which OpenFlow labs keep up


def busy_seconds() -> float:
    """CPU-seconds every core of the machine has been busy (not idle, not waiting on I/O)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


def vswitchd_seconds(lab: str) -> float:
    """CPU-seconds the lab's ovs-vswitchd processes have used (0 on the kernel backend)."""
    total = 0.0
    for pidfile in (STATE_DIR / f"{lab}.openflow" / "ovs").glob("*/ovs-vswitchd.pid"):
        fields = Path(f"/proc/{pidfile.read_text().strip()}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def bring_up(backend: str) -> float:
    topo = build("leaf-spine", f"ob{uuid.uuid4().hex[:6]}", leaves=4, spines=2, hosts_per_leaf=4)
    start = time.perf_counter()
    with Lab.up(topo, backend=backend):
        return time.perf_counter() - start


def one_flow(backend: str, seconds: float) -> dict:
    """One unshaped flow c0 -> c1 over a spine: its rate, and the CPU the machine and OVS spent."""
    topo = build("leaf-spine", f"of{uuid.uuid4().hex[:6]}", leaves=2, spines=1, hosts_per_leaf=1, rate="100Gbit")
    with Lab.up(topo, backend=backend) as lab:
        tcp_mesh(lab.hosts())
        cpu, ovs = busy_seconds(), vswitchd_seconds(lab.name)
        (result,) = run_flows(lab, [Flow("c0", "c1")], seconds)
        gbits = result["bps"] * seconds / 1e9
        return {"gbps": result["bps"] / 1e9, "cpu_per_gbit": (busy_seconds() - cpu) / gbits,
                "ovs_per_gbit": (vswitchd_seconds(lab.name) - ovs) / gbits}


def cross_leaf(backend: str, leaves: int, hosts: int, scale: float, seconds: float) -> float:
    """Every host sends to its counterpart on the next leaf (through a spine): their sum, bits/s."""
    topo = build("leaf-spine", f"ox{uuid.uuid4().hex[:6]}", leaves=leaves, spines=2, hosts_per_leaf=hosts,
                 scale=scale)
    with Lab.up(topo, backend=backend) as lab:
        names = [h.name for h in lab.hosts()]
        flows = [Flow(names[i], names[(i + hosts) % len(names)]) for i in range(len(names))]
        return sum(r["bps"] for r in run_flows(lab, flows, seconds))


def main() -> None:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_flow_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    price = bench.table(f"The same labs on both backends, median of {args.runs}", [
        Column("what", "measure"), Column("kernel", "kernel"), Column("openflow", "openflow"),
        Column("ratio", "openflow / kernel", "{:.2f}")])
    ups = {b: [] for b in BACKENDS}
    flows = {b: [] for b in BACKENDS}
    for _ in range(args.runs):
        for b in BACKENDS:
            ups[b].append(bring_up(b))
            flows[b].append(one_flow(b, args.seconds))
    up = {b: statistics.median(ups[b]) for b in BACKENDS}
    price.add(what="bring-up, leaf-spine of 4 leaves, 2 spines, 16 hosts (s)", kernel=f"{up['kernel']:.2f}",
              openflow=f"{up['openflow']:.2f}", ratio=up["openflow"] / up["kernel"])
    for key, what, fmt in (("gbps", "one TCP flow over a spine, unshaped (Gbit/s)", "{:.2f}"),
                           ("cpu_per_gbit", "machine CPU per Gbit carried (core-seconds)", "{:.2f}")):
        got = {b: statistics.median(f[key] for f in flows[b]) for b in BACKENDS}
        price.add(what=what, kernel=fmt.format(got["kernel"]), openflow=fmt.format(got["openflow"]),
                  ratio=got["openflow"] / got["kernel"])
    ovs = statistics.median(f["ovs_per_gbit"] for f in flows["openflow"])
    price.add(what="of which the switches' ovs-vswitchd (core-seconds per Gbit)", kernel="-", openflow=f"{ovs:.2f}",
              ratio=None)
    price.note("Bring-up: `Lab.up` until the lab forwards (on openflow: every bridge has its table from the "
               "controller). CPU: every core's busy time while the flow ran, over the gigabits it carried (sender "
               "and receiver included, the same on both); on the kernel backend the forwarding is the routers' "
               "softirq work in it, on openflow mostly the bridges' ovs-vswitchd (the line below).")
    for scale in SCALES:
        link = f"{200e9 * scale / 1e6:g} Mbit/s"
        table = bench.table(f"Cross-leaf flows at scale {scale:g} ({link} links), {args.seconds:g} s, best of "
                            f"{args.runs}: how large a leaf-spine stays within 10% of the kernel backend", [
                                Column("size", "leaves x hosts"), Column("flows", "flows"),
                                Column("kernel", "kernel", "{:.2f} Gbit/s"),
                                Column("openflow", "openflow", "{:.2f} Gbit/s"),
                                Column("ratio", "openflow / kernel", "{:.0%}"), Column("within", "within 10%")])
        largest = None
        for leaves, hosts in SIZES:
            got = {b: max(cross_leaf(b, leaves, hosts, scale, args.seconds) for _ in range(args.runs))
                   for b in BACKENDS}
            ratio = got["openflow"] / got["kernel"]
            table.add(size=f"{leaves} x {hosts}", flows=leaves * hosts, kernel=got["kernel"] / 1e9,
                      openflow=got["openflow"] / 1e9, ratio=ratio, within="yes" if ratio >= 0.9 else "no")
            if ratio < 0.9:
                break
            largest = (leaves, hosts)
        table.note(f"Largest within 10%: {f'{largest[0]} leaves x {largest[1]} hosts' if largest else 'none'} (2 "
                   f"spines). Each host sends one flow to its counterpart on the next leaf, so every flow crosses a "
                   f"spine; the ideal is flows x {link}. The sizes grow until the OpenFlow lab falls behind.")
    bench.close()


if __name__ == "__main__":
    main()
