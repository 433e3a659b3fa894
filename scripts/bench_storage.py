#!/usr/bin/env python3
"""Paper check for 3FS-style storage traffic (section VI-B): the incast curve with and without
request-to-send, and the aggregate read throughput as a share of the storage NICs (the paper:
8 of 9 TB/s, 89%), with what holds the lab back.

Incast: one client and 32 storage services on one switch with shallow buffers (32 KiB per VL
queue on switch ports), 64 KiB chunks, TCP as the kernel defaults (bbr).

Aggregate: a two-zone lab, 16 compute clients reading a file striped over 4 dual-homed storage
nodes: in batches of the whole file, then with 32 reads always outstanding (all clients from one
signal, counted in one common window), each at dilation 1 and 4 (the lab's links 4x slower, so
the agents' own Python cost weighs a quarter). The CPU columns are this machine's cores over
the reads: busy 100% means the lab measured its CPU, not its fabric.

Paper-shaped: the paper's ratio of client to storage NIC capacity (1,250 nodes of one 200 Gbit/s
NIC against 180 of two: 3.5 to 1) as 14 clients against 2 dual-homed storage nodes of 16 SSDs,
request-to-send off, at 3FS's default limit (64) and at the limit scaled to this lab (the
client's last-hop buffer over a chunk: 128 KiB / 64 KiB = 2 transmissions at once).

Depth: the two-zone lab at the paper-shaped run's dilation with 16 to 128 reads outstanding a
client, what a read's round trips (request, SSD, grant) cost when too few are in flight.

Run as root:  python scripts/bench_storage.py [--parts incast,aggregate,paper,checkpoint,reply-class]
                  [--markdown docs/results/storage.md]
              python scripts/bench_storage.py --parts depth --markdown docs/results/storage-depth.md
"""
import argparse

from emu.experiments.storage import checkpoint, incast, storage_bench
from emu.lab import Lab
from emu.report.bench import Bench, Column, add_options
from emu.report.plots import incast_plot
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
from emu.units import format_rate

CHUNK = 64 * 1024
RTS = ((False, 64), (True, 64))
AGGREGATE = [Column("reader", "reader"), Column("dilation", "dilation", "{:g}"), Column("rts", "request-to-send"),
             Column("nic_share", "read share of storage NICs", "{:.0%}"),
             Column("wire_share", "storage NICs busy (wire)", "{:.0%}"), Column("proj", "real scale"),
             Column("cpu_busy", "CPU busy", "{:.0%}"), Column("cpu_user", "of it agents", "{:.0%}"),
             Column("cpu_kernel", "of it kernel", "{:.0%}"), Column("drops", "switch drops"),
             Column("retransmits", "TCP retransmits"), Column("p99_ms", "p99 read (emulated ms)", "{:.0f}")]


def aggregate_row(r: dict, reader: str, rts: bool, limit: int) -> dict:
    p99 = max(c["p99_ms"] for c in r["per_client"].values()) / r["dilation"]
    return {**{k: r[k] for k in ("dilation", "nic_share", "wire_share", "cpu_busy", "cpu_user", "cpu_kernel",
                                 "drops", "retransmits")},
            "reader": reader, "rts": f"on, limit {limit}" if rts else "off",
            "proj": format_rate(r["proj_aggregate_bps"]),
            "p99_ms": p99}


def incast_part(bench: Bench, args) -> None:
    senders = [int(x) for x in args.senders.split(",")]
    table = bench.table(f"Incast: 1 client, up to {max(senders)} storage services, switch buffer {args.buffer}/VL, "
                        f"scale {args.scale:g}, 64 KiB chunks",
                        [Column("senders", "senders"), Column("off_share", "share, RTS off", "{:.0%}"),
                         Column("off_p99", "p99 off", "{:.0f} ms"), Column("off_drops", "drops off"),
                         Column("on_share", f"share, RTS limit {args.rts_limit}", "{:.0%}"),
                         Column("on_p99", "p99 on", "{:.0f} ms"), Column("on_drops", "drops on")])
    topo = build("star", "incast", hosts=1, storage=max(senders), scale=args.scale, buffer=args.buffer)
    with Lab.up(topo) as lab:
        off = incast(lab, "c0", senders, rts=False)
        on = incast(lab, "c0", senders, rts=True, rts_limit=args.rts_limit)
    for a, b in zip(off, on):
        table.add(senders=a["senders"], off_share=a["share"], off_p99=a["p99_ms"], off_drops=a["drops"],
                  on_share=b["share"], on_p99=b["p99_ms"], on_drops=b["drops"])
    incast_plot({"request-to-send off": off, f"request-to-send on (limit {args.rts_limit})": on}, args.plot,
                f"incast into one client, switch buffer {args.buffer}/VL, scale {args.scale:g}")
    table.note(f"The curves: {args.plot}.")


def aggregate_part(bench: Bench, args) -> None:
    topo = build("two-zone", "agg", leaves=2, spines=2, hosts_per_leaf=4, storage=4, interzone_links=1,
                 scale=args.scale)
    table = bench.table(f"Aggregate reads: {topo.summary()}", AGGREGATE)
    with Lab.up(topo) as lab:
        for reader, depth, dilation in (("batches", 0, 1), ("32 outstanding", 32, 1), ("32 outstanding", 32, 4)):
            for rts, limit in RTS + ((True, 4),):
                r = storage_bench(lab, seconds=args.seconds, rts=rts, rts_limit=limit, depth=depth, dilation=dilation)
                table.add(**aggregate_row(r, reader, rts, limit))
    table.note("The paper: 8 of 9 TB/s (89%) from 180 storage nodes. Read share: what the clients read in the "
               "common window, each from its first completion in it to its last; wire: what the storage NICs sent "
               "in that window, headers and retransmissions too (TCP's headers leave at most 95.6% of a link to "
               "the reads' bytes).")


