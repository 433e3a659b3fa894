#!/usr/bin/env python3
"""What `emu capture` costs the lab: one TCP flow through a 1 Gbit switch port, with and without
a capture (tcpdump in the switch's namespace, 96-byte snaplen) on that port.

Run as root:  python scripts/bench_capture.py [--runs 3]
"""
import argparse
import statistics
import tempfile
import threading
import uuid

from emu.experiments.flows import Flow, run_flows
from emu.lab import Lab
from emu.metrics.capture import capture
from emu.terminate import clean_up_on_sigterm
from emu.topo import build


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with Lab.up(build("star", f"c{uuid.uuid4().hex[:6]}", hosts=2, rate="1Gbit")) as lab, \
            tempfile.TemporaryDirectory() as tmp:
        port = lab.plan.node("sw0").port_to("c1").ifname
        plain, captured = [], []
        for _ in range(args.runs):
            plain.append(run_flows(lab, [Flow("c0", "c1")], 3)[0]["bps"] / 1e6)
            t = threading.Thread(target=capture, args=(lab.node("sw0"), port, f"{tmp}/x.pcap", None, 4.0))
            t.start()
            captured.append(run_flows(lab, [Flow("c0", "c1")], 3)[0]["bps"] / 1e6)
            t.join()
        print(f"1 Gbit flow, Mbit/s (median of {args.runs}): without capture {statistics.median(plain):.0f} "
              f"({min(plain):.0f}-{max(plain):.0f}), with capture {statistics.median(captured):.0f} "
              f"({min(captured):.0f}-{max(captured):.0f})")


if __name__ == "__main__":
    clean_up_on_sigterm()
    main()
