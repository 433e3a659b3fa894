#!/usr/bin/env python3
"""What a link that crosses machines costs when it is a VXLAN tunnel (issue 32's design, measured
before it is built): one TCP flow (iperf3, 3 s) between two node namespaces joined by a veth
pair, as every link of a lab is today, against the same two nodes joined by a VXLAN tunnel
whose ends live on two emulated machines (a namespace each, their underlay a veth pair).

Each tunnel end is created in its machine's namespace, over the underlay, then moved into the
node's namespace: the device keeps its UDP socket where it was made. The underlay's MTU is 1550,
so the node sees 1500 through the tunnel's 50 bytes of headers. Unshaped, and shaped to a lab
link's rate with the lab's HTB root (what the emulated port would carry).

Run as root:  python scripts/bench_vxlan.py [--runs 3] [--markdown docs/results/vxlan.md]
"""
import argparse
import json
import os
import statistics
import subprocess

from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm

PREFIX = f"emuvx{os.getpid()}-"          # this run's namespaces, and only these, are removed at the end


def sh(*lines: str) -> None:
    for line in lines:
        subprocess.run(line.split(), check=True, capture_output=True, text=True)


def ns(name: str) -> str:
    return PREFIX + name


def build() -> None:
    for n in ("m0", "m1", "a", "b", "c", "d"):
        sh(f"ip netns add {ns(n)}")
    # the underlay: two machines, one veth between them
    sh(f"ip link add ul0 netns {ns('m0')} mtu 1550 type veth peer ul1 netns {ns('m1')} mtu 1550",
       f"ip -n {ns('m0')} addr add 10.255.0.1/30 dev ul0", f"ip -n {ns('m1')} addr add 10.255.0.2/30 dev ul1",
       f"ip -n {ns('m0')} link set ul0 up", f"ip -n {ns('m1')} link set ul1 up")
    # the tunnel: each end made on its machine, then moved into its node
    for machine, node, local, remote, addr in (("m0", "a", "10.255.0.1", "10.255.0.2", "198.19.0.0/31"),
                                               ("m1", "b", "10.255.0.2", "10.255.0.1", "198.19.0.1/31")):
        sh(f"ip -n {ns(machine)} link add vx0 type vxlan id 42 local {local} remote {remote} dstport 4789 "
           f"dev ul{machine[1]}",
           f"ip -n {ns(machine)} link set vx0 netns {ns(node)}",
           f"ip -n {ns(node)} addr add {addr} dev vx0", f"ip -n {ns(node)} link set vx0 up",
           f"ip -n {ns(node)} link set lo up")
    # today's link: a veth pair between two nodes on one machine
    sh(f"ip link add p0 netns {ns('c')} type veth peer p1 netns {ns('d')}",
       f"ip -n {ns('c')} addr add 198.19.1.0/31 dev p0", f"ip -n {ns('d')} addr add 198.19.1.1/31 dev p1",
       f"ip -n {ns('c')} link set p0 up", f"ip -n {ns('d')} link set p1 up",
       f"ip -n {ns('c')} link set lo up", f"ip -n {ns('d')} link set lo up")


def shape(node: str, dev: str, rate: str | None) -> None:
    subprocess.run(["ip", "netns", "exec", ns(node), "tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
    if rate:
        sh(f"ip netns exec {ns(node)} tc qdisc add dev {dev} root handle 1: htb default 1",
           f"ip netns exec {ns(node)} tc class add dev {dev} parent 1: classid 1:1 htb rate {rate} ceil {rate}")


def flow(client: str, server: str, addr: str, seconds: float) -> tuple[float, int]:
    """bits/s and retransmits of one iperf3 TCP flow client -> server."""
    srv = subprocess.Popen(["ip", "netns", "exec", ns(server), "iperf3", "-s", "-1", "-p", "5399"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):         # until it listens
            out = subprocess.run(["ip", "netns", "exec", ns(client), "iperf3", "-c", addr, "-p", "5399", "-t",
                                  str(seconds), "-J"], capture_output=True, text=True)
            report = json.loads(out.stdout or "{}")
            if "error" not in report and "end" in report:
                end = report["end"]
                return end["sum_received"]["bits_per_second"], end["sum_sent"].get("retransmits", 0)
        raise SystemExit(f"iperf3 {client} -> {server}: {report.get('error')}")
    finally:
        srv.kill()
        srv.wait()


def destroy() -> None:
    for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    add_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    table = bench.table(f"One TCP flow, {args.seconds:g} s, median of {args.runs}: veth (one machine) against VXLAN "
                        "(two emulated machines)", [
                            Column("shaped", "shaped to"), Column("veth", "veth", "{:.2f} Gbit/s"),
                            Column("vxlan", "VXLAN", "{:.2f} Gbit/s"), Column("ratio", "VXLAN / veth", "{:.0%}"),
                            Column("spread", "run by run"), Column("retrans", "VXLAN retransmits")])
    try:
        build()
        for rate in (None, "2gbit", "200mbit"):
            shape("a", "vx0", rate)
            shape("c", "p0", rate)
            veth, vx = [], []
            for _ in range(args.runs):          # the two paths in turn, so a slow moment hits both
                veth.append(flow("c", "d", "198.19.1.1", args.seconds)[0])
                vx.append(flow("a", "b", "198.19.0.1", args.seconds))
            v, x = statistics.median(veth), statistics.median(b for b, _ in vx)
            ratios = [b / a for a, (b, _) in zip(veth, vx)]
            table.add(shaped=rate or "unshaped", veth=v / 1e9, vxlan=x / 1e9, ratio=x / v,
                      spread=f"{min(ratios):.0%}-{max(ratios):.0%}", retrans=int(statistics.median(r for _, r in vx)))
        table.note("Unshaped, the figure is what this machine's 2 cores carry through each path, and one flow's rate "
                   "there moves from run to run (the spread: each run's tunnel over the veth measured just before it); "
                   "the retransmits are the tunnel's. Shaped to a lab link's rate, both paths carry the rate: the "
                   "tunnel is not where a lab's queues would build.")
    finally:
        destroy()
    bench.close()


if __name__ == "__main__":
    main()