def paper_part(bench: Bench, args) -> None:
    topo = build("two-zone", "paper", leaves=1, spines=1, hosts_per_leaf=7, storage=2, scale=args.scale)
    client = next(n.name for n in topo.hosts() if n.kind == "compute")
    scaled = max(1, topo.link(client, next(iter(topo.graph[client]))).buffer_bytes // CHUNK)     # its last hop's
    table = bench.table(f"Paper-shaped reads (client to storage NICs 3.5 to 1, 16 SSDs a storage node, "
                        f"dilation {args.dilation:g}): {topo.summary()}", AGGREGATE)
    with Lab.up(topo) as lab:
        for rts, limit in RTS + ((True, scaled),):
            r = storage_bench(lab, seconds=args.seconds, rts=rts, rts_limit=limit, dilation=args.dilation)
            table.add(**aggregate_row(r, "32 outstanding", rts, limit))


def depth_part(bench: Bench, args) -> None:
    topo = build("two-zone", "depth", leaves=2, spines=2, hosts_per_leaf=4, storage=4, interzone_links=1,
                 scale=args.scale)
    table = bench.table(f"Reads outstanding a client, dilation {args.dilation:g}, request-to-send limit 4: "
                        f"{topo.summary()}", [Column("depth", "reads outstanding"), *AGGREGATE[3:]])
    with Lab.up(topo) as lab:
        for depth in (16, 32, 64, 128):
            # a deep client's reads live long: its window must hold three of their lives
            r = storage_bench(lab, seconds=2 * args.seconds, rts=True, rts_limit=4, depth=depth,
                              dilation=args.dilation)
            table.add(depth=depth, **aggregate_row(r, "-", True, 4))


def checkpoint_part(bench: Bench, args) -> None:
    topo = build("two-zone", "ckpt", leaves=1, spines=1, hosts_per_leaf=7, storage=2, scale=args.scale)
    state = round(2**30 * args.scale)       # a GPU's state in the lab: 1 GiB of the real system's
    table = bench.table("Checkpoints (section VII-A): one node's 8 GPUs of 1 GiB of "
                        f"state each, saved twice and loaded, on the paper-shaped lab at dilation {args.dilation:g}",
                        [Column("step", "step"), Column("rate", "real rate", "{:.1f} GiB/s"),
                         Column("nic", "of the node's NIC", "{:.0%}"), Column("seconds", "real seconds", "{:.2f}"),
                         Column("verified", "every tensor verified")])
    with Lab.up(topo) as lab:
        node = next(n.name for n in lab.nodes("compute"))
        nic = lab.plan.nic_bps(node) / args.scale
        r = checkpoint(lab, node, state, saves=2, period=0, dilation=args.dilation)
    for step, row in [(f"save {i + 1}", s) for i, s in enumerate(r["saves"])] + [("load", r["load"])]:
        table.add(step=step, rate=row["proj_bps"] / 8 / 2**30, nic=row["proj_bps"] / nic, seconds=row["proj_seconds"],
                  verified=r["load"]["verified"] if step == "load" else "-")
    table.note("The paper: batch writes over 10 GiB/s a node (a 200 Gbit/s NIC carries 23.3 GiB/s), saves and "
               "loads in a few seconds.")


def reply_class_part(bench: Bench, args) -> None:
    topo = build("two-zone", "reply", leaves=2, spines=2, hosts_per_leaf=4, storage=4, interzone_links=1,
                 scale=args.scale)
    table = bench.table("The replies' class: storage's (VL3, as 3FS's replies ride with their requests) or other's "
                        f"(VL0, as before the marking fix), requests and ACKs in VL3: {topo.summary()}",
                        [Column("replies", "replies in"), *AGGREGATE])
    with Lab.up(topo) as lab:
        for reader, depth, dilation in (("batches", 0, 1), ("32 outstanding", 32, 4)):
            for rts, limit in ((False, 64), (True, 4)):
                for replies in ("storage", "other"):
                    r = storage_bench(lab, seconds=args.seconds, rts=rts, rts_limit=limit, depth=depth,
                                      dilation=dilation, reply_class=replies)
                    table.add(replies=replies, **aggregate_row(r, reader, rts, limit))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="incast,aggregate,paper,checkpoint,reply-class",
                    help="which measurements, comma-separated")
    ap.add_argument("--scale", type=float, default=0.001)
    ap.add_argument("--buffer", default="32KiB", help="incast: each switch VL queue's buffer")
    ap.add_argument("--senders", default="1,2,4,8,16,32")
    ap.add_argument("--rts-limit", type=int, default=4, help="incast: transmissions the client grants at once")
    ap.add_argument("--seconds", type=float, default=8.0, help="aggregate: each run's reads")
    ap.add_argument("--dilation", type=float, default=4.0, help="paper-shaped: the links this many times slower")
    ap.add_argument("--plot", default="incast.png", help="PNG of the incast curves")
    add_options(ap)
    args = ap.parse_args()
    bench = Bench(args)
    parts = {"incast": incast_part, "aggregate": aggregate_part, "paper": paper_part, "checkpoint": checkpoint_part,
             "reply-class": reply_class_part, "depth": depth_part}
    for part in args.parts.split(","):
        if part not in parts:
            raise SystemExit(f"--parts: unknown part {part!r} (one of {', '.join(parts)})")
        parts[part](bench, args)
    bench.close()


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
