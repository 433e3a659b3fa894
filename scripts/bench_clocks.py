#!/usr/bin/env python3
"""How well a lab over machines puts its machines' clocks on one: the lab daemon's sampler reads
each machine through its worker and measures that machine's clock against its own (Cristian's
method, emu.fabric.workers.measure_clock) when it starts and whenever a sampling window opens.
On emulated machines every clock is this kernel's, so the true offset is 0 and each measured
offset is the error itself: it must lie within its bound.

Run as root:  python scripts/bench_clocks.py [--windows 20] [--markdown docs/results/clocks.md]
"""
import argparse
import statistics
import uuid

from emu.lab import Lab
from emu.report.bench import Bench, Column, add_options
from emu.terminate import clean_up_on_sigterm
from emu.topo import build


def measure(workers: str, windows: int) -> list[dict]:
    """A clock measurement per machine and window: {"offset", "bound"} in seconds."""
    topo = build("two-zone", f"ck{uuid.uuid4().hex[:6]}", leaves=1, spines=1, hosts_per_leaf=2)
    found = []
    with Lab.up(topo, machines=2, workers=workers) as lab:
        for _ in range(windows):
            with lab.sampling(0.1):         # opening a window measures every machine's clock again
                machines = lab.status()["daemon"]["sampler"]["machines"]
            found += [{"offset": m["clock_offset_s"], "bound": m["clock_bound_s"]} for m in machines.values()]
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=20, help="sampling windows opened (a measurement each)")
    add_options(p)
    args = p.parse_args()
    clean_up_on_sigterm()
    bench = Bench(args)
    table = bench.table(f"Each machine's clock against the lab daemon's, two emulated machines, {args.windows} "
                        "measurements each", [
                            Column("workers", "workers"), Column("n", "measurements"),
                            Column("bound_median", "bound, median", "{:.1f} us"),
                            Column("bound_max", "bound, max", "{:.1f} us"),
                            Column("error_max", "largest offset (the error)", "{:.1f} us"),
                            Column("within", "offsets within their bound")])
    for workers in ("local", "ray"):
        found = measure(workers, args.windows)
        bounds = [m["bound"] * 1e6 for m in found]
        table.add(workers=workers, n=len(found), bound_median=statistics.median(bounds), bound_max=max(bounds),
                  error_max=max(abs(m["offset"]) * 1e6 for m in found),
                  within=f"{sum(abs(m['offset']) <= m['bound'] for m in found)}/{len(found)}")
    table.note("The bound is half the shortest round trip of 16 probes (the worker read its clock inside it). "
               "local: the workers are in the daemon's process (a function call); ray: a Ray actor a machine "
               "(a call through Ray). On real machines the bound is the same half round trip, over their network; "
               "clocks drift between windows (tens of ppm: ~1 ms an idle minute), which is why every window measures "
               "again.")
    bench.close()


if __name__ == "__main__":
    main()
