#!/usr/bin/env python3
"""Paper check for 3FS-style storage traffic: the incast curve with and without request-to-send,
and the aggregate read throughput as a share of the storage NICs (the paper: 8 of 9 TB/s).

Incast: one client and 32 storage services on one switch with shallow buffers
(32 KiB per VL queue on switch ports), 64 KiB chunks, TCP as the kernel defaults
(bbr). Aggregate: a two-zone lab, every compute node reading a file striped over
every storage node. Run as root:  python scripts/bench_storage.py
"""
import argparse

from emu.experiments.storage import incast, storage_bench
from emu.lab import Lab
from emu.report.plots import incast_plot
from emu.terminate import clean_up_on_sigterm
from emu.topo import build
from emu.units import format_rate


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.001)
    ap.add_argument("--buffer", default="32KiB")
    ap.add_argument("--senders", default="1,2,4,8,16,32")
    ap.add_argument("--rts-limit", type=int, default=4)
    ap.add_argument("--plot", default="incast.png", help="PNG of the incast curves")
    args = ap.parse_args()
    senders = [int(x) for x in args.senders.split(",")]
    print(f"# incast: 1 client, {max(senders)} storage services, switch buffer {args.buffer}/VL, "
          f"scale {args.scale:g}, 64 KiB chunks, rts limit {args.rts_limit}")
    print(f"{'senders':>7} | {'share off':>9} {'p99 off':>9} {'drops off':>9} | {'share on':>8} {'p99 on':>8} "
          f"{'drops on':>8}")
    topo = build("star", "incast", hosts=1, storage=max(senders), scale=args.scale, buffer=args.buffer)
    with Lab.up(topo) as lab:
        off = incast(lab, "c0", senders, rts=False)
        on = incast(lab, "c0", senders, rts=True, rts_limit=args.rts_limit)
    for a, b in zip(off, on):
        print(f"{a['senders']:>7} | {a['share']:>9.0%} {a['p99_ms']:>7.0f}ms {a['drops']:>9} | "
              f"{b['share']:>8.0%} {b['p99_ms']:>6.0f}ms {b['drops']:>8}", flush=True)
    incast_plot({"request-to-send off": off, f"request-to-send on (limit {args.rts_limit})": on}, args.plot,
                f"incast into one client, switch buffer {args.buffer}/VL, scale {args.scale:g}")
    print(f"wrote {args.plot}")

    topo = build("two-zone", "agg", leaves=2, spines=2, hosts_per_leaf=4, storage=4, interzone_links=1,
                 scale=args.scale)
    print(f"\n# aggregate reads: {topo.summary()}")
    with Lab.up(topo) as lab:
        for rts, limit in ((False, 64), (True, 64), (True, args.rts_limit)):
            r = storage_bench(lab, seconds=5, rts=rts, rts_limit=limit)
            label = f"rts {'on, limit ' + str(limit) if rts else 'off'}"
            print(f"{label:<18} {format_rate(r['aggregate_bps'])} of {format_rate(r['storage_capacity_bps'])} "
                  f"storage NIC capacity = {r['share']:.0%} (real scale {format_rate(r['proj_aggregate_bps'])}); "
                  f"paper 8/9 = 89%", flush=True)


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
